--- A node of W11 (bench/w11/run): the mcp application (halo run starts it,
-- serving with --mcp) and w11_load, which sets the number of extra
-- processes: halo.call(halo.net.process_id("w11_load", node), n) spawns or
-- kills idle processes until n run, each having handled one message, one in
-- ten registered, and answers the node's ProcessesTotal.
--   halo run --name n1@localhost --cookie C --mcp 127.0.0.1:PORT bench/w11/node.lua READY
local halo = require("halo")

local ready = ...

local Idle = { name = "bench.w11.idle" }
function Idle:handle_message() end

local Load = { name = "bench.w11.load" }
function Load:init() self.pids = {} end
function Load:handle_call(_, _, n)
  local pids = self.pids
  while #pids < n do
    local i = #pids + 1
    pids[i] = assert(halo.spawn(Idle, nil, i % 10 == 0 and { name = "w11_" .. i } or nil))
    halo.send(pids[i], "tick")
    if i % 1000 == 0 then halo.yield() end
  end
  while #pids > n do
    halo.kill(table.remove(pids))
    if #pids % 1000 == 0 then halo.yield() end
  end
  halo.sleep(50) -- the killed ones leave the table
  return halo.node_info().ProcessesTotal
end
function Load:handle_message() end

local deadline = halo.now() + 20000
while not (halo.whereis("mcp") and halo.whereis("mcp_web")) do
  if halo.now() > deadline then error("the mcp application never started", 0) end
  halo.sleep(20)
end
assert(halo.spawn(Load, nil, { name = "w11_load" }))
local f = assert(io.open(ready .. ".tmp", "w"))
f:write("ready\n")
f:close()
assert(os.rename(ready .. ".tmp", ready))
while true do halo.receive() end
