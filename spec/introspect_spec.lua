local halo = require("halo")
local helper = require("helper")

-- init sleeps args.init_ms; {"out", n} sends n messages to args.sink;
-- {"busy", ms} sleeps inside the callback; "hold" parks it until args.gate.open.
local worker = {
  init = function(self, args)
    self.args = args
    if args.init_ms then halo.sleep(args.init_ms) end
  end,
  handle_message = function(self, from, msg)
    if msg == "hold" then
      self.args.gate.held = true
      while not self.args.gate.open do halo.sleep(2) end
    elseif msg[1] == "out" then
      for _ = 1, msg[2] do halo.send(self.args.sink, "x") end
    elseif msg[1] == "busy" then
      halo.sleep(msg[2])
    end
  end,
  handle_inspect = function(self, from, items)
    return { from = from, items = table.concat(items, ","), name = halo.process_lookup(halo.self()) }
  end,
}

local sink = { handle_message = function() end }

local function pids(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.PID end
  return out
end

local function processed(pid, n)
  return helper.wait_until(function()
    local info = halo.process_info(pid)
    return info.MessagesIn == n and info.MailboxQueues.Main == 0 and info.State == "sleep"
  end)
end

local field = {
  mailbox = "MessagesMailbox", mailbox_latency = "MailboxLatency", running_time = "RunningTime",
  init_time = "InitTime", wakeups = "Wakeups", uptime = "Uptime", messages_in = "MessagesIn",
  messages_out = "MessagesOut", drain = "Drain",
}

describe("process_list", function()
  -- Three workers with distinct figures:
  --            messages_in  out  wakeups  drain  init_time  running_time
  --   w1       1            2    2        0.5    30 ms      ~30 ms
  --   w2       3            0    2        1.5    15 ms      ~15 ms
  --   w3       2            1    3        0.67   0          ~60 ms
  local function setup()
    local s = assert(halo.spawn(sink))
    local w1 = assert(halo.spawn(worker, { sink = s, init_ms = 30 },
      { name = "w1", behavior = "sortme.worker", application = "appx" }))
    local w2 = assert(halo.spawn(worker, { sink = s, init_ms = 15 },
      { name = "w2", behavior = "sortme.worker", application = "appx" }))
    local w3 = assert(halo.spawn(worker, { sink = s },
      { name = "w3", behavior = "sortme.worker", application = "appy" }))
    halo.send(w1, { "out", 2 })
    halo.send(w2, { "out", 0 })
    halo.send(w2, { "out", 0 })
    halo.send(w2, { "out", 0 })
    assert(processed(w1, 1) and processed(w2, 3))
    halo.send(w3, { "busy", 60 })
    assert(processed(w3, 1))
    halo.send(w3, { "out", 1 })
    assert(processed(w3, 2))
    return s, w1, w2, w3
  end

  it("sorts descending by every key", function()
    local r = helper.run(function()
      local s, w1, w2, w3 = setup()
      local out = { w1 = w1, w2 = w2, w3 = w3, by = {}, rows = {} }
      for key in pairs(field) do
        local rows = halo.process_list({ behavior = "sortme", sort_by = key })
        out.by[key] = pids(rows)
        out.rows[key] = rows
      end
      for _, p in ipairs({ s, w1, w2, w3 }) do halo.kill(p) end
      return out
    end)
    local w1, w2, w3 = r.w1, r.w2, r.w3
    assert.same({ w2, w3, w1 }, r.by.messages_in)
    assert.same({ w1, w3, w2 }, r.by.messages_out)
    assert.same({ w3, w1, w2 }, r.by.wakeups)
    assert.same({ w2, w3, w1 }, r.by.drain)
    assert.same({ w1, w2, w3 }, r.by.init_time)
    assert.same({ w3, w1, w2 }, r.by.running_time)
    assert.same({ w1, w2, w3 }, r.by.uptime) -- all 0 s: ties keep spawn order
    for key, rows in pairs(r.rows) do
      assert.equal(3, #rows, key)
      for i = 2, #rows do
        assert.is_true(rows[i - 1][field[key]] >= rows[i][field[key]], key .. " not descending")
      end
    end
    local w = r.rows.messages_in
    assert.same({ 3, 2, 1 }, { w[1].MessagesIn, w[2].MessagesIn, w[3].MessagesIn })
    assert.same({ 2, 3, 2 }, { w[1].Wakeups, w[2].Wakeups, w[3].Wakeups })
    assert.same({ 1.5, 2 / 3, 0.5 }, { w[1].Drain, w[2].Drain, w[3].Drain })
  end)

  it("with a limit keeps exactly the full sort's first rows, ties included (spawn order)", function()
    local r = helper.run(function()
      local ps = {}
      for i = 1, 300 do ps[i] = assert(halo.spawn(sink, nil, { behavior = "tied" })) end
      for i = 1, 300 do
        for _ = 1, (i * 7919) % 4 do halo.send(ps[i], "x") end -- 0-3 messages: four tied groups
      end
      assert(helper.wait_until(function()
        local n = 0
        for _, row in ipairs(halo.process_list({ behavior = "tied", limit = 0 })) do n = n + row.MessagesIn end
        return n == 450
      end))
      local bad = {}
      for _, key in ipairs({ "wakeups", "messages_in", "drain", "mailbox" }) do
        local all = pids(halo.process_list({ behavior = "tied", sort_by = key }))
        for _, limit in ipairs({ 1, 2, 7, 74, 75, 76, 150, 299, 300, 301 }) do
          local top = pids(halo.process_list({ behavior = "tied", sort_by = key, limit = limit }))
          local want = { unpack(all, 1, math.min(limit, #all)) }
          if #top ~= #want or table.concat(top, " ") ~= table.concat(want, " ") then
            bad[#bad + 1] = key .. " limit " .. limit
          end
        end
      end
      for _, p in ipairs(ps) do halo.kill(p) end
      return bad
    end)
    assert.same({}, r)
  end)

  it("filters by application, behavior, name and state and applies limit", function()
    local r = helper.run(function()
      local s, w1, w2, w3 = setup()
      local out = { s = s, w1 = w1, w2 = w2, w3 = w3, self = halo.self() }
      out.appx = pids(halo.process_list({ application = "appx" }))
      out.app_partial = pids(halo.process_list({ application = "app" }))
      out.behavior = pids(halo.process_list({ behavior = "me.wor" }))
      out.name = pids(halo.process_list({ name = "w" }))
      out.name2 = pids(halo.process_list({ name = "2" }))
      out.running = pids(halo.process_list({ state = "running" }))
      out.sleep = pids(halo.process_list({ state = "sleep" }))
      out.all = pids(halo.process_list())
      out.limit = pids(halo.process_list({ limit = 2 }))
      out.limit_sorted = pids(halo.process_list({ behavior = "sortme", sort_by = "messages_in", limit = 2 }))
      out.bad_state = { pcall(halo.process_list, { state = "dreaming" }) }
      out.bad_key = { pcall(halo.process_list, { sort_by = "size" }) }
      out.bad_min = { pcall(halo.process_list, { min = { size = 1 } }) }
      for _, p in ipairs({ s, w1, w2, w3 }) do halo.kill(p) end
      return out
    end)
    assert.same({ r.w1, r.w2 }, r.appx)
    assert.same({}, r.app_partial)
    assert.same({ r.w1, r.w2, r.w3 }, r.behavior)
    assert.same({ r.w1, r.w2, r.w3 }, r.name)
    assert.same({ r.w2 }, r.name2)
    assert.same({ r.self }, r.running)
    assert.same({ r.s, r.w1, r.w2, r.w3 }, r.sleep)
    assert.same({ r.self, r.s, r.w1, r.w2, r.w3 }, r.all)
    assert.same({ r.self, r.s }, r.limit)
    assert.same({ r.w2, r.w3 }, r.limit_sorted)
    assert.is_false(r.bad_state[1])
    assert.matches("unknown process state", r.bad_state[2])
    assert.is_false(r.bad_key[1])
    assert.matches("unknown sort key", r.bad_key[2])
    assert.is_false(r.bad_min[1])
  end)

  it("filters by min and max thresholds of every key", function()
    local r = helper.run(function()
      local s, w1, w2, w3 = setup()
      local out = { w1 = w1, w2 = w2, w3 = w3 }
      local function q(min, max) return pids(halo.process_list({ behavior = "sortme", min = min, max = max })) end
      out.in_min = q({ messages_in = 2 })
      out.in_max = q(nil, { messages_in = 2 })
      out.in_range = q({ messages_in = 2 }, { messages_in = 2 })
      out.out_min = q({ messages_out = 1 })
      out.wakeups_min = q({ wakeups = 3 })
      out.drain_max = q(nil, { drain = 1 })
      out.init_min = q({ init_time = 10e6 })
      out.init_max = q(nil, { init_time = 10e6 })
      out.running_min = q({ running_time = 50e6 })
      out.uptime_max = q(nil, { uptime = 0 })
      out.uptime_min = q({ uptime = 1 })
      out.mailbox_min = q({ mailbox = 1 })
      out.latency_max = q(nil, { mailbox_latency = 0 })
      for _, p in ipairs({ s, w1, w2, w3 }) do halo.kill(p) end
      return out
    end)
    local w1, w2, w3 = r.w1, r.w2, r.w3
    assert.same({ w2, w3 }, r.in_min)
    assert.same({ w1, w3 }, r.in_max)
    assert.same({ w3 }, r.in_range)
    assert.same({ w1, w3 }, r.out_min)
    assert.same({ w3 }, r.wakeups_min)
    assert.same({ w1, w3 }, r.drain_max)
    assert.same({ w1, w2 }, r.init_min)
    assert.same({ w3 }, r.init_max)
    assert.same({ w3 }, r.running_min)
    assert.same({ w1, w2, w3 }, r.uptime_max)
    assert.same({}, r.uptime_min)
    assert.same({}, r.mailbox_min)
    assert.same({ w1, w2, w3 }, r.latency_max)
  end)

  it("sorts and filters by mailbox and mailbox_latency of held processes", function()
    local r = helper.run(function()
      local g1, g2 = {}, {}
      local h1 = assert(halo.spawn(worker, { gate = g1 }, { behavior = "held" }))
      local h2 = assert(halo.spawn(worker, { gate = g2 }, { behavior = "held" }))
      halo.send(h1, "hold")
      halo.send(h2, "hold")
      assert(helper.wait_until(function() return g1.held and g2.held end))
      for i = 1, 3 do halo.send(h1, { "out", 0 }) end
      halo.sleep(10)
      for i = 1, 5 do halo.send(h2, { "out", 0 }) end
      local out = { h1 = h1, h2 = h2 }
      out.mailbox = halo.process_list({ behavior = "held", sort_by = "mailbox" })
      out.latency = pids(halo.process_list({ behavior = "held", sort_by = "mailbox_latency" }))
      out.min4 = pids(halo.process_list({ behavior = "held", min = { mailbox = 4 } }))
      out.lat_min = pids(halo.process_list({ behavior = "held", min = { mailbox_latency = 8e6 } }))
      out.running = pids(halo.process_list({ behavior = "held", state = "running" }))
      g1.open, g2.open = true, true
      assert(helper.wait_until(function() return #halo.process_list({ behavior = "held", min = { mailbox = 1 } }) == 0 end))
      halo.kill(h1)
      halo.kill(h2)
      return out
    end)
    assert.same({ r.h2, r.h1 }, pids(r.mailbox))
    assert.same({ 5, 3 }, { r.mailbox[1].MessagesMailbox, r.mailbox[2].MessagesMailbox })
    assert.same({ r.h1, r.h2 }, r.latency)
    assert.same({ r.h2 }, r.min4)
    assert.same({ r.h1 }, r.lat_min)
    assert.same({ r.h1, r.h2 }, r.running)
  end)
end)

describe("process_info", function()
  it("shows relations, aliases, env, queues, trap exit, parent and identity", function()
    local r = helper.run(function()
      local gate = {}
      local t1 = assert(halo.spawn(sink))
      local t2 = assert(halo.spawn(sink, nil, { name = "named_target" }))
      local alias
      local p = assert(halo.spawn({
        init = function()
          assert(halo.link(t1))
          assert(halo.monitor(t2))
          assert(halo.monitor("named_target"))
          assert(halo.link("named_target"))
          alias = halo.alias()
        end,
        handle_message = worker.handle_message,
        args = { gate = gate },
      }, nil, { name = "inspected", env = { color = "blue" }, trap_exit = true, kind = "worker",
                behavior = "info.behavior", mailbox_size = 10, log_level = "debug" }))
      halo.sleep(20)
      local info = halo.process_info(p)
      local out = { info = info, p = p, t1 = t1, t2 = t2, alias = alias, self = halo.self(),
                    state_time = info.StateTime }
      local unknown = t1:gsub("%.(%d+)>$", function(id) return "." .. (id + 1000) .. ">" end)
      out.unknown = { halo.process_info(unknown) }
      out.bad = { pcall(halo.process_info, "<zz>") }
      for _, x in ipairs({ p, t1, t2 }) do halo.kill(x) end
      return out
    end)
    local i = r.info
    assert.equal(r.p, i.PID)
    assert.equal("inspected", i.Name)
    assert.equal("info.behavior", i.Behavior)
    assert.equal("worker", i.Kind)
    assert.equal("", i.Application)
    assert.equal(r.self, i.Parent)
    assert.matches("^<%x+%.0%.1>$", i.Leader) -- inherited from the entry: the node's PID
    assert.equal("sleep", i.State)
    assert.equal("debug", i.LogLevel)
    assert.equal(10, i.MailboxSize)
    assert.is_true(i.TrapExit)
    assert.same({ COLOR = "blue" }, i.Env)
    assert.same({ r.alias }, i.Aliases)
    assert.same({ r.t1 }, i.LinksPID)
    assert.same({ "named_target" }, i.LinksProcessID)
    assert.same({ r.t2 }, i.MonitorsPID)
    assert.same({ "named_target" }, i.MonitorsProcessID)
    assert.same({}, i.LinksAlias)
    assert.same({}, i.MonitorsAlias)
    assert.same({ Urgent = 0, System = 0, Main = 0, Log = 0, LatencyUrgent = 0, LatencySystem = 0,
                  LatencyMain = 0, LatencyLog = 0 }, i.MailboxQueues)
    assert.equal(1, i.Wakeups)
    assert.equal(0, i.MessagesIn)
    assert.is_true(r.state_time >= 20e6, "StateTime " .. r.state_time)
    assert.equal("ENOPROC", r.unknown[3])
    assert.is_false(r.bad[1])
  end)
end)

describe("node_info", function()
  it("counts spawned, terminated, send and call errors and processes by state", function()
    local r = helper.run(function()
      local b = halo.node_info()
      local a = assert(halo.spawn(sink))
      local c = assert(halo.spawn(sink))
      local mid = halo.node_info()
      assert(halo.kill(a))
      halo.send(a, "lost")                    -- unknown PID: a send error
      halo.send("no_such_name", "lost")       -- unknown name: a send error
      halo.call(a, "q")                       -- unknown PID: a call error
      halo.call(c, "q", 10)                   -- no handle_call: times out, a call error
      halo.spawn({ init = function() error("x") end })
      local e = halo.node_info()
      halo.kill(c)
      return { b = b, mid = mid, e = e }
    end)
    local b, mid, e = r.b, r.mid, r.e
    assert.equal(1, b.ProcessesTotal)
    assert.equal(1, b.ProcessesRunning)
    assert.equal(3, mid.ProcessesTotal)
    assert.equal(2, mid.ProcessesSleep)
    assert.equal(2, mid.ProcessesSpawned - b.ProcessesSpawned)
    assert.equal(2, e.ProcessesTotal)
    assert.equal(1, e.ProcessesTerminated - b.ProcessesTerminated)
    assert.equal(2, e.ProcessesSpawned - b.ProcessesSpawned)
    assert.equal(1, e.ProcessesSpawnFailed - b.ProcessesSpawnFailed)
    assert.equal(2, e.SendErrorsLocal - b.SendErrorsLocal)
    assert.equal(2, e.CallErrorsLocal - b.CallErrorsLocal)
    assert.equal(0, e.ProcessesZombee)
    assert.equal("halo@localhost", e.Name)
    assert.equal(6, #e.LogMessages)
  end)
end)

describe("halo.inspect", function()
  it("calls handle_inspect with the caller and items and returns its map", function()
    local r = helper.run(function()
      local p = assert(halo.spawn(worker, {}, { name = "insp" }))
      local q = assert(halo.spawn(sink))
      local f = assert(halo.spawn(function() halo.receive() end))
      local out = { self = halo.self() }
      out.map = halo.inspect(p, { "a", "b" })
      out.by_name = halo.inspect("insp")
      out.none = halo.inspect(q)
      out.fn = halo.inspect(f)
      out.self_err = { halo.inspect(halo.self()) }
      for _, x in ipairs({ p, q, f }) do halo.kill(x) end
      out.unknown = { halo.inspect(p) }
      return out
    end)
    assert.same({ from = r.self, items = "a,b", name = "insp" }, r.map)
    assert.same({ from = r.self, items = "", name = "insp" }, r.by_name)
    assert.same({}, r.none)
    assert.same({}, r.fn)
    assert.equal("ENOTALLOWED", r.self_err[3])
    assert.equal("ENOPROC", r.unknown[3])
  end)

  it("goes ahead of queued messages (urgent queue) and times out while the target is busy", function()
    local r = helper.run(function()
      local gate, seen = {}, {}
      local p = assert(halo.spawn({
        handle_message = function(_, _, msg)
          if msg == "hold" then
            gate.held = true
            while not gate.open do halo.sleep(2) end
          end
          seen[#seen + 1] = msg
        end,
        handle_inspect = function() seen[#seen + 1] = "inspect"; return { ok = "yes" } end,
      }))
      halo.send(p, "hold")
      assert(helper.wait_until(function() return gate.held end))
      local out = { timeout = { halo.inspect(p, {}, 20) } }
      halo.send(p, "m1")
      local got
      assert(halo.spawn(function() got = halo.inspect(p) end))
      gate.open = true
      assert(helper.wait_until(function() return got ~= nil end))
      out.seen, out.got = seen, got
      halo.kill(p)
      return out
    end)
    assert.equal("ETIMEDOUT", r.timeout[3])
    -- The timed-out inspect is still queued and answered late, ahead of m1.
    assert.same({ "hold", "inspect", "inspect", "m1" }, r.seen)
    assert.same({ ok = "yes" }, r.got)
  end)
end)
