--- bench/w13/gc: bench/halo/bench.lua, then the collector's figures on
-- stderr (paced steps and cycles, the longest step, the share of CPU), so
-- a run shows which pacing it had.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
assert(loadfile(here .. "/../../halo/bench.lua"))(...)
local s = require("halo.core").heap.stats()
io.stderr:write(("gc: pacing %s, %d cycles (%d paced, %d steps), last step %.1f us, longest %.1f us, "
  .. "%.1f%% of CPU in paced steps, lua heap %.1f MB, rss %.1f MB\n"):format(tostring(s.gc.pacing), s.gc_cycles,
  s.gc.cycles, s.gc.steps, s.gc.last_pause_ns / 1e3, s.gc.max_pause_ns / 1e3, s.gc.cpu_percent,
  s.lua_heap / 1e6, s.rss / 1e6))
