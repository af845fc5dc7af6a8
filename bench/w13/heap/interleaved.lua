--- bench/w13/heap, interleaved: bench/w13/cpu/interleaved.lua (W1 1 and 100
-- pairs, W3 1000 senders, each run alternately in one node, CPU time per
-- message, medians) with the heap sampler in the CPU profile's place: its
-- "plain" runs have the sampler off (rate 0), its "profiled" runs on at the
-- default 512 KB, and "samples" counts the heap samples taken.
--   halo run --watchdog-ms 0 --log-level error bench/w13/heap/interleaved.lua [--runs N] [--quick]
local heap = require("halo.heap")
local DEFAULT = heap.rate()
local taken
package.loaded["halo.cpuprof"] = {
  running = function() return false end,
  start = function()
    heap.rate(DEFAULT)
    taken = heap.profile().samples
    return true
  end,
  stop = function() heap.rate(0); return { samples = heap.profile().samples - taken } end,
}
heap.rate(0)
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
assert(loadfile(here .. "/../cpu/interleaved.lua"))(...)
