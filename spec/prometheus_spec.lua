-- Debian's Prometheus scrapes radar on a local three-node cluster: every
-- node's halo_* series arrive with its node label, and a histogram a node
-- registered from Lua arrives with its buckets. promtool checks a live
-- /metrics body.
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"
local REG = "embedded:" .. helper.random_port()

-- Each node registers a custom histogram and a labelled counter, observes
-- known values, then says it is up.
local SCRIPT = [[
local halo = require("halo")
local h = assert(halo.metrics.histogram({ name = "spec_request_seconds", help = "spec requests",
  buckets = { 0.01, 0.1, 1 } }))
for _, v in ipairs({ 0.005, 0.05, 0.5, 5 }) do h:observe(v) end
local c = assert(halo.metrics.counter({ name = "spec_events_total", help = "spec events", labels = { "kind" } }))
c:add(3, "a")
local f = io.open(arg[1], "w"); f:write("up\n"); f:close()
halo.receive()
]]

local dir, pids = nil, {}
local ports = {}

local function sh(cmd)
  local f = io.popen("unset LD_PRELOAD; " .. cmd)
  local out = f:read("*a")
  local ok, _, code = f:close()
  return out, ok == true or ok == 0, code
end

local function get(url)
  return sh("curl -s --max-time 5 '" .. url .. "'")
end

-- Polls fn until it returns a true value (blocking: outside any node).
local function wait_for(what, fn, seconds)
  local deadline = os.time() + (seconds or 20)
  while os.time() <= deadline do
    local v = fn()
    if v then return v end
    os.execute("sleep 0.1")
  end
  error("timed out waiting for " .. what)
end

local cjson = require("cjson")

local function query(prom, q)
  local body = get(("http://127.0.0.1:%d/api/v1/query?query=%s"):format(prom, q:gsub("[^%w_]", function(c)
    return ("%%%02X"):format(c:byte())
  end)))
  local ok, doc = pcall(cjson.decode, body)
  if not ok or doc.status ~= "success" then return {} end
  return doc.data.result
end

describe("radar under Prometheus", function()
  setup(function()
    dir = helper.script_dir("node.lua", SCRIPT)
    ports = { helper.free_ports(4) } -- the nodes' three and Prometheus's
    for i = 1, 3 do
      local out = ("%s/p%d.out"):format(dir, i)
      pids[#pids + 1] = helper.spawn_os(("%s run --name p%d@localhost --cookie pc --listen 127.0.0.1:0 " ..
        "--registrar %s --metrics 127.0.0.1:%d --log-level info %s/node.lua %s"):format(halo_bin, i, REG, ports[i],
        dir, out), ("%s/p%d.log"):format(dir, i))
      assert(helper.wait_file(out, 500), "node p" .. i .. " did not start")
    end
  end)
  teardown(function()
    for _, pid in ipairs(pids) do helper.kill(pid) end
    os.execute("rm -rf " .. dir)
  end)

  it("passes promtool check metrics on a live /metrics", function()
    local body = get(("http://127.0.0.1:%d/metrics"):format(ports[1]))
    assert.truthy(body:find("halo_processes_total{node=\"p1@localhost\"}", 1, true), body:sub(1, 400))
    local f = assert(io.open(dir .. "/metrics.txt", "w"))
    f:write(body)
    f:close()
    local out, ok = sh("promtool check metrics < " .. dir .. "/metrics.txt 2>&1")
    assert.is_true(ok, out)
  end)

  it("is scraped by Prometheus: halo_* series per node and a Lua histogram", function()
    local prom = ports[4]
    local targets = {}
    for i = 1, 3 do targets[i] = ("'127.0.0.1:%d'"):format(ports[i]) end
    local cfg = assert(io.open(dir .. "/prometheus.yml", "w"))
    cfg:write(("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n" ..
      "  - job_name: halo\n    static_configs:\n      - targets: [%s]\n"):format(table.concat(targets, ", ")))
    cfg:close()
    -- without the sanitizer preload of the ASan run: Prometheus is not halo
    pids[#pids + 1] = helper.spawn_os(("env -u LD_PRELOAD prometheus --config.file=%s/prometheus.yml " ..
      "--storage.tsdb.path=%s/data --web.listen-address=127.0.0.1:%d"):format(dir, dir, prom), dir .. "/prometheus.log")
    wait_for("Prometheus to be ready", function()
      local _, ok = sh(("curl -sf --max-time 1 http://127.0.0.1:%d/-/ready >/dev/null"):format(prom))
      return ok
    end, 30)

    local series = wait_for("halo_processes_total from three nodes", function()
      local r = query(prom, "halo_processes_total")
      return #r == 3 and r
    end, 30)
    local nodes = {}
    for _, s in ipairs(series) do
      nodes[#nodes + 1] = s.metric.node
      assert.is_true(tonumber(s.value[2]) > 0)
    end
    table.sort(nodes)
    assert.same({ "p1@localhost", "p2@localhost", "p3@localhost" }, nodes)

    local up = query(prom, "up")
    assert.equal(3, #up)
    for _, s in ipairs(up) do assert.equal("1", s.value[2]) end

    local buckets = wait_for("the Lua histogram", function()
      local r = query(prom, 'spec_request_seconds_bucket{node="p2@localhost"}')
      return #r == 4 and r
    end)
    local by_le = {}
    for _, s in ipairs(buckets) do by_le[s.metric.le] = tonumber(s.value[2]) end
    assert.same({ ["0.01"] = 1, ["0.1"] = 2, ["1"] = 3, ["+Inf"] = 4 }, by_le)
    local count = query(prom, 'spec_request_seconds_count{node="p3@localhost"}')
    assert.equal("4", count[1].value[2])
    local events = query(prom, 'spec_events_total{kind="a"}')
    assert.equal(3, #events)
  end)
end)
