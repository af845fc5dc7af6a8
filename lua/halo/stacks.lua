--- halo.stacks: the stack of every process as text, in the block format of
-- Go's goroutine dump, which the clients of MCP's pprof_goroutines parse
-- (the tool and the radar listener's /debug/pprof/goroutine print it).
--
--   halo.stacks.dump{debug=2, filter=, exclude=, limit=50} -> text
--   halo.stacks.process(pid) -> block | nil, err, code
--
-- A process is a Lua coroutine: a sleeping or waiting process's stack is as
-- readable as the running one's. The text (core.stacks, bindings/stacks.c):
--   goroutine profile: total <processes>[, matched <M>], showing <K>
--
--   goroutine 1001 [wait response]:
--   # labels: {"pid":"<35DBD1C6.0.1001>", "name":"n", "behavior":"b", "application":"a"}
--   [C] halo_process_waitResponse(call <35DBD1C6.0.1002>, 12 ms)
--   	core/process.c
--   <Lua frames, innermost first: function, then file:line; a behavior's last is halo.dispatch>
--   halo.ProcessRun
--   	bindings/gate.c
--
--   [... <M-K> more matched goroutines not shown]
-- debug=1 groups the processes with the same state, behavior, application
-- and frames into blocks "N @ [state]" (largest first) listing their first
-- PIDs. filter keeps the blocks containing it, exclude then drops those
-- containing it (case-sensitive substrings of the whole block), limit (<= 0:
-- all) then cuts; "matched" is printed when filter or exclude is given.
local core = require("halo.core")

local M = {}

M.DEFAULT_LIMIT = 50

local function text_opt(v) return type(v) == "string" and v ~= "" and v or nil end

function M.dump(opts)
  opts = opts or {}
  local debug = tonumber(opts.debug) or 2
  if debug < 1 then debug = 2 end
  local limit = tonumber(opts.limit) or M.DEFAULT_LIMIT
  local filter, exclude = text_opt(opts.filter), text_opt(opts.exclude)
  local text, total, matched, shown = core.stacks.dump({ debug = debug >= 2 and 2 or 1, filter = filter,
                                                         exclude = exclude, limit = limit > 0 and limit or 0 })
  local out = { ("goroutine profile: total %d"):format(total) }
  if filter or exclude then out[#out + 1] = (", matched %d"):format(matched) end
  out[#out + 1] = (", showing %d\n"):format(shown)
  if shown > 0 then
    out[#out + 1] = "\n"
    out[#out + 1] = text
  end
  if matched > shown then out[#out + 1] = ("\n[... %d more matched goroutines not shown]\n"):format(matched - shown) end
  return table.concat(out)
end

M.process = core.stacks.process

return M
