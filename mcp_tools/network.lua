-- MCP tools of the network group: the transport's state (halo.net.info,
-- halo.net.node) and its actions (connect, disconnect, ping). RemoteNodeInfo
-- is the core's table: the reference's fields except Version and
-- NetworkFlags (a peer's version and flags do not travel in halo's
-- handshake), with TransitBytesIn/Out and ClockSkew at 0 (halo proxies
-- nothing and measures no skew), plus halo's Connected, Dialed and TLS.
local halo = require("halo")
local json = require("halo.json")

-- The readable part of a halo error ("ENOCONN: no connection" -> "no connection").
local function text(err) return (tostring(err):gsub("^E%u+: ", "")) end

local function name_schema(what)
  return { type = "object", properties = { name = { type = "string", description = what } },
           required = json.array({ "name" }), additionalProperties = false }
end

local NO_PARAMS = { type = "object", properties = json.object(), additionalProperties = false }

-- RemoteNodeInfo of a connected peer, or nil.
local function connected(name)
  local p = halo.net.node(name)
  if p and p.Connected then return p end
end

local min_filters = {
  min_uptime = "Uptime", min_connection_uptime = "ConnectionUptime", min_messages_in = "MessagesIn",
  min_messages_out = "MessagesOut", min_bytes_in = "BytesIn", min_bytes_out = "BytesOut",
}

local function address(host, port)
  return (host:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(host, port)
end

-- Dials node name at addr and waits for the handshake: its RemoteNodeInfo,
-- or nil and why not (without the name and address the caller's text has).
local function dial(name, addr)
  local ok, err = halo.net.connect(name, addr)
  if not ok then
    local why = text(err)
    local at = why:find(name .. " at " .. addr .. ": ", 1, true)
    if at then why = why:sub(1, at - 1) .. why:sub(at + #name + #addr + 6) end
    return nil, why
  end
  local p = connected(name)
  if not p then return nil, "no connection" end
  return p
end

return {
  {
    name = "network_info",
    description = "This node's network: Mode, Registrar (RegistrarInfo), Acceptors, MaxMessageSize (bytes), "
      .. "HandshakeVersion, ProtoVersion, Nodes (connected node names), Routes (where registrars say nodes "
      .. "listen), ProxyRoutes (always empty: halo proxies nothing), Flags, EnabledSpawn, EnabledApplicationStart, "
      .. "ConnectionsEstablished and ConnectionsLost (cumulative counts), halo's error counters "
      .. "(HandshakeErrors, ProtocolErrors, PendingDropped, MessagesRefused, DecompressRefused, "
      .. "SimultaneousConnects) and Settings (the transport's tunables, sizes in bytes, times in ms).",
    inputSchema = NO_PARAMS,
    handler = function() return halo.net.info() end,
  },
  {
    name = "network_nodes",
    description = "RemoteNodeInfo of every connected node, sorted by name: Node, Uptime and ConnectionUptime "
      .. "(seconds), PoolSize/PoolLen (links wanted/open), PoolDSN (addresses this side dialed), MessagesIn/Out, "
      .. "BytesIn/Out, Reconnections, MaxMessageSize (bytes), fragmentation and compression counters. "
      .. "Filters (each active when > 0, all must hold): name (case-sensitive substring), min_uptime, "
      .. "min_connection_uptime (seconds), min_messages_in/out, min_bytes_in/out. [] when none matches.",
    inputSchema = {
      type = "object",
      properties = {
        name = { type = "string", description = "Only nodes whose name contains this (case-sensitive)." },
        min_uptime = { type = "integer", description = "Remote node up at least this many seconds." },
        min_connection_uptime = { type = "integer", description = "Connected at least this many seconds." },
        min_messages_in = { type = "integer", description = "At least this many messages received from it." },
        min_messages_out = { type = "integer", description = "At least this many messages sent to it." },
        min_bytes_in = { type = "integer", description = "At least this many bytes received from it." },
        min_bytes_out = { type = "integer", description = "At least this many bytes sent to it." },
      },
      additionalProperties = false,
    },
    handler = function(args)
      local names = halo.net.info().Nodes
      table.sort(names)
      local out = json.array()
      for _, name in ipairs(names) do
        local p = connected(name)
        local keep = p ~= nil and (type(args.name) ~= "string" or name:find(args.name, 1, true) ~= nil)
        for arg, field in pairs(min_filters) do
          local v = args[arg]
          if keep and type(v) == "number" and v > 0 and p[field] < v then keep = false end
        end
        if keep then out[#out + 1] = p end
      end
      return out
    end,
  },
  {
    name = "network_node_info",
    description = "RemoteNodeInfo of one connected node (see network_nodes; times in seconds, sizes in bytes). "
      .. "Does not connect: a node without a connection is an error. Compare MessagesOut here with MessagesIn "
      .. "on the other side to see messages lost in between.",
    inputSchema = name_schema("Node name (name@host)."),
    handler = function(args)
      local p = connected(args.name)
      if not p then return nil, "network_node_info: no connection" end
      return p
    end,
  },
  {
    name = "network_acceptors",
    description = "This node's acceptors (halo has one, or none with the network off): Interface (host:port), "
      .. "Host, Port, MaxMessageSize (bytes), TLS (always false), CustomRegistrar, RegistrarServer, "
      .. "RegistrarVersion, HandshakeVersion, ProtoVersion, HandshakeErrors (cumulative count).",
    inputSchema = NO_PARAMS,
    handler = function() return halo.net.info().Acceptors end,
  },
  {
    name = "network_connect",
    description = "Connects to a node by name unless connected already, through the route its registrar gave, "
      .. "and waits for the handshake (at most 5 seconds). Returns the connection's RemoteNodeInfo "
      .. "(see network_nodes).",
    inputSchema = name_schema("Node name (name@host)."),
    handler = function(args, ctx)
      local name = args.name
      local known = connected(name)
      if known then return known end
      local fail = "network_connect to " .. name .. ": "
      if name == ctx.node then return nil, fail .. "not allowed: that is this node" end
      local route, err = halo.net.resolve(name)
      if not route then return nil, fail .. text(err) end
      local p, why = dial(name, address(route.Host, route.Port))
      if not p then return nil, fail .. why end
      return p
    end,
  },
  {
    name = "network_connect_route",
    description = "Connects to a node at an explicit address (host an IP address, port 1-65535) and waits for "
      .. "the handshake (at most 5 seconds); the node must answer under that name and share the cookie. "
      .. "halo's links have no TLS (tls = true is refused, insecure_skip_verify has no effect) and dial with "
      .. "the node's own cookie (a cookie of the route's own is refused). Returns RemoteNodeInfo.",
    inputSchema = {
      type = "object",
      properties = {
        name = { type = "string", description = "Node name (name@host) expected at that address." },
        host = { type = "string", description = "IP address to dial." },
        port = { type = "integer", minimum = 0, maximum = 65535, description = "TCP port to dial." },
        tls = { type = "boolean", default = false, description = "Not supported by halo: true is refused." },
        cookie = { type = "string", description = "Not supported by halo: empty or absent (the node's cookie)." },
        insecure_skip_verify = { type = "boolean", default = false, description = "No effect (no TLS)." },
      },
      required = json.array({ "name", "host", "port" }),
      additionalProperties = false,
    },
    handler = function(args, ctx)
      local name, host, port = args.name, args.host, args.port
      local fail = ("network_connect_route to %s at %s:%d: "):format(name, host, port)
      if args.tls == true then return nil, fail .. "not supported: halo's links have no TLS" end
      if type(args.cookie) == "string" and args.cookie ~= "" then
        return nil, fail .. "not supported: a route's own cookie (halo dials with the node's cookie)"
      end
      if port == 0 or host == "" then return nil, fail .. "incorrect value or argument" end
      if name == ctx.node then return nil, fail .. "not allowed: that is this node" end
      local p, why = dial(name, address(host, port))
      if not p then return nil, fail .. why end
      return p
    end,
  },
  {
    name = "network_disconnect",
    description = "Closes the connection to a node: links and monitors across it end with 'no connection' on "
      .. "both sides. This node does not re-dial it by itself (the next message to it connects again); the "
      .. "other node may dial back at once when it has a registrar's route to this one.",
    inputSchema = name_schema("Node name (name@host) to disconnect."),
    handler = function(args)
      local ok, err = halo.net.disconnect(args.name)
      if not ok then return nil, ("node %s not connected: %s"):format(args.name, text(err)) end
      return "disconnected from " .. args.name
    end,
  },
  {
    name = "network_ping",
    description = "Round trip to another node's MCP service in milliseconds (two decimals): a call through "
      .. "that node's mcp worker pool, 5 second timeout, connecting on demand. 'name' is the node pinged; "
      .. "'node' chooses where the ping starts from.",
    inputSchema = name_schema("Node name (name@host) to ping."),
    handler = function(args)
      local name = args.name
      if not name:find(".@.") then
        return nil, ("ping %s failed: incorrect value or argument: a node name is name@host"):format(name)
      end
      local t0 = halo.now()
      local reply, err = halo.call(halo.net.process_id("mcp", name), { mcp = "ping" }, 5000)
      local ms = halo.now() - t0
      if reply == nil then return nil, ("ping %s failed: %s"):format(name, text(err)) end
      return ("ping %s: rtt %.2fms"):format(name, ms)
    end,
  },
}
