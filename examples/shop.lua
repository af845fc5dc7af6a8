--- A small shop built from every piece of the actor platform:
--   application "shop" (transient)
--   └── shop_sup (supervisor, one_for_one)
--       ├── inventory   publishes the event "stock" (buffer 5, notify)
--       ├── orders      a pool of 3 packers (worker mailbox 50)
--       ├── couriers    simple_one_for_one: one courier per parcel
--       └── auditor     subscribes to "stock" and to the warning/error log stream
--   cron: "@every 1s" asks the inventory to restock; "* * * * *" logs a summary
--
--   halo run examples/shop.lua [seconds]    (default 3; Ctrl-C stops it early)
local halo = require("halo")
local cjson = require("cjson")

local seconds = tonumber((...)) or 3

-- inventory: owns the stock and announces every change as an event
local Inventory = { name = "shop.inventory" }
function Inventory:init()
  self.stock = { apple = 5, pear = 3 }
  assert(halo.event.register("stock", { buffer = 5, notify = true }))
end
function Inventory:handle_call(_, _, req)
  if req.take then
    local left = self.stock[req.take] or 0
    if left == 0 then
      halo.log.warning("out of %s", req.take)
      return { ok = false }
    end
    self.stock[req.take] = left - 1
    halo.event.publish("stock", { item = req.take, left = left - 1 })
    return { ok = true }
  end
end
function Inventory:handle_message(_, msg)
  if msg.kind == "cron" then -- restock
    for item, n in pairs(self.stock) do
      if n < 6 then
        self.stock[item] = 6
        halo.event.publish("stock", { item = item, left = 6 })
      end
    end
  elseif msg.kind == "event_start" or msg.kind == "event_stop" then
    halo.log.info("someone %s watching the stock", msg.kind == "event_start" and "started" or "stopped")
  end
end
function Inventory:handle_inspect() return { apple = tostring(self.stock.apple), pear = tostring(self.stock.pear) } end

-- packer: a pool worker; takes stock and hands the parcel to a new courier
local Packer = { name = "shop.packer" }
function Packer:handle_message(_, order)
  local r = halo.call("inventory", { take = order.item })
  if r and r.ok then
    assert(halo.supervisor.start_child("couriers", "courier", { order = order }))
  end
end

-- courier: lives for one delivery
local Courier = { name = "shop.courier" }
function Courier:init(args)
  self.order = args.order
  halo.send_after(halo.self(), "arrived", 50 + math.random(100))
end
function Courier:handle_message()
  halo.log.debug("order %d (%s) delivered", self.order.id, self.order.item)
  return "normal"
end

-- auditor: watches the stock event and the warning/error log stream
local Auditor = { name = "shop.auditor" }
function Auditor:init()
  self.changes, self.warnings = 0, 0
  halo.event.monitor("stock")
  assert(halo.log.subscribe({ name = "auditor", levels = { "warning", "error" } }))
end
function Auditor:handle_event() self.changes = self.changes + 1 end
function Auditor:handle_log() self.warnings = self.warnings + 1 end
function Auditor:handle_inspect()
  return { stock_changes = tostring(self.changes), warnings_seen = tostring(self.warnings) }
end

halo.application.load({
  name = "shop", description = "orders, stock and couriers", version = "0.1.0", mode = "transient",
  group = {
    { name = "shop_sup", behavior = halo.supervisor.behavior, args = {
      strategy = "one_for_one",
      children = {
        { name = "inventory", behavior = Inventory, restart = "permanent" },
        { name = "orders", behavior = halo.pool.behavior,
          args = { size = 3, worker = Packer, worker_mailbox_size = 50 } },
        { name = "couriers", behavior = halo.supervisor.behavior, args = {
          strategy = "simple_one_for_one", restart = "temporary",
          children = { { name = "courier", behavior = Courier } } } },
        { name = "auditor", behavior = Auditor },
      },
    } },
  },
})

assert(halo.application.start("shop"))
assert(halo.cron.add("restock", "@every 1s", { send = "inventory" }))
assert(halo.cron.add("summary", "* * * * *", function()
  halo.log.info("summary: %d processes", halo.node_info().ProcessesTotal)
end))

-- place orders for `seconds`
local items = { "apple", "pear" }
local deadline = halo.now() + seconds * 1000
local id = 0
while halo.now() < deadline do
  id = id + 1
  halo.send("orders", { id = id, item = items[id % 2 + 1] })
  halo.sleep(100)
end
halo.sleep(300) -- let the last couriers arrive

local function show(title, value) print(title .. ": " .. cjson.encode(value)) end
local function strip(node) -- the tree without PIDs, for a stable print
  local out = { name = node.name ~= "" and node.name or nil, behavior = node.behavior }
  if #node.children > 0 then
    out.children = {}
    for i, c in ipairs(node.children) do out.children[i] = strip(c) end
  end
  return out
end
local tree = halo.application.tree("shop")
show("tree", strip(tree.children[1]))
show("orders", halo.inspect("orders"))
show("inventory", halo.inspect("inventory"))
show("auditor", halo.inspect("auditor"))
local ev = halo.event.info("stock")
show("event", { name = ev.Name, state = ev.UtilizationState, subscribers = ev.Subscribers,
                published = ev.MessagesPublished, buffered = ev.CurrentBuffer })
local cron_info = halo.cron.info()
show("cron", { next = cron_info.Next, jobs = #cron_info.Jobs, restock_runs = halo.cron.job("restock").Runs })
print(("placed %d orders"):format(id))

halo.cron.remove("restock")
halo.cron.remove("summary")
assert(halo.application.stop("shop"))
print("shop stopped: " .. halo.application.info("shop").State)
