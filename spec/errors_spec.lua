local halo = require("halo")
local helper = require("helper")

local await_down = helper.await_down

-- Records terminate reasons into the shared table args.reasons.
local fragile = {
  init = function(self, args) self.reasons = args.reasons end,
  handle_message = function(self, from, msg)
    if msg[1] == "error" then error(msg[2], msg[3]) end
    if msg[1] == "stop" then return msg[2] end
    if msg[1] == "yield" then coroutine.yield() end
  end,
  handle_call = function(self, from, ref, req) return req end,
  terminate = function(self, reason) self.reasons[#self.reasons + 1] = reason end,
}

describe("an error in a callback", function()
  it("ends only that process, with the error as the reason", function()
    local r = helper.run(function()
      local reasons = {}
      local a = assert(halo.spawn(fragile, { reasons = reasons }))
      local b = assert(halo.spawn(fragile, { reasons = reasons }))
      assert(halo.monitor(a))
      assert(halo.send(a, { "error", "exploded" }))
      local down = await_down(a)
      local out = { down = down.reason, reasons = { unpack(reasons) } }
      out.b_state = halo.process_state(b)
      out.b_reply = halo.call(b, "still here")
      out.spawn = halo.spawn(fragile, { reasons = {} }) ~= nil
      halo.kill(b)
      return out
    end)
    assert.matches("^spec/errors_spec%.lua:%d+: exploded$", r.down)
    assert.same({ r.down }, r.reasons)
    assert.equal("sleep", r.b_state)
    assert.equal("still here", r.b_reply)
    assert.is_true(r.spawn)
  end)

  it("passes a non-string error value through as the reason", function()
    local r = helper.run(function()
      local reasons = {}
      local a = assert(halo.spawn(fragile, { reasons = reasons }))
      assert(halo.monitor(a))
      local err = { code = 42 }
      assert(halo.send(a, { "error", err }))
      return { down = await_down(a).reason, same = reasons[1] == err, err = err }
    end)
    assert.same({ code = 42 }, r.down)
    assert.is_true(r.same)
  end)

  it("ends a function process with its error", function()
    local reason = helper.run(function()
      local p = assert(halo.spawn(function()
        halo.receive()
        error("fn failed", 0)
      end))
      assert(halo.monitor(p))
      halo.send(p, "go")
      return await_down(p).reason
    end)
    assert.equal("fn failed", reason)
  end)

  it("ends a process that calls coroutine.yield directly", function()
    local reason = helper.run(function()
      local a = assert(halo.spawn(fragile, { reasons = {} }))
      assert(halo.monitor(a))
      halo.send(a, { "yield" })
      return await_down(a).reason
    end)
    assert.matches("coroutine.yield called directly", reason)
  end)

  it("keeps the node running when terminate itself fails", function()
    local r = helper.run(function()
      local a = assert(halo.spawn({
        handle_message = function() return "bye" end,
        terminate = function() error("terminate failed") end,
      }))
      assert(halo.monitor(a))
      halo.send(a, "x")
      local down = await_down(a)
      local b = assert(halo.spawn({ handle_call = function(_, _, _, q) return q + 1 end }))
      local v = halo.call(b, 1)
      halo.kill(b)
      return { down = down.reason, v = v }
    end)
    assert.equal("bye", r.down)
    assert.equal(2, r.v)
  end)
end)

describe("terminate", function()
  it("is called with a returned reason and with 'shutdown' when the node stops", function()
    local reasons_a, reasons_b = {}, {}
    helper.run(function()
      local a = assert(halo.spawn(fragile, { reasons = reasons_a }))
      assert(halo.spawn(fragile, { reasons = reasons_b }))
      assert(halo.monitor(a))
      halo.send(a, { "stop", "my_reason" })
      await_down(a)
    end)
    assert.same({ "my_reason" }, reasons_a)
    assert.same({ "shutdown" }, reasons_b)
  end)
end)

describe("an error in init", function()
  it("makes halo.spawn return nil, 'EINIT: init failed: ...'", function()
    local r = helper.run(function()
      local reasons = {}
      local before = halo.node_info()
      local pid, err, code = halo.spawn({
        init = function() error("bad config", 0) end,
        terminate = function(_, reason) reasons[#reasons + 1] = reason end,
      }, nil, { name = "broken" })
      local after = halo.node_info()
      return { pid = pid, err = err, code = code, reasons = reasons,
               failed = after.ProcessesSpawnFailed - before.ProcessesSpawnFailed,
               spawned = after.ProcessesSpawned - before.ProcessesSpawned,
               total = after.ProcessesTotal - before.ProcessesTotal,
               whereis = { halo.whereis("broken") } }
    end)
    assert.is_nil(r.pid)
    assert.equal("EINIT: init failed: bad config", r.err)
    assert.equal("EINIT", r.code)
    assert.same({ "bad config" }, r.reasons)
    assert.equal(1, r.failed)
    assert.equal(0, r.spawned)
    assert.equal(0, r.total)
    assert.equal("ENOPROC", r.whereis[3])
  end)

  it("is reported the same way when init fails after waiting", function()
    local r = helper.run(function()
      local before = halo.node_info()
      local pid, err, code = halo.spawn({
        init = function()
          halo.sleep(5)
          error("late failure", 0)
        end,
      })
      local after = halo.node_info()
      return { pid = pid, err = err, code = code,
               failed = after.ProcessesSpawnFailed - before.ProcessesSpawnFailed,
               total = after.ProcessesTotal - before.ProcessesTotal,
               state = halo.process_state(halo.self()) }
    end)
    assert.is_nil(r.pid)
    assert.equal("EINIT: init failed: late failure", r.err)
    assert.equal("EINIT", r.code)
    assert.equal(1, r.failed)
    assert.equal(0, r.total)
    assert.equal("running", r.state)
  end)

  it("times out after init_timeout and kills the child", function()
    local r = helper.run(function()
      local finished = false
      local pid, err, code = halo.spawn({
        init = function()
          halo.sleep(200)
          finished = true
        end,
      }, nil, { init_timeout = 20, behavior = "too_slow" })
      assert(helper.wait_until(function() return #halo.process_list({ behavior = "too_slow" }) == 0 end))
      halo.sleep(5)
      return { pid = pid, err = err, code = code, finished = finished }
    end)
    assert.is_nil(r.pid)
    assert.equal("ETIMEDOUT: timed out", r.err)
    assert.equal("ETIMEDOUT", r.code)
    assert.is_false(r.finished)
  end)

  it("tells a monitor set with the spawn option about the failure", function()
    local r = helper.run(function()
      local pid, err = halo.spawn({ init = function() error("nope", 0) end }, nil, { monitor = true })
      local from, msg = halo.receive(1000)
      return { pid = pid, msg = msg }
    end)
    assert.is_nil(r.pid)
    assert.equal("down", r.msg.kind)
    assert.equal("nope", r.msg.reason)
  end)
end)
