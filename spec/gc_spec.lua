local halo = require("halo")
local helper = require("helper")
local core = require("halo.core")
local heap = require("halo.heap")
local json = require("halo.json")

-- Garbage in small slices: n rounds of 64 tables of about 200 bytes, a
-- yield after each round (so slices end and paced steps can run).
local function churn(rounds)
  local ring = {}
  for r = 1, rounds do
    for i = 1, 64 do ring[i] = { string.rep("g", 180) .. r .. ":" .. i, r, i } end
    halo.yield()
  end
end

describe("collector pacing", function()
  it("steps the collector between slices, timed, and runtime_stats shows it", function()
    local before, after, text = helper.run(function()
      local before = core.heap.stats()
      local pid = assert(halo.spawn(function() churn(3000) end))
      assert(helper.wait_until(function() return not halo.alive(pid) end, 8000))
      return before, core.heap.stats(), heap.stats_text()
    end)
    assert.is_true(after.gc.pacing)
    assert.is_true(after.gc.steps > before.gc.steps + 10, "paced steps " .. after.gc.steps)
    assert.is_true(after.gc.cycles >= 1, "paced cycles " .. after.gc.cycles)
    -- every cycle of this churn ended in a paced step: the backstop never fired
    -- (one apart at most: the sentinel is finalized a step or more before the
    -- step that ends its cycle, so either snapshot may fall in between)
    local sentinel, paced = after.gc_cycles - before.gc_cycles, after.gc.cycles - before.gc.cycles
    assert.is_true(math.abs(sentinel - paced) <= 1 and paced >= 5, ("sentinel %d, paced %d"):format(sentinel, paced))
    assert.is_true(after.gc.last_pause_ns > 0 and after.gc.max_pause_ns >= after.gc.last_pause_ns)
    assert.is_true(after.gc.cpu_percent > 0 and after.gc.cpu_percent < 100, "share " .. after.gc.cpu_percent)
    local s = json.decode(text)
    assert.is_true(s.last_gc_pause_ns > 0, text)
    assert.is_true(s.gc_cpu_percent > 0, text)
  end)

  it("a cycle ended by collectgarbage() resyncs the pacing: no step starts a cycle early", function()
    local caught, steps_before, steps_after, active_after = helper.run(function()
      local ring, r = {}, 0
      -- garbage in small slices until a paced cycle is under way
      while not core.heap.stats().gc.active and r < 100000 do
        r = r + 1
        ring[r % 64 + 1] = { string.rep("a", 100) .. r }
        if r % 16 == 0 then halo.yield() end
      end
      local was = core.heap.stats().gc.active
      collectgarbage()
      halo.yield() -- a slice ends: the pacing sees the cycle ended elsewhere
      local s0 = core.heap.stats().gc
      -- 64 KB more in small slices: far below the next cycle's threshold
      for i = 1, 256 do
        ring[i % 64 + 1] = { string.rep("c", 200) .. i }
        if i % 16 == 0 then halo.yield() end
      end
      local s1 = core.heap.stats().gc
      return was, s0.steps, s1.steps, s1.active
    end)
    assert.is_true(caught, "a paced cycle was under way before collectgarbage()")
    assert.equal(steps_before, steps_after)
    assert.is_false(active_after)
  end)

  it("with gc_pacing = false leaves the collector to LuaJIT: it still collects, untimed", function()
    local before, after = helper.run(function()
      local b = core.heap.stats()
      churn(3000)
      return b, core.heap.stats()
    end, { gc_pacing = false })
    assert.is_false(after.gc.pacing)
    assert.equal(0, after.gc.steps)
    assert.equal(0, after.gc.last_pause_ns)
    assert.is_true(after.gc_cycles > before.gc_cycles, "LuaJIT's own cycles")
  end)

  it("keeps LuaJIT's trigger as a backstop for a slice that never yields", function()
    local before, after, peak = helper.run(function()
      local b = core.heap.stats()
      local top = 0
      -- 200 MB of garbage in one slice, 4 KB strings, never yielding
      for i = 1, 50000 do
        local s = string.rep("b", 4000) .. i
        if i % 1000 == 0 then top = math.max(top, collectgarbage("count") * 1024) end
        if #s == 0 then return end
      end
      return b, core.heap.stats(), top
    end, { timeout = 20000 })
    -- LuaJIT's own steps ran inside the slice: cycles no paced step ended
    assert.is_true(after.gc_cycles - before.gc_cycles > after.gc.cycles - before.gc.cycles,
      ("sentinel %d, paced %d"):format(after.gc_cycles - before.gc_cycles, after.gc.cycles - before.gc.cycles))
    assert.is_true(peak < 100e6, "heap peaked at " .. peak)
  end)

  it("a finalizer that raises in a paced step is logged against the node; the process goes on", function()
    local log = os.tmpname()
    local alive, steps = helper.run(function()
      assert(halo.log.remove_logger("default"))
      assert(halo.log.add_logger("file", { output = log, levels = { "error" } }))
      local done = false
      local pid = assert(halo.spawn(function()
        do
          local u = newproxy(true)
          getmetatable(u).__gc = function() error("finalizer fails on purpose") end
        end
        churn(3000)
        done = true
        halo.receive()
      end))
      assert(helper.wait_until(function() return done end, 8000))
      local a = halo.alive(pid)
      halo.kill(pid)
      return a, core.heap.stats().gc.steps
    end, { log_level = "error" })
    local text = assert(io.open(log)):read("*a")
    os.remove(log)
    assert.is_true(steps > 0)
    assert.is_true(alive, "the process that ran when the finalizer failed is alive")
    assert.truthy(text:find("finalizer fails on purpose", 1, true), text)
  end)
end)

describe("collector pacing, memory", function()
  -- 10 MB live, then slices that each allocate 20 MB of garbage (4 KB
  -- strings) before they yield; the heap's peak as the slices saw it
  local function big_slices(opts)
    return helper.run(function()
      local live, ring, peak = {}, {}, 0
      for i = 1, 10000 do live[i] = { string.rep("L", 900) .. i } end
      for k = 1, 12 do
        for i = 1, 5000 do
          ring[i % 64 + 1] = string.rep("c", 4000) .. i .. ":" .. k
          if i % 100 == 0 then peak = math.max(peak, collectgarbage("count") * 1024) end
        end
        halo.yield()
      end
      return peak, #live
    end, opts)
  end

  it("a slice that allocates twice the heap before it yields peaks no higher than under LuaJIT's own pacing", function()
    local paced = big_slices({ timeout = 20000 })
    local own = big_slices({ timeout = 20000, gc_pacing = false })
    assert.is_true(paced < own * 1.3, ("peak %.1f MB paced, %.1f MB LuaJIT's own"):format(paced / 1e6, own / 1e6))
  end)
end)

describe("collector pacing, collectgarbage", function()
  it("collectgarbage('stop') holds: no paced step restarts the collector until 'restart'", function()
    local cycles, running, steps, after = helper.run(function()
      collectgarbage()
      collectgarbage("stop")
      local s0 = core.heap.stats()
      churn(2000) -- 25 MB of garbage: several cycles' worth
      local s1 = core.heap.stats()
      local r = collectgarbage("isrunning")
      collectgarbage("restart")
      churn(3000)
      return s1.gc_cycles - s0.gc_cycles, r, s1.gc.steps - s0.gc.steps, core.heap.stats().gc_cycles - s1.gc_cycles
    end)
    assert.equal(0, cycles)
    assert.is_false(running)
    assert.equal(0, steps)
    assert.is_true(after > 0, "the collector runs again after restart")
  end)
end)

describe("collector pacing, accounts", function()
  it("a paced step runs on the node's account: a finalizer there sees no current process", function()
    local seen = helper.run(function()
      local seen = {}
      local pid = assert(halo.spawn(function()
        do
          local u = newproxy(true)
          getmetatable(u).__gc = function() seen.ran, seen.self = true, halo.self() end
        end
        churn(3000)
        halo.receive()
      end))
      assert(helper.wait_until(function() return seen.ran end, 8000))
      halo.kill(pid)
      return seen
    end)
    assert.is_true(seen.ran)
    assert.is_nil(seen.self, "the finalizer ran as " .. tostring(seen.self))
  end)
end)
