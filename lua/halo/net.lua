--- halo.net: the inter-node transport (C: core/net.c, bindings/net.c) and
-- what registrars tell it (core/registrar.c, halo/etcd.lua).
-- A node joins the network with --cookie / --listen (or halo.run options
-- cookie, listen, registrar, cluster, join); it then finds the other nodes
-- through its registrar and connects on first use:
--   halo.send(remote_pid, msg); halo.call(remote_pid, req)  -- as if local
--   assert(halo.net.connect("b@host", "10.0.0.2:11144"))  -- or dial directly
--   halo.net.info(); halo.net.node("b@host"); halo.net.cluster()
-- Both sides prove the shared cookie (HMAC-SHA256 over per-connection
-- nonces; the cookie never crosses the wire). A peer's session is a pool of
-- links (see README "Links."); messages over 65000 bytes are fragmented;
-- halo.net.compress(true) compresses a process's large messages.
local halo = require("halo")
local core = require("halo.core")

local M = {}

--- Starts the transport: opts.cookie (required), opts.listen ("host:port"),
-- opts.registrar ("embedded" (default), "embedded:PORT" or "none").
-- Returns the port listened on.
function M.start(opts)
  opts = opts or {}
  local port, err, code = core.net.start(opts.cookie, opts.listen, opts.registrar)
  if not port then return nil, err, code end
  require("halo.remote").serve()
  return port
end

--- RegistrarInfo of the registrar this node uses. The embedded one:
-- Server, EmbeddedServer (this node serves), Version ("ESRD:R1"), the
-- Support* capabilities, and halo's Registered, Error (the last refusal)
-- and Elections (times this node took the server role). With
-- --registrar etcd://HOST:PORT, what halo.net.registrar_etcd.info() gives.
M.registrar = core.net.registrar
--- The other nodes the registrar knows (the cluster as discovered).
M.nodes = core.net.nodes
--- Where node `name` listens, as the reference's Route: {Host, Port, TLS
-- (false: halo's links have none), HandshakeVersion, ProtoVersion (halo's,
-- which every halo node speaks)}, or nil, "ENOROUTE: no route".
M.resolve = core.net.resolve
--- Closes the session with connected node `name`: links and monitors across
-- it end with "no connection" on both sides and both count a lost
-- connection. This node does not dial it again by itself: the next message
-- to it connects (through its route, if a registrar gave one); the other
-- node may dial back by its own rules (in a registrar's mesh it re-dials
-- what it has a route to). Returns true, or nil, "ENOCONN: no connection".
M.disconnect = core.net.disconnect

--- Dials address ("host:port") and waits (default 5000 ms) until node `name`
-- is connected. Returns true, or nil, err, code (ENOCONN when the handshake
-- or the dial failed, ETIMEDOUT).
function M.connect(name, address, timeout)
  local p = core.net.peer(name)
  if p and p.Connected then return true end
  local id, err, code = core.net.connect(address, name)
  if not id then return nil, err, code end
  local deadline = halo.now() + (timeout or 5000)
  while halo.now() < deadline do
    local done, why = core.net.dial(id)
    if done == nil then
      local detail = why:gsub("^ENOCONN: ", ""):gsub("^no connection: ", "")
      return core.node.error("ENOCONN", ("%s at %s: %s"):format(name, address, detail))
    end
    p = core.net.peer(name)
    if p and p.Connected then return true end
    if done and not p then -- connected, but to another node than the one named
      return core.node.error("ENOCONN", ("%s answers as another node, not %s"):format(address, name))
    end -- (or connected, its pool of links still opening)
    halo.sleep(5)
  end
  return nil, "ETIMEDOUT: timed out", "ETIMEDOUT"
end

--- The address of a process registered as `name` on node `node`
-- ("<CCCCCCCC.name>", the reference's ProcessID form): halo.send takes it.
function M.process_id(name, node)
  if type(name) ~= "string" or name == "" or type(node) ~= "string" or not node:find("@", 1, true) then
    error("process_id(name, node): a name and a node name@host expected", 2)
  end
  return ("<%08X.%s>"):format(core.net.crc32(node), name)
end

--- Compresses the calling process's messages to other nodes (zlib) when
-- their encoding is over 1024 bytes and compression makes them smaller.
function M.compress(on) return core.net.compress(on ~= false) end

--- NetworkInfo with the reference's fields: Mode, Registrar (RegistrarInfo,
-- nil without one), Acceptors, MaxMessageSize, HandshakeVersion,
-- ProtoVersion, Nodes (connected names), Routes (where registrars say
-- nodes listen: {Match, Host, Port, Weight 0, UseResolver true,
-- UseCustomCookie and UseCustomCert false, HandshakeVersion,
-- ProtoVersion}), ProxyRoutes (none), Flags (the acceptor has them too),
-- ConnectionsEstablished, ConnectionsLost, EnabledSpawn ({Name, Behavior,
-- Nodes}), EnabledApplicationStart ({Name, Nodes}); and halo's
-- HandshakeErrors, ProtocolErrors, PendingDropped (messages sent to a node
-- that could not be reached), MessagesRefused (messages received and not
-- delivered: a kind only the node itself makes, undecodable, bad or
-- over-limit compressed data), DecompressRefused (of those, compressed
-- payloads that inflate past the limit), SimultaneousConnects (dials of ours
-- that met the peer's dial of us, one of the two giving way) and Settings
-- (halo.net.configure's).
M.info = core.net.info

--- Joins node spec of another host ("name@host" or "name@host:port"): asks
-- that host's embedded registrar over UDP (every second until it answers),
-- then dials the node and keeps it. Returns true (it goes on in the
-- background: halo.net.node(name) tells when it is connected).
M.join = core.net.join

--- Reads or changes the transport's settings: pool_size (links per peer
-- we ask dialers for, 1-8, default 3), fragment_size (default 65000, 0 =
-- never), fragment_timeout_ms (default 30000), max_assemblies (per peer,
-- default 1000), max_assembly_bytes (what those may hold per peer, default
-- 64 MB, never less than a full-size message per link), compress_threshold (>= 1024, default 1024), max_message (the
-- largest message encoding we take, once decompressed, advertised to peers
-- connecting from now on: default 16 MB, 0 = the 64 MB frame limit),
-- keepalive_ms (default 1000, 0 = off), keepalive_misses (quiet periods
-- before a peer is dropped, default 3). Returns the settings; a bad value
-- changes nothing and returns nil, "EINCORRECT: ...".
M.configure = core.net.configure

--- The cluster as this node sees it: Self, Connected (nodes with a link)
-- and Discovered (nodes a registrar knows), names sorted.
function M.cluster()
  local connected, discovered = core.net.info().Nodes, core.net.nodes()
  table.sort(connected)
  table.sort(discovered)
  return { Self = core.introspect.node_info().Name, Connected = connected, Discovered = discovered }
end
--- RemoteNodeInfo of a peer (the reference's fields: Node, ConnectionUptime,
-- PoolSize, PoolLen, PoolDSN, MessagesIn/Out, BytesIn/Out, Reconnections,
-- MaxMessageSize, fragmentation and compression counters, ...) plus
-- Connected and Dialed; nil, "ENOCONN: no connection" for an unknown node.
M.node = core.net.peer

--- halo.net.registrar_etcd: the etcd registrar's API (halo/etcd.lua):
-- resolve_application, config, event, nodes, resolve, info.
setmetatable(M, {
  __index = function(t, k)
    if k == "registrar_etcd" then
      local etcd = require("halo.etcd")
      rawset(t, k, etcd)
      return etcd
    end
  end,
})

return M
