--- W13 sampler overhead: a node entry that starts the mcp application
-- (port 0: a free one), with MODE "sampler" also an active sampler running
-- process_list (sort_by mailbox, limit 5) every second, then runs
-- bench/halo/bench.lua with the remaining arguments (it shuts the node down).
--   halo run bench/w13/sampler/entry.lua plain|sampler [--quick] [--only W1,W3]
local halo = require("halo")
local json = require("halo.json")

local mode = ...
local rest = { select(2, ...) }
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")

assert(require("halo.mcp").start({ port = 0 }))
if mode == "sampler" then
  local args = { tool = "process_list", arguments = { sort_by = "mailbox", limit = 5 }, interval_ms = 1000,
                 duration_sec = 3600 }
  local rep = require("halo.mcp.dispatch").call({ mcp = "call", tool = "sample_start", args = args },
    halo.node_info().Name, halo.self())
  local res = json.decode(rep.result or "null")
  assert(type(res) == "table" and not res.isError, "sample_start failed: " .. tostring(rep.result or rep.error))
  local id = res.content[1].text:match('"sampler_id": "([^"]+)"')
  io.stderr:write("w13: sampler ", id, " polls process_list every 1 s\n")
  -- before bench.lua shuts the node down: the sampler's CPU share (its
  -- running time over its uptime) and its ticks, as result rows
  local shutdown = halo.shutdown
  halo.shutdown = function(...)
    local pid = halo.whereis(id)
    local row = halo.process_list({ name = id, limit = 1 })[1]
    local ticks = tonumber(halo.inspect(pid).samples:match("^(%d+)"))
    io.stdout:write(('{"mode":"sampler","id":"W13.sampler.cpu_share","metric":"%%","median":%.4f,"ticks":%d,'
      .. '"ms_per_tick":%.3f}\n'):format(row.RunningTime / 1e9 / row.Uptime * 100, ticks,
      row.RunningTime / 1e6 / math.max(ticks, 1)))
    io.stdout:flush()
    return shutdown(...)
  end
elseif mode ~= "plain" then
  error("usage: entry.lua plain|sampler [bench.lua arguments]", 0)
end
return assert(loadfile(here .. "/../../halo/bench.lua"))(unpack(rest))
