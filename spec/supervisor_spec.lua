local halo = require("halo")
local helper = require("helper")

-- A child that logs its life into a shared list and ends on request:
-- "crash" raises (abnormal), "stop" ends with normal, {"stop", reason} with reason.
local function worker(log)
  return {
    name = "spec.worker",
    init = function(self, args)
      self.id = args.id
      log[#log + 1] = "init " .. args.id
    end,
    handle_message = function(self, _, msg)
      if msg == "crash" then error("crashed on purpose") end
      if msg == "stop" then return "normal" end
      if type(msg) == "table" and msg[1] == "stop" then return msg[2] end
      if msg == "hang" then halo.sleep(60000) end
    end,
    handle_call = function(self) return self.id end,
    terminate = function(self, reason) log[#log + 1] = "term " .. self.id .. " " .. tostring(reason) end,
  }
end

local function spec(strategy, log, extra)
  local s = { strategy = strategy, children = {} }
  for _, id in ipairs({ "a", "b", "c" }) do
    s.children[#s.children + 1] = { name = "w_" .. id, behavior = worker(log), args = { id = id } }
  end
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function pids()
  return { a = halo.whereis("w_a"), b = halo.whereis("w_b"), c = halo.whereis("w_c") }
end

-- Waits until every registered child is back.
local function settle()
  assert(helper.wait_until(function()
    local p = pids()
    return p.a and p.b and p.c
  end))
  return pids()
end

describe("halo.supervisor", function()
  it("starts static children in order, registered, and restarts one_for_one", function()
    local r = helper.run(function()
      local log = {}
      local sup = assert(halo.supervisor.start(spec("one_for_one", log), { name = "sup" }))
      local before = pids()
      local started = { table.unpack(log) }
      halo.send(before.b, "crash")
      assert(helper.wait_until(function() return halo.whereis("w_b") and halo.whereis("w_b") ~= before.b end))
      local after = pids()
      local info = halo.process_info(after.b)
      local out = { started = started, before = before, after = after, log = log,
                    parent = info.Parent, sup = sup, insp = halo.inspect(sup) }
      halo.supervisor.stop(sup)
      return out
    end)
    assert.same({ "init a", "init b", "init c" }, r.started)
    assert.equal(r.before.a, r.after.a)
    assert.equal(r.before.c, r.after.c)
    assert.not_equal(r.before.b, r.after.b)
    assert.equal(r.sup, r.parent)
    assert.equal("One For One", r.insp.type)
    assert.equal("Transient", r.insp.strategy)
    assert.equal("1", r.insp.restarts_count)
    assert.equal("3", r.insp.children_total)
    assert.equal("3", r.insp.children_running)
    assert.equal("5", r.insp.intensity)
    assert.equal("5", r.insp.period)
  end)

  it("restarts every child on all_for_one, stopping the others newest first", function()
    local r = helper.run(function()
      local log = {}
      local sup = assert(halo.supervisor.start(spec("all_for_one", log)))
      local before = pids()
      for i = #log, 1, -1 do log[i] = nil end
      halo.send(before.a, "crash")
      assert(helper.wait_until(function() return #log >= 6 end))
      local after = settle()
      halo.supervisor.stop(sup)
      return { before = before, after = after, log = { table.unpack(log, 1, 6) } }
    end)
    for _, id in ipairs({ "a", "b", "c" }) do assert.not_equal(r.before[id], r.after[id]) end
    assert.equal("term a crashed on purpose", r.log[1]:gsub("term a .-: ", "term a "))
    assert.same({ "term c shutdown", "term b shutdown", "init a", "init b", "init c" },
      { table.unpack(r.log, 2, 6) })
  end)

  it("restarts the failed child and the ones after it on rest_for_one", function()
    local r = helper.run(function()
      local log = {}
      local sup = assert(halo.supervisor.start(spec("rest_for_one", log)))
      local before = pids()
      for i = #log, 1, -1 do log[i] = nil end
      halo.send(before.b, { "stop", "failed" })
      assert(helper.wait_until(function() return #log >= 4 end))
      local after = settle()
      halo.supervisor.stop(sup)
      return { before = before, after = after, log = { table.unpack(log, 1, 4) } }
    end)
    assert.equal(r.before.a, r.after.a)
    assert.not_equal(r.before.b, r.after.b)
    assert.not_equal(r.before.c, r.after.c)
    assert.same({ "term b failed", "term c shutdown", "init b", "init c" }, r.log)
  end)

  it("applies the restart types: permanent always, transient when abnormal, temporary never", function()
    local r = helper.run(function()
      local log = {}
      local s = spec("one_for_one", log)
      s.children[1].restart = "permanent"
      s.children[2].restart = "transient"
      s.children[3].restart = "temporary"
      local sup = assert(halo.supervisor.start(s))
      local p = pids()
      halo.send(p.a, "stop")       -- normal: permanent restarts it anyway
      halo.send(p.b, "stop")       -- normal: transient leaves it
      halo.send(p.c, "crash")      -- abnormal: temporary leaves it (and forgets it)
      assert(helper.wait_until(function() return halo.whereis("w_a") and halo.whereis("w_a") ~= p.a end))
      halo.sleep(20)
      local kids = halo.supervisor.children(sup)
      local insp = halo.inspect(sup)
      -- transient restarts after an abnormal end
      local b2 = assert(halo.supervisor.start_child(sup, "w_b"))
      halo.send(b2, "crash")
      assert(helper.wait_until(function() return halo.whereis("w_b") and halo.whereis("w_b") ~= b2 end))
      halo.supervisor.stop(sup)
      return { kids = kids, insp = insp, b_gone = true }
    end)
    assert.equal(2, #r.kids)
    assert.equal("w_a", r.kids[1].name)
    assert.is_true(r.kids[1].running)
    assert.equal("w_b", r.kids[2].name)
    assert.is_false(r.kids[2].running)
    assert.equal("", r.kids[2].pid)
    assert.equal("2", r.insp.children_total)
    assert.equal("1", r.insp.children_running)
  end)

  it("terminates with 'restarts exceeded' past its intensity and stops its children", function()
    local r = helper.run(function()
      local log = {}
      local sup = assert(halo.supervisor.start(spec("one_for_one", log, { intensity = 2, period = 5 })))
      halo.monitor(sup)
      for _ = 1, 3 do
        local b = assert(helper.wait_until(function() return halo.whereis("w_b") end) and halo.whereis("w_b"))
        halo.send(b, "crash")
        helper.wait_until(function() return halo.whereis("w_b") ~= b end)
      end
      local _, down = halo.receive(2000)
      return { down = down, left = pids(), sup_state = halo.process_state(sup) }
    end)
    assert.equal("down", r.down.kind)
    assert.equal("restarts exceeded", r.down.reason)
    assert.same({}, r.left)
    assert.is_nil(r.sup_state)
  end)

  it("cascades: a parent supervisor restarts a child supervisor that gave up", function()
    local r = helper.run(function()
      local log = {}
      local inner = spec("one_for_one", log, { intensity = 1 })
      local top = assert(halo.supervisor.start({
        strategy = "one_for_one",
        children = { { name = "inner", behavior = halo.supervisor.behavior, args = inner } },
      }))
      local first = halo.whereis("inner")
      for _ = 1, 2 do
        local b = assert(helper.wait_until(function() return halo.whereis("w_b") end) and halo.whereis("w_b"))
        halo.send(b, "crash")
        helper.wait_until(function() return halo.whereis("w_b") ~= b end)
      end
      assert(helper.wait_until(function() return halo.whereis("inner") and halo.whereis("inner") ~= first end))
      settle()
      local out = { first = first, second = halo.whereis("inner"), insp = halo.inspect(top),
                    kind = halo.process_info(first and halo.whereis("inner")).Behavior }
      halo.supervisor.stop(top)
      return out
    end)
    assert.not_equal(r.first, r.second)
    assert.equal("1", r.insp.restarts_count)
    assert.equal("halo.supervisor", r.kind)
  end)

  it("runs simple_one_for_one instances from a spec, each restarted on its own", function()
    local r = helper.run(function()
      local log = {}
      local sup = assert(halo.supervisor.start({
        strategy = "simple_one_for_one",
        restart = "permanent",
        children = { { name = "job", behavior = worker(log), args = { id = "default" } } },
      }))
      local empty = halo.inspect(sup)
      local j1 = assert(halo.supervisor.start_child(sup, "job", { id = "j1" }))
      local j2 = assert(halo.supervisor.start_child(sup, "job"))
      local unknown = { halo.supervisor.start_child(sup, "nope") }
      halo.send(j1, "crash")
      assert(helper.wait_until(function()
        local k = halo.supervisor.children(sup)
        return k[1] and k[1].running and k[1].pid ~= j1
      end))
      local kids = halo.supervisor.children(sup)
      local out = { empty = empty, insp = halo.inspect(sup), j2 = j2, kids = kids,
                    id1 = halo.call(kids[1].pid, "id"), id2 = halo.call(j2, "id"),
                    name = halo.process_lookup(j2), unknown = unknown }
      halo.supervisor.stop(sup)
      return out
    end)
    assert.equal("Simple One For One", r.empty.type)
    assert.equal("0", r.empty.instances_total)
    assert.equal("2", r.insp.instances_total)
    assert.equal("2", r.insp["child:job"])
    assert.equal("1", r.insp.specs_total)
    assert.equal("j1", r.id1)           -- restarted with its own args
    assert.equal("default", r.id2)      -- the spec's args
    assert.equal("", r.name)            -- instances are not registered
    assert.is_nil(r.unknown[1])
    assert.equal("EUNKNOWN", r.unknown[3])
  end)

  it("stops children in reverse order and kills one that outlives its shutdown time", function()
    local r = helper.run(function()
      local log = {}
      local s = spec("one_for_one", log)
      s.children[2].shutdown = 100
      local sup = assert(halo.supervisor.start(s))
      local p = pids()
      halo.send(p.b, "hang") -- b sleeps inside a callback: it cannot take the exit
      halo.sleep(10)
      for i = #log, 1, -1 do log[i] = nil end
      local t0 = halo.now()
      assert(halo.supervisor.stop(sup))
      local ms = halo.now() - t0
      return { log = log, ms = ms, b = halo.process_state(p.b), sup = halo.process_state(sup) }
    end)
    assert.same({ "term c shutdown" , "term a shutdown" }, r.log) -- b was killed: no terminate
    assert.is_true(r.ms >= 100 and r.ms < 1000)
    assert.is_nil(r.sup)
  end)

  it("fails to start when a child's init fails, stopping the ones already started", function()
    local r = helper.run(function()
      local log = {}
      local s = spec("one_for_one", log)
      s.children[3].behavior = { init = function() error("no database") end }
      local pid, err, code = halo.supervisor.start(s)
      return { pid = pid, err = err, code = code, log = log, left = pids() }
    end)
    assert.is_nil(r.pid)
    assert.equal("EINIT", r.code)
    assert.matches("child 'w_c' failed to start", r.err)
    assert.matches("no database", r.err)
    assert.same({ "init a", "init b", "term b shutdown", "term a shutdown" }, r.log)
    assert.same({}, r.left)
  end)

  it("rejects a malformed spec with a clear error", function()
    local cases = {
      { { strategy = "one_for_all", children = {} }, "strategy must be" },
      { { children = { { behavior = {} } } }, "name %(a non%-empty string%) is required" },
      { { children = { { name = "x", behavior = 5 } } }, "behavior must be" },
      { { children = { { name = "x", behavior = {}, restart = "sometimes" } } }, "restart must be" },
      { { children = { { name = "x", behavior = {}, options = { link = false } } } }, "set by the supervisor" },
      { { children = { { name = "x", behavior = {} }, { name = "x", behavior = {} } } }, "used twice" },
      { { intensity = -1, children = {} }, "intensity must be" },
      { { strategy = "simple_one_for_one", children = {} }, "at least one child spec" },
      { { children = {}, colour = "red" }, "unknown field 'colour'" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(halo.supervisor.start, c[1])
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
  end)
end)

describe("halo.supervisor with temporary siblings", function()
  it("does not restart a temporary child stopped by all_for_one", function()
    local r = helper.run(function()
      local log = {}
      local s = spec("all_for_one", log)
      s.children[1].restart = "permanent"
      s.children[3].restart = "temporary"
      local sup = assert(halo.supervisor.start(s))
      local a = halo.whereis("w_a")
      halo.send(a, "crash")
      assert(helper.wait_until(function() return halo.whereis("w_a") and halo.whereis("w_a") ~= a end))
      assert(helper.wait_until(function() return halo.whereis("w_b") end))
      halo.sleep(10)
      local kids = halo.supervisor.children(sup)
      local out = { kids = #kids, c = halo.whereis("w_c") }
      halo.supervisor.stop(sup)
      return out
    end)
    assert.equal(2, r.kids)
    assert.is_nil(r.c)
  end)
end)

describe("halo.stop_process", function()
  it("stops a child at once, kills one that traps the exit after the wait, and ignores the dead", function()
    local r = helper.run(function()
      local idle = assert(halo.spawn({ handle_message = function() end }))
      local stubborn = assert(halo.spawn(function()
        assert(helper.wait_until(function() return false end, 10000))
      end))
      local trapper = assert(halo.spawn(function()
        halo.trap_exit(true)
        local stop = false
        while not stop do
          local _, msg = halo.receive(5000)
          stop = msg == "quit"
        end
      end))
      local t0 = halo.now()
      local out = { idle = halo.stop_process(idle), idle_state = halo.process_state(idle),
                    stubborn = halo.stop_process(stubborn, 50), stubborn_ms = halo.now() - t0,
                    stubborn_state = halo.process_state(stubborn), again = halo.stop_process(idle) }
      -- not its parent: a process that traps exits keeps running until killed
      assert(halo.spawn(function() return halo.stop_process(trapper, 30) end, nil, { monitor = true }))
      local _, down = halo.receive(1000)
      out.trapper = down.reason
      out.trapper_state = halo.process_state(trapper)
      return out
    end)
    assert.equal("stopped", r.idle)
    assert.is_nil(r.idle_state)
    assert.equal("killed", r.stubborn)
    assert.is_true(r.stubborn_ms >= 50)
    assert.equal("stopped", r.again)
    assert.equal("killed", r.trapper) -- it trapped the exit: killed after the wait
    assert.is_nil(r.trapper_state)
  end)
end)
