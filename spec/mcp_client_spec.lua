-- The official MCP TypeScript SDK (spec/mcp: @modelcontextprotocol/sdk and
-- ajv, installed by `make test` with npm ci) against a live three-node
-- cluster: spec/mcp/node.lua on node1..3@localhost (OS processes, an
-- embedded registrar of the spec's own, one cookie), node1 serving /mcp with
-- a token and a scratch copy of mcp_tools/. spec/mcp/every_tool.mjs lists
-- the tools, compiles every inputSchema as JSON Schema 2020-12, runs every
-- fixture of spec/mcp/calls/*.json on node1 and proxied to node2, and checks
-- the session id (issued, sent back, ended by DELETE), the token and the
-- list_changed notification on its GET stream after it adds a tool file.
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"
local NODES = { "node1@localhost", "node2@localhost", "node3@localhost" }

local function sh(cmd)
  local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = f:read("*a")
  f:close()
  return out
end

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

describe("the MCP TypeScript SDK against a three-node cluster", function()
  local dir, pids = nil, {}

  setup(function()
    dir = helper.script_dir("README", "mcp client spec\n")
    os.execute(("mkdir -p %s/tools && cp mcp_tools/*.lua %s/tools/ 2>/dev/null"):format(dir, dir))
  end)
  teardown(function()
    for _, pid in ipairs(pids) do helper.kill(pid) end
    os.execute("rm -rf " .. dir)
  end)

  it("lists every tool, validates every schema and runs every fixture locally and proxied", function()
    local reg = "embedded:" .. helper.random_port()
    local port = helper.free_ports(1)
    local token = "spec-" .. tostring(os.time())
    -- node1 first: it serves the registrar the others register with
    for i, name in ipairs(NODES) do
      local peers = {}
      for _, other in ipairs(NODES) do
        if other ~= name then peers[#peers + 1] = other end
      end
      local mcp = i == 1 and ("--mcp 127.0.0.1:%d --mcp-token %s --mcp-tools %s/tools"):format(port, token, dir) or ""
      pids[#pids + 1] = helper.spawn_os(("%s run --name %s --cookie mcpspec --listen 127.0.0.1:0 --registrar %s " ..
        "--log-level warning %s spec/mcp/node.lua %s/ready%d %s"):format(halo_bin, name, reg, mcp, dir, i,
        table.concat(peers, " ")), ("%s/node%d.log"):format(dir, i))
    end
    local echo = {}
    for i, name in ipairs(NODES) do
      assert(helper.wait_file(("%s/ready%d"):format(dir, i), 1000),
        name .. " not ready: " .. tostring(read(("%s/node%d.log"):format(dir, i))))
      echo[name] = read(("%s/ready%d"):format(dir, i)):match("\n(<[^\n]+>)")
      assert(echo[name], "no mcp_test_echo PID from " .. name)
    end
    local cluster = ('{"node1@localhost":{"pid":"%s","peer":"node3@localhost"},' ..
      '"node2@localhost":{"pid":"%s","peer":"node3@localhost"}}'):format(echo[NODES[1]], echo[NODES[2]])
    -- node without the sanitizer preload of the ASan run; 120 s at most if the server wedges
    local out = sh(("unset LD_PRELOAD; timeout 120 node spec/mcp/every_tool.mjs --url http://127.0.0.1:%d/mcp --token %s " ..
      "--local node1@localhost --remote node2@localhost --cluster '%s' --tools-dir %s/tools")
      :format(port, token, cluster, dir))
    assert.truthy(out:find("every_tool: ok\nrc=0", 1, true), out)
    local listed = tonumber(out:match("tools listed: (%d+)"))
    local compiled = tonumber(out:match("schemas compiled: (%d+)"))
    local localn, proxied = out:match("calls made: (%d+) local, (%d+) proxied")
    assert.is_true(listed >= 2, out) -- node_info and node_env at least
    assert.equal(listed, compiled)
    assert.truthy(out:find(("tools called: %d of %d\n"):format(listed, listed), 1, true), out)
    assert.is_true(tonumber(localn) >= 1 and tonumber(proxied) >= 1, out)
    assert.truthy(out:find("session: issued, sent back on (%d+) of %1 requests"), out)
    assert.truthy(out:find("session: ended by DELETE (then 404)", 1, true), out)
    assert.truthy(out:find("list_changed: received", 1, true), out)
    assert.truthy(out:find("auth: wrong token refused (401)", 1, true), out)
    assert.truthy(out:find("auth: no token refused (401)", 1, true), out)
    assert.is_nil(read(dir .. "/tools/every_tool_probe.lua")) -- the probe tool file is gone again
  end)
end)
