--- bench/w13/heap: bench/halo/bench.lua with the heap sampler at its default
-- rate (one sample per 512 KB); the samples taken are counted on stderr at
-- the end so the sampler demonstrably ran.
local heap = require("halo.heap")
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
assert(loadfile(here .. "/../../halo/bench.lua"))(...)
local prof = heap.profile()
io.stderr:write(("heap profile: rate %d, %d samples, %d sites\n"):format(prof.rate, prof.samples, #prof.sites))
