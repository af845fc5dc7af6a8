--- The docker demo (deploy/) without docker, for spec/deploy_spec.lua and
-- bench/deploy/run: the compose file as docker-compose resolves it, its
-- services' commands and health checks rewritten only in their addresses
-- (loopback ports instead of the containers' fixed addresses), started in
-- the compose file's order on Debian's etcd and Prometheus; the dashboards'
-- queries with Grafana's variables substituted, run through Prometheus' API.
-- Blocking calls only (it runs outside any node).
local helper = require("helper")
local cjson = require("cjson")

local M = {}

M.halo_bin = (os.getenv("HALO_BUILD") or "build") .. "/halo"
M.DATASOURCE = "deploy/grafana/provisioning/datasources/prometheus.yml"
M.DASHBOARDS = { "deploy/grafana/dashboards/halo-cluster.json", "deploy/grafana/dashboards/slowweb.json" }
-- Grafana 11's core panel types (a dashboard naming another shows "Panel plugin not found")
M.PANEL_TYPES = { timeseries = true, stat = true, table = true, bargauge = true, gauge = true, barchart = true,
                  piechart = true, heatmap = true, histogram = true, text = true, ["state-timeline"] = true,
                  ["status-history"] = true, logs = true, row = true }
M.SCRAPE_SECONDS = 1 -- the local copy of prometheus.yml scrapes every second (the deploy's: 10 s)

--- Runs a shell command line without the sanitizer preload; output, success.
function M.sh(cmd)
  local f = io.popen("unset LD_PRELOAD; " .. cmd)
  local out = f:read("*a")
  local ok = f:close()
  return out, ok == true or ok == 0
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- deploy/docker-compose.yml as `docker-compose config` resolves it (the
-- environment's HALO_COOKIE or the default, anchors merged), decoded.
function M.compose()
  local out, ok = M.sh("docker-compose -f deploy/docker-compose.yml config 2>&1 | " ..
    "python3 -c 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'")
  assert(ok, "docker-compose config failed: " .. out)
  return cjson.decode(out)
end

--- The services built from the image, in the order their depends_on allow
-- (a service after every service it depends on; ties by name).
function M.order(compose)
  local built, order, placed = {}, {}, {}
  for name, s in pairs(compose.services) do
    if s.build then built[#built + 1] = name end
  end
  table.sort(built)
  while #order < #built do
    local before = #order
    for _, name in ipairs(built) do
      local ready = not placed[name]
      for dep in pairs(compose.services[name].depends_on or {}) do
        if compose.services[dep].build and not placed[dep] then ready = false end
      end
      if ready then
        placed[name] = true
        order[#order + 1] = name
      end
    end
    assert(#order > before, "depends_on has a cycle")
  end
  return order
end

-- The loopback address that replaces a container address: ports by
-- container port (9090 radar, 9922 MCP, 9911 Observer, 8080 slowweb) for
-- service name; the etcd registrar; anything else stays.
local function rewrite(a, prev, name, ports)
  if prev == "--listen" then return "127.0.0.1:0" end
  if prev == "--host" then return "127.0.0.1" end
  if prev == "--port" then return tostring(ports[name][tonumber(a)] or a) end
  if a == "etcd://etcd:2379" then return "etcd://127.0.0.1:" .. ports.etcd end
  if a == "slowweb:8080" then return "127.0.0.1:" .. ports.slowweb[8080] end
  local host, port = a:match("^(%d+%.%d+%.%d+%.%d+):(%d+)$")
  if host and ports[name][tonumber(port)] then return "127.0.0.1:" .. ports[name][tonumber(port)] end
  local url_port = a:match("^http://127%.0%.0%.1:(%d+)/")
  if url_port and ports[name][tonumber(url_port)] then
    return (a:gsub(":%d+/", ":" .. ports[name][tonumber(url_port)] .. "/", 1))
  end
  return a
end

--- Service name's command line (or health check test) rewritten to loopback ports.
function M.command(args, name, ports)
  local out = {}
  for i, a in ipairs(args) do
    local v = rewrite(a, args[i - 1], name, ports)
    if i == 1 and v == "halo" then v = M.halo_bin end
    for ip in v:gmatch("%d+%.%d+%.%d+%.%d+") do
      assert(ip == "127.0.0.1", ("%s: container address %s left in %q"):format(name, ip, v))
    end
    assert(not v:find("%f[%w]etcd:%d") and not v:find("%f[%w]slowweb:%d"), name .. ": host name left in " .. v)
    out[#out + 1] = v
  end
  return out
end

local function shell_line(args)
  local q = {}
  for i, a in ipairs(args) do q[i] = quote(a) end
  return table.concat(q, " ")
end

--- Polls fn (blocking) every 0.1 s until it returns a true value or seconds pass; the value or nil.
function M.wait(fn, seconds)
  local deadline = os.time() + seconds
  repeat
    local v = fn()
    if v then return v end
    os.execute("sleep 0.1")
  until os.time() > deadline
  return nil
end

-- Runs a service's health check (its test rewritten) once; true when it passes.
local function healthy(svc, name, ports)
  local test = svc.healthcheck.test
  assert(test[1] == "CMD", name .. ": health check test must be a CMD list")
  local _, ok = M.sh(shell_line(M.command({ select(2, unpack(test)) }, name, ports)) .. " >/dev/null 2>&1")
  return ok
end

--- True when this build has `halo observer` (issue 14).
function M.has_observer()
  local out = M.sh(M.halo_bin .. " observer --help 2>&1")
  return not out:find("unknown command 'observer'", 1, true)
end

local function start_all(t)
  local dir = t.dir
  local c = t.compose
  t.order = M.order(c)
  local wanted = {} -- {service, container port} of every address a command listens on
  for _, name in ipairs(t.order) do
    t.ports[name] = {}
    local cmd = c.services[name].command
    for i, a in ipairs(cmd) do
      local p = tonumber(a:match(":(%d+)$") or (cmd[i - 1] == "--port" and a))
      if p and cmd[i - 1] ~= "--listen" and not a:find("etcd:", 1, true) and not a:find("slowweb:", 1, true) then
        wanted[#wanted + 1] = { name, p }
      end
    end
  end
  local free = { helper.free_ports(#wanted + 3) }
  for i, w in ipairs(wanted) do t.ports[w[1]][w[2]] = free[i + 3] end
  local etcd_client, etcd_peer = free[1], free[2]
  t.ports.etcd, t.prom = etcd_client, free[3]
  t.pids.etcd = helper.start_etcd(dir, "deploy", etcd_client, etcd_peer)
  t.observer = false
  for _, name in ipairs(t.order) do
    if name == "observer" then
      t.observer = M.start_observer(t)
    else
      M.start_service(t, name)
    end
  end
  M.start_prometheus(t)
end

--- Starts the compose file's topology in dir: etcd, then every built
-- service in depends_on order, each waited for by its own health check
-- (rewritten), then Prometheus with deploy/prometheus.yml rewritten in its
-- targets (and scraping every SCRAPE_SECONDS). The observer starts only when
-- this build has `halo observer` (start_observer). Returns the topology t:
-- t.compose, t.ports[service][container port], t.pids[service], t.prom
-- (Prometheus' port), t.order, t.observer (false when skipped), t.dir.
-- On a failure it stops what it started and raises.
function M.start(dir)
  local t = { dir = dir, compose = M.compose(), pids = {}, ports = {} }
  local ok, err = pcall(start_all, t)
  if not ok then
    M.stop(t)
    error(err, 0)
  end
  return t
end

--- Starts service name of t (its command rewritten, its environment) and waits for its health check.
function M.start_service(t, name)
  local svc = t.compose.services[name]
  local env = {}
  for k, v in pairs(svc.environment or {}) do env[#env + 1] = k .. "=" .. quote(v) end
  table.sort(env)
  local line = "exec env " .. table.concat(env, " ") .. " " .. shell_line(M.command(svc.command, name, t.ports))
  t.pids[name] = helper.spawn_os(line, ("%s/%s.log"):format(t.dir, name))
  if svc.healthcheck and not svc.healthcheck.disable then
    local ok = M.wait(function() return healthy(svc, name, t.ports) end, 30)
    assert(ok, name .. " never passed its health check:\n" .. (helper.read(("%s/%s.log"):format(t.dir, name)) or ""))
  end
end

--- The Observer node (issue 14, `halo observer`): started like every other
-- service when this build has it; false (skipped) otherwise.
function M.start_observer(t)
  if not M.has_observer() then return false end
  M.start_service(t, "observer")
  return true
end

--- deploy/prometheus.yml with its targets on loopback and scraping every SCRAPE_SECONDS.
function M.prometheus_yml(t)
  local text = assert(helper.read("deploy/prometheus.yml"))
  text = text:gsub('"(node%d+):9090"', function(svc) return '"127.0.0.1:' .. t.ports[svc][9090] .. '"' end)
  text = text:gsub('"localhost:9091"', '"127.0.0.1:' .. t.prom .. '"')
  local s = M.SCRAPE_SECONDS .. "s"
  local n
  text, n = text:gsub("scrape_interval: 10s", ("scrape_interval: %s\n  scrape_timeout: %s"):format(s, s))
  assert(n == 1, "deploy/prometheus.yml: no global scrape_interval: 10s")
  return text
end

--- Starts Debian's Prometheus on the rewritten config and waits until it is ready.
function M.start_prometheus(t)
  helper.write(t.dir .. "/prometheus.yml", M.prometheus_yml(t))
  local out, ok = M.sh("promtool check config " .. t.dir .. "/prometheus.yml 2>&1")
  assert(ok, out)
  t.pids.prometheus = helper.spawn_os(("exec env -u LD_PRELOAD prometheus --config.file=%s/prometheus.yml --storage.tsdb.path=%s/prom " ..
    "--web.listen-address=127.0.0.1:%d"):format(t.dir, t.dir, t.prom), t.dir .. "/prometheus.log")
  assert(M.wait(function()
    return select(2, M.sh(("curl -sf --max-time 1 http://127.0.0.1:%d/-/ready >/dev/null"):format(t.prom)))
  end, 30), "Prometheus did not get ready: " .. (helper.read(t.dir .. "/prometheus.log") or ""))
end

--- Stops every process of t (SIGKILL).
function M.stop(t)
  for _, pid in pairs(t.pids) do helper.kill(pid) end
end

--- Runs query expr through Prometheus' HTTP API at port: the decoded answer.
function M.query(port, expr)
  local out = M.sh(("curl -sG --max-time 10 http://127.0.0.1:%d/api/v1/query --data-urlencode %s")
    :format(port, quote("query=" .. expr)))
  local ok, doc = pcall(cjson.decode, out)
  return ok and doc or { status = "error", error = out }
end

--- Every panel of a dashboard (rows' panels included, rows left out).
function M.panels(dashboard)
  local out = {}
  local function walk(list)
    for _, p in ipairs(list or {}) do
      if p.type == "row" then walk(p.panels) else out[#out + 1] = p end
    end
  end
  walk(dashboard.panels)
  return out
end

--- The dashboards (decoded) and their queries: {file, panel, expr}.
function M.dashboards()
  local boards, queries = {}, {}
  for _, file in ipairs(M.DASHBOARDS) do
    local text = assert(helper.read(file), file)
    local d = cjson.decode(text)
    boards[#boards + 1] = { file = file, doc = d }
    for _, p in ipairs(M.panels(d)) do
      for _, q in ipairs(p.targets or {}) do
        queries[#queries + 1] = { file = file, panel = p.title, expr = q.expr }
      end
    end
  end
  return boards, queries
end

--- The PromQL of a query variable: its query object's `query`, or the
-- legacy plain string Grafana also reads.
function M.variable_query(v)
  return type(v.query) == "table" and v.query.query or v.query
end

--- expr with Grafana's variables as Grafana fills them for a 1 h range:
-- $node (All) .*, $__rate_interval 4 scrape intervals, $__interval one,
-- ${__range_s} 3600.
function M.substitute(expr)
  local s = M.SCRAPE_SECONDS
  return (expr:gsub("%$node", ".*"):gsub("%$__rate_interval", (4 * s) .. "s"):gsub("%$__interval", s .. "s")
    :gsub("%${__range_s}", "3600"))
end

local KEYWORDS = { ["and"] = true, ["or"] = true, unless = true, by = true, without = true, on = true,
                   ignoring = true, group_left = true, group_right = true, bool = true, offset = true, inf = true,
                   nan = true }

--- The metric names a PromQL expression reads (no functions, label names, keywords, strings).
function M.metric_names(expr)
  local s = expr:gsub('"[^"]*"', '""'):gsub("%b{}", "{}"):gsub("%b[]", "")
  for _, kw in ipairs({ "by", "without", "on", "ignoring", "group_left", "group_right" }) do
    s = s:gsub("%f[%w_]" .. kw .. "%s*%b()", " ")
  end
  local names, seen = {}, {}
  for pos, word in s:gmatch("()([%a_:][%w_:]*)") do
    local after = s:sub(pos + #word):match("^%s*(.?)")
    local prev = pos > 1 and s:sub(pos - 1, pos - 1) or ""
    if after ~= "(" and not KEYWORDS[word:lower()] and not prev:match("[%w_.]") and not seen[word] then
      seen[word] = true
      names[#names + 1] = word
    end
  end
  return names
end

--- The families a radar /metrics at port exports: {name = type}.
function M.families(port)
  local body = M.sh(("curl -s --max-time 5 http://127.0.0.1:%d/metrics"):format(port))
  local fam = {}
  for name, kind in body:gmatch("# TYPE ([%w_:]+) (%a+)") do fam[name] = kind end
  return fam
end

--- VmRSS of OS process pid in bytes (nil when gone).
function M.rss(pid)
  local kb = (helper.read("/proc/" .. pid .. "/status") or ""):match("VmRSS:%s*(%d+) kB")
  return kb and tonumber(kb) * 1024
end

--- A compose memory size (134217728, "128m", "1g") in bytes.
function M.bytes(v)
  if type(v) == "number" then return v end
  local n, unit = tostring(v):lower():match("^(%d+)([kmg]?)b?$")
  return tonumber(n) * ({ [""] = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3 })[unit]
end

return M
