--- halo.mcp.registry: the tools of this node, loaded from the Lua files of
-- one directory (see README.md "MCP server").
--
-- Each `*.lua` directly in the directory whose name does not start with `_`
-- is a tool file: a chunk returning a list of {name, description,
-- inputSchema, handler}. Hot reload without polling on the call path: a
-- call stats the file of the tool it runs (one stat) and reloads it when
-- its mtime, size or inode changed; tools/list and a call for an unknown
-- tool rescan the directory. A file that fails to load is logged at error
-- level once per change; the tools it defined when it last loaded stay
-- listed and answer with the load error; the other files are untouched.
-- read_only and allowed apply at registration: a tool they exclude is not
-- there at all. One registry per Lua state (per node): the workers and the
-- HTTP connections share it.
local core = require("halo.core")
local json = require("halo.json")
local log = require("halo.log")
local schema = require("halo.mcp.schema")

local fs = core.fs

local M = {}

--- tools/list order (the reference's registration order); other names follow, sorted.
M.ORDER = { "node_info", "node_env", "process_list", "process_children", "process_info", "process_state",
  "process_lookup", "process_inspect", "meta_inspect", "app_list", "app_info", "app_processes", "event_list",
  "event_info", "network_info", "network_nodes", "network_node_info", "network_acceptors", "network_connect",
  "network_connect_route", "network_disconnect", "network_ping", "cron_info", "cron_job", "cron_schedule",
  "registrar_info", "registrar_resolve", "registrar_resolve_proxy", "registrar_resolve_app", "cluster_nodes",
  "pprof_goroutines", "pprof_cpu", "pprof_heap", "runtime_stats", "sample_start", "sample_listen", "sample_read",
  "sample_stop", "sample_list", "log_level_get", "log_level_set", "loggers_list", "message_types",
  "message_type_info", "send_message", "call_process", "send_exit", "process_kill" }
local RANK = {}
for i, n in ipairs(M.ORDER) do RANK[n] = i end

--- The action group: not registered in read-only mode.
M.ACTION = { message_types = true, message_type_info = true, send_message = true, call_process = true,
             send_exit = true, process_kill = true }

local st -- the registry: see reset()

local function reset(o)
  st = {
    dir = o.dir,
    read_only = o.read_only and true or false,
    allowed = nil,            -- set of names, nil = all
    files = {},               -- path -> {stat = {mtime, size, ino}, names = {name...}, err = msg|nil}
    tools = {},               -- name -> {name, description, inputSchema, handler, path}
    list = nil,               -- cached tools/list JSON text (the array)
    on_change = o.on_change,  -- called after the set of tools changed
    loads = 0, scans = 0,     -- counters (inspect, specs)
  }
  if o.allowed and #o.allowed > 0 then
    st.allowed = {}
    for _, n in ipairs(o.allowed) do st.allowed[n] = true end
  end
end

--- True when policy (read-only, allowed tools) lets this node run or proxy tool name.
function M.permitted(name)
  if st.read_only and M.ACTION[name] then return false end
  if st.allowed and not st.allowed[name] then return false end
  return true
end

local function same(a, b)
  return a and b and a.mtime == b.mtime and a.size == b.size and a.ino == b.ino
end

local function changed()
  st.list = nil
  if st.on_change then
    local ok, err = pcall(st.on_change)
    if not ok then log.error("mcp: list_changed notification failed: %s", tostring(err)) end
  end
end

-- Runs a tool file; returns its list of definitions or nil, message.
local function run_file(path)
  local env = setmetatable({}, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  local ok, defs = pcall(chunk)
  if not ok then return nil, tostring(defs) end
  if type(defs) ~= "table" then return nil, path .. ": a tool file must return a list of tools" end
  local out = {}
  for i, d in ipairs(defs) do
    if type(d) ~= "table" or type(d.name) ~= "string" or not d.name:match("^[%w_.-]+$") then
      return nil, ("%s: tool %d: name (letters, digits, _ . -) is required"):format(path, i)
    end
    if type(d.handler) ~= "function" then return nil, ("%s: tool %s: handler function is required"):format(path, d.name) end
    if d.description ~= nil and type(d.description) ~= "string" then
      return nil, ("%s: tool %s: description must be a string"):format(path, d.name)
    end
    local okS, s = pcall(schema.inject, d.inputSchema)
    if not okS then return nil, ("%s: tool %s: %s"):format(path, d.name, tostring(s)) end
    out[i] = { name = d.name, description = d.description or "", inputSchema = s, handler = d.handler, path = path,
              entry_check = d.entry_check }
  end
  return out
end

-- (Re)loads one file whose stat is fs_st; true when the set of tools changed.
local function load(path, fs_st)
  st.loads = st.loads + 1
  local f = st.files[path]
  if not f then
    f = { names = {} }
    st.files[path] = f
  end
  f.stat = fs_st
  local defs, err = run_file(path)
  if not defs then
    f.err = err
    log.error("mcp: tool file %s failed to load: %s", path, err)
    return false -- its tools stay listed and answer with the error
  end
  f.err = nil
  for _, n in ipairs(f.names) do
    if st.tools[n] and st.tools[n].path == path then st.tools[n] = nil end
  end
  f.names, f.shadowed = {}, nil
  for _, d in ipairs(defs) do
    local other = st.tools[d.name]
    if other and other.path ~= path then
      log.warning("mcp: tool %s of %s ignored: %s defines it already", d.name, path, other.path)
      f.shadowed = f.shadowed or {}
      f.shadowed[#f.shadowed + 1] = d.name
    elseif M.permitted(d.name) then
      st.tools[d.name] = d
      f.names[#f.names + 1] = d.name
    end
  end
  return true -- a changed schema or description changes the list too
end

local function drop(path)
  local f = st.files[path]
  if not f then return end
  for _, n in ipairs(f.names) do
    if st.tools[n] and st.tools[n].path == path then st.tools[n] = nil end
  end
  st.files[path] = nil
end

--- Rescans the directory: new, changed and removed files. True when the
-- tools changed (listeners are told).
function M.scan()
  st.scans = st.scans + 1
  local names, err = fs.scandir(st.dir)
  if not names then
    if not st.dir_err then log.error("mcp: tools directory %s", err) end
    st.dir_err = err
    names = {}
  else
    st.dir_err = nil
  end
  local seen, diff = {}, false
  for _, n in ipairs(names) do
    if n:sub(-4) == ".lua" and n:sub(1, 1) ~= "_" then
      local path = st.dir .. "/" .. n
      local s = fs.stat(path)
      if s and s.type == "file" then
        seen[path] = true
        local f = st.files[path]
        if not f or not same(f.stat, s) then
          if load(path, s) then diff = true end
        end
      end
    end
  end
  for path in pairs(st.files) do
    if not seen[path] then
      drop(path)
      diff = true
    end
  end
  -- a file whose definition another file held: loaded again once the name is free
  for path, f in pairs(st.files) do
    for _, n in ipairs(f.shadowed or {}) do
      if not st.tools[n] then
        f.shadowed = nil -- once: a file that fails now is not retried every scan
        if load(path, f.stat) then diff = true end
        break
      end
    end
  end
  if diff then changed() end
  return diff
end

--- The tool called name, its file reloaded first when it changed; nil when
-- there is none (after a rescan). Second value: the load error of its file.
function M.lookup(name, rescanned)
  local t = st.tools[name]
  if t then
    local f = st.files[t.path]
    local s = fs.stat(t.path)
    if not s then
      M.scan()
    elseif not same(f.stat, s) then
      if load(t.path, s) then changed() end
    end
    f = st.files[t.path]
    t = st.tools[name]
    if t then return t, f and f.err end
    -- a file that failed still answers for the tools it had
    if f and f.err then
      for _, n in ipairs(f.names) do
        if n == name then return nil, f.err end
      end
    end
  end
  -- gone, or never there: another file may define it (a new one, or one it shadowed)
  if not rescanned and M.scan() then return M.lookup(name, true) end
  for _, f in pairs(st.files) do
    if f.err then
      for _, n in ipairs(f.names) do
        if n == name then return nil, f.err end
      end
    end
  end
end

local function ordered()
  local names = {}
  for n in pairs(st.tools) do names[#names + 1] = n end
  table.sort(names, function(a, b)
    local ra, rb = RANK[a], RANK[b]
    if ra and rb then return ra < rb end
    if ra or rb then return ra ~= nil end
    return a < b
  end)
  return names
end

--- The JSON text of the tools array of tools/list (rescans first).
function M.list_json()
  M.scan()
  if st.list then return st.list end
  local out = {}
  for i, n in ipairs(ordered()) do
    local t = st.tools[n]
    out[i] = json.encode({ name = t.name, description = t.description, inputSchema = t.inputSchema })
  end
  st.list = "[" .. table.concat(out, ",") .. "]"
  return st.list
end

--- The names registered, in tools/list order.
function M.names() return ordered() end

--- Sets the registry up (dir, read_only, allowed, on_change) and loads the directory.
function M.configure(o)
  reset(o)
  M.scan()
end

--- Counters and settings for inspect: dir, files, tools, loads, scans, failed files.
function M.stats()
  if not st then return nil end
  local nfiles, ntools, failed = 0, 0, 0
  for _, f in pairs(st.files) do
    nfiles = nfiles + 1
    if f.err then failed = failed + 1 end
  end
  for _ in pairs(st.tools) do ntools = ntools + 1 end
  return { dir = st.dir, files = nfiles, tools = ntools, failed = failed, loads = st.loads, scans = st.scans,
           read_only = st.read_only }
end

return M
