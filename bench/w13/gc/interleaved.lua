--- bench/w13/gc, interleaved: bench/w13/cpu/interleaved.lua (W1 1 and 100
-- pairs, W3 1000 senders, each run alternately in one node, CPU time per
-- message, medians) with the collector's pacing in the CPU profile's place:
-- its "plain" runs leave the steps to LuaJIT, its "profiled" runs pace them
-- at slice boundaries, and "samples" counts the paced steps.
--   halo run --watchdog-ms 0 --log-level error bench/w13/gc/interleaved.lua [--runs N] [--quick]
local heap = require("halo.core").heap
local steps
package.loaded["halo.cpuprof"] = {
  running = function() return false end,
  start = function()
    heap.pacing(true)
    steps = heap.stats().gc.steps
    return true
  end,
  stop = function()
    heap.pacing(false)
    return { samples = heap.stats().gc.steps - steps }
  end,
}
heap.pacing(false)
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
assert(loadfile(here .. "/../cpu/interleaved.lua"))(...)
