-- deploy/ (the demo in docker compose) proven without docker: Debian's
-- docker-compose validates the compose file and promtool prometheus.yml;
-- the dashboards are checked as JSON and are what their generator writes;
-- the Dockerfile builds with the make targets the README's set-up runs.
-- Then the compose file's topology runs here (spec/deploy_helper.lua: the
-- same commands, environment and health checks on loopback ports, Debian's
-- etcd and Prometheus with deploy/prometheus.yml rewritten in its targets
-- and scraping every second), and every query of every panel runs through
-- Prometheus' HTTP API and must answer with series; every metric family
-- the queries name must be exported by the live radars; every node stays
-- under its compose memory limit.
local helper = require("helper")
local deploy = require("deploy_helper")

local sh = deploy.sh

describe("deploy/", function()
  it("docker-compose config validates the compose file; its topology is the reference's", function()
    local out, ok = sh("docker-compose -f deploy/docker-compose.yml config -q 2>&1")
    assert.is_true(ok, out)
    local c = deploy.compose()
    local names = {}
    for name in pairs(c.services) do names[#names + 1] = name end
    table.sort(names)
    assert.same({ "etcd", "grafana", "node1", "node2", "node3", "node4", "node5", "observer", "prometheus", "slowweb" },
      names)
    local published = {}
    for name, s in pairs(c.services) do
      assert.truthy(s.mem_limit, name .. " has no mem_limit")
      for _, p in ipairs(s.ports or {}) do
        local host_ip, port = tostring(p):match("^([%d.]+):(%d+):")
        assert.equal("127.0.0.1", host_ip, name .. " publishes beyond loopback: " .. tostring(p))
        published[#published + 1] = tonumber(port)
      end
    end
    table.sort(published)
    assert.same({ 8888, 9091, 9911, 9922 }, published) -- Grafana, Prometheus, Observer, MCP
    assert.truthy(c.services.grafana.ports[1]:find("8888:3000", 1, true))
    assert.truthy(c.services.node1.ports[1]:find("9922:9922", 1, true))
    assert.truthy(c.services.observer.ports[1]:find("9911:9911", 1, true))
    assert.truthy(c.services.prometheus.ports[1]:find("9091:9091", 1, true))

    local subnet = c.networks["observability-net"].ipam.config[1].subnet
    for i = 1, 5 do
      local name = "node" .. i
      local s = c.services[name]
      local line = table.concat(s.command, " ")
      assert.truthy(line:find("--registrar etcd://etcd:2379 --cluster observability", 1, true), line)
      assert.truthy(line:find("--metrics 0.0.0.0:9090", 1, true), line)
      assert.truthy(line:find("scenarios/demo_node.lua slowweb:8080", 1, true), line)
      -- the node listens on (and so registers in etcd) its fixed address on the network
      local ip = s.networks["observability-net"].ipv4_address
      assert.truthy(line:find("--listen " .. ip .. ":11144", 1, true), line)
      assert.equal(subnet:match("^(%d+%.%d+%.%d+%.)"), ip:match("^(%d+%.%d+%.%d+%.)"))
      assert.truthy(#s.environment.HALO_COOKIE > 0)
      assert.falsy(line:find("--cookie", 1, true), "the cookie belongs in the environment")
      assert.truthy(s.healthcheck.test[#s.healthcheck.test]:find("/health/live", 1, true))
      -- start order: node1 after etcd (and slowweb) pass their health checks, node i after node i-1
      local dep = i == 1 and "etcd" or "node" .. (i - 1)
      assert.equal("service_healthy", s.depends_on[dep].condition, name)
    end
    assert.equal("service_healthy", c.services.node1.depends_on.slowweb.condition)
    assert.truthy(table.concat(c.services.node1.command, " "):find("--mcp 0.0.0.0:9922", 1, true))
    local obs = table.concat(c.services.observer.command, " ")
    assert.truthy(obs:find("^halo observer %-%-host 0%.0%.0%.0 %-%-port 9911 "), obs)
    assert.truthy(obs:find("--registrar etcd://etcd:2379 --cluster observability", 1, true), obs)
    -- Grafana reads what the compose file mounts: the provider's path, the home
    -- dashboard, the datasource's URL (the prometheus service and its port)
    local g = c.services.grafana
    local provider = assert(helper.read("deploy/grafana/provisioning/dashboards/halo.yml"))
    local dash_dir = assert(provider:match("\n%s+path: (%S+)"))
    local mounts = {}
    for _, v in ipairs(g.volumes) do
      local src, dst = v:match("/(deploy/grafana/%S-):(%S-):ro$")
      assert.truthy(src, "grafana volume " .. v)
      mounts[dst] = src
    end
    assert.equal("deploy/grafana/dashboards", mounts[dash_dir], "the dashboard provider's path " .. dash_dir)
    assert.equal("deploy/grafana/provisioning", mounts["/etc/grafana/provisioning"])
    local home = g.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH
    assert.equal(dash_dir .. "/halo-cluster.json", home)
    assert.truthy(helper.read("deploy/grafana/dashboards/halo-cluster.json"))
    local url = assert(helper.read(deploy.DATASOURCE):match("\n%s+url: (%S+)"))
    local prom_port = table.concat(c.services.prometheus.command, " "):match("%-%-web%.listen%-address=:(%d+)")
    assert.equal("http://prometheus:" .. prom_port, url)
    -- the nodes' debug logs (tens of KB a second each) are rotated by docker
    for _, name in ipairs({ "node1", "node2", "node3", "node4", "node5", "observer", "slowweb" }) do
      local log = c.services[name].logging
      assert.truthy(log and log.options and log.options["max-size"], name .. " has no log rotation")
    end
    assert.same({ "node1", "node2", "node3", "node4", "node5", "observer", "slowweb" }, (function()
      local o = deploy.order(c)
      table.sort(o)
      return o
    end)())
  end)

  it("has the Makefile targets up, down, restart, logs, status and clean; up prints the URLs", function()
    local out, ok = sh("make -s -C deploy config 2>&1")
    assert.is_true(ok, out)
    out, ok = sh("make -s -n -C deploy up down restart logs status clean 2>&1")
    assert.is_true(ok, out)
    for _, s in ipairs({ "docker-compose -f docker-compose.yml up -d --build", "http://localhost:8888/",
                         "http://localhost:9911/", "http://localhost:9922/mcp", "http://localhost:9091/",
                         "docker-compose -f docker-compose.yml down", "docker-compose -f docker-compose.yml logs -f",
                         "docker-compose -f docker-compose.yml ps", "etcdctl --endpoints=http://localhost:2379 endpoint health",
                         "down -v --rmi all" }) do
      assert.truthy(out:find(s, 1, true), s .. " not in:\n" .. out)
    end
    -- with Docker's compose plugin present the Makefile uses it, not the legacy binary
    local bin = helper.script_dir("docker", "#!/bin/sh\n[ \"$1 $2\" = \"compose version\" ]\n")
    out, ok = sh(("chmod +x %s/docker && PATH=%s:$PATH make -s -n -C deploy up 2>&1"):format(bin, bin))
    os.execute("rm -rf " .. bin)
    assert.is_true(ok, out)
    assert.truthy(out:find("docker compose -f docker-compose.yml up -d --build", 1, true), out)
  end)

  it("promtool check config accepts prometheus.yml: the five radars every 10 s", function()
    local out, ok = sh("promtool check config deploy/prometheus.yml 2>&1")
    assert.is_true(ok, out)
    local text = helper.read("deploy/prometheus.yml")
    assert.truthy(text:find("scrape_interval: 10s", 1, true))
    local n = 0
    for _ in text:gmatch('"node%d:9090"') do n = n + 1 end
    assert.equal(5, n)
  end)

  it("has the dashboards deploy/grafana/dashboards.lua writes", function()
    local dir = helper.script_dir("README", "dashboards\n")
    local out, ok = sh(("%s run --no-mcp deploy/grafana/dashboards.lua %s 2>&1"):format(deploy.halo_bin, dir))
    assert.is_true(ok, out)
    for _, file in ipairs(deploy.DASHBOARDS) do
      local fresh = helper.read(dir .. "/" .. file:match("[^/]+$"))
      assert.truthy(fresh == helper.read(file), file .. " differs from what the generator writes (make -C deploy dashboards)")
    end
    os.execute("rm -rf " .. dir)
  end)

  it("dashboards: unique uids, the provisioned datasource on every panel, a query in every panel", function()
    local ds_text = helper.read(deploy.DATASOURCE)
    local ds = assert(ds_text:match("\n%s+uid: (%S+)"))
    local ds_type = assert(ds_text:match("\n%s+type: (%S+)"))
    local boards, queries = deploy.dashboards()
    local uids, panels = {}, 0
    for _, b in ipairs(boards) do
      assert.falsy(uids[b.doc.uid], "duplicate uid " .. tostring(b.doc.uid))
      uids[b.doc.uid] = true
      -- object datasource refs ({type, uid}) need schema 36 or later
      assert.truthy(type(b.doc.schemaVersion) == "number" and b.doc.schemaVersion >= 36, b.file .. ": schemaVersion")
      -- the node variable: a Prometheus label_values query, multi-select with All as .*
      local v = b.doc.templating.list[1]
      assert.equal("node", v.name)
      assert.equal("query", v.type)
      assert.same({ type = ds_type, uid = ds }, v.datasource)
      local vq = deploy.variable_query(v)
      assert.truthy(type(vq) == "string", b.file .. ": the node variable has no query")
      assert.truthy(vq:find("^label_values%([%w_:]+, node%)$"), vq)
      assert.equal(vq, v.definition)
      assert.is_true(v.multi and v.includeAll)
      assert.equal(".*", v.allValue)
      local ids = {}
      for _, p in ipairs(deploy.panels(b.doc)) do
        panels = panels + 1
        assert.truthy(deploy.PANEL_TYPES[p.type], b.file .. ": " .. p.title .. ": not a Grafana panel type: " .. tostring(p.type))
        assert.falsy(ids[p.id], b.file .. ": duplicate panel id " .. tostring(p.id))
        ids[p.id] = true
        assert.same({ type = ds_type, uid = ds }, p.datasource, b.file .. ": " .. p.title)
        assert.truthy(#(p.targets or {}) >= 1, b.file .. ": " .. p.title .. " has no query")
        for _, q in ipairs(p.targets) do
          assert.same({ type = ds_type, uid = ds }, q.datasource, b.file .. ": " .. p.title)
          assert.truthy(type(q.expr) == "string" and #q.expr > 0, b.file .. ": " .. p.title .. " has an empty query")
          assert.falsy(q.expr:find("ergo_", 1, true), q.expr)
          -- $node is a multi-value regex (All = .*): only =~ matches it
          for before in q.expr:gmatch('([^"]*)"%$node"') do
            assert.truthy(before:find("=~$"), b.file .. ": " .. p.title .. ": $node without =~ in " .. q.expr)
          end
        end
      end
    end
    assert.same({ ["halo-cluster"] = true, ["slowweb-http"] = true }, uids)
    print(("\ndeploy: %d dashboards, %d panels, %d queries checked statically"):format(#boards, panels, #queries))
  end)

  it("builds the image with the make targets the README's set-up runs", function()
    local docker = helper.read("deploy/Dockerfile")
    local makefile = helper.read("Makefile")
    local readme = helper.read("README.md")
    local setup = assert(readme:match("\n## Set%-up[^\n]*\n(.-)\n## "), "README has no Set-up section")
    local named = {}
    for t in setup:gmatch("\nmake ([%w-]+)") do named[t] = true end
    assert.same({ demo = true, test = true }, named)
    -- what the set-up's targets build first (their prerequisites in the Makefile)
    local built = {}
    for t in pairs(named) do
      for pre in (makefile:match("\n" .. t .. ":([^\n]*)") or ""):gmatch("[%w-]+") do built[pre] = true end
    end
    local targets = {}
    for args in docker:gmatch("\nRUN[^\n]-%f[%w]make ([^\n&;|]+)") do
      for w in args:gmatch("%S+") do
        if not w:find("=", 1, true) and not w:find("^%-") and not w:find("^'") then targets[#targets + 1] = w end
      end
    end
    assert.truthy(#targets > 0, "the Dockerfile runs no make target")
    for _, t in ipairs(targets) do
      assert.truthy(built[t], ("Dockerfile's make %s is not what make demo / make test build"):format(t))
      assert.truthy(readme:find("`make " .. t .. "`", 1, true), "README does not name make " .. t)
    end
    for _, tool in ipairs({ "cmake", "gcc", "cc", "clang", "ninja" }) do
      assert.falsy(docker:find("\nRUN[^\n]*%f[%w]" .. tool .. "%f[%W]"), "the Dockerfile runs " .. tool .. " itself")
    end
    -- the build packages are the first of the packages make deps installs for the tests
    assert.truthy(makefile:find("\nPACKAGES%s*:=%s*%$%(BUILD_PACKAGES%)"))
    assert.truthy(docker:find("PACKAGES='$(BUILD_PACKAGES)'", 1, true))
    for _, dir in ipairs({ "lua", "scenarios", "mcp_tools", "observer/www" }) do
      assert.truthy(docker:find("COPY %-%-from=build /opt/halo/" .. dir:gsub("%p", "%%%0") .. " "), dir)
    end
    assert.truthy(docker:find("chmod -R a+rX lua scenarios mcp_tools observer/www", 1, true),
      "the runtime user may not read the Lua trees (COPY keeps the context's modes)")
    assert.truthy(docker:find("\nUSER halo\n", 1, true))
    assert.truthy(docker:find("\nHEALTHCHECK ", 1, true))
  end)
end)

describe("the deploy topology on this machine", function()
  local dir, t

  setup(function()
    dir = helper.script_dir("README", "deploy spec run directory\n")
    t = deploy.start(dir)
  end)
  teardown(function()
    if t then deploy.stop(t) end
    os.execute("rm -rf " .. dir)
  end)

  it("started every service in the compose file's order", function()
    local at = {}
    for i, name in ipairs(t.order) do at[name] = i end
    assert.truthy(at.slowweb < at.node1, table.concat(t.order, " "))
    for i = 2, 5 do assert.truthy(at["node" .. (i - 1)] < at["node" .. i], table.concat(t.order, " ")) end
    assert.truthy(at.observer)
    if not t.observer then
      print("\ndeploy: observer step skipped: this build has no `halo observer` (issue 14, branch obs-server)")
    end
  end)

  it("answers every panel query of both dashboards with series", function()
    local _, queries = deploy.dashboards()
    local started = os.time()
    assert(deploy.wait(function()
      local up = deploy.query(t.prom, "up")
      if up.status ~= "success" or #up.data.result ~= 6 then return false end
      for _, s in ipairs(up.data.result) do
        if s.value[2] ~= "1" then return false end
      end
      return true
    end, 30), "the radars are not all up in Prometheus")
    -- poll the queries that still answer nothing (rates need samples, the
    -- liveness family processes up for 60 s) until none is left
    local pending, panels = {}, {}
    for i, q in ipairs(queries) do
      pending[i] = q
      panels[q.file .. "\0" .. q.panel] = true
    end
    local deadline = started + 85
    while next(pending) and os.time() <= deadline do
      for i, q in pairs(pending) do
        local expr = deploy.substitute(q.expr)
        assert.falsy(expr:find("$", 1, true), expr)
        local doc = deploy.query(t.prom, expr)
        assert.equal("success", doc.status, ("%s / %s: %s\n%s"):format(q.file, q.panel, expr, tostring(doc.error)))
        if #doc.data.result > 0 then pending[i] = nil end
      end
      if next(pending) then os.execute("sleep 1") end
    end
    local empty = {}
    for _, q in pairs(pending) do empty[#empty + 1] = q.panel .. ": " .. deploy.substitute(q.expr) end
    assert.same({}, empty)
    local n = 0
    for _ in pairs(panels) do n = n + 1 end
    print(("\ndeploy: %d panels, %d queries answered with series after %d s of scraping"):format(n, #queries,
      os.time() - started))
  end)

  it("lists every node in each dashboard's node variable (its label_values query)", function()
    local want = {}
    for i = 1, 5 do
      want[#want + 1] = table.concat(t.compose.services["node" .. i].command, " "):match("%-%-name (%S+)")
    end
    table.sort(want)
    local boards = deploy.dashboards()
    for _, b in ipairs(boards) do
      local metric = deploy.variable_query(b.doc.templating.list[1]):match("^label_values%(([%w_:]+), node%)$")
      local got
      assert(deploy.wait(function()
        local doc = deploy.query(t.prom, "count by (node) (" .. metric .. ")")
        got = {}
        for _, s in ipairs(doc.data and doc.data.result or {}) do got[#got + 1] = s.metric.node end
        table.sort(got)
        return #got == #want
      end, 30), b.file .. ": label_values(" .. metric .. ", node) gives " .. table.concat(got, " "))
      assert.same(want, got)
    end
  end)

  it("exports every metric family the dashboards' queries name", function()
    local families = {}
    for i = 1, 5 do
      for name, kind in pairs(deploy.families(t.ports["node" .. i][9090])) do families[name] = kind end
    end
    assert.truthy(families.halo_processes_total and families.slowweb_request_duration_seconds)
    local _, queries = deploy.dashboards()
    local checked, missing = {}, {}
    for _, q in ipairs(queries) do
      for _, name in ipairs(deploy.metric_names(q.expr)) do
        local base = name:match("^(.-)_bucket$") or name:match("^(.-)_sum$") or name:match("^(.-)_count$")
        local ok = families[name] or (base and families[base] == "histogram")
        if not ok then missing[#missing + 1] = q.panel .. ": " .. name end
        checked[name] = true
      end
    end
    assert.same({}, missing)
    local n = 0
    for _ in pairs(checked) do n = n + 1 end
    assert.truthy(n >= 60, "only " .. n .. " families found in the queries")
    print(("\ndeploy: %d metric families named by the queries, all exported"):format(n))
  end)

  it("keeps every service within its compose memory limit", function()
    local sanitized = (os.getenv("HALO_BUILD") or "build") ~= "build"
    local lines = {}
    for _, name in ipairs(t.order) do
      local pid = t.pids[name]
      if pid then
        local rss, limit = deploy.rss(pid), deploy.bytes(t.compose.services[name].mem_limit)
        assert.truthy(rss, name .. " is gone")
        lines[#lines + 1] = ("%s %.1f/%d MB"):format(name, rss / 2 ^ 20, limit / 2 ^ 20)
        -- a sanitizer's shadow memory is no measure of the image's binary
        if not sanitized then assert.truthy(rss < limit, lines[#lines]) end
      end
    end
    print("\ndeploy: RSS/limit " .. table.concat(lines, ", "))
  end)
end)
