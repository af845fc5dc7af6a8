--- halo: the Lua API of the actor runtime.
-- Processes are coroutines scheduled by the C core. A behavior is a table of
-- callbacks called as methods on a per-process instance (self):
--   init(args), handle_message(from, msg), handle_call(from, ref, request),
--   handle_event(event, message, time), handle_log(record),
--   handle_inspect(from, items), terminate(reason).
-- A function spawned as a process runs once; it may sleep, call and receive.
local core = require("halo.core")
local process, node, introspect = core.process, core.node, core.introspect

local yield = coroutine.yield
local READY = node.READY
local MSG_REGULAR, MSG_REQUEST, MSG_EVENT = process.MSG_REGULAR, process.MSG_REQUEST, process.MSG_EVENT
local MSG_EXIT, MSG_DOWN, MSG_INSPECT, MSG_TIMEOUT = process.MSG_EXIT, process.MSG_DOWN, process.MSG_INSPECT,
  process.MSG_TIMEOUT
local MSG_LOG, MSG_BARE = process.MSG_LOG, process.MSG_BARE
-- the functions a message or a call goes through, one local each
local core_reply, core_log, core_call, core_inspect = process.reply, core.log.write, process.call, process.inspect
local core_receive, core_sleep, core_yield, core_now = process.receive, process.sleep, process.yield, node.now

-- An exit or down signal that reached the mailbox as its bare reason (kind +
-- MSG_BARE) becomes the message a process sees.
local function signal_msg(kind, from, reason)
  if kind == MSG_EXIT then return { kind = "exit", pid = from, reason = reason } end
  return { kind = "down", pid = from, reason = reason }
end

local halo = {}

-- Lists the core builds carry halo.json's array mark, so they print as [] even when empty.
require("halo.json")

-- The body every behavior process runs: init, then one callback per message.
-- A callback that returns a non-nil value ends the process with it as the
-- reason (handle_call: its second return value).
local function body(self, args)
  local init = self.init
  if init then init(self, args) end
  local kind, from, msg, ref = yield(READY)
  while true do
    local stop
    if kind > MSG_BARE then
      kind = kind - MSG_BARE
      msg = signal_msg(kind, from, msg)
    end
    if kind == MSG_REGULAR or kind == MSG_DOWN or kind == MSG_EXIT then
      local handle_message = self.handle_message -- named so: stack dumps show the callback
      if handle_message then
        stop = handle_message(self, from, msg)
      else
        core_log("warning", "unhandled message from " .. from .. " (no handle_message)")
      end
    elseif kind == MSG_REQUEST then
      local handle_call = self.handle_call
      if handle_call then
        local reply, reason = handle_call(self, from, ref, msg)
        if reply ~= nil then core_reply(from, ref, reply) end
        stop = reason
      else
        core_log("warning", "unhandled call from " .. from .. " (no handle_call)")
      end
    elseif kind == MSG_INSPECT then
      local handle_inspect = self.handle_inspect
      core_reply(from, ref, handle_inspect and handle_inspect(self, from, msg) or {})
    elseif kind == MSG_LOG then
      local handle_log = self.handle_log
      if handle_log then stop = handle_log(self, msg) end
    elseif kind == MSG_EVENT then
      local handle_event = self.handle_event
      if handle_event then
        stop = handle_event(self, msg.event, msg.message, msg.time)
      else
        core_log("warning", "unhandled event " .. tostring(msg.event) .. " (no handle_event)")
      end
    end
    if stop ~= nil then return stop end
    kind, from, msg, ref = yield(READY)
  end
end

local function copy(t)
  local c = {}
  if t then for k, v in pairs(t) do c[k] = v end end
  return c
end

--- Runs a node with fn as its entry process; returns when the node stops.
-- opts: name ("name@host"), log_level, args (passed to fn), signals (stop on
-- SIGINT/SIGTERM), timeout (ms: stop the node after it), watchdog_ms,
-- watchdog_hard_ms, cookie, listen, registrar ("embedded", "embedded:PORT",
-- "none" or "etcd://HOST:PORT"), cluster (the etcd registrar's, default
-- "default"), metrics ("[HOST:]PORT": start the radar application before
-- the entry; a malformed one raises), admin (halo.admin.allow(true)), mcp
-- (options of halo.mcp.start: started before the entry when it has a port, or
-- in agent mode when the network is on), observer ({address = "[HOST:]PORT",
-- token}: start the observer application before the entry and print
-- "observer: URL" on stdout). Returns exit_code, entry_error
-- (string or nil), stats.
-- What a node leaves running in this OS process ends with it: a CPU profile
-- whose caller never came back (killed, or the node stopped first).
local function ended(...)
  local cpuprof = package.loaded["halo.cpuprof"]
  if cpuprof and cpuprof.running() then cpuprof.stop() end
  return ...
end

function halo.run(fn, opts)
  opts = opts or {}
  local registrar, entry = opts.registrar, fn
  local etcd = type(registrar) == "string" and registrar:sub(1, 7) == "etcd://"
  local mhost, mport
  if opts.mcp and opts.mcp.address ~= nil then -- the CLI's --mcp [HOST:]PORT
    local host, port = require("halo.mcp").parse_address(opts.mcp.address)
    if not host then error("--mcp: " .. port, 2) end
    local m = copy(opts.mcp)
    m.host, m.port, m.address = host, port, nil
    opts = copy(opts)
    opts.mcp = m
  end
  local ohost, oport
  if opts.observer then
    ohost, oport = require("halo.observer").parse_address(opts.observer.address)
    if not ohost then error("--observer: " .. oport, 2) end
  end
  if opts.metrics then
    mhost, mport = require("halo.radar").parse_address(opts.metrics)
    if not mhost then error("--metrics: " .. mport, 2) end
  end
  fn = function(...)
    -- a networked node answers other nodes' requests (halo.remote) and, with
    -- the etcd registrar, registers itself before the entry runs
    if core.net.info().Mode == "enabled" then require("halo.remote").serve() end
    if opts.admin then require("halo.admin").allow(true) end
    if etcd and not require("halo.etcd").start(registrar:sub(8), opts.cluster) then return end
    if mhost then
      local ok, err = require("halo.radar").start({ host = mhost, port = mport })
      if not ok then error("radar: " .. tostring(err), 0) end
    end
    -- mcp: serving HTTP when given a port, else in agent mode on a networked node
    if opts.mcp and (opts.mcp.port or core.net.info().Mode == "enabled") then
      local ok, err = require("halo.mcp").start(opts.mcp)
      if not ok then error("mcp: " .. tostring(err), 0) end
    end
    if ohost then
      local url, err = require("halo.observer").start({ host = ohost, port = oport, token = opts.observer.token })
      if not url then error("observer: " .. tostring(err), 0) end
      io.stdout:write("observer: ", url, "\n")
      io.stdout:flush()
    end
    return entry(...)
  end
  return ended(node.run(fn, opts.args, opts, body))
end

--- Spawns a process. behavior: a table of callbacks, a module name that
-- returns one, or a function. opts: name, link, link_parent, link_child,
-- monitor (the caller monitors the child from before its init), mailbox_size,
-- log_level, env, trap_exit, compress (its messages to other nodes, see
-- halo.net.compress), kind, behavior (display name),
-- leader, init_timeout (ms, default 5000).
-- Returns the PID once init is done, or nil, "ECODE: message", "ECODE".
function halo.spawn(behavior, args, opts)
  if type(behavior) == "string" then
    local mod = require(behavior)
    if opts == nil or opts.behavior == nil then
      opts = copy(opts)
      opts.behavior = behavior
    end
    behavior = mod
  end
  local pid, pending, code = process.spawn(behavior, args, opts)
  if pending == true then
    local ok, err, c = yield()
    if not ok then
      process.kill(pid)
      if c == "EINIT" then err = "EINIT: init failed: " .. tostring(err) end
      return nil, err, c
    end
    return pid
  end
  return pid, pending, code
end

--- Spawns and registers the process under name in one step.
function halo.spawn_register(name, behavior, args, opts)
  opts = copy(opts)
  opts.name = name
  return halo.spawn(behavior, args, opts)
end

--- Sends msg to a PID, registered name or alias. Returns true or nil, err, code.
halo.send = process.send

-- LuaJIT's FFI calls C without the Lua C API, and a compiled loop calls it
-- directly: the clock, and sends of numbers to local processes (anything
-- else, and every error, takes process.send).
local ffi_ok, ffi = pcall(require, "ffi")
if ffi_ok and node.FFI_NOW then
  local now_ms = ffi.cast("double (*)(void)", node.FFI_NOW)
  local send_number = ffi.cast("int (*)(const char *, size_t, double)", process.FFI_SEND_NUMBER)
  local core_send = process.send
  core_now() -- calibrates the clock
  halo.now = function() return now_ms() end
  halo.send = function(to, msg)
    if type(msg) == "number" and type(to) == "string" and send_number(to, #to, msg) == 0 then
      return true
    end
    return core_send(to, msg)
  end
end

--- Calls to with request and waits for the reply (default timeout 5000 ms).
-- Other messages stay queued meanwhile. Returns the reply or nil, err, code;
-- when the callee ends before replying, at once nil, "ETERMINATED: process
-- terminated: <reason>", "ETERMINATED", reason.
function halo.call(to, request, timeout)
  local ref, err, code = core_call(to, request, timeout)
  if not ref then return nil, err, code end
  local ok, v, c, reason = yield()
  if ok then return v end
  return nil, v, c, reason
end

--- Asks a process for its handle_inspect map.
function halo.inspect(to, items, timeout)
  local ref, err, code = core_inspect(to, items or {}, timeout)
  if not ref then return nil, err, code end
  local ok, v, c, reason = yield()
  if ok then return v end
  return nil, v, c, reason
end

--- Replies to a call later (when handle_call returned nil).
halo.reply = process.reply

--- Suspends the calling process for ms milliseconds; others keep running.
function halo.sleep(ms)
  local ok, err, code = core_sleep(ms)
  if not ok then return nil, err, code end
  yield()
  return true
end

--- Gives the CPU to the other ready processes and continues after them.
function halo.yield()
  core_yield()
  yield()
end

--- In a function process: waits for the next message (at most timeout ms).
-- Returns from, msg, ref (ref only for calls) or nil, "ETIMEDOUT: timed out".
function halo.receive(timeout)
  local deadline = timeout and core_now() + timeout
  while true do
    core_receive(timeout)
    local kind, from, msg, ref = yield()
    if kind > MSG_BARE then return from, signal_msg(kind - MSG_BARE, from, msg) end
    if kind == MSG_TIMEOUT then return nil, "ETIMEDOUT: timed out", "ETIMEDOUT" end
    if kind == MSG_INSPECT then
      core_reply(from, ref, {})
      if deadline then timeout = math.max(0, math.ceil(deadline - core_now())) end -- inspects do not extend it
    else
      return from, msg, kind == MSG_REQUEST and ref or nil
    end
  end
end

--- True while a local process exists and can still run (not terminated, not a zombee).
function halo.alive(pid)
  local st = introspect.process_state(pid)
  return st ~= nil and st ~= "terminated" and st ~= "zombee"
end

--- Stops a process: a "shutdown" exit, then up to wait_ms (default 5000)
-- for it to end, then kill. From its parent the exit cannot be trapped.
-- Returns "stopped" or "killed" (a process stuck in a callback becomes a zombee).
function halo.stop_process(pid, wait_ms)
  local alive = halo.alive
  if not alive(pid) then return "stopped" end
  wait_ms = wait_ms or 5000
  if wait_ms <= 0 then
    process.kill(pid)
    return "killed"
  end
  process.exit(pid, "shutdown")
  local deadline, step = core_now() + wait_ms, 0
  while alive(pid) do
    if core_now() >= deadline then
      process.kill(pid)
      return "killed"
    end
    -- first let it run, then poll with a growing pause (at most 20 ms)
    if step == 0 then halo.yield() else halo.sleep(math.min(2 ^ (step - 1), 20)) end
    step = step + 1
  end
  return "stopped"
end

halo.self = process.self
-- A link or monitor to another node's process returns once that node has
-- it in place (so a message sent after it cannot overtake it).
-- Without an answer in time, the half-made relation is taken back.
local function relate(op, undo)
  return function(to)
    local r, err, code = op(to)
    if r ~= "wait" then return r, err, code end
    local ok, v, c = yield()
    if ok then return true end
    undo(to)
    return nil, v, c
  end
end
halo.link = relate(process.link, process.unlink)
halo.unlink = process.unlink
halo.monitor = relate(process.monitor, process.demonitor)
halo.demonitor = process.demonitor
--- Sends an exit signal with reason to a process (not to self, parent or leader).
halo.exit = process.exit
halo.kill = process.kill
halo.trap_exit = process.trap_exit
halo.register = process.register
halo.unregister = process.unregister
halo.whereis = process.whereis
halo.alias = process.alias
halo.unalias = process.unalias
halo.send_after = process.send_after
halo.cancel_timer = process.cancel_timer
--- The calling process's environment variable (names are case-insensitive),
-- or with no name a copy of the whole environment.
halo.getenv = process.getenv
--- Sets (nil: deletes) a variable in the calling process's own environment.
halo.setenv = process.setenv
halo.set_log_level = process.set_log_level
--- Monotonic milliseconds (fractional).
halo.now = halo.now or node.now

--- Stops the node (exit code, default 0) once the current callback returns.
halo.shutdown = node.stop

--- Logging: halo.log(level, fmt, ...), halo.log.info(fmt, ...), loggers,
-- levels and subscriptions (see halo/log.lua).
halo.log = require("halo.log")

--- True for the message a monitor delivers when its target ends.
function halo.is_down(msg) return type(msg) == "table" and msg.kind == "down" end
--- True for an exit signal delivered to a process that traps exits.
function halo.is_exit(msg) return type(msg) == "table" and msg.kind == "exit" end

-- Introspection: the one API every tool reads.
halo.node_info = introspect.node_info
halo.process_list = introspect.process_list
--- The children of a local process (a PID, even of an ended process, or a
-- name) as process_list rows in spawn order; recursive: every descendant,
-- level by level. Or nil, err, code.
halo.process_children = introspect.process_children
halo.process_info = introspect.process_info
halo.process_state = introspect.process_state
--- The traceback of a local process's coroutine (its Lua call stack where it
-- runs or waits; a zombee's where it was killed), or nil, err, code.
halo.process_stack = introspect.process_stack
halo.stats = introspect.stats
halo.memory = introspect.memory

--- PID of a registered name, or the name of a PID ("" when it has none).
function halo.process_lookup(name_or_pid)
  if type(name_or_pid) == "string" and name_or_pid:sub(1, 1) == "<" then
    return introspect.process_name(name_or_pid)
  end
  return process.whereis(name_or_pid)
end

-- The platform modules load on first use: halo.supervisor, halo.pool, ...
local submodules = { supervisor = true, pool = true, event = true, application = true, cron = true, codec = true,
                     net = true, remote = true, http = true, health = true, metrics = true, radar = true,
                     child = true, admin = true, message = true }
setmetatable(halo, {
  __index = function(t, k)
    if submodules[k] then
      local m = require("halo." .. k)
      rawset(t, k, m)
      return m
    end
  end,
})

return halo
