--- The heap profile and the runtime figures (core.heap): the text of the MCP
-- tools pprof_heap and runtime_stats, and the pprof protobuf of
-- /debug/pprof/heap.
--
-- Sampled figures are unsampled as Go's heap profiles are: a record of a
-- block of s bytes taken at rate r stands for 1 / (1 - exp(-s/r)) blocks
-- (core/alloc.h), so sums estimate what was allocated and what is held.
local core = require("halo.core")
local heap_core = core.heap

local M = {}

--- The sampling rate in force (bytes between samples on average, 0: off);
-- with bytes, sets it from now on and returns the previous one.
M.rate = heap_core.rate

--- The sites of the profile: { rate, samples, dropped, sites = {{name, file,
-- line, frames, alloc_objects, alloc_bytes, inuse_objects, inuse_bytes}...},
-- owners = {{pid, inuse_objects, inuse_bytes}...} }.
M.profile = heap_core.profile

--- Byte counts as the reference prints them: binary multiples, one decimal.
function M.bytes(n)
  if n >= 1024 ^ 3 then return string.format("%.1fGB", n / 1024 ^ 3) end
  if n >= 1024 ^ 2 then return string.format("%.1fMB", n / 1024 ^ 2) end
  if n >= 1024 then return string.format("%.1fKB", n / 1024) end
  return string.format("%dB", n)
end

--- A site's function as the text table shows it: name (source:line of the allocation).
function M.label(site)
  if site.file == "" or site.file == "[C]" then return site.name end
  return string.format("%s (%s:%d)", site.name, site.file, site.line)
end

--- The profile's sites summed per function (M.label): the total of live
-- bytes and the rows {fn, inuse, alloc, inuse_objects, alloc_objects} that
-- hold any, by live bytes, then allocated bytes, then name.
function M.functions(prof)
  local total, by_fn, rows = 0, {}, {}
  for _, s in ipairs(prof.sites) do
    total = total + s.inuse_bytes
    local fn = M.label(s)
    local f = by_fn[fn]
    if not f then
      f = { fn = fn, inuse = 0, alloc = 0, inuse_objects = 0, alloc_objects = 0 }
      by_fn[fn] = f
      rows[#rows + 1] = f
    end
    f.inuse, f.alloc = f.inuse + s.inuse_bytes, f.alloc + s.alloc_bytes
    f.inuse_objects, f.alloc_objects = f.inuse_objects + s.inuse_objects, f.alloc_objects + s.alloc_objects
  end
  local out = {}
  for _, f in ipairs(rows) do
    if f.inuse > 0 or f.alloc > 0 then out[#out + 1] = f end
  end
  table.sort(out, function(a, b)
    if a.inuse ~= b.inuse then return a.inuse > b.inuse end
    if a.alloc ~= b.alloc then return a.alloc > b.alloc end
    return a.fn < b.fn
  end)
  return total, out
end

local function row(a, b, c) return string.format("%-12s %-12s %s\n", a, b, c) end

--- The pprof_heap text: sites by live bytes (flat, innermost frame), then the
-- processes holding sampled bytes with their exact cumulative allocation.
-- opts: limit (< 1 or nil: 20), filter, exclude (substrings of the function).
-- Or nil, "failed to write heap profile: ..." (out of memory).
function M.text(opts)
  opts = opts or {}
  local limit = (type(opts.limit) == "number" and opts.limit >= 1) and opts.limit or 20
  local filter = type(opts.filter) == "string" and opts.filter ~= "" and opts.filter or nil
  local exclude = type(opts.exclude) == "string" and opts.exclude ~= "" and opts.exclude or nil
  local prof, err = heap_core.profile()
  if not prof then return nil, "failed to write heap profile: " .. tostring(err) end
  local total, all = M.functions(prof)
  local rows = {}
  for _, f in ipairs(all) do
    if (not filter or f.fn:find(filter, 1, true)) and not (exclude and f.fn:find(exclude, 1, true)) then
      rows[#rows + 1] = f
    end
  end
  local shown = math.min(#rows, limit)
  local out = { string.format("heap profile: total inuse %s%s, showing %d\n\n", M.bytes(total),
    (filter or exclude) and string.format(", matched %d functions", #rows) or "", shown) }
  out[#out + 1] = row("inuse", "alloc", "function")
  for i = 1, shown do
    out[#out + 1] = row(M.bytes(rows[i].inuse), M.bytes(rows[i].alloc), rows[i].fn)
  end
  -- per process: sampled live bytes, exact cumulative allocation (the core's)
  local alloc = {}
  for _, p in ipairs(core.introspect.process_list()) do alloc[p.PID] = p end
  local procs = {}
  for _, o in ipairs(prof.owners) do
    local p = alloc[o.pid]
    local label = o.pid == "" and "(no process)" or
        string.format("process %s %s", o.pid, p and p.Name ~= "" and p.Name or (p and p.Behavior) or "(ended)")
    if (not filter or label:find(filter, 1, true)) and not (exclude and label:find(exclude, 1, true)) then
      procs[#procs + 1] = { label = label, inuse = o.inuse_bytes, alloc = p and p.MemoryAllocated }
    end
  end
  table.sort(procs, function(a, b)
    if a.inuse ~= b.inuse then return a.inuse > b.inuse end
    return a.label < b.label
  end)
  if #procs > 0 then
    out[#out + 1] = "\n"
    out[#out + 1] = row("inuse", "alloc", "process")
    for i = 1, math.min(#procs, limit) do
      local p = procs[i]
      out[#out + 1] = row(M.bytes(p.inuse), p.alloc and M.bytes(p.alloc) or "-", p.label)
    end
  end
  return table.concat(out)
end

--- The heap profile as gzipped profile.proto bytes (Go's four sample types), or nil, err, code.
function M.pprof()
  local prof, err, code = heap_core.profile()
  if not prof then return nil, err, code end
  local samples = {}
  for _, s in ipairs(prof.sites) do
    local stack = {}
    for i, f in ipairs(s.frames) do stack[i] = { f.name, f.file, f.line } end
    samples[#samples + 1] = {
      stack = stack,
      values = { s.alloc_objects, s.alloc_bytes, s.inuse_objects, s.inuse_bytes },
    }
  end
  local now = core.node.time_ns and core.node.time_ns() or 0
  return core.pprof.encode({
    sample_types = { { "alloc_objects", "count" }, { "alloc_space", "bytes" },
      { "inuse_objects", "count" }, { "inuse_space", "bytes" } },
    period_type = { "space", "bytes" },
    period = prof.rate,
    time_nanos = now,
    duration_nanos = 0,
    samples = samples,
  })
end

--- runtime_stats: the reference's twelve keys in its order, as pretty JSON
-- text (README "runtime_stats" says what each means here).
function M.stats_text()
  local s = heap_core.stats()
  local keys = {
    { "goroutines", s.processes },
    { "cpus", s.cpus },
    { "heap_alloc", s.lua_heap },
    { "heap_sys", s.lua_heap + s.kept },
    { "heap_inuse", s.lua_heap },
    { "heap_objects", 0 },
    { "stack_inuse", 0 },
    { "total_alloc", s.allocated },
    { "sys", s.rss },
    { "num_gc", s.gc_cycles },
    { "last_gc_pause_ns", 0 },
    { "gc_cpu_percent", 0 },
  }
  local out = {}
  for i, kv in ipairs(keys) do
    local v = kv[2]
    local text = kv[1] == "gc_cpu_percent" and string.format("%.1f", v) or string.format("%d", v)
    out[i] = string.format('  "%s": %s', kv[1], text)
  end
  return "{\n" .. table.concat(out, ",\n") .. "\n}"
end

--- The /debug/pprof/heap answer: status, body, headers.
function M.serve()
  local body, err = M.pprof()
  if not body then
    return 500, "failed to write heap profile: " .. tostring(err) .. "\n", { ["content-type"] = "text/plain; charset=utf-8" }
  end
  return 200, body, { ["content-type"] = "application/octet-stream",
                      ["content-disposition"] = 'attachment; filename="heap"' }
end

return M
