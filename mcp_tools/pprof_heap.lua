-- Heap profile and runtime figures: pprof_heap and runtime_stats (halo.heap).
local json = require("halo.json")
local heap = require("halo.heap")

-- Named so stack dumps and CPU profiles can leave the tool's own frames out
-- (exclude="toolPprof").
local function toolPprofHeap(args)
  return heap.text({ limit = args.limit, filter = args.filter, exclude = args.exclude })
end

local function toolRuntimeStats()
  return heap.stats_text()
end

return {
  { name = "pprof_heap",
    description = "Heap profile of the node's Lua heap, sampled on the allocator (one sample per 512 KB allocated "
      .. "by default, require('halo.heap').rate(bytes) or the run option heap_rate; estimates unsampled as Go's pprof does). Text: header "
      .. "'heap profile: total inuse <X>[, matched <M> functions], showing <K>', then rows 'inuse alloc function' "
      .. "(12-character columns; bytes as GB/MB/KB binary with one decimal, or B): live bytes and bytes allocated "
      .. "since the node started, attributed to the innermost Lua function as '<name> (<source>:<line>)' of the "
      .. "allocation site, sorted by inuse. A second table 'inuse alloc process' lists processes holding sampled "
      .. "bytes: sampled live bytes and the exact bytes the process allocated (halo's accounting).",
    inputSchema = { type = "object",
      properties = {
        limit = { type = "integer", description = "Rows to show (default 20; < 1 means 20)." },
        filter = { type = "string", description = "Keep rows whose function (or process row) contains this text." },
        exclude = { type = "string", description = "Drop rows whose function (or process row) contains this text." },
      },
      additionalProperties = false },
    handler = function(args)
      return toolPprofHeap(args)
    end },
  { name = "runtime_stats",
    description = "Runtime figures as a JSON object, keys in this order: goroutines (live processes), cpus (online "
      .. "CPUs), heap_alloc and heap_inuse (bytes of the Lua heap, LuaJIT's count), heap_sys (that plus freed big "
      .. "blocks the allocator keeps for reuse), heap_objects (0: LuaJIT keeps no object count), stack_inuse (0: Lua "
      .. "stacks are inside the Lua heap), total_alloc (bytes allocated through halo's allocator since the node "
      .. "started), sys (resident set size of the OS process), num_gc (completed collector cycles), "
      .. "last_gc_pause_ns (the last collector step, which halo takes between two process slices and times) and "
      .. "gc_cpu_percent (time in those steps as a percent of the time the node's loop was busy since it started).",
    inputSchema = { type = "object", properties = json.object(), additionalProperties = false },
    handler = function()
      return toolRuntimeStats()
    end },
}
