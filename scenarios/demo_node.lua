--- A node of `halo demo`: the coloured console logger (stderr, which the
-- demo writes to the node's log file) and the four scenario applications,
-- in the reference's order, latency pointed at the demo's slowweb. radar
-- comes first, from `halo run --metrics`.
--   halo run --name node1@localhost --metrics 9101 --log-level debug scenarios/demo_node.lua 127.0.0.1:9198 [DEMO_PID]
local halo = require("halo")

local slowweb, demo_pid = ...
slowweb = slowweb or "127.0.0.1:8080"

halo.log.remove_logger("default")
halo.log.add_logger("colored", { format = "color" })

local opts = { latency = { slowweb = slowweb } }
for _, name in ipairs({ "latency", "messaging", "lifecycle", "events" }) do
  local ok, err = require(name).start(opts[name])
  if ok then
    halo.log.info("started %s_scenario", name)
  else
    halo.log.error("cannot start %s_scenario: %s", name, tostring(err))
  end
end
-- stops the node once the demo that started it is gone
if demo_pid then return require("halo.demo").until_orphaned(tonumber(demo_pid)) end
while true do halo.receive() end
