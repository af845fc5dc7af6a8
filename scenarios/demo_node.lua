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

-- demo_probe: the introspection API reads only the node it runs on, so this
-- registered process answers another node's calls with this node's view:
--   halo.call(halo.net.process_id("demo_probe", "node1@localhost"), { "process_stack", pid })
-- ops: process_list(filter), process_stack(pid), process_lookup(name),
-- event_list(filter), inspect(name_or_pid) (1 s timeout: a busy target
-- answers nil). spec/demo_spec.lua reads the scenarios' steady state here.
local PROBE = {
  process_list = halo.process_list,
  process_stack = halo.process_stack,
  process_lookup = halo.process_lookup,
  event_list = function(filter) return halo.event.list(filter) end,
  inspect = function(target) return halo.inspect(target, nil, 1000) end,
}
halo.spawn({
  name = "demo.probe",
  handle_call = function(_, _, _, req)
    local op = type(req) == "table" and PROBE[req[1]]
    if not op then return nil end
    return { op(req[2]) }
  end,
}, nil, { name = "demo_probe" })

-- stops the node once the demo that started it is gone
if demo_pid then return require("halo.demo").until_orphaned(tonumber(demo_pid)) end
while true do halo.receive() end
