--- The observed node of W14 (bench/w14/run): N idle processes (default
-- 100000; one in ten registered, each has handled one message), nothing
-- else running, so the CPU it spends is the Observer's reading.
--   halo run --name node1@localhost --cookie C --registrar R bench/w14/node.lua READY [N]
local halo = require("halo")

local ready, n = ...
n = tonumber(n or "100000")

local Idle = { name = "bench.w14.idle" }
function Idle:handle_message() end
for i = 1, n do
  local pid = assert(halo.spawn(Idle, nil, i % 10 == 0 and { name = "w14_" .. i } or nil))
  halo.send(pid, "tick")
  if i % 1000 == 0 then halo.yield() end
end
halo.sleep(100) -- every tick handled
local f = assert(io.open(ready .. ".tmp", "w"))
f:write("ready ", halo.node_info().ProcessesTotal, "\n")
f:close()
assert(os.rename(ready .. ".tmp", ready))
while true do halo.receive() end
