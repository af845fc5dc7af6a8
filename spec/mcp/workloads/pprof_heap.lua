-- pprof_heap's known shape: a process that keeps ~4 MB allocated by
-- heapGrowsHere (the fixtures look for that function).
local halo = require("halo")

local function heapGrowsHere(keep, n)
  local tag = string.rep("h", 1000) .. tostring(halo.self()) .. ":"
  for i = 1, n do keep[#keep + 1] = { tag .. i } end
end

halo.spawn(function()
  local keep = {}
  heapGrowsHere(keep, 4000)
  while true do halo.receive() end
end)
