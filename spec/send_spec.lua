local halo = require("halo")
local helper = require("helper")

-- halo.send of a number to a local process goes through LuaJIT's FFI; every
-- other message, and every failure, goes through core.process.send. These specs pin
-- down that both paths behave as one.

local collector = {
  init = function(self, log) self.log = log end,
  handle_message = function(self, from, msg) self.log[#self.log + 1] = { from, msg } end,
}

describe("halo.send", function()
  it("keeps one sender's numbers and tables in order, to a PID, a name and an alias", function()
    local r = helper.run(function()
      local log = {}
      local pid = assert(halo.spawn(collector, log, { name = "collector" }))
      local alias = assert(halo.alias())
      local relay = assert(halo.spawn({
        handle_message = function(_, _, m) assert(halo.send(pid, m)) end,
      }))
      assert(halo.send(pid, 1))
      assert(halo.send(pid, { 2 }))
      assert(halo.send("collector", 3))
      assert(halo.send(pid, "four"))
      assert(halo.send(pid, 5.5))
      assert(halo.send(relay, 6))
      assert(halo.send(alias, 7)) -- to itself, through its alias
      local _, seven = halo.receive(1000)
      helper.wait_until(function() return #log == 6 end)
      local me = halo.self()
      local out = { log = log, me = me, relay = relay, seven = seven,
                    out = halo.process_info(me).MessagesOut, inn = halo.process_info(pid).MessagesIn }
      halo.kill(pid)
      halo.kill(relay)
      return out
    end)
    local seen = {}
    for i, e in ipairs(r.log) do
      seen[i] = type(e[2]) == "table" and e[2][1] or e[2]
      assert.equal(i == 6 and r.relay or r.me, e[1])
    end
    assert.same({ 1, 2, 3, "four", 5.5, 6 }, seen)
    assert.equal(7, r.seven)
    assert.equal(7, r.out)
    assert.equal(6, r.inn)
  end)

  it("reports a number sent to an ended process like any other message, counted once", function()
    local r = helper.run(function()
      local pid = assert(halo.spawn(function() end, nil, { monitor = true }))
      halo.receive(1000)
      local before = halo.node_info().SendErrorsLocal
      local out = { number = { halo.send(pid, 1) }, table = { halo.send(pid, {}) },
                    name = { halo.send("nobody", 2) } }
      out.errors = halo.node_info().SendErrorsLocal - before
      out.sent = halo.process_info(halo.self()).MessagesOut
      return out
    end)
    assert.same({ nil, "ENOPROC: unknown process", "ENOPROC" }, r.number)
    assert.same(r.number, r.table)
    assert.same(r.number, r.name)
    assert.equal(3, r.errors)
    assert.equal(0, r.sent)
  end)

  it("sends a number to another node's PID through the remote path", function()
    local r = helper.run(function()
      local before = halo.node_info().SendErrorsRemote
      local res = { halo.send("<0000ABCD.0.7>", 1) }
      return { res = res, errors = halo.node_info().SendErrorsRemote - before }
    end)
    assert.is_nil(r.res[1])
    assert.equal("ENOCONN", r.res[3])
    assert.equal(1, r.errors)
  end)

  it("raises on a malformed target whatever the message", function()
    local r = helper.run(function()
      return { { pcall(halo.send, "<12.x>", 1) }, { pcall(halo.send, "", 1) }, { pcall(halo.send, {}, 1) } }
    end)
    assert.is_false(r[1][1])
    assert.matches("incorrect PID format", r[1][2])
    assert.is_false(r[2][1])
    assert.matches("empty process name", r[2][2])
    assert.is_false(r[3][1])
    assert.matches("string expected", r[3][2])
  end)
end)
