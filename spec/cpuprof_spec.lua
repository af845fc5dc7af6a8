-- The CPU profiler (halo.cpuprof, core/prof.c, core/pprof.c): a busy
-- function is found and attributed to its process, the core's C work joins
-- the profile, a second profile is refused, pprof_cpu prints the
-- reference's table, and /debug/pprof/profile answers a profile that
-- go tool pprof opens.
local halo = require("halo")
local helper = require("helper")

-- Burns CPU in a known function for about ms of every 10 ms.
local function cpuBurnSpec(ms)
  local t, x = halo.now(), 0
  while halo.now() - t < ms do
    for i = 1, 1000 do x = x + i % 7 end
  end
  return x
end

local function burner(ms)
  return function()
    while true do
      cpuBurnSpec(ms)
      local _, msg = halo.receive(10 - ms)
      if msg == "stop" then return end
    end
  end
end

local go_pprof = helper.go_pprof

local function stack_owner(prof, fname)
  for _, s in ipairs(prof.stacks) do
    for _, f in ipairs(s.frames) do if f[1] == fname then return s.pid end end
  end
end

describe("cpuprof", function()
  it("attributes a busy function to its process; a second profile is refused", function()
    local prof, busy, burner_pid = helper.run(function()
      local cpuprof = require("halo.cpuprof")
      local pid = halo.spawn(burner(6))
      local p = assert(cpuprof.collect(1))
      local ok = cpuprof.start()
      local p2, err = cpuprof.collect(0.1)
      cpuprof.stop()
      halo.send(pid, "stop")
      return p, { ok, p2, err, cpuprof.running() }, pid
    end)
    assert.is_true(busy[1])
    assert.is_nil(busy[2])
    assert.equal("a CPU profile is already running", busy[3])
    assert.is_false(busy[4])
    assert.is_true(prof.samples >= 10, "samples " .. prof.samples)
    local rows, total = require("halo.cpuprof").top(prof, { filter = "cpuBurnSpec" })
    assert.equal(prof.samples, total)
    assert.equal(1, #rows)
    assert.matches("^cpuBurnSpec %(.*cpuprof_spec.lua:%d+%)$", rows[1].name)
    assert.is_true(rows[1].flat >= total * 0.3, ("cpuBurnSpec flat %d of %d"):format(rows[1].flat, total))
    assert.equal(burner_pid, stack_owner(prof, "cpuBurnSpec"))
  end)

  it("counts the core's scheduler work as C samples", function()
    local prof = helper.run(function()
      local pids = {}
      local function echo()
        while true do
          local from, m = halo.receive()
          if m == "stop" then return end
          halo.send(from, m)
        end
      end
      for i = 1, 50 do pids[i] = halo.spawn(echo) end
      local driver = halo.spawn(function()
        for _, p in ipairs(pids) do halo.send(p, 1) end
        echo()
      end)
      local p = assert(require("halo.cpuprof").collect(1))
      for _, q in ipairs(pids) do halo.send(q, "stop") end
      halo.send(driver, "stop")
      return p
    end)
    local rows = require("halo.cpuprof").top(prof, { filter = "halo_sched_slice" })
    assert.equal(1, #rows)
    assert.equal("halo_sched_slice (core/scheduler.c)", rows[1].name)
    assert.is_true(rows[1].flat > 0)
    assert.equal("loop", stack_owner(prof, "halo_sched_slice"))
  end)

  it("pprof_cpu prints flat and cum by function with the real sample count", function()
    local text = helper.run(function()
      local pid = halo.spawn(burner(5))
      local tools = assert(loadfile("mcp_tools/pprof_cpu.lua"))()
      local t = assert(tools[1].handler({ duration = 1, filter = "cpuBurn", limit = 0 }))
      halo.send(pid, "stop")
      return t
    end)
    local samples, flat, cum, name = text:match(
      "^CPU profile: 1 seconds, (%d+) total samples, matched 1 functions, showing 1\n\n"
      .. "flat%%    cum%%     function\n(%d+%.%d)%s+(%d+%.%d)%s+(.-)\n$")
    assert.is_truthy(samples, text)
    assert.is_true(tonumber(samples) >= 10, text)
    assert.is_true(tonumber(flat) > 20 and tonumber(cum) >= tonumber(flat), text)
    assert.matches("^cpuBurnSpec %(", name)
  end)

  it("core.pprof.encode refuses malformed samples", function()
    local encode = require("halo.core").pprof.encode
    local types = { { "samples", "count" } }
    local ok, err = pcall(encode, { sample_types = types, samples = { { stack = {}, values = { 1, 2 } } } })
    assert.is_false(ok)
    assert.matches("sample 1 has 2 values, the profile 1 sample types", err, 1, true)
    ok, err = pcall(encode, { sample_types = types, samples = { { stack = {}, values = { 1 }, labels = { pid = {} } } } })
    assert.is_false(ok)
    assert.matches("labels are string keys to strings or numbers", err, 1, true)
    local gz = assert(encode({ sample_types = types, samples = { { stack = { { "f", "x.lua", 3 } }, values = { 1 },
      labels = { pid = "<1.0.1>", bytes = 512 } } } }))
    assert.equal("\31\139", gz:sub(1, 2))
  end)

  it("serves /debug/pprof/profile that go tool pprof opens; 409 while busy", function()
    local path = os.tmpname()
    local busy, burner_pid = helper.run(function()
      local radar = require("halo.radar")
      assert(radar.start({ port = 0 }))
      local _, port = radar.address()
      local pid = halo.spawn(burner(6))
      local res = assert(halo.http.request({ host = "127.0.0.1", port = port,
        path = "/debug/pprof/profile?seconds=1", timeout = 10000 }))
      assert.equal(200, res.status)
      assert.equal("application/octet-stream", res.headers["content-type"])
      local f = assert(io.open(path, "wb"))
      f:write(res.body)
      f:close()
      assert(require("halo.cpuprof").start())
      local r2 = assert(halo.http.request({ host = "127.0.0.1", port = port,
        path = "/debug/pprof/profile?seconds=1", timeout = 10000 }))
      require("halo.cpuprof").stop()
      local malformed = {}
      for _, q in ipairs({ "x", "1e3", "0x10", "1.0", "", "+2" }) do -- decimal integers only (Go's ParseInt)
        local r = assert(halo.http.request({ host = "127.0.0.1", port = port,
          path = "/debug/pprof/profile?seconds=" .. q, timeout = 10000 }))
        malformed[#malformed + 1] = r.status
      end
      halo.send(pid, "stop")
      radar.stop()
      return { r2.status, r2.body, malformed }, pid
    end)
    assert.equal(409, busy[1])
    assert.equal("failed to start CPU profile: a CPU profile is already running\n", busy[2])
    assert.same({ 400, 400, 400, 400, 400, 400 }, busy[3])
    local top = go_pprof("-top -nodecount=30", path)
    assert.matches("Type: cpu", top, 1, true)
    local flat = top:match("\n%s*%d+m?s%s+([%d.]+)%%%s+[%d.]+%%%s+%d+m?s%s+[%d.]+%%%s+cpuBurnSpec\n")
    assert.is_truthy(flat, top)
    assert.is_true(tonumber(flat) > 20, top)
    local tags = go_pprof("-tags", path)
    assert.matches(burner_pid, tags, 1, true)
    os.remove(path)
  end)

  -- The caller of collect never returns when its node stops during the
  -- profile: SIGPROF would keep firing for the rest of the OS process, and
  -- core.pprof.running, which the profiler's callback calls, raised outside
  -- a node (LuaJIT ends the OS process when that callback raises).
  it("a profile whose caller never came back ends with its node", function()
    local cpuprof = require("halo.cpuprof")
    local started = helper.run(function()
      halo.spawn(function() cpuprof.collect(5) end)
      return helper.wait_until(cpuprof.running, 2000, 1)
    end)
    assert.is_true(started)
    assert.is_false(cpuprof.running())
    local ok, pid = pcall(require("halo.core").pprof.running)
    assert.is_true(ok, pid)
    assert.is_nil(pid)
    assert.is_true(cpuprof.start()) -- and the next node's profile starts afresh
    cpuprof.stop()
  end)

  -- A killed caller never stops its profile: the next one would wait for
  -- the dead one's deadline (up to 35 s) to be let in.
  it("a profile whose caller was killed is stopped, or gives way to the next one at once", function()
    local r = helper.run(function()
      local cpuprof = require("halo.cpuprof")
      local pid = halo.spawn(function() cpuprof.collect(30) end)
      assert(helper.wait_until(cpuprof.running, 2000, 1))
      halo.kill(pid)
      assert(helper.wait_until(function() return not halo.alive(pid) end))
      -- its guard stops it (no SIGPROF ticking until a next profile comes)
      assert(helper.wait_until(function() return not cpuprof.running() end, 2000, 1))
      pid = halo.spawn(function() -- and when the guard is gone too, the next start takes over
        assert(cpuprof.start({ seconds = 30 }))
        halo.receive()
      end)
      assert(helper.wait_until(cpuprof.running, 2000, 1))
      halo.kill(pid)
      assert(helper.wait_until(function() return not halo.alive(pid) end))
      local ok, err = cpuprof.start({ seconds = 1 })
      local p = cpuprof.stop()
      return { ok, err, p ~= nil }
    end)
    assert.is_true(r[1], r[2])
    assert.is_true(r[3])
  end)
end)
