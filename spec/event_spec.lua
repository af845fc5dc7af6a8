local halo = require("halo")
local helper = require("helper")

-- A producer that registers `name` with opts and publishes on request; it
-- logs the notices it gets.
local function producer(name, opts, log)
  return {
    name = "spec.producer",
    init = function() assert(halo.event.register(name, opts)) end,
    handle_message = function(_, _, msg) log[#log + 1] = msg end,
    handle_call = function(_, _, _, req)
      if req[1] == "publish" then return { halo.event.publish(name, req[2]) } end
      if req[1] == "unregister" then return { halo.event.unregister(name) } end
      if req[1] == "stop" then return true, req[2] end
    end,
  }
end

-- A subscriber that logs handle_event and handle_message calls.
local function subscriber(log)
  return {
    name = "spec.subscriber",
    init = function(self, a)
      self.tag = a.tag
      if a.how then
        local got = assert(halo.event[a.how](a.event))
        log[#log + 1] = { self.tag, "replay", #got, got[1] and got[1].message }
      end
    end,
    handle_event = function(self, event, message, time)
      log[#log + 1] = { self.tag, "event", event, message, type(time) }
    end,
    handle_message = function(self, _, msg) log[#log + 1] = { self.tag, "msg", msg } end,
    handle_call = function(_, _, _, req) return { halo.event[req[1]](req[2]) } end,
  }
end

describe("halo.event", function()
  it("delivers publishes to link and monitor subscribers and counts them", function()
    local r = helper.run(function()
      local plog, slog = {}, {}
      local prod = assert(halo.spawn(producer("ticks", {}, plog), nil, { name = "ticker" }))
      local s1 = assert(halo.spawn(subscriber(slog), { tag = "s1", how = "link", event = "ticks" }))
      local s2 = assert(halo.spawn(subscriber(slog), { tag = "s2", how = "monitor", event = "ticks" }))
      for i = 1, 3 do assert(halo.call(prod, { "publish", i })[1]) end
      assert(helper.wait_until(function() return #slog == 8 end))
      local out = { slog = slog, info = halo.event.info("ticks"), node = halo.node_info(),
                    prod = prod, out = halo.process_info(prod).MessagesOut }
      halo.kill(s1); halo.kill(s2); halo.kill(prod)
      return out
    end)
    local events = {}
    for _, e in ipairs(r.slog) do
      if e[2] == "event" then
        assert.equal("ticks", e[3])
        assert.equal("number", e[5])
        events[e[1]] = (events[e[1]] or "") .. e[4]
      else
        assert.same("replay", e[2])
        assert.equal(0, e[3])
      end
    end
    assert.same({ s1 = "123", s2 = "123" }, events)
    local i = r.info
    assert.equal("ticks", i.Name)
    assert.matches("^Event#<%x+:ticks>$", i.Event)
    assert.equal(r.prod, i.Producer)
    assert.equal(2, i.Subscribers)
    assert.equal(3, i.MessagesPublished)
    assert.equal(6, i.MessagesLocalSent)
    assert.equal(0, i.MessagesRemoteSent)
    assert.is_true(i.LastPublishedAt >= i.CreatedAt and i.CreatedAt > 0)
    assert.equal("active", i.UtilizationState)
    assert.equal(1, r.node.RegisteredEvents)
    assert.equal(3, r.node.EventsPublished)
    assert.equal(6, r.node.EventsLocalSent)
    assert.is_true(r.out >= 6)
  end)

  it("replays the last N publishes to a new subscriber", function()
    local r = helper.run(function()
      local slog = {}
      local prod = assert(halo.spawn(producer("news", { buffer = 3 }, {})))
      for i = 1, 5 do halo.call(prod, { "publish", "n" .. i }) end
      local s = assert(halo.spawn(subscriber(slog), { tag = "s" }))
      local got = halo.call(s, { "monitor", "news" })[1]
      local msgs = {}
      for k, env in ipairs(got) do msgs[k] = env.message end
      local info = halo.event.info("news")
      halo.kill(s); halo.kill(prod)
      return { msgs = msgs, info = info, first = got[1] }
    end)
    assert.same({ "n3", "n4", "n5" }, r.msgs)
    assert.equal("news", r.first.event)
    assert.equal(3, r.info.BufferSize)
    assert.equal(3, r.info.CurrentBuffer)
  end)

  it("tells a notify producer when the first subscriber comes and the last one goes", function()
    local r = helper.run(function()
      local plog, slog = {}, {}
      local prod = assert(halo.spawn(producer("feed", { notify = true }, plog)))
      local s1 = assert(halo.spawn(subscriber(slog), { tag = "s1", how = "monitor", event = "feed" }))
      local s2 = assert(halo.spawn(subscriber(slog), { tag = "s2", how = "link", event = "feed" }))
      halo.sleep(10)
      local after_two = #plog
      halo.call(s1, { "demonitor", "feed" })
      halo.sleep(10)
      local after_one_left = #plog
      halo.kill(s2) -- a subscriber's end drops its subscription too
      assert(helper.wait_until(function() return #plog == 2 end))
      local info = halo.event.info("feed")
      halo.kill(s1); halo.kill(prod)
      return { plog = plog, after_two = after_two, after_one_left = after_one_left, info = info }
    end)
    assert.equal(1, r.after_two)
    assert.equal(1, r.after_one_left)
    assert.same({ kind = "event_start", event = "feed" }, r.plog[1])
    assert.same({ kind = "event_stop", event = "feed" }, r.plog[2])
    assert.equal(0, r.info.Subscribers)
    assert.equal("on_demand", r.info.UtilizationState)
  end)

  it("ends with its producer: links exit, monitors get a down", function()
    local r = helper.run(function()
      local slog = {}
      local prod = assert(halo.spawn(producer("jobs", {}, {})))
      local linked = assert(halo.spawn(subscriber(slog), { tag = "l", how = "link", event = "jobs" }))
      local mon = assert(halo.spawn(subscriber(slog), { tag = "m", how = "monitor", event = "jobs" }))
      halo.monitor(linked)
      halo.call(prod, { "stop", "producer gone" })
      local _, down = halo.receive(1000)
      assert(helper.wait_until(function() return #slog == 3 end))
      local out = { down = down, slog = slog, prod = prod, info = { halo.event.info("jobs") },
                    mon_alive = halo.process_state(mon) ~= nil }
      halo.kill(mon)
      return out
    end)
    assert.equal("producer gone", r.down.reason) -- the linked subscriber ended with the event's reason
    assert.same({ "m", "msg", { kind = "down", event = "jobs", pid = r.prod, reason = "producer gone" } }, r.slog[3])
    assert.is_true(r.mon_alive)
    assert.equal("EEVENTUNKNOWN", r.info[3])
  end)

  it("tells subscribers 'unregistered' when the producer unregisters", function()
    local r = helper.run(function()
      local slog = {}
      local prod = assert(halo.spawn(producer("tmp", {}, {})))
      local mon = assert(halo.spawn(subscriber(slog), { tag = "m", how = "monitor", event = "tmp" }))
      local res = halo.call(prod, { "unregister" })
      assert(helper.wait_until(function() return #slog == 2 end))
      local again = halo.call(prod, { "unregister" })
      halo.kill(mon); halo.kill(prod)
      return { res = res, slog = slog, again = again }
    end)
    assert.same({ true }, r.res)
    assert.equal("unregistered", r.slog[2][3].reason)
    assert.equal("EEVENTUNKNOWN", r.again[3])
  end)

  it("reports misuse: ownership, unknown events, duplicates, open events", function()
    local r = helper.run(function()
      local prod = assert(halo.spawn(producer("closed", {}, {})))
      local open = assert(halo.spawn(producer("open", { open = true }, {})))
      local out = {
        not_owner = { halo.event.publish("closed", 1) },
        open_ok = { halo.event.publish("open", 1) },
        unknown = { halo.event.publish("nope", 1) },
        taken = { halo.event.register("closed") },
        sub_unknown = { halo.event.monitor("nope") },
        unsub_unknown = { halo.event.demonitor("closed") },
      }
      halo.event.monitor("closed")
      out.dup = { halo.event.monitor("closed") }
      out.bad_opt = { pcall(halo.event.register, "x", { buffr = 1 }) }
      out.bad_buf = { pcall(halo.event.register, "x", { buffer = -1 }) }
      out.bad_filter = { pcall(halo.event.list, { sort_by = "age" }) }
      halo.event.demonitor("closed")
      halo.kill(prod); halo.kill(open)
      return out
    end)
    assert.same({ nil, "ENOTOWNER: not an owner", "ENOTOWNER" }, r.not_owner)
    assert.same({ true }, r.open_ok)
    assert.same({ nil, "EEVENTUNKNOWN: unknown event", "EEVENTUNKNOWN" }, r.unknown)
    assert.equal("ETAKEN", r.taken[3])
    assert.equal("EEVENTUNKNOWN", r.sub_unknown[3])
    assert.equal("ETARGETUNKNOWN", r.unsub_unknown[3])
    assert.equal("ETARGETEXIST", r.dup[3])
    assert.is_false(r.bad_opt[1]); assert.matches("unknown event option 'buffr'", r.bad_opt[2])
    assert.is_false(r.bad_buf[1]); assert.matches("buffer must be", r.bad_buf[2])
    assert.is_false(r.bad_filter[1]); assert.matches("sort_by must be", r.bad_filter[2])
  end)

  it("reaches each of the five utilization states and lists by them", function()
    local r = helper.run(function()
      local procs = {}
      local function prod(name, opts)
        local p = assert(halo.spawn(producer(name, opts, {}), nil, { name = "prod_" .. name }))
        procs[#procs + 1] = p
        return p
      end
      local function sub(event)
        procs[#procs + 1] = assert(halo.spawn(subscriber({}), { tag = event, how = "monitor", event = event }))
      end
      prod("e_idle", {})
      prod("e_demand", { notify = true })
      halo.call(prod("e_nosubs", {}), { "publish", 1 })
      prod("e_nopub", {}); sub("e_nopub")
      local act = prod("e_active", {}); sub("e_active"); sub("e_active")
      halo.call(act, { "publish", 1 })
      local states = {}
      -- one introspection API: the core's table is the one users get
      for _, e in ipairs(require("halo.core").event.list()) do states[e.Name] = e.UtilizationState end
      local function names(list)
        local out = {}
        for i, e in ipairs(list) do out[i] = e.Name end
        return out
      end
      local out = {
        states = states,
        active = names(halo.event.list({ utilization_state = "active" })),
        by_subs = names(halo.event.list({ sort_by = "subscribers", limit = 2 })),
        by_producer = names(halo.event.list({ producer = "prod_e_nop" })),
        quiet = names(halo.event.list({ max_subscribers = 0, max_published = 0 })),
        none = halo.event.list({ name = "zzz" }),
      }
      table.sort(out.quiet)
      for i = #procs, 1, -1 do halo.kill(procs[i]) end
      return out
    end)
    assert.same({ e_idle = "idle", e_demand = "on_demand", e_nosubs = "no_subscribers",
                  e_nopub = "no_publishing", e_active = "active" }, r.states)
    assert.same({ "e_active" }, r.active)
    assert.same({ "e_active", "e_nopub" }, r.by_subs)
    assert.same({ "e_nopub" }, r.by_producer)
    assert.same({ "e_demand", "e_idle" }, r.quiet)
    assert.same({}, r.none)
  end)

  it("refuses a producer its own event, and a killed process new events or subscriptions", function()
    local r = helper.run(function()
      local out = {}
      local prod = assert(halo.spawn({
        init = function() assert(halo.event.register("own", { notify = true })) end,
        handle_call = function()
          out.self_sub = { halo.event.monitor("own") }
          halo.kill(halo.self()) -- a zombee from here on; its cleanup has run
          out.zombee_register = { halo.event.register("late", { buffer = 2 }) }
          out.zombee_sub = { halo.event.link("own") }
          out.zombee_logger = { halo.log.subscribe() }
          halo.sleep(20)
        end,
      }))
      halo.call(prod, "go", 200)
      out.late = { halo.event.info("late") }
      out.loggers = #halo.log.loggers()
      return out
    end)
    assert.equal("ENOTALLOWED", r.self_sub[3])
    assert.equal("ETERMINATED", r.zombee_register[3])
    assert.equal("EEVENTUNKNOWN", r.zombee_sub[3]) -- "own" ended with its producer
    assert.equal("ETERMINATED", r.zombee_logger[3])
    assert.equal("EEVENTUNKNOWN", r.late[3])
    assert.equal(1, r.loggers) -- only "default"
  end)
end)
