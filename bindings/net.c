/* core.net: the Lua face of the transport (core/net.c): starting it, dialing,
 * reading its state, and the payload codec hooks it calls. */
#include "binding.h"
#include "clock.h"
#include "msgpack.h"
#include "net.h"
#include "registrar.h"
#include "rel.h"

#include <stdlib.h>
#include <string.h>

#define WIRE_DEPTH 64

typedef struct encode_job {
  halo_binding_t *B;
  halo_payload_t pl;
  struct halo_mpw *w;
  int rc;
} encode_job_t;

static int encode_body(lua_State *L, void *ud) {
  encode_job_t *j = ud;
  hb_push_payload(j->B, L, j->pl, 0);
  j->rc = hb_encode(L, -1, j->w, WIRE_DEPTH, j->B->codec_err, sizeof j->B->codec_err);
  return 0;
}

/* May run from the scheduler outside any pcall (a link firing): through the gate. */
static int hook_encode(halo_node_t *n, halo_payload_t pl, struct halo_mpw *w) {
  halo_binding_t *B = n->host;
  encode_job_t j = {B, pl, w, HALO_ENOMEM};
  if (hb_gate(B, n->current, "encoding a message", encode_body, &j)) return HALO_ENOMEM;
  return j.rc;
}

typedef struct decode_job {
  halo_binding_t *B;
  const void *buf;
  size_t len;
  int rc;
  halo_payload_t out;
} decode_job_t;

static int decode_body(lua_State *L, void *ud) {
  decode_job_t *j = ud;
  j->rc = hb_decode(L, j->buf, j->len, WIRE_DEPTH, NULL, 0);
  if (!j->rc) j->out = hb_anchor(j->B, L, -1);
  return 0;
}

/* Runs from the loop's read callback, outside any pcall: a Lua error here
 * (out of memory on a huge message) must not unwind through libuv. */
static int hook_decode(halo_node_t *n, const void *buf, size_t len, halo_payload_t *out) {
  halo_binding_t *B = n->host;
  decode_job_t j = {B, buf, len, HALO_EMALFORMED, {0, 0}};
  if (hb_gate(B, NULL, "decoding a message", decode_body, &j)) return HALO_ENOMEM;
  if (j.rc) return j.rc;
  *out = j.out;
  return 0;
}

/* Splits "host:port" (the last colon; [v6]:port allowed). */
static int split_addr(const char *s, char *host, size_t hsize, int *port) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || !colon[1]) return -1;
  size_t hl = (size_t)(colon - s);
  if (s[0] == '[' && hl > 2 && s[hl - 1] == ']') s++, hl -= 2;
  if (hl >= hsize) return -1;
  memcpy(host, s, hl);
  host[hl] = 0;
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || p < 0 || p > 65535) return -1;
  *port = (int)p;
  return 0;
}

int hb_registrar_check(const char *registrar, int *port, const char **why) {
  *port = 0;
  if (!registrar || !strcmp(registrar, "embedded") || !strcmp(registrar, "none")) return 0;
  if (!strncmp(registrar, "embedded:", 9)) {
    char *end;
    long p = strtol(registrar + 9, &end, 10);
    if (*end || p <= 0 || p > 65535) return *why = "embedded:PORT needs a port from 1 to 65535", -1;
    *port = (int)p;
    return 0;
  }
  if (!strncmp(registrar, "etcd://", 7)) { /* run by lua/halo/etcd.lua, not here */
    char host[128];
    int p;
    if (split_addr(registrar + 7, host, sizeof host, &p) || !p) return *why = "etcd://HOST:PORT expected", -1;
    return 0;
  }
  return *why = "unknown kind (embedded, embedded:PORT, etcd://HOST:PORT or none)", -1;
}

int hb_net_start(lua_State *L, halo_binding_t *B, const char *cookie, const char *listen, const char *registrar) {
  const char *why;
  int reg_port;
  if (hb_registrar_check(registrar, &reg_port, &why)) return hb_errorf(L, HALO_EINCORRECT, "registrar: %s", why);
  if (B->net) return hb_errorf(L, HALO_ETAKEN, "the network is running already");
  char host[128] = "127.0.0.1";
  int port = 0;
  if (listen && split_addr(listen, host, sizeof host, &port))
    return hb_errorf(L, HALO_EINCORRECT, "listen address must be host:port, got '%s'", listen);
  halo_net_t *net = calloc(1, sizeof *net);
  int rc = net ? halo_net_init(net, &B->node, cookie) : HALO_ENOMEM;
  if (rc) {
    if (net) free(net->cookie);
    free(net);
    return rc == UV_EIO ? hb_errorf(L, rc, "no randomness for the node's id") : hb_error(L, rc);
  }
  B->node.hooks.encode = hook_encode;
  B->node.hooks.decode = hook_decode;
  rc = halo_net_listen(net, host, port);
  if (rc) {
    halo_net_close(net);
    free(net);
    return hb_errorf(L, rc, "cannot listen on %s:%d: %s", host, port ? port : HALO_NET_DEFAULT_PORT, halo_strerror(rc));
  }
  B->net = net;
  halo_log_proc(&B->node, NULL, HALO_LOG_INFO, "listening on %s:%d", net->host, net->port);
  if (!registrar || (strcmp(registrar, "none") && strncmp(registrar, "etcd://", 7))) {
    halo_registrar_t *r = calloc(1, sizeof *r);
    if (!r || (rc = halo_registrar_start(r, net, reg_port))) {
      free(r);
      return hb_errorf(L, rc ? rc : HALO_ENOMEM, "cannot start the registrar");
    }
    B->registrar = r;
  }
  lua_pushinteger(L, net->port);
  return 1;
}

int hb_net_check_addr(const char *addr) {
  char host[128];
  int port;
  return split_addr(addr, host, sizeof host, &port);
}

int hb_net_join(halo_binding_t *B, const char *spec) {
  if (!B->net) return HALO_ENOTALLOWED;
  if (!B->joiner && !(B->joiner = calloc(1, sizeof *B->joiner))) return HALO_ENOMEM;
  return halo_joiner_add(B->joiner, B->net, spec, B->registrar ? B->registrar->port : 0);
}

void hb_net_stop(halo_binding_t *B) {
  if (B->joiner) halo_joiner_stop(B->joiner);
  if (B->registrar) halo_registrar_stop(B->registrar);
  if (!B->net) return;
  halo_net_close(B->net);
}

void hb_net_free(halo_binding_t *B, lua_State *L) {
  if (B->registrar_info) hb_key_free(B, L, B->registrar_info);
  B->registrar_info = 0;
  free(B->joiner);
  B->joiner = NULL;
  free(B->registrar);
  B->registrar = NULL;
  free(B->net);
  B->net = NULL;
}

/* core.net.start(cookie, "host:port") -> port | nil, err */
static int l_net_start(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *cookie = luaL_checkstring(L, 1);
  if (!*cookie) return luaL_argerror(L, 1, "cookie must not be empty");
  return hb_net_start(L, B, cookie, luaL_optstring(L, 2, NULL), luaL_optstring(L, 3, NULL));
}

/* core.net.connect("host:port"[, expected node name]) -> dial id | nil, err: dials; the
 * handshake goes on in the background */
static int l_net_connect(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  if (!B->net) return hb_errorf(L, HALO_ENOTALLOWED, "the network is not started (--cookie / --listen)");
  char host[128];
  int port;
  const char *addr = luaL_checkstring(L, 1);
  if (split_addr(addr, host, sizeof host, &port) || !port) return luaL_argerror(L, 1, "host:port expected");
  uint64_t id = 0;
  int rc = halo_net_connect(B->net, host, port, luaL_optstring(L, 2, NULL), &id);
  if (rc) return hb_errorf(L, rc, "cannot dial %s: %s", addr, halo_strerror(rc));
  lua_pushnumber(L, (double)id);
  return 1;
}

/* core.net.dial(id) -> true (connected) | false (under way) | nil, err, code (failed) */
static int l_net_dial(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *why = NULL;
  int r = B->net ? halo_net_dial_result(B->net, (uint64_t)luaL_checknumber(L, 1), &why) : -1;
  if (r > 0) lua_pushboolean(L, 1);
  else if (r == 0) lua_pushboolean(L, 0);
  else return hb_errorf(L, HALO_ENOCONN, "%s", why ? why : "the network is not started");
  return 1;
}

/* RemoteNodeInfo, with the reference's field names (proxy transit and
 * clock skew, which halo does not do, read 0). Connected and Dialed are
 * halo's additions. */
static void push_peer(lua_State *L, const halo_peer_t *p) {
  static const char *const zero[] = {"TransitBytesIn", "TransitBytesOut", "ClockSkew"};
  lua_createtable(L, 0, 32);
  SET_STR("Node", p->name);
  SET_BOOL("Connected", p->ready && p->live > 0);
  SET_BOOL("Dialed", p->dialed);
  SET_INT("ConnectionUptime", p->ready ? (halo_clock_ns() - p->connected_at) / 1000000000u : 0);
  SET_INT("Uptime", p->ready ? (halo_clock_ns() - p->started_at) / 1000000000u : 0);
  lua_pushliteral(L, HALO_NET_PROTO);
  lua_setfield(L, -2, "ProtoVersion");
  lua_pushliteral(L, HALO_NET_HANDSHAKE);
  lua_setfield(L, -2, "HandshakeVersion");
  SET_INT("PoolSize", p->pool_size);
  SET_INT("PoolLen", p->live);
  hb_new_array(L, p->live); /* the links this side dialed (all to the address it dialed) */
  for (int i = 0; p->dialed && p->port && i < p->live; i++) {
    lua_pushfstring(L, "%s:%d", p->host, p->port);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "PoolDSN");
  SET_BOOL("TLS", 0);
  SET_INT("MessagesIn", p->msgs_in);
  SET_INT("MessagesOut", p->msgs_out);
  SET_INT("BytesIn", p->bytes_in);
  SET_INT("BytesOut", p->bytes_out);
  SET_INT("MaxMessageSize", p->max_message);
  SET_INT("Reconnections", p->reconnections);
  SET_INT("CompressedSent", p->compressed_sent);
  SET_INT("CompressedBytesSent", p->compressed_bytes);
  SET_INT("CompressedOrigBytesSent", p->compressed_orig);
  SET_INT("DecompressedRecv", p->decompressed_recv);
  SET_INT("DecompressedBytesRecv", p->decompressed_bytes);
  SET_INT("DecompressedOrigRecv", p->decompressed_orig);
  SET_INT("FragmentsSent", p->frag_sent);
  SET_INT("FragmentMessagesSent", p->frag_msgs_sent);
  SET_INT("FragmentsReceived", p->frag_recv);
  SET_INT("FragmentMessagesRecv", p->frag_msgs_recv);
  SET_INT("FragmentTimeouts", p->frag_timeouts);
  for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++) SET_INT(zero[i], 0);
}

/* core.net.peer(name) -> RemoteNodeInfo | nil, err */
static int l_net_peer(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *name = luaL_checkstring(L, 1);
  halo_peer_t *p = B->net ? halo_imap_get(&B->net->peers, halo_crc32(name, strlen(name))) : NULL;
  if (!p) return hb_error(L, HALO_ENOCONN);
  push_peer(L, p);
  return 1;
}

/* core.net.disconnect(name) -> true | nil, "ENOCONN: no connection" */
static int l_net_disconnect(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *name = luaL_checkstring(L, 1);
  int rc = B->net ? halo_net_disconnect(B->net, name) : HALO_ENOCONN;
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* The settings as halo.net.configure names them. */
static void push_settings(lua_State *L, const halo_net_t *net) {
  lua_createtable(L, 0, 9);
  SET_INT("pool_size", net->pool_size);
  SET_INT("fragment_size", net->fragment_size);
  SET_INT("fragment_timeout_ms", net->fragment_timeout_ms);
  SET_INT("max_assemblies", net->max_assemblies);
  SET_INT("max_assembly_bytes", net->assembly_budget);
  SET_INT("compress_threshold", net->compress_threshold);
  SET_INT("max_message", net->max_message);
  SET_INT("keepalive_ms", net->keepalive_ms);
  SET_INT("keepalive_misses", net->keepalive_misses);
}

/* Pushes the RegistrarInfo of the registrar this node uses and returns 1,
 * or returns 0 (nothing pushed) when it uses none. The etcd registrar's is
 * the table lua/halo/etcd.lua handed over (core.net.set_registrar), copied;
 * the embedded one's is built here: the reference's fields plus halo's
 * Registered, Error, Elections. */
static int push_registrar(lua_State *L, halo_binding_t *B) {
  if (B->registrar_info) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, B->registrar_info);
    hb_copy_table(L);
    lua_remove(L, -2);
    return 1;
  }
  halo_registrar_t *r = B->registrar;
  if (!r || !r->net) return 0;
  lua_createtable(L, 0, 12);
  lua_pushfstring(L, "127.0.0.1:%d", r->port);
  lua_setfield(L, -2, "Server");
  SET_BOOL("EmbeddedServer", r->serving);
  SET_BOOL("Registered", r->serving || r->registered);
  SET_BOOL("SupportRegisterProxy", 0);
  SET_BOOL("SupportRegisterApplication", 0);
  SET_BOOL("SupportConfig", 0);
  SET_BOOL("SupportEvent", 0);
  lua_pushliteral(L, HALO_REGISTRAR_VERSION);
  lua_setfield(L, -2, "Version");
  SET_STR("Error", r->error);
  SET_INT("Elections", r->elections);
  return 1;
}

/* The routes registrars gave: a list of RouteInfo {Match (the node name),
 * Host, Port, Weight (0: halo weighs no routes), UseResolver (true: a
 * registrar gave it), UseCustomCookie and UseCustomCert (false),
 * HandshakeVersion, ProtoVersion}. */
static void push_routes(lua_State *L, halo_net_t *net) {
  hb_new_array(L, 0);
  int k = 0;
  for (size_t i = 0; i < net->routes.cap; i++) {
    const halo_net_route_t *r = net->routes.slots[i].val;
    if (!r) continue;
    lua_createtable(L, 0, 9);
    SET_STR("Match", r->name);
    SET_STR("Host", r->host);
    SET_INT("Port", r->port);
    SET_INT("Weight", 0);
    SET_BOOL("UseResolver", 1);
    SET_BOOL("UseCustomCookie", 0);
    SET_BOOL("UseCustomCert", 0);
    lua_pushliteral(L, HALO_NET_HANDSHAKE);
    lua_setfield(L, -2, "HandshakeVersion");
    lua_pushliteral(L, HALO_NET_PROTO);
    lua_setfield(L, -2, "ProtoVersion");
    lua_rawseti(L, -2, ++k);
  }
}

/* The node's network Flags (the reference's, and halo's simultaneous
 * connect and keep-alive); its acceptor has the same. */
static void push_flags(lua_State *L, halo_binding_t *B, const halo_net_t *net) {
  lua_createtable(L, 0, 9);
  SET_BOOL("Enable", 1);
  hb_remote_push_flags(L, B);
  SET_BOOL("EnableFragmentation", net->fragment_size > 0);
  SET_BOOL("EnableProxyTransit", 0);
  SET_BOOL("EnableProxyAccept", 0);
  SET_BOOL("EnableImportantDelivery", 0);
  SET_BOOL("EnableSimultaneousConnect", 1);
  SET_INT("EnableSoftwareKeepAlive", (net->keepalive_ms + 999) / 1000); /* seconds, rounded up; 0: off */
}

/* core.net.info() -> NetworkInfo: the reference's fields (Mode, Registrar,
 * Acceptors, MaxMessageSize, HandshakeVersion, ProtoVersion, Nodes, Routes,
 * ProxyRoutes, Flags, ConnectionsEstablished, ConnectionsLost, EnabledSpawn,
 * EnabledApplicationStart) and halo's counters and Settings. */
static int l_net_info(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_net_t *net = B->net;
  lua_createtable(L, 0, 8);
  SET_STR("Mode", net ? "enabled" : "disabled");
  hb_new_array(L, 1);
  if (net && net->acceptor) { /* AcceptorInfo (Flags: the node's), plus halo's Host and Port */
    lua_createtable(L, 0, 12);
    SET_STR("Host", net->host);
    SET_INT("Port", net->port);
    lua_pushfstring(L, "%s:%d", net->host, net->port);
    lua_setfield(L, -2, "Interface");
    SET_INT("MaxMessageSize", net->max_message);
    SET_BOOL("TLS", 0);
    SET_BOOL("CustomRegistrar", B->registrar == NULL);
    if (B->registrar) {
      lua_pushfstring(L, "127.0.0.1:%d", B->registrar->port);
      lua_setfield(L, -2, "RegistrarServer");
      lua_pushliteral(L, HALO_REGISTRAR_VERSION);
      lua_setfield(L, -2, "RegistrarVersion");
    }
    lua_pushliteral(L, HALO_NET_HANDSHAKE);
    lua_setfield(L, -2, "HandshakeVersion");
    lua_pushliteral(L, HALO_NET_PROTO);
    lua_setfield(L, -2, "ProtoVersion");
    SET_INT("HandshakeErrors", net->handshake_errors);
    push_flags(L, B, net);
    lua_setfield(L, -2, "Flags");
    lua_rawseti(L, -2, 1);
  }
  lua_setfield(L, -2, "Acceptors");
  hb_new_array(L, 0); /* the connected nodes' names */
  int k = 0;
  if (net)
    for (size_t i = 0; i < net->peers.cap; i++) {
      const halo_peer_t *p = net->peers.slots[i].val;
      if (!p || !p->live || !p->ready) continue;
      lua_pushstring(L, p->name);
      lua_rawseti(L, -2, ++k);
    }
  lua_setfield(L, -2, "Nodes");
  SET_INT("MaxMessageSize", net ? net->max_message : 0);
  lua_pushliteral(L, HALO_NET_PROTO);
  lua_setfield(L, -2, "ProtoVersion");
  lua_pushliteral(L, HALO_NET_HANDSHAKE);
  lua_setfield(L, -2, "HandshakeVersion");
  SET_INT("HandshakeErrors", net ? net->handshake_errors : 0);
  SET_INT("ConnectionsEstablished", net ? net->connections_established : 0);
  SET_INT("ConnectionsLost", net ? net->connections_lost : 0);
  SET_INT("ProtocolErrors", net ? net->protocol_errors : 0);
  SET_INT("SimultaneousConnects", net ? net->simultaneous_connects : 0);
  SET_INT("PendingDropped", net ? net->pending_dropped : 0);
  SET_INT("MessagesRefused", net ? net->msgs_refused : 0);
  SET_INT("DecompressRefused", net ? net->inflate_refused : 0);
  if (net) push_routes(L, net);
  else hb_new_array(L, 0); /* every list is there, [] without the network */
  lua_setfield(L, -2, "Routes");
  hb_new_array(L, 0); /* halo proxies nothing */
  lua_setfield(L, -2, "ProxyRoutes");
  hb_remote_push_enabled(L, B);
  if (!net) return 1;
  push_settings(L, net);
  lua_setfield(L, -2, "Settings");
  if (push_registrar(L, B)) lua_setfield(L, -2, "Registrar");
  push_flags(L, B, net);
  lua_setfield(L, -2, "Flags");
  return 1;
}

/* core.net.compress(on): compress the calling process's messages to other
 * nodes when they are larger than the threshold (1024 bytes). */
static int l_net_compress(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.net.compress", 0);
  halo_proc_ext_t *x = halo__proc_ext(self);
  if (!x) return hb_error(L, HALO_ENOMEM);
  x->compress = (uint8_t)lua_toboolean(L, 1);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.net.registrar() -> RegistrarInfo | nil, "ENOTALLOWED: ..." */
static int l_net_registrar(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  if (!push_registrar(L, B))
    return hb_errorf(L, HALO_ENOTALLOWED, "no registrar (the network is off or --registrar none)");
  return 1;
}

/* core.net.set_registrar(info | nil): the RegistrarInfo of a registrar
 * written in Lua (lua/halo/etcd.lua), which hands it over again whenever a
 * field changes; core.net.registrar() and core.net.info() show a copy of
 * it, nil takes it back. The reference is released at node close. */
static int l_net_set_registrar(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  if (B->registrar_info) hb_key_free(B, L, B->registrar_info);
  B->registrar_info = 0;
  if (lua_isnoneornil(L, 1)) return 0;
  hb_key_reserve(B, L, 1);
  lua_pushvalue(L, 1);
  B->registrar_info = hb_key(B, L);
  return 0;
}

/* core.net.nodes() -> the names of the other nodes the registrars know */
static int l_net_nodes(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  hb_new_array(L, 0);
  int k = 0;
  for (size_t i = 0; B->net && i < B->net->routes.cap; i++) {
    const halo_net_route_t *r = B->net->routes.slots[i].val;
    if (!r) continue;
    lua_pushstring(L, r->name);
    lua_rawseti(L, -2, ++k);
  }
  return 1;
}

/* core.net.resolve(name) -> Route {Host, Port, TLS, HandshakeVersion,
 * ProtoVersion} | nil, err: halo's links have no TLS and every halo node
 * speaks this node's versions. */
static int l_net_resolve(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  size_t nl;
  const char *name = luaL_checklstring(L, 1, &nl);
  if (!B->net) return hb_error(L, HALO_ENOROUTE);
  const halo_net_route_t *r = halo_net_route(B->net, halo_crc32(name, nl));
  int self = !strcmp(name, B->node.name);
  if (!self && (!r || strcmp(r->name, name))) return hb_error(L, HALO_ENOROUTE);
  lua_createtable(L, 0, 5);
  SET_STR("Host", self ? B->net->host : r->host);
  SET_INT("Port", self ? B->net->port : r->port);
  SET_BOOL("TLS", 0);
  lua_pushliteral(L, HALO_NET_HANDSHAKE);
  lua_setfield(L, -2, "HandshakeVersion");
  lua_pushliteral(L, HALO_NET_PROTO);
  lua_setfield(L, -2, "ProtoVersion");
  return 1;
}

/* core.net.route_set(name, host, port) -> true | nil, err: a registrar
 * learned where a node listens (dialed now: the mesh; kept for sends). */
static int l_net_route_set(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  if (!B->net) return hb_errorf(L, HALO_ENOTALLOWED, "the network is not started");
  int rc = halo_net_route_set(B->net, luaL_checkstring(L, 1), luaL_checkstring(L, 2), (int)luaL_checkinteger(L, 3));
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.net.route_del(name): the node left. */
static int l_net_route_del(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  if (B->net) halo_net_route_del(B->net, luaL_checkstring(L, 1));
  lua_pushboolean(L, 1);
  return 1;
}

/* core.net.join("name@host[:port]") -> true | nil, err: resolves the node
 * through its host's registrar (UDP, every second until known), then dials it */
static int l_net_join(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *spec = luaL_checkstring(L, 1);
  int rc = hb_net_join(B, spec);
  if (rc == HALO_EINCORRECT) return luaL_argerror(L, 1, "name@host or name@host:port expected");
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.net.configure{...} -> the settings after the change | raises on a
 * bad value: pool_size (1-8, for links dialed to us from now on),
 * fragment_size (0 = never; else >= 256), fragment_timeout_ms (>= 1),
 * max_assemblies (>= 1), compress_threshold (>= 1024, as the reference),
 * max_message (0 = the frame limit, 64 MB; else >= 1024; for links made
 * from now on), max_assembly_bytes (per peer, >= 65536), keepalive_ms (0 =
 * off), keepalive_misses (1-100). */
static int l_net_configure(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_net_t *net = B->net;
  if (!net) return hb_errorf(L, HALO_ENOTALLOWED, "the network is not started");
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    static const struct { const char *key; double lo, hi; } limits[] = {
        {"pool_size", 1, HALO_NET_POOL_MAX}, {"fragment_size", 0, HALO_NET_MAX_FRAME},
        {"fragment_timeout_ms", 1, 86400000}, {"max_assemblies", 1, 1000000},
        {"compress_threshold", 1024, HALO_NET_MAX_FRAME}, {"max_message", 0, HALO_NET_MAX_FRAME},
        {"keepalive_ms", 0, 255000}, {"max_assembly_bytes", 65536, 1u << 30}, {"keepalive_misses", 1, 100}};
    double v[9];
    for (int i = 0; i < 9; i++) { /* check everything first: all or nothing */
      lua_getfield(L, 1, limits[i].key);
      v[i] = -1;
      if (!lua_isnil(L, -1)) {
        v[i] = luaL_checknumber(L, -1);
        if (v[i] != (double)(int64_t)v[i] || v[i] < limits[i].lo || v[i] > limits[i].hi ||
            (i == 1 && v[i] > 0 && v[i] < 256) || (i == 5 && v[i] > 0 && v[i] < 1024))
          return hb_errorf(L, HALO_EINCORRECT, "%s: %g is out of range", limits[i].key, v[i]);
      }
      lua_pop(L, 1);
    }
    if (v[0] >= 0) net->pool_size = (int)v[0];
    if (v[1] >= 0) net->fragment_size = (uint32_t)v[1];
    if (v[2] >= 0) net->fragment_timeout_ms = (uint32_t)v[2];
    if (v[3] >= 0) net->max_assemblies = (uint32_t)v[3];
    if (v[4] >= 0) net->compress_threshold = (uint32_t)v[4];
    if (v[5] >= 0) net->max_message = (uint32_t)v[5];
    if (v[6] >= 0) net->keepalive_ms = (uint32_t)v[6];
    if (v[7] >= 0) net->assembly_budget = (size_t)v[7];
    if (v[8] >= 0) net->keepalive_misses = (uint32_t)v[8];
  }
  push_settings(L, net);
  return 1;
}

/* core.net.crc32(string) -> number: the CRC node names are identified by */
static int l_crc32(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushnumber(L, halo_crc32(s, n));
  return 1;
}

void hb_open_net(lua_State *L) {
  static const luaL_Reg fns[] = {{"start", l_net_start},       {"connect", l_net_connect},
                                 {"dial", l_net_dial},         {"crc32", l_crc32},
                                 {"compress", l_net_compress}, {"peer", l_net_peer},
                                 {"info", l_net_info},         {"registrar", l_net_registrar},
                                 {"set_registrar", l_net_set_registrar},
                                 {"nodes", l_net_nodes},       {"resolve", l_net_resolve},
                                 {"route_set", l_net_route_set}, {"route_del", l_net_route_del},
                                 {"join", l_net_join},         {"configure", l_net_configure},
                                 {"disconnect", l_net_disconnect},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
