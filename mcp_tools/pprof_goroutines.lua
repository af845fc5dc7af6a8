-- MCP tool pprof_goroutines: the stack of every process of the node as
-- text in the reference's goroutine-dump shape (lua/halo/stacks.lua has the
-- format; bindings/stacks.c builds it). The handler's call chain goes
-- through toolPprofGoroutines, so exclude="toolPprof" leaves out the worker
-- that runs the tool.
local halo = require("halo")
local stacks = require("halo.stacks")
local A = require("halo.mcp.toolargs")

local value = A.value

local function toolPprofGoroutines(args, ctx)
  if value(args.pid) then
    local pid, err = A.pid(args.pid)
    if not pid then pid = halo.whereis(args.pid) end -- a registered name works too
    if not pid then return nil, "invalid pid: " .. err end
    local block = stacks.process(pid)
    if not block then
      return nil, ("no process %s on node %s: it never existed or has terminated (process_list shows the "
        .. "live ones; halo finds every process, sleeping ones included)"):format(pid, ctx.node)
    end
    return (block:gsub("\n$", "")) -- trimmed, as the reference's pid mode
  end
  local text = stacks.dump({ debug = value(args.debug), limit = value(args.limit), filter = value(args.filter),
                             exclude = value(args.exclude) })
  return text
end

return {
  {
    name = "pprof_goroutines",
    description = "Stacks of this node's processes (halo's goroutines: one Lua coroutine per process), as text in "
      .. "the goroutine-dump format. Sleeping and waiting processes are included: a parked coroutine's stack is "
      .. "always readable, so there is no need to poll until a process wakes up: one call with pid=<PID or registered "
      .. "name> shows where it waits. "
      .. "Header 'goroutine profile: total T[, matched M], showing K' (T processes; M blocks left by "
      .. "filter/exclude, printed when either is given). debug=2 (default): one block per process, first line "
      .. "'goroutine <id> [<state>]:' (states as process_state), then '# labels: {\"pid\":\"<PID>\", \"name\":..., "
      .. "\"behavior\":..., \"application\":...}', then frames innermost first (function, then file:line). A "
      .. "suspended process's top frame names where the core holds it: [C] halo_process_waitResponse (a call or "
      .. "inspect; the callee's PID and the ms waited), halo_http_waitResponse (an HTTP client request), "
      .. "halo_rel_waitResponse (a remote link or monitor), halo_process_sleep (halo.sleep), halo_process_receive "
      .. "(idle, or halo.receive), halo_process_waitSpawn, halo_process_yield, halo_net_throttled. Every process's "
      .. "bottom frame is halo.ProcessRun, the tool's own frames include toolPprofGoroutines: filter='ProcessRun' "
      .. "exclude='toolPprof' selects the actors' stacks. debug=1: processes with identical state, behavior, "
      .. "application and frames grouped into blocks 'N @ [state]' with their first PIDs, largest first.",
    inputSchema = {
      type = "object",
      properties = {
        pid = { type = "string", description = "PID of one process (sleeping or not; a registered name works too): "
          .. "returns its block alone; limit, debug, filter and exclude are ignored" },
        limit = { type = "integer", description = "blocks shown after filtering (default 50; 0 or negative: all)" },
        debug = { type = "integer", description = "2 (default, < 1 means 2): one block per process; 1: identical "
          .. "stacks grouped with a count" },
        filter = { type = "string", description = "keep only blocks containing this case-sensitive substring "
          .. "(function names, file paths, labels, state line)" },
        exclude = { type = "string", description = "then drop blocks containing this substring" },
      },
      additionalProperties = false,
    },
    handler = function(args, ctx)
      local text, err = toolPprofGoroutines(args, ctx) -- not a tail call: its frame stays in the dump
      return text, err
    end,
  },
}
