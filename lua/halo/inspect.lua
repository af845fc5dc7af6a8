--- halo.inspect: the views an Observer reads of a node and the actions it
-- may ask of one, built only from halo's introspection API.
--
--   local inspect = require("halo.inspect")
--   local data, err = inspect.view("process_list", { sort = "MessagesMailbox", limit = 50 })
--   local ok, err, code = inspect.act("kill", { pid = "<35DBD1C6.0.1042>" })
--
-- The observer node calls them directly for itself and through the
-- halo_remote service for any other node ({op = "inspect", view, args},
-- {op = "inspect", batch = {{view, args}...}} or {op = "act", action, args};
-- M.serve). Views answer a table or nil, "ECODE: text", "ECODE"; a process
-- or peer that is gone answers {State = "terminated"} / {Disconnected = true}.
--
-- The log view and event_info's Recent (with watch = true) read a tap: a process of this node
-- that the first read starts and that ends 10 s after the last read. The
-- log tap keeps at most 200 records per second (Suppressed counts the rest)
-- in a ring of 1000.
local halo = require("halo")
local core = require("halo.core")
local json = require("halo.json")
local heap = require("halo.heap")
local A = require("halo.mcp.toolargs")

local M = {}

M.INSPECT_TIMEOUT = 4000 -- ms: a behavior's handle_inspect for the inspect action (within a 5 s node call)
M.VIEW_INSPECT_TIMEOUT = 500 -- ms: the same for the process_inspect view: a process busy in a
                             -- callback cannot answer, and the view shares one read with the others
M.TAP_IDLE_MS = 10000    -- a tap nobody read for this long ends
M.STORM_CAP = 200        -- log records kept per second
M.RING = 1000            -- log records a tap holds
M.RECENT = 50            -- publications event_info shows
M.FOLD_OVER, M.FOLD_KEEP = 20, 5 -- sibling groups of one behavior over 20 keep 5
M.TREE_READ = 10         -- application_tree reads at most TREE_READ x limit processes

local array, object = json.array, json.object

local function incorrect(what) return core.node.error("EINCORRECT", what) end

-- A number argument within lo..hi, def when absent.
local function int_arg(v, def, lo, hi)
  v = tonumber(A.value(v))
  if not v then return def end
  v = math.floor(v)
  if v < lo then return lo end
  if v > hi then return hi end
  return v
end

local function str_arg(v) v = A.value(v) return type(v) == "string" and v or nil end

local function pid_arg(args)
  local pid, err = A.pid(type(args) == "table" and args.pid or nil)
  if not pid then return incorrect("pid: " .. err) end
  return pid
end

-- -- taps: the log ring and the recent publications of an event -----------

local taps = { serial = nil, pids = {} } -- per node run: key -> pid

local Tap = { name = "halo.inspect.tap", kind = "system" }

function Tap:init(a)
  self.key, self.read = a.key, halo.now()
  self.ring, self.first, self.seq = {}, 1, 0
  self.window, self.in_window, self.dropped = 0, 0, 0
  if a.event then
    local ok, err = halo.event.monitor(a.event)
    if not ok then error(err, 0) end
  else
    halo.log.subscribe({ name = "observer:" .. tostring(halo.self()) })
  end
  halo.send_after(halo.self(), "idle?", M.TAP_IDLE_MS)
end

function Tap:keep(entry, cap)
  self.seq = self.seq + 1
  entry.Seq = self.seq
  self.ring[self.seq] = entry
  while self.seq - self.first >= cap do
    self.ring[self.first] = nil
    self.first = self.first + 1
  end
end

function Tap:handle_log(r)
  local now = halo.now()
  local w = math.floor(now / 1000)
  if w ~= self.window then self.window, self.in_window = w, 0 end
  if self.in_window >= M.STORM_CAP then
    self.dropped = self.dropped + 1
    return
  end
  self.in_window = self.in_window + 1
  local src = r.source or {}
  self:keep({ Time = math.floor((r.time or 0) / 1e6), Level = r.level, Message = r.message, PID = src.pid or "",
              Name = src.name or "", Behavior = src.behavior or "", Source = src.type or "" }, M.RING)
end

function Tap:handle_message(_, msg)
  if msg == "idle?" then
    if halo.now() - self.read >= M.TAP_IDLE_MS then return "normal" end
    halo.send_after(halo.self(), "idle?", M.TAP_IDLE_MS)
    return
  end
  if halo.is_down(msg) then return "normal" end -- the event ended
end

function Tap:handle_event(_, message)
  local ok, text = pcall(json.encode, message)
  text = ok and text or tostring(message)
  if #text > 512 then text = text:sub(1, 512) .. "..." end
  self:keep({ time = math.floor(core.node.time_ns() / 1e6), message = text }, M.RECENT)
end

-- {after = seq, dropped = seen}: the entries after seq, oldest first, at
-- most limit (the newest), and the drop counters.
function Tap:handle_call(_, _, req)
  self.read = halo.now()
  local out, limit = {}, req.limit or M.RING
  local from = math.max((req.after or 0) + 1, self.first, self.seq - limit + 1)
  for i = from, self.seq do out[#out + 1] = self.ring[i] end
  return { entries = out, dropped = self.dropped, last = self.seq }
end

-- Reads the tap of key (started when absent).
local function tap_read(key, event, req)
  local serial = core.node.serial()
  if taps.serial ~= serial then taps.serial, taps.pids = serial, {} end
  local pid = taps.pids[key]
  if not (pid and halo.alive(pid)) then
    local err
    pid, err = halo.spawn(Tap, { key = key, event = event }, { behavior = "halo.inspect.tap" })
    if not pid then return nil, err end
    taps.pids[key] = pid
  end
  return halo.call(pid, req, 2000)
end

-- -- views ------------------------------------------------------------------

local V = {}

local LEVEL_NAMES = { "trace", "debug", "info", "warning", "error", "panic" }

function V.node_info()
  local n = halo.node_info()
  n.Stats = halo.stats()
  n.Memory = halo.memory()
  local loggers = array()
  for i, lg in ipairs(halo.log.loggers()) do
    loggers[i] = { name = lg.name, format = lg.format, levels = array(lg.levels), records = lg.records }
  end
  n.Loggers = loggers
  n.Cron = require("halo.cron").info().Jobs
  local counts = object()
  for i, name in ipairs(LEVEL_NAMES) do
    if i > 1 then counts[name] = n.LogMessages[i] or 0 end
  end
  n.LogCounts = counts
  n.Version = n.Framework and n.Framework.Release or ""
  return n
end

-- process_list sort columns -> halo.process_list keys
local SORT = { PID = "pid", Name = "name", Behavior = "behavior", Application = "application",
               MessagesIn = "messages_in", MessagesOut = "messages_out", MessagesMailbox = "mailbox",
               MailboxLatency = "mailbox_latency", RunningTime = "running_time", InitTime = "init_time",
               Wakeups = "wakeups", Uptime = "uptime", State = "state" }
M.SORT_COLUMNS = SORT

function V.process_list(args)
  local f = { limit = int_arg(args.limit, 500, 1, 5000), name = str_arg(args.name), behavior = str_arg(args.behavior),
              application = str_arg(args.application), state = str_arg(args.state) }
  local sort, order = str_arg(args.sort), str_arg(args.order) or "desc"
  if order ~= "asc" and order ~= "desc" then return incorrect("order must be asc or desc") end
  if sort and not SORT[sort] then return incorrect("unknown sort column " .. sort) end
  if sort or A.value(args.order) then f.sort_by, f.order = SORT[sort or "PID"], order end -- else spawn order
  local min = int_arg(args.min_mailbox, 0, 0, 2 ^ 53)
  if min > 0 then f.min = { mailbox = min } end
  local ok, rows, matched, total = pcall(halo.process_list, f)
  if not ok then return incorrect((tostring(rows):gsub("^.-: ", ""))) end
  if type(args.columns) == "table" and #args.columns > 0 then -- only these fields (and PID): smaller snapshots
    local keep = { PID = true }
    for _, k in ipairs(args.columns) do keep[k] = true end
    for _, row in ipairs(rows) do
      for k in pairs(row) do if not keep[k] then row[k] = nil end end
    end
  end
  return { Total = total, Matched = matched, Processes = rows }
end

function V.process_info(args)
  local pid, err, code = pid_arg(args)
  if not pid then return nil, err, code end
  local info = halo.process_info(pid)
  if not info or info.State == "terminated" then return { State = "terminated" } end
  info.Stack = halo.process_stack(pid) or ""
  return info
end

local function process_inspect(args, timeout)
  local pid, err, code = pid_arg(args)
  if not pid then return nil, err, code end
  local map, ierr, icode = halo.inspect(pid, {}, timeout)
  if not map then
    if not halo.alive(pid) then return { State = "terminated" } end
    if icode == "ETIMEDOUT" then
      return nil, ("ETIMEDOUT: %s did not answer its inspect within %d ms (busy in a callback?)"):format(pid, timeout),
        icode
    end
    return nil, ierr, icode
  end
  local out = object()
  if type(map) == "table" then for k, v in pairs(map) do out[k] = v end end
  return out
end

function V.process_inspect(args) return process_inspect(args, M.VIEW_INSPECT_TIMEOUT) end

function V.application_list()
  local out = array()
  for _, row in ipairs(halo.application.list()) do
    local info = halo.application.info(row.name)
    if info then out[#out + 1] = info end
  end
  return { Applications = out }
end

local TREE_FIELDS = { "PID", "Name", "Behavior", "Kind", "MessagesMailbox", "MailboxLatency", "RunningTime",
                      "MessagesIn", "MessagesOut", "State" }

-- {Root}: the application's processes nested by parent under a root that
-- stands for the application; over M.FOLD_OVER siblings of one behavior
-- keep M.FOLD_KEEP and count the rest in the parent's Folded.
function V.application_tree(args)
  local name = str_arg(args.app)
  if not name then return incorrect("app: an application name") end
  local info, err, code = halo.application.info(name)
  if not info then return nil, err, code end
  local limit = int_arg(args.limit, 1000, 1, 100000)
  -- at most 10 x limit rows read (spawn order: a parent before its children),
  -- so a huge application costs a bounded snapshot
  local rows, matched = halo.process_list({ application = name, limit = limit * M.TREE_READ })
  local kids, by_pid = {}, {}
  for _, p in ipairs(rows) do by_pid[p.PID] = p end
  for _, p in ipairs(rows) do
    local parent = by_pid[p.Parent] and p.Parent or "" -- the members hang under the root
    local list = kids[parent]
    if not list then list = {}; kids[parent] = list end
    list[#list + 1] = p
  end
  local shown, truncated = 0, 0
  local function build(node, list)
    node.Children, node.Folded = array(), 0
    local per = {}
    for _, p in ipairs(list or {}) do per[p.Behavior] = (per[p.Behavior] or 0) + 1 end
    local seen = {}
    for _, p in ipairs(list or {}) do
      local b = p.Behavior
      seen[b] = (seen[b] or 0) + 1
      if per[b] > M.FOLD_OVER and seen[b] > M.FOLD_KEEP then
        node.Folded = node.Folded + 1
      elseif shown >= limit then
        truncated = truncated + 1
      else
        shown = shown + 1
        local c = {}
        for _, k in ipairs(TREE_FIELDS) do c[k] = p[k] end
        node.Children[#node.Children + 1] = c
        build(c, kids[p.PID])
      end
    end
  end
  local root = { PID = "", Name = name, Behavior = "", Kind = "application", State = info.State,
                 MessagesMailbox = 0, MailboxLatency = 0, RunningTime = 0, MessagesIn = 0, MessagesOut = 0 }
  build(root, kids[""])
  return { Root = root, Processes = matched, Truncated = truncated + matched - #rows }
end

function V.event_list(args)
  return { Events = halo.event.list({ name = str_arg(args.name), limit = int_arg(args.limit, 500, 1, 100000) }) }
end

function V.event_info(args)
  local name = str_arg(args.name)
  if not name then return incorrect("name: an event name") end
  local info, err, code = halo.event.info(name)
  if not info then return nil, err, code end
  -- watching subscribes a tap to the event: it counts as a subscriber (and
  -- wakes a Notify producer), so only a reader that asks for it watches
  local r = args.watch == true and tap_read("event:" .. name, name, { after = 0 })
  info.Recent = array(r and r.entries or {})
  for _, e in ipairs(info.Recent) do e.Seq = nil end
  return info
end

function V.network_info() return halo.net.info() end

local function peers()
  local names = halo.net.info().Nodes
  table.sort(names)
  return names
end

function V.connection_list()
  local out = array()
  for _, name in ipairs(peers()) do
    local p = halo.net.node(name)
    if p and p.Connected then out[#out + 1] = p end
  end
  return { Nodes = out }
end

function V.connection_info(args)
  local name = str_arg(args.node)
  if not name then return incorrect("node: a node name") end
  local p = halo.net.node(name)
  if not p or not p.Connected then return { Disconnected = true } end
  return p
end

--- This node and the nodes it has a link with: what topology asks each node.
function V.peers() return { Name = halo.node_info().Name, Peers = array(peers()) } end

local LEVEL_SET = { trace = true, debug = true, info = true, warning = true, error = true, panic = true }

-- args: levels (default info..panic, [] all), limit, after (the last Seq seen), dropped (the drop count seen)
function V.log(args)
  local levels = {}
  local given = type(args.levels) == "table" and args.levels or { "info", "warning", "error", "panic" }
  if #given == 0 then given = LEVEL_NAMES end -- an empty list: every level
  for _, l in ipairs(given) do
    if not LEVEL_SET[l] then return incorrect("unknown log level " .. tostring(l)) end
    levels[l] = true
  end
  local limit = int_arg(args.limit, 500, 1, M.RING)
  local r, err, code = tap_read("log", nil, { after = int_arg(args.after, 0, 0, 2 ^ 53) })
  if not r then return nil, err, code end
  local out = array()
  for _, e in ipairs(r.entries) do
    if levels[e.Level] then out[#out + 1] = e end
  end
  while #out > limit do table.remove(out, 1) end
  local seen = int_arg(args.dropped, 0, 0, 2 ^ 53)
  return { Entries = out, Suppressed = math.max(0, r.dropped - seen), SuppressedTotal = r.dropped, Last = r.last }
end

function V.heap(args)
  local limit = int_arg(args.limit, 100, 1, 10000)
  local prof, err = core.heap.profile()
  if not prof then return nil, "EINCORRECT: failed to read the heap profile: " .. tostring(err), "EINCORRECT" end
  local total, fns = heap.functions(prof)
  local out = array()
  for i = 1, math.min(limit, #fns) do
    local f = fns[i]
    out[i] = { Function = f.fn, Inuse = f.inuse, InuseObjects = f.inuse_objects, Alloc = f.alloc,
               AllocObjects = f.alloc_objects }
  end
  local s = core.heap.stats()
  return { Records = out, TotalInuse = total, LuaHeap = s.lua_heap, Allocated = s.allocated, Freed = s.freed,
           RSS = s.rss, GCCycles = s.gc_cycles, GCCPUPercent = s.gc.cpu_percent, LastGCPauseNs = s.gc.last_pause_ns,
           MaxGCPauseNs = s.gc.max_pause_ns, GCPacedSteps = s.gc.steps, GCNs = s.gc.ns_total, BusyNs = s.gc.busy_ns,
           Rate = prof.rate }
end

M.VIEWS = V

--- The view name with args (a table), or nil, err, code.
function M.view(name, args)
  local fn = type(name) == "string" and V[name]
  if not fn then return incorrect("unknown view " .. tostring(name)) end
  if args ~= nil and type(args) ~= "table" then return incorrect("args must be an object") end
  local ok, r, err, code = pcall(fn, args or {})
  if not ok then return incorrect(tostring(r)) end
  return r, err, code
end

-- What a poller needs of a view's result without decoding its text: gone
-- (the process or peer ended), last and dropped (the log's cursor).
local function meta(name, r, out)
  if type(r) ~= "table" then return out end
  if (name == "process_info" or name == "process_inspect") and r.State == "terminated" then out.gone = true end
  if name == "connection_info" and r.Disconnected == true then out.gone = true end
  if name == "log" then out.last, out.dropped = r.Last, r.SuppressedTotal end
  return out
end

--- The view as {json = its JSON text, gone, last, dropped}, or nil, err,
-- code. The text is made where the view's tables are built: an empty list
-- keeps its array mark here, which a message to another node would lose.
function M.view_json(name, args)
  local r, err, code = M.view(name, args)
  if r == nil then return nil, err, code end
  local ok, text = pcall(json.encode, r)
  if not ok then return incorrect(name .. " answered what JSON cannot hold: " .. tostring(text)) end
  return meta(name, r, { json = text })
end

-- -- actions ----------------------------------------------------------------

--- The refusal's text when pid is one of the node's own services (kind
-- "system": halo_remote, halo_applications, cron, etcd, the taps): ending
-- one leaves the node without it until it restarts. Else nil.
function M.system_process(pid)
  local info = halo.process_info(pid)
  if info and info.Kind == "system" then
    return ("not allowed: %s is a system process of the node (%s)"):format(pid, info.Behavior)
  end
end

--- The refusal's text when pid is the node's entry process (spawned by the
-- node itself: its parent is the node's root, the leader), whose end other
-- than normal stops the node. Else nil.
function M.node_entry(pid)
  local info = halo.process_info(pid)
  if info and info.Behavior == "entry" and info.Parent == info.Leader then
    return ("not allowed: %s is the node's entry process (its end stops the node)"):format(pid)
  end
end

--- Why pid may not be acted on from an Observer (a system process, the
-- Observer's own or an MCP one; with ending, also the node's entry
-- process, whose end other than normal stops the node), or nil.
function M.protected(pid, ending)
  local why = M.system_process(pid)
  if why then return why end
  local info = halo.process_info(pid)
  if not info then return nil end
  if info.Application == "observer" or info.Application == "mcp" then
    return ("not allowed: %s belongs to the %s application"):format(pid, info.Application)
  end
  if ending then return M.node_entry(pid) end
end

local function refused(why) return nil, "ENOTALLOWED: " .. why, "ENOTALLOWED" end

-- The pid of args when it may be acted on (ending: exit or kill), else nil, err, code.
local function target(args, ending)
  local pid, err, code = pid_arg(args)
  if not pid then return nil, err, code end
  local why = M.protected(pid, ending)
  if why then return refused(why) end
  return pid
end

-- The refusal (err, code) when the node's admin switch is off, else nil.
local function admin_needed(what)
  if not require("halo.admin").allowed() then
    return select(2, refused(what .. " needs the node's admin switch (halo run --admin)"))
  end
end

-- A core call's outcome as an action's: text when it did not fail.
local function done(text, ok, err, code)
  if ok == nil and err ~= nil then return nil, err, code end
  return text
end

local ACT = {}
local MUTATING = { send = true, exit = true, kill = true, set_log_level = true, app_start = true, app_stop = true,
                   app_unload = true }
M.MUTATING = MUTATING

function ACT.stack(args)
  local pid, err, code = pid_arg(args)
  if not pid then return nil, err, code end
  return halo.process_stack(pid)
end

function ACT.goroutines(args)
  return require("halo.stacks").dump({ filter = str_arg(args.filter), exclude = str_arg(args.exclude),
                                       debug = tonumber(args.debug), limit = tonumber(args.limit) })
end

function ACT.inspect(args) return process_inspect(args, M.INSPECT_TIMEOUT) end
ACT.app_tree = V.application_tree

--- A decoded JSON value with its nulls removed (JSON null has no Lua value:
-- it becomes nil, a map drops the key).
local function denull(v)
  if v == json.null then return nil end
  if type(v) == "table" then for k, x in pairs(v) do v[k] = denull(x) end end
  return v
end
M.denull = denull

function ACT.send(args)
  local pid, err, code = target(args)
  if not pid then return nil, err, code end
  return done("sent", halo.send(pid, denull(args.message)))
end

function ACT.exit(args)
  local pid, err, code = target(args, true)
  if not pid then return nil, err, code end
  return done("exit sent", halo.exit(pid, str_arg(args.reason) or "normal"))
end

function ACT.kill(args)
  local pid, err, code = target(args, true)
  if not pid then return nil, err, code end
  return done("killed", halo.kill(pid))
end

function ACT.set_log_level(args)
  local level = str_arg(args.level)
  if not level or not (LEVEL_SET[level] or level == "disabled") then return incorrect("level: unknown log level") end
  if A.value(args.pid) == nil then
    return done("node log level set to " .. level, halo.log.set_level(level, "node"))
  end
  local pid, err, code = target(args)
  if not pid then return nil, err, code end
  return done("log level of " .. pid .. " set to " .. level, halo.log.set_level(level, pid))
end

local APP_MODES = { temporary = true, transient = true, permanent = true }

local function app_name(args)
  local name = str_arg(args.name)
  if not name then return incorrect("name: an application name") end
  if name == "observer" or name == "mcp" then return refused("the " .. name .. " application") end
  return name
end

function ACT.app_start(args)
  local name, err, code = app_name(args)
  if not name then return nil, err, code end
  local mode = str_arg(args.mode)
  if mode and not APP_MODES[mode] then return incorrect("mode must be temporary, transient or permanent") end
  local nerr, ncode = admin_needed("application start")
  if nerr then return nil, nerr, ncode end
  return done("started", halo.application.start(name, nil, mode))
end

function ACT.app_stop(args)
  local name, err, code = app_name(args)
  if not name then return nil, err, code end
  local nerr, ncode = admin_needed("application stop")
  if nerr then return nil, nerr, ncode end
  -- force: a shorter wait for the members' stop
  return done("stopped", halo.application.stop(name, args.force == true and 1000 or nil))
end

function ACT.app_unload(args)
  local name, err, code = app_name(args)
  if not name then return nil, err, code end
  local nerr, ncode = admin_needed("application unload")
  if nerr then return nil, nerr, ncode end
  return done("unloaded", halo.application.unload(name))
end

M.ACTIONS = ACT

--- Runs action name with args: its result, or nil, err, code.
function M.act(name, args)
  local fn = type(name) == "string" and ACT[name]
  if not fn then return incorrect("unknown action " .. tostring(name)) end
  if args ~= nil and type(args) ~= "table" then return incorrect("args must be an object") end
  local ok, r, err, code = pcall(fn, args or {})
  if not ok then return incorrect(tostring(r)) end
  return r, err, code
end

--- Runs action name with args: {json = the result's JSON text}, or nil, err, code.
function M.act_json(name, args)
  local r, err, code = M.act(name, args)
  if r == nil then return nil, err, code end
  local ok, text = pcall(json.encode, r)
  if not ok then return incorrect(name .. " answered what JSON cannot hold: " .. tostring(text)) end
  return { json = text }
end

--- halo_remote's handler of {op = "inspect" | "act"}: a process of its own
-- answers (a view may wait on another process), {result, err, code}; a batch
-- answers {{result, err, code}...} in the batch's order. With json = true
-- every result is M.view_json's / M.act_json's.
function M.serve(from, ref, req)
  local batch = req.batch
  if req.op == "inspect" and batch ~= nil and type(batch) ~= "table" then return { incorrect("batch must be a list") } end
  local view, act = M.view, M.act
  if req.json == true then view, act = M.view_json, M.act_json end
  local pid, err, code = halo.spawn(function()
    local r
    if req.op == "act" then
      r = { act(req.action, req.args) }
    elseif batch then
      r = {}
      for i, b in ipairs(batch) do
        r[i] = type(b) == "table" and { view(b[1], b[2]) } or { incorrect("a batch entry is {view, args}") }
      end
    else
      r = { view(req.view, req.args) }
    end
    halo.reply(from, ref, r)
  end, nil, { behavior = "halo.inspect.request" })
  if not pid then return { nil, err, code } end
  return nil
end

return M
