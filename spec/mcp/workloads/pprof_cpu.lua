-- pprof_cpu's workload: a registered process burning CPU in cpuBurnHere
-- for 3 ms of every 20 ms (15% of a core, so the test cluster is not
-- starved); the fixtures find cpuBurnHere in a 1 s profile.
local halo = require("halo")

local function cpuBurnHere(ms)
  local t, x = halo.now(), 0
  while halo.now() - t < ms do
    for i = 1, 1000 do x = x + i % 7 end
  end
  return x
end

halo.spawn_register("mcp_test_cpu_burner", function()
  while true do
    cpuBurnHere(3)
    halo.sleep(17)
  end
end)
