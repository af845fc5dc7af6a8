-- The devops agent (mcp_tools/agent/) against the server's tool list: the
-- agent's tools exist, it lists every tool that only reads, and the skill
-- names every tool.
local registry = require("halo.mcp.registry")

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("*a")
  f:close()
  return s
end

-- Tools that change a node: the agent leaves them to the user.
local CHANGING = { log_level_set = true, network_connect = true, network_connect_route = true,
                   network_disconnect = true, send_message = true, call_process = true, send_exit = true,
                   process_kill = true }

describe("the MCP devops agent", function()
  it("lists exactly the tools that only read, and its skill names all 48", function()
    assert.equal(48, #registry.ORDER)
    local known = {}
    for _, n in ipairs(registry.ORDER) do known[n] = true end
    local agent = read("mcp_tools/agent/halo-sre.md")
    local listed = {}
    for n in agent:match("\ntools: ([^\n]+)"):gmatch("mcp__halo__([%w_]+)") do
      assert.is_true(known[n] == true, "the agent lists an unknown tool " .. n)
      listed[n] = true
    end
    local skill = read("mcp_tools/agent/halo-diagnostics/SKILL.md")
    for _, n in ipairs(registry.ORDER) do
      assert.equal(not CHANGING[n], listed[n] == true, "agent tool list and " .. n)
      assert.truthy(skill:find("`" .. n .. "`", 1, true), "SKILL.md does not name " .. n)
    end
  end)
end)
