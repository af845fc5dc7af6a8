--- latency_scenario: measurable mailbox latency on a worker that waits for
-- a slow HTTP service.
--
--   latency_scenario          (temporary)
--   └── latency_sup           latency.latencySup  one_for_one, permanent
--       ├── latency_worker    latency.worker      one GET slowweb/slow per ping
--       └── latency_sender    latency.sender      100 pings every 1..5 s
--
-- The sender sends each burst to the latency_worker of the next other node
-- that runs the application (round robin). The worker handles one ping at
-- a time: its HTTP request keeps it inside its callback (its mailbox backs
-- up, the wait counts as its running time, the rest of the node runs on)
-- and feeds slowweb_request_duration_seconds and slowweb_requests_total.
-- Times are ms.
local halo = require("halo")
local scenario = require("scenario")

local M = {}

M.NAME = "latency_scenario"

M.defaults = {
  first_burst = 5000,
  burst_every = { 1000, 5000 },
  burst_size = 100,
  slowweb = "127.0.0.1:8080", -- host:port of slowweb
  request_timeout = 5000,
}

-- latency.worker -----------------------------------------------------------------

local Worker = { name = "latency.worker" }
M.Worker = Worker
-- the message it accepts (halo.message: for the MCP tools message_types .. send_message)
halo.message.define("latency/MessagePing", { Seq = "integer" })

-- Custom metrics (halo.metrics); a registration that fails is logged and
-- the worker goes on without that metric.
local function register(kind, spec)
  local ok, metrics = pcall(require, "halo.metrics")
  if not ok then
    halo.log.error("failed to register %s: %s", kind, (tostring(metrics):match("^[^\n]*")))
    return nil
  end
  local m, err = metrics[kind](spec)
  if not m then halo.log.error("failed to register %s: %s", kind, tostring(err)) end
  return m
end

function Worker:init(o)
  self.host, self.port = o.slowweb:match("^(.+):(%d+)$")
  self.port = tonumber(self.port)
  self.timeout = o.request_timeout
  self.counts, self.last_ms = { ok = 0, error = 0 }, 0
  self.duration = register("histogram", {
    name = "slowweb_request_duration_seconds", help = "Duration of HTTP requests to slowweb",
    buckets = { 0.001, 0.005, 0.01, 0.015, 0.02, 0.05, 0.1 },
  })
  self.requests = register("counter", {
    name = "slowweb_requests_total", help = "Total HTTP requests to slowweb", labels = { "status" },
  })
  halo.log.info("latency worker started on %s", scenario.node())
end

function Worker:handle_message(_, msg)
  if type(msg) ~= "table" or msg.type ~= "MessagePing" then return end
  local t0 = halo.now()
  local res, err = halo.http.request({ host = self.host, port = self.port, path = "/slow", timeout = self.timeout })
  local seconds = (halo.now() - t0) / 1000
  if self.duration then self.duration:observe(seconds) end
  local status = res and "ok" or "error"
  if self.requests then self.requests:add(1, status) end
  self.counts[status] = self.counts[status] + 1
  self.last_ms, self.last_error = seconds * 1000, err or self.last_error
end

-- The reference's worker has no inspect map; this one tells what it did.
function Worker:handle_inspect()
  return { slowweb = ("%s:%d"):format(self.host, self.port), requests_ok = tostring(self.counts.ok),
           requests_error = tostring(self.counts.error), last_request_ms = ("%.3f"):format(self.last_ms),
           last_error = self.last_error or "" }
end

function Worker:terminate(reason) halo.log.info("latency worker terminated: %s", tostring(reason)) end

-- latency.sender -------------------------------------------------------------------

local Sender = scenario.sender({ name = "latency.sender", label = "latency sender", app = M.NAME,
                                 first = "first_burst", every = "burst_every", burst = function(self, node)
  local to, n = halo.net.process_id("latency_worker", node), self.o.burst_size
  for i = 0, n - 1 do
    local ok, serr = halo.send(to, { type = "MessagePing", Seq = i })
    if not ok then
      halo.log.warning("latency sender: send error at %d: %s", i, tostring(serr))
      return
    end
  end
  halo.log.info("latency sender: %d messages -> %s", n, node)
end })
M.Sender = Sender

-- the application ------------------------------------------------------------------

M.Sup = scenario.supervisor("latency.latencySup", {})

--- The application spec; opts override M.defaults.
function M.application(opts)
  local o = scenario.options(M.NAME, M.defaults, opts)
  if type(o.slowweb) ~= "string" or not o.slowweb:match("^.+:%d+$") then
    error(M.NAME .. ": slowweb must be host:port", 2)
  end
  local sup = { strategy = "one_for_one", restart = "permanent", children = {
    { name = "latency_worker", behavior = Worker, args = o },
    { name = "latency_sender", behavior = Sender, args = o },
  } }
  return {
    name = M.NAME, mode = "temporary", modules = { "scenario", "latency" }, env = o,
    description = "mailbox latency on a worker that waits for slowweb",
    group = { { name = "latency_sup", behavior = M.Sup, args = { spec = sup, options = o } } },
  }
end

--- Loads and starts the application.
function M.start(opts) return scenario.start(M.application(opts)) end

return M
