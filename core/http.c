#include "http.h"
#include "errors.h"

#include <limits.h>
#include <llhttp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ADDRS 8
#define READ_BUF 16384

typedef struct conn conn_t;

/* The bytes of a request (head and body), shared by the request (which may
 * send them a second time) and the writes under way. */
typedef struct outbuf {
  int refs;
  size_t len;
  char data[];
} outbuf_t;

typedef struct wreq {
  uv_write_t req;
  outbuf_t *out;
} wreq_t;

struct halo_http_req {
  halo_http_req_t *next, *prev; /* h->reqs; once done, next links h->dead */
  halo_http_t *h;
  conn_t *conn;                 /* NULL while between connections */
  halo_http_cb cb;
  void *ud;
  outbuf_t *out;
  uint64_t deadline;            /* uv_now() of the end of a non-streaming request, 0 = none */
  uint32_t timeout_ms;
  unsigned stream : 1, head : 1, retried : 1, done : 1;
  int status;
  char *body;                   /* non-streaming: the body so far, room for a NUL */
  size_t blen, bcap;
  char *hdr;                    /* response headers: name\0value\0 pairs */
  size_t hlen, hcap;
};

struct conn {
  conn_t *next, *prev;          /* h->active or h->idle */
  halo_http_t *h;               /* NULL once closing: h may be gone */
  halo_http_req_t *req;
  uv_tcp_t tcp;
  uv_timer_t timer;             /* the request's timeout, or the idle time */
  uv_getaddrinfo_t gai;
  uv_connect_t connect;
  llhttp_t parser;
  int handles;                  /* open handles; c is freed when none is left and not resolving */
  unsigned resolving : 1, closing : 1, reused : 1, idle : 1, complete : 1, keep_alive : 1;
  unsigned in_head : 1;         /* parsing the headers, not the trailers */
  unsigned hstate : 2;          /* HS_*: where the header parsing is */
  size_t rx;                    /* bytes received for the current request */
  size_t head_bytes;            /* status line and headers of the current response */
  int naddrs, next_addr;
  struct sockaddr_storage addrs[MAX_ADDRS];
  char rbuf[READ_BUF];
};

struct halo_http {
  uv_loop_t *loop;
  char *host;                   /* as given, for uv_getaddrinfo */
  char *host_header;            /* "host:port", IPv6 literals in brackets */
  int port;
  int literal;                  /* host is an IP literal: addr is it */
  struct sockaddr_storage addr;
  conn_t *active, *idle;        /* connections with a request (or connecting), idle ones */
  unsigned nidle;
  uint64_t connects, reuses;
  halo_http_req_t *reqs;        /* unfinished requests */
  halo_http_req_t *dead;        /* finished, freed when the outermost call returns */
  size_t max_body;
  unsigned max_idle;
  uint32_t idle_ms;
  int depth;                    /* calls under way that may reach a callback */
  int deleted;
};

static const llhttp_settings_t settings;

static void on_timer(uv_timer_t *t);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static int req_start(halo_http_req_t *r, int fresh);

/* -- the client's lifetime ------------------------------------------------------
 * Everything that may run a callback happens between enter() and leave();
 * requests that finished meanwhile, and the client when deleted, are freed
 * only when the outermost of those returns, so no caller's frame is left
 * holding freed memory. A connection is freed in its close callbacks, on a
 * later turn of the loop. */

static void req_free(halo_http_req_t *r) {
  if (r->out && --r->out->refs == 0) free(r->out);
  free(r->body);
  free(r->hdr);
  free(r);
}

static void enter(halo_http_t *h) { h->depth++; }

static void leave(halo_http_t *h) {
  if (--h->depth > 0) return;
  while (h->dead) {
    halo_http_req_t *r = h->dead;
    h->dead = r->next;
    req_free(r);
  }
  if (h->deleted) {
    free(h->host);
    free(h->host_header);
    free(h);
  }
}

/* -- connections ----------------------------------------------------------------- */

static void list_add(conn_t **head, conn_t *c) {
  c->prev = NULL;
  c->next = *head;
  if (*head) (*head)->prev = c;
  *head = c;
}

static void list_del(conn_t **head, conn_t *c) {
  if (c->prev) c->prev->next = c->next;
  else *head = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

static void conn_maybe_free(conn_t *c) {
  if (c->handles == 0 && !c->resolving) free(c);
}

static void on_closed(uv_handle_t *hd) {
  conn_t *c = hd->data;
  c->handles--;
  conn_maybe_free(c);
}

/* Closes c; its request, if any, must have been detached. Memory stays valid
 * until the close callbacks, so callers up the stack may still look at c. */
static void conn_close(conn_t *c) {
  if (c->closing) return;
  halo_http_t *h = c->h;
  c->closing = 1;
  if (c->idle) {
    list_del(&h->idle, c);
    h->nidle--;
  } else {
    list_del(&h->active, c);
  }
  c->h = NULL;
  if (c->req) c->req->conn = NULL;
  c->req = NULL;
  if (c->resolving) uv_cancel((uv_req_t *)&c->gai);
  uv_close((uv_handle_t *)&c->timer, on_closed);
  if (c->handles == 2) uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* A new connection of h that will try addrs[0..n) (none: resolve the host). */
static int conn_new(halo_http_t *h, const struct sockaddr_storage *addrs, int n, conn_t **out) {
  conn_t *c = malloc(sizeof *c);
  if (!c) return UV_ENOMEM;
  memset(c, 0, offsetof(conn_t, rbuf));
  c->h = h;
  uv_timer_init(h->loop, &c->timer);
  c->timer.data = c;
  c->handles = 1;
  h->connects++;
  list_add(&h->active, c);
  int rc = uv_tcp_init(h->loop, &c->tcp);
  if (rc < 0) {
    conn_close(c);
    return rc;
  }
  c->tcp.data = c;
  c->handles = 2;
  llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
  c->parser.data = c;
  if (n > MAX_ADDRS) n = MAX_ADDRS;
  if (n > 0) memcpy(c->addrs, addrs, (size_t)n * sizeof *addrs);
  c->naddrs = n;
  *out = c;
  return 0;
}

/* Arms c's timer for its request. */
static void conn_arm(conn_t *c) {
  halo_http_req_t *r = c->req;
  if (r->stream && r->timeout_ms) {
    uv_timer_start(&c->timer, on_timer, r->timeout_ms, 0);
  } else if (!r->stream && r->deadline) {
    uint64_t now = uv_now(c->tcp.loop);
    uv_timer_start(&c->timer, on_timer, r->deadline > now ? r->deadline - now : 0, 0);
  } else {
    uv_timer_stop(&c->timer);
  }
}

static void attach(conn_t *c, halo_http_req_t *r) {
  c->req = r;
  r->conn = c;
  c->rx = 0;
  c->head_bytes = 0;
  c->complete = c->keep_alive = 0;
  r->status = 0;
  r->blen = 0;
  r->hlen = 0;
  llhttp_reset(&c->parser);
  conn_arm(c);
}

static void detach(conn_t *c) {
  if (c->req) c->req->conn = NULL;
  c->req = NULL;
  uv_timer_stop(&c->timer);
}

/* After a complete response: keeps c for the next request or closes it. */
static void conn_release(conn_t *c, int keep) {
  halo_http_t *h = c->h;
  detach(c);
  /* bytes of the request still unsent (the server answered early): the
   * connection is in no state for another request */
  int unsent = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0;
  if (!keep || unsent || h->deleted || h->nidle >= h->max_idle) {
    conn_close(c);
    return;
  }
  list_del(&h->active, c);
  list_add(&h->idle, c);
  h->nidle++;
  c->idle = 1;
  c->reused = 1;
  uv_timer_start(&c->timer, on_timer, h->idle_ms, 0);
  uv_unref((uv_handle_t *)&c->timer);
  uv_unref((uv_handle_t *)&c->tcp);
}

static conn_t *conn_take_idle(halo_http_t *h) {
  conn_t *c = h->idle;
  if (!c) return NULL;
  list_del(&h->idle, c);
  h->nidle--;
  list_add(&h->active, c);
  c->idle = 0;
  uv_timer_stop(&c->timer);
  uv_ref((uv_handle_t *)&c->timer);
  uv_ref((uv_handle_t *)&c->tcp);
  return c;
}

/* -- finishing requests ------------------------------------------------------------ */

/* The terminal event of r; r must have no connection. */
static void finish(halo_http_req_t *r, int event, int status, const char *data, size_t len) {
  halo_http_t *h = r->h;
  r->done = 1;
  if (r->prev) r->prev->next = r->next;
  else h->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = NULL;
  r->next = h->dead;
  h->dead = r;
  r->cb(r, r->ud, event, status, data, len);
}

/* Ends r with an error, closing its connection (which is then mid-request). */
static void fail(halo_http_req_t *r, int code, const char *why) {
  if (r->done) return;
  conn_t *c = r->conn;
  if (c) {
    detach(c);
    conn_close(c);
  }
  finish(r, HALO_HTTP_ERROR, code, why, strlen(why));
}

static void fail_code(halo_http_req_t *r, int code) { fail(r, code, uv_strerror(code)); }

/* c broke before the response was complete. A reused connection that got no
 * byte of the response was most likely closed by the server while idle:
 * the request goes once more on a fresh connection. */
static void conn_lost(conn_t *c, int code, const char *why) {
  halo_http_req_t *r = c->req;
  if (!c->reused || c->rx > 0 || r->retried) {
    fail(r, code, why);
    return;
  }
  detach(c);
  conn_close(c);
  r->retried = 1;
  int rc = req_start(r, 1);
  if (rc < 0) fail_code(r, rc);
}

static void complete(conn_t *c, int keep) {
  halo_http_req_t *r = c->req;
  conn_release(c, keep);
  if (r->stream) {
    finish(r, HALO_HTTP_DONE, r->status, NULL, 0);
  } else {
    if (!r->body) {
      r->body = malloc(1);
      if (!r->body) {
        fail_code(r, UV_ENOMEM);
        return;
      }
    }
    r->body[r->blen] = '\0';
    finish(r, HALO_HTTP_DONE, r->status, r->body, r->blen);
  }
}

static void on_timer(uv_timer_t *t) {
  conn_t *c = t->data;
  halo_http_t *h = c->h;
  enter(h);
  if (c->req) fail(c->req, HALO_ETIMEDOUT, "timed out");
  else conn_close(c);
  leave(h);
}

/* -- the response ---------------------------------------------------------------- */

static int too_large(conn_t *c) {
  fail(c->req, HALO_ETOOLARGE, "response too large");
  return -1;
}

enum { HS_NONE, HS_NAME, HS_NAMED, HS_VALUE }; /* between headers, in a name, after it, in a value */

static int on_message_begin(llhttp_t *p) {
  conn_t *c = p->data;
  c->head_bytes = 0;
  c->in_head = 1;
  c->hstate = HS_NONE;
  c->req->blen = 0;
  c->req->hlen = 0;
  return 0;
}

static int on_head_span(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  (void)at;
  c->head_bytes += len;
  return c->head_bytes > HALO_HTTP_MAX_HEAD ? too_large(c) : 0;
}

/* Appends at[0..len) (lower-cased if lower) to the header block; the block
 * stays within HALO_HTTP_MAX_HEAD plus two NULs a header, as the spans do. */
static int hdr_put(conn_t *c, const char *at, size_t len, int lower) {
  halo_http_req_t *r = c->req;
  if (r->hlen + len + 1 > r->hcap) {
    size_t cap = r->hcap ? r->hcap : 512;
    while (cap < r->hlen + len + 1) cap *= 2;
    char *b = realloc(r->hdr, cap);
    if (!b) {
      fail_code(r, UV_ENOMEM);
      return -1;
    }
    r->hdr = b;
    r->hcap = cap;
  }
  char *d = r->hdr + r->hlen;
  if (lower) {
    for (size_t i = 0; i < len; i++) d[i] = (char)(at[i] >= 'A' && at[i] <= 'Z' ? at[i] + 32 : at[i]);
  } else {
    memcpy(d, at, len);
  }
  r->hlen += len;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (on_head_span(p, at, len)) return -1;
  if (!c->in_head) return 0;
  if (c->hstate == HS_NAMED && hdr_put(c, "", 1, 0)) return -1; /* the previous value was empty */
  c->hstate = HS_NAME;
  return hdr_put(c, at, len, 1);
}

static int on_header_field_complete(llhttp_t *p) {
  conn_t *c = p->data;
  if (!c->in_head) return 0;
  c->hstate = HS_NAMED;
  return hdr_put(c, "", 1, 0);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (on_head_span(p, at, len)) return -1;
  if (!c->in_head) return 0;
  if (memchr(at, '\0', len)) {
    fail(c->req, HALO_EMALFORMED, "malformed response");
    return -1;
  }
  c->hstate = HS_VALUE;
  return hdr_put(c, at, len, 0);
}

static int on_header_value_complete(llhttp_t *p) {
  conn_t *c = p->data;
  if (!c->in_head) return 0;
  halo_http_req_t *r = c->req;
  if (c->hstate == HS_VALUE)
    while (r->hlen > 0 && (r->hdr[r->hlen - 1] == ' ' || r->hdr[r->hlen - 1] == '\t')) r->hlen--;
  c->hstate = HS_NONE;
  return hdr_put(c, "", 1, 0);
}

static int is_interim(int status) { return status >= 100 && status < 200 && status != 101; }

static int on_headers_complete(llhttp_t *p) {
  conn_t *c = p->data;
  halo_http_req_t *r = c->req;
  if (c->hstate == HS_NAMED && hdr_put(c, "", 1, 0)) return -1;
  c->hstate = HS_NONE;
  c->in_head = 0;
  r->status = p->status_code;
  if (is_interim(r->status)) return 1;
  if (r->head) return 1;
  if (!r->stream && (p->flags & F_CONTENT_LENGTH)) {
    size_t max = c->h->max_body;
    if (p->content_length > max) return too_large(c);
    if (p->content_length + 1 > r->bcap) {
      char *b = realloc(r->body, (size_t)p->content_length + 1);
      if (!b) {
        fail_code(r, UV_ENOMEM);
        return -1;
      }
      r->body = b;
      r->bcap = (size_t)p->content_length + 1;
    }
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  halo_http_req_t *r = c->req;
  if (r->stream) {
    r->cb(r, r->ud, HALO_HTTP_DATA, r->status, at, len);
    return r->done || c->closing ? -1 : 0;
  }
  size_t max = c->h->max_body;
  if (len > max || r->blen > max - len) return too_large(c);
  if (r->blen + len + 1 > r->bcap) {
    size_t cap = r->bcap ? r->bcap : 4096;
    while (cap < r->blen + len + 1) cap *= 2;
    char *b = realloc(r->body, cap);
    if (!b) {
      fail_code(r, UV_ENOMEM);
      return -1;
    }
    r->body = b;
    r->bcap = cap;
  }
  memcpy(r->body + r->blen, at, len);
  r->blen += len;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  conn_t *c = p->data;
  if (is_interim(p->status_code)) return 0;
  c->complete = 1;
  c->keep_alive = llhttp_should_keep_alive(p) ? 1 : 0;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_head_span,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf) {
  conn_t *c = hd->data;
  (void)suggested;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (c->closing || nread == 0) return;
  halo_http_t *h = c->h;
  halo_http_req_t *r = c->req;
  enter(h);
  if (!r) {
    conn_close(c); /* an idle connection closed, or spoke out of turn */
  } else if (nread > 0) {
    c->rx += (size_t)nread;
    if (r->stream && r->timeout_ms) uv_timer_start(&c->timer, on_timer, r->timeout_ms, 0);
    llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    /* unless a callback or a limit has ended the request already */
    if (!r->done && !c->closing) {
      if (c->complete) {
        /* bytes after the response: not a server to send another request to */
        int extra = err != HPE_PAUSED || llhttp_get_error_pos(&c->parser) != buf->base + nread;
        complete(c, c->keep_alive && !extra);
      } else if (err != HPE_OK) {
        fail(r, HALO_EMALFORMED, "malformed response");
      }
    }
  } else if (nread == UV_EOF && c->rx > 0) {
    llhttp_finish(&c->parser); /* completes a body delimited by the end of the connection */
    if (c->complete) complete(c, 0);
    else fail(r, UV_EOF, "closed by the server mid-response");
  } else if (nread == UV_EOF) {
    conn_lost(c, UV_EOF, "closed by the server before responding");
  } else {
    conn_lost(c, (int)nread, uv_strerror((int)nread));
  }
  leave(h);
}

/* -- the request --------------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  conn_t *c = req->handle->data;
  if (--w->out->refs == 0) free(w->out);
  free(w);
  if (c->closing || status == 0) return;
  halo_http_t *h = c->h;
  enter(h);
  if (c->req) conn_lost(c, status, uv_strerror(status));
  else conn_close(c);
  leave(h);
}

static int conn_send(conn_t *c) {
  outbuf_t *out = c->req->out;
  wreq_t *w = malloc(sizeof *w);
  if (!w) return UV_ENOMEM;
  w->out = out;
  uv_buf_t buf = uv_buf_init(out->data, (unsigned)out->len);
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
  if (rc < 0) {
    free(w);
    return rc;
  }
  out->refs++;
  return 0;
}

static void on_connect(uv_connect_t *req, int status);

/* Connects c (fresh, with its request) to its next address, moving on to
 * fresh connections for the later addresses when a connect fails at once.
 * On failure the connection is closed and the request detached. */
static int conn_dial(conn_t *c) {
  for (;;) {
    struct sockaddr *sa = (struct sockaddr *)&c->addrs[c->next_addr++];
    int rc = uv_tcp_connect(&c->connect, &c->tcp, sa, on_connect);
    if (rc == 0) return 0;
    halo_http_req_t *r = c->req;
    detach(c);
    conn_close(c);
    if (c->next_addr >= c->naddrs) return rc;
    conn_t *n;
    rc = conn_new(r->h, c->addrs + c->next_addr, c->naddrs - c->next_addr, &n);
    if (rc < 0) return rc;
    attach(n, r);
    c = n;
  }
}

static void on_connect(uv_connect_t *req, int status) {
  conn_t *c = req->handle->data;
  if (c->closing) return;
  halo_http_t *h = c->h;
  halo_http_req_t *r = c->req;
  enter(h);
  int rc = status;
  if (rc == 0) {
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc == 0) rc = conn_send(c);
    if (rc < 0) fail_code(r, rc);
  } else if (c->next_addr < c->naddrs) {
    /* the next address, on a fresh handle */
    detach(c);
    conn_close(c);
    conn_t *n;
    rc = conn_new(h, c->addrs + c->next_addr, c->naddrs - c->next_addr, &n);
    if (rc == 0) {
      attach(n, r);
      rc = conn_dial(n);
    }
    if (rc < 0) fail_code(r, rc);
  } else {
    fail_code(r, rc);
  }
  leave(h);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  conn_t *c = req->data;
  c->resolving = 0;
  if (c->closing) {
    if (res) uv_freeaddrinfo(res);
    conn_maybe_free(c);
    return;
  }
  halo_http_t *h = c->h;
  enter(h);
  if (status < 0) {
    fail_code(c->req, status);
  } else {
    for (struct addrinfo *a = res; a && c->naddrs < MAX_ADDRS; a = a->ai_next) {
      if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
      memcpy(&c->addrs[c->naddrs++], a->ai_addr, a->ai_addrlen);
    }
    halo_http_req_t *r = c->req;
    int rc = c->naddrs ? conn_dial(c) : UV_EAI_NONAME;
    if (rc < 0) fail_code(r, rc);
  }
  if (res) uv_freeaddrinfo(res);
  leave(h);
}

static int conn_resolve(conn_t *c) {
  halo_http_t *h = c->h;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  char port[16];
  snprintf(port, sizeof port, "%d", h->port);
  c->gai.data = c;
  int rc = uv_getaddrinfo(h->loop, &c->gai, on_resolved, h->host, port, &hints);
  if (rc < 0) {
    detach(c);
    conn_close(c);
    return rc;
  }
  c->resolving = 1;
  return 0;
}

/* Puts r on a connection: an idle one unless fresh, else a new one. No
 * callback fires from here; on failure r has no connection. */
static int req_start(halo_http_req_t *r, int fresh) {
  halo_http_t *h = r->h;
  conn_t *c;
  while (!fresh && (c = conn_take_idle(h))) {
    attach(c, r);
    if (conn_send(c) == 0) {
      h->reuses++;
      return 0;
    }
    detach(c);
    conn_close(c);
  }
  int rc = conn_new(h, &h->addr, h->literal, &c);
  if (rc < 0) return rc;
  attach(c, r);
  return h->literal ? conn_dial(c) : conn_resolve(c);
}

/* -- the API -------------------------------------------------------------------------- */

static int valid_token(const char *s) {
  if (!s || !*s) return 0;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch <= ' ' || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch)) return 0;
  }
  return 1;
}

/* Printable text without CR or LF (request targets also without spaces). */
static int valid_text(const char *s, int spaces) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch < ' ' || ch == 127 || (ch == ' ' && !spaces)) return 0;
  }
  return 1;
}

halo_http_t *halo_http_new(uv_loop_t *loop, const char *host, int port) {
  if (!loop || !host || !*host || port <= 0 || port > 65535 || !valid_text(host, 0)) return NULL;
  halo_http_t *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->loop = loop;
  h->port = port;
  h->max_body = HALO_HTTP_MAX_BODY;
  h->max_idle = HALO_HTTP_MAX_IDLE;
  h->idle_ms = HALO_HTTP_IDLE_MS;
  h->host = strdup(host);
  int v6 = strchr(host, ':') != NULL;
  size_t n = strlen(host) + 16;
  h->host_header = malloc(n);
  if (!h->host || !h->host_header) {
    free(h->host);
    free(h->host_header);
    free(h);
    return NULL;
  }
  snprintf(h->host_header, n, v6 ? "[%s]:%d" : "%s:%d", host, port);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&h->addr) == 0 ||
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&h->addr) == 0)
    h->literal = 1;
  return h;
}

void halo_http_delete(halo_http_t *h) {
  if (!h || h->deleted) return;
  h->deleted = 1;
  enter(h);
  while (h->reqs) fail(h->reqs, UV_ECANCELED, "cancelled");
  while (h->idle) conn_close(h->idle);
  while (h->active) conn_close(h->active);
  leave(h);
}

void halo_http_set_max_body(halo_http_t *h, size_t max_body) { h->max_body = max_body; }

void halo_http_set_idle(halo_http_t *h, unsigned max_idle, uint32_t idle_ms) {
  h->max_idle = max_idle;
  h->idle_ms = idle_ms;
  while (h->nidle > max_idle) {
    conn_t *c = h->idle;
    while (c->next) c = c->next;
    conn_close(c); /* the least recently used */
  }
}

const char *halo_http_header_check(const char *name, const char *value) {
  if (!name || !valid_token(name)) return "the name is not an HTTP token";
  if (!strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding"))
    return "the client sets it from the body";
  if (!value) return "no value";
  for (const char *v = value; *v; v++) {
    unsigned char ch = (unsigned char)*v;
    if ((ch < ' ' && ch != '\t') || ch == 127) return "the value has CR, LF or another control character";
  }
  return NULL;
}

/* Appends n bytes of s at dst + *at (dst NULL: only counts). */
static void put(char *dst, size_t *at, const char *s, size_t n) {
  if (dst) memcpy(dst + *at, s, n);
  *at += n;
}

static void put_str(char *dst, size_t *at, const char *s) { put(dst, at, s, strlen(s)); }

static void put_header(char *dst, size_t *at, const char *name, const char *value) {
  put_str(dst, at, name);
  put(dst, at, ": ", 2);
  put_str(dst, at, value);
  put(dst, at, "\r\n", 2);
}

/* Writes the head of a request into dst, or measures it (dst NULL); returns its length. */
static size_t head_build(char *dst, const halo_http_t *h, const char *method, const char *path,
                         const char *ctype, const halo_http_header_t *hd, size_t nh, const char *clen) {
  size_t at = 0;
  int own_host = 0;
  for (size_t i = 0; i < nh; i++) own_host |= !strcasecmp(hd[i].name, "Host");
  put_str(dst, &at, method);
  put(dst, &at, " ", 1);
  put_str(dst, &at, path);
  put_str(dst, &at, " HTTP/1.1\r\n");
  if (!own_host) put_header(dst, &at, "Host", h->host_header);
  if (ctype) put_header(dst, &at, "Content-Type", ctype);
  for (size_t i = 0; i < nh; i++) put_header(dst, &at, hd[i].name, hd[i].value);
  if (clen) put_header(dst, &at, "Content-Length", clen);
  put(dst, &at, "\r\n", 2);
  return at;
}

int halo_http_request(halo_http_t *h, const char *method, const char *path, const char *content_type,
                      const halo_http_header_t *headers, size_t nheaders, const void *body, size_t len,
                      uint32_t timeout_ms, int stream, halo_http_cb cb, void *ud, halo_http_req_t **out) {
  if (!h || h->deleted || !cb || !valid_token(method) || !path || !*path || !valid_text(path, 0) ||
      (content_type && !valid_text(content_type, 1)) || (len && !body) || (nheaders && !headers))
    return UV_EINVAL;
  for (size_t i = 0; i < nheaders; i++)
    if (halo_http_header_check(headers[i].name, headers[i].value)) return UV_EINVAL;
  int bodyless = len == 0 && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
  char clen[24];
  snprintf(clen, sizeof clen, "%zu", len);
  const char *cl = bodyless ? NULL : clen;
  size_t head = head_build(NULL, h, method, path, content_type, headers, nheaders, cl);
  if (head > UINT_MAX || len > UINT_MAX - head) return UV_EINVAL;
  halo_http_req_t *r = calloc(1, sizeof *r);
  outbuf_t *o = malloc(sizeof *o + head + len);
  if (!r || !o) {
    free(r);
    free(o);
    return UV_ENOMEM;
  }
  head_build(o->data, h, method, path, content_type, headers, nheaders, cl);
  if (len) memcpy(o->data + head, body, len);
  o->len = head + len;
  o->refs = 1;
  r->h = h;
  r->cb = cb;
  r->ud = ud;
  r->out = o;
  r->timeout_ms = timeout_ms;
  r->stream = stream ? 1 : 0;
  r->head = strcmp(method, "HEAD") == 0;
  r->deadline = !stream && timeout_ms ? uv_now(h->loop) + timeout_ms : 0;
  r->next = h->reqs;
  if (h->reqs) h->reqs->prev = r;
  h->reqs = r;
  int rc = req_start(r, 0);
  if (rc < 0) {
    if (r->prev) r->prev->next = r->next;
    else h->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    req_free(r);
    return rc;
  }
  if (out) *out = r;
  return 0;
}

const char *halo_http_req_headers(const halo_http_req_t *r, size_t *len) {
  *len = r->hdr ? r->hlen : 0;
  return *len ? r->hdr : NULL;
}

void halo_http_stats(const halo_http_t *h, halo_http_stats_t *out) {
  memset(out, 0, sizeof *out);
  out->connects = h->connects;
  out->reuses = h->reuses;
  out->idle = h->nidle;
  for (const conn_t *c = h->active; c; c = c->next) out->active++;
}

void halo_http_cancel(halo_http_req_t *r) {
  if (!r || r->done) return;
  halo_http_t *h = r->h;
  enter(h);
  fail(r, UV_ECANCELED, "cancelled");
  leave(h);
}
