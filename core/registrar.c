#include "registrar.h"
#include "errors.h"
#include "log.h"
#include "clock.h"
#include "process.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN 600
#define MAX_CONNS 1024

typedef struct halo_regconn {
  struct halo_regconn *next, *prev;
  halo_registrar_t *r;
  uv_tcp_t tcp;
  uv_connect_t connect;
  char name[256];           /* server: the node it registered ("" until then) */
  uint64_t since;           /* server: accepted at (halo_clock_ns()) */
  char buf[LINE_MAX_LEN + 1];
  size_t len;
  int closing;
} regconn_t;

typedef struct wline {
  uv_write_t req;
  uv_buf_t buf;
  char data[];
} wline_t;

static void on_retry(uv_timer_t *t);
static void send_line(regconn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void free_handle(uv_handle_t *h) { free(h); }

/* -- known nodes --------------------------------------------------------------- */

static halo_reg_node_t *find(halo_registrar_t *r, const char *name) {
  for (uint32_t i = 0; i < r->nnodes; i++)
    if (!strcmp(r->nodes[i].name, name)) return &r->nodes[i];
  return NULL;
}

/* A node joined: remember it and dial it (the mesh). */
static int add_node(halo_registrar_t *r, const char *name, const char *host, int port, regconn_t *owner) {
  halo_reg_node_t *k = find(r, name);
  if (!k) {
    if (r->nnodes == r->capnodes) {
      uint32_t cap = r->capnodes ? r->capnodes * 2 : 8;
      halo_reg_node_t *v = realloc(r->nodes, cap * sizeof *v);
      if (!v) return HALO_ENOMEM;
      r->nodes = v;
      r->capnodes = cap;
    }
    k = &r->nodes[r->nnodes++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
  }
  snprintf(k->host, sizeof k->host, "%s", host);
  k->port = port;
  k->owner = owner;
  k->stale = 0;
  halo_net_route_set(r->net, name, host, port);
  return 0;
}

static void remove_node(halo_registrar_t *r, const char *name) {
  halo_reg_node_t *k = find(r, name);
  if (!k) return;
  halo_net_route_del(r->net, name);
  *k = r->nodes[--r->nnodes];
}

/* -- connections ----------------------------------------------------------------- */

static void free_conn(uv_handle_t *h) { free(h->data); }

static void become_orphan(halo_registrar_t *r);

static void conn_close(regconn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  halo_registrar_t *r = c->r;
  if (c->prev) c->prev->next = c->next;
  else r->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->tcp, free_conn);
  if (r->closing) return;
  if (r->serving && c->name[0]) { /* its registration ends with it */
    char name[256];
    snprintf(name, sizeof name, "%s", c->name);
    remove_node(r, name);
    for (regconn_t *o = r->conns; o; o = o->next)
      if (o->name[0]) send_line(o, "LEFT %s", name);
  } else if (!r->serving) {
    become_orphan(r);
  }
}

static void on_line_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void send_line(regconn_t *c, const char *fmt, ...) {
  if (c->closing) return;
  wline_t *w = malloc(sizeof *w + LINE_MAX_LEN + 2);
  if (!w) return conn_close(c);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(w->data, LINE_MAX_LEN + 1, fmt, ap);
  va_end(ap);
  if (n < 0 || n > LINE_MAX_LEN) n = LINE_MAX_LEN;
  w->data[n] = '\n';
  w->buf = uv_buf_init(w->data, (unsigned)n + 1);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_line_written)) {
    free(w);
    conn_close(c);
  }
}

/* Server: "REG name host port" from a node of this host. */
static void on_register(regconn_t *c, char *args) {
  halo_registrar_t *r = c->r;
  char name[256], host[64];
  int port;
  if (c->name[0] || sscanf(args, "%255s %63s %d", name, host, &port) != 3 || port <= 0 || port > 65535 ||
      !strchr(name, '@'))
    return send_line(c, "ERR malformed registration"), conn_close(c);
  halo_reg_node_t *k = find(r, name);
  if (!strcmp(name, r->net->node->name) || (k && !k->stale))
    return send_line(c, "ERR resource is taken"), conn_close(c);
  snprintf(c->name, sizeof c->name, "%s", name);
  send_line(c, "OK");
  send_line(c, "JOIN %s %s %d", r->net->node->name, r->net->host, r->net->port);
  for (uint32_t i = 0; i < r->nnodes; i++)
    if (strcmp(r->nodes[i].name, name)) send_line(c, "JOIN %s %s %d", r->nodes[i].name, r->nodes[i].host, r->nodes[i].port);
  send_line(c, "END");
  for (regconn_t *o = r->conns; o; o = o->next)
    if (o != c && o->name[0]) send_line(o, "JOIN %s %s %d", name, host, port);
  r->registrations++;
  halo_log_proc(r->net->node, NULL, HALO_LOG_INFO, "registrar: %s registered (%s:%d)", name, host, port);
  add_node(r, name, host, port, c);
}

/* Client: a line from the server. */
static void on_server_line(regconn_t *c, char *line) {
  halo_registrar_t *r = c->r;
  char name[256], host[64];
  int port;
  if (!strcmp(line, "OK")) {
    r->registered = 1;
    r->error[0] = 0;
    for (uint32_t i = 0; i < r->nnodes; i++) r->nodes[i].stale = 1;
    return;
  }
  if (!strncmp(line, "ERR ", 4)) {
    snprintf(r->error, sizeof r->error, "%s", line + 4);
    halo_log_proc(r->net->node, NULL, HALO_LOG_ERROR, "registrar refused %s: %s", r->net->node->name, line + 4);
    return conn_close(c);
  }
  if (!strncmp(line, "JOIN ", 5) && sscanf(line + 5, "%255s %63s %d", name, host, &port) == 3) {
    if (strcmp(name, r->net->node->name)) add_node(r, name, host, port, NULL);
    return;
  }
  if (!strncmp(line, "LEFT ", 5)) return remove_node(r, line + 5);
  if (!strcmp(line, "END")) { /* the full list is in: forget who is not in it */
    for (uint32_t i = 0; i < r->nnodes;)
      if (r->nodes[i].stale) remove_node(r, r->nodes[i].name);
      else i++;
    return;
  }
  halo_log_proc(r->net->node, NULL, HALO_LOG_WARNING, "registrar: unexpected line from the server");
  conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  regconn_t *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(LINE_MAX_LEN - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  regconn_t *c = s->data;
  halo_registrar_t *r = c->r;
  (void)buf;
  if (nread < 0) {
    if (!r->serving && !r->closing)
      halo_log_proc(r->net->node, NULL, HALO_LOG_WARNING, "lost the connection with the registrar");
    return conn_close(c);
  }
  c->len += (size_t)nread;
  char *start = c->buf, *nl;
  while (!c->closing && (nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
    *nl = 0;
    if (r->serving && !strncmp(start, "REG ", 4)) on_register(c, start + 4);
    else if (!r->serving) on_server_line(c, start);
    else conn_close(c);
    start = nl + 1;
  }
  if (c->closing) return;
  c->len -= (size_t)(start - c->buf);
  memmove(c->buf, start, c->len);
  if (c->len >= LINE_MAX_LEN) conn_close(c); /* a line too long: garbage */
}

static regconn_t *conn_new(halo_registrar_t *r) {
  regconn_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->r = r;
  uv_tcp_init(r->net->node->loop, &c->tcp);
  c->tcp.data = c->connect.data = c;
  c->next = r->conns;
  if (r->conns) r->conns->prev = c;
  r->conns = c;
  return c;
}

static void on_connection(uv_stream_t *server, int status) {
  halo_registrar_t *r = server->data;
  if (status < 0) return;
  uint32_t n = 0;
  for (regconn_t *o = r->conns; o; o = o->next) n++;
  regconn_t *c = n < MAX_CONNS ? conn_new(r) : NULL;
  if (!c) { /* too many: take it off the queue and close it */
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t) return;
    uv_tcp_init(r->net->node->loop, t);
    (void)uv_accept(server, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, free_handle);
    return;
  }
  c->since = halo_clock_ns();
  if (uv_accept(server, (uv_stream_t *)&c->tcp)) return conn_close(c);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connected(uv_connect_t *req, int status) {
  regconn_t *c = req->data;
  if (c->closing) return;
  if (status < 0) return conn_close(c);
  halo_registrar_t *r = c->r;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  send_line(c, "REG %s %s %d", r->net->node->name, r->net->host, r->net->port);
}

/* -- roles ----------------------------------------------------------------------- */

/* -- resolving for other hosts (UDP) ---------------------------------------------- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  static char space[LINE_MAX_LEN + 1];
  *buf = uv_buf_init(space, LINE_MAX_LEN);
}

typedef struct udp_reply {
  uv_udp_send_t req;
  uv_buf_t buf;
  char data[LINE_MAX_LEN];
} udp_reply_t;

static void on_udp_sent(uv_udp_send_t *req, int status) {
  (void)status;
  free(req);
}

static void udp_send(uv_udp_t *u, const struct sockaddr *to, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void udp_send(uv_udp_t *u, const struct sockaddr *to, const char *fmt, ...) {
  udp_reply_t *w = malloc(sizeof *w);
  if (!w) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(w->data, sizeof w->data, fmt, ap);
  va_end(ap);
  if (n < 0 || n >= (int)sizeof w->data) n = (int)sizeof w->data - 1;
  w->buf = uv_buf_init(w->data, (unsigned)n);
  if (uv_udp_send(&w->req, u, &w->buf, 1, to, on_udp_sent)) free(w);
}

/* Server: "RESOLVE name" from anywhere. */
static void on_udp_request(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                           unsigned flags) {
  halo_registrar_t *r = u->data;
  (void)flags;
  if (nread <= 8 || !from || strncmp(buf->base, "RESOLVE ", 8)) return; /* garbage: ignored */
  char name[256];
  size_t nl = (size_t)nread - 8;
  while (nl && (buf->base[8 + nl - 1] == '\n' || buf->base[8 + nl - 1] == '\r')) nl--;
  if (!nl || nl > 255) return;
  memcpy(name, buf->base + 8, nl);
  name[nl] = 0;
  if (!strcmp(name, r->net->node->name)) return udp_send(u, from, "ROUTE %s %s %d\n", name, r->net->host, r->net->port);
  halo_reg_node_t *k = find(r, name);
  if (k && !k->stale) return udp_send(u, from, "ROUTE %s %s %d\n", name, k->host, k->port);
  udp_send(u, from, "UNKNOWN %s\n", name);
}

static void serve_udp(halo_registrar_t *r) {
  struct sockaddr_in any;
  uv_ip4_addr("0.0.0.0", r->port, &any);
  uv_udp_t *u = malloc(sizeof *u);
  if (!u) return;
  uv_udp_init(r->net->node->loop, u);
  u->data = r;
  if (uv_udp_bind(u, (const struct sockaddr *)&any, 0) || uv_udp_recv_start(u, udp_alloc, on_udp_request)) {
    halo_log_proc(r->net->node, NULL, HALO_LOG_WARNING, "registrar: cannot serve UDP port %d: other hosts cannot resolve "
                  "nodes here", r->port);
    uv_close((uv_handle_t *)u, free_handle);
    return;
  }
  r->udp = u;
}

static int is_loopback(const char *host) { return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "0.0.0.0"); }

/* A node joining: "ROUTE name host port" from the other host's registrar. */
static void on_udp_answer(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from, unsigned flags) {
  halo_joiner_t *j = u->data;
  (void)flags;
  if (nread <= 0 || !from) return;
  char src[64] = "";
  int sport = 0;
  if (from->sa_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)from, src, sizeof src);
    sport = ntohs(((const struct sockaddr_in *)from)->sin_port);
  } else if (from->sa_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)from, src, sizeof src);
    sport = ntohs(((const struct sockaddr_in6 *)from)->sin6_port);
  }
  char line[LINE_MAX_LEN + 1], name[256], host[64];
  int port;
  memcpy(line, buf->base, (size_t)nread);
  line[nread] = 0;
  if (sscanf(line, "ROUTE %255s %63s %d", name, host, &port) != 3) return;
  for (uint32_t i = 0; i < j->njoins; i++) {
    halo_join_t *x = &j->joins[i];
    if (x->known || strcmp(x->name, name)) continue;
    if (sport != x->port || strcmp(src, x->host)) continue; /* only the registrar asked may answer */
    /* a node listening on loopback answers with loopback: reach it at its host */
    const char *at = is_loopback(host) && !is_loopback(x->host) ? x->host : host;
    if (!halo_net_route_set(j->net, name, at, port)) {
      x->known = 1;
      j->answered++;
      halo_log_proc(j->net->node, NULL, HALO_LOG_INFO, "joined %s at %s:%d", name, at, port);
    }
  }
}

static void on_join_tick(uv_timer_t *t) {
  halo_joiner_t *j = t->data;
  int left = 0;
  for (uint32_t i = 0; i < j->njoins; i++) {
    halo_join_t *x = &j->joins[i];
    if (x->known) continue;
    left++;
    struct sockaddr_storage to;
    if (uv_ip4_addr(x->host, x->port, (struct sockaddr_in *)&to) &&
        uv_ip6_addr(x->host, x->port, (struct sockaddr_in6 *)&to))
      continue;
    udp_send(j->udp, (const struct sockaddr *)&to, "RESOLVE %s\n", x->name);
    j->asked++;
  }
  if (!left) uv_timer_stop(t);
}

int halo_joiner_add(halo_joiner_t *j, halo_net_t *net, const char *spec, int default_port) {
  const char *at = strchr(spec, '@');
  if (!at || at == spec || !at[1]) return HALO_EINCORRECT;
  halo_join_t x = {0};
  const char *colon = strrchr(at, ':');
  size_t nl = colon ? (size_t)(colon - spec) : strlen(spec), hl = nl - (size_t)(at + 1 - spec);
  if (nl > 255 || hl == 0 || hl >= sizeof x.host) return HALO_EINCORRECT;
  memcpy(x.name, spec, nl);
  memcpy(x.host, at + 1, hl);
  x.port = default_port ? default_port : HALO_REGISTRAR_PORT;
  if (colon) {
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535) return HALO_EINCORRECT;
    x.port = (int)p;
  }
  if (!strcmp(x.host, "localhost")) snprintf(x.host, sizeof x.host, "127.0.0.1");
  if (!j->net) {
    memset(j, 0, sizeof *j);
    j->net = net;
    if (!(j->udp = malloc(sizeof *j->udp)) || !(j->timer = malloc(sizeof *j->timer))) {
      free(j->udp);
      j->udp = NULL;
      return HALO_ENOMEM;
    }
    uv_udp_init(net->node->loop, j->udp);
    j->udp->data = j;
    struct sockaddr_in any;
    uv_ip4_addr("0.0.0.0", 0, &any);
    uv_udp_bind(j->udp, (const struct sockaddr *)&any, 0);
    uv_udp_recv_start(j->udp, udp_alloc, on_udp_answer);
    uv_unref((uv_handle_t *)j->udp);
    uv_timer_init(net->node->loop, j->timer);
    j->timer->data = j;
    uv_unref((uv_handle_t *)j->timer);
  }
  if (j->njoins == j->capjoins) {
    uint32_t cap = j->capjoins ? j->capjoins * 2 : 4;
    halo_join_t *v = realloc(j->joins, cap * sizeof *v);
    if (!v) return HALO_ENOMEM;
    j->joins = v;
    j->capjoins = cap;
  }
  j->joins[j->njoins++] = x;
  uv_timer_start(j->timer, on_join_tick, 0, 1000);
  return 0;
}

void halo_joiner_stop(halo_joiner_t *j) {
  if (!j->net) return;
  uv_close((uv_handle_t *)j->udp, free_handle);
  uv_close((uv_handle_t *)j->timer, free_handle);
  free(j->joins);
  memset(j, 0, sizeof *j);
}

static void become_orphan(halo_registrar_t *r) {
  r->registered = 0;
  if (r->retry && !uv_is_active((uv_handle_t *)r->retry)) uv_timer_start(r->retry, on_retry, 1000, 1000);
}

/* Serve if the port is free, else register with whoever serves. */
static void elect(halo_registrar_t *r) {
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", r->port, &addr);
  uv_tcp_t *t = malloc(sizeof *t);
  if (!t) return;
  uv_tcp_init(r->net->node->loop, t);
  t->data = r;
  int rc = uv_tcp_bind(t, (const struct sockaddr *)&addr, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)t, 128, on_connection);
  if (!rc) {
    r->listener = t;
    r->serving = 1;
    r->elections++;
    r->error[0] = 0;
    /* the nodes known so far must register again: those that do not, left */
    for (uint32_t i = 0; i < r->nnodes; i++) r->nodes[i].stale = 1;
    r->stale_until = halo_clock_ns() + 1500000000u; /* the others retry every second */
    halo_log_proc(r->net->node, NULL, HALO_LOG_INFO, "registrar: serving on 127.0.0.1:%d", r->port);
    serve_udp(r);
    return;
  }
  uv_close((uv_handle_t *)t, free_handle);
  if (r->conns) return; /* registering already */
  regconn_t *c = conn_new(r);
  if (!c) return;
  if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, on_connected)) conn_close(c);
}

static void on_retry(uv_timer_t *t) {
  halo_registrar_t *r = t->data;
  if (r->serving && r->stale_until && halo_clock_ns() >= r->stale_until) {
    r->stale_until = 0;
    for (uint32_t i = 0; i < r->nnodes;) {
      if (!r->nodes[i].stale) {
        i++;
        continue;
      }
      char name[256];
      snprintf(name, sizeof name, "%s", r->nodes[i].name);
      remove_node(r, name);
      for (regconn_t *o = r->conns; o; o = o->next)
        if (o->name[0]) send_line(o, "LEFT %s", name);
    }
  }
  if (r->serving) { /* a connection that does not register within a second goes */
    uint64_t now = halo_clock_ns();
    for (regconn_t *c = r->conns, *next; c; c = next) {
      next = c->next;
      if (!c->name[0] && now - c->since > 1000000000u) conn_close(c);
    }
    return;
  }
  if (r->conns) {
    if (r->registered) uv_timer_stop(t);
    return;
  }
  elect(r);
}

int halo_registrar_start(halo_registrar_t *r, halo_net_t *net, int port) {
  memset(r, 0, sizeof *r);
  r->net = net;
  r->port = port ? port : HALO_REGISTRAR_PORT;
  if (!net->acceptor) return HALO_ENOTALLOWED;
  if (!(r->retry = malloc(sizeof *r->retry))) return HALO_ENOMEM;
  uv_timer_init(net->node->loop, r->retry);
  r->retry->data = r;
  uv_unref((uv_handle_t *)r->retry);
  elect(r);
  uv_timer_start(r->retry, on_retry, 1000, 1000); /* elections while not serving, sweeps while serving */
  return 0;
}

void halo_registrar_stop(halo_registrar_t *r) {
  if (!r->net) return;
  r->closing = 1;
  while (r->conns) conn_close(r->conns);
  if (r->listener) uv_close((uv_handle_t *)r->listener, free_handle);
  r->listener = NULL;
  if (r->udp) uv_close((uv_handle_t *)r->udp, free_handle);
  r->udp = NULL;
  if (r->retry) uv_close((uv_handle_t *)r->retry, free_handle);
  r->retry = NULL;
  free(r->nodes);
  r->nodes = NULL;
  r->nnodes = r->capnodes = 0;
  r->net = NULL;
}
