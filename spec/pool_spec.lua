local halo = require("halo")
local helper = require("helper")

-- Workers log (worker pid, sender, message) and answer calls with their own PID.
local function worker(log)
  return {
    name = "spec.pool_worker",
    handle_message = function(_, from, msg)
      if msg == "block" then halo.sleep(300) return end
      log[#log + 1] = { halo.self(), from, msg }
    end,
    handle_call = function(_, from, _, req)
      if req == "crash" then error("worker crashed") end
      return { halo.self(), from, req }
    end,
  }
end

describe("halo.pool", function()
  it("forwards messages round-robin keeping the sender, and calls reply from the worker", function()
    local r = helper.run(function()
      local log = {}
      local pool = assert(halo.pool.start({ size = 3, worker = worker(log) }, { name = "pool" }))
      local workers = halo.pool.info(pool).workers
      for i = 1, 6 do assert(halo.send(pool, i)) end
      assert(halo.send("pool", { 7 }))
      assert(helper.wait_until(function() return #log == 7 end))
      local reply = halo.call(pool, "hi")
      local out = { log = log, workers = workers, me = halo.self(), reply = reply,
                    insp = halo.inspect(pool), info = halo.process_info(pool) }
      halo.kill(pool)
      return out
    end)
    assert.equal(3, #r.workers)
    local by_msg = {}
    for _, e in ipairs(r.log) do
      assert.equal(r.me, e[2])
      by_msg[type(e[3]) == "table" and e[3][1] or e[3]] = e[1]
    end
    for i = 1, 7 do assert.equal(r.workers[(i - 1) % 3 + 1], by_msg[i]) end
    assert.same({ r.workers[2], r.me, "hi" }, r.reply)
    assert.equal("3", r.insp.pool_size)
    assert.equal("spec.pool_worker", r.insp.worker_behavior)
    assert.equal("8", r.insp.messages_forwarded)
    assert.equal("0", r.insp.messages_unhandled)
    assert.equal("3", r.insp.workers_alive)
    assert.equal("halo.pool", r.info.Behavior)
    assert.equal(9, r.info.MessagesIn) -- 8 passed through, 1 inspect
  end)

  it("skips full workers and counts what no worker could take", function()
    local r = helper.run(function()
      local log = {}
      local pool = assert(halo.pool.start({ size = 2, worker = worker(log), worker_mailbox_size = 1 }))
      -- each worker is busy with one "block" and holds one more message
      for _ = 1, 2 do assert(halo.send(pool, "block")) end
      halo.sleep(10)
      local sent = {}
      for i = 1, 5 do sent[i] = halo.send(pool, i) end -- 2 fit, 3 are dropped
      local call = { halo.call(pool, "late", 100) }   -- dropped too: the caller times out
      local insp = halo.inspect(pool)
      assert(helper.wait_until(function() return #log == 2 end, 2000))
      halo.kill(pool)
      return { sent = sent, insp = insp, log = log, call = call }
    end)
    assert.same({ true, true, true, true, true }, r.sent) -- the sender is never told
    assert.equal("4", r.insp.messages_unhandled)
    assert.equal("4", r.insp.messages_forwarded)
    assert.equal("1", r.insp.worker_mailbox_size)
    assert.equal(2, #r.log)
    assert.equal("ETIMEDOUT", r.call[3])
  end)

  it("replaces a worker that ends and keeps spreading over all of them", function()
    local r = helper.run(function()
      local log = {}
      local pool = assert(halo.pool.start({ size = 2, worker = worker(log) }))
      local before = halo.pool.info(pool).workers
      local crashed = { halo.call(pool, "crash", 5000) } -- worker 1 dies inside the call: the call ends at once
      assert(helper.wait_until(function() return halo.pool.info(pool).restarts == 1 end))
      local after = halo.pool.info(pool).workers
      for i = 1, 4 do halo.send(pool, i) end
      assert(helper.wait_until(function() return #log == 4 end))
      local seen = {}
      for _, e in ipairs(log) do seen[e[1]] = (seen[e[1]] or 0) + 1 end
      local out = { before = before, after = after, seen = seen, crashed = crashed,
                    insp = halo.inspect(pool) }
      halo.kill(pool)
      return out
    end)
    assert.is_nil(r.crashed[1])
    assert.equal("ETERMINATED", r.crashed[3]) -- not a timeout: the caller waited on that worker
    assert.not_equal(r.before[1], r.after[1])
    assert.equal(r.before[2], r.after[2])
    assert.equal(2, r.seen[r.after[1]])
    assert.equal(2, r.seen[r.after[2]])
    assert.equal("1", r.insp.worker_restarts)
  end)

  it("takes its workers down with it", function()
    local r = helper.run(function()
      local pool = assert(halo.pool.start({ worker = worker({}) }))
      local workers = halo.pool.info(pool).workers
      halo.exit(pool, "shutdown")
      assert(helper.wait_until(function()
        for _, w in ipairs(workers) do if halo.process_state(w) then return false end end
        return true
      end))
      return { n = #workers, info = { halo.pool.info(workers[1]) } }
    end)
    assert.equal(3, r.n) -- default size
    assert.equal("ENOPROC", r.info[3])
  end)

  it("passes on messages that reached the pool before its workers were set", function()
    local r = helper.run(function()
      local log = {}
      local w = worker(log)
      w.init = function() halo.send("early", "hello from init") end -- before the pool routes
      local pool = assert(halo.pool.start({ size = 2, worker = w }, { name = "early" }))
      assert(helper.wait_until(function() return #log == 2 end))
      local insp = halo.inspect(pool)
      halo.kill(pool)
      return { log = log, insp = insp }
    end)
    assert.equal("hello from init", r.log[1][3])
    assert.equal("hello from init", r.log[2][3])
    assert.equal("2", r.insp.messages_forwarded)
  end)

  it("with prefer_idle passes over a busy worker while another is idle", function()
    local r = helper.run(function()
      local log = {}
      local pool = assert(halo.pool.start({ size = 2, worker = worker(log), prefer_idle = true }))
      local workers = halo.pool.info(pool).workers
      assert(halo.send(pool, "block")) -- the first worker sleeps 300 ms
      assert(helper.wait_until(function() return halo.process_info(workers[1]).State == "running" end))
      for i = 1, 3 do
        assert(halo.call(pool, i, 1000))
      end
      local served = {}
      for i = 1, 3 do served[i] = halo.call(pool, "who", 1000)[1] end
      halo.kill(pool)
      return { workers = workers, served = served }
    end)
    -- round-robin would have sent every other call to the sleeping worker
    assert.same({ r.workers[2], r.workers[2], r.workers[2] }, r.served)
  end)

  it("rejects a malformed spec", function()
    local cases = {
      { {}, "worker %(a behavior table or module name%) is required" },
      { { worker = {}, size = 1.5 }, "size must be a whole number" },
      { { worker = {}, worker_mailbox_size = -1 }, "worker_mailbox_size must be" },
      { { worker = {}, worker_options = { link_parent = false } }, "set by the pool" },
      { { worker = {}, colour = 1 }, "unknown field 'colour'" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(halo.pool.start, c[1])
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
    local r = helper.run(function() return { halo.pool.info(halo.self()) } end)
    assert.equal("EINCORRECT", r[3])
  end)
end)
