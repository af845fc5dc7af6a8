/* core.httpd: the Lua face of the HTTP server (core/httpd.c); halo.http.serve
 * (lua/halo/http.lua) is built on it.
 *
 *   core.httpd.new(opts) -> sid, port | nil, err, code
 *       in a process (the server's owner): listens on opts.host:opts.port
 *       with the limits max_body, max_header, max_output, max_connections,
 *       header_timeout, idle_timeout, body_timeout (ms); the server closes
 *       (gracefully) when the owner ends or with core.httpd.close(sid)
 *   core.httpd.static(sid, path, methods, status, content_type, body)
 *   core.httpd.route(sid, path, methods, hid)        requests go to Lua, hid names the handler
 *   core.httpd.route_c(sid, path, methods, fn, ud)   fn: lightuserdata halo_httpd_handler_cb
 *   core.httpd.unroute(sid, path) -> true | nil, err
 *   core.httpd.stats(sid) -> table of counters | nil
 *   core.httpd.close(sid)
 *   core.httpd.attach(sid, cid) -> true | nil: the calling process becomes
 *       connection cid's process: its requests come to it as messages (the
 *       request table, with field route = hid) in order, then false once
 *       the connection has closed
 *   core.httpd.fail(sid, cid, failed): the connection gets no process, or its
 *       handler failed mid-stream (503s, a stream cut, closed)
 *   core.httpd.respond(sid, cid, status, body, headers, failed) -> true | nil, err, code
 *   core.httpd.stream(sid, cid, status, headers) / write(sid, cid, data) /
 *   finish(sid, cid) -> true | nil, err, code
 * methods: nil ({"GET"}), "*" or a list of names (HEAD goes with GET).
 *
 * The first request of a connection for a process route sends the number
 * cid to the server's owner, which spawns the connection's process; requests
 * wait here until it attaches. A connection process that ends leaves its
 * unanswered requests answered 503 and the connection closed.
 */
#include "binding.h"
#include "httpd.h"
#include "process.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct srv {
  struct srv *next;
  halo_httpd_t *h;
  uint64_t id, owner;
  int closing;
} srv_t;

/* A connection's side here (its ud in the core). */
typedef struct crec {
  srv_t *srv;
  uint64_t cid, proc; /* proc: its process, 0 until attached */
  int asked;          /* the owner was asked for a process */
  halo_payload_t *queue;
  uint32_t nq, capq;
} crec_t;

typedef struct state {
  halo_binding_t *B;
  srv_t *servers;
  halo_imap_t procs; /* connection process id -> crec */
  int stopped;
} state_t;

static state_t *S;
static uint64_t next_sid; /* never reused within the OS process */

static void hook_stopped(halo_node_t *n);
static void hook_free(halo_node_t *n, halo_proc_t *p);
static hb_watch_t watch = {NULL, hook_free, hook_stopped, NULL};

static state_t *state_get(halo_binding_t *B) {
  if (S && S->B == B && !S->stopped) return S;
  if (S) return NULL;
  S = calloc(1, sizeof *S);
  if (!S) return NULL;
  S->B = B;
  halo_imap_init(&S->procs);
  hb_watch(B, &watch);
  return S;
}

static void state_maybe_free(void) {
  if (!S || !S->stopped || S->servers) return;
  halo_imap_destroy(&S->procs);
  free(S);
  S = NULL;
}

static srv_t *srv_find(lua_State *L, int idx) {
  uint64_t id = (uint64_t)luaL_checknumber(L, idx);
  if (!S) return NULL;
  for (srv_t *s = S->servers; s; s = s->next)
    if (s->id == id) return s;
  return NULL;
}

static void on_server_closed(halo_httpd_t *h, void *ud) {
  srv_t *v = ud;
  (void)h;
  for (srv_t **pp = &S->servers; *pp; pp = &(*pp)->next)
    if (*pp == v) {
      *pp = v->next;
      break;
    }
  free(v);
  state_maybe_free();
}

static void srv_close(srv_t *v) {
  if (v->closing) return;
  v->closing = 1;
  halo_httpd_close(v->h, 0, on_server_closed, v);
}

/* -- connections and their processes ------------------------------------------- */

static void crec_free(crec_t *r) {
  for (uint32_t i = 0; i < r->nq; i++) hb_release(S->B, r->queue[i]);
  free(r->queue);
  if (r->proc) halo_imap_del(&S->procs, r->proc);
  free(r);
}

/* Hands pl to r's process; on failure the connection gets 503s. */
static void to_proc(crec_t *r, halo_httpd_conn_t *c, halo_payload_t pl, uint32_t size) {
  halo_node_t *n = &S->B->node;
  if (halo_send(n, NULL, halo_node_pid(n, r->proc), HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl, size)) {
    hb_release(S->B, pl);
    halo_httpd_conn_fail(c);
  }
}

static void on_conn_closed(void *ud, halo_httpd_conn_t *c) {
  crec_t *r = halo_httpd_conn_ud(c);
  (void)ud;
  if (!r) return;
  halo_httpd_conn_set_ud(c, NULL);
  if (r->proc && !S->stopped) {
    halo_node_t *n = &S->B->node;
    halo_payload_t end = {0, PL_FALSE};
    halo_send(n, NULL, halo_node_pid(n, r->proc), HALO_MSG_REGULAR, HALO_Q_MAIN, 0, end, 8);
  }
  crec_free(r);
}

typedef struct build {
  halo_binding_t *B;
  const halo_httpd_request_t *req;
  uint64_t cid;
  halo_payload_t pl;
} build_t;

static int build_req(lua_State *L, void *ud) {
  build_t *b = ud;
  const halo_httpd_request_t *q = b->req;
  lua_createtable(L, 0, 10);
  lua_pushstring(L, q->method);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, q->path, q->path_len);
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, q->query, q->query_len);
  lua_setfield(L, -2, "query");
  lua_pushlstring(L, q->target, q->target_len);
  lua_setfield(L, -2, "target");
  lua_pushstring(L, q->version_minor == 0 ? "1.0" : "1.1");
  lua_setfield(L, -2, "version");
  lua_pushlstring(L, q->body, q->body_len);
  lua_setfield(L, -2, "body");
  lua_pushstring(L, q->remote);
  lua_setfield(L, -2, "remote");
  lua_pushnumber(L, (double)(uintptr_t)q->route_ud);
  lua_setfield(L, -2, "route");
  lua_createtable(L, 0, (int)q->nheaders);
  for (size_t i = 0; i < q->nheaders; i++) {
    const halo_httpd_header_t *h = &q->headers[i];
    lua_pushlstring(L, h->name, h->name_len);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, h->value, h->value_len);
    } else { /* repeated: joined with ", " */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h->value, h->value_len);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  b->pl = hb_anchor(b->B, L, -1);
  return 0;
}

static void on_dispatch(void *ud, halo_httpd_conn_t *c, const halo_httpd_request_t *req) {
  srv_t *v = ud;
  halo_binding_t *B = S->B;
  halo_node_t *n = &B->node;
  crec_t *r = halo_httpd_conn_ud(c);
  if (!r) {
    if (!(r = calloc(1, sizeof *r))) {
      halo_httpd_conn_fail(c);
      return;
    }
    r->srv = v;
    r->cid = halo_httpd_conn_id(c);
    halo_httpd_conn_set_ud(c, r);
  }
  build_t b = {B, req, r->cid, {0, 0}};
  if (S->stopped || hb_gate(B, NULL, "an HTTP request", build_req, &b)) {
    halo_httpd_conn_fail(c);
    return;
  }
  uint32_t size = (uint32_t)(req->body_len + req->target_len + 256);
  if (r->proc) {
    to_proc(r, c, b.pl, size);
    return;
  }
  if (r->nq == r->capq) {
    uint32_t cap = r->capq ? r->capq * 2 : 4;
    halo_payload_t *q = realloc(r->queue, cap * sizeof *q);
    if (!q) {
      hb_release(B, b.pl);
      halo_httpd_conn_fail(c);
      return;
    }
    r->queue = q;
    r->capq = cap;
  }
  r->queue[r->nq++] = b.pl;
  if (r->asked) return;
  r->asked = 1;
  double d = (double)r->cid;
  halo_payload_t ask = {0, PL_NUMBER};
  memcpy(&ask.val, &d, sizeof d);
  if (halo_send(n, NULL, halo_node_pid(n, v->owner), HALO_MSG_REGULAR, HALO_Q_MAIN, 0, ask, 8))
    halo_httpd_conn_fail(c);
}

/* -- node hooks ---------------------------------------------------------------------- */

static void hook_free(halo_node_t *n, halo_proc_t *p) {
  (void)n;
  state_t *s = S;
  crec_t *r = halo_imap_del(&s->procs, p->id);
  if (r) {
    r->proc = 0;
    halo_httpd_conn_t *c = halo_httpd_conn_find(r->srv->h, r->cid);
    if (c) halo_httpd_conn_fail(c);
  }
  for (srv_t *v = s->servers; v; v = v->next)
    if (v->owner == p->id) srv_close(v);
}

static void hook_stopped(halo_node_t *n) {
  (void)n;
  state_t *s = S;
  for (srv_t *v = s->servers; v; v = v->next) srv_close(v);
  s->stopped = 1;
  state_maybe_free();
}

/* -- the functions ---------------------------------------------------------------------- */

static double opt_num(lua_State *L, const char *k, double def, double max) {
  lua_getfield(L, 1, k);
  double v = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "http.serve: %s must be a number", k);
    v = lua_tonumber(L, -1);
    if (v < 0 || v > max || v != (double)(uint64_t)v) luaL_error(L, "http.serve: %s must be an integer 0..%.0f", k, max);
  }
  lua_pop(L, 1);
  return v;
}

/* core.httpd.new(opts) -> sid, port | nil, err, code */
static int l_new(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  halo_proc_t *self = hb_self(L, B, "http.serve", 0);
  lua_getfield(L, 1, "host");
  const char *host = lua_isnil(L, -1) ? "127.0.0.1" : luaL_checkstring(L, -1);
  if (!strcmp(host, "localhost")) host = "127.0.0.1";
  lua_pop(L, 1);
  int port = (int)opt_num(L, "port", 0, 65535);
  halo_httpd_limits_t lim;
  halo_httpd_limits_default(&lim);
  lim.max_body = (size_t)opt_num(L, "max_body", (double)lim.max_body, 1e12);
  lim.max_header = (size_t)opt_num(L, "max_header", (double)lim.max_header, 1 << 24);
  lim.max_output = (size_t)opt_num(L, "max_output", (double)lim.max_output, 1e12);
  lim.max_connections = (uint32_t)opt_num(L, "max_connections", lim.max_connections, 1e9);
  lim.header_timeout = (uint32_t)opt_num(L, "header_timeout", lim.header_timeout, 864e5);
  lim.idle_timeout = (uint32_t)opt_num(L, "idle_timeout", lim.idle_timeout, 864e5);
  lim.body_timeout = (uint32_t)opt_num(L, "body_timeout", lim.body_timeout, 864e5);
  state_t *s = state_get(B);
  if (!s) return hb_error(L, HALO_ENODESTOP);
  srv_t *v = calloc(1, sizeof *v);
  if (!v) return hb_error(L, HALO_ENOMEM);
  v->h = halo_httpd_new(&B->loop, &lim, on_dispatch, on_conn_closed, v);
  if (!v->h) {
    free(v);
    return hb_error(L, HALO_ENOMEM);
  }
  v->id = ++next_sid;
  v->owner = self->id;
  v->next = s->servers;
  s->servers = v;
  int rc = halo_httpd_listen(v->h, host, port);
  if (rc) {
    srv_close(v);
    if (rc == UV_EINVAL) return hb_errorf(L, HALO_EINCORRECT, "not an IP address: %s", host);
    return hb_errorf(L, rc, "%s:%d: %s", host, port, uv_strerror(rc));
  }
  lua_pushnumber(L, (double)v->id);
  lua_pushinteger(L, halo_httpd_port(v->h));
  return 2;
}

static unsigned check_methods(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return HALO_HTTPD_GET;
  if (lua_type(L, idx) == LUA_TSTRING && !strcmp(lua_tostring(L, idx), "*")) return HALO_HTTPD_ANY;
  luaL_checktype(L, idx, LUA_TTABLE);
  unsigned m = 0;
  for (int i = 1;; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_isnil(L, -1)) break;
    const char *name = lua_tostring(L, -1);
    unsigned bit = name ? halo_httpd_method_bit(name) : 0;
    if (!bit && name && !strcmp(name, "*")) bit = HALO_HTTPD_ANY;
    if (!bit) luaL_argerror(L, idx, "unknown method");
    m |= bit;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (!m) luaL_argerror(L, idx, "no method");
  return m;
}

static srv_t *check_srv(lua_State *L) {
  srv_t *v = srv_find(L, 1);
  if (!v || v->closing) luaL_error(L, "http: the server is closed");
  return v;
}

static int route_result(lua_State *L, int rc) {
  if (rc == HALO_EINCORRECT) return luaL_argerror(L, 2, "a path starting with '/' (no CR, LF), valid status and text");
  return hb_ok_or_error(L, rc);
}

/* core.httpd.static(sid, path, methods, status, content_type, body) */
static int l_static(lua_State *L) {
  srv_t *v = check_srv(L);
  const char *path = luaL_checkstring(L, 2);
  unsigned m = check_methods(L, 3);
  int status = (int)luaL_checkinteger(L, 4);
  const char *ct = luaL_optstring(L, 5, NULL);
  size_t len;
  const char *body = luaL_optlstring(L, 6, "", &len);
  return route_result(L, halo_httpd_route_static(v->h, path, m, status, ct, body, len));
}

/* core.httpd.route(sid, path, methods, hid) */
static int l_route(lua_State *L) {
  srv_t *v = check_srv(L);
  const char *path = luaL_checkstring(L, 2);
  unsigned m = check_methods(L, 3);
  uintptr_t hid = (uintptr_t)luaL_checknumber(L, 4);
  return route_result(L, halo_httpd_route_process(v->h, path, m, (void *)hid));
}

/* core.httpd.route_c(sid, path, methods, fn, ud) */
static int l_route_c(lua_State *L) {
  srv_t *v = check_srv(L);
  const char *path = luaL_checkstring(L, 2);
  unsigned m = check_methods(L, 3);
  luaL_checktype(L, 4, LUA_TLIGHTUSERDATA);
  halo_httpd_handler_cb cb;
  void *fn = lua_touserdata(L, 4);
  memcpy(&cb, &fn, sizeof cb);
  return route_result(L, halo_httpd_route_c(v->h, path, m, cb, lua_touserdata(L, 5)));
}

/* core.httpd.unroute(sid, path) -> true | nil, err */
static int l_unroute(lua_State *L) {
  srv_t *v = check_srv(L);
  int rc = halo_httpd_unroute(v->h, luaL_checkstring(L, 2));
  if (rc) return hb_errorf(L, HALO_EINCORRECT, "no route %s", lua_tostring(L, 2));
  lua_pushboolean(L, 1);
  return 1;
}

/* core.httpd.stats(sid) -> table | nil */
static int l_stats(lua_State *L) {
  srv_t *v = srv_find(L, 1);
  if (!v) return 0;
  halo_httpd_stats_t st;
  halo_httpd_stats(v->h, &st);
  lua_createtable(L, 0, 19);
#define F(k) SET_INT(#k, st.k)
  F(accepted); F(connections); F(requests); F(reused); F(responses); F(refused); F(bad_requests);
  F(header_too_large); F(body_too_large); F(not_found); F(method_not_allowed); F(header_timeouts);
  F(body_timeouts); F(idle_timeouts); F(output_overflows); F(handler_gone); F(handler_errors);
  F(drain_timeouts); F(buffered);
#undef F
  return 1;
}

/* core.httpd.close(sid) */
static int l_close(lua_State *L) {
  srv_t *v = srv_find(L, 1);
  if (v) srv_close(v);
  return 0;
}

/* core.httpd.attach(sid, cid) -> true | nil */
static int l_attach(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  srv_t *v = srv_find(L, 1);
  halo_proc_t *self = hb_self(L, B, "core.httpd.attach", 0);
  halo_httpd_conn_t *c = v ? halo_httpd_conn_find(v->h, (uint64_t)luaL_checknumber(L, 2)) : NULL;
  crec_t *r = c ? halo_httpd_conn_ud(c) : NULL;
  if (!r || r->proc) return 0;
  if (halo_imap_put(&S->procs, self->id, r)) return 0;
  r->proc = self->id;
  /* what waited goes to it in order; a failed send may close c (and free r) */
  uint64_t cid = r->cid;
  halo_payload_t *q = r->queue;
  uint32_t nq = r->nq;
  r->queue = NULL;
  r->nq = r->capq = 0;
  for (uint32_t i = 0; i < nq; i++) {
    halo_httpd_conn_t *now = halo_httpd_conn_find(v->h, cid);
    if (now && halo_httpd_conn_ud(now) == r) to_proc(r, now, q[i], 256);
    else hb_release(B, q[i]);
  }
  free(q);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.httpd.fail(sid, cid, failed): no process could be had for the
 * connection, or its handler failed mid-stream (failed: counted as a handler
 * error): its waiting requests get 503, a stream is cut, and it closes. */
static int l_fail(lua_State *L) {
  srv_t *v = srv_find(L, 1);
  halo_httpd_conn_t *c = v ? halo_httpd_conn_find(v->h, (uint64_t)luaL_checknumber(L, 2)) : NULL;
  if (v && lua_toboolean(L, 3)) halo_httpd_count_handler_error(v->h);
  if (c) halo_httpd_conn_fail(c);
  return 0;
}

static halo_httpd_conn_t *check_conn(lua_State *L) {
  srv_t *v = srv_find(L, 1);
  uint64_t cid = (uint64_t)luaL_checknumber(L, 2);
  return v ? halo_httpd_conn_find(v->h, cid) : NULL;
}

static int is_reserved(const char *k, size_t n) {
  return (n == 14 && !strncasecmp(k, "content-length", n)) || (n == 10 && !strncasecmp(k, "connection", n)) ||
         (n == 17 && !strncasecmp(k, "transfer-encoding", n));
}

/* A name of visible characters but ':', a value without CR, LF or NUL: nothing
 * the handler gives can end the line or the head. */
static int header_ok(const char *k, size_t kl, const char *v, size_t vl) {
  if (!kl) return 0;
  for (size_t i = 0; i < kl; i++)
    if ((unsigned char)k[i] <= ' ' || k[i] == ':' || k[i] == 127) return 0;
  for (size_t i = 0; i < vl; i++)
    if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0') return 0;
  return 1;
}

/* Pushes (as a string) the header lines of the table at idx (nil: none),
 * with Content-Type: ctype when the table has none. Two passes: check and
 * measure, then copy into a userdata (collected if anything raises). */
static void push_headers(lua_State *L, int idx, const char *ctype) {
  size_t total = 0;
  int has_ct = 0;
  if (!lua_isnoneornil(L, idx)) luaL_checktype(L, idx, LUA_TTABLE);
  for (int pass = 0; pass < 2; pass++) {
    char *out = NULL;
    if (pass == 1) {
      if (!has_ct) total += strlen(ctype) + 16;
      out = lua_newuserdata(L, total + 1);
    }
    size_t at = 0;
    if (!lua_isnoneornil(L, idx)) {
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        size_t kl = 0, vl = 0;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kl) : NULL;
        int vt = lua_type(L, -1);
        const char *val = vt == LUA_TSTRING ? lua_tolstring(L, -1, &vl) : NULL;
        if (vt == LUA_TNUMBER) { /* lua_tolstring would turn the value into a string under next */
          lua_pushvalue(L, -1);
          val = lua_tolstring(L, -1, &vl);
          lua_replace(L, -2);
        }
        if (!k || !val || !header_ok(k, kl, val, vl))
          luaL_error(L, "http: header names and values are strings without CR, LF or NUL (names without ':' or spaces)");
        if (!is_reserved(k, kl)) {
          if (kl == 12 && !strncasecmp(k, "content-type", 12)) has_ct = 1;
          if (pass == 0) {
            total += kl + vl + 4;
          } else {
            memcpy(out + at, k, kl);
            memcpy(out + at + kl, ": ", 2);
            memcpy(out + at + kl + 2, val, vl);
            memcpy(out + at + kl + 2 + vl, "\r\n", 2);
            at += kl + vl + 4;
          }
        }
        lua_pop(L, 1);
      }
    }
    if (pass == 1) {
      if (!has_ct) at += (size_t)snprintf(out + at, total + 1 - at, "Content-Type: %s\r\n", ctype);
      lua_pushlstring(L, out, at);
      lua_remove(L, -2);
    }
  }
}

static int conn_result(lua_State *L, int rc) {
  if (rc == UV_EINVAL) return hb_errorf(L, HALO_EINCORRECT, "no answer of this connection is due");
  if (rc) return hb_errorf(L, HALO_ENOCONN, "the client is gone");
  lua_pushboolean(L, 1);
  return 1;
}

/* core.httpd.respond(sid, cid, status, body, headers, failed) */
static int l_respond(lua_State *L) {
  halo_httpd_conn_t *c = check_conn(L);
  int status = (int)luaL_checkinteger(L, 3);
  if (status < 200 || status > 999) luaL_argerror(L, 3, "an HTTP status 200..999");
  size_t blen;
  const char *body = luaL_optlstring(L, 4, "", &blen);
  lua_settop(L, 6);
  int failed = lua_toboolean(L, 6);
  push_headers(L, 5, "text/plain; charset=utf-8");
  if (!c) return conn_result(L, UV_EPIPE);
  size_t hlen;
  const char *h = lua_tolstring(L, -1, &hlen);
  srv_t *v = srv_find(L, 1);
  if (failed) halo_httpd_count_handler_error(v->h);
  return conn_result(L, halo_httpd_respond(c, status, h, hlen, body, blen));
}

/* core.httpd.stream(sid, cid, status, headers) */
static int l_stream(lua_State *L) {
  halo_httpd_conn_t *c = check_conn(L);
  int status = (int)luaL_checkinteger(L, 3);
  if (status < 200 || status > 999) luaL_argerror(L, 3, "an HTTP status 200..999");
  lua_settop(L, 4);
  push_headers(L, 4, "application/octet-stream");
  if (!c) return conn_result(L, UV_EPIPE);
  size_t hlen;
  const char *h = lua_tolstring(L, -1, &hlen);
  return conn_result(L, halo_httpd_stream_start(c, status, h, hlen));
}

/* core.httpd.write(sid, cid, data) */
static int l_write(lua_State *L) {
  halo_httpd_conn_t *c = check_conn(L);
  size_t len;
  const char *d = luaL_checklstring(L, 3, &len);
  if (!c) return conn_result(L, UV_EPIPE);
  return conn_result(L, halo_httpd_stream_write(c, d, len));
}

/* core.httpd.finish(sid, cid) */
static int l_finish(lua_State *L) {
  halo_httpd_conn_t *c = check_conn(L);
  if (!c) return conn_result(L, UV_EPIPE);
  return conn_result(L, halo_httpd_stream_finish(c));
}

void hb_open_httpd(lua_State *L) {
  static const luaL_Reg fns[] = {{"new", l_new},         {"static", l_static},   {"route", l_route},
                                 {"route_c", l_route_c}, {"unroute", l_unroute}, {"stats", l_stats},
                                 {"close", l_close},     {"attach", l_attach},   {"respond", l_respond},
                                 {"stream", l_stream},   {"write", l_write},     {"finish", l_finish},
                                 {"fail", l_fail},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
