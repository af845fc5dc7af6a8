--- messaging_scenario: traffic between nodes with payloads of every size,
-- half of the large ones compressed, all of those over 65000 bytes sent in
-- fragments.
--
--   messaging_scenario          (temporary)
--   └── messaging_sup           messaging.messagingSup  one_for_one, permanent
--       ├── messaging_pool      messaging.pool          pool of 3 messaging.worker
--       ├── messaging_sender    messaging.sender        100..1000 payloads of 256..9996 B per burst
--       └── messaging_bulk_sender messaging.bulkSender  5..24 messages of 100..300 KB per burst
--
-- Both senders go round robin over the other nodes that run the
-- application, to their messaging_pool. Times are ms.
local halo = require("halo")
local scenario = require("scenario")

local M = {}

M.NAME = "messaging_scenario"

M.defaults = {
  first_burst = 5000,
  burst_every = { 1000, 10000 },
  burst_size = { 100, 1000 },
  payload_size = { 256, 9996 },
  bulk_first_burst = 8000,
  bulk_every = { 3000, 17000 },
  bulk_size = { 5, 24 },
  bulk_length = { 100000, 300000 },
}

local PATTERN = "order_id:12345 status:active price:99.95 amount:1.5 exchange:binance "
local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

-- n random characters of set (n random bytes without a set).
local function random_string(n, set)
  local parts, chunk = {}, {}
  for i = 1, n do
    local b
    if set then
      local k = math.random(#set)
      b = set:sub(k, k)
    else
      b = string.char(math.random(0, 255))
    end
    chunk[#chunk + 1] = b
    if #chunk == 4096 or i == n then
      parts[#parts + 1] = table.concat(chunk)
      chunk = {}
    end
  end
  return table.concat(parts)
end

-- Payloads are slices of one random buffer per process, drawn once.
local function slice(buf, n)
  local at = math.random(1, #buf - n + 1)
  return buf:sub(at, at + n - 1)
end

-- messaging.worker / messaging.pool -------------------------------------------

local Worker = { name = "messaging.worker" }
M.Worker = Worker
-- the messages it accepts (halo.message: for the MCP tools message_types .. send_message)
halo.message.define("messaging/MessagePayload", { Data = "string" })
halo.message.define("messaging/MessageBulkPayload", { Data = "string" })

function Worker:handle_message(from, msg)
  if type(msg) ~= "table" then return end
  if msg.type == "MessagePayload" then
    halo.log.debug("received payload %d bytes from %s", #msg.Data, from)
  elseif msg.type == "MessageBulkPayload" then
    halo.log.debug("received bulk payload %d bytes from %s", #msg.Data, from)
  end
end

local Pool = {}
for k, v in pairs(halo.pool.behavior) do Pool[k] = v end
Pool.name = "messaging.pool"
M.Pool = Pool

function Pool:init(spec)
  halo.pool.behavior.init(self, spec)
  halo.log.info("messaging pool started on %s", scenario.node())
end

function Pool:terminate(reason) halo.log.info("messaging pool terminated: %s", tostring(reason)) end

-- messaging.sender ----------------------------------------------------------------

local Sender = scenario.sender({ name = "messaging.sender", label = "messaging sender", app = M.NAME,
                                 first = "first_burst", every = "burst_every", burst = function(self, node)
  self.buf = self.buf or random_string(self.o.payload_size[2] * 4, ALNUM)
  local to, n = halo.net.process_id("messaging_pool", node), scenario.draw(self.o.burst_size)
  halo.log.debug("messaging sender: burst %d messages -> %s", n, node)
  for i = 0, n - 1 do
    local ok, serr = halo.send(to, { type = "MessagePayload", Data = slice(self.buf, scenario.draw(self.o.payload_size)) })
    if not ok then
      halo.log.warning("messaging sender: send error at %d: %s", i, tostring(serr))
      return
    end
    if i % 100 == 99 then halo.yield() end -- where a congested link parks the sender
  end
end })
M.Sender = Sender

-- messaging.bulkSender --------------------------------------------------------------

-- A message of n bytes: the pattern repeated up to 10..80 % of it, then noise,
-- so compression shrinks it 1.1 to 5 times.
local function bulk_payload(self, n)
  local max = self.o.bulk_length[2]
  if not self.pattern then
    self.pattern = PATTERN:rep(math.ceil(max / #PATTERN)):sub(1, max)
    self.noise = random_string(max + 4096)
  end
  local cut = math.floor(n * math.random(1, 8) / 10)
  return self.pattern:sub(1, cut) .. slice(self.noise, n - cut)
end

local BulkSender = scenario.sender({ name = "messaging.bulkSender", label = "bulk sender", app = M.NAME,
                                     first = "bulk_first_burst", every = "bulk_every", burst = function(self, node)
  local to, n = halo.net.process_id("messaging_pool", node), scenario.draw(self.o.bulk_size)
  for i = 0, n - 1 do
    halo.net.compress(math.random(2) == 1)
    local ok, err = halo.send(to, { type = "MessageBulkPayload", Data = bulk_payload(self, scenario.draw(self.o.bulk_length)) })
    if not ok then
      halo.log.warning("bulk sender: send error at %d: %s", i, tostring(err))
      return
    end
    halo.yield()
  end
  halo.log.debug("bulk sender: burst %d large messages -> %s", n, node)
end })
M.BulkSender = BulkSender

-- the application ----------------------------------------------------------------

M.Sup = scenario.supervisor("messaging.messagingSup", {})

--- The application spec; opts override M.defaults.
function M.application(opts)
  local o = scenario.options(M.NAME, M.defaults, opts)
  local sup = { strategy = "one_for_one", restart = "permanent", children = {
    { name = "messaging_pool", behavior = Pool, args = { size = 3, worker = Worker } },
    { name = "messaging_sender", behavior = Sender, args = o },
    { name = "messaging_bulk_sender", behavior = BulkSender, args = o },
  } }
  return {
    name = M.NAME, mode = "temporary", modules = { "scenario", "messaging" }, env = o,
    description = "payloads of every size between nodes, compressed and fragmented",
    group = { { name = "messaging_sup", behavior = M.Sup, args = { spec = sup, options = o } } },
  }
end

--- Loads and starts the application.
function M.start(opts) return scenario.start(M.application(opts)) end

return M
