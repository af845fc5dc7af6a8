--- A node of the MCP client test (spec/mcp_client_spec.lua runs three, the
-- SDK's every_tool.mjs talks to them) and of bench/w11: the mcp application
-- plus what the fixtures of spec/mcp/calls/*.json look at (MCP_CONTRACT's
-- last section):
--   mcp_test_echo   registered; a call answers { echo = <request> }, inspect { answer = "42" }
--   mcp_test_event  owned by mcp_test_producer, published every second, one
--                   local subscriber (mcp_test_subscriber)
--   mcp_test_app    temporary application, running: mcp_test_sup (one_for_one)
--                   with one child, mcp_test_worker
--   mcp_test_job    cron job, every minute, logs a line
--
--   halo run --name node1@localhost --cookie C [--mcp 127.0.0.1:PORT] spec/mcp/node.lua READY [PEER ...]
--
-- Once everything runs and every PEER node is connected it writes the file
-- READY (lines: "ready", mcp_test_echo's PID), then serves until stopped.
local halo = require("halo")

local ready, peers = ..., { select(2, ...) }

-- mcp_test_echo ------------------------------------------------------------------

local Echo = { name = "mcp_test.echo" }
function Echo:handle_call(_, _, request) return { echo = request } end
function Echo:handle_message() end
function Echo:handle_inspect() return { answer = "42" } end
assert(halo.spawn(Echo, nil, { name = "mcp_test_echo" }))

-- mcp_test_event -------------------------------------------------------------------

local Producer = { name = "mcp_test.producer" }
function Producer:init()
  self.seq = 0
  assert(halo.event.register("mcp_test_event"))
  halo.send_after(halo.self(), "publish", 1000)
end
function Producer:handle_message(_, msg)
  if msg == "publish" then
    self.seq = self.seq + 1
    halo.event.publish("mcp_test_event", { seq = self.seq })
    halo.send_after(halo.self(), "publish", 1000)
  end
end
assert(halo.spawn(Producer, nil, { name = "mcp_test_producer" }))

local Subscriber = { name = "mcp_test.subscriber" }
function Subscriber:init() assert(halo.event.monitor("mcp_test_event")) end
function Subscriber:handle_event() end
function Subscriber:handle_message() end
assert(halo.spawn(Subscriber, nil, { name = "mcp_test_subscriber" }))

-- mcp_test_app -----------------------------------------------------------------------

local Worker = { name = "mcp_test.worker" }
function Worker:handle_message() end
assert(halo.application.load({
  name = "mcp_test_app", description = "what the MCP client test looks at", mode = "temporary",
  group = { { name = "mcp_test_sup", behavior = halo.supervisor.behavior, args = {
    strategy = "one_for_one",
    children = { { name = "mcp_test_worker", behavior = Worker, restart = "permanent" } },
  } } },
}))
assert(halo.application.start("mcp_test_app"))

-- mcp_test_job -------------------------------------------------------------------------

assert(halo.cron.add("mcp_test_job", "* * * * *", function(job, time)
  halo.log.info("%s ran at %d", job, time)
end))

-- workloads: every spec/mcp/workloads/*.lua runs here (known shapes the
-- profiling and sampler fixtures look for) --------------------------------------------

do
  local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/workloads"
  for _, file in ipairs(require("halo.core").fs.scandir(dir) or {}) do
    if file:match("%.lua$") then assert(loadfile(dir .. "/" .. file))() end
  end
end

-- ready once the mcp application runs (halo run starts it: serving with --mcp,
-- in agent mode otherwise) and every peer is connected ------------------------------------

local deadline = halo.now() + 20000
while not (halo.whereis("mcp") and halo.whereis("mcp_web")) do
  if halo.now() > deadline then error("the mcp application never started", 0) end
  halo.sleep(20)
end

for _, peer in ipairs(peers) do
  while not (halo.net.node(peer) or {}).Connected do -- the embedded registrar meshes the nodes
    if halo.now() > deadline then error("peer " .. peer .. " never connected", 0) end
    halo.sleep(20)
  end
end
if ready then
  local f = assert(io.open(ready .. ".tmp", "w"))
  f:write("ready\n", halo.whereis("mcp_test_echo"), "\n")
  f:close()
  assert(os.rename(ready .. ".tmp", ready))
end
while true do halo.receive() end
