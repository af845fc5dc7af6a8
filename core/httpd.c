/*
 * The HTTP server (httpd.h). Past the usual file size for one reason: the
 * parser callbacks, the ordered answer slots, the timers and the writes all
 * act on one connection record, and splitting them would export that record
 * through an internal header for no reader's benefit. Sections: buffers,
 * answers, timers and closing, writing, requests, reading, connections, API.
 */
#include "httpd.h"
#include "errors.h"
#include "map.h"
#include "prof.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_KEEP (64u << 10) /* a request body buffer larger than this is freed after its request */
#define READ_BUF 65536
#define LINGER_MS 2000 /* after an error answer: time the client gets to read it before the close */

typedef struct buf {
  char *p;
  size_t len, cap;
} buf_t;

enum { R_STATIC, R_C, R_PROCESS };

typedef struct route {
  char *path;
  int kind;
  unsigned methods;
  int status;
  char *ctype, *body;
  size_t blen;
  halo_httpd_handler_cb cb;
  void *ud;
} route_t;

/* One answer in the order of the requests: DONE answers leave from the head. */
enum { SL_PENDING, SL_STREAM, SL_DONE };

typedef struct slot {
  struct slot *next;
  int state;
  unsigned process : 1, close : 1, head : 1, chunked : 1, v10 : 1;
  buf_t buf; /* bytes of an answer that is not at the head yet */
} slot_t;

/* Timer states of a connection. */
enum { T_NONE, T_HEAD, T_BODY, T_IDLE, T_DRAIN };

typedef struct hdr {
  uint32_t noff, nlen, voff, vlen;
} hdr_t;

typedef halo_httpd_conn_t conn_t;

struct halo_httpd_conn {
  conn_t *next, *prev;
  halo_httpd_t *s;
  uint64_t id;
  void *ud;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  llhttp_t parser;
  int handles, tstate;
  unsigned fake : 1, closing : 1, draining : 1, paused : 1, in_msg : 1, in_parse : 1, writing : 1,
      refused : 1, stop_parse : 1, shut : 1, counted : 1, in_body : 1;
  unsigned nslots;
  uint64_t nreq;
  slot_t *sh, *st;
  size_t queued;         /* bytes held in slot buffers */
  size_t wq_seen;        /* libuv's write queue at the last idle check: a reader that drains it is not idle */
  /* the request being parsed: target\0, header bytes, then path\0query\0 */
  buf_t head, body;
  hdr_t hdrs[HALO_HTTPD_MAX_HEADERS];
  int nhdrs, hstate;
  size_t head_bytes, target_len, path_off, path_len;
  buf_t out, wbuf, pend; /* to write, being written, read while paused */
  char remote[64];
};

struct halo_httpd {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port, closing, listener_open;
  uint32_t drain_ms;
  halo_httpd_limits_t lim;
  halo_httpd_stats_t st;
  halo_smap_t routes;
  halo_imap_t conns;
  conn_t *list;
  uint64_t next_id;
  halo_httpd_dispatch_cb dispatch;
  halo_httpd_conn_cb closed_conn;
  void *ud;
  halo_httpd_closed_cb closed;
  void *closed_ud;
  slot_t *free_slots;
  char rbuf[READ_BUF];
};

static const llhttp_settings_t settings;
static const char TEXT[] = "text/plain; charset=utf-8";

static void conn_flush(conn_t *c);
static void conn_close(conn_t *c);
static void advance(conn_t *c);

/* -- buffers ------------------------------------------------------------------ */

static int buf_reserve(buf_t *b, size_t n) {
  if (b->len + n <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 512;
  while (cap < b->len + n) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int buf_add(buf_t *b, const void *d, size_t n) {
  if (buf_reserve(b, n)) return -1;
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

static void buf_free(buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* -- answers ---------------------------------------------------------------------- */

static const char *reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

static int bodyless(int status) { return status == 204 || status == 304 || (status >= 100 && status < 200); }

/* Writes n in decimal at p; returns the length (hot: no printf per answer). */
static size_t put_u(char *p, unsigned long long n) {
  char t[24];
  size_t k = 0;
  do t[k++] = (char)('0' + n % 10); while ((n /= 10));
  for (size_t i = 0; i < k; i++) p[i] = t[k - 1 - i];
  return k;
}

/* Appends to b the head of an answer. clen: the body's length, or -1 for a
 * chunked body, -2 for a body delimited by the close. */
static int put_head(buf_t *b, int status, int close, int v10, const char *ctype, const char *extra, size_t elen,
                    long long clen) {
  const char *why = reason(status);
  size_t wl = strlen(why), cl = ctype ? strlen(ctype) : 0;
  if (buf_reserve(b, wl + elen + cl + 128)) return -1;
  char *p = b->p + b->len, *start = p;
  memcpy(p, "HTTP/1.1 ", 9);
  p += 9;
  p += put_u(p, (unsigned)status % 1000);
  *p++ = ' ';
  memcpy(p, why, wl);
  p += wl;
  memcpy(p, "\r\n", 2);
  p += 2;
  if (ctype) {
    memcpy(p, "Content-Type: ", 14);
    memcpy(p + 14, ctype, cl);
    memcpy(p + 14 + cl, "\r\n", 2);
    p += cl + 16;
  }
  if (elen) memcpy(p, extra, elen);
  p += elen;
  if (clen >= 0 && !bodyless(status)) {
    memcpy(p, "Content-Length: ", 16);
    p += 16;
    p += put_u(p, (unsigned long long)clen);
    memcpy(p, "\r\n", 2);
    p += 2;
  } else if (clen == -1) {
    memcpy(p, "Transfer-Encoding: chunked\r\n", 28);
    p += 28;
  }
  if (close) {
    memcpy(p, "Connection: close\r\n", 19);
    p += 19;
  } else if (v10) {
    memcpy(p, "Connection: keep-alive\r\n", 24);
    p += 24;
  }
  memcpy(p, "\r\n", 2);
  p += 2;
  b->len += (size_t)(p - start);
  return 0;
}

static slot_t *slot_new(conn_t *c) {
  halo_httpd_t *s = c->s;
  slot_t *sl = s->free_slots;
  if (sl) s->free_slots = sl->next;
  else if (!(sl = calloc(1, sizeof *sl))) return NULL;
  sl->next = NULL;
  sl->state = SL_PENDING;
  sl->process = sl->close = sl->head = sl->chunked = sl->v10 = 0;
  sl->buf.len = 0;
  if (c->st) c->st->next = sl;
  else c->sh = sl;
  c->st = sl;
  c->nslots++;
  return sl;
}

static void slot_free(halo_httpd_t *s, slot_t *sl) {
  if (sl->buf.cap > 4096) buf_free(&sl->buf);
  sl->next = s->free_slots;
  s->free_slots = sl;
}

/* The bytes of sl's answer: straight to the output at the head, else held. */
static int emit(conn_t *c, slot_t *sl, const void *d, size_t n) {
  if (c->closing) return UV_EPIPE;
  halo_httpd_t *s = c->s;
  if (c->out.len + c->wbuf.len + c->queued > s->lim.max_output) { /* one answer may pass it, a backlog not */
    s->st.output_overflows++;
    conn_close(c);
    return UV_EPIPE;
  }
  int rc = sl == c->sh ? buf_add(&c->out, d, n) : buf_add(&sl->buf, d, n);
  if (rc) {
    conn_close(c);
    return UV_ENOMEM;
  }
  if (sl != c->sh) c->queued += n;
  return 0;
}

/* A complete answer with a body, into sl (made DONE). */
static int answer(conn_t *c, slot_t *sl, int status, const char *ctype, const char *extra, size_t elen,
                  const char *body, size_t blen) {
  buf_t *b = sl == c->sh ? &c->out : &sl->buf;
  size_t before = b->len;
  if (put_head(b, status, sl->close, sl->v10, ctype, extra, elen, (long long)blen)) {
    conn_close(c);
    return UV_ENOMEM;
  }
  if (sl != c->sh) c->queued += b->len - before;
  int rc = 0;
  if (!sl->head && !bodyless(status) && blen) rc = emit(c, sl, body, blen);
  if (rc) return rc;
  sl->state = SL_DONE;
  return 0;
}

/* A refusal that ends the connection: status with a short text. */
static int refuse(conn_t *c, int status, const char *text, uint64_t *counter) {
  if (counter) (*counter)++;
  c->stop_parse = 1;
  slot_t *sl = slot_new(c);
  if (!sl) {
    conn_close(c);
    return -1;
  }
  sl->close = 1;
  answer(c, sl, status, TEXT, NULL, 0, text, strlen(text));
  advance(c);
  return -1;
}

/* -- timers and closing ----------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void arm(conn_t *c, int state, uint32_t ms) {
  c->tstate = state;
  if (state == T_NONE || ms == 0) uv_timer_stop(&c->timer);
  else uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Between requests: the idle timer runs only when nothing is owed. */
static void update_idle(conn_t *c) {
  if (c->in_msg || c->draining || c->closing) return;
  if (c->nslots == 0) arm(c, T_IDLE, c->s->lim.idle_timeout);
  else if (c->tstate != T_NONE) arm(c, T_NONE, 0);
}

static void server_maybe_free(halo_httpd_t *s) {
  if (!s->closing || s->listener_open || s->list) return;
  for (size_t i = 0; i < s->routes.cap; i++) {
    route_t *r = s->routes.slots[i].val;
    if (!r) continue;
    free(r->path);
    free(r->ctype);
    free(r->body);
    free(r);
  }
  halo_smap_destroy(&s->routes);
  halo_imap_destroy(&s->conns);
  while (s->free_slots) {
    slot_t *sl = s->free_slots;
    s->free_slots = sl->next;
    buf_free(&sl->buf);
    free(sl);
  }
  halo_httpd_closed_cb cb = s->closed;
  void *ud = s->closed_ud;
  if (cb) cb(s, ud); /* s is gone for the callee: an identity only */
  free(s);
}

static void on_conn_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  if (--c->handles > 0) return;
  halo_httpd_t *s = c->s;
  buf_free(&c->head);
  buf_free(&c->body);
  buf_free(&c->out);
  buf_free(&c->wbuf);
  buf_free(&c->pend);
  if (c->prev) c->prev->next = c->next;
  else s->list = c->next;
  if (c->next) c->next->prev = c->prev;
  free(c);
  server_maybe_free(s);
}

/* Closes c now; its memory stays until the close callbacks. */
static void conn_close(conn_t *c) {
  if (c->closing) return;
  halo_httpd_t *s = c->s;
  c->closing = 1;
  halo_imap_del(&s->conns, c->id);
  if (c->counted) s->st.connections--;
  while (c->sh) {
    slot_t *sl = c->sh;
    c->sh = sl->next;
    slot_free(s, sl);
  }
  c->st = NULL;
  c->nslots = 0;
  if (s->closed_conn && !c->refused) s->closed_conn(s->ud, c);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
  if (!c->fake) uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* Stops taking requests; c closes once its answers are written. */
static void conn_drain(conn_t *c, uint32_t ms) {
  if (c->draining || c->closing) return;
  c->draining = 1;
  c->stop_parse = 1;
  arm(c, T_DRAIN, ms ? ms : HALO_HTTPD_DRAIN_TIMEOUT);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the close comes with the client's EOF or the drain timer */
}

/* A draining connection with nothing left to write: half-close it, and close
 * once the client has read the answer (its EOF) or the linger time passed. */
static void maybe_finish(conn_t *c) {
  if (!c->draining || c->closing || c->nslots || c->out.len || c->writing) return;
  if (c->fake) {
    conn_close(c);
    return;
  }
  if (c->shut) return;
  c->shut = 1;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown)) {
    conn_close(c);
    return;
  }
  arm(c, T_DRAIN, c->s->drain_ms && c->s->drain_ms < LINGER_MS ? c->s->drain_ms : LINGER_MS);
}

static void on_timer(uv_timer_t *t) {
  conn_t *c = t->data;
  halo_httpd_t *s = c->s;
  switch (c->tstate) {
  case T_HEAD:
    if (!c->in_msg) {
      s->st.header_timeouts++;
      conn_close(c);
    } else {
      refuse(c, 408, "request head not received in time\n", &s->st.header_timeouts);
      conn_drain(c, 0);
      maybe_finish(c);
    }
    break;
  case T_BODY:
    refuse(c, 408, "request body not received in time\n", &s->st.body_timeouts);
    conn_drain(c, 0);
    maybe_finish(c);
    break;
  case T_IDLE:
    if (c->writing && c->tcp.write_queue_size < c->wq_seen) { /* a long answer still moving */
      c->wq_seen = c->tcp.write_queue_size;
      arm(c, T_IDLE, s->lim.idle_timeout);
      break;
    }
    s->st.idle_timeouts++;
    conn_close(c);
    break;
  case T_DRAIN:
    if (!c->shut) s->st.drain_timeouts++;
    conn_close(c);
    break;
  default: break;
  }
}

/* -- writing -------------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status) {
  conn_t *c = req->data;
  c->writing = 0;
  c->wbuf.len = 0;
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  conn_flush(c);
}

static void conn_flush(conn_t *c) {
  if (c->closing) return;
  if (c->writing || !c->out.len) {
    maybe_finish(c);
    return;
  }
  if (c->fake) {
    c->out.len = 0;
    maybe_finish(c);
    return;
  }
  uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)c->out.len) {
    c->out.len = 0;
    maybe_finish(c);
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    conn_close(c);
    return;
  }
  if (n < 0) n = 0;
  buf_t t = c->wbuf;
  c->wbuf = c->out;
  c->out = t;
  c->out.len = 0;
  b = uv_buf_init(c->wbuf.p + n, (unsigned)(c->wbuf.len - (size_t)n));
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
    conn_close(c);
    return;
  }
  c->writing = 1;
  c->wq_seen = c->tcp.write_queue_size;
}

static void resume(conn_t *c);

/* Answers that are complete leave from the head, in order. */
static void advance(conn_t *c) {
  halo_httpd_t *s = c->s;
  while (c->sh && !c->closing) {
    slot_t *sl = c->sh;
    if (sl->buf.len) { /* it just became the head: what it holds goes out first */
      if (buf_add(&c->out, sl->buf.p, sl->buf.len)) {
        conn_close(c);
        return;
      }
      c->queued -= sl->buf.len;
      sl->buf.len = 0;
    }
    if (sl->state != SL_DONE) break;
    c->sh = sl->next;
    if (!c->sh) c->st = NULL;
    c->nslots--;
    s->st.responses++;
    int close = sl->close;
    slot_free(s, sl);
    if (close) {
      while (c->sh) { /* nothing after a closing answer is owed */
        slot_t *x = c->sh;
        c->sh = x->next;
        c->queued -= x->buf.len;
        slot_free(s, x);
      }
      c->st = NULL;
      c->nslots = 0;
      conn_drain(c, 0);
    }
  }
  if (c->closing) return;
  conn_flush(c);
  if (c->closing) return;
  update_idle(c);
  if (c->paused && c->nslots < HALO_HTTPD_PIPELINE) resume(c);
}

/* -- requests ------------------------------------------------------------------- */

unsigned halo_httpd_method_bit(const char *m) {
  static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(m, names[i])) return 1u << i;
  return 0;
}

static int allowed(const route_t *r, unsigned bit) {
  if (r->methods == HALO_HTTPD_ANY) return 1;
  if (bit == HALO_HTTPD_HEAD && (r->methods & HALO_HTTPD_GET)) return 1;
  return (r->methods & bit) != 0;
}

static size_t allow_header(const route_t *r, char *out, size_t cap) {
  static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  unsigned m = r->methods;
  if (m & HALO_HTTPD_GET) m |= HALO_HTTPD_HEAD;
  size_t n = (size_t)snprintf(out, cap, "Allow: ");
  int first = 1;
  for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
    if (m & (1u << i)) {
      n += (size_t)snprintf(out + n, cap - n, "%s%s", first ? "" : ", ", names[i]);
      first = 0;
    }
  n += (size_t)snprintf(out + n, cap - n, "\r\n");
  return n;
}

static int head_add(conn_t *c, const char *at, size_t len) {
  halo_httpd_t *s = c->s;
  c->head_bytes += len;
  if (c->head_bytes > s->lim.max_header)
    return refuse(c, 431, "request head too large\n", &s->st.header_too_large);
  if (buf_add(&c->head, at, len)) return refuse(c, 500, "out of memory\n", NULL);
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  conn_t *c = p->data;
  c->in_msg = 1;
  c->head.len = c->body.len = c->head_bytes = 0;
  c->nhdrs = c->hstate = 0;
  c->in_body = 0;
  if (c->tstate != T_HEAD) arm(c, T_HEAD, c->s->lim.header_timeout);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) { return head_add(p->data, at, len); }

static int on_url_complete(llhttp_t *p) {
  conn_t *c = p->data;
  c->target_len = c->head.len;
  return head_add(c, "", 1);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->in_body) return 0; /* trailers are dropped */
  if (c->hstate != 1) {
    if (c->nhdrs == HALO_HTTPD_MAX_HEADERS)
      return refuse(c, 431, "too many request headers\n", &c->s->st.header_too_large);
    c->hstate = 1;
    c->hdrs[c->nhdrs].noff = (uint32_t)c->head.len;
    c->head_bytes += 4; /* ": " and CRLF */
  }
  return head_add(c, at, len);
}

static int on_header_field_complete(llhttp_t *p) {
  conn_t *c = p->data;
  if (c->in_body) return 0;
  hdr_t *h = &c->hdrs[c->nhdrs];
  h->nlen = (uint32_t)c->head.len - h->noff;
  for (uint32_t i = 0; i < h->nlen; i++) {
    char ch = c->head.p[h->noff + i];
    if (ch >= 'A' && ch <= 'Z') c->head.p[h->noff + i] = (char)(ch + 32);
  }
  c->hstate = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->in_body) return 0; /* trailers are dropped */
  if (c->hstate != 2) {
    c->hstate = 2;
    c->hdrs[c->nhdrs].voff = (uint32_t)c->head.len;
  }
  return head_add(c, at, len);
}

static int on_header_value_complete(llhttp_t *p) {
  conn_t *c = p->data;
  if (c->in_body) return 0;
  hdr_t *h = &c->hdrs[c->nhdrs];
  if (c->hstate != 2) h->voff = (uint32_t)c->head.len; /* an empty value */
  h->vlen = (uint32_t)c->head.len - h->voff;
  c->hstate = 0;
  c->nhdrs++;
  return 0;
}

static int has_value(conn_t *c, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  for (int i = 0; i < c->nhdrs; i++) {
    hdr_t *h = &c->hdrs[i];
    if (h->nlen == nl && !memcmp(c->head.p + h->noff, name, nl) && h->vlen == vl &&
        !strncasecmp(c->head.p + h->voff, value, vl))
      return 1;
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  conn_t *c = p->data;
  halo_httpd_t *s = c->s;
  int body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s->lim.max_body)
    return refuse(c, 413, "request body too large\n", &s->st.body_too_large);
  if (body) {
    arm(c, T_BODY, s->lim.body_timeout);
    if (c->nslots == 0 && p->http_minor >= 1 && has_value(c, "expect", "100-continue")) {
      if (buf_add(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25)) return refuse(c, 500, "out of memory\n", NULL);
      conn_flush(c);
      if (c->closing) return -1;
    }
  } else {
    arm(c, T_NONE, 0);
  }
  /* the path and the query, NUL-terminated, after the headers; an
   * absolute-form target (RFC 9112 3.2.2) has its path after the authority */
  size_t tl = c->target_len, pstart = 0;
  if (tl > 7 && (!strncasecmp(c->head.p, "http://", 7) || !strncasecmp(c->head.p, "https://", 8))) {
    pstart = c->head.p[4] == ':' ? 7 : 8;
    while (pstart < tl && c->head.p[pstart] != '/' && c->head.p[pstart] != '?') pstart++;
  }
  const char *q = memchr(c->head.p + pstart, '?', tl - pstart);
  size_t pend = q ? (size_t)(q - c->head.p) : tl;
  size_t qoff = q ? pend + 1 : tl;
  if (buf_reserve(&c->head, tl + 3)) return refuse(c, 500, "out of memory\n", NULL);
  c->in_body = 1;
  c->path_off = c->head.len;
  c->path_len = pend > pstart ? pend - pstart : 1;
  buf_add(&c->head, pend > pstart ? c->head.p + pstart : "/", c->path_len);
  buf_add(&c->head, "", 1);
  buf_add(&c->head, c->head.p + qoff, tl - qoff);
  buf_add(&c->head, "", 1);
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  halo_httpd_t *s = c->s;
  if (c->body.len + len > s->lim.max_body)
    return refuse(c, 413, "request body too large\n", &s->st.body_too_large);
  if (buf_add(&c->body, at, len)) return refuse(c, 500, "out of memory\n", NULL);
  return 0;
}

static void run_route(conn_t *c, slot_t *sl, route_t *r, halo_httpd_request_t *req) {
  halo_httpd_t *s = c->s;
  if (r->kind == R_STATIC) {
    answer(c, sl, r->status, r->ctype, NULL, 0, r->body, r->blen);
  } else if (r->kind == R_C) {
    halo_httpd_response_t res = {200, TEXT, NULL, 0};
    req->route_ud = r->ud;
    r->cb(r->ud, req, &res);
    if (!c->closing) answer(c, sl, res.status, res.content_type, NULL, 0, res.body, res.body_len);
    free(res.body);
  } else if (!s->dispatch || s->closing) {
    s->st.handler_gone++;
    sl->close = 1;
    answer(c, sl, 503, TEXT, NULL, 0, "no handler\n", 11);
  } else {
    sl->process = 1;
    req->route_ud = r->ud;
    s->dispatch(s->ud, c, req);
  }
}

static int on_message_complete(llhttp_t *p) {
  conn_t *c = p->data;
  halo_httpd_t *s = c->s;
  c->in_msg = 0;
  s->st.requests++;
  if (c->nreq++) s->st.reused++;
  int keep = llhttp_should_keep_alive(p) && !s->closing;
  slot_t *sl = slot_new(c);
  if (!sl) {
    conn_close(c);
    return -1;
  }
  const char *method = llhttp_method_name((llhttp_method_t)p->method);
  sl->close = !keep;
  sl->head = p->method == HTTP_HEAD;
  sl->v10 = p->http_major == 1 && p->http_minor == 0;
  if (buf_add(&c->body, "", 1)) {
    conn_close(c);
    return -1;
  }
  c->body.len--;
  halo_httpd_header_t hv[HALO_HTTPD_MAX_HEADERS];
  for (int i = 0; i < c->nhdrs; i++) {
    hv[i].name = c->head.p + c->hdrs[i].noff;
    hv[i].name_len = c->hdrs[i].nlen;
    hv[i].value = c->head.p + c->hdrs[i].voff;
    hv[i].value_len = c->hdrs[i].vlen;
  }
  /* layout: target\0 header bytes path\0 query\0 */
  size_t tl = c->target_len;
  const char *q = memchr(c->head.p, '?', tl);
  size_t plen = c->path_len, qlen = q ? tl - (size_t)(q - c->head.p) - 1 : 0;
  const char *path = c->head.p + c->path_off, *query = path + plen + 1;
  halo_httpd_request_t req = {method, c->head.p, path, query, tl, plen, qlen, p->http_minor, hv,
                              (size_t)c->nhdrs, c->body.p, c->body.len, c->remote, NULL};
  route_t *r = halo_smap_get(&s->routes, path);
  unsigned bit = halo_httpd_method_bit(method);
  if (!r) {
    s->st.not_found++;
    answer(c, sl, 404, TEXT, NULL, 0, "404 page not found\n", 19); /* Go's text, which the reference's radar and slowweb answer */
  } else if (!allowed(r, bit)) {
    s->st.method_not_allowed++;
    char allow[128];
    size_t an = allow_header(r, allow, sizeof allow);
    answer(c, sl, 405, TEXT, allow, an, "method not allowed\n", 19);
  } else {
    run_route(c, sl, r, &req);
  }
  /* every route has copied what it keeps of the body: an idle keep-alive
   * connection does not hold on to a large upload */
  if (c->body.cap > BODY_KEEP) buf_free(&c->body);
  if (c->closing) return -1;
  if (!keep) c->stop_parse = 1;
  advance(c);
  if (c->closing) return -1;
  if (c->stop_parse || c->nslots >= HALO_HTTPD_PIPELINE) return HPE_PAUSED;
  return 0;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* -- reading -------------------------------------------------------------------- */

static void parse(conn_t *c, const char *data, size_t len) {
  if (c->stop_parse || !len) return;
  c->in_parse = 1;
  llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
  c->in_parse = 0;
  if (c->closing) return;
  if (e == HPE_PAUSED && !c->stop_parse) { /* too many answers owed: keep the rest for later */
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t rest = (size_t)(data + len - pos);
    if (rest && buf_add(&c->pend, pos, rest)) {
      conn_close(c);
      return;
    }
    c->paused = 1;
    if (!c->fake) uv_read_stop((uv_stream_t *)&c->tcp);
  } else if (e != HPE_OK && e != HPE_PAUSED && !c->stop_parse) {
    refuse(c, 400, "malformed request\n", &c->s->st.bad_requests);
  }
  if (c->closing) return;
  if (c->stop_parse) conn_drain(c, 0);
  conn_flush(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  conn_t *c = h->data;
  (void)suggested;
  *b = uv_buf_init(c->s->rbuf, READ_BUF);
}

static void resume(conn_t *c) {
  if (!c->paused || c->in_parse || c->closing) return;
  c->paused = 0;
  llhttp_resume(&c->parser);
  buf_t pend = c->pend;
  c->pend = (buf_t){NULL, 0, 0};
  parse(c, pend.p, pend.len);
  buf_free(&pend);
  if (!c->closing && !c->paused && !c->fake && !c->draining)
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  conn_t *c = st->data;
  if (c->closing || nread == 0) return;
  if (nread < 0) {
    /* the client is done: answer what it asked (it may read still), else close */
    if (nread == UV_EOF && (c->nslots || c->out.len || c->writing)) {
      c->in_msg = 0;
      conn_drain(c, 0);
      uv_read_stop(st);
      maybe_finish(c);
    } else {
      conn_close(c);
    }
    return;
  }
  if (c->refused || c->stop_parse) return; /* draining: what comes is dropped */
  parse(c, b->base, (size_t)nread);
}

/* Marked for the CPU profiler (core/prof.h). */
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  int was = halo_prof_enter(HALO_PROF_HTTPD);
  conn_read(st, nread, b);
  halo_prof_leave(was);
}

/* -- connections -------------------------------------------------------------- */

static conn_t *conn_new(halo_httpd_t *s, int fake) {
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->s = s;
  c->id = ++s->next_id;
  c->fake = fake ? 1 : 0;
  uv_timer_init(s->loop, &c->timer);
  c->timer.data = c;
  c->handles = 1;
  if (!fake) {
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->handles = 2;
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  c->next = s->list;
  if (s->list) s->list->prev = c;
  s->list = c;
  if (halo_imap_put(&s->conns, c->id, c)) {
    conn_close(c);
    return NULL;
  }
  s->st.accepted++;
  return c;
}

static void on_connection(uv_stream_t *server, int status) {
  halo_httpd_t *s = server->data;
  if (status < 0 || s->closing) return;
  conn_t *c = conn_new(s, 0);
  if (!c) return;
  if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (s->st.connections >= s->lim.max_connections) {
    c->refused = 1;
    refuse(c, 503, "too many connections\n", &s->st.refused);
    conn_drain(c, 0);
  } else {
    c->counted = 1;
    s->st.connections++;
    struct sockaddr_storage sa;
    int len = sizeof sa;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0) {
      char ip[48] = "";
      int port;
      if (sa.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        snprintf(c->remote, sizeof c->remote, "[%s]:%d", ip, port);
      } else {
        uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        snprintf(c->remote, sizeof c->remote, "%s:%d", ip, port);
      }
    }
    arm(c, T_HEAD, s->lim.header_timeout);
  }
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) conn_close(c);
  else conn_flush(c);
}

/* -- the API ---------------------------------------------------------------------- */

void halo_httpd_limits_default(halo_httpd_limits_t *l) {
  l->max_body = HALO_HTTPD_MAX_BODY;
  l->max_header = HALO_HTTPD_MAX_HEADER;
  l->max_output = HALO_HTTPD_MAX_OUTPUT;
  l->max_connections = HALO_HTTPD_MAX_CONNECTIONS;
  l->header_timeout = HALO_HTTPD_HEADER_TIMEOUT;
  l->idle_timeout = HALO_HTTPD_IDLE_TIMEOUT;
  l->body_timeout = HALO_HTTPD_BODY_TIMEOUT;
}

halo_httpd_t *halo_httpd_new(uv_loop_t *loop, const halo_httpd_limits_t *limits,
                             halo_httpd_dispatch_cb dispatch, halo_httpd_conn_cb closed_conn, void *ud) {
  halo_httpd_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->loop = loop;
  if (limits) s->lim = *limits;
  else halo_httpd_limits_default(&s->lim);
  s->dispatch = dispatch;
  s->closed_conn = closed_conn;
  s->ud = ud;
  halo_smap_init(&s->routes);
  halo_imap_init(&s->conns);
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  s->listener_open = 1;
  return s;
}

int halo_httpd_listen(halo_httpd_t *s, const char *host, int port) {
  struct sockaddr_storage sa;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa))
    return UV_EINVAL;
  int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
  if (rc) return rc;
  int len = sizeof sa;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&sa, &len);
  s->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                           : ((struct sockaddr_in *)&sa)->sin_port);
  return 0;
}

int halo_httpd_port(const halo_httpd_t *s) { return s->port; }

static void on_listener_closed(uv_handle_t *h) {
  halo_httpd_t *s = h->data;
  s->listener_open = 0;
  server_maybe_free(s);
}

void halo_httpd_close(halo_httpd_t *s, uint32_t drain_ms, halo_httpd_closed_cb closed, void *ud) {
  if (s->closing) return;
  s->closing = 1;
  s->closed = closed;
  s->closed_ud = ud;
  s->drain_ms = drain_ms;
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
  for (conn_t *c = s->list, *next; c; c = next) {
    next = c->next;
    if (c->closing) continue;
    if (!c->nslots && !c->in_msg && !c->out.len && !c->writing) {
      conn_close(c);
    } else {
      conn_drain(c, drain_ms);
      maybe_finish(c);
    }
  }
}

static int check_text(const char *t) {
  return t && !strpbrk(t, "\r\n");
}

static int route_put(halo_httpd_t *s, const char *path, route_t *nr) {
  if (!path || path[0] != '/' || !check_text(path)) return HALO_EINCORRECT;
  route_t *old = halo_smap_get(&s->routes, path);
  if (old) {
    nr->path = old->path;
    halo_smap_put(&s->routes, nr->path, nr);
    free(old->ctype);
    free(old->body);
    free(old);
    return 0;
  }
  nr->path = strdup(path);
  if (!nr->path || halo_smap_put(&s->routes, nr->path, nr)) {
    free(nr->path);
    return HALO_ENOMEM;
  }
  return 0;
}

int halo_httpd_route_static(halo_httpd_t *s, const char *path, unsigned methods, int status,
                            const char *content_type, const char *body, size_t len) {
  if (status < 200 || status > 999 || (content_type && !check_text(content_type))) return HALO_EINCORRECT;
  route_t *r = calloc(1, sizeof *r);
  if (!r) return HALO_ENOMEM;
  r->kind = R_STATIC;
  r->methods = methods;
  r->status = status;
  r->ctype = strdup(content_type ? content_type : TEXT);
  r->body = malloc(len ? len : 1);
  if (!r->ctype || !r->body) {
    free(r->ctype);
    free(r->body);
    free(r);
    return HALO_ENOMEM;
  }
  if (len) memcpy(r->body, body, len);
  r->blen = len;
  int rc = route_put(s, path, r);
  if (rc) {
    free(r->ctype);
    free(r->body);
    free(r);
  }
  return rc;
}

static int route_simple(halo_httpd_t *s, const char *path, unsigned methods, int kind, halo_httpd_handler_cb cb,
                        void *ud) {
  route_t *r = calloc(1, sizeof *r);
  if (!r) return HALO_ENOMEM;
  r->kind = kind;
  r->methods = methods;
  r->cb = cb;
  r->ud = ud;
  int rc = route_put(s, path, r);
  if (rc) free(r);
  return rc;
}

int halo_httpd_route_c(halo_httpd_t *s, const char *path, unsigned methods, halo_httpd_handler_cb cb, void *ud) {
  if (!cb) return HALO_EINCORRECT;
  return route_simple(s, path, methods, R_C, cb, ud);
}

int halo_httpd_route_process(halo_httpd_t *s, const char *path, unsigned methods, void *ud) {
  return route_simple(s, path, methods, R_PROCESS, NULL, ud);
}

int halo_httpd_unroute(halo_httpd_t *s, const char *path) {
  route_t *r = halo_smap_del(&s->routes, path);
  if (!r) return HALO_EINCORRECT;
  free(r->path);
  free(r->ctype);
  free(r->body);
  free(r);
  return 0;
}

void halo_httpd_stats(const halo_httpd_t *s, halo_httpd_stats_t *out) {
  *out = s->st;
  out->buffered = 0;
  for (size_t i = 0; i < s->conns.cap; i++) {
    const conn_t *c = s->conns.slots[i].val;
    if (c) out->buffered += c->head.cap + c->body.cap;
  }
}
void halo_httpd_count_handler_error(halo_httpd_t *s) { s->st.handler_errors++; }

halo_httpd_conn_t *halo_httpd_conn_find(halo_httpd_t *s, uint64_t id) { return halo_imap_get(&s->conns, id); }
uint64_t halo_httpd_conn_id(const halo_httpd_conn_t *c) { return c->id; }
void *halo_httpd_conn_ud(const halo_httpd_conn_t *c) { return c->ud; }
void halo_httpd_conn_set_ud(halo_httpd_conn_t *c, void *ud) { c->ud = ud; }

/* The oldest process request of c still waiting for its answer to start. */
static slot_t *waiting(conn_t *c, int state) {
  for (slot_t *sl = c->sh; sl; sl = sl->next)
    if (sl->process && sl->state != SL_DONE) return sl->state == state ? sl : NULL;
  return NULL;
}

int halo_httpd_respond(halo_httpd_conn_t *c, int status, const char *headers, size_t hlen, const char *body,
                       size_t blen) {
  if (c->closing) return UV_EPIPE;
  slot_t *sl = waiting(c, SL_PENDING);
  if (!sl) return UV_EINVAL;
  int rc = answer(c, sl, status, NULL, headers, hlen, body, blen);
  if (rc) return rc;
  advance(c);
  return 0;
}

int halo_httpd_stream_start(halo_httpd_conn_t *c, int status, const char *headers, size_t hlen) {
  if (c->closing) return UV_EPIPE;
  slot_t *sl = waiting(c, SL_PENDING);
  if (!sl) return UV_EINVAL;
  int v10 = sl->v10, none = bodyless(status); /* 204, 304: the head alone, as for HEAD */
  if (v10 && !none) sl->close = 1;
  sl->chunked = !v10 && !sl->head && !none;
  buf_t *b = sl == c->sh ? &c->out : &sl->buf;
  size_t before = b->len;
  if (put_head(b, status, sl->close, v10, NULL, headers, hlen, none ? 0 : v10 ? -2 : -1)) {
    conn_close(c);
    return UV_ENOMEM;
  }
  if (sl != c->sh) c->queued += b->len - before;
  sl->state = sl->head || none ? SL_DONE : SL_STREAM;
  advance(c);
  return 0;
}

int halo_httpd_stream_write(halo_httpd_conn_t *c, const char *data, size_t len) {
  if (c->closing || c->shut) return UV_EPIPE;
  slot_t *sl = waiting(c, SL_STREAM);
  if (!sl) return c->draining ? UV_EPIPE : UV_EINVAL;
  if (!len || sl->head) return 0;
  int rc = 0;
  if (sl->chunked) {
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    rc = emit(c, sl, size, (size_t)n);
    if (!rc) rc = emit(c, sl, data, len);
    if (!rc) rc = emit(c, sl, "\r\n", 2);
  } else {
    rc = emit(c, sl, data, len);
  }
  if (rc) return rc;
  if (sl == c->sh) conn_flush(c);
  return c->closing ? UV_EPIPE : 0;
}

int halo_httpd_stream_finish(halo_httpd_conn_t *c) {
  if (c->closing) return UV_EPIPE;
  slot_t *sl = waiting(c, SL_STREAM);
  if (!sl) return c->draining ? UV_EPIPE : UV_EINVAL;
  if (sl->chunked && emit(c, sl, "0\r\n\r\n", 5)) return UV_EPIPE;
  sl->state = SL_DONE;
  advance(c);
  return 0;
}

void halo_httpd_conn_fail(halo_httpd_conn_t *c) {
  if (c->closing) return;
  halo_httpd_t *s = c->s;
  for (slot_t *sl = c->sh; sl; sl = sl->next) {
    if (!sl->process || sl->state == SL_DONE) continue;
    sl->close = 1;
    if (sl->state == SL_PENDING) {
      s->st.handler_gone++;
      answer(c, sl, 503, TEXT, NULL, 0, "handler gone\n", 13);
    } else {
      sl->state = SL_DONE; /* a stream cut short: the close tells the client */
    }
    if (c->closing) return;
  }
  c->stop_parse = 1;
  advance(c);
  if (!c->closing && !c->fake) conn_drain(c, 0);
  if (!c->closing) maybe_finish(c);
}

halo_httpd_conn_t *halo__httpd_conn_fake(halo_httpd_t *s) {
  conn_t *c = conn_new(s, 1);
  if (!c) return NULL;
  c->counted = 1;
  s->st.connections++;
  snprintf(c->remote, sizeof c->remote, "127.0.0.1:1");
  arm(c, T_HEAD, s->lim.header_timeout);
  return c;
}

void halo__httpd_conn_feed(halo_httpd_conn_t *c, const char *data, size_t len) {
  if (c->closing || c->paused) {
    if (!c->closing && buf_add(&c->pend, data, len)) conn_close(c);
    return;
  }
  parse(c, data, len);
}
