--- W13 stacks: the all-process stack dump (core.stacks.dump, what
-- pprof_goroutines runs) over N processes of four shapes: idle actors
-- (three in five), actors parked in halo.sleep inside a callback, actors
-- waiting for a call's reply, function processes in halo.receive.
--   bench/w13/stacks/run, or halo run bench/w13/stacks/dump.lua [N, default 100000] [REPEAT, default 5]
-- Prints, per mode, the best and median time in ms and the text's size.
local halo = require("halo")
local core = require("halo.core")

local N, REPEAT = tonumber((...)) or 100000, tonumber(select(2, ...)) or 5

local Idle = { name = "w13.idle" }
function Idle:handle_message() end
function Idle:handle_call() end -- never replies: its callers wait
local Parked = { name = "w13.parked" }
function Parked:stacksParkedHere() halo.sleep(3600 * 1000) end
function Parked:handle_message() self:stacksParkedHere() end
local Caller = { name = "w13.caller" }
function Caller:handle_message(_, to) halo.call(to, "ping", 3600 * 1000) end

local silent = assert(halo.spawn(Idle))
local t0 = halo.now()
for i = 1, N do
  local k = i % 5
  if k == 0 then
    halo.send(assert(halo.spawn(Parked)), "go")
  elseif k == 1 then
    halo.send(assert(halo.spawn(Caller)), silent)
  elseif k == 2 and i % 10 == 2 then
    assert(halo.spawn(function() halo.receive() end))
  else
    assert(halo.spawn(Idle))
  end
  if i % 1000 == 0 then halo.yield() end
end
halo.sleep(100)
print(("%d processes spawned in %.0f ms, Lua heap %.0f MB"):format(core.introspect.stats().processes,
  halo.now() - t0, collectgarbage("count") / 1024))

local function toolPprofBench(opts) -- not a tail call: the frame stays on the stack
  local text, total, matched, shown = core.stacks.dump(opts)
  return text, total, matched, shown
end

-- the MCP tool's handler as the server calls it (header and all), relative to the halo tree
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local tool = assert(loadfile(here .. "/../../../mcp_tools/pprof_goroutines.lua"))()[1]
local ctx = { tool = tool.name, node = halo.node_info().Name, pid = halo.self(), timeout = 30 }

local modes = {
  { "debug=2, everything", { debug = 2 } },
  { "debug=2, ProcessRun/toolPprof, limit 50",
    { debug = 2, filter = "ProcessRun", exclude = "toolPprof", limit = 50 } },
  { "debug=2, filter stacksParkedHere, limit 50", { debug = 2, filter = "stacksParkedHere", limit = 50 } },
  { "debug=1, everything", { debug = 1 } },
  { "tool: filter ProcessRun exclude toolPprof", { filter = "ProcessRun", exclude = "toolPprof" }, true },
}
for _, m in ipairs(modes) do
  local times, bytes, total, matched, shown = {}, 0, 0, 0, 0
  for r = 1, REPEAT do
    collectgarbage()
    local t = halo.now()
    local text
    if m[3] then
      text = assert(tool.handler(m[2], ctx))
      total, matched, shown = text:match("total (%d+), matched (%d+), showing (%d+)")
    else
      text, total, matched, shown = toolPprofBench(m[2])
    end
    times[r] = halo.now() - t
    bytes = #text
  end
  table.sort(times)
  print(("%-44s best %7.1f ms  median %7.1f ms  %10d bytes  total %s matched %s shown %s"):format(
    m[1], times[1], times[math.floor((REPEAT + 1) / 2)], bytes, total, matched, shown))
end
core.node.stop()
