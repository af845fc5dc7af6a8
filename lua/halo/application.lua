--- halo.application: named groups of processes started and stopped as one.
--
--   halo.application.load({
--     name = "shop", description = "the shop", version = "1.2.0",
--     mode = "transient",               -- temporary (default) | transient | permanent
--     depends = { "db" },               -- started first
--     env = { REGION = "eu" },          -- added to every member's environment
--     modules = { "shop" },             -- where its code comes from (halo.application.reload)
--     weight = 10, tags = { "web" }, log_level = "info",
--     group = {                         -- members, started in order
--       { behavior = "shop.sup", name = "shop_sup", args = { ... } },
--       { behavior = Cache, options = { mailbox_size = 1000 } },
--     },
--   })
--   assert(halo.application.start("shop"))
--
-- Modes decide what a direct member's end does: temporary - nothing (the
-- application stops when its last member is gone); transient - stop the
-- application when the reason is abnormal (not normal or shutdown);
-- permanent - stop it on any member's end, and then stop the node (exit 1).
-- Stopping sends the members shutdown exits newest first, waiting for each
-- (5 s, then kill). Every process a member spawns belongs to the
-- application too (process info Application). States: loaded, running,
-- stopping. A controller process (behavior halo.applications) starts the
-- members and watches them while any application runs.
local halo = require("halo")
local core = require("halo.core")
local json = require("halo.json")

local M = {}

local MODES = { temporary = true, transient = true, permanent = true }
local SPEC_KEYS = { name = true, description = true, version = true, env = true, depends = true, weight = true,
                    mode = true, group = true, log_level = true, tags = true, modules = true }
local MEMBER_KEYS = { behavior = true, name = true, args = true, options = true }
local RESERVED = { name = true, application = true, link = true, link_parent = true, link_child = true,
                   monitor = true }
local STOP_WAIT = 5000

-- Per node run: the applications and the controller's PID.
local reg = { serial = nil }
local function registry()
  local s = core.node.serial()
  if reg.serial ~= s then reg = { serial = s, apps = {}, names = {}, controller = nil, watchers = {} } end
  return reg
end

--- Watches state changes of every application: fn(change, info) with change
-- "loaded", "running", "stopping", "stopped" or "unloaded" and info
-- {name, weight, mode, tags, state}. fn runs in the process that made the
-- change (keep it short: a send); its errors are logged. A registrar
-- publishes application routes with it. Returns true.
function M.watch(fn)
  local w = registry().watchers
  w[#w + 1] = fn
  return true
end

--- Stops watching with fn.
function M.unwatch(fn)
  local w = registry().watchers
  for i = #w, 1, -1 do
    if w[i] == fn then table.remove(w, i) end
  end
end

local function notify(app, change)
  local total, running = 0, 0
  for _, a in pairs(reg.apps) do
    total = total + 1
    if a.state == "running" then running = running + 1 end
  end
  core.metrics.set_applications(total, running)
  local w = reg.watchers
  if not w or #w == 0 then return end
  local tags = {}
  for i, t in ipairs(app.spec.tags or {}) do tags[i] = t end
  local info = { name = app.name, weight = app.weight, mode = app.mode, tags = tags, state = app.state }
  for _, fn in ipairs(w) do
    local ok, err = pcall(fn, change, info)
    if not ok then halo.log.error("application watcher failed on %s %s: %s", app.name, change, tostring(err)) end
  end
end

local function check(spec)
  if type(spec) ~= "table" then error("application spec table expected", 3) end
  for k in pairs(spec) do
    if not SPEC_KEYS[k] then error(("application spec: unknown field '%s'"):format(tostring(k)), 3) end
  end
  if type(spec.name) ~= "string" or spec.name == "" then error("application spec: name (a non-empty string) is required", 3) end
  if spec.mode ~= nil and not MODES[spec.mode] then
    error("application spec: mode must be temporary, transient or permanent", 3)
  end
  if type(spec.group) ~= "table" then error("application spec: group (a list of members) is required", 3) end
  for i, m in ipairs(spec.group) do
    if type(m) ~= "table" then error(("application spec: group[%d] must be a table"):format(i), 3) end
    for k in pairs(m) do
      if not MEMBER_KEYS[k] then error(("application spec: group[%d]: unknown field '%s'"):format(i, tostring(k)), 3) end
    end
    local bt = type(m.behavior)
    if bt ~= "table" and bt ~= "string" and bt ~= "function" then
      error(("application spec: group[%d]: behavior must be a table, a module name or a function"):format(i), 3)
    end
    for k in pairs(m.options or {}) do
      if RESERVED[k] then error(("application spec: group[%d]: option '%s' is set by the application"):format(i, k), 3) end
    end
  end
  for _, k in ipairs({ "depends", "tags", "modules" }) do
    if spec[k] ~= nil then
      if type(spec[k]) ~= "table" then error(("application spec: %s must be a list of strings"):format(k), 3) end
      for _, v in ipairs(spec[k]) do
        if type(v) ~= "string" then error(("application spec: %s must be a list of strings"):format(k), 3) end
      end
    end
  end
  if spec.env ~= nil and type(spec.env) ~= "table" then error("application spec: env must be a table", 3) end
  if spec.weight ~= nil and type(spec.weight) ~= "number" then error("application spec: weight must be a number", 3) end
end

--- Loads an application spec (raises on a malformed spec). Returns true or
-- nil, "ETAKEN: resource is taken", "ETAKEN" when the name is loaded already.
function M.load(spec)
  check(spec)
  local r = registry()
  if r.apps[spec.name] then return core.node.error("ETAKEN", "application " .. spec.name) end
  if #spec.group == 0 then return core.node.error("EAPPEMPTY") end
  r.apps[spec.name] = { spec = spec, name = spec.name, state = "loaded", mode = spec.mode or "temporary",
                        weight = spec.weight or 0, members = {}, started_at = nil, parent = "" }
  r.names[#r.names + 1] = spec.name
  notify(r.apps[spec.name], "loaded")
  return true
end

--- Removes a loaded (not running) application.
function M.unload(name)
  local r = registry()
  local app = r.apps[name]
  if not app then return core.node.error("EAPPUNKNOWN") end
  if app.state ~= "loaded" then return core.node.error("EAPPRUNNING") end
  r.apps[name] = nil
  for i, n in ipairs(r.names) do
    if n == name then table.remove(r.names, i) break end
  end
  notify(app, "unloaded")
  return true
end

-- The controller process ---------------------------------------------------------

local Controller = { name = "halo.applications", kind = "system" }

local function is_normal(reason) return reason == "normal" or reason == "shutdown" end


-- Stops the members newest first: a shutdown exit (from their parent, the
-- controller: not trappable), up to STOP_WAIT ms each, then kill.
local function stop_members(app)
  app.state = "stopping"
  notify(app, "stopping")
  for i = #app.members, 1, -1 do
    local pid = app.members[i]
    app.members[i] = nil
    reg.owner[pid] = nil
    if halo.stop_process(pid, STOP_WAIT) == "killed" then
      halo.log.warning("application %s: member %s did not stop in %d ms, killed", app.name, pid, STOP_WAIT)
    end
  end
  app.state = "loaded"
  app.started_at = nil
  app.parent = ""
  notify(app, "stopped")
end

local function start_app(name, chain)
  local r = reg
  local app = r.apps[name]
  if not app then return core.node.error("EAPPUNKNOWN", name) end
  if app.state == "running" then return core.node.error("EAPPRUNNING") end
  if app.state ~= "loaded" then return core.node.error("EAPPSTATE") end
  chain = chain or {}
  if chain[name] then return core.node.error("EAPPDEPENDS", "circular dependency on " .. name) end
  chain[name] = true
  for _, dep in ipairs(app.spec.depends or {}) do
    local d = r.apps[dep]
    if not d then return core.node.error("EAPPDEPENDS", ("%s needs %s, which is not loaded"):format(name, dep)) end
    if d.state ~= "running" then
      local ok, err = start_app(dep, chain)
      if not ok then return core.node.error("EAPPDEPENDS", ("%s needs %s: %s"):format(name, dep, tostring(err))) end
    end
  end
  chain[name] = nil
  app.state = "initializing"
  local spec = app.spec
  for i, m in ipairs(spec.group) do
    local opts = { application = name, monitor = true, name = m.name, log_level = spec.log_level }
    for k, v in pairs(m.options or {}) do opts[k] = v end
    if spec.env then
      local env = {}
      for k, v in pairs(spec.env) do env[k] = v end
      for k, v in pairs(opts.env or {}) do env[k] = v end
      opts.env = env
    end
    local pid, err = halo.spawn(m.behavior, m.args, opts)
    if not pid then
      halo.log.error("application %s: member %d failed to start: %s", name, i, tostring(err))
      stop_members(app)
      return nil, err, err and err:match("^(%u+):")
    end
    app.members[#app.members + 1] = pid
    r.owner[pid] = app
  end
  app.state = "running"
  app.started_at = halo.now()
  app.parent = halo.node_info().Name
  halo.log.info("application %s started (%s)", name, app.mode)
  notify(app, "running")
  return true
end

function Controller:init() reg.owner = reg.owner or {} end

-- The controller's figures: applications per state.
function Controller:handle_inspect()
  local n = { loaded = 0, running = 0, stopping = 0 }
  for _, a in pairs(reg.apps) do n[a.state] = (n[a.state] or 0) + 1 end
  return { applications_total = tostring(#reg.names), applications_loaded = tostring(n.loaded),
           applications_running = tostring(n.running), applications_stopping = tostring(n.stopping) }
end

-- With no application running the controller ends (so that a node whose
-- work is done can stop); the next start spawns a new one.
local function idle_reason()
  for _, a in pairs(reg.apps) do
    if a.state ~= "loaded" then return nil end
  end
  -- requests that queued up meanwhile are answered first
  local q = halo.process_info(halo.self()).MailboxQueues
  if q.Urgent + q.System + q.Main + q.Log > 0 then return nil end
  return "normal"
end

function Controller:handle_call(_, _, req)
  if req[1] == "start" then
    local app = req[3] and reg.apps[req[2]]
    if app and app.state == "loaded" then app.mode = req[3] end -- this start's mode (halo.remote.start_application)
    return { start_app(req[2]) }, idle_reason()
  end
  if req[1] == "stop" then
    local app = reg.apps[req[2]]
    if not app then return { core.node.error("EAPPUNKNOWN", req[2]) } end
    if app.state == "stopping" then return { core.node.error("EAPPSTOPPING") } end
    if app.state ~= "running" then return { core.node.error("EAPPSTATE") } end
    stop_members(app)
    halo.log.info("application %s stopped", app.name)
    return { true }, idle_reason()
  end
  return { nil, "EINCORRECT: unknown request", "EINCORRECT" }
end

-- A member ended: apply the application's mode.
local function member_down(msg)
  local app = reg.owner[msg.pid]
  if not app then return end
  reg.owner[msg.pid] = nil
  for i, pid in ipairs(app.members) do
    if pid == msg.pid then table.remove(app.members, i) break end
  end
  if app.state ~= "running" then return end
  local stop = app.mode == "permanent" or (app.mode == "transient" and not is_normal(msg.reason))
  if stop then
    halo.log.error("application %s (%s) stopped: member %s ended with %s", app.name, app.mode, msg.pid, tostring(msg.reason))
    stop_members(app)
    if app.mode == "permanent" then
      halo.log.error("permanent application %s failed: stopping the node", app.name)
      halo.shutdown(1)
    end
  elseif #app.members == 0 then
    app.state, app.started_at, app.parent = "loaded", nil, ""
    halo.log.info("application %s stopped: no members left", app.name)
    notify(app, "stopped")
  end
end

function Controller:handle_message(_, msg)
  if halo.is_down(msg) then member_down(msg) end
  return idle_reason()
end

local function controller()
  local r = registry()
  if r.controller and halo.alive(r.controller) then return r.controller end
  r.owner = {}
  local pid = assert(halo.spawn(Controller, nil, { name = "halo_applications" }))
  r.controller = pid
  return pid
end

--- Starts a loaded application (its dependencies first), in mode if given
-- (temporary, transient, permanent; else the spec's). Returns true or
-- nil, err, code (EAPPUNKNOWN, EAPPRUNNING, EAPPDEPENDS, EINIT, ...).
function M.start(name, timeout, mode)
  if mode ~= nil and not MODES[mode] then error("halo.application.start: mode must be temporary, transient or permanent", 2) end
  if not registry().apps[name] then return core.node.error("EAPPUNKNOWN", name) end
  local r, err, code = halo.call(controller(), { "start", name, mode }, timeout or 60000)
  if not r and (code == "ENOPROC" or code == "ETERMINATED") then -- it just went idle
    r, err, code = halo.call(controller(), { "start", name, mode }, timeout or 60000)
  end
  if not r then return nil, err, code end
  return r[1], r[2], r[3]
end

--- Stops a running application: members newest first, each waited for.
function M.stop(name, timeout)
  local r = registry()
  if not r.apps[name] then return core.node.error("EAPPUNKNOWN", name) end
  if r.apps[name].state == "loaded" or not r.controller then return core.node.error("EAPPSTATE") end
  local res, err, code = halo.call(r.controller, { "stop", name }, timeout or 60000)
  if not res then return nil, err, code end
  return res[1], res[2], res[3]
end

-- Reload ----------------------------------------------------------------------------

-- Loads module m from its file again without touching package.loaded:
-- the module's value, or nil, "EMALFORMED: ..." (not found, does not
-- compile, fails while loading).
local function load_fresh(m)
  local path, err = package.searchpath(m, package.path)
  if not path then return core.node.error("EMALFORMED", ("module %s not found:%s"):format(m, err)) end
  local chunk, cerr = loadfile(path)
  if not chunk then return core.node.error("EMALFORMED", cerr) end
  local ok, v = pcall(chunk, m, path)
  if not ok then return core.node.error("EMALFORMED", ("%s: %s"):format(m, tostring(v))) end
  if v == nil then v = true end
  return v
end

--- Reloads an application's code from disk: loads the files of its spec's
-- `modules` again (in that order; each sees the fresh ones before it), and
-- only when all of them load stops the application, puts the new modules
-- in package.loaded and starts it again (an application that was not
-- running is not started). When a module returns a table with an
-- application(env) function, the last such one rebuilds the spec from the
-- current spec's env. Returns true, or nil, err, code: a module that does
-- not compile or fails while loading (EMALFORMED, with the Lua error) or a
-- bad new spec (EINCORRECT) change nothing and the old version keeps
-- running; when the new version fails to start, the old one is started again.
function M.reload(name, timeout)
  local r = registry()
  local app = r.apps[name]
  if not app then return core.node.error("EAPPUNKNOWN", name) end
  local mods = app.spec.modules
  if not mods or #mods == 0 then return core.node.error("EINCORRECT", "application " .. name .. " names no modules") end
  local old_loaded, fresh, builder = {}, {}, nil
  local function restore()
    for _, m in ipairs(mods) do package.loaded[m] = old_loaded[m] end
  end
  for _, m in ipairs(mods) do old_loaded[m] = package.loaded[m] end
  for _, m in ipairs(mods) do
    local v, err, code = load_fresh(m)
    if not v then
      restore()
      return nil, err, code
    end
    fresh[m] = v
    package.loaded[m] = v -- the modules after it require the fresh one
    if type(v) == "table" and type(v.application) == "function" then builder = v.application end
  end
  restore()
  local spec = app.spec
  if builder then
    local ok, s = pcall(builder, spec.env)
    if ok then
      local valid, why = pcall(check, s)
      if not valid then ok, s = false, why end
    end
    if not ok then return core.node.error("EINCORRECT", "new spec: " .. tostring(s)) end
    if s.name ~= name then return core.node.error("EINCORRECT", ("new spec names %s, not %s"):format(s.name, name)) end
    spec = s
  end
  local running = app.state ~= "loaded"
  if running then
    local ok, err, code = M.stop(name, timeout)
    if not ok then return nil, err, code end
  end
  local old_spec = app.spec
  local function install(sp, loaded)
    for _, m in ipairs(mods) do package.loaded[m] = loaded[m] end
    app.spec, app.mode, app.weight = sp, sp.mode or "temporary", sp.weight or 0
  end
  install(spec, fresh)
  if not running then return true end
  local ok, err, code = M.start(name, timeout)
  if ok then
    halo.log.info("application %s reloaded", name)
    return true
  end
  halo.log.error("application %s: the reloaded version failed to start (%s), starting the old one", name, tostring(err))
  install(old_spec, old_loaded)
  M.start(name, timeout)
  return nil, err, code
end

-- Introspection --------------------------------------------------------------------

local function uptime(app) return app.started_at and math.floor((halo.now() - app.started_at) / 1000) or 0 end

--- ApplicationInfo: Name, Description, Version ({Name, Release, Commit,
-- License}: Release is the spec's version), Weight, Tags, Env, Depends,
-- Mode, State, Parent, Uptime (s), Group (member PIDs).
function M.info(name)
  local app = registry().apps[name]
  if not app then return core.node.error("EAPPUNKNOWN", name) end
  local spec = app.spec
  local env = json.object()
  for k, v in pairs(spec.env or {}) do env[tostring(k):upper()] = v end
  local group = json.array()
  for i, pid in ipairs(app.members) do group[i] = pid end
  local deps = json.array()
  for i, d in ipairs(spec.depends or {}) do deps[i] = d end
  local tags = json.array()
  for i, t in ipairs(spec.tags or {}) do tags[i] = t end
  return { Name = name, Description = spec.description or "",
           Version = { Name = name, Release = spec.version or "", Commit = "", License = "" },
           Weight = app.weight, Tags = tags, Env = env,
           Depends = { Applications = deps, Network = false }, Mode = app.mode, State = app.state,
           Parent = app.parent, Uptime = uptime(app), Group = group }
end

local STATES = { loaded = "loaded", running = "running", stopping = "stopping", stopped = "stopping" }

--- Applications as short rows (name, state, mode, description, version,
-- uptime, weight, tags, processes), filtered by state (any case; "stopped"
-- is "stopping"), mode (any case), name (substring) and min_uptime (s,
-- when > 0). An unknown state or mode raises.
function M.list(filter)
  filter = filter or {}
  local state, mode
  for k in pairs(filter) do
    if k ~= "state" and k ~= "mode" and k ~= "name" and k ~= "min_uptime" then
      error(("unknown application filter '%s'"):format(tostring(k)), 2)
    end
  end
  if filter.state then
    state = STATES[tostring(filter.state):lower()]
    if not state then
      error(("unknown application state '%s' (loaded, running, stopping)"):format(tostring(filter.state)), 2)
    end
  end
  if filter.mode then
    mode = tostring(filter.mode):lower()
    if not MODES[mode] then
      error(("unknown application mode '%s' (temporary, transient, permanent)"):format(tostring(filter.mode)), 2)
    end
  end
  local r = registry()
  local out = {}
  for _, name in ipairs(r.names) do
    local app = r.apps[name]
    local row = { name = name, state = app.state, mode = app.mode, uptime = uptime(app),
                  processes = #app.members }
    if app.spec.description and app.spec.description ~= "" then row.description = app.spec.description end
    if app.spec.version and app.spec.version ~= "" then row.version = app.spec.version end
    if app.weight ~= 0 then row.weight = app.weight end
    if app.spec.tags and #app.spec.tags > 0 then row.tags = app.spec.tags end
    local ok = (not state or state == app.state)
      and (not mode or mode == app.mode)
      and (not filter.name or name:find(filter.name, 1, true))
      and (not filter.min_uptime or filter.min_uptime <= 0 or row.uptime >= filter.min_uptime)
    if ok then out[#out + 1] = row end
  end
  return json.array(out)
end

--- ProcessShortInfo of the application's processes (its members and every
-- process they spawned), at most limit (default 100).
function M.processes(name, limit)
  local app = registry().apps[name]
  if not app then return core.node.error("EAPPUNKNOWN", name) end
  if app.state == "loaded" then return nil, "EAPPSTATE: application " .. name .. " is not running", "EAPPSTATE" end
  if not limit or limit < 1 then limit = 100 end
  return (halo.process_list({ application = name, limit = limit }))
end

--- The supervision tree of a running application: one node per member,
-- { pid, name, behavior, state, children = {...} } nested by parent.
function M.tree(name)
  local app = registry().apps[name]
  if not app then return core.node.error("EAPPUNKNOWN", name) end
  local procs = halo.process_list({ application = name })
  local kids = {}
  for _, p in ipairs(procs) do
    local list = kids[p.Parent]
    if not list then list = {}; kids[p.Parent] = list end
    list[#list + 1] = p
  end
  local function node(p)
    local n = { pid = p.PID, name = p.Name, behavior = p.Behavior, state = p.State, children = {} }
    for _, c in ipairs(kids[p.PID] or {}) do n.children[#n.children + 1] = node(c) end
    return n
  end
  local by_pid = {}
  for _, p in ipairs(procs) do by_pid[p.PID] = p end
  local tree = { name = name, state = app.state, mode = app.mode, children = {} }
  for _, pid in ipairs(app.members) do
    if by_pid[pid] then tree.children[#tree.children + 1] = node(by_pid[pid]) end
  end
  return tree
end

return M
