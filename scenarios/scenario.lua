--- What the scenario applications (latency, messaging, lifecycle, events)
-- share: options over defaults, random draws, the remote nodes that run an
-- application, and supervisors that do things on their own timers.
local halo = require("halo")
local core = require("halo.core")

local M = {}

do -- every node draws its own numbers (LuaJIT starts every state with one seed)
  local seed = os.time()
  local f = io.open("/dev/urandom", "rb")
  if f then
    local b = f:read(4) or ""
    f:close()
    for i = 1, #b do seed = (seed * 256 + b:byte(i)) % 2147483647 end
  end
  math.randomseed(seed)
end

--- The options of an application: defaults overridden by opts; an option
-- the application does not have raises.
function M.options(app, defaults, opts)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for k, v in pairs(opts or {}) do
    if defaults[k] == nil then error(("%s: unknown option '%s'"):format(app, tostring(k)), 3) end
    o[k] = v
  end
  return o
end

--- A uniform draw from range {lo, hi} (a number is itself). Bounds that are
-- whole seconds in ms draw whole seconds, as the reference's "1..5 s" does.
function M.draw(range)
  if type(range) == "number" then return range end
  local lo, hi = range[1], range[2]
  if lo % 1000 == 0 and hi % 1000 == 0 and hi > lo then return math.random(lo / 1000, hi / 1000) * 1000 end
  return math.random(lo, hi)
end

--- The other nodes that run application app, names sorted; or nil, err when
-- there is no registrar. The etcd registrar knows where applications run;
-- the embedded one only which nodes exist, and every one of them counts.
function M.remotes(app)
  local info, err = halo.net.registrar()
  if not info then return nil, err end
  local out = {}
  if type(info.Version) == "string" and info.Version:find("^ETCD") then
    local routes, rerr, code = halo.net.registrar_etcd.resolve_application(app)
    if not routes then
      if code == "ENOROUTE" then return out end
      return nil, rerr
    end
    for _, r in ipairs(routes) do out[#out + 1] = r.Node end
  else
    local me = M.node()
    for _, n in ipairs(halo.net.nodes()) do
      if n ~= me then out[#out + 1] = n end
    end
  end
  table.sort(out)
  return out
end

--- The next remote node of app for the calling process instance (a
-- round robin over the sorted names that goes on when the list grows), or
-- nil, "no registrar: <err>" / nil when there is none.
function M.next_remote(self, app)
  local remotes, err = M.remotes(app)
  if not remotes then return nil, "no registrar: " .. tostring(err) end
  if #remotes == 0 then return nil end
  self.rr = (self.rr or 0) + 1
  return remotes[(self.rr - 1) % #remotes + 1]
end

--- A sender behavior shown as spec.name: every M.draw(o[spec.every]) ms (the
-- first after o[spec.first]) spec.burst(self, node) sends a burst to the next
-- remote node of spec.app (M.next_remote); log lines name it spec.label.
function M.sender(spec)
  local S = { name = spec.name }
  function S:init(o)
    self.o = o
    halo.log.info("%s started on %s", spec.label, M.node())
    halo.send_after(halo.self(), "burst", o[spec.first])
  end
  function S:handle_message(_, msg)
    if msg ~= "burst" then return end
    local node, err = M.next_remote(self, spec.app)
    if node then
      spec.burst(self, node)
    elseif err then
      halo.log.warning("%s: %s", spec.label, err)
    end
    halo.send_after(halo.self(), "burst", M.draw(self.o[spec.every]))
  end
  function S:terminate(reason) halo.log.info("%s terminated: %s", spec.label, tostring(reason)) end
  return S
end

--- This node's name (asked once per node run).
local node_name = {}
function M.node()
  local serial = core.node.serial()
  if node_name.serial ~= serial then node_name = { serial = serial, name = halo.node_info().Name } end
  return node_name.name
end

--- A supervisor behavior shown as `name`: halo.supervisor's, whose init
-- takes { spec = <supervisor spec>, options = <the application's> } and
-- then calls hooks.init(self, options); hooks.handle_message(self, from,
-- msg) sees the supervisor's messages first (returning true when it took
-- one). self:start_child(spec_name, args) starts a simple_one_for_one child
-- from inside the supervisor's own callbacks.
function M.supervisor(name, hooks)
  local base = halo.supervisor.behavior
  local S = {}
  for k, v in pairs(base) do S[k] = v end
  S.name = name
  function S:init(args)
    base.init(self, args.spec)
    if hooks.init then hooks.init(self, args.options) end
  end
  function S:handle_message(from, msg)
    if hooks.handle_message and hooks.handle_message(self, from, msg) then return end
    return base.handle_message(self, from, msg)
  end
  function S:start_child(spec_name, child_args)
    local r = base.handle_call(self, halo.self(), 0, { "start_child", spec_name, args = child_args })
    return r[1], r[2]
  end
  return S
end

--- Loads application spec (when not loaded yet) and starts it.
function M.start(spec)
  local ok, err, code = halo.application.load(spec)
  if not ok and code ~= "ETAKEN" then return nil, err, code end
  return halo.application.start(spec.name)
end

return M
