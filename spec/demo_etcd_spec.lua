-- `halo demo --registrar etcd://...` on a real etcd (Debian's etcd-server,
-- on free loopback ports): three nodes register in etcd (their node keys
-- and the scenarios' application routes are there, in cluster halo-demo),
-- find each other through it (each radar counts two connected nodes), and
-- the scenarios run across them: the latency senders, which pick their
-- targets from etcd's application routes, reach the other nodes' workers
-- (slowweb requests counted). `halo call` finds a node through etcd.
-- SIGTERM stops the demo (status 0) and the nodes' keys go with their leases.
local halo = require("halo")
local helper = require("helper")
local demo = require("demo_helper")
local cjson = require("cjson")

local CLUSTER = "halo-demo"

local function sh_quiet(cmd) os.execute("unset LD_PRELOAD; " .. cmd) end

-- The keys under prefix in the etcd at port (from a process), sorted.
local function etcd_keys(port, prefix)
  local b64 = require("halo.etcd").base64
  local res = halo.http.request({ host = "127.0.0.1", port = port, path = "/v3/kv/range", timeout = 3000,
    content_type = "application/json",
    body = cjson.encode({ key = b64.encode(prefix), range_end = b64.encode(prefix:sub(1, -2) .. "0"), keys_only = true }) })
  local keys = {}
  local obj = res and res.status == 200 and cjson.decode(res.body)
  for _, kv in ipairs(obj and obj.kvs or {}) do keys[#keys + 1] = b64.decode(kv.key):sub(#prefix + 1) end
  table.sort(keys)
  return keys
end

describe("halo demo on etcd", function()
  local dir, etcd_pid, d
  local pids = {}

  setup(function()
    dir = helper.script_dir("README", "halo demo on etcd spec run directory\n")
  end)
  teardown(function()
    if d and demo.alive(d.pid) then helper.kill(d.pid) end
    for _, pid in ipairs(pids) do helper.kill(pid) end
    if etcd_pid then helper.kill(etcd_pid) end
    sh_quiet("rm -rf " .. dir)
  end)

  it("forms the cluster through etcd and runs the scenarios across it", function()
    local client_port, peer_port = helper.free_ports(2)
    etcd_pid = helper.start_etcd(dir, "demo", client_port, peer_port)

    local registrar = "etcd://127.0.0.1:" .. client_port
    d = demo.start(dir, ("--nodes 3 --base-port %d --log-level info --mcp-port 0 --observer-port 0 --registrar %s"):format(helper.random_port(),
      registrar))
    for _, n in ipairs(d.nodes) do pids[#pids + 1] = n.pid end
    pids[#pids + 1] = d.slowweb
    assert.are.equal(3, #d.nodes)
    assert.truthy(d.out():find("registrar " .. registrar, 1, true), d.out())

    local prefix = "services/ergo/cluster/" .. CLUSTER .. "/routes/"
    local keys = helper.run(function()
      -- each node is connected to the two others (the demo saw that), found through etcd
      for _, n in ipairs(d.nodes) do
        assert.are.equal(2, demo.metric(demo.metrics(n.port), "halo_connected_nodes_total{[^}]*}"))
      end
      -- cross-node latency pings arrive: a worker calls slowweb only for a
      -- ping, and a sender pings only other nodes, found in etcd's routes
      assert(helper.wait_until(function()
        for _, n in ipairs(d.nodes) do
          if (demo.metric(demo.metrics(n.port), 'slowweb_requests_total{[^}]*status="ok"[^}]*}') or 0) == 0 then
            return false
          end
        end
        return true
      end, 30000, 200), "not every latency worker got pings")
      return { nodes = etcd_keys(client_port, prefix .. "nodes/"),
               latency = etcd_keys(client_port, prefix .. "applications/latency_scenario/") }
    end, { timeout = 40000 })
    assert.are.same({ "node1@localhost", "node2@localhost", "node3@localhost" }, keys.nodes)
    assert.are.same({ "node1@localhost", "node2@localhost", "node3@localhost" }, keys.latency)

    -- `halo call` finds node2 through etcd
    local f = io.popen(("HALO_COOKIE=%s %s call --registrar %s --cluster %s node2@localhost " ..
      "application.info latency_scenario 2>&1; echo status=$?"):format(d.cookie, demo.halo_bin, registrar, CLUSTER))
    local text = f:read("*a")
    f:close()
    assert.truthy(text:find("status=0", 1, true), text)
    assert.truthy(text:find('"State": "running"', 1, true), text)
    assert.truthy(text:find('"Parent": "node2@localhost"', 1, true), text)

    assert.are.equal("0", demo.stop(d))
    for _, pid in ipairs(pids) do assert.is_false(demo.alive(pid), "left running: " .. pid) end
    local left = helper.run(function() return etcd_keys(client_port, prefix .. "nodes/") end)
    assert.are.same({}, left) -- the nodes revoked their leases
  end)
end)
