local halo = require("halo")
local helper = require("helper")

-- Ends with msg when sent {"stop", reason}; errors on {"error", text}; logs
-- everything else (exit signals when trapping, down messages) to args.log.
local worker = {
  init = function(self, args)
    self.log = args and args.log or {}
    if args and args.link then assert(halo.link(args.link)) end
    if args and args.monitor then assert(halo.monitor(args.monitor)) end
  end,
  handle_message = function(self, from, msg)
    if type(msg) == "table" and msg[1] == "stop" then return msg[2] end
    if type(msg) == "table" and msg[1] == "error" then error(msg[2], 0) end
    self.log[#self.log + 1] = { from = from, msg = msg }
  end,
  handle_call = function(self, from, ref, req)
    if req[1] == "spawn" then return (halo.spawn(req[2], req[3], req[4])) end
    if req[1] == "try_spawn" then return { halo.spawn(req[2], req[3], req[4]) } end
    if req[1] == "link" then return { halo.link(req[2]) } end
    if req[1] == "unlink" then return { halo.unlink(req[2]) } end
    if req[1] == "monitor" then return { halo.monitor(req[2]) } end
    if req[1] == "demonitor" then return { halo.demonitor(req[2]) } end
    if req[1] == "exit" then return { halo.exit(req[2], req[3]) } end
  end,
}

-- Waits for the down message of pid in the entry's own mailbox.
local function await_down(pid, timeout)
  while true do
    local from, msg = halo.receive(timeout or 2000)
    assert(from, "no down message for " .. pid)
    if halo.is_down(msg) and msg.pid == pid then return msg end
  end
end

local function gone(pid) return halo.process_state(pid) == nil end

describe("links", function()
  it("are one-directional: A linked to B ends with B, B outlives A", function()
    local r = helper.run(function()
      local b = assert(halo.spawn(worker))
      local a = assert(halo.spawn(worker, { link = b }))
      local info_a = halo.process_info(a)
      assert(halo.monitor(a))
      assert(halo.monitor(b))
      assert(halo.send(a, { "stop", "a_done" }))
      local down_a = await_down(a)
      local b_alive = halo.process_state(b)
      -- The other direction: a fresh A2 linked to B goes down with B.
      local a2 = assert(halo.spawn(worker, { link = b }))
      assert(halo.monitor(a2))
      assert(halo.send(b, { "stop", "b_done" }))
      local down_b, down_a2 = await_down(b), await_down(a2)
      return { links = info_a.LinksPID, b = b, down_a = down_a.reason, b_alive = b_alive,
               down_b = down_b.reason, down_a2 = down_a2.reason }
    end)
    assert.same({ r.b }, r.links)
    assert.equal("a_done", r.down_a)
    assert.equal("sleep", r.b_alive)
    assert.equal("b_done", r.down_b)
    assert.equal("b_done", r.down_a2)
  end)

  for _, reason in ipairs({ "normal", "shutdown", "custom_reason", { code = 7 } }) do
    it("propagate the target's reason " .. (type(reason) == "table" and "(a table)" or "'" .. reason .. "'"), function()
      local got = helper.run(function()
        local b = assert(halo.spawn(worker))
        local a = assert(halo.spawn(worker, { link = b }))
        assert(halo.monitor(a))
        assert(halo.send(b, { "stop", reason }))
        return await_down(a).reason
      end)
      assert.same(reason, got)
    end)
  end

  it("propagate an error reason raised in the target's callback", function()
    local reason = helper.run(function()
      local b = assert(halo.spawn(worker))
      local a = assert(halo.spawn(worker, { link = b }))
      assert(halo.monitor(a))
      assert(halo.send(b, { "error", "kaput" }))
      return await_down(a).reason
    end)
    assert.equal("kaput", reason)
  end)

  it("refuse duplicates (ETARGETEXIST), self (ENOTALLOWED); unlink stops propagation", function()
    local r = helper.run(function()
      local b = assert(halo.spawn(worker))
      local a = assert(halo.spawn(worker))
      local out = {}
      out.first = halo.call(a, { "link", b })
      out.dup = halo.call(a, { "link", b })
      out.self = halo.call(a, { "link", a })
      out.unlink = halo.call(a, { "unlink", b })
      out.unlink2 = halo.call(a, { "unlink", b })
      out.links = halo.process_info(a).LinksPID
      assert(halo.monitor(b))
      assert(halo.send(b, { "stop", "bye" }))
      await_down(b)
      halo.sleep(5)
      out.a = halo.process_state(a)
      halo.kill(a)
      return out
    end)
    assert.same({ true }, r.first)
    assert.same({ nil, "ETARGETEXIST: target is already exist", "ETARGETEXIST" }, r.dup)
    assert.same({ nil, "ENOTALLOWED: not allowed", "ENOTALLOWED" }, r.self)
    assert.same({ true }, r.unlink)
    assert.same({ nil, "ETARGETUNKNOWN: unknown target", "ETARGETUNKNOWN" }, r.unlink2)
    assert.same({}, r.links)
    assert.equal("sleep", r.a)
  end)

  it("become messages to handle_message when the watcher traps exits", function()
    local r = helper.run(function()
      local log = {}
      local b = assert(halo.spawn(worker))
      local a = assert(halo.spawn(worker, { link = b, log = log }, { trap_exit = true }))
      assert(halo.send(b, { "stop", "trapped_reason" }))
      assert(helper.wait_until(function() return #log == 1 end))
      -- An explicit exit signal from a non-parent is trapped too.
      local c = assert(halo.spawn(worker))
      local sent = halo.call(c, { "exit", a, "explicit" })
      assert(helper.wait_until(function() return #log == 2 end))
      local state = halo.process_state(a)
      halo.kill(a)
      halo.kill(c)
      return { log = log, b = b, c = c, state = state, sent = sent }
    end)
    assert.same({ true }, r.sent)
    assert.equal("sleep", r.state)
    assert.equal(r.b, r.log[1].from)
    assert.same({ kind = "exit", pid = r.b, reason = "trapped_reason" }, r.log[1].msg)
    assert.same({ kind = "exit", pid = r.c, reason = "explicit" }, r.log[2].msg)
  end)

  it("are trapped or not as halo.trap_exit switches at run time", function()
    local r = helper.run(function()
      local log = {}
      local flags = {}
      local a = assert(halo.spawn({
        handle_message = function(self, from, msg)
          if msg == "trap" then flags[#flags + 1] = halo.trap_exit(true) return end
          if msg == "untrap" then flags[#flags + 1] = halo.trap_exit(false) return end
          log[#log + 1] = msg
        end,
      }))
      assert(halo.monitor(a))
      local c = assert(halo.spawn(worker))
      halo.send(a, "trap")
      assert(helper.wait_until(function() return #flags == 1 end))
      local trapped = halo.process_info(a).TrapExit
      halo.call(c, { "exit", a, "first" })
      assert(helper.wait_until(function() return #log == 1 end))
      halo.send(a, "untrap")
      assert(helper.wait_until(function() return #flags == 2 end))
      halo.call(c, { "exit", a, "second" })
      local down = await_down(a)
      halo.kill(c)
      return { flags = flags, trapped = trapped, log = log, down = down.reason }
    end)
    assert.same({ false, true }, r.flags)
    assert.is_true(r.trapped)
    assert.equal("first", r.log[1].reason)
    assert.equal("second", r.down)
  end)

  it("end a process that does not trap with the exit signal's reason", function()
    local reason = helper.run(function()
      local a = assert(halo.spawn(worker))
      assert(halo.monitor(a))
      local c = assert(halo.spawn(worker))
      assert(halo.call(c, { "exit", a, "go_away" })[1])
      local down = await_down(a)
      halo.kill(c)
      return down.reason
    end)
    assert.equal("go_away", reason)
  end)

  it("refuse exit signals to self and to the parent", function()
    local r = helper.run(function()
      local p = assert(halo.spawn(worker))
      local c = halo.call(p, { "spawn", worker })
      local parent = halo.process_info(c).Parent
      local to_self = halo.call(c, { "exit", c, "x" })
      local to_parent = halo.call(c, { "exit", p, "x" })
      halo.kill(c)
      halo.kill(p)
      return { parent = parent, p = p, to_self = to_self, to_parent = to_parent }
    end)
    assert.equal(r.p, r.parent)
    assert.equal("ENOTALLOWED", r.to_self[3])
    assert.equal("ENOTALLOWED", r.to_parent[3])
  end)
end)

describe("exit signals from the parent", function()
  it("cannot be trapped: halo.exit from the parent ends a trapping child", function()
    local r = helper.run(function()
      local log = {}
      local c = assert(halo.spawn(worker, { log = log }, { trap_exit = true }))
      assert(halo.monitor(c))
      assert(halo.exit(c, "from_parent"))
      return { reason = await_down(c).reason, log = #log }
    end)
    assert.equal("from_parent", r.reason)
    assert.equal(0, r.log)
  end)

  it("cannot be trapped: link_parent ends a trapping child with the parent", function()
    local r = helper.run(function()
      local log = {}
      local p = assert(halo.spawn(worker))
      local c = halo.call(p, { "spawn", worker, { log = log }, { link_parent = true, trap_exit = true } })
      local links = halo.process_info(c).LinksPID
      assert(halo.monitor(c))
      assert(halo.send(p, { "stop", "parent_gone" }))
      return { reason = await_down(c).reason, log = #log, links = links, p = p }
    end)
    assert.same({ r.p }, r.links)
    assert.equal("parent_gone", r.reason)
    assert.equal(0, r.log)
  end)
end)

describe("spawn link options", function()
  it("link_child: the parent gets the child's exit; the child outlives the parent", function()
    local r = helper.run(function()
      local log = {}
      local p = assert(halo.spawn(worker, { log = log }, { trap_exit = true }))
      local c = halo.call(p, { "spawn", worker, nil, { link_child = true } })
      local plinks, clinks = halo.process_info(p).LinksPID, halo.process_info(c).LinksPID
      assert(halo.send(c, { "stop", "child_done" }))
      assert(helper.wait_until(function() return #log == 1 end))
      local msg = log[1].msg
      -- Parent ends first: the child is not linked to it and survives.
      local c2 = halo.call(p, { "spawn", worker, nil, { link_child = true } })
      assert(halo.send(p, { "stop", "parent_done" }))
      assert(helper.wait_until(function() return gone(p) end))
      halo.sleep(5)
      local c2_state = halo.process_state(c2)
      halo.kill(c2)
      return { plinks = plinks, clinks = clinks, c = c, msg = msg, c2_state = c2_state }
    end)
    assert.same({ r.c }, r.plinks)
    assert.same({}, r.clinks)
    assert.same({ kind = "exit", pid = r.c, reason = "child_done" }, r.msg)
    assert.equal("sleep", r.c2_state)
  end)

  it("link: both directions", function()
    local r = helper.run(function()
      local p = assert(halo.spawn(worker))
      local c = halo.call(p, { "spawn", worker, nil, { link = true } })
      local plinks, clinks = halo.process_info(p).LinksPID, halo.process_info(c).LinksPID
      assert(halo.monitor(p))
      assert(halo.send(c, { "stop", "either" }))
      local down = await_down(p)
      -- And the other way round.
      local p2 = assert(halo.spawn(worker))
      local c2 = halo.call(p2, { "spawn", worker, nil, { link = true } })
      assert(halo.monitor(c2))
      assert(halo.send(p2, { "stop", "other" }))
      local down2 = await_down(c2)
      return { plinks = plinks, clinks = clinks, p = p, c = c, down = down.reason, down2 = down2.reason }
    end)
    assert.same({ r.c }, r.plinks)
    assert.same({ r.p }, r.clinks)
    assert.equal("either", r.down)
    assert.equal("other", r.down2)
  end)
end)

describe("a failed spawn with link options", function()
  for _, opt in ipairs({ "link_child", "link" }) do
    it("does not end the spawner (" .. opt .. ")", function()
      local r = helper.run(function()
        local p = assert(halo.spawn(worker))
        assert(halo.monitor(p))
        local res = halo.call(p, { "try_spawn", { init = function() error("bad init", 0) end }, nil, { [opt] = true } })
        local late = halo.call(p, { "try_spawn", { init = function()
          halo.sleep(5)
          error("late bad init", 0)
        end }, nil, { [opt] = true } })
        halo.sleep(10)
        local out = { res = res, late = late, state = halo.process_state(p), links = halo.process_info(p).LinksPID }
        -- A slow init that succeeds still gets the link.
        local c = halo.call(p, { "spawn", { init = function() halo.sleep(5) end }, nil, { [opt] = true } })
        out.c, out.links2 = c, halo.process_info(p).LinksPID
        halo.kill(c)
        out.down = await_down(p).reason
        return out
      end)
      assert.same({ nil, "EINIT: init failed: bad init", "EINIT" }, r.res)
      assert.same({ nil, "EINIT: init failed: late bad init", "EINIT" }, r.late)
      assert.equal("sleep", r.state)
      assert.same({}, r.links)
      assert.same({ r.c }, r.links2)
      assert.equal("kill", r.down)
    end)
  end
end)

describe("monitors", function()
  it("deliver {kind='down', pid, reason} to handle_message from the target", function()
    local r = helper.run(function()
      local log = {}
      local b = assert(halo.spawn(worker))
      local a = assert(halo.spawn(worker, { monitor = b, log = log }))
      local mons = halo.process_info(a).MonitorsPID
      assert(halo.send(b, { "stop", "finished" }))
      assert(helper.wait_until(function() return #log == 1 end))
      local after = halo.process_info(a).MonitorsPID
      local state = halo.process_state(a)
      halo.kill(a)
      return { log = log, b = b, mons = mons, after = after, state = state }
    end)
    assert.same({ r.b }, r.mons)
    assert.same({}, r.after)
    assert.equal(r.b, r.log[1].from)
    assert.same({ kind = "down", pid = r.b, reason = "finished" }, r.log[1].msg)
    assert.is_true(halo.is_down(r.log[1].msg))
    assert.equal("sleep", r.state)
  end)

  it("stop with demonitor; duplicates give ETARGETEXIST", function()
    local r = helper.run(function()
      local log = {}
      local b = assert(halo.spawn(worker))
      local a = assert(halo.spawn(worker, { log = log }))
      local out = {}
      out.first = halo.call(a, { "monitor", b })
      out.dup = halo.call(a, { "monitor", b })
      out.demon = halo.call(a, { "demonitor", b })
      out.demon2 = halo.call(a, { "demonitor", b })
      assert(halo.monitor(b))
      assert(halo.send(b, { "stop", "x" }))
      await_down(b)
      halo.sleep(5)
      out.log = #log
      halo.kill(a)
      return out
    end)
    assert.same({ true }, r.first)
    assert.equal("ETARGETEXIST", r.dup[3])
    assert.same({ true }, r.demon)
    assert.equal("ETARGETUNKNOWN", r.demon2[3])
    assert.equal(0, r.log)
  end)

  it("are dropped silently when the watcher ends first", function()
    local r = helper.run(function()
      local b = assert(halo.spawn(worker))
      local a = assert(halo.spawn(worker, { monitor = b }))
      assert(halo.send(a, { "stop", "bye" }))
      assert(helper.wait_until(function() return gone(a) end))
      local info = halo.process_info(b)
      halo.kill(b)
      return info.State
    end)
    assert.equal("sleep", r)
  end)

  it("refuse targets that are gone with ENOPROC", function()
    local r = helper.run(function()
      local b = assert(halo.spawn(worker))
      assert(halo.send(b, { "stop", "x" }))
      assert(helper.wait_until(function() return gone(b) end))
      return { mon = { halo.monitor(b) }, link = { halo.link(b) } }
    end)
    assert.equal("ENOPROC", r.mon[3])
    assert.equal("ENOPROC", r.link[3])
  end)
end)
