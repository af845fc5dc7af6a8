-- MCP tools of the registrar group: what this node's registrar knows (the
-- embedded one, "ESRD:R1", or etcd, "ETCD Client:R1"), through halo.net and
-- halo.net.registrar_etcd. Neither registrar takes proxy routes (so
-- registrar_resolve_proxy answers "not supported"); only etcd keeps
-- application routes.
local halo = require("halo")
local json = require("halo.json")

local function text(err) return (tostring(err):gsub("^E%u+: ", "")) end

local function name_schema(what)
  return { type = "object", properties = { name = { type = "string", description = what } },
           required = json.array({ "name" }), additionalProperties = false }
end

-- RegistrarInfo, or nil, the reference's error text.
local function registrar()
  local info, err = halo.net.registrar()
  if not info then return nil, "registrar not available: " .. text(err) end
  return info
end

return {
  {
    name = "registrar_info",
    description = "This node's registrar (RegistrarInfo): Server (its host:port), EmbeddedServer (this node "
      .. "serves the embedded registrar), SupportRegisterProxy, SupportRegisterApplication, SupportConfig, "
      .. "SupportEvent, Version, and halo's Registered, Error (why it is not registered, empty when it is) and, "
      .. "for the embedded registrar, Elections (times this node took the server role); for etcd Cluster, "
      .. "Event and Lease.",
    inputSchema = { type = "object", properties = json.object(), additionalProperties = false },
    handler = function() return registrar() end,
  },
  {
    name = "registrar_resolve",
    description = "Where a node listens, as its registrar says: a list of Route {Host, Port, TLS (always false), "
      .. "HandshakeVersion, ProtoVersion}.",
    inputSchema = name_schema("Node name (name@host)."),
    handler = function(args)
      local ok, err = registrar()
      if not ok then return nil, err end
      local route, why = halo.net.resolve(args.name)
      if not route then return nil, "registrar_resolve: " .. text(why) end
      return json.array({ route })
    end,
  },
  {
    name = "registrar_resolve_proxy",
    description = "Proxy routes to a node (ProxyRoute {To, Proxy}). halo proxies nothing and neither of its "
      .. "registrars (embedded, etcd) takes proxy routes, so this answers 'not supported'.",
    inputSchema = name_schema("Node name (name@host)."),
    handler = function()
      local info, err = registrar()
      if not info then return nil, err end
      if not info.SupportRegisterProxy then return nil, "registrar_resolve_proxy: not supported" end
      return json.array()
    end,
  },
  {
    name = "registrar_resolve_app",
    description = "The nodes running an application, as the etcd registrar knows them: a list of "
      .. "ApplicationRoute {Node, Name, Weight, Mode, State, Tags}, other nodes only, in the order halo would "
      .. "pick them (smooth weighted round-robin, the next pick first; reading does not advance the rotation). "
      .. "The embedded registrar keeps no application routes ('not supported').",
    inputSchema = name_schema("Application name."),
    handler = function(args)
      local info, err = registrar()
      if not info then return nil, err end
      local etcd = halo.net.registrar_etcd
      if not info.SupportRegisterApplication or not etcd.running() then
        return nil, "registrar_resolve_app: not supported"
      end
      local routes, why = etcd.resolve_application(args.name, true)
      if not routes then return nil, "registrar_resolve_app: " .. text(why) end
      return routes
    end,
  },
  {
    name = "cluster_nodes",
    description = "Every node this one knows, each once: {name, status} with status 'self' (this node, first), "
      .. "'connected' (a connection is up) or 'discovered' (its registrar knows it, not connected); names "
      .. "sorted within each status.",
    inputSchema = { type = "object", properties = json.object(), additionalProperties = false },
    handler = function()
      local c = halo.net.cluster()
      local out, seen = json.array(), {}
      local function add(name, status)
        if seen[name] then return end
        seen[name] = true
        out[#out + 1] = { name = name, status = status }
      end
      add(c.Self, "self")
      for _, name in ipairs(c.Connected) do add(name, "connected") end
      for _, name in ipairs(c.Discovered) do add(name, "discovered") end
      return out
    end,
  },
}
