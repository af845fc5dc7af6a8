-- The radar application: its tree, /metrics over HTTP, the probes flipping
-- with heartbeats, the --metrics flag and slowweb.
local halo = require("halo")
local helper = require("helper")
local cjson = require("cjson")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"

local function get(port, path)
  local res, err = halo.http.request({ host = "127.0.0.1", port = port, path = path, timeout = 3000 })
  assert(res, err)
  return res
end

describe("radar", function()
  it("runs its tree and serves /metrics and the probes on one listener", function()
    local r = helper.run(function()
      local radar = require("halo.radar")
      assert(radar.start({ port = 0 }))
      local host, port = radar.address()
      local out = { host = host }
      out.names = {}
      for _, n in ipairs({ "radar_sup", "radar_web", "radar_health", "radar_metrics" }) do
        out.names[n] = halo.whereis(n) ~= nil
      end
      out.app = halo.application.info("radar").State
      local m = get(port, "/metrics")
      out.metrics_status, out.metrics_type, out.metrics = m.status, m.headers["content-type"], m.body
      for _, p in ipairs({ "live", "ready", "startup" }) do
        local res = get(port, "/health/" .. p)
        out[p] = { res.status, res.body, res.headers["content-type"] }
      end
      out.missing = get(port, "/nope").status
      out.slash = get(port, "/metrics/").status
      out.inspect = halo.inspect("radar_metrics")
      assert(radar.stop())
      out.after = radar.address()
      return out
    end)
    assert.equal("127.0.0.1", r.host)
    assert.same({ radar_sup = true, radar_web = true, radar_health = true, radar_metrics = true }, r.names)
    assert.equal("running", r.app)
    assert.equal(200, r.metrics_status)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", r.metrics_type)
    assert.truthy(r.metrics:find('\nhalo_processes_total{node="halo@localhost"} %d+\n'))
    for _, p in ipairs({ "live", "ready", "startup" }) do
      assert.same({ 200, '{"status":"healthy"}', "application/json" }, r[p])
    end
    assert.equal(404, r.missing)
    assert.equal(404, r.slash)
    assert.equal("10s", r.inspect.collect_interval)
    assert.is_nil(r.after)
  end)

  it("flips a probe to 503 when a heartbeat is missed and back to 200", function()
    local r = helper.run(function()
      local radar = require("halo.radar")
      assert(radar.start({ port = 0, check_interval = 50 }))
      local _, port = radar.address()
      local out = {}
      local worker = halo.spawn(function()
        assert(halo.health.register("db", { probes = { "ready" }, timeout = 200 }))
        while true do
          local _, msg = halo.receive()
          if msg == "beat" then halo.health.heartbeat("db") end
        end
      end)
      local function status(p) return get(port, "/health/" .. p) end
      assert(helper.wait_until(function() return status("ready").body:find('"db"', 1, true) ~= nil end, 2000))
      out.up = status("ready")
      assert(helper.wait_until(function() return status("ready").status == 503 end, 3000))
      out.down = status("ready")
      out.live = status("live").status
      halo.send(worker, "beat")
      assert(helper.wait_until(function() return status("ready").status == 200 end, 3000))
      out.back = status("ready")
      halo.kill(worker)
      assert(helper.wait_until(function() return status("ready").status == 503 end, 3000))
      out.dead = status("ready").body
      assert(radar.stop())
      return out
    end)
    assert.equal(200, r.up.status)
    assert.same({ status = "healthy", signals = { { signal = "db", status = "up", timeout = "200ms" } } },
      cjson.decode(r.up.body))
    assert.equal(503, r.down.status)
    assert.same({ status = "unhealthy", signals = { { signal = "db", status = "down", timeout = "200ms" } } },
      cjson.decode(r.down.body))
    assert.equal(200, r.live)
    assert.equal(200, r.back.status)
    assert.same({ status = "unhealthy", signals = { { signal = "db", status = "down", timeout = "200ms" } } },
      cjson.decode(r.dead))
  end)

  it("starts from --metrics and refuses a malformed address", function()
    local port = helper.random_port()
    local dir = helper.script_dir("n.lua", [[
local f = io.open(arg[1], "w"); f:write("up\n"); f:close()
require("halo").receive()
]])
    local pid = helper.spawn_os(("%s run --metrics 127.0.0.1:%d %s/n.lua %s/up"):format(halo_bin, port, dir, dir),
      dir .. "/log")
    assert(helper.wait_file(dir .. "/up", 500))
    -- without the sanitizer preload: curl can deadlock under it, as ps does
    local f = io.popen(("LD_PRELOAD= curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/health/live"):format(port))
    local code = f:read("*a")
    f:close()
    helper.kill(pid)
    f = io.popen(("%s run --metrics 127.0.0.1:99999 -e 'print(1)' 2>&1; echo rc=$?"):format(halo_bin))
    local bad = f:read("*a")
    f:close()
    os.execute("rm -rf " .. dir)
    assert.equal("200", code)
    assert.truthy(bad:find("port out of range", 1, true), bad)
    assert.truthy(bad:find("rc=1", 1, true), bad)
  end)

  it("slowweb answers /slow after 3..14 ms and 404 elsewhere", function()
    local port = helper.random_port()
    local dir = os.tmpname()
    local pid = helper.spawn_os(("%s slowweb 127.0.0.1:%d"):format(halo_bin, port), dir)
    local r = helper.run(function()
      local out = {}
      assert(helper.wait_until(function()
        return halo.http.request({ host = "127.0.0.1", port = port, path = "/slow", timeout = 1000 }) ~= nil
      end, 5000))
      for i = 1, 20 do
        local t0 = halo.now()
        local res = assert(halo.http.request({ host = "127.0.0.1", port = port, path = "/slow" }))
        out[i] = { res.status, res.body, halo.now() - t0 }
      end
      out.missing = get(port, "/").status
      return out
    end)
    helper.kill(pid)
    local f = io.open(dir)
    local log = f:read("*a")
    f:close()
    os.remove(dir)
    assert.truthy(log:find("slowweb listening on 127.0.0.1:" .. port, 1, true), log)
    for i = 1, 20 do
      local status, body, took = r[i][1], r[i][2], r[i][3]
      assert.equal(200, status)
      local ms = tonumber(body:match("^ok (%d+)ms\n$"))
      assert.truthy(ms and ms >= 3 and ms <= 14, body)
      assert.truthy(took >= ms, "answered before its delay")
    end
    assert.equal(404, r.missing)
  end)
end)
