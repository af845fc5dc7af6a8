-- pprof_cpu: a CPU profile of the node over a few seconds (halo.cpuprof),
-- as the reference's flat/cum table by function.
local cpuprof = require("halo.cpuprof")

local function int_arg(v, default, lo, hi)
  v = tonumber(v)
  if not v or v < lo then return default end
  if hi and v > hi then return hi end
  return math.floor(v)
end

local function pct(n, total)
  if total == 0 then return 0 end
  return n * 100 / total
end

-- Named so that the tool's own frames match the playbooks' exclude="toolPprof".
local function toolPprofCPU(args)
  local duration = int_arg(args.duration, 5, 1, 30)
  local limit = int_arg(args.limit, 20, 1)
  local prof, err = cpuprof.collect(duration)
  if not prof then return nil, "failed to start CPU profile: " .. tostring(err) end
  local filter, exclude = args.filter, args.exclude
  if filter == "" then filter = nil end
  if exclude == "" then exclude = nil end
  local rows, total, matched = cpuprof.top(prof, { filter = filter, exclude = exclude, limit = limit })
  local out = { ("CPU profile: %d seconds, %d total samples%s, showing %d\n\n"):format(duration, total,
    (filter or exclude) and (", matched %d functions"):format(matched) or "", #rows) }
  out[#out + 1] = ("%-8s %-8s %s\n"):format("flat%", "cum%", "function")
  for _, r in ipairs(rows) do
    out[#out + 1] = ("%-8.1f %-8.1f %s\n"):format(pct(r.flat, total), pct(r.cum, total), r.name)
  end
  return table.concat(out)
end

return {
  {
    name = "pprof_cpu",
    description = "Profiles the node's CPU for `duration` seconds (1..30, default 5; the call blocks that long) "
      .. "by sampling every 10 ms of CPU time: Lua frames from LuaJIT's profiler, attributed to the process "
      .. "running them, and the core's own C work (scheduler, network and HTTP reads, event loop) as C "
      .. "frames. Returns text: a header `CPU profile: <D> seconds, <S> total samples, showing <K>` (S is a "
      .. "count of samples), then one row per function `flat% cum% function`, sorted by flat%: flat is the "
      .. "share of samples whose innermost frame is the function, cum the share with the function anywhere "
      .. "in the stack. Functions are named `name (file:line of definition)`. The same profile, each sample "
      .. "labelled with its process's pid (and registered name), is served as pprof protobuf at "
      .. "/debug/pprof/profile?seconds=N on the radar listener. One profile at a time per node.",
    inputSchema = {
      type = "object",
      properties = {
        duration = { type = "integer", description = "seconds to profile, 1..30 (default 5; < 1 means 5, > 30 means 30)" },
        limit = { type = "integer", description = "functions to show (default 20; < 1 means 20)" },
        filter = { type = "string", description = "keep only functions whose name contains this text" },
        exclude = { type = "string", description = "drop functions whose name contains this text" },
      },
    },
    handler = function(args)
      local text, err = toolPprofCPU(args)
      return text, err
    end,
  },
}
