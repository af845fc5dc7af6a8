-- Node tools: node_info and node_env.
local halo = require("halo")
local json = require("halo.json")

local NONE = { type = "object", properties = json.object(), additionalProperties = false }

-- Names whose values stay hidden even when the environment is exposed.
local SECRET = { "TOKEN", "SECRET", "PASSWORD", "PASSWD", "COOKIE", "KEY", "CREDENTIAL", "AUTH" }

local function environment()
  local out = json.object()
  local f = io.open("/proc/self/environ", "rb")
  if not f then return out end
  local text = f:read("*a")
  f:close()
  for entry in text:gmatch("[^%z]+") do
    local name, value = entry:match("^([^=]+)=(.*)$")
    if name then
      name = name:upper()
      for _, s in ipairs(SECRET) do
        if name:find(s, 1, true) then value = "<redacted>" break end
      end
      out[name] = value
    end
  end
  return out
end

return {
  { name = "node_info",
    description = "The node's NodeInfo snapshot as JSON: Name, Uptime (s), Version, Framework, LogLevel, Loggers, "
      .. "LogMessages (6 cumulative counters indexed trace, debug, info, warning, error, panic), process counters "
      .. "(ProcessesTotal, ProcessesRunning, ProcessesWaitResponse, ProcessesZombee, ProcessesSpawned, "
      .. "ProcessesSpawnFailed, ProcessesTerminated), send and call error counters, registered names/aliases/events, "
      .. "event counters, applications, memory (bytes) and CPU time, and ServerTime.",
    inputSchema = NONE,
    handler = function()
      return halo.node_info()
    end },
  { name = "node_env",
    description = "The node's OS environment variables as a JSON object (names upper-cased, keys sorted), only when "
      .. "the node exposes it (halo run --mcp-expose-env); otherwise {}. Values of names that look secret (TOKEN, "
      .. "SECRET, PASSWORD, COOKIE, KEY, ...) are always shown as <redacted>.",
    inputSchema = NONE,
    handler = function()
      if not require("halo.mcp").settings().expose_env then return json.object() end
      return environment()
    end },
}
