--- halo.admin: a fixed set of operations another node may ask of this one
-- (the operator's `halo call`), served by the network's halo_remote service.
--
--   -- on node b (or `halo run --admin`): let cookie holders start, stop and reload
--   halo.admin.allow(true)
--   -- on node a
--   local info = assert(halo.admin.call("b@host", "application.info", { "shop" }))
--   assert(halo.admin.call("b@host", "application.reload", { "shop" }))
--
--   halo call [--cookie C] [--registrar R] [--cluster N] node1@localhost application.reload latency_scenario
--
-- Operations (M.OPS): application.list, application.info NAME and
-- node_info read; application.start NAME, application.stop NAME and
-- application.reload NAME change the node. An argument holds at most
-- MAX_ARG bytes (application names are short; a huge one would be logged).
--
-- Security: the network's handshake proves the cookie, so only nodes that
-- hold it reach halo_remote at all; every node of a cluster holds it. The
-- reading operations are served to any of them. The changing ones also
-- need the node's admin switch (off by default: halo.admin.allow(true) or
-- `halo run --admin`), refused with ENOTALLOWED otherwise: stopping or
-- reloading an application drops its processes' state and its registered
-- names for the time of the restart, which no peer should be able to do
-- to a node that did not opt in. The switch guards availability, not code:
-- nothing but the request's names travels, and reload reads only the files
-- on the node's own module path. It covers every application (the
-- operator's grant); the per-application allow-lists of
-- halo.remote.enable_application_start still govern
-- halo.remote.start_application.
--
-- Each request runs in a process of its own, which replies when the
-- operation is done: a reload that waits for an application to stop holds
-- up no other request of halo_remote.
local halo = require("halo")
local core = require("halo.core")

local M = {}

local CALL_TIMEOUT = 60000  -- a reload waits for every member's stop (5 s each at most)
local RESOLVE_MS = 3000     -- how long the CLI looks for the node
local MAX_ARG = 255         -- bytes in an argument
local MAX_TIMEOUT = 2147483647

-- name -> { usage of the arguments, min, max arguments, changes the node, fn(args) }
local OPS = {
  ["application.list"] = { "", 0, 0, false, function() return halo.application.list() end },
  ["application.info"] = { "NAME", 1, 1, false, function(a) return halo.application.info(a[1]) end },
  ["application.start"] = { "NAME", 1, 1, true, function(a) return halo.application.start(a[1]) end },
  ["application.stop"] = { "NAME", 1, 1, true, function(a) return halo.application.stop(a[1]) end },
  ["application.reload"] = { "NAME", 1, 1, true, function(a) return halo.application.reload(a[1]) end },
  node_info = { "", 0, 0, false, function() return halo.node_info() end },
}
M.OPS = OPS

-- the operations, sorted, with their arguments: for usage texts
local function op_lines(indent)
  local names, lines = {}, {}
  for name in pairs(OPS) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local o = OPS[name]
    local line = ("%s%-31s"):format(indent, name .. (o[1] ~= "" and " " .. o[1] or ""))
    lines[#lines + 1] = o[4] and line .. " changes the node: needs its --admin" or (line:gsub("%s+$", ""))
  end
  return table.concat(lines, "\n")
end

-- Per node run: the admin switch.
local state = { serial = nil, allowed = false }
local function st()
  local serial = core.node.serial()
  if state.serial ~= serial then state = { serial = serial, allowed = false } end
  return state
end

--- Turns the admin switch on or off (start, stop and reload for cookie holders).
function M.allow(on)
  st().allowed = on ~= false
  return true
end

--- Whether the admin switch is on.
function M.allowed() return st().allowed end

-- Checks a request: the operation's entry, or nil, err, code.
local function check(op, args)
  local o = type(op) == "string" and OPS[op]
  if not o then
    local shown = tostring(op)
    if #shown > 64 then shown = shown:sub(1, 64) .. "..." end
    return core.node.error("EINCORRECT", ("unknown operation '%s'"):format(shown))
  end
  if type(args) ~= "table" then return core.node.error("EINCORRECT", "arguments must be a list of strings") end
  local n = #args
  for i = 1, n do
    if type(args[i]) ~= "string" then return core.node.error("EINCORRECT", "arguments must be a list of strings") end
    if #args[i] > MAX_ARG then
      return core.node.error("EINCORRECT", ("an argument holds at most %d bytes"):format(MAX_ARG))
    end
  end
  if n < o[2] or n > o[3] then
    return core.node.error("EINCORRECT", ("%s takes %s"):format(op, o[1] ~= "" and o[1] or "no arguments"))
  end
  return o
end

--- halo_remote's handler of {op = "admin", name = OP, args = {...}} from
-- process from (call ref): answers a refusal at once ({nil, err, code}),
-- else returns nil and a process of its own replies {ok, err, code} later.
function M.serve(from, ref, req)
  local o, err, code = check(req.name, req.args or {})
  if not o then return { nil, err, code } end
  if o[4] and not st().allowed then
    return { core.node.error("ENOTALLOWED", req.name .. " needs the node's admin switch (halo run --admin)") }
  end
  local args = req.args or {}
  local what = #args > 0 and req.name .. " " .. table.concat(args, " ") or req.name
  halo.log.info("admin: %s from %s", what, tostring(from))
  local pid, serr, scode = halo.spawn(function()
    local ok, v, verr, vcode = pcall(o[5], args)
    if not ok then v, verr, vcode = nil, "EINCORRECT: incorrect value or argument: " .. tostring(v), "EINCORRECT" end
    if v == nil then halo.log.warning("admin: %s failed: %s", what, tostring(verr)) end
    halo.reply(from, ref, { v, verr, vcode })
  end, nil, { behavior = "halo.admin.request" })
  if not pid then return { nil, serr, scode } end
  return nil
end

--- Asks node for operation op with args (a list of strings): the
-- operation's result, or nil, err, code (EINCORRECT for an unknown
-- operation or wrong arguments, ENOTALLOWED, the operation's own error).
function M.call(node, op, args, timeout)
  if type(node) ~= "string" or not node:find("@", 1, true) then error("a node name name@host expected", 2) end
  args = args or {}
  local _, err, code = check(op, args)
  if err then return nil, err, code end
  local r, cerr, ccode = halo.call(halo.net.process_id("halo_remote", node),
    { op = "admin", name = op, args = args }, timeout or CALL_TIMEOUT)
  if not r then return nil, cerr, ccode end
  return r[1], r[2], r[3]
end

-- `halo call` ----------------------------------------------------------------------------

local usage = [[
usage: halo call [options] NODE OPERATION [ARGS...]

Asks a running node, over the cluster protocol, for one operation and
prints the answer as JSON: exit status 0, or the error on stderr and
status 1 (2: a usage error). It runs a short-lived node of its own that
registers nowhere: it finds NODE through the registrar and connects to it
with the cookie.

operations:
%s

options:
  --cookie SECRET         the cluster's cookie (or HALO_COOKIE)
  --registrar KIND        where NODE is found: embedded (default), embedded:PORT
                          or etcd://HOST:PORT
  --cluster NAME          the etcd registrar's cluster (default "default")
  --address HOST:PORT     connect to NODE there (no registrar)
  --timeout MS            wait for the answer this long (default 60000)
  -h, --help              this text
]]

local function fail(status, fmt, ...)
  io.stderr:write("halo call: ", fmt:format(...), "\n")
  return halo.shutdown(status)
end

local function parse(args)
  local o = { registrar = "embedded", cluster = "default", timeout = CALL_TIMEOUT, rest = {} }
  local keys = { ["--registrar"] = "registrar", ["--cluster"] = "cluster", ["--address"] = "address",
                 ["--timeout"] = "timeout" }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then return nil, 0 end
    if a:sub(1, 1) == "-" and #o.rest == 0 then
      if not keys[a] or args[i + 1] == nil then return nil, 2, ("unknown or incomplete option '%s'"):format(a) end
      o[keys[a]] = args[i + 1]
      i = i + 2
    else
      o.rest[#o.rest + 1] = a
      i = i + 1
    end
  end
  o.timeout = tostring(o.timeout):match("^%d+$") and tonumber(o.timeout)
  if not o.timeout or o.timeout < 1 or o.timeout > MAX_TIMEOUT then
    return nil, 2, ("--timeout must be a whole number of ms from 1 to %d"):format(MAX_TIMEOUT)
  end
  if #o.rest < 2 then return nil, 2, "a NODE and an OPERATION are required" end
  o.node, o.op = o.rest[1], o.rest[2]
  o.args = { select(3, unpack(o.rest)) }
  if not o.node:match("^[^@]+@[^@:]+$") then return nil, 2, ("'%s' is not a node name (name@host)"):format(o.node) end
  if not o.address and not (o.registrar == "embedded" or o.registrar:match("^embedded:%d+$")
                            or o.registrar:match("^etcd://[^:]+:%d+$")) then
    return nil, 2, "--registrar must be embedded, embedded:PORT or etcd://HOST:PORT"
  end
  local _, err = check(o.op, o.args)
  if err then return nil, 2, (err:gsub("^EINCORRECT: incorrect value or argument: ", "")) end
  return o
end

-- Where node listens ("host:port"), or nil, err.
local function locate(o)
  if o.address then return o.address end
  local etcd = o.registrar:match("^etcd://(.+)$")
  if etcd then
    local r, err = require("halo.etcd").lookup(etcd, o.cluster, o.node, math.min(RESOLVE_MS, o.timeout))
    if not r then return nil, err end
    return r.Host .. ":" .. r.Port
  end
  local port = o.registrar:match("^embedded:(%d+)$") or "4499"
  -- asks the embedded registrar of the node's host (UDP) until it answers
  halo.net.join(o.node .. ":" .. port)
  local deadline = halo.now() + math.min(RESOLVE_MS, o.timeout)
  repeat
    local r = halo.net.resolve(o.node)
    if r then return r.Host .. ":" .. r.Port end
    halo.sleep(10)
  until halo.now() >= deadline
  return nil, ("ENOROUTE: no route: %s is not registered with the embedded registrar at %s:%s " ..
    "(or no registrar answers there)"):format(o.node, (o.node:match("@(.+)$"):gsub("^localhost$", "127.0.0.1")), port)
end

--- The entry of `halo call`: the command line after `call` (the cookie
-- went to the node already).
function M.main(...)
  local o, status, err = parse({ ... })
  if not o then
    if status == 0 then
      io.stdout:write(usage:format(op_lines("  ")))
      return halo.shutdown(0)
    end
    io.stderr:write("halo call: ", err, "\n\n", usage:format(op_lines("  ")))
    return halo.shutdown(status)
  end
  if halo.net.info().Mode ~= "enabled" then return fail(2, "a cookie is required (--cookie or HALO_COOKIE)") end
  local addr, lerr = locate(o)
  if not addr then return fail(1, "%s: %s", o.node, lerr) end
  local ok, cerr = halo.net.connect(o.node, addr, math.min(RESOLVE_MS, o.timeout))
  if not ok then return fail(1, "%s: %s", o.node, cerr) end
  local r, rerr = M.call(o.node, o.op, o.args, o.timeout)
  if r == nil then return fail(1, "%s: %s: %s", o.node, o.op, tostring(rerr)) end
  local json = require("halo.json")
  -- the wire drops the list marks: an empty list would print as {}
  if o.op == "application.list" then json.array(r) end
  if o.op == "application.info" then
    json.array(r.Group)
    json.array(r.Tags)
    if type(r.Depends) == "table" then json.array(r.Depends.Applications) end
  end
  io.stdout:write(json.encode(r, true), "\n")
  return halo.shutdown(0)
end

return M
