-- The scenario applications on one node, run small and fast: their trees,
-- registered names, behavior strings, log lines, the zombee and the event
-- utilization states of the reference (scenarios-observer.md §2-3).
local halo = require("halo")
local helper = require("helper")

package.path = "scenarios/?.lua;" .. package.path

-- The log records that reached the calling process (a log subscriber) so far, added to into.
local function drain_logs(into)
  while true do
    local from, rec = halo.receive(0)
    if not from then return into end
    if type(rec) == "table" and rec.kind == "log" then into[#into + 1] = rec end
  end
end

local function messages(logs, level)
  local out = {}
  for _, r in ipairs(logs) do
    if not level or r.level == level then out[#out + 1] = r.message end
  end
  return out
end

local function has(list, pattern)
  for _, s in ipairs(list) do
    if s:find(pattern) then return true end
  end
  return false
end

local function count_by(list, field)
  local c = {}
  for _, p in ipairs(list) do c[p[field]] = (c[p[field]] or 0) + 1 end
  return c
end

describe("lifecycle_scenario", function()
  it("churns restarted children under a busy supervisor and leaves one zombee in processPayloadDecompression", function()
    local r = helper.run(function()
      local out = {}
      halo.log.remove_logger("default")
      assert(halo.log.subscribe({ levels = { "info", "warning", "error" } }))
      local lc = require("lifecycle")
      assert(lc.start({ start_after = 20, children = { 6, 8 }, init_sleep = { 20, 60 }, lifetime = { 100, 300 },
                        zombie_after = 50, kill_after = 100 }))
      assert(helper.wait_until(function() return halo.node_info().ProcessesZombee == 1 end, 3000))
      -- let a few children die and come back
      local sup = halo.whereis("lifecycle_sup")
      assert(helper.wait_until(function() return tonumber(halo.inspect(sup).restarts_total) >= 6 end, 4000))
      out.app = halo.application.info("lifecycle_scenario")
      out.procs = halo.process_list({ application = "lifecycle_scenario", limit = 1000 })
      out.by_running = halo.process_list({ application = "lifecycle_scenario", sort_by = "running_time", limit = 1 })
      out.sup = halo.process_info(sup)
      out.inspect = halo.inspect(sup)
      out.maker = halo.whereis("zombie_maker")
      out.zombee = halo.process_list({ state = "zombee" })
      out.stack = halo.process_stack(out.zombee[1].PID)
      out.block = require("halo.stacks").process(out.zombee[1].PID) -- pprof_goroutines pid=...
      -- a reload makes no second zombee
      out.reload = { halo.application.reload("lifecycle_scenario") }
      halo.sleep(200)
      out.zombees_after = halo.node_info().ProcessesZombee
      out.logs = drain_logs({})
      assert(halo.application.stop("lifecycle_scenario"))
      return out
    end, { log_level = "info" })
    assert.equal("temporary", r.app.Mode)
    local by_behavior = count_by(r.procs, "Behavior")
    assert.equal(1, by_behavior["lifecycle.lifecycleSup"])
    assert.equal(1, by_behavior["lifecycle.zombieMaker"])
    assert.equal(1, by_behavior["lifecycle.zombieChild"])
    assert.is_true(by_behavior["lifecycle.child"] >= 1 and by_behavior["lifecycle.child"] <= 8)
    for _, p in ipairs(r.procs) do
      if p.Behavior == "lifecycle.child" then
        assert.equal("", p.Name) -- simple_one_for_one children are anonymous
        assert.equal(r.sup.PID, p.Parent)
        if p.State ~= "init" then assert.is_true(p.InitTime >= 20e6) end -- its init slept
      end
    end
    assert.equal("lifecycle_sup", r.sup.Name)
    -- the children's inits ran inside the supervisor's callbacks
    assert.equal(r.sup.PID, r.by_running[1].PID)
    assert.equal("Simple One For One", r.inspect.type)
    assert.equal("1000", r.inspect.intensity)
    local z = r.zombee[1]
    assert.equal(1, #r.zombee)
    assert.equal("lifecycle.zombieChild", z.Behavior)
    assert.equal("lifecycle_scenario", z.Application)
    assert.equal(r.maker, z.Parent)
    assert.equal("", z.Name)
    assert.equal(1, z.MessagesIn)
    assert.matches("in function 'processPayloadDecompression'", r.stack)
    assert.matches("^goroutine %d+ %[zombee%]:\n[^\n]*\"application\":\"lifecycle_scenario\"}\n" ..
      "%[C%] halo_process_sleep%(%d+ ms%)\n\tcore/timer%.c\nsleep\n\t[^\n]*\n" ..
      "processPayloadDecompression\n\t[^\n]*lifecycle%.lua:%d+\n", r.block)
    assert.same({ true }, r.reload)
    assert.equal(1, r.zombees_after)
    local info, warn, err = messages(r.logs, "info"), messages(r.logs, "warning"), messages(r.logs, "error")
    local started
    for _, m in ipairs(info) do started = started or tonumber(m:match("^lifecycle supervisor starting (%d+) children$")) end
    assert.is_true(started >= 6 and started <= 8)
    assert.equal(tostring(started), r.inspect["child:lifecycle_child"]) -- every one of them restarted, none lost
    assert.is_true(has(info, "^zombie maker started on halo@localhost$"))
    assert.is_true(has(info, "^zombie maker: spawned zombie child <[%x.]+>, sending block message$"))
    assert.is_true(has(err, "^zombie maker: child <[%x.]+> is not responding$"))
    assert.is_true(has(warn, "^zombie maker: killing blocked child <[%x.]+>$"))
    assert.is_true(has(warn, "^lifecycle child <[%x.]+>: terminating$"))
    assert.is_true(has(err, "^lifecycle child <[%x.]+> terminated: lifecycle child: random termination$"))
    assert.is_true(has(info, "^zombie maker: this node has its zombie already$"))
  end)
end)

describe("events_scenario", function()
  it("puts its 20 events in the five utilization states; evt_15 publishes only while someone listens", function()
    local r = helper.run(function()
      local out, logs = {}, {}
      halo.log.remove_logger("default")
      assert(halo.log.subscribe({ levels = { "info" } }))
      assert(require("events").start({ publishers_after = 10, subscribers_after = 20, publish_every = { 10, 30 } }))
      assert(helper.wait_until(function()
        local e = halo.event.info("evt_12")
        local a = halo.event.info("evt_0")
        return e and e.MessagesPublished > 0 and a and a.Subscribers > 0 and a.MessagesPublished > 0
      end, 3000))
      halo.sleep(50) -- every publishing event has published by now (30 ms at most each)
      out.events = halo.event.list({ name = "evt_", limit = -1 })
      out.procs = halo.process_list({ application = "events_scenario", limit = 1000 })
      drain_logs(logs)
      -- the debug lines, for a moment (subscribers log every delivery)
      assert(halo.log.unsubscribe())
      assert(halo.log.subscribe({ levels = { "debug" } }))
      halo.sleep(100)
      assert(halo.log.unsubscribe())
      out.logs = drain_logs(logs)
      -- an on_demand event: publishes once someone subscribes, stops when they leave
      assert(halo.event.monitor("evt_15"))
      local from, got = halo.receive(2000)
      out.got = from and got
      out.evt15_active = halo.event.info("evt_15").UtilizationState
      assert(halo.event.demonitor("evt_15"))
      halo.sleep(50)
      local n1 = halo.event.info("evt_15").MessagesPublished
      halo.sleep(100)
      out.evt15_stopped = halo.event.info("evt_15").MessagesPublished == n1
      assert(halo.application.stop("events_scenario"))
      return out
    end, { log_level = "debug" })
    local state = {}
    for _, e in ipairs(r.events) do state[e.Name] = e end
    local expect = { active = { 0, 9 }, idle = { 10, 11 }, no_subscribers = { 12, 14 }, on_demand = { 15, 16 },
                     no_publishing = { 17, 19 } }
    local waiting = 0
    for want, range in pairs(expect) do
      for i = range[1], range[2] do
        local e = state["evt_" .. i]
        assert.equal(want, e.UtilizationState, "evt_" .. i)
        if want == "active" then assert.is_true(e.Subscribers >= 15, "evt_" .. i .. " has few subscribers") end
        if want == "no_publishing" then waiting = waiting + e.Subscribers end
        if want == "on_demand" then assert.is_true(e.Notify) end
      end
    end
    assert.equal(40, waiting) -- subscribers 260..299, one of evt_17..19 each
    local by_behavior = count_by(r.procs, "Behavior")
    assert.same({ ["events.eventsSup"] = 1, ["events.publisher"] = 20, ["events.subscriber"] = 300 }, by_behavior)
    assert.equal("evt_15", r.got.event)
    assert.equal("MessageEventData", r.got.message.type)
    assert.equal("active", r.evt15_active)
    assert.is_true(r.evt15_stopped)
    local debug, info = messages(r.logs, "debug"), messages(r.logs, "info")
    assert.is_true(has(info, "^events: starting 20 publishers$"))
    assert.is_true(has(info, "^events: starting 300 subscribers$"))
    assert.is_true(has(debug, "^published evt_%d+ seq %d+$"))
    assert.is_true(has(debug, "^received event evt_%d+ from halo@localhost$"))
  end)
end)

describe("messaging_scenario", function()
  it("runs a pool of three workers and senders that find no other node to send to", function()
    local r = helper.run(function()
      local out, logs = {}, {}
      halo.log.remove_logger("default")
      assert(halo.log.subscribe({ levels = { "info", "warning" } }))
      assert(require("messaging").start({ first_burst = 10, bulk_first_burst = 10, burst_every = { 10, 20 } }))
      assert(helper.wait_until(function()
        return has(messages(drain_logs(logs)), "^messaging sender: no registrar: ")
      end, 2000))
      out.procs = halo.process_list({ application = "messaging_scenario", limit = 100 })
      out.pool = halo.inspect("messaging_pool")
      out.names = { halo.whereis("messaging_sup"), halo.whereis("messaging_pool"), halo.whereis("messaging_sender"),
                    halo.whereis("messaging_bulk_sender") }
      out.logs = drain_logs(logs)
      assert(halo.application.stop("messaging_scenario"))
      return out
    end, { log_level = "info" })
    assert.same({ ["messaging.messagingSup"] = 1, ["messaging.pool"] = 1, ["messaging.worker"] = 3,
                  ["messaging.sender"] = 1, ["messaging.bulkSender"] = 1 }, count_by(r.procs, "Behavior"))
    assert.equal(4, #r.names)
    assert.equal("3", r.pool.pool_size)
    assert.equal("messaging.worker", r.pool.worker_behavior)
    local info = messages(r.logs, "info")
    assert.is_true(has(info, "^messaging pool started on halo@localhost$"))
    assert.is_true(has(info, "^messaging sender started on halo@localhost$"))
    assert.is_true(has(info, "^bulk sender started on halo@localhost$"))
  end)
end)
