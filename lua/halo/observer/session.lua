--- halo.observer.session: one browser's session, a process per SSE
-- connection (registered observer_session_<id>, linked to the connection's
-- process: the session ends when the connection closes).
--
-- It keeps the observed node and the subscriptions. Every second while it
-- lives it checks the cluster list (cluster_update when it changed) and
-- pushes one snapshot per subscription: the views of the observer's own node
-- come from halo.inspect directly, those of another node from one batch call
-- to that node's halo_remote. The SSE text goes to the connection's process,
-- which writes it.
local halo = require("halo")
local json = require("halo.json")
local inspect = require("halo.inspect")
local core = require("halo.core")

local M = {}

M.TICK_MS = 1000
M.CALL_TIMEOUT = 5000
M.CONTRACT = 1
M.MAX_SUBSCRIPTIONS = 256 -- per session: each is one view read every second

-- subscription types: the view each reads (topology is the session's own)
M.TYPES = { node_info = true, process_list = true, process_info = true, process_inspect = true,
            application_list = true, application_tree = true, event_list = true, event_info = true,
            network_info = true, connection_list = true, connection_info = true, topology = true, log = true,
            heap = true }

local encode = json.encode

-- A stable text of a JSON-like value: object keys sorted.
local function stable(v)
  if type(v) ~= "table" then return encode(v) end
  local keys, arr = {}, getmetatable(v) == json.ARRAY or (next(v) ~= nil and #v > 0)
  if arr then
    local out = {}
    for i = 1, #v do out[i] = stable(v[i]) end
    return "[" .. table.concat(out, ",") .. "]"
  end
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = encode(k) .. ":" .. stable(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end
M.stable = stable

local function self_name() return halo.node_info().Name end

-- The cluster as the observer node sees it: [{name, connected, self}] by name.
local function cluster()
  local c = halo.net.cluster()
  local seen, out = {}, {}
  local function add(name, connected)
    if seen[name] then
      if connected then seen[name].connected = true end
      return
    end
    local n = { name = name, connected = connected, self = name == c.Self }
    seen[name] = n
    out[#out + 1] = n
  end
  add(c.Self, true)
  for _, n in ipairs(c.Connected) do add(n, true) end
  for _, n in ipairs(c.Discovered) do add(n, false) end
  table.sort(out, function(a, b) return a.name < b.name end)
  return json.array(out)
end
M.cluster = cluster

-- Views of node: {{view, args}...} -> {{result, err, code}...}, or nil, err.
-- With as_json the results are inspect.view_json's (the JSON text made on
-- the node), else the views' tables.
local function read(node, batch, as_json)
  if node == self_name() then
    local view = as_json and inspect.view_json or inspect.view
    local out = {}
    for i, b in ipairs(batch) do out[i] = { view(b[1], b[2]) } end
    return out
  end
  local r, err = halo.call(halo.net.process_id("halo_remote", node), { op = "inspect", batch = batch, json = as_json },
    M.CALL_TIMEOUT)
  if not r then return nil, err end
  if r[2] ~= nil and r[1] == nil then return nil, r[2] end -- refused as a whole
  return r
end
M.read = read

--- Runs action name on node: {json = its result's JSON text}, or nil, err,
-- code (code "ENODE" when the node could not be asked).
function M.act(node, name, args)
  if node == self_name() then return inspect.act_json(name, args) end
  local r, err = halo.call(halo.net.process_id("halo_remote", node),
    { op = "act", action = name, args = args, json = true }, M.CALL_TIMEOUT)
  if not r then return nil, ("node %s: %s"):format(node, tostring(err)), "ENODE" end
  return r[1], r[2], r[3]
end

-- The mesh: every connected node's peers (one read per node).
local function topology()
  local nodes, links, seen = json.array(), json.array(), {}
  for _, n in ipairs(cluster()) do
    nodes[#nodes + 1] = n.name
    if n.connected then
      local r = read(n.name, { { "peers", {} } })
      local p = r and r[1][1]
      for _, peer in ipairs(p and p.Peers or {}) do
        local a, b = n.name, peer
        if b < a then a, b = b, a end
        if not seen[a .. "\0" .. b] then
          seen[a .. "\0" .. b] = true
          links[#links + 1] = { from = a, to = b }
        end
      end
    end
  end
  return { Nodes = nodes, Links = links }
end

local Session = { name = "halo.observer.session", kind = "observer" }
M.Session = Session

function Session:init(a)
  self.conn, self.id, self.actions = a.conn, a.id, a.actions
  self.node, self.subs, self.order, self.seq = self_name(), {}, {}, 0
  self.pushes = 0
  self:connected()
  self.nodes_text = stable(cluster())
  halo.send_after(halo.self(), "tick", M.TICK_MS)
end

-- One SSE message to the browser.
function Session:emit(event, data_json)
  self.seq = self.seq + 1
  halo.send(self.conn, ("id: %d\nevent: %s\ndata: %s\n\n"):format(self.seq, event, data_json))
end

function Session:connected()
  self:emit("connected", encode({ session = self.id, contract = M.CONTRACT,
    version = halo.node_info().Framework.Release, node = self.node, self = self_name(), nodes = cluster(),
    actions = self.actions }))
end

-- Pushes the snapshots of the subscriptions in list (all when nil).
-- Returns the errors of the views that failed (key -> {err, code}) and,
-- when the node could not be read at all, why.
function Session:push(list)
  list = list or self.order
  local batch, subs = {}, {}
  for _, key in ipairs(list) do
    local s = self.subs[key]
    if s and not s.done then
      if s.type == "topology" then
        self:snapshot(s, encode(topology()))
      else
        batch[#batch + 1] = { s.type, s.query and s.query(s) or s.args }
        subs[#subs + 1] = s
      end
    end
  end
  local failed = {}
  if #batch == 0 then return failed end
  local node = self.node
  local r, err = read(node, batch, true)
  if not r then
    local why = ("node %s: %s"):format(node, tostring(err))
    self:emit("node_error", encode({ node = node, error = why }))
    return failed, why
  end
  for i, s in ipairs(subs) do
    local data, verr, vcode = r[i][1], r[i][2], r[i][3]
    if data == nil then
      failed[s.key] = { tostring(verr), vcode }
      self:emit("node_error", encode({ node = node, key = s.key, error = tostring(verr) }))
    else
      if s.seen then s.seen(s, data) end
      if data.gone then s.done = true end
      self:snapshot(s, data.json)
    end
  end
  return failed
end

function Session:snapshot(s, data_json)
  self.pushes = self.pushes + 1
  self:emit(s.type, ('{"key":%s,"node":%s,"time":%d,"data":%s}'):format(encode(s.key), encode(self.node),
    math.floor(core.node.time_ns() / 1e6), data_json))
end

-- The log subscription reads only what is newer than its previous push.
local function log_query(s)
  local q = {}
  for k, v in pairs(s.args) do q[k] = v end
  q.after, q.dropped = s.after or 0, s.dropped or 0
  return q
end
local function log_seen(s, data)
  s.after, s.dropped = data.last or s.after, data.dropped or s.dropped
end

function Session:subscribe(req)
  local t, args = req.type, req.args
  if type(t) ~= "string" or not M.TYPES[t] then return { status = 400, error = "unknown subscription type " .. tostring(t) } end
  if args == nil or args == json.null then args = {} end
  if type(args) ~= "table" then return { status = 400, error = "args must be an object" } end
  local key = t .. ":" .. stable(args)
  if not self.subs[key] then
    if #self.order >= M.MAX_SUBSCRIPTIONS then
      return { status = 429, error = ("too many subscriptions (at most %d a session)"):format(M.MAX_SUBSCRIPTIONS) }
    end
    local s = { type = t, args = args, key = key }
    if t == "log" then s.query, s.seen = log_query, log_seen end
    self.subs[key] = s
    self.order[#self.order + 1] = key
    local failed, why = self:push({ key })
    if failed[key] or why then -- bad args, an unknown name, the node unreachable: not kept
      self:unsubscribe(key)
      return { status = why and 502 or 400, error = why or failed[key][1] }
    end
  end
  return { data = { key = key } }
end

function Session:unsubscribe(key)
  if type(key) ~= "string" then return { status = 400, error = "key: a subscription key" } end
  if self.subs[key] then
    self.subs[key] = nil
    for i, k in ipairs(self.order) do
      if k == key then table.remove(self.order, i) break end
    end
  end
  return { data = { key = key } }
end

function Session:switch(node)
  if type(node) ~= "string" or not node:find("@", 1, true) then
    return { status = 400, error = "node: a node name name@host" }
  end
  if node ~= self_name() then
    local r, err = read(node, { { "peers", {} } })
    if not r or r[1][1] == nil then
      return { status = 502, error = ("node %s: %s"):format(node, tostring(err or r[1][2])) }
    end
  end
  self.node, self.subs, self.order = node, {}, {}
  self:connected()
  return { data = { node = node } }
end

function Session:handle_call(_, _, req)
  if type(req) ~= "table" then return { status = 400, error = "bad request" } end
  if req.op == "subscribe" then return self:subscribe(req) end
  if req.op == "unsubscribe" then return self:unsubscribe(req.key) end
  if req.op == "switch" then return self:switch(req.node) end
  if req.op == "node" then return { data = self.node } end
  return { status = 400, error = "bad request" }
end

function Session:handle_message(_, msg)
  if msg ~= "tick" then return end
  local text = stable(cluster())
  if text ~= self.nodes_text then
    self.nodes_text = text
    self:emit("cluster_update", '{"nodes":' .. text .. "}")
  end
  self:push()
  halo.send_after(halo.self(), "tick", M.TICK_MS)
end

function Session:handle_inspect()
  return { node = self.node, subscriptions = tostring(#self.order), pushes = tostring(self.pushes) }
end

return M
