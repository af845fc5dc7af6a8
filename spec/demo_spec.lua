-- `halo demo` with 3 nodes (5 take longer than the suite's budget allows on
-- 2 shared cores, and the suite runs this twice, plain and ASan): the
-- cluster forms, the nodes have the cookie in their environment and not in
-- their argv, `halo call` lists a node's applications, every radar
-- answers, slowweb's metrics show up, each node
-- has its one zombee, a killed node is reported and restarted, and SIGTERM
-- stops the demo with status 0 leaving none of the OS processes it printed.
-- Then, in the same run, the steady state of scenarios-observer.md §3 and
-- the prompt table §4 on every node, read the way a tool reads it: the
-- spec's node joins the cluster (the demo's cookie and registrar) and asks
-- each node's demo_probe (scenarios/demo_node.lua) for its introspection
-- API, and scrapes radar's /metrics:
--   processes per application (latency 3, messaging 7, events 321,
--     lifecycle 3 + the supervisor's children);
--   one zombee, lifecycle.zombieChild of lifecycle_scenario, parent
--     zombie_maker, its stack in processPayloadDecompression (prompts 6, 7);
--   events per utilization state, by name: evt_0..9 active, 10..11 idle,
--     12..14 no_subscribers, 15..16 on_demand, 17..19 no_publishing, and
--     halo_event_utilization 10/2/3/2/3 (prompts 17-20);
--   latency_worker with queued messages and mailbox latency > 0 during a
--     burst (prompts 8, 23);
--   lifecycle_sup restarting its children: 1..100 live lifecycle.child
--     under it, and either (idle) inspect's restarts_total > 0 with its
--     simple_one_for_one instance count 10..100, or (busy) its queue of
--     children's exit signals shrinking; spawned and terminated totals
--     moving (prompt 10);
--   compressed and fragmented messages sent to and received from the other
--     demo nodes (prompts 2, 12);
--   the slowweb histogram and counter on every node's /metrics.
-- The demo has no knobs for the scenario timers: the checks wait for the
-- real ones (first bursts 5-8 s; lifecycle_sup restarts once it has
-- started its 10..100 children, ~0.5 s each).
local halo = require("halo")
local helper = require("helper")

local demo = require("demo_helper")
local halo_bin, read, alive, metrics, metric = demo.halo_bin, demo.read, demo.alive, demo.metrics, demo.metric

-- Sums family over the samples whose remote_node is one of names.
local function per_peer(body, family, names)
  local sum = 0
  for peer, v in (body or ""):gmatch("\nhalo_" .. family .. '{[^}]*remote_node="([^"]+)"[^}]*} ([%d.e+-]+)') do
    if names[peer] then sum = sum + tonumber(v) end
  end
  return sum
end

local EVENT_STATES = { active = { 0, 9 }, idle = { 10, 11 }, no_subscribers = { 12, 14 }, on_demand = { 15, 16 },
                       no_publishing = { 17, 19 } }

-- The steady state of every demo node (see the header); nodes: the table's
-- rows. Returns the facts that did not hold before the deadline, with what
-- was last seen.
local function steady_state(nodes, deadline_ms)
  local demo_names = {}
  for _, n in ipairs(nodes) do demo_names[n.name] = true end
  local function probe(node, ...)
    local r = halo.call(halo.net.process_id("demo_probe", node), { ... }, 3000)
    if r then return r[1], r[2] end
    return nil
  end
  local pending, seen, first = {}, {}, {}
  local facts = {}
  local function fact(name, n, check) facts[#facts + 1] = { name = name, node = n, check = check } end
  for _, n in ipairs(nodes) do
    fact("processes per application", n, function()
      local counts = {}
      for _, row in ipairs(probe(n.name, "process_list", {}) or {}) do
        counts[row.Application] = (counts[row.Application] or 0) + 1
      end
      seen[n.name .. " apps"] = counts
      local children = #(probe(n.name, "process_list", { behavior = "lifecycle.child" }) or {})
      return counts.latency_scenario == 3 and counts.messaging_scenario == 7 and counts.events_scenario == 321
        and counts.lifecycle_scenario == 3 + children
    end)
    fact("one zombee in processPayloadDecompression", n, function()
      local rows = probe(n.name, "process_list", { state = "zombee" }) or {}
      seen[n.name .. " zombees"] = rows
      if #rows ~= 1 then return false end
      local z = rows[1]
      local stack = probe(n.name, "process_stack", z.PID) or ""
      seen[n.name .. " stack"] = stack
      return z.Behavior == "lifecycle.zombieChild" and z.Application == "lifecycle_scenario"
        and z.Parent == probe(n.name, "process_lookup", "zombie_maker") and z.Name == ""
        and stack:find("processPayloadDecompression", 1, true) ~= nil
        and metric(metrics(n.port), "halo_processes_zombie{[^}]*}") == 1
    end)
    fact("events per utilization state", n, function()
      local events = probe(n.name, "event_list", { name = "evt_", limit = -1 }) or {}
      local states = {}
      for _, e in ipairs(events) do states[e.Name] = e.UtilizationState .. "/" .. e.Subscribers end
      seen[n.name .. " events"] = states
      if #events ~= 20 then return false end
      for state, range in pairs(EVENT_STATES) do
        for i = range[1], range[2] do
          local st, subs = (states["evt_" .. i] or ""):match("^(.-)/(%d+)$")
          if st ~= state or ((tonumber(subs) > 0) ~= (state == "active" or state == "no_publishing")) then
            return false
          end
        end
      end
      local body = metrics(n.port)
      for state, range in pairs(EVENT_STATES) do
        if metric(body, 'halo_event_utilization{[^}]*state="' .. state .. '"[^}]*}') ~= range[2] - range[1] + 1 then
          return false
        end
      end
      return true
    end)
    fact("latency_worker queued with mailbox latency > 0", n, function()
      local w = (probe(n.name, "process_list", { name = "latency_worker" }) or {})[1]
      if w and w.MailboxLatency > 0 and w.MessagesMailbox > 0 then seen[n.name .. " latency_worker"] = w end
      return w and w.MailboxLatency > 0 and w.MessagesMailbox > 0
    end)
    -- lifecycle_sup restarts a child only when it handles that child's exit
    -- signal. An idle supervisor answers inspect (restarts_total); a busy
    -- one (starting its children, or restarting one per ~0.5 s with exits
    -- queued behind) does not, so its queue is watched instead: exits pile
    -- up while it starts children and it restarts as the queue shrinks. It
    -- is inspected only while idle; an inspect that timed out may still sit
    -- in that queue, so the queue must shrink by more than those.
    local lc = { max_queued = 0, timeouts = 0 }
    fact("lifecycle_sup restarts its children", n, function()
      local sup = probe(n.name, "process_list", { name = "lifecycle_sup" })
      sup = sup and sup[1]
      local children = sup and probe(n.name, "process_list", { behavior = "lifecycle.child" })
      if not children then return false end
      local live = 0
      for _, c in ipairs(children) do
        if c.Parent == sup.PID then live = live + 1 end
      end
      lc.live, lc.queued = live, sup.MessagesMailbox
      lc.max_queued = math.max(lc.max_queued, sup.MessagesMailbox)
      if sup.MessagesMailbox == 0 and sup.State == "sleep" then
        local info = probe(n.name, "inspect", "lifecycle_sup")
        if info then lc.info = info else lc.timeouts = lc.timeouts + 1 end
      end
      seen[n.name .. " lifecycle_sup"] = lc
      if live < 1 or live > 100 then return false end
      local info = lc.info
      if info and tonumber(info.restarts_total) > 0 then
        local instances = tonumber(info.instances_total)
        return instances >= 10 and instances <= 100 and info["child:lifecycle_child"] == info.instances_total
      end
      return lc.max_queued - sup.MessagesMailbox >= lc.timeouts + 2
    end)
    fact("spawned and terminated totals move", n, function()
      local body = metrics(n.port)
      local now = { metric(body, "halo_processes_spawned_total{[^}]*}"), metric(body, "halo_processes_terminated_total{[^}]*}") }
      if not now[1] or not now[2] then return false end
      first[n.name] = first[n.name] or now
      seen[n.name .. " spawned/terminated"] = { first[n.name], now }
      return now[1] > first[n.name][1] and now[2] > first[n.name][2]
    end)
    fact("compressed and fragmented messages both ways", n, function()
      local body = metrics(n.port)
      local c = { per_peer(body, "remote_compressed_sent_total", demo_names),
                  per_peer(body, "remote_fragment_messages_sent_total", demo_names),
                  per_peer(body, "remote_decompressed_recv_total", demo_names),
                  per_peer(body, "remote_fragment_messages_received_total", demo_names) }
      seen[n.name .. " compressed/fragments sent/recv"] = c
      return c[1] > 0 and c[2] > 0 and c[3] > 0 and c[4] > 0
    end)
    fact("slowweb metrics on /metrics", n, function()
      local body = metrics(n.port) or ""
      return body:find("\n# TYPE slowweb_request_duration_seconds histogram\n", 1, true) ~= nil
        and body:find('\nslowweb_request_duration_seconds_bucket{[^}]*le="0.015"[^}]*} %d') ~= nil
        and (metric(body, "slowweb_request_duration_seconds_count{[^}]*}") or 0) > 0
        and (metric(body, 'slowweb_requests_total{[^}]*status="ok"[^}]*}') or 0) > 0
    end)
  end
  for _, f in ipairs(facts) do pending[f] = true end
  helper.wait_until(function()
    for _, f in ipairs(facts) do
      if pending[f] and f.check() then pending[f] = nil end
    end
    return next(pending) == nil
  end, deadline_ms, 20)
  local missing = {}
  for _, f in ipairs(facts) do
    if pending[f] then missing[#missing + 1] = f.node.name .. ": " .. f.name end
  end
  return missing, seen
end

describe("halo demo", function()
  local dir, demo_pid
  local pids = {}

  setup(function()
    dir = helper.script_dir("README", "halo demo spec run directory\n")
  end)
  teardown(function()
    if demo_pid then helper.kill(demo_pid) end
    for _, pid in ipairs(pids) do helper.kill(pid) end
    os.execute("rm -rf " .. dir)
  end)

  it("refuses bad options with status 2 and starts nothing", function()
    for _, case in ipairs({ { "--nodes 0", "--nodes must be 1..50" }, { "--log-level loud", "--log-level must be" },
                            { "--registrar consul://x", "--registrar must be etcd://HOST:PORT" },
                            { "--bogus", "unknown or incomplete option '--bogus'" } }) do
      local f = io.popen(("%s demo %s --run-dir %s/bad 2>&1; echo status=$?"):format(halo_bin, case[1], dir))
      local text = f:read("*a")
      f:close()
      assert.truthy(text:find(case[2], 1, true), text)
      assert.truthy(text:find("status=2", 1, true), text)
    end
    assert.is_nil(io.open(dir .. "/bad"))
  end)

  it("leaves no child behind when the demo itself is SIGKILLed: they notice their parent's death", function()
    local d = demo.start(dir .. "/killed", ("--nodes 1 --base-port %d --log-level info --mcp-port 0 --observer-port 0"):format(helper.random_port()))
    local started = { d.slowweb, d.nodes[1] and d.nodes[1].pid } -- slowweb and node1
    for _, pid in ipairs(started) do pids[#pids + 1] = pid end
    assert.are.equal(2, #started)
    os.execute("kill -KILL " .. d.pid)
    helper.run(function()
      assert(helper.wait_until(function() return not alive(started[1]) and not alive(started[2]) end, 10000, 50),
        "orphaned: " .. table.concat(started, " "))
    end, { timeout = 15000 })
  end)

  it("on a terminal, ends the progress line before reporting an exit", function()
    local base = helper.random_port()
    local run = dir .. "/tty"
    local slowweb = helper.run(function()
      -- node1's metrics port is taken: it exits at once, before the cluster forms
      local srv = assert(halo.http.serve({ host = "127.0.0.1", port = base + 1, routes = {} }))
      os.execute(("script -qfc '%s demo --nodes 1 --base-port %d --log-level info --mcp-port 0 --observer-port 0 --run-dir %s' /dev/null " ..
        "< /dev/null > %s.out 2>&1 &"):format(halo_bin, base, run, run))
      assert(helper.wait_until(function() return read(run .. ".out"):find("exited with status 1", 1, true) end,
        10000, 50), "node1 did not exit:\n" .. read(run .. ".out"))
      srv:close()
      return tonumber(read(run .. ".out"):match("\n  slowweb%s+(%d+)"))
    end, { timeout = 15000 })
    pids[#pids + 1] = slowweb
    -- the demo is slowweb's parent
    os.execute("kill -TERM " .. read("/proc/" .. slowweb .. "/stat"):match("^%d+ %b() %S+ (%d+)"))
    local text = read(run .. ".out")
    assert.truthy(text:find("\rcluster: 0/1 nodes joined", 1, true), text)
    assert.is_nil(text:find("\027%[Khalo demo:"), text)
  end)

  it("forms a 3-node cluster, restarts a killed node and stops cleanly on SIGTERM", function()
    local base, mcp_port, observer_port = helper.random_port(), helper.free_ports(2)
    local d = demo.start(dir, ("--nodes 3 --base-port %d --mcp-port %d --observer-port %d"):format(base, mcp_port,
      observer_port))
    demo_pid = d.pid
    local nodes, out = d.nodes, d.out
    for _, n in ipairs(nodes) do pids[#pids + 1] = n.pid end
    pids[#pids + 1] = d.slowweb
    helper.run(function()
      -- the table: slowweb and the nodes with their PIDs and metrics URLs
      assert.are.equal(3, #nodes)
      assert.are.same({ base + 1, base + 2, base + 3 }, { nodes[1].port, nodes[2].port, nodes[3].port })
      assert.is_true(alive(d.slowweb))
      assert.truthy(out():find("cluster: 3/3 nodes joined", 1, true))

      -- the cookie reaches the nodes in their environment, never in their argv
      -- (world-readable); `halo call` reaches a node with it
      local cookie = d.cookie
      for _, n in ipairs(nodes) do
        assert.is_nil(read("/proc/" .. n.pid .. "/cmdline"):find(cookie, 1, true))
        assert.truthy(read("/proc/" .. n.pid .. "/environ"):find("\0HALO_COOKIE=" .. cookie .. "\0", 1, true))
      end
      local call = io.popen(("HALO_COOKIE=%s %s call --registrar embedded:%d node3@localhost application.list; echo status=$?")
        :format(cookie, halo_bin, base + 99))
      local listed = call:read("*a")
      call:close()
      assert.truthy(listed:find("status=0", 1, true), listed)
      for _, app in ipairs({ "latency_scenario", "messaging_scenario", "lifecycle_scenario", "events_scenario" }) do
        assert.truthy(listed:find('"name": "' .. app .. '"', 1, true), listed)
      end

      -- node1 serves MCP: the table shows its URL, and a tool proxied to
      -- node2 finds node2's zombee
      assert.truthy(out():find(("http://127.0.0.1:%d/mcp"):format(mcp_port), 1, true), out())
      local mcp = require("mcp_helper").client(mcp_port)
      assert.are.equal(200, mcp.init().status)
      assert(helper.wait_until(function()
        local r = mcp.call("process_list", { state = "zombee", node = "node2@localhost" })
        local rows = r and r.result and not r.result.isError and require("cjson").decode(r.result.content[1].text)
        return rows and #rows == 1 and rows[1].Behavior == "lifecycle.zombieChild"
      end, 20000, 200), "no zombee found through MCP on node2")

      -- observer@localhost serves the Observer: the table shows its URL, and
      -- its first SSE event lists the three nodes
      local observer_url = ("http://127.0.0.1:%d/"):format(observer_port)
      assert.truthy(out():find("\n  observer@localhost%s+%d+%s+%-%s+%-%s+" .. observer_url:gsub("%p", "%%%0")), out())
      local observer_pid = tonumber(out():match("\n  observer@localhost%s+(%d+)"))
      pids[#pids + 1] = observer_pid
      assert(helper.wait_until(function()
        local f = io.popen(("unset LD_PRELOAD; curl -sN -m 1 %ssse"):format(observer_url))
        local first = f:read("*a"):match("event: connected\ndata: ([^\n]+)")
        f:close()
        local nodes_seen = 0
        for name in (first or ""):gmatch('"name":"(node%d@localhost)"') do nodes_seen = nodes_seen + 1 end
        return nodes_seen == 3
      end, 20000, 100), "the observer does not list the 3 nodes")

      -- every radar answers; each node is connected to the two others and the observer's node
      for _, n in ipairs(nodes) do
        local live = halo.http.request({ host = "127.0.0.1", port = n.port, path = "/health/live", timeout = 2000 })
        assert.are.equal(200, live and live.status)
        assert(helper.wait_until(function()
          return metrics(n.port):match("\nhalo_connected_nodes_total{[^}]*} (%d+)") == "3"
        end, 10000, 100), n.name .. " is not connected to 3 nodes")
      end
      -- the latency workers called slowweb; the zombie maker made one zombee per node
      assert(helper.wait_until(function()
        for _, n in ipairs(nodes) do
          local body = metrics(n.port)
          if body and body:find('\nslowweb_requests_total{[^}]*status="ok"[^}]*} [1-9]') then return true end
        end
      end, 20000, 200), "no slowweb_requests_total on any node")
      assert(helper.wait_until(function()
        for _, n in ipairs(nodes) do
          local body = metrics(n.port)
          if not body or body:match("\nhalo_processes_zombie{[^}]*} (%d+)") ~= "1" then return false end
        end
        return true
      end, 20000, 200), "not one zombee on every node")

      -- a node killed from outside is reported and restarted after the
      -- 0.5 s it announces (not at the next 2 s poll of the formed cluster)
      local killed = halo.now()
      os.execute("kill -KILL " .. nodes[2].pid)
      local restarted
      assert(helper.wait_until(function()
        restarted = tonumber(out():match("node2@localhost restarted, pid (%d+)"))
        return restarted
      end, 10000, 50), "node2 was not restarted:\n" .. out())
      assert.truthy(out():find("node2@localhost %(pid %d+%) exited with signal 9; restarting in 0%.5 s"))
      assert.is_true(halo.now() - killed < 1500, ("restarted after %d ms"):format(halo.now() - killed))
      pids[#pids + 1] = restarted
      assert.truthy(out():find(("node2@localhost (pid %d) exited with signal 9"):format(nodes[2].pid), 1, true))
      assert.is_true(alive(restarted))
      assert(helper.wait_until(function()
        local body = metrics(nodes[2].port)
        return body and body:match("\nhalo_connected_nodes_total{[^}]*} (%d+)") == "3"
      end, 10000, 100), "the restarted node2 did not rejoin")
    end, { timeout = 60000 })

    -- the steady state, read by a node of the cluster
    local cookie = d.cookie
    local missing, seen = helper.run(function() return steady_state(nodes, 65000) end,
      { name = "demospec@localhost", cookie = cookie, listen = "127.0.0.1:0",
        registrar = "embedded:" .. (base + 99), timeout = 75000 })
    assert(#missing == 0, "not in the steady state:\n  " .. table.concat(missing, "\n  ")
      .. "\nlast seen: " .. require("cjson").encode(seen))

    -- SIGTERM: the demo exits 0 and no process it started is left
    assert.are.equal("0", demo.stop(d))
    assert.truthy(read(dir .. "/demo.out"):find("halo demo: stopping 5 processes", 1, true))
    for _, pid in ipairs(pids) do assert.is_false(alive(pid), "left running: " .. pid) end
    demo_pid = nil
  end)
end)
