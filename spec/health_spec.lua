-- halo.health: the signal model behind the health probes. Each spec runs the
-- health process (registered as radar_health, check every 20 ms) with a
-- publish function that sends each (probe, status, body) to the spec's
-- process, and subscribes to the process's log records.
local halo = require("halo")
local health = require("halo.health")
local helper = require("helper")

local HEALTHY = '{"status":"healthy"}'

-- In a node: starts radar_health publishing to the caller; returns its PID.
local function start(args, opts)
  local parent = halo.self()
  args = args or {}
  args.check_interval = args.check_interval or 20
  args.publish = function(probe, status, body) halo.send(parent, { pub = probe, status = status, body = body }) end
  local o = { log_level = "info" }
  for k, v in pairs(opts or {}) do o[k] = v end
  halo.log.remove_logger("default")
  local pid = assert(health.start(args, o))
  assert(halo.log.subscribe({ levels = { "info", "warning" }, source = pid }))
  return pid
end

-- Everything queued for the caller now, as {pubs = {probe = {status, body}}, order = {probes}, logs = {text}}.
local function drain()
  local out = { pubs = {}, order = {}, logs = {} }
  while true do
    local from, m = halo.receive(0)
    if not from then return out end
    if m.pub then
      out.pubs[m.pub] = { m.status, m.body }
      out.order[#out.order + 1] = m.pub
    elseif m.kind == "log" then
      out.logs[#out.logs + 1] = m.level .. ": " .. m.message
    end
  end
end

-- Waits (2 s at most) until pred(seen) holds for what has arrived since the call.
local function await(pred)
  local seen = { pubs = {}, order = {}, logs = {} }
  assert(helper.wait_until(function()
    local d = drain()
    for k, v in pairs(d.pubs) do seen.pubs[k] = v end
    for _, v in ipairs(d.order) do seen.order[#seen.order + 1] = v end
    for _, v in ipairs(d.logs) do seen.logs[#seen.logs + 1] = v end
    return pred(seen)
  end, 2000, 2), "condition not reached")
  return seen
end

-- Pending messages are all handled once a call to the process returns.
local function sync() assert(health.status("live")) end

describe("halo.health", function()
  it("publishes every probe at start, then exactly the probes a change touches, with exact JSON", function()
    local r = helper.run(function()
      local out = {}
      start()
      out.start = drain()
      out.reg_db = { health.register("db", { probes = { "live", "ready" }, timeout = 5000 }) }
      out.db = drain()
      assert(health.register("cache", { probes = 4 }))
      out.cache = drain()
      assert(health.register("a", { timeout = 1500 })) -- no probes: live
      out.a = drain()
      assert(health.down("db"))
      sync()
      out.down = drain()
      out.status = { health.status("ready") }
      assert(health.down("db")) -- no change: nothing published
      assert(health.heartbeat("nobody")) -- unknown names are ignored
      sync()
      out.again = drain()
      assert(health.up("db"))
      sync()
      out.up = drain()
      out.unreg = { health.unregister("cache") }
      out.gone = drain()
      return out
    end)
    assert.same({ "live", "ready", "startup" }, r.start.order)
    for _, p in ipairs({ "live", "ready", "startup" }) do assert.same({ 200, HEALTHY }, r.start.pubs[p]) end
    assert.same({ true }, r.reg_db)
    local db_up = '{"status":"healthy","signals":[{"signal":"db","status":"up","timeout":"5s"}]}'
    assert.same({ "live", "ready" }, r.db.order)
    assert.same({ 200, db_up }, r.db.pubs.live)
    assert.same({ 200, db_up }, r.db.pubs.ready)
    assert.same({ "startup" }, r.cache.order)
    assert.same({ 200, '{"status":"healthy","signals":[{"signal":"cache","status":"up"}]}' }, r.cache.pubs.startup)
    assert.same({ "live" }, r.a.order)
    assert.same({ 200, '{"status":"healthy","signals":[{"signal":"a","status":"up","timeout":"1.5s"},' ..
      '{"signal":"db","status":"up","timeout":"5s"}]}' }, r.a.pubs.live)
    assert.same({ "live", "ready" }, r.down.order)
    local db_down = '{"status":"unhealthy","signals":[{"signal":"db","status":"down","timeout":"5s"}]}'
    assert.same({ 503, db_down }, r.down.pubs.ready)
    assert.same({ 503, '{"status":"unhealthy","signals":[{"signal":"a","status":"up","timeout":"1.5s"},' ..
      '{"signal":"db","status":"down","timeout":"5s"}]}' }, r.down.pubs.live)
    assert.same({ 503, db_down }, r.status)
    assert.same({}, r.again.order)
    assert.same({ "warning: (health) signal db down: set down" }, r.down.logs)
    assert.same({ "live", "ready" }, r.up.order)
    assert.same({ 200, db_up }, r.up.pubs.ready)
    assert.same({ "info: (health) signal db up again: set up" }, r.up.logs)
    assert.same({ true }, r.unreg)
    assert.same({ "startup" }, r.gone.order)
    assert.same({ 200, HEALTHY }, r.gone.pubs.startup)
  end)

  it("answers registration errors and misuse", function()
    local r = helper.run(function()
      start()
      return {
        empty = { health.register("") },
        unknown = { health.unregister("nope") },
        bad_mask = { health.register("x", { probes = 9 }) },
        bad_timeout = { health.register("x", { timeout = -1 }) },
        not_string = { pcall(health.register, 5) },
        bad_probe = { pcall(health.register, "x", { probes = { "alive" } }) },
        bad_status = { health.status("nope") },
        no_target = { health.register("x", { target = "nobody_here" }) },
        listed = halo.inspect("radar_health").signals,
      }
    end)
    assert.same({ nil, "EINCORRECT: empty signal name", "EINCORRECT" }, r.empty)
    assert.same({ nil, "EUNKNOWN: unknown signal", "EUNKNOWN" }, r.unknown)
    assert.equal("EINCORRECT", r.bad_mask[3])
    assert.equal("EINCORRECT", r.bad_timeout[3])
    assert.is_false(r.not_string[1])
    assert.matches("signal name must be a string", r.not_string[2])
    assert.is_false(r.bad_probe[1])
    assert.matches("unknown probe 'alive'", r.bad_probe[2])
    assert.equal("EINCORRECT", r.bad_status[3])
    assert.is_nil(r.no_target[1])
    assert.equal("0", r.listed)
  end)

  it("flips a probe to 503 when a heartbeat is missed and back to 200 when it resumes", function()
    local r = helper.run(function()
      local out = {}
      start()
      drain()
      local beating, beats = true, 0
      local beater = halo.spawn(function()
        assert(health.register("hb", { probes = { "ready" }, timeout = 60 }))
        while beating do
          health.heartbeat("hb")
          beats = beats + 1
          halo.sleep(10)
        end
        halo.receive() -- stays alive: only the heartbeats stop
      end)
      out.up = await(function(s) return s.pubs.ready end).pubs.ready
      assert(helper.wait_until(function() return beats >= 15 end)) -- 2.5 timeouts of beating: still up
      out.steady = drain().order
      beating = false
      local t0 = halo.now()
      local down = await(function(s) return s.pubs.ready and s.pubs.ready[1] == 503 end)
      out.down, out.down_ms, out.down_logs = down.pubs.ready, halo.now() - t0, down.logs
      out.inspect = halo.inspect("radar_health")
      assert(health.heartbeat("hb"))
      local up = await(function(s) return s.pubs.ready and s.pubs.ready[1] == 200 end)
      out.back, out.back_logs = up.pubs.ready, up.logs
      halo.kill(beater)
      return out
    end)
    assert.same({ 200, '{"status":"healthy","signals":[{"signal":"hb","status":"up","timeout":"60ms"}]}' }, r.up)
    assert.same({}, r.steady)
    assert.same({ 503, '{"status":"unhealthy","signals":[{"signal":"hb","status":"down","timeout":"60ms"}]}' }, r.down)
    assert.is_true(r.down_ms >= 50, tostring(r.down_ms))
    assert.equal(1, #r.down_logs)
    assert.matches("^warning: %(health%) signal hb down: no heartbeat for %d+ ms %(timeout 60ms%)$", r.down_logs[1])
    assert.same({ signals = "1", check_interval = "20ms", hb = "down" }, r.inspect)
    assert.same({ 200, '{"status":"healthy","signals":[{"signal":"hb","status":"up","timeout":"60ms"}]}' }, r.back)
    assert.same({ "info: (health) signal hb up again: heartbeat" }, r.back_logs)
  end)

  it("marks an ended owner's signals down and keeps them listed until unregistered", function()
    local r = helper.run(function()
      local out = {}
      start()
      drain()
      local owner = halo.spawn(function()
        assert(health.register("w1", { probes = { "live", "startup" } }))
        assert(health.register("w2"))
        halo.receive()
      end)
      await(function(s) return s.pubs.startup end)
      halo.exit(owner, "crashed")
      local seen = await(function(s) return s.pubs.live and s.pubs.live[1] == 503 and s.pubs.startup end)
      out.live, out.startup, out.logs = seen.pubs.live, seen.pubs.startup, seen.logs
      table.sort(out.logs)
      out.inspect = halo.inspect("radar_health")
      -- a heartbeat brings a down signal up, whoever sends it
      assert(health.heartbeat("w2"))
      sync()
      out.hb = drain().pubs.live
      -- registering again makes the caller the owner, up
      out.rereg = { health.register("w1", { probes = { "live", "startup" } }) }
      out.rereg_pub = drain().pubs
      out.unreg = { health.unregister("w1"), health.unregister("w2") }
      out.after = drain().pubs
      return out
    end)
    assert.same({ 503, '{"status":"unhealthy","signals":[{"signal":"w1","status":"down"},' ..
      '{"signal":"w2","status":"down"}]}' }, r.live)
    assert.same({ 503, '{"status":"unhealthy","signals":[{"signal":"w1","status":"down"}]}' }, r.startup)
    assert.equal(2, #r.logs)
    assert.matches("^warning: %(health%) signal w1 down: owner <.-> ended: crashed$", r.logs[1])
    assert.matches("^warning: %(health%) signal w2 down: owner <.-> ended: crashed$", r.logs[2])
    assert.same({ signals = "2", check_interval = "20ms", w1 = "down", w2 = "down" }, r.inspect)
    assert.same({ 503, '{"status":"unhealthy","signals":[{"signal":"w1","status":"down"},' ..
      '{"signal":"w2","status":"up"}]}' }, r.hb)
    assert.same({ true }, r.rereg)
    assert.same({ 200, '{"status":"healthy","signals":[{"signal":"w1","status":"up"},{"signal":"w2","status":"up"}]}' },
      r.rereg_pub.live)
    assert.same({ 200, '{"status":"healthy","signals":[{"signal":"w1","status":"up"}]}' }, r.rereg_pub.startup)
    assert.same({ true, true }, r.unreg)
    assert.same({ 200, HEALTHY }, r.after.live)
    assert.same({ 200, HEALTHY }, r.after.startup)
  end)

  it("replaces a signal registered again by another process and addresses an explicit target", function()
    local r = helper.run(function()
      local out = {}
      start({ path = "/health/*" }, { name = "other_health" })
      drain()
      local t = { target = "other_health" }
      local first = halo.spawn(function()
        assert(health.register("s", { target = "other_health", timeout = 60000 }))
        halo.receive()
      end)
      await(function(s) return s.pubs.live end)
      assert(health.register("s", { target = "other_health", probes = 2, timeout = 3600000 }))
      out.pubs = drain().pubs
      halo.kill(first) -- no longer the owner: nothing changes
      assert(health.status("live", t)) -- after the down message (system queue first)
      out.after_kill = drain().order
      out.inspect = halo.inspect("other_health")
      out.default = { health.register("x") } -- no radar_health here
      return out
    end)
    assert.same({ 200, HEALTHY }, r.pubs.live)
    assert.same({ 200, '{"status":"healthy","signals":[{"signal":"s","status":"up","timeout":"1h0m0s"}]}' }, r.pubs.ready)
    assert.same({}, r.after_kill)
    assert.same({ path = "/health/*", signals = "1", check_interval = "20ms", s = "up" }, r.inspect)
    assert.is_nil(r.default[1])
  end)

  it("hands a probe whose publish failed to publish again at the next check (regression: stale until a change)", function()
    local r = helper.run(function()
      local parent, broken = halo.self(), true
      halo.log.remove_logger("default")
      local pid = assert(health.start({ check_interval = 20, publish = function(probe, status, body)
        if broken then error("server not up yet", 0) end
        halo.send(parent, { pub = probe, status = status, body = body })
      end }, { log_level = "info" }))
      assert(halo.log.subscribe({ levels = { "error" }, source = pid }))
      assert(health.register("db"))
      local out = { failed = await(function(s) return #s.logs > 0 end).logs }
      broken = false
      out.pubs = await(function(s) return s.pubs.live and s.pubs.ready and s.pubs.startup end).pubs
      return out
    end)
    for _, line in ipairs(r.failed) do -- retried every check while it fails
      assert.matches("^error: %(health%) publishing %a+ failed: server not up yet$", line)
    end
    assert.same({ 200, '{"status":"healthy","signals":[{"signal":"db","status":"up"}]}' }, r.pubs.live)
    assert.same({ 200, HEALTHY }, r.pubs.ready)
    assert.same({ 200, HEALTHY }, r.pubs.startup)
  end)

  it("prints durations as Go does", function()
    local cases = { [0] = "0s", [1] = "1ms", [500] = "500ms", [1000] = "1s", [1500] = "1.5s", [1234] = "1.234s",
                    [5000] = "5s", [60000] = "1m0s", [90500] = "1m30.5s", [3600000] = "1h0m0s", [3661000] = "1h1m1s" }
    for ms, text in pairs(cases) do assert.equal(text, health.duration(ms)) end
  end)
end)
