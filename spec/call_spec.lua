local halo = require("halo")
local helper = require("helper")

-- Answers {"echo", v} at once, defers {"defer"} until a later {"release", v}
-- message, and {"slow", ms} after sleeping ms inside handle_call.
local server = {
  init = function(self) self.pending = {} end,
  handle_call = function(self, from, ref, req)
    if req[1] == "echo" then return req[2] end
    if req[1] == "slow" then
      halo.sleep(req[2])
      return "slept"
    end
    if req[1] == "defer" then
      self.pending[#self.pending + 1] = { from, ref }
      return nil
    end
  end,
  handle_message = function(self, from, msg)
    if msg[1] == "release" then
      for _, p in ipairs(self.pending) do
        local ok, err = halo.reply(p[1], p[2], msg[2])
        if msg.results then msg.results[#msg.results + 1] = ok or err end
      end
      self.pending = {}
    end
  end,
}

local function dead_pid()
  local pid = assert(halo.spawn(function() end))
  assert(helper.wait_until(function() return halo.process_state(pid) == nil end))
  return pid
end

describe("halo.call", function()
  it("takes math.huge as a timeout that does not expire, and refuses NaN", function()
    local r, nan_err, sleep_err = helper.run(function()
      local s = assert(halo.spawn(server))
      local r = halo.call(s, { "slow", 50 }, math.huge)
      local _, e1 = pcall(halo.call, s, { "echo", 1 }, 0 / 0)
      local _, e2 = pcall(halo.send_after, s, "x", -1)
      return r, e1, e2
    end)
    assert.are.equal("slept", r)
    assert.truthy(tostring(nan_err):find("ms >= 0", 1, true), nan_err)
    assert.truthy(tostring(sleep_err):find("ms >= 0", 1, true), sleep_err)
  end)

  it("returns the reply value, also a deferred one sent with halo.reply", function()
    local a, b, t = helper.run(function()
      local s = assert(halo.spawn(server))
      local a = halo.call(s, { "echo", { x = 1 } })
      local got
      assert(halo.spawn(function() got = { halo.call(s, { "defer" }) } end))
      assert(helper.wait_until(function() return halo.process_info(s).MessagesIn == 2 end))
      assert.is_nil(got)
      assert(halo.send(s, { "release", "later" }))
      assert(helper.wait_until(function() return got ~= nil end))
      local t = halo.call(s, { "echo", false })
      halo.kill(s)
      return a, got, t
    end)
    assert.same({ x = 1 }, a)
    assert.same({ "later" }, b)
    assert.is_false(t)
  end)

  it("times out with nil, ETIMEDOUT and counts a call error", function()
    local r = helper.run(function()
      local s = assert(halo.spawn(server))
      local before = halo.node_info().CallErrorsLocal
      local t0 = halo.now()
      local v, err, code = halo.call(s, { "defer" }, 30)
      local elapsed = halo.now() - t0
      local errors = halo.node_info().CallErrorsLocal - before
      halo.kill(s)
      return { v = v, err = err, code = code, elapsed = elapsed, errors = errors }
    end)
    assert.is_nil(r.v)
    assert.equal("ETIMEDOUT: timed out", r.err)
    assert.equal("ETIMEDOUT", r.code)
    assert.is_true(r.elapsed >= 29, "returned after " .. r.elapsed .. " ms")
    assert.is_true(r.elapsed < 1000)
    assert.equal(1, r.errors)
  end)

  it("puts the caller in state 'wait response' until the reply comes", function()
    local during, after = helper.run(function()
      local s = assert(halo.spawn(server))
      local done = false
      local caller = assert(halo.spawn(function()
        halo.call(s, { "slow", 40 })
        done = true
        halo.receive()
      end))
      local during = halo.process_state(caller)
      local info = halo.node_info().ProcessesWaitResponse
      assert(helper.wait_until(function() return done end))
      local after = halo.process_state(caller)
      halo.kill(caller)
      halo.kill(s)
      return { during, info }, after
    end)
    assert.equal("wait response", during[1])
    assert.equal(1, during[2])
    assert.equal("sleep", after)
  end)

  it("leaves other messages queued during the call and handles them after it", function()
    local log, queued = helper.run(function()
      local s = assert(halo.spawn(server))
      local log = {}
      local caller = assert(halo.spawn({
        handle_message = function(self, from, msg)
          if msg == "call" then
            log[#log + 1] = "call:" .. tostring(halo.call(s, { "defer" }))
          else
            log[#log + 1] = msg
          end
        end,
      }))
      assert(halo.send(caller, "call"))
      assert(helper.wait_until(function() return halo.process_state(caller) == "wait response" end))
      assert(halo.send(caller, "a"))
      assert(halo.send(caller, "b"))
      halo.sleep(10)
      local queued = { #log, halo.process_info(caller).MailboxQueues.Main }
      assert(halo.send(s, { "release", "r" }))
      assert(helper.wait_until(function() return #log == 3 end))
      halo.kill(caller)
      halo.kill(s)
      return log, queued
    end)
    assert.same({ 0, 2 }, queued)
    assert.same({ "call:r", "a", "b" }, log)
  end)

  it("drops a reply that comes after the timeout and counts it as late", function()
    local r = helper.run(function()
      local s = assert(halo.spawn(server))
      local before = halo.stats().late_replies
      local v, err = halo.call(s, { "defer" }, 20)
      local results = {}
      assert(halo.send(s, { "release", "too late", results = results }))
      assert(helper.wait_until(function() return #results == 1 end))
      -- The next call gets its own reply, not the late one.
      local v2 = halo.call(s, { "echo", "fresh" })
      local late = halo.stats().late_replies - before
      local late_info = halo.node_info().LateReplies
      halo.kill(s)
      return { v = v, err = err, reply = results[1], v2 = v2, late = late, late_info = late_info }
    end)
    assert.is_nil(r.v)
    assert.equal("ETIMEDOUT: timed out", r.err)
    assert.equal("EIGNORED: response ignored", r.reply)
    assert.equal("fresh", r.v2)
    assert.equal(1, r.late)
    assert.equal(1, r.late_info)
  end)

  it("refuses to call self (ENOTALLOWED) and unknown targets (ENOPROC)", function()
    local r = helper.run(function()
      local before = halo.node_info().CallErrorsLocal
      local out = {}
      out.self = { halo.call(halo.self(), "x") }
      out.pid = { halo.call(dead_pid(), "x") }
      out.name = { halo.call("nobody_has_this_name", "x") }
      out.errors = halo.node_info().CallErrorsLocal - before
      out.state = halo.process_state(halo.self())
      return out
    end)
    assert.same({ nil, "ENOTALLOWED: not allowed", "ENOTALLOWED" }, r.self)
    assert.same({ nil, "ENOPROC: unknown process", "ENOPROC" }, r.pid)
    assert.same({ nil, "ENOPROC: unknown process", "ENOPROC" }, r.name)
    assert.equal(3, r.errors)
    assert.equal("running", r.state)
  end)

  it("calls by registered name and by alias", function()
    local a, b = helper.run(function()
      local alias
      local s = assert(halo.spawn({
        init = function() alias = halo.alias() end,
        handle_call = function(_, _, _, req) return req * 2 end,
      }, nil, { name = "doubler" }))
      local a, b = halo.call("doubler", 4), halo.call(alias, 5)
      halo.kill(s)
      return a, b
    end)
    assert.equal(8, a)
    assert.equal(10, b)
  end)

  it("works from init: the child waits in 'wait response', then goes back to init", function()
    local r = helper.run(function()
      local s = assert(halo.spawn(server))
      local states, child = {}, nil
      local watcher = assert(halo.spawn(function()
        helper.wait_until(function()
          child = halo.process_list({ behavior = "calls_in_init" })[1]
          return child
        end)
        states[1] = halo.process_state(child.PID)
        helper.wait_until(function() return halo.process_state(child.PID) ~= "wait response" end, 1000, 1)
        states[2] = halo.process_state(child.PID)
      end))
      local got
      local pid = assert(halo.spawn({
        init = function(self) got = halo.call(s, { "slow", 30 }) end,
      }, nil, { behavior = "calls_in_init" }))
      states[3] = halo.process_state(pid)
      assert(helper.wait_until(function() return states[2] ~= nil end))
      local info = halo.process_info(pid)
      halo.kill(pid)
      halo.kill(s)
      return { states = states, got = got, init_time = info.InitTime }
    end)
    assert.equal("wait response", r.states[1])
    assert.is_true(r.states[2] == "init" or r.states[2] == "sleep", tostring(r.states[2]))
    assert.equal("sleep", r.states[3])
    assert.equal("slept", r.got)
    assert.is_true(r.init_time >= 30e6)
  end)

  it("stops a server whose handle_call returns a reason after replying", function()
    local reply, reason = helper.run(function()
      local s = assert(halo.spawn({ handle_call = function() return "bye", "done" end }))
      assert(halo.monitor(s))
      local reply = halo.call(s, "x")
      local from, down = halo.receive(1000)
      return reply, down.reason
    end)
    assert.equal("bye", reply)
    assert.equal("done", reason)
  end)

  -- Regression: a call whose callee ended before replying waited for the
  -- whole timeout; it now fails at once with the callee's exit reason.
  it("fails at once with ETERMINATED and the reason when the callee ends before replying", function()
    local r = helper.run(function()
      local s = assert(halo.spawn(server))
      local t0 = halo.now()
      local res
      assert(halo.spawn(function() res = { halo.call(s, { "defer" }, 5000) } end))
      assert(helper.wait_until(function() return halo.process_info(s).MessagesIn == 1 end))
      assert(halo.exit(s, { why = "gone" }))
      assert(helper.wait_until(function() return res ~= nil end, 3000))
      local elapsed = halo.now() - t0
      -- a callee killed while the caller waits, the reason a plain string
      local k = assert(halo.spawn(server))
      local res2
      assert(halo.spawn(function() res2 = { halo.call(k, { "defer" }, 5000) } end))
      assert(helper.wait_until(function() return halo.process_info(k).MessagesIn == 1 end))
      halo.kill(k)
      assert(helper.wait_until(function() return res2 ~= nil end, 3000))
      return { res = res, res2 = res2, elapsed = elapsed }
    end)
    assert.is_nil(r.res[1])
    assert.equal("ETERMINATED", r.res[3])
    assert.same({ why = "gone" }, r.res[4])
    assert.matches("^ETERMINATED: process terminated", r.res[2])
    assert.is_true(r.elapsed < 1000, "returned after " .. r.elapsed .. " ms")
    assert.same({ nil, "ETERMINATED: process terminated: kill", "ETERMINATED", "kill" }, r.res2)
  end)
end)
