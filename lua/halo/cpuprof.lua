--- halo.cpuprof: the node's CPU profiler, one profile at a time.
--
--   local cpuprof = require("halo.cpuprof")
--   local prof, err = cpuprof.collect(5)     -- blocks the calling process 5 s
--   cpuprof.encode(prof)                     -- gzipped pprof profile.proto
--   cpuprof.top(prof, { limit = 20 })        -- flat/cum by function
--
-- Lua frames come from LuaJIT's sampling profiler (jit.profile, SIGPROF on
-- ITIMER_PROF: CPU time). Its callback gets the coroutine that was running;
-- the sample goes to the process whose code runs (core.pprof.running: a
-- coroutine a process resumes belongs to it), or to "scheduler" when the
-- Lua code runs outside any process. Ticks that land while the core runs
-- its own C code (scheduler slice, link read, HTTP read, poll phase, other
-- loop work) never reach LuaJIT: core/prof.c counts them under the core's
-- phase mark, and they join the profile as one-frame C samples labelled
-- pid "loop"; so do ticks of other threads (libuv's pool, the watchdog) as
-- halo_other_thread. The default interval is 10 ms (100 Hz, the Go runtime's
-- rate); 1 ms is the finest jit.profile offers.
local core = require("halo.core")

local M = {}

M.INTERVAL_MS = 10
M.BUSY = "a CPU profile is already running"

local jprof -- jit.profile, loaded on first use
local active -- the running profile, or nil
local MAXDEPTH = 64
local GRACE_MS = 5000 -- a profile whose owner never stopped it is taken over this long after its end

local running, getinfo = core.pprof.running, debug.getinfo

-- The frames of thread th now, innermost first: { {name, file, line, text} ... }.
local function frames_of(th, vmstate)
  local out = {}
  if vmstate == "G" then out[1] = { "GC (LuaJIT)", "", 0, "GC (LuaJIT)" }
  elseif vmstate == "J" then out[1] = { "JIT compiler (LuaJIT)", "", 0, "JIT compiler (LuaJIT)" } end
  for level = 0, MAXDEPTH - 1 do
    local info = getinfo(th, level, "Sln")
    if not info then break end
    local file = info.short_src or "?"
    local name, text
    if info.what == "C" then
      name = "[C] " .. (info.name or "?")
      text, file = name, "[C]"
    elseif info.what == "main" then
      name = "main chunk <" .. file .. ">"
      text = name
    else
      name = info.name or ("function <" .. file .. ":" .. tostring(info.linedefined) .. ">")
      text = info.name and (name .. " (" .. file .. ":" .. tostring(info.linedefined) .. ")") or name
    end
    out[#out + 1] = { name, file, info.currentline or 0, text }
  end
  return out
end

-- jit.profile's callback: th was running, samples ticks since the last call.
local function on_sample(th, samples, vmstate)
  local p = active
  if not p then return end
  local pid, pname = running()
  pid = pid or "scheduler"
  local key = pid .. "\0" .. vmstate .. "\0" .. jprof.dumpstack(th, "f l;", MAXDEPTH)
  local s = p.by_key[key]
  if not s then
    s = { frames = frames_of(th, vmstate), count = 0, pid = pid, name = pname }
    p.by_key[key] = s
    p.stacks[#p.stacks + 1] = s
  end
  s.count = s.count + samples
end

-- Whether the process that started a profile (nil: none) can still stop it.
local function owner_alive(pid)
  if not pid then return true end
  local st = core.introspect.process_state(pid)
  return st ~= nil and st ~= "terminated" and st ~= "zombee"
end

--- Starts a profile; opts.interval_ms (1..1000, default 10), opts.seconds
-- (how long the caller means to run it), opts.owner (the PID that will stop
-- it: its end frees the profile at once). Returns true, or nil, M.BUSY.
function M.start(opts)
  opts = opts or {}
  local now = core.node.now()
  if active then
    -- a profile past its end, or whose owner process is gone (killed: it
    -- never stops it), lost its owner; one of an earlier node run (this Lua
    -- state ran another node before) is gone with that node
    if now <= active.deadline and active.serial == core.node.serial() and owner_alive(active.owner) then
      return nil, M.BUSY
    end
    M.stop()
  end
  local interval = math.floor(tonumber(opts.interval_ms) or M.INTERVAL_MS)
  if interval < 1 then interval = 1 elseif interval > 1000 then interval = 1000 end
  jprof = jprof or require("jit.profile")
  active = { by_key = {}, stacks = {}, interval_ms = interval, started = now, serial = core.node.serial(),
             wall0 = os.time(), owner = opts.owner or (running()),
             deadline = now + (tonumber(opts.seconds) or 30) * 1000 + GRACE_MS }
  -- "f": traces check for a pending sample at function boundaries; without
  -- it a sample taken in compiled code waits for the next trace exit and
  -- lands in whatever function runs then
  jprof.start("fi" .. interval, on_sample)
  local ok, err = core.pprof.hook()
  if not ok then
    jprof.stop()
    active = nil
    return nil, err
  end
  return true
end

--- Whether a profile runs.
function M.running() return active ~= nil end

--- Stops the profile; returns it: { stacks = { {frames, count, pid, name} ... },
-- samples = total ticks, interval_ms, duration_ns, time_ns }, or nil, err.
function M.stop()
  local p = active
  if not p then return nil, "no CPU profile is running" end
  core.pprof.unhook()
  local ticks = core.pprof.ticks()
  jprof.stop()
  active = nil
  local now = core.node.now()
  for _, t in ipairs(ticks) do
    local text = t.file ~= "" and t.name .. " (" .. t.file .. ")" or t.name
    p.stacks[#p.stacks + 1] = { frames = { { t.name, t.file, 0, text } },
                                count = t.ticks, pid = "loop" }
  end
  local total = 0
  for _, s in ipairs(p.stacks) do total = total + s.count end
  return { stacks = p.stacks, samples = total, interval_ms = p.interval_ms,
           duration_ns = (now - p.started) * 1e6, time_ns = p.wall0 * 1e9 }
end

-- A caller killed during collect never stops its profile: this process,
-- watching it, does (else SIGPROF would tick until the next profile).
local function guard(halo, owner, p)
  return function()
    if halo.monitor(owner) then
      repeat local _, msg = halo.receive() until msg == "done" or halo.is_down(msg)
    end
    if active == p then M.stop() end
  end
end

--- Profiles for seconds (blocks the calling process); returns the profile or nil, err.
function M.collect(seconds, opts)
  opts = opts or {}
  local halo = require("halo")
  local ok, err = M.start({ interval_ms = opts.interval_ms, seconds = seconds, owner = halo.self() })
  if not ok then return nil, err end
  local p = active
  local spawned, g = pcall(function()
    return halo.spawn(guard(halo, halo.self(), p), nil, { behavior = "halo.cpuprof.guard" })
  end)
  if not spawned then g = nil end
  local slept, serr = pcall(halo.sleep, math.floor(seconds * 1000))
  local prof = M.stop()
  if g then halo.send(g, "done") end
  if not slept then error(serr, 0) end
  return prof
end

--- The gzipped pprof profile.proto of prof: sample types samples/count and
-- cpu/nanoseconds, labels pid (and name for registered processes).
function M.encode(prof)
  local period = prof.interval_ms * 1e6
  local samples = {}
  for i, s in ipairs(prof.stacks) do
    local stack = {}
    for k, f in ipairs(s.frames) do stack[k] = { f[1], f[2], f[3] } end
    samples[i] = { stack = stack, values = { s.count, s.count * period },
                   labels = { pid = s.pid, name = s.name } }
  end
  return core.pprof.encode({ sample_types = { { "samples", "count" }, { "cpu", "nanoseconds" } },
                             period_type = { "cpu", "nanoseconds" }, period = period,
                             time_nanos = prof.time_ns, duration_nanos = prof.duration_ns, samples = samples })
end

--- Flat and cum by function as the reference computes them (flat: the
-- innermost frame; cum: once per distinct function in the stack), named
-- "name (file:line)". Returns rows { name, flat, cum } (in samples), the
-- total, the number of matched functions: opts.filter / opts.exclude
-- (substrings of the name), sorted by flat descending, opts.limit rows.
function M.top(prof, opts)
  opts = opts or {}
  local by, total = {}, 0
  local function row(name)
    local r = by[name]
    if not r then
      r = { name = name, flat = 0, cum = 0 }
      by[name] = r
    end
    return r
  end
  for _, s in ipairs(prof.stacks) do
    total = total + s.count
    if s.frames[1] then row(s.frames[1][4]).flat = row(s.frames[1][4]).flat + s.count end
    local seen = {}
    for _, f in ipairs(s.frames) do
      if not seen[f[4]] then
        seen[f[4]] = true
        local r = row(f[4])
        r.cum = r.cum + s.count
      end
    end
  end
  local rows = {}
  for name, r in pairs(by) do
    if (not opts.filter or opts.filter == "" or name:find(opts.filter, 1, true))
       and not (opts.exclude and opts.exclude ~= "" and name:find(opts.exclude, 1, true)) then
      rows[#rows + 1] = r
    end
  end
  table.sort(rows, function(a, b)
    if a.flat ~= b.flat then return a.flat > b.flat end
    return a.name < b.name
  end)
  local matched = #rows
  if opts.limit and opts.limit > 0 and #rows > opts.limit then
    for i = #rows, opts.limit + 1, -1 do rows[i] = nil end
  end
  return rows, total, matched
end

--- The answer to GET /debug/pprof/profile?seconds=N (radar's listener): the
-- gzipped profile after N seconds (1..30, default 30, as Go's handler);
-- 409 while another profile runs, 400 for a malformed N.
function M.serve(req)
  local text = "text/plain; charset=utf-8"
  local q = req.query or ""
  local raw = q:match("^seconds=([^&]*)") or q:match("&seconds=([^&]*)")
  local seconds = 30
  if raw then
    seconds = raw:match("^%-?%d+$") and tonumber(raw) -- decimal digits only, as Go's ParseInt
    if not seconds then
      return 400, "bad seconds: '" .. raw:sub(1, 64) .. "' is not an integer\n", { ["content-type"] = text }
    end
    if seconds < 1 then seconds = 1 elseif seconds > 30 then seconds = 30 end
  end
  local prof, err = M.collect(seconds)
  if not prof then
    return 409, "failed to start CPU profile: " .. tostring(err) .. "\n", { ["content-type"] = text }
  end
  local body, eerr = M.encode(prof)
  if not body then return 500, "failed to write CPU profile: " .. tostring(eerr) .. "\n", { ["content-type"] = text } end
  return 200, body, { ["content-type"] = "application/octet-stream",
                      ["content-disposition"] = 'attachment; filename="profile"' }
end

return M
