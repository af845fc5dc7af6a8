-- `halo demo` with 3 nodes (5 take longer than the suite's budget allows on
-- 2 shared cores): the cluster forms, every radar answers, slowweb's
-- metrics show up, each node has its one zombee, a killed node is reported
-- and restarted, and SIGTERM stops the demo with status 0 leaving none of
-- the OS processes it printed.
local halo = require("halo")
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- True while OS process pid exists and is not a zombie.
local function alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= "" and not stat:match("^%d+ %b() Z")
end

local function metrics(port)
  local res = halo.http.request({ host = "127.0.0.1", port = port, path = "/metrics", timeout = 2000 })
  return res and res.status == 200 and res.body or nil
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
    local base = helper.random_port()
    local run = dir .. "/killed"
    os.execute(("%s demo --nodes 1 --base-port %d --log-level info --run-dir %s > %s.out 2>&1 & echo $! > %s.pid")
      :format(halo_bin, base, run, run, run))
    assert(helper.wait_file(run .. ".pid"), "the demo did not start")
    local pid = tonumber(read(run .. ".pid"))
    local started = {}
    helper.run(function()
      assert(helper.wait_until(function() return read(run .. ".out"):find("cluster formed", 1, true) end, 20000, 50),
        "the cluster did not form:\n" .. read(run .. ".out"))
    end, { timeout = 30000 })
    for child in read(run .. ".out"):gmatch("\n  %S+%s+(%d+)%s+http") do
      started[#started + 1] = tonumber(child)
      pids[#pids + 1] = tonumber(child)
    end
    assert.are.equal(2, #started) -- slowweb and node1
    os.execute("kill -KILL " .. pid)
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
      os.execute(("script -qfc '%s demo --nodes 1 --base-port %d --log-level info --run-dir %s' /dev/null " ..
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
    local base = helper.random_port()
    -- a shell waits for the demo and writes its exit status
    os.execute(("sh -c '%s demo --nodes 3 --base-port %d --run-dir %s > %s/demo.out 2>&1 & echo $! > %s/demo.pid; " ..
      "wait $!; echo $? > %s/status' > /dev/null 2>&1 &"):format(halo_bin, base, dir, dir, dir, dir))
    assert(helper.wait_file(dir .. "/demo.pid"), "the demo did not start")
    demo_pid = tonumber(read(dir .. "/demo.pid"))

    helper.run(function()
      local out = function() return read(dir .. "/demo.out") end
      assert(helper.wait_until(function() return out():find("cluster formed", 1, true) end, 20000, 50),
        "the cluster did not form:\n" .. out())
      -- the table: slowweb and the nodes with their PIDs and metrics URLs
      local nodes = {}
      for name, pid, port in out():gmatch("\n  (node%d@localhost)%s+(%d+)%s+http://127%.0%.0%.1:(%d+)/metrics") do
        nodes[#nodes + 1] = { name = name, pid = tonumber(pid), port = tonumber(port) }
        pids[#pids + 1] = tonumber(pid)
      end
      local slowweb = tonumber(out():match("\n  slowweb%s+(%d+)"))
      pids[#pids + 1] = slowweb
      assert.are.equal(3, #nodes)
      assert.are.same({ base + 1, base + 2, base + 3 }, { nodes[1].port, nodes[2].port, nodes[3].port })
      assert.is_true(alive(slowweb))
      assert.truthy(out():find("cluster: 3/3 nodes joined", 1, true))

      -- every radar answers; each node is connected to the two others
      for _, n in ipairs(nodes) do
        local live = halo.http.request({ host = "127.0.0.1", port = n.port, path = "/health/live", timeout = 2000 })
        assert.are.equal(200, live and live.status)
        assert.are.equal("2", metrics(n.port):match("\nhalo_connected_nodes_total{[^}]*} (%d+)"))
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
        return body and body:match("\nhalo_connected_nodes_total{[^}]*} (%d+)") == "2"
      end, 10000, 100), "the restarted node2 did not rejoin")
    end, { timeout = 60000 })

    -- SIGTERM: the demo exits 0 and no process it started is left
    os.execute("kill -TERM " .. demo_pid)
    local status
    for _ = 1, 750 do
      status = read(dir .. "/status"):match("%d+")
      if status then break end
      os.execute("sleep 0.02")
    end
    assert.are.equal("0", status)
    assert.truthy(read(dir .. "/demo.out"):find("halo demo: stopping 4 processes", 1, true))
    for _, pid in ipairs(pids) do assert.is_false(alive(pid), "left running: " .. pid) end
    demo_pid = nil
  end)
end)
