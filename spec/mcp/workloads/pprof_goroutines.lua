-- pprof_goroutines' known shapes (spec/mcp/calls/pprof_goroutines.json):
--   mcp_test_parked  sleeps for good inside stacksParkedHere
--   mcp_test_caller  waits inside stacksCallerWaits for a reply of mcp_test_silent, which never replies
local halo = require("halo")

local Silent = { name = "mcp_test.silent" }
function Silent:handle_call() end
local silent = assert(halo.spawn(Silent, nil, { name = "mcp_test_silent" }))

local Parked = { name = "mcp_test.parked" }
function Parked:stacksParkedHere()
  while true do halo.sleep(3600 * 1000) end
end
function Parked:handle_message() self:stacksParkedHere() end
halo.send(assert(halo.spawn(Parked, nil, { name = "mcp_test_parked" })), "park")

local Caller = { name = "mcp_test.caller" }
function Caller:stacksCallerWaits(to)
  while true do halo.call(to, "never answered", 3600 * 1000) end
end
function Caller:handle_message(_, to) self:stacksCallerWaits(to) end
halo.send(assert(halo.spawn(Caller, nil, { name = "mcp_test_caller" })), silent)
