local halo = require("halo")
local helper = require("helper")

-- A behavior that records what handle_message sees into args.log; the
-- message "hold" keeps it inside that callback (sleeping) until args.gate.open.
local recorder = {
  init = function(self, args)
    self.log, self.gate = args.log, args.gate
    if args.watch then assert(halo.monitor(args.watch)) end
  end,
  handle_message = function(self, from, msg)
    if msg == "hold" then
      self.gate.held = true
      while not self.gate.open do halo.sleep(2) end
      return
    end
    self.log[#self.log + 1] = msg
  end,
}

local function idle() return { handle_message = function() end } end

-- Spawns recorder and parks it inside a callback; returns pid, log, gate.
local function spawn_held(opts, watch)
  local log, gate = {}, {}
  local pid = assert(halo.spawn(recorder, { log = log, gate = gate, watch = watch }, opts))
  assert(halo.send(pid, "hold"))
  assert(helper.wait_until(function() return gate.held end))
  return pid, log, gate
end

describe("a mailbox", function()
  it("drains urgent (exit) before system (down) before main (send), enqueued in reverse", function()
    local order, queues = helper.run(function()
      local watched = assert(halo.spawn(idle()))
      local r, log, gate = spawn_held({ trap_exit = true }, watched)
      assert(halo.send(r, "m1"))
      assert(halo.send(r, "m2"))
      assert(halo.kill(watched))                     -- down message, system queue
      -- An exit signal from a process other than r's parent, urgent queue.
      assert(halo.spawn(function(target) assert(halo.exit(target, "custom")) end, r))
      assert(halo.send(r, "m3"))
      local q = halo.process_info(r).MailboxQueues
      gate.open = true
      assert(helper.wait_until(function() return #log == 5 end))
      assert(halo.kill(r))
      local kinds = {}
      for i, m in ipairs(log) do
        kinds[i] = type(m) == "table" and (m.kind .. ":" .. tostring(m.reason)) or m
      end
      return kinds, q
    end)
    assert.same({ "exit:custom", "down:kill", "m1", "m2", "m3" }, order)
    assert.equal(1, queues.Urgent)
    assert.equal(1, queues.System)
    assert.equal(3, queues.Main)
    assert.equal(0, queues.Log)
    assert.is_true(queues.LatencyMain > queues.LatencyUrgent)
  end)

  it("takes a later exit signal ahead of earlier down messages and sends", function()
    local order = helper.run(function()
      local a, b = assert(halo.spawn(idle())), assert(halo.spawn(idle()))
      local r, log, gate = spawn_held({ trap_exit = true }, a)
      assert(halo.send(r, "m1"))
      assert(halo.kill(a))
      assert(halo.spawn(function(target) halo.exit(target, "first") end, r))
      assert(halo.send(r, "m2"))
      assert(halo.spawn(function(target) halo.exit(target, "second") end, r))
      gate.open = true
      assert(helper.wait_until(function() return #log == 5 end))
      halo.kill(b)
      halo.kill(r)
      local out = {}
      for i, m in ipairs(log) do out[i] = type(m) == "table" and m.reason or m end
      return out
    end)
    assert.same({ "first", "second", "kill", "m1", "m2" }, order)
  end)

  it("keeps each sender's messages in order with many senders interleaved", function()
    local ok, count = helper.run(function()
      local log, gate = {}, {}
      local r = assert(halo.spawn(recorder, { log = log, gate = gate }))
      local senders, per = 8, 200
      for s = 1, senders do
        assert(halo.spawn(function()
          for i = 1, per do
            assert(halo.send(r, { s = s, i = i }))
            if i % (s + 2) == 0 then halo.yield() end
          end
        end))
      end
      assert(helper.wait_until(function() return #log == senders * per end))
      local last, interleaved, prev = {}, false, nil
      for _, m in ipairs(log) do
        if (last[m.s] or 0) + 1 ~= m.i then return false, "sender " .. m.s .. " out of order at " .. m.i end
        last[m.s] = m.i
        if prev and prev ~= m.s and last[prev] < per then interleaved = true end
        prev = m.s
      end
      assert(interleaved, "the senders never interleaved: the spec tests nothing")
      halo.kill(r)
      return true, #log
    end)
    assert.is_true(ok)
    assert.equal(1600, count)
  end)

  it("rejects sends past mailbox_size with EFULL and counts a send error", function()
    local res = helper.run(function()
      local r, _, gate = spawn_held({ mailbox_size = 2 })
      local before = halo.node_info().SendErrorsLocal
      assert(halo.send(r, 1))
      assert(halo.send(r, 2))
      local ok, err, code = halo.send(r, 3)
      local errors = halo.node_info().SendErrorsLocal - before
      gate.open = true
      halo.kill(r)
      return { ok = ok, err = err, code = code, errors = errors }
    end)
    assert.is_nil(res.ok)
    assert.equal("EFULL: process mailbox is full", res.err)
    assert.equal("EFULL", res.code)
    assert.equal(1, res.errors)
  end)

  it("caps each queue separately: calls and exit signals fail with EFULL at once", function()
    local r = helper.run(function()
      local r, _, gate = spawn_held({ mailbox_size = 1, trap_exit = true })
      local out = { send = { halo.send(r, 1) } }
      local t = halo.now()
      out.call = { halo.call(r, "q", 1000) }
      out.call_ms = halo.now() - t
      local exits = {}
      assert(halo.spawn(function()
        exits[1] = { halo.exit(r, "a") }
        exits[2] = { halo.exit(r, "b") }
      end))
      out.exits = exits
      out.queues = halo.process_info(r).MailboxQueues
      gate.open = true
      halo.kill(r)
      return out
    end)
    assert.same({ true }, r.send)
    assert.same({ nil, "EFULL: process mailbox is full", "EFULL" }, r.call)
    assert.is_true(r.call_ms < 100)
    assert.same({ true }, r.exits[1])
    assert.equal("EFULL", r.exits[2][3])
    assert.equal(1, r.queues.Main)
    assert.equal(1, r.queues.Urgent)
  end)
end)
