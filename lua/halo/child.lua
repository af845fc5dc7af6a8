--- halo.child: OS processes started and owned by a halo process.
--
--   local os_pid, ref = halo.child.spawn({ file = "/usr/bin/sleep", args = { "10" }, output = "/tmp/x.log" })
--   halo.child.kill(ref, "TERM")
--   -- the owner then receives {kind = "child_exit", ref, os_pid, status, signal}
--
-- A child gets SIGTERM (and SIGKILL 5 s later) when its owner ends (killed
-- inside a callback, as a zombee, too) or the
-- node stops; the node's loop waits until it has exited, so nothing is
-- orphaned. Children run in a session of their own (a terminal's Ctrl-C
-- reaches only the node), stdin /dev/null, stdout and stderr to opts.output
-- (appended) or the node's own.
local core = require("halo.core")

local M = {}

--- Starts a child: opts.file (PATH is searched when it has no slash, env's
-- PATH when it sets one), opts.args (list of strings), opts.cwd,
-- opts.output, opts.env (a table NAME = VALUE of strings added to the
-- node's OS environment (environ, not halo.env) for the child, replacing one of that name;
-- a name without '=', neither holding a NUL; for a secret, which argv
-- would show to every user in /proc/PID/cmdline). Returns os_pid, ref
-- or nil, "ECODE: message", "ECODE".
M.spawn = core.child.spawn

--- Sends signal (a number or "TERM", "KILL", "INT", "HUP", "USR1", "USR2",
-- "STOP", "CONT") to the child ref: true or nil, err, code.
M.kill = core.child.kill

--- This node's running children: { {ref, os_pid, owner}... }.
M.list = core.child.list

--- True when msg is a child's exit message.
function M.is_exit(msg) return type(msg) == "table" and msg.kind == "child_exit" end

return M
