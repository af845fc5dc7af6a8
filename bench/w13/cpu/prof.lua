--- bench/w13/cpu: bench/halo/bench.lua with a CPU profile running at the
-- default rate (halo.cpuprof) for the whole run; the samples are counted
-- on stderr at the end so the profile demonstrably ran.
local cpuprof = require("halo.cpuprof")
assert(cpuprof.start({ seconds = 3600 }))
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
assert(loadfile(here .. "/../../halo/bench.lua"))(...)
local prof = assert(cpuprof.stop())
io.stderr:write(("cpu profile: %d samples\n"):format(prof.samples))
