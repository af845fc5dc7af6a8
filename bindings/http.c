/* core.http: the Lua face of the HTTP client (core/http.c) for halo processes.
 *
 *   core.http.wait(opts) -> ref | nil, err, code
 *       in a process's own coroutine: starts the request and leaves the
 *       process waiting like halo.call (state "wait response"; other
 *       messages stay queued); halo.http.request yields until the response
 *   core.http.start(opts) -> ref | nil, err, code
 *       the results come to the calling process as messages (below)
 *   core.http.cancel(ref) -> true | nil, "ETARGETUNKNOWN: unknown target"
 *       ends a request of core.http.start; no further message comes for it
 *   core.http.stats() -> {clients, requests, connections, reused, active, idle}
 *       connections: TCP connections made; reused: requests sent on a
 *       kept-alive one; active, idle: connections now
 *
 * opts: host, port (required), method ("GET", or "POST" when there is a
 * body), path ("/"), body (string), content_type, headers (name -> string or
 * number; checked by halo_http_header_check: a refused one answers nil,
 * "EINCORRECT: ..."), timeout (ms: the whole
 * request, connecting included; for a stream the longest silence; default
 * 5000, streams 0 = none), stream (core.http.start: the body comes piece by
 * piece), detach (core.http.start: fire and forget, see below).
 *
 * Messages of core.http.start, sent by the node to the caller:
 *   {kind = "http_data", ref, status, data}        streams: a piece of the body
 *   {kind = "http_done", ref, status, body, headers} the end (body: whole, non-streaming only)
 *   {kind = "http_error", ref, error = "ECODE: text", code = "ECODE"}
 * A stream whose owner cannot take a piece (its mailbox is full) is
 * cancelled without a further message: give a streaming process a mailbox
 * without a limit. An HTTP status is not an error: the caller reads status.
 * headers maps lower-cased names to values, a repeated header's values
 * joined by ", "; halo.http.request's result has the same status, body and
 * headers.
 *
 * Lifetime. Clients are kept per host:port for the node's lifetime. Each
 * request has a connection of its own while it runs (no cap: concurrent
 * requests to one host open as many connections); up to IDLE_KEEP idle
 * ones per host:port are kept for reuse, HALO_HTTP_IDLE_MS each. A request
 * belongs to the process that made it and is cancelled when that process
 * is freed. A detached request belongs to nobody: no message, and it goes
 * on after its caller's end and after the node stops (for at most its
 * timeout, default 2000, at most 10000 ms), which is how a registrar
 * revokes its lease from terminate. Every other
 * request is cancelled when the node stops, idle connections are closed,
 * and once the detached ones are done every client is deleted, so the loop
 * closes cleanly. This file learns of a process's end and of the node's
 * stop through its hb_watch, put on at first use.
 */
#include "binding.h"
#include "http.h"
#include "process.h"
#include "timer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT 5000
#define DETACH_TIMEOUT 2000
#define DETACH_MAX 10000
#define WAIT_GRACE 1000 /* the wait timer backs up the request's own timeout */
#define IDLE_KEEP 64    /* idle connections kept per host:port */

enum { MODE_WAIT, MODE_MESSAGE, MODE_STREAM, MODE_DETACH };

typedef struct client {
  struct client *next;
  halo_http_t *h;
  int port;
  char host[];
} client_t;

typedef struct hreq {
  struct hreq *next, *prev;
  halo_http_req_t *r;
  uint64_t owner; /* process id; 0 when detached */
  uint64_t ref;
  int mode;
  int silent;     /* cancelled by the owner, its end or the node's stop: no delivery */
} hreq_t;

typedef struct state {
  halo_binding_t *B;
  client_t *clients;
  hreq_t *reqs;
  int stopped;
} state_t;

static state_t *S; /* the running node's, or a stopped node's until its detached requests end */

/* -- state and clients --------------------------------------------------------- */

static void hook_stopped(halo_node_t *n);
static void hook_free(halo_node_t *n, halo_proc_t *p);
static hb_watch_t watch = {NULL, hook_free, hook_stopped, NULL};

static state_t *state_get(halo_binding_t *B) {
  if (S && S->B == B && !S->stopped) return S;
  if (S) return NULL; /* a stopped node's leftovers: no new requests */
  S = calloc(1, sizeof *S);
  if (!S) return NULL;
  S->B = B;
  hb_watch(B, &watch);
  return S;
}

static client_t *client_get(state_t *s, const char *host, int port) {
  for (client_t *c = s->clients; c; c = c->next)
    if (c->port == port && !strcmp(c->host, host)) return c;
  size_t len = strlen(host);
  client_t *c = malloc(sizeof *c + len + 1);
  if (!c) return NULL;
  c->h = halo_http_new(&s->B->loop, host, port);
  if (!c->h) {
    free(c);
    return NULL;
  }
  halo_http_set_idle(c->h, IDLE_KEEP, HALO_HTTP_IDLE_MS);
  memcpy(c->host, host, len + 1);
  c->port = port;
  c->next = s->clients;
  s->clients = c;
  return c;
}

/* After the stop: once no request is left, the clients and the state go. */
static void state_maybe_free(void) {
  if (!S || !S->stopped || S->reqs) return;
  state_t *s = S;
  S = NULL;
  while (s->clients) {
    client_t *c = s->clients;
    s->clients = c->next;
    halo_http_delete(c->h);
    free(c);
  }
  free(s);
}

static void req_unlink(hreq_t *q) {
  if (q->prev) q->prev->next = q->next;
  else S->reqs = q->next;
  if (q->next) q->next->prev = q->prev;
  q->next = q->prev = NULL;
}

/* Ends q without telling anyone; its callback frees it. */
static void req_cancel_silently(hreq_t *q) {
  q->silent = 1;
  halo_http_cancel(q->r);
}

static void hook_free(halo_node_t *n, halo_proc_t *p) {
  (void)n;
  for (hreq_t *q = S->reqs, *next; q; q = next) {
    next = q->next;
    if (q->owner == p->id) req_cancel_silently(q); /* frees q, and only q */
  }
}

static void hook_stopped(halo_node_t *n) {
  (void)n;
  state_t *s = S;
  hreq_t *q = s->reqs;
  while (q) {
    if (q->mode == MODE_DETACH) {
      q = q->next;
      continue;
    }
    req_cancel_silently(q); /* frees q */
    q = s->reqs;
    while (q && q->mode == MODE_DETACH) q = q->next;
  }
  for (client_t *c = s->clients; c; c = c->next) halo_http_set_idle(c->h, 0, 0);
  s->stopped = 1; /* only now: the cancels above must not free s */
  state_maybe_free();
}

/* -- delivery ---------------------------------------------------------------------- */

typedef struct build {
  halo_binding_t *B;
  hreq_t *q;
  int event, status;
  const char *data;
  size_t len;
  halo_payload_t pl;
} build_t;

/* Pushes the response headers of r as a table, repeated names joined by ", ". */
static void push_headers(lua_State *L, const halo_http_req_t *r) {
  size_t len;
  const char *h = halo_http_req_headers(r, &len), *end = h + len;
  lua_newtable(L);
  while (h && h < end) {
    const char *name = h, *value = name + strlen(name) + 1;
    h = value + strlen(value) + 1;
    lua_getfield(L, -1, name);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushstring(L, value);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushstring(L, value);
      lua_concat(L, 3);
    }
    lua_setfield(L, -2, name);
  }
}

/* Builds the message (or, waiting, the reply) of one event: may raise (memory). */
static int build_body(lua_State *L, void *ud) {
  build_t *b = ud;
  hreq_t *q = b->q;
  lua_createtable(L, 0, 5);
  if (q->mode != MODE_WAIT) {
    lua_pushstring(L, b->event == HALO_HTTP_DATA ? "http_data" : b->event == HALO_HTTP_DONE ? "http_done" : "http_error");
    lua_setfield(L, -2, "kind");
    lua_pushnumber(L, (double)q->ref);
    lua_setfield(L, -2, "ref");
  }
  if (b->event == HALO_HTTP_ERROR) {
    const char *name = halo_err_name(b->status);
    lua_pushfstring(L, "%s: %s", name, b->data ? b->data : halo_strerror(b->status));
    lua_setfield(L, -2, "error");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "code");
  } else {
    lua_pushinteger(L, b->status);
    lua_setfield(L, -2, "status");
    if (b->event == HALO_HTTP_DATA || q->mode != MODE_STREAM) {
      lua_pushlstring(L, b->data ? b->data : "", b->data ? b->len : 0);
      lua_setfield(L, -2, b->event == HALO_HTTP_DATA ? "data" : "body");
    }
    if (b->event == HALO_HTTP_DONE) {
      push_headers(L, q->r);
      lua_setfield(L, -2, "headers");
    }
  }
  b->pl = hb_anchor(b->B, L, -1);
  return 0;
}

/* Hands one event of q to its owner; 0, or nonzero when it could not. */
static int deliver(hreq_t *q, int event, int status, const char *data, size_t len) {
  halo_binding_t *B = S->B;
  halo_node_t *n = &B->node;
  build_t b = {B, q, event, status, data, len, {0, 0}};
  if (hb_gate(B, halo_proc_find(n, q->owner), "an HTTP event", build_body, &b)) return HALO_ENOMEM;
  halo_pid_t to = halo_node_pid(n, q->owner);
  int rc = q->mode == MODE_WAIT
               ? halo_reply(n, NULL, to, q->ref, b.pl)
               : halo_send(n, NULL, to, HALO_MSG_REGULAR, HALO_Q_MAIN, 0, b.pl, (uint32_t)(len + 64));
  if (rc) hb_release(B, b.pl);
  return rc;
}

static void on_http(halo_http_req_t *r, void *ud, int event, int status, const char *data, size_t len) {
  hreq_t *q = ud;
  (void)r;
  if (event == HALO_HTTP_DATA) {
    if (!q->silent && !S->stopped && deliver(q, event, status, data, len)) req_cancel_silently(q);
    return;
  }
  req_unlink(q);
  if (!q->silent && !S->stopped && q->mode != MODE_DETACH) deliver(q, event, status, data, len);
  free(q);
  state_maybe_free();
}

/* -- the functions --------------------------------------------------------------------- */

static const char *opt_string(lua_State *L, const char *k, size_t *len) {
  lua_getfield(L, 1, k);
  const char *v = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "http: %s must be a string", k);
    v = lua_tolstring(L, -1, len);
  }
  lua_pop(L, 1); /* opts keeps the string alive */
  return v;
}

static double opt_number(lua_State *L, const char *k, double def) {
  lua_getfield(L, 1, k);
  double v = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "http: %s must be a number", k);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static int opt_bool(lua_State *L, const char *k) {
  lua_getfield(L, 1, k);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Reads opts.headers into an array; leaves it (a userdata) and a table
 * anchoring the value strings on the stack. On a header the client refuses
 * returns NULL with *err set. */
static halo_http_header_t *opt_headers(lua_State *L, size_t *n, const char **err) {
  *n = 0;
  *err = NULL;
  lua_getfield(L, 1, "headers");
  if (lua_isnil(L, -1)) return NULL;
  if (!lua_istable(L, -1)) luaL_error(L, "http: headers must be a table");
  int t = lua_gettop(L);
  size_t count = 0;
  for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) count++;
  halo_http_header_t *hd = lua_newuserdata(L, (count ? count : 1) * sizeof *hd);
  lua_newtable(L);
  int anchors = lua_gettop(L);
  for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "http: header names must be strings");
    int vt = lua_type(L, -1);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER) luaL_error(L, "http: header values must be strings or numbers");
    size_t nlen, vlen;
    const char *name = lua_tolstring(L, -2, &nlen); /* a string key: lua_next is safe */
    lua_pushvalue(L, -1);
    const char *value = lua_tolstring(L, -1, &vlen);
    lua_rawseti(L, anchors, (int)*n + 1);
    const char *why = strlen(name) != nlen || strlen(value) != vlen ? "a NUL byte" : halo_http_header_check(name, value);
    if (why) {
      *err = lua_pushfstring(L, "http: header \"%s\" refused: %s", name, why);
      return NULL;
    }
    hd[*n].name = name;
    hd[*n].value = value;
    (*n)++;
  }
  return hd;
}

/* Starts the request described by opts (index 1) in mode; pushes the ref. */
static int start(lua_State *L, int wait) {
  halo_binding_t *B = hb_node(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t blen = 0;
  const char *host = opt_string(L, "host", NULL), *body = opt_string(L, "body", &blen);
  const char *method = opt_string(L, "method", NULL), *path = opt_string(L, "path", NULL);
  const char *ctype = opt_string(L, "content_type", NULL);
  double port = opt_number(L, "port", 0);
  int stream = opt_bool(L, "stream"), detach = opt_bool(L, "detach");
  if (!host || !*host) return luaL_error(L, "http: host is required");
  if (port < 1 || port > 65535 || port != (int)port) return luaL_error(L, "http: port must be 1..65535");
  if (wait && (stream || detach)) return luaL_error(L, "http_wait: stream and detach need core.http.start");
  if (stream && detach) return luaL_error(L, "http: a stream cannot be detached");
  int mode = wait ? MODE_WAIT : detach ? MODE_DETACH : stream ? MODE_STREAM : MODE_MESSAGE;
  double timeout = opt_number(L, "timeout", mode == MODE_STREAM ? 0 : mode == MODE_DETACH ? DETACH_TIMEOUT : DEFAULT_TIMEOUT);
  if (!(timeout >= 0 && timeout <= 86400000)) return luaL_error(L, "http: timeout must be 0..86400000 ms"); /* NaN too */
  timeout = ceil(timeout); /* a fraction of a ms must not become 0, no timeout */
  if (mode == MODE_WAIT && timeout == 0) return luaL_error(L, "http_wait: a timeout > 0 is required");
  if (mode == MODE_DETACH && (timeout == 0 || timeout > DETACH_MAX)) timeout = DETACH_MAX;
  size_t nh;
  const char *herr;
  halo_http_header_t *hd = opt_headers(L, &nh, &herr);
  if (herr) return hb_errorf(L, HALO_EINCORRECT, "%s", herr);
  halo_proc_t *self = NULL;
  if (mode != MODE_DETACH) {
    self = hb_self(L, B, wait ? "halo.http.request" : "core.http.start", wait);
    if (self->state >= HALO_STATE_TERMINATED) return hb_error(L, HALO_ETERMINATED);
  }
  state_t *s = state_get(B);
  if (!s) return hb_errorf(L, HALO_ENODESTOP, "%s", halo_strerror(HALO_ENODESTOP));
  client_t *c = client_get(s, host, (int)port);
  if (!c) return hb_errorf(L, HALO_EINCORRECT, "http: cannot make a client for %s:%d", host, (int)port);
  hreq_t *q = calloc(1, sizeof *q);
  if (!q) return hb_error(L, HALO_ENOMEM);
  halo_node_t *n = &B->node;
  q->owner = self ? self->id : 0;
  q->ref = ++n->next_ref;
  q->mode = mode;
  if (mode == MODE_WAIT) {
    int rc = halo_timer_wait_start(n, self, (uint64_t)timeout + WAIT_GRACE);
    if (rc) {
      free(q);
      return hb_error(L, rc);
    }
  }
  if (!method) method = body ? "POST" : "GET";
  int rc = halo_http_request(c->h, method, path ? path : "/", ctype, hd, nh, body, blen, (uint32_t)timeout,
                             mode == MODE_STREAM, on_http, q, &q->r);
  if (rc) {
    if (mode == MODE_WAIT) halo_timer_wait_stop(n, self);
    free(q);
    if (rc == UV_EINVAL) return luaL_error(L, "http: malformed method, path or content type");
    return hb_errorf(L, rc, "%s", halo_strerror(rc));
  }
  q->next = s->reqs;
  if (s->reqs) s->reqs->prev = q;
  s->reqs = q;
  if (mode == MODE_WAIT) { /* as a call: the reply with q->ref resumes it */
    self->wait = HALO_WAIT_REPLY;
    self->wait_for = HALO_FOR_HTTP;
    self->wait_ref = q->ref;
    self->wait_state = self->state;
    halo__proc_set_state(n, self, HALO_STATE_WAIT);
  }
  lua_pushnumber(L, (double)q->ref);
  return 1;
}

/* core.http.wait(opts) -> ref | nil, err, code: starts a request and leaves
 * the calling process waiting; it is resumed with (true, response) or
 * (false, err, code). halo.http.request (lua/halo/http.lua) yields for it. */
static int l_http_wait(lua_State *L) { return start(L, 1); }

/* core.http.start(opts) -> ref | nil, err, code */
static int l_http_start(lua_State *L) { return start(L, 0); }

/* core.http.cancel(ref) -> true | nil, err, code */
static int l_http_cancel(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  uint64_t ref = (uint64_t)luaL_checknumber(L, 1);
  if (S && S->B == B)
    for (hreq_t *q = S->reqs; q; q = q->next)
      if (q->ref == ref && q->mode != MODE_WAIT) {
        req_cancel_silently(q);
        lua_pushboolean(L, 1);
        return 1;
      }
  return hb_error(L, HALO_ETARGETUNKNOWN);
}

/* core.http.stats() -> {clients, requests, connections, reused, active, idle} */
static int l_http_stats(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int clients = 0, reqs = 0;
  halo_http_stats_t sum = {0, 0, 0, 0};
  if (S && S->B == B) {
    for (client_t *c = S->clients; c; c = c->next) {
      halo_http_stats_t st;
      halo_http_stats(c->h, &st);
      sum.connects += st.connects;
      sum.reuses += st.reuses;
      sum.active += st.active;
      sum.idle += st.idle;
      clients++;
    }
    for (hreq_t *q = S->reqs; q; q = q->next) reqs++;
  }
  lua_createtable(L, 0, 6);
  SET_INT("clients", clients);
  SET_INT("requests", reqs);
  SET_INT("connections", sum.connects);
  SET_INT("reused", sum.reuses);
  SET_INT("active", sum.active);
  SET_INT("idle", sum.idle);
  return 1;
}

void hb_open_http(lua_State *L) {
  static const luaL_Reg fns[] = {{"wait", l_http_wait}, {"start", l_http_start},
                                 {"cancel", l_http_cancel}, {"stats", l_http_stats},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
