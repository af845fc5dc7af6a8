--- bench/w13/heap: bench/halo/bench.lua with the heap sampler off (rate 0)
-- from the start of the entry.
require("halo.heap").rate(0)
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
assert(loadfile(here .. "/../../halo/bench.lua"))(...)
