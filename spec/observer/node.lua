--- A node of the Observer browser test (spec/observer_browser_spec.lua runs
-- three, bench/w14 one): the four scenario applications with short start-up
-- times (latency's bursts far off: no slowweb here), plus what the test looks at:
--   obs_victim    registered, idle; the test kills it from outside the UI (MCP)
--   obs_spawned   N idle processes when HALO_OBS_PROCESSES=N (bench/w14)
--
--   halo run --name node1@localhost --cookie C --registrar R spec/observer/node.lua READY [PEER ...]
--
-- Once the mcp application runs, the lifecycle scenario made its zombee, evt_0..19 are registered and
-- every PEER node is connected it writes the file READY (lines: "ready",
-- obs_victim's PID, the zombee's PID), then serves until stopped.
local halo = require("halo")

local ready, peers = ..., { select(2, ...) }

local opts = {
  latency = { first_burst = 3600000, slowweb = "127.0.0.1:9" },
  messaging = { first_burst = 200, burst_every = { 500, 1000 }, burst_size = { 20, 40 },
                bulk_first_burst = 300, bulk_every = { 1000, 2000 }, bulk_size = { 2, 4 } },
  lifecycle = { start_after = 100, children = { 10, 20 }, init_sleep = { 0, 50 }, zombie_after = 100,
                kill_after = 100 },
  events = { publishers_after = 50, subscribers_after = 200, publish_every = { 200, 1000 },
             remote_retry = { 100, 300 } },
}
for _, name in ipairs({ "latency", "messaging", "lifecycle", "events" }) do
  assert(require(name).start(opts[name]))
end

local Victim = { name = "obs_test.victim" }
function Victim:handle_message() end
local victim = assert(halo.spawn(Victim, nil, { name = "obs_victim" }))

local n = tonumber(os.getenv("HALO_OBS_PROCESSES") or "0")
if n > 0 then
  local Idle = { name = "obs_test.idle" }
  function Idle:handle_message() end
  for _ = 1, n do assert(halo.spawn(Idle)) end
end

local deadline = halo.now() + 20000
local function wait(what, pred)
  while not pred() do
    if halo.now() > deadline then error(what .. " never happened", 0) end
    halo.sleep(20)
  end
end
wait("the mcp application", function() return halo.whereis("mcp") and halo.whereis("mcp_web") end)
local zombee
wait("the zombee", function()
  zombee = (halo.process_list({ behavior = "lifecycle.zombieChild", state = "zombee", limit = 1 })[1] or {}).PID
  return zombee
end)
wait("evt_19's registration", function() return #halo.event.list({ name = "evt_19", limit = 1 }) > 0 end)
for _, peer in ipairs(peers) do
  wait("the connection to " .. peer, function() return (halo.net.node(peer) or {}).Connected end)
end
if ready then
  local f = assert(io.open(ready .. ".tmp", "w"))
  f:write("ready\n", victim, "\n", zombee, "\n")
  f:close()
  assert(os.rename(ready .. ".tmp", ready))
end
while true do halo.receive() end
