/*
 * The HTTP client against a scripted server running on the same libuv loop
 * (loopback, ephemeral port). The server parses requests with llhttp, counts
 * connections and requests, and answers by path: each path is one behaviour
 * (a plain body, chunks over time, silence, a close mid-response...).
 */
#include "check.h"

#include "errors.h"
#include "http.h"

#include <llhttp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

/* -- The scripted server ------------------------------------------------------ */

typedef struct piece {
  char *data;
  size_t len;
} piece_t;

typedef struct sconn sconn_t;

typedef struct server {
  uv_tcp_t listener;
  int port;
  int accepted;       /* connections accepted */
  int peer_closed;    /* connections the client closed (EOF or reset seen) */
  int requests;       /* complete requests parsed */
  int sent;           /* pieces sent by timed plans */
  sconn_t *conns;
  /* the last request */
  char method[16], url[256], host[128], ctype[128], clen[32], xecho[128];
  char body[8192];
  size_t blen;
} server_t;

struct sconn {
  sconn_t *next;
  server_t *srv;
  uv_tcp_t tcp;
  uv_timer_t timer;
  int handles, closing, nreq;
  llhttp_t parser;
  char field[64], value[256];
  size_t flen, vlen;
  /* a timed plan: pieces written one per tick, then maybe a close */
  piece_t *plan;
  int nplan, next_piece, close_after;
  uint64_t every_ms;
};

static uv_loop_t loop;
static server_t srv;

static void sconn_closed(uv_handle_t *hd) {
  sconn_t *sc = hd->data;
  if (--sc->handles > 0) return;
  for (sconn_t **p = &srv.conns; *p; p = &(*p)->next) {
    if (*p == sc) {
      *p = sc->next;
      break;
    }
  }
  for (int i = 0; i < sc->nplan; i++) free(sc->plan[i].data);
  free(sc->plan);
  free(sc);
}

static void sconn_close(sconn_t *sc) {
  if (sc->closing) return;
  sc->closing = 1;
  uv_close((uv_handle_t *)&sc->timer, sconn_closed);
  uv_close((uv_handle_t *)&sc->tcp, sconn_closed);
}

/* Closes with a reset instead of a FIN. */
static void sconn_reset(sconn_t *sc) {
  if (sc->closing) return;
  sc->closing = 1;
  uv_close((uv_handle_t *)&sc->timer, sconn_closed);
  uv_tcp_close_reset(&sc->tcp, sconn_closed);
}

static void on_reset_tick(uv_timer_t *t) { sconn_reset(t->data); }

typedef struct swrite {
  uv_write_t req;
  char data[];
} swrite_t;

static void on_swritten(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void swrite(sconn_t *sc, const char *data, size_t len) {
  if (sc->closing) return;
  swrite_t *w = malloc(sizeof *w + len);
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&sc->tcp, &b, 1, on_swritten) < 0) free(w);
}

static void swrites(sconn_t *sc, const char *s) { swrite(sc, s, strlen(s)); }

static void on_sshutdown(uv_shutdown_t *req, int status) {
  (void)status;
  sconn_close(req->handle->data);
  free(req);
}

/* Closes after what was written has gone out. */
static void sfin(sconn_t *sc) {
  if (sc->closing) return;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (uv_shutdown(req, (uv_stream_t *)&sc->tcp, on_sshutdown) < 0) {
    free(req);
    sconn_close(sc);
  }
}

static void respond(sconn_t *sc, int status, const char *headers, const char *body, size_t blen) {
  char head[512];
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status,
                   blen, headers ? headers : "");
  swrite(sc, head, (size_t)n);
  if (blen) swrite(sc, body, blen);
}

static void plan_add(sconn_t *sc, const char *data, size_t len) {
  sc->plan = realloc(sc->plan, (size_t)(sc->nplan + 1) * sizeof *sc->plan);
  sc->plan[sc->nplan].data = malloc(len);
  memcpy(sc->plan[sc->nplan].data, data, len);
  sc->plan[sc->nplan++].len = len;
}

static void on_plan_tick(uv_timer_t *t) {
  sconn_t *sc = t->data;
  if (sc->next_piece < sc->nplan) {
    piece_t *p = &sc->plan[sc->next_piece++];
    swrite(sc, p->data, p->len);
    srv.sent++;
  }
  if (sc->next_piece < sc->nplan) uv_timer_start(&sc->timer, on_plan_tick, sc->every_ms, 0);
  else if (sc->close_after) sfin(sc);
}

/* Sends s in pieces of `step` bytes, one every `every` ms, the first now. */
static void plan_dribble(sconn_t *sc, const char *s, size_t step, uint64_t every, int close_after) {
  size_t len = strlen(s);
  for (size_t i = 0; i < len; i += step) plan_add(sc, s + i, len - i < step ? len - i : step);
  sc->every_ms = every;
  sc->close_after = close_after;
  on_plan_tick(&sc->timer);
}

static const char stream_head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

/* Answers one request by its path. */
static void route(sconn_t *sc) {
  const char *u = srv.url;
  if (strcmp(u, "/hello") == 0) {
    respond(sc, 200, NULL, "hello world", 11);
  } else if (strcmp(u, "/echo") == 0) {
    char b[9000];
    int n = snprintf(b, sizeof b, "%s %s %.*s", srv.method, u, (int)srv.blen, srv.body);
    respond(sc, 200, "Content-Type: text/plain\r\n", b, (size_t)n);
  } else if (strcmp(u, "/status") == 0) {
    respond(sc, 404, NULL, "{\"error\":\"nope\"}", 16);
  } else if (strcmp(u, "/head") == 0) {
    swrites(sc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
  } else if (strcmp(u, "/chunked") == 0) {
    /* two bytes a tick, so chunk sizes, data and CRLFs straddle reads */
    plan_dribble(sc,
                 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n1;ext=1\r\n \r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n",
                 2, 1, 0);
  } else if (strcmp(u, "/stream") == 0) {
    plan_add(sc, stream_head, sizeof stream_head - 1);
    for (int i = 0; i < 5; i++) {
      char c[32];
      int n = snprintf(c, sizeof c, "8\r\nevent-%d\n\r\n", i);
      plan_add(sc, c, (size_t)n);
    }
    plan_add(sc, "0\r\n\r\n", 5);
    sc->every_ms = 40;
    on_plan_tick(&sc->timer);
  } else if (strcmp(u, "/stall") == 0) {
    swrites(sc, stream_head);
    swrites(sc, "8\r\nevent-0\n\r\n");
  } else if (strcmp(u, "/silent") == 0) {
  } else if (strcmp(u, "/slowbody") == 0) {
    plan_dribble(sc, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789", 4, 10, 0);
  } else if (strcmp(u, "/partial") == 0) {
    swrites(sc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    sfin(sc);
  } else if (strcmp(u, "/partial_chunked") == 0) {
    swrites(sc, stream_head);
    swrites(sc, "5\r\nhello\r\n");
    sfin(sc);
  } else if (strcmp(u, "/close") == 0) {
    respond(sc, 200, "Connection: close\r\n", "ok", 2);
    sfin(sc);
  } else if (strcmp(u, "/eof") == 0) {
    swrites(sc, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
    sfin(sc);
  } else if (strncmp(u, "/big/", 5) == 0) {
    size_t n = (size_t)atol(u + 5);
    char *b = malloc(n);
    memset(b, 'x', n);
    respond(sc, 200, NULL, b, n);
    free(b);
  } else if (strncmp(u, "/bigchunked/", 12) == 0) {
    size_t n = (size_t)atol(u + 12);
    swrites(sc, stream_head);
    char b[1000 + 16];
    for (size_t i = 0; i < n; i += 1000) {
      size_t k = n - i < 1000 ? n - i : 1000;
      int h = snprintf(b, sizeof b, "%zx\r\n", k);
      memset(b + h, 'y', k);
      memcpy(b + h + k, "\r\n", 2);
      swrite(sc, b, (size_t)h + k + 2);
    }
    swrites(sc, "0\r\n\r\n");
  } else if (strcmp(u, "/huge") == 0) {
    swrites(sc, "HTTP/1.1 200 OK\r\nContent-Length: 4194305\r\n\r\n");
  } else if (strcmp(u, "/garbage") == 0) {
    swrites(sc, "HTTP/1.1 2x0 OK\r\n\r\n");
  } else if (strcmp(u, "/extra") == 0) {
    swrites(sc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK");
  } else if (strcmp(u, "/continue") == 0) {
    swrites(sc, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  } else if (strcmp(u, "/headers") == 0) {
    /* split in two-byte pieces so names and values straddle reads */
    plan_dribble(sc,
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Multi: a\r\nServer: scripted  \r\n"
                 "x-multi:b\r\nX-Empty:\r\nX-Tab: \tv\t\r\n\r\nok",
                 2, 1, 0);
  } else if (strcmp(u, "/bighead") == 0) {
    char line[1024 + 16];
    swrites(sc, "HTTP/1.1 200 OK\r\n");
    memset(line, 'v', sizeof line);
    memcpy(line, "X-Big: ", 7);
    memcpy(line + 1024, "\r\n", 2);
    for (int i = 0; i < 70; i++) swrite(sc, line, 1026); /* 70 KB of headers */
  } else if (strcmp(u, "/stale") == 0) {
    /* on a reused connection: as if the server had closed it while idle */
    if (sc->nreq > 1) sconn_close(sc);
    else respond(sc, 200, NULL, "fresh", 5);
  } else if (strcmp(u, "/stale_reset") == 0) {
    if (sc->nreq > 1) sconn_reset(sc);
    else respond(sc, 200, NULL, "fresh", 5);
  } else if (strcmp(u, "/reset_mid") == 0) {
    swrites(sc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    uv_timer_start(&sc->timer, on_reset_tick, 20, 0);
  } else if (strcmp(u, "/stale_always") == 0) {
    sconn_close(sc);
  } else if (strcmp(u, "/idle_close") == 0) {
    respond(sc, 200, NULL, "bye soon", 8);
    plan_add(sc, "", 0);
    sc->every_ms = 10;
    sc->close_after = 1;
    uv_timer_start(&sc->timer, on_plan_tick, 10, 0);
  } else {
    respond(sc, 404, NULL, "", 0);
  }
}

static void copy_span(char *dst, size_t cap, const char *src, size_t len) {
  size_t have = strlen(dst);
  if (have + len >= cap) len = cap - 1 - have;
  memcpy(dst + have, src, len);
  dst[have + len] = '\0';
}

static int s_on_message_begin(llhttp_t *p) {
  (void)p;
  srv.method[0] = srv.url[0] = srv.host[0] = srv.ctype[0] = srv.clen[0] = srv.xecho[0] = '\0';
  srv.blen = 0;
  return 0;
}

static int s_on_url(llhttp_t *p, const char *at, size_t len) {
  (void)p;
  copy_span(srv.url, sizeof srv.url, at, len);
  return 0;
}

static int s_on_field(llhttp_t *p, const char *at, size_t len) {
  sconn_t *sc = p->data;
  sc->field[sc->flen] = '\0';
  copy_span(sc->field, sizeof sc->field, at, len);
  sc->flen = strlen(sc->field);
  return 0;
}

static int s_on_value(llhttp_t *p, const char *at, size_t len) {
  sconn_t *sc = p->data;
  sc->value[sc->vlen] = '\0';
  copy_span(sc->value, sizeof sc->value, at, len);
  sc->vlen = strlen(sc->value);
  return 0;
}

static int s_on_value_complete(llhttp_t *p) {
  sconn_t *sc = p->data;
  sc->field[sc->flen] = sc->value[sc->vlen] = '\0';
  char *dst = NULL;
  size_t cap = 0;
  if (strcasecmp(sc->field, "host") == 0) dst = srv.host, cap = sizeof srv.host;
  else if (strcasecmp(sc->field, "content-type") == 0) dst = srv.ctype, cap = sizeof srv.ctype;
  else if (strcasecmp(sc->field, "content-length") == 0) dst = srv.clen, cap = sizeof srv.clen;
  else if (strcasecmp(sc->field, "x-echo") == 0) dst = srv.xecho, cap = sizeof srv.xecho;
  if (dst) {
    dst[0] = '\0';
    copy_span(dst, cap, sc->value, sc->vlen);
  }
  sc->flen = sc->vlen = 0;
  return 0;
}

static int s_on_body(llhttp_t *p, const char *at, size_t len) {
  (void)p;
  if (srv.blen + len <= sizeof srv.body) memcpy(srv.body + srv.blen, at, len);
  srv.blen += len;
  return 0;
}

static int s_on_message_complete(llhttp_t *p) {
  sconn_t *sc = p->data;
  const char *m = llhttp_method_name((llhttp_method_t)p->method);
  snprintf(srv.method, sizeof srv.method, "%s", m);
  srv.requests++;
  sc->nreq++;
  route(sc);
  return sc->closing ? HPE_PAUSED : 0;
}

static const llhttp_settings_t s_settings = {
    .on_message_begin = s_on_message_begin,
    .on_url = s_on_url,
    .on_header_field = s_on_field,
    .on_header_value = s_on_value,
    .on_header_value_complete = s_on_value_complete,
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

static void s_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  *buf = uv_buf_init(malloc(size), (unsigned)size);
}

static void s_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  sconn_t *sc = s->data;
  if (nread < 0) {
    srv.peer_closed++;
    sconn_close(sc);
  } else if (nread > 0 && !sc->closing) {
    llhttp_errno_t err = llhttp_execute(&sc->parser, buf->base, (size_t)nread);
    if (err != HPE_OK && err != HPE_PAUSED) {
      fprintf(stderr, "server: bad request: %s\n", llhttp_errno_name(err));
      sconn_close(sc);
    }
  }
  free(buf->base);
}

static void s_on_connection(uv_stream_t *l, int status) {
  (void)l;
  if (status < 0) return;
  sconn_t *sc = calloc(1, sizeof *sc);
  sc->srv = &srv;
  uv_tcp_init(&loop, &sc->tcp);
  uv_timer_init(&loop, &sc->timer);
  sc->tcp.data = sc->timer.data = sc;
  sc->handles = 2;
  sc->next = srv.conns;
  srv.conns = sc;
  llhttp_init(&sc->parser, HTTP_REQUEST, &s_settings);
  sc->parser.data = sc;
  if (uv_accept((uv_stream_t *)&srv.listener, (uv_stream_t *)&sc->tcp) < 0) {
    sconn_close(sc);
    return;
  }
  srv.accepted++;
  uv_tcp_nodelay(&sc->tcp, 1);
  uv_read_start((uv_stream_t *)&sc->tcp, s_alloc, s_on_read);
}

static void server_start(void) {
  memset(&srv, 0, sizeof srv);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(&loop, &srv.listener);
  CHECK_EQ(uv_tcp_bind(&srv.listener, (struct sockaddr *)&a, 0), 0);
  CHECK_EQ(uv_listen((uv_stream_t *)&srv.listener, 64, s_on_connection), 0);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&ss, &len);
  srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void server_stop(void) {
  uv_close((uv_handle_t *)&srv.listener, NULL);
  for (sconn_t *sc = srv.conns; sc; sc = sc->next) sconn_close(sc);
}

/* -- The client side ---------------------------------------------------------- */

typedef struct result result_t;
typedef void (*hook_fn)(result_t *res, halo_http_req_t *r, int event);

struct result {
  int calls, datas, dones, errors, finals;
  int status, data_status;
  int inside;            /* > 1: a callback ran inside another for this request */
  int max_inside;
  char err[128];
  char body[4096];       /* DATA pieces or the DONE body, truncated */
  size_t total;          /* bytes delivered */
  int sent_at[16];       /* srv.sent at each DATA */
  uint64_t t0, t1;       /* uv_now() at the start and at the terminal event */
  halo_http_req_t *req;
  hook_fn hook;
  char hdr[1024];        /* the response headers at DONE, NULs as '|' */
};

static halo_http_t *g_h;        /* the client under test, for hooks */
static result_t *g_other;       /* another request, for hooks */

static void on_event(halo_http_req_t *r, void *ud, int event, int status, const char *data, size_t len) {
  result_t *res = ud;
  res->calls++;
  res->inside++;
  if (res->inside > res->max_inside) res->max_inside = res->inside;
  if (event == HALO_HTTP_DATA) {
    if (res->datas < 16) res->sent_at[res->datas] = srv.sent;
    res->datas++;
    res->data_status = status;
    copy_span(res->body, sizeof res->body, data, len);
    res->total += len;
  } else {
    res->finals++;
    res->status = status;
    res->t1 = uv_now(&loop);
    if (event == HALO_HTTP_DONE) {
      res->dones++;
      size_t hlen;
      const char *h = halo_http_req_headers(r, &hlen);
      CHECK(h != NULL || hlen == 0);
      if (hlen >= sizeof res->hdr) hlen = sizeof res->hdr - 1;
      for (size_t i = 0; i < hlen; i++) res->hdr[i] = h[i] ? h[i] : '|';
      res->hdr[hlen] = '\0';
      if (data) {
        CHECK_EQ(data[len], '\0');
        copy_span(res->body, sizeof res->body, data, len);
        res->total += len;
      }
    } else {
      res->errors++;
      CHECK(data != NULL && len == strlen(data));
      snprintf(res->err, sizeof res->err, "%s", data ? data : "");
    }
  }
  if (res->hook) res->hook(res, r, event);
  res->inside--;
}

static int start(result_t *res, const char *method, const char *path, const char *body,
                 uint32_t timeout_ms, int stream) {
  res->t0 = uv_now(&loop);
  return halo_http_request(g_h, method, path, body ? "application/json" : NULL, NULL, 0, body,
                           body ? strlen(body) : 0, timeout_ms, stream, on_event, res, &res->req);
}

static void on_guard(uv_timer_t *t) { (void)t; }

/* Runs the loop until *flag reaches want or max_ms pass. */
static void run_until(int *flag, int want, uint64_t max_ms) {
  uv_timer_t guard;
  uv_timer_init(&loop, &guard);
  uv_timer_start(&guard, on_guard, 5, 5);
  uv_update_time(&loop);
  uint64_t end = uv_now(&loop) + max_ms;
  while (*flag < want && uv_now(&loop) < end) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
}

static void run_for(uint64_t ms) {
  int never = 0;
  run_until(&never, 1, ms);
}

static void setup(void) {
  CHECK_EQ(uv_loop_init(&loop), 0);
  server_start();
  g_h = halo_http_new(&loop, "127.0.0.1", srv.port);
  CHECK(g_h != NULL);
  g_other = NULL;
}

static void print_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  fprintf(stderr, "  open handle: %s%s\n", uv_handle_type_name(h->type), uv_is_closing(h) ? " (closing)" : "");
}

/* Deletes the client (unless a test did), stops the server, and checks that
 * every handle closes. */
static void teardown(void) {
  halo_http_delete(g_h);
  g_h = NULL;
  server_stop();
  uv_update_time(&loop);
  uint64_t end = uv_now(&loop) + 2000;
  while (uv_run(&loop, UV_RUN_NOWAIT) && uv_now(&loop) < end) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    uv_update_time(&loop);
  }
  int rc = uv_loop_close(&loop);
  CHECK_EQ(rc, 0);
  if (rc) uv_walk(&loop, print_handle, NULL);
}

/* -- Tests -------------------------------------------------------------------- */

static void test_get_post(void) {
  setup();
  result_t a = {0}, b = {0}, c = {0};
  CHECK_EQ(start(&a, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.calls, 1);
  CHECK_EQ(a.dones, 1);
  CHECK_EQ(a.status, 200);
  CHECK_STR_EQ(a.body, "hello world");
  CHECK_EQ(a.total, 11);
  char host[64];
  snprintf(host, sizeof host, "127.0.0.1:%d", srv.port);
  CHECK_STR_EQ(srv.host, host);
  CHECK_STR_EQ(srv.method, "GET");
  CHECK_STR_EQ(srv.clen, ""); /* a GET without a body says nothing of length */

  const char *json = "{\"key\":\"Zm9v\",\"value\":\"YmFy\"}";
  CHECK_EQ(start(&b, "POST", "/echo", json, 1000, 0), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(b.dones, 1);
  CHECK_EQ(b.status, 200);
  CHECK_STR_EQ(b.body, "POST /echo {\"key\":\"Zm9v\",\"value\":\"YmFy\"}");
  CHECK_STR_EQ(srv.ctype, "application/json");
  char clen[32];
  snprintf(clen, sizeof clen, "%zu", strlen(json));
  CHECK_STR_EQ(srv.clen, clen);

  /* a POST without a body still says Content-Length: 0 */
  CHECK_EQ(start(&c, "POST", "/echo", NULL, 1000, 0), 0);
  run_until(&c.finals, 1, 2000);
  CHECK_STR_EQ(c.body, "POST /echo ");
  CHECK_STR_EQ(srv.clen, "0");
  CHECK_STR_EQ(srv.ctype, "");

  /* a non-2xx status is a response like any other */
  result_t d = {0};
  CHECK_EQ(start(&d, "POST", "/status", "{}", 1000, 0), 0);
  run_until(&d.finals, 1, 2000);
  CHECK_EQ(d.dones, 1);
  CHECK_EQ(d.status, 404);
  CHECK_STR_EQ(d.body, "{\"error\":\"nope\"}");
  CHECK_EQ(srv.accepted, 1);
  teardown();
}

static void test_bad_args(void) {
  setup();
  result_t a = {0};
  CHECK_EQ(halo_http_request(g_h, "GET", "/x y", NULL, NULL, 0, NULL, 0, 0, 0, on_event, &a, NULL), UV_EINVAL);
  CHECK_EQ(halo_http_request(g_h, "GET", "/x\r\nEvil: 1", NULL, NULL, 0, NULL, 0, 0, 0, on_event, &a, NULL), UV_EINVAL);
  CHECK_EQ(halo_http_request(g_h, "G T", "/", NULL, NULL, 0, NULL, 0, 0, 0, on_event, &a, NULL), UV_EINVAL);
  CHECK_EQ(halo_http_request(g_h, "POST", "/", "a\nb", NULL, 0, "x", 1, 0, 0, on_event, &a, NULL), UV_EINVAL);
  CHECK_EQ(halo_http_request(g_h, "POST", "/", NULL, NULL, 0, NULL, 3, 0, 0, on_event, &a, NULL), UV_EINVAL);
  CHECK_EQ(halo_http_request(g_h, "GET", "/", NULL, NULL, 0, NULL, 0, 0, 0, NULL, &a, NULL), UV_EINVAL);
  CHECK(halo_http_new(&loop, "", 80) == NULL);
  CHECK(halo_http_new(&loop, "127.0.0.1", 0) == NULL);
  run_for(10);
  CHECK_EQ(a.calls, 0);
  CHECK_EQ(srv.accepted, 0);
  teardown();
}

static void test_headers(void) {
  setup();
  result_t a = {0}, b = {0}, c = {0}, d = {0};
  CHECK_EQ(start(&a, "GET", "/headers", NULL, 2000, 0), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.dones, 1);
  CHECK_STR_EQ(a.body, "ok");
  /* lower-cased names, values trimmed, repeats kept in order, empty values kept */
  CHECK_STR_EQ(a.hdr, "content-length|2|x-multi|a|server|scripted|x-multi|b|x-empty||x-tab|v|");

  /* request headers go out; a Host of the caller's replaces the client's */
  halo_http_header_t hd[] = {{"X-Echo", "hi there\tyou"}, {"Host", "example.org"}};
  CHECK_EQ(halo_http_request(g_h, "GET", "/hello", NULL, hd, 2, NULL, 0, 1000, 0, on_event, &b, NULL), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(b.dones, 1);
  CHECK_STR_EQ(srv.xecho, "hi there\tyou");
  CHECK_STR_EQ(srv.host, "example.org");
  CHECK_STR_EQ(b.hdr, "content-length|11|");

  /* header injection and framing headers are refused before anything is sent */
  int before = srv.requests;
  halo_http_header_t bad[][1] = {{{"X-A", "1\r\nEvil: 2"}}, {{"X-A", "1\nb"}}, {{"X A", "1"}},
                                 {{"X-A:", "1"}},          {{"", "1"}},          {{"content-length", "5"}},
                                 {{"Transfer-Encoding", "chunked"}}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(halo_http_header_check(bad[i][0].name, bad[i][0].value) != NULL);
    CHECK_EQ(halo_http_request(g_h, "GET", "/hello", NULL, bad[i], 1, NULL, 0, 1000, 0, on_event, &c, NULL),
             UV_EINVAL);
  }
  CHECK(halo_http_header_check("X-Ok", "") == NULL);
  run_for(10);
  CHECK_EQ(c.calls, 0);
  CHECK_EQ(srv.requests, before);

  /* headers past HALO_HTTP_MAX_HEAD end the request */
  CHECK_EQ(start(&d, "GET", "/bighead", NULL, 2000, 0), 0);
  run_until(&d.finals, 1, 2000);
  CHECK_EQ(d.errors, 1);
  CHECK_STR_EQ(d.err, "response too large");

  halo_http_stats_t st;
  halo_http_stats(g_h, &st);
  CHECK_EQ(st.connects, 1); /* every request on the first connection, closed by the failure */
  CHECK_EQ(st.reuses, 2);
  CHECK_EQ(st.idle, 0);
  CHECK_EQ(st.active, 0);
  teardown();
}

static void test_chunked(void) {
  setup();
  result_t a = {0};
  CHECK_EQ(start(&a, "GET", "/chunked", NULL, 2000, 0), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.dones, 1);
  CHECK_EQ(a.status, 200);
  CHECK_STR_EQ(a.body, "hello 0123456789abcdef");
  CHECK_STR_EQ(a.hdr, "transfer-encoding|chunked|"); /* the trailer is not a header */
  /* the connection is reusable after the trailer */
  result_t b = {0};
  CHECK_EQ(start(&b, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_STR_EQ(b.body, "hello world");
  CHECK_EQ(srv.accepted, 1);
  teardown();
}

/* Starts g_other from the callback. */
static void again_hook(result_t *res, halo_http_req_t *r, int event) {
  (void)res;
  (void)r;
  if (event == HALO_HTTP_DONE && g_other) {
    CHECK_EQ(start(g_other, "GET", "/hello", NULL, 1000, 0), 0);
    g_other = NULL;
  }
}

static void test_keepalive(void) {
  setup();
  /* sequential: the second from inside the first's callback, the third later */
  result_t a = {0}, b = {0}, c = {0};
  a.hook = again_hook;
  g_other = &b;
  CHECK_EQ(start(&a, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(a.dones, 1);
  CHECK_EQ(b.dones, 1);
  run_for(20);
  CHECK_EQ(start(&c, "POST", "/echo", "{}", 1000, 0), 0);
  run_until(&c.finals, 1, 2000);
  CHECK_EQ(c.dones, 1);
  CHECK_EQ(srv.requests, 3);
  CHECK_EQ(srv.accepted, 1);

  /* parallel requests take connections of their own; they stay for reuse */
  result_t p[3] = {{0}};
  int finals = 0;
  for (int i = 0; i < 3; i++) CHECK_EQ(start(&p[i], "GET", "/hello", NULL, 1000, 0), 0);
  for (int i = 0; i < 3; i++) {
    run_until(&p[i].finals, 1, 2000);
    finals += p[i].dones;
  }
  CHECK_EQ(finals, 3);
  CHECK_EQ(srv.accepted, 3);
  result_t q[3] = {{0}};
  for (int i = 0; i < 3; i++) CHECK_EQ(start(&q[i], "GET", "/hello", NULL, 1000, 0), 0);
  for (int i = 0; i < 3; i++) run_until(&q[i].finals, 1, 2000);
  for (int i = 0; i < 3; i++) CHECK_STR_EQ(q[i].body, "hello world");
  CHECK_EQ(srv.accepted, 3);
  CHECK_EQ(srv.peer_closed, 0);
  teardown();
}

static void test_idle_limits(void) {
  setup();
  /* at most one idle connection kept: of three, two close */
  halo_http_set_idle(g_h, 1, 10000);
  result_t p[3] = {{0}};
  for (int i = 0; i < 3; i++) CHECK_EQ(start(&p[i], "GET", "/hello", NULL, 1000, 0), 0);
  for (int i = 0; i < 3; i++) run_until(&p[i].finals, 1, 2000);
  run_until(&srv.peer_closed, 2, 1000);
  CHECK_EQ(srv.accepted, 3);
  CHECK_EQ(srv.peer_closed, 2);

  /* an idle connection closes after its time */
  halo_http_set_idle(g_h, 4, 30);
  result_t a = {0};
  CHECK_EQ(start(&a, "GET", "/hello", NULL, 1000, 0), 0); /* reuses the kept one */
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(srv.accepted, 3);
  run_until(&srv.peer_closed, 3, 1000);
  CHECK_EQ(srv.peer_closed, 3);

  /* a server closing an idle connection: the next request opens another */
  result_t b = {0}, c = {0};
  CHECK_EQ(start(&b, "GET", "/idle_close", NULL, 1000, 0), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_STR_EQ(b.body, "bye soon");
  run_for(50);
  CHECK_EQ(start(&c, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&c.finals, 1, 2000);
  CHECK_EQ(c.dones, 1);
  CHECK_EQ(srv.accepted, 5);

  /* no idle connections at all */
  halo_http_set_idle(g_h, 0, 1000);
  result_t d = {0};
  CHECK_EQ(start(&d, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&d.finals, 1, 2000);
  run_until(&srv.peer_closed, 5, 1000);
  CHECK_EQ(srv.peer_closed, 5);
  teardown();
}

static void test_connection_close(void) {
  setup();
  result_t a = {0}, b = {0}, c = {0}, d = {0};
  CHECK_EQ(start(&a, "GET", "/close", NULL, 1000, 0), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.dones, 1);
  CHECK_STR_EQ(a.body, "ok");
  CHECK_EQ(start(&b, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(b.dones, 1);
  CHECK_EQ(srv.accepted, 2);

  /* a body that ends with the connection */
  CHECK_EQ(start(&c, "GET", "/eof", NULL, 1000, 0), 0);
  run_until(&c.finals, 1, 2000);
  CHECK_EQ(c.dones, 1);
  CHECK_EQ(c.status, 200);
  CHECK_STR_EQ(c.body, "until the end");

  /* bytes after a response: delivered, but the connection is not reused */
  CHECK_EQ(start(&d, "GET", "/extra", NULL, 1000, 0), 0);
  run_until(&d.finals, 1, 2000);
  CHECK_STR_EQ(d.body, "ok");
  int before = srv.accepted;
  result_t e = {0};
  CHECK_EQ(start(&e, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&e.finals, 1, 2000);
  CHECK_EQ(e.dones, 1);
  CHECK_EQ(srv.accepted, before + 1);
  teardown();
}

static void test_head_and_interim(void) {
  setup();
  result_t a = {0}, b = {0}, c = {0};
  CHECK_EQ(halo_http_request(g_h, "HEAD", "/head", NULL, NULL, 0, NULL, 0, 1000, 0, on_event, &a, NULL), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.dones, 1);
  CHECK_EQ(a.status, 200);
  CHECK_EQ(a.total, 0);
  CHECK_EQ(start(&b, "GET", "/continue", NULL, 1000, 0), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(b.dones, 1);
  CHECK_EQ(b.status, 200);
  CHECK_STR_EQ(b.body, "ok");
  CHECK_EQ(start(&c, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&c.finals, 1, 2000);
  CHECK_STR_EQ(c.body, "hello world");
  CHECK_EQ(srv.accepted, 1);
  teardown();
}

static void test_stream(void) {
  setup();
  /* chunks every 40 ms, a 150 ms silence limit: 240 ms in all without a timeout */
  result_t a = {0};
  CHECK_EQ(start(&a, "POST", "/stream", "{\"create_request\":{}}", 150, 1), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.errors, 0);
  CHECK_EQ(a.dones, 1);
  CHECK_EQ(a.status, 200);
  CHECK_EQ(a.data_status, 200);
  CHECK_EQ(a.datas, 5);
  CHECK_STR_EQ(a.body, "event-0\nevent-1\nevent-2\nevent-3\nevent-4\n");
  /* as they came: event i was piece i + 2 of 7 (the head is the first); on a
   * loaded machine the next piece may have gone out before the client read */
  for (int i = 0; i < 5 && i < a.datas; i++) CHECK(a.sent_at[i] >= i + 2 && a.sent_at[i] <= i + 3);
  CHECK(a.t1 - a.t0 >= 200);

  /* silence after the first event */
  result_t b = {0};
  CHECK_EQ(start(&b, "POST", "/stall", "{}", 60, 1), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(b.datas, 1);
  CHECK_EQ(b.errors, 1);
  CHECK_STR_EQ(b.err, "timed out");
  CHECK_EQ(b.status, HALO_ETIMEDOUT);
  CHECK(b.t1 - b.t0 >= 55);

  /* no limit at all: still there after a while */
  result_t c = {0};
  CHECK_EQ(start(&c, "POST", "/stall", "{}", 0, 1), 0);
  run_for(150);
  CHECK_EQ(c.datas, 1);
  CHECK_EQ(c.finals, 0);
  halo_http_cancel(c.req);
  CHECK_EQ(c.errors, 1);
  CHECK_STR_EQ(c.err, "cancelled");
  teardown();
}

static void test_timeout(void) {
  setup();
  result_t a = {0}, b = {0};
  CHECK_EQ(start(&a, "GET", "/silent", NULL, 50, 0), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.calls, 1);
  CHECK_EQ(a.errors, 1);
  CHECK_STR_EQ(a.err, "timed out");
  CHECK_EQ(a.status, HALO_ETIMEDOUT);
  CHECK(a.t1 - a.t0 >= 45 && a.t1 - a.t0 < 1000);
  /* the whole request counts, even while the body trickles in */
  CHECK_EQ(start(&b, "GET", "/slowbody", NULL, 25, 0), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(b.errors, 1);
  CHECK_STR_EQ(b.err, "timed out");
  run_until(&srv.peer_closed, 2, 1000);
  CHECK_EQ(srv.peer_closed, 2);
  teardown();
}

static void test_refused(void) {
  CHECK_EQ(uv_loop_init(&loop), 0);
  uv_tcp_t t;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(&loop, &t);
  uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
  int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  server_start();
  g_h = halo_http_new(&loop, "127.0.0.1", port);
  result_t r = {0};
  CHECK_EQ(start(&r, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&r.finals, 1, 2000);
  CHECK_EQ(r.calls, 1);
  CHECK_EQ(r.errors, 1);
  CHECK_STR_EQ(r.err, "connection refused");
  CHECK_EQ(r.status, UV_ECONNREFUSED);
  teardown();
}

static void test_resolve(void) {
  /* a name; "localhost" may resolve to ::1 first, where nobody listens */
  setup();
  halo_http_delete(g_h);
  g_h = halo_http_new(&loop, "localhost", srv.port);
  result_t a = {0};
  CHECK_EQ(start(&a, "GET", "/hello", NULL, 2000, 0), 0);
  run_until(&a.finals, 1, 3000);
  CHECK_EQ(a.dones, 1);
  CHECK_STR_EQ(a.body, "hello world");
  char host[64];
  snprintf(host, sizeof host, "localhost:%d", srv.port);
  CHECK_STR_EQ(srv.host, host);
  /* cancelled while resolving */
  result_t b = {0};
  halo_http_set_idle(g_h, 0, 1000);
  run_for(10);
  CHECK_EQ(start(&b, "GET", "/hello", NULL, 2000, 0), 0);
  halo_http_cancel(b.req);
  CHECK_EQ(b.calls, 1);
  CHECK_STR_EQ(b.err, "cancelled");
  run_for(20);
  CHECK_EQ(b.calls, 1);
  /* deleted while resolving */
  result_t c = {0};
  CHECK_EQ(start(&c, "GET", "/hello", NULL, 2000, 0), 0);
  halo_http_delete(g_h);
  g_h = NULL;
  CHECK_EQ(c.calls, 1);
  CHECK_STR_EQ(c.err, "cancelled");
  teardown();
}

static void test_mid_response(void) {
  setup();
  result_t a = {0}, b = {0}, c = {0}, d = {0};
  CHECK_EQ(start(&a, "GET", "/partial", NULL, 1000, 0), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.errors, 1);
  CHECK_STR_EQ(a.err, "closed by the server mid-response");
  CHECK_EQ(a.status, UV_EOF);
  CHECK_EQ(start(&b, "GET", "/partial_chunked", NULL, 1000, 1), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(b.datas, 1);
  CHECK_EQ(b.errors, 1);
  CHECK_STR_EQ(b.err, "closed by the server mid-response");
  /* a fresh connection closed before any response: no second try */
  CHECK_EQ(start(&c, "GET", "/stale_always", NULL, 1000, 0), 0);
  run_until(&c.finals, 1, 2000);
  CHECK_EQ(c.errors, 1);
  CHECK_STR_EQ(c.err, "closed by the server before responding");
  CHECK_EQ(srv.requests, 3);
  CHECK_EQ(start(&d, "GET", "/garbage", NULL, 1000, 0), 0);
  run_until(&d.finals, 1, 2000);
  CHECK_EQ(d.errors, 1);
  CHECK_STR_EQ(d.err, "malformed response");
  CHECK_EQ(d.status, HALO_EMALFORMED);
  result_t e = {0};
  CHECK_EQ(start(&e, "GET", "/reset_mid", NULL, 1000, 0), 0);
  run_until(&e.finals, 1, 2000);
  CHECK_EQ(e.errors, 1);
  /* the kernel reports the reset, or (when something consumed the error first) an end */
  CHECK(e.status == UV_ECONNRESET || e.status == UV_EOF);
  if (e.status == UV_ECONNRESET) CHECK_STR_EQ(e.err, "connection reset by peer");
  teardown();
}

static void test_stale_retry(void) {
  setup();
  result_t a = {0}, b = {0};
  CHECK_EQ(start(&a, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(srv.accepted, 1);
  /* the kept connection is closed by the server on the next request: sent again */
  CHECK_EQ(start(&b, "POST", "/stale", "{\"lease\":1}", 1000, 0), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(b.calls, 1);
  CHECK_EQ(b.dones, 1);
  CHECK_STR_EQ(b.body, "fresh");
  CHECK_STR_EQ(srv.body, "{\"lease\":1}");
  CHECK_EQ(srv.accepted, 2);
  CHECK_EQ(srv.requests, 3);
  /* once only */
  result_t c = {0};
  CHECK_EQ(start(&c, "GET", "/stale_always", NULL, 1000, 0), 0);
  run_until(&c.finals, 1, 2000);
  CHECK_EQ(c.calls, 1);
  CHECK_STR_EQ(c.err, "closed by the server before responding");
  CHECK_EQ(srv.accepted, 3);
  CHECK_EQ(srv.requests, 5);
  /* reset rather than closed */
  result_t d = {0}, e = {0};
  CHECK_EQ(start(&d, "GET", "/hello", NULL, 1000, 0), 0);
  run_until(&d.finals, 1, 2000);
  CHECK_EQ(start(&e, "GET", "/stale_reset", NULL, 1000, 0), 0);
  run_until(&e.finals, 1, 2000);
  CHECK_EQ(e.calls, 1);
  CHECK_STR_EQ(e.body, "fresh");
  CHECK_EQ(srv.accepted, 5);
  teardown();
}

static void test_too_large(void) {
  setup();
  result_t a = {0}, b = {0}, c = {0}, d = {0}, e = {0};
  /* the default limit, known from Content-Length before any body */
  CHECK_EQ(start(&a, "GET", "/huge", NULL, 1000, 0), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.errors, 1);
  CHECK_STR_EQ(a.err, "response too large");
  CHECK_EQ(a.status, HALO_ETOOLARGE);
  /* a megabyte is fine */
  CHECK_EQ(start(&b, "GET", "/big/1048576", NULL, 2000, 0), 0);
  run_until(&b.finals, 1, 2000);
  CHECK_EQ(b.dones, 1);
  CHECK_EQ(b.total, 1048576);
  CHECK_EQ(start(&c, "GET", "/bigchunked/300000", NULL, 2000, 0), 0);
  run_until(&c.finals, 1, 2000);
  CHECK_EQ(c.dones, 1);
  CHECK_EQ(c.total, 300000);
  /* a lower limit, with and without Content-Length */
  halo_http_set_max_body(g_h, 1000);
  CHECK_EQ(start(&d, "GET", "/big/1001", NULL, 1000, 0), 0);
  run_until(&d.finals, 1, 2000);
  CHECK_STR_EQ(d.err, "response too large");
  CHECK_EQ(start(&e, "GET", "/bigchunked/5000", NULL, 1000, 0), 0);
  run_until(&e.finals, 1, 2000);
  CHECK_STR_EQ(e.err, "response too large");
  /* streams have no limit */
  result_t f = {0}, g = {0};
  CHECK_EQ(start(&f, "GET", "/bigchunked/5000", NULL, 1000, 1), 0);
  run_until(&f.finals, 1, 2000);
  CHECK_EQ(f.dones, 1);
  CHECK_EQ(f.total, 5000);
  CHECK_EQ(start(&g, "GET", "/big/1000", NULL, 1000, 0), 0);
  run_until(&g.finals, 1, 2000);
  CHECK_EQ(g.dones, 1);
  CHECK_EQ(g.total, 1000);
  teardown();
}

/* Cancels its own request from each event: from the terminal one, nothing. */
static void cancel_self_hook(result_t *res, halo_http_req_t *r, int event) {
  (void)res;
  (void)event;
  halo_http_cancel(r);
}

/* Cancels g_other when done. */
static void cancel_other_hook(result_t *res, halo_http_req_t *r, int event) {
  (void)r;
  (void)res;
  if (event == HALO_HTTP_DONE && g_other) halo_http_cancel(g_other->req);
}

static void test_cancel(void) {
  setup();
  /* a request waiting for its response */
  result_t a = {0};
  CHECK_EQ(start(&a, "GET", "/silent", NULL, 0, 0), 0);
  run_until(&srv.requests, 1, 2000);
  halo_http_cancel(a.req);
  CHECK_EQ(a.calls, 1);
  CHECK_EQ(a.errors, 1);
  CHECK_STR_EQ(a.err, "cancelled");
  CHECK_EQ(a.status, UV_ECANCELED);
  run_until(&srv.peer_closed, 1, 1000);
  CHECK_EQ(srv.peer_closed, 1);
  CHECK_EQ(a.calls, 1);

  /* before it even connected */
  result_t b = {0};
  CHECK_EQ(start(&b, "GET", "/hello", NULL, 0, 0), 0);
  halo_http_cancel(b.req);
  CHECK_EQ(b.calls, 1);
  run_for(20);
  CHECK_EQ(b.calls, 1);

  /* from inside its own DATA callback, then again from the terminal one */
  result_t c = {0};
  c.hook = cancel_self_hook;
  CHECK_EQ(start(&c, "GET", "/stream", NULL, 0, 1), 0);
  run_until(&c.finals, 1, 2000);
  run_for(30);
  CHECK_EQ(c.datas, 1);
  CHECK_EQ(c.errors, 1);
  CHECK_EQ(c.calls, 2);
  CHECK_STR_EQ(c.err, "cancelled");

  /* one request's callback cancels another */
  result_t d = {0}, e = {0};
  d.hook = cancel_other_hook;
  g_other = &e;
  CHECK_EQ(start(&e, "GET", "/silent", NULL, 0, 0), 0);
  CHECK_EQ(start(&d, "GET", "/hello", NULL, 0, 0), 0);
  run_until(&e.finals, 1, 2000);
  CHECK_EQ(d.calls, 1);
  CHECK_EQ(d.dones, 1);
  CHECK_EQ(e.calls, 1);
  CHECK_STR_EQ(e.err, "cancelled");
  run_for(10);
  CHECK_EQ(e.calls, 1);
  teardown();
}

/* Deletes the client from any event but its own "cancelled". */
static void delete_hook(result_t *res, halo_http_req_t *r, int event) {
  (void)r;
  if (event != HALO_HTTP_ERROR || res->status != UV_ECANCELED) {
    halo_http_t *h = g_h;
    g_h = NULL;
    halo_http_delete(h);
    halo_http_delete(h); /* still valid during the callback; a second delete is nothing */
  }
}

static halo_http_t *g_dying;

/* In a callback fired by the delete: starting fails, deleting again and
 * cancelling are nothing. */
static void during_delete_hook(result_t *res, halo_http_req_t *r, int event) {
  (void)r;
  (void)event;
  result_t x = {0};
  CHECK_EQ(halo_http_request(g_dying, "GET", "/hello", NULL, NULL, 0, NULL, 0, 0, 0, on_event, &x, NULL), UV_EINVAL);
  halo_http_delete(g_dying);
  if (g_other && g_other != res) halo_http_cancel(g_other->req); /* already cancelled, or about to be */
}

static void test_delete_in_callback(void) {
  /* from a DONE callback, with another request waiting */
  setup();
  result_t a = {0}, b = {0};
  a.hook = delete_hook;
  CHECK_EQ(start(&b, "GET", "/silent", NULL, 0, 0), 0);
  CHECK_EQ(start(&a, "GET", "/hello", NULL, 0, 0), 0);
  run_until(&a.finals, 1, 2000);
  CHECK_EQ(a.calls, 1);
  CHECK_EQ(a.dones, 1);
  CHECK_EQ(b.calls, 1);
  CHECK_STR_EQ(b.err, "cancelled");
  CHECK(g_h == NULL);
  teardown();

  /* from a DATA callback */
  setup();
  result_t c = {0}, d = {0};
  c.hook = delete_hook;
  CHECK_EQ(start(&d, "GET", "/silent", NULL, 0, 0), 0);
  CHECK_EQ(start(&c, "GET", "/stream", NULL, 0, 1), 0);
  run_until(&c.finals, 1, 2000);
  CHECK_EQ(c.datas, 1);
  CHECK_EQ(c.errors, 1);
  CHECK_STR_EQ(c.err, "cancelled");
  CHECK_EQ(c.max_inside, 2); /* its "cancelled" came inside the DATA callback */
  CHECK_EQ(d.calls, 1);
  run_for(50);
  CHECK_EQ(c.calls, 2);
  teardown();

  /* from an ERROR callback (a timeout) */
  setup();
  result_t e = {0}, f = {0};
  e.hook = delete_hook;
  CHECK_EQ(start(&f, "GET", "/silent", NULL, 0, 0), 0);
  CHECK_EQ(start(&e, "GET", "/silent", NULL, 30, 0), 0);
  run_until(&e.finals, 1, 2000);
  CHECK_STR_EQ(e.err, "timed out");
  CHECK_EQ(f.calls, 1);
  CHECK_STR_EQ(f.err, "cancelled");
  teardown();

  /* callbacks fired by the delete itself start, delete and cancel */
  setup();
  result_t p[3] = {{0}};
  for (int i = 0; i < 3; i++) {
    p[i].hook = during_delete_hook;
    CHECK_EQ(start(&p[i], "GET", "/silent", NULL, 0, 0), 0);
  }
  g_other = &p[1];
  run_until(&srv.requests, 3, 2000);
  g_dying = g_h;
  halo_http_delete(g_h);
  g_h = NULL;
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(p[i].calls, 1);
    CHECK_STR_EQ(p[i].err, "cancelled");
  }
  teardown();
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN_TEST(test_get_post);
  RUN_TEST(test_bad_args);
  RUN_TEST(test_headers);
  RUN_TEST(test_chunked);
  RUN_TEST(test_keepalive);
  RUN_TEST(test_idle_limits);
  RUN_TEST(test_connection_close);
  RUN_TEST(test_head_and_interim);
  RUN_TEST(test_stream);
  RUN_TEST(test_timeout);
  RUN_TEST(test_refused);
  RUN_TEST(test_resolve);
  RUN_TEST(test_mid_response);
  RUN_TEST(test_stale_retry);
  RUN_TEST(test_too_large);
  RUN_TEST(test_cancel);
  RUN_TEST(test_delete_in_callback);
  return check_exit_code();
}
