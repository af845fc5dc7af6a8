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
local mcp_helper = require("mcp_helper")

local sh = helper.sh

local read = mcp_helper.read

describe("the MCP TypeScript SDK against a three-node cluster", function()
  local c

  setup(function() c = mcp_helper.cluster(3) end)
  teardown(function() if c then c.stop() end end)

  it("lists every tool, validates every schema and runs every fixture locally and proxied", function()
    local dir, port, token, echo, NODES = c.dir, c.port, c.token, c.echo, c.nodes
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
