/*
 * One TCP link of the transport (halo_conn_t): opening it (accept, dial),
 * reading frames off it, its write buffer and the coalesced flush, the
 * back-pressure on its senders, keep-alive and closing.
 */
#include "net_internal.h"
#include "clock.h"
#include "errors.h"
#include "process.h"
#include "rel.h"
#include "scheduler.h"
#include "prof.h"

#include <stdlib.h>
#include <string.h>

#define HANDSHAKE_FRAME_MAX 1024
#define FLUSH_AT (256u << 10)  /* write at once when a link's buffer passes this */
#define SPARE_MAX (4u << 20)   /* keep a written buffer for reuse up to this size */

typedef struct wreq {
  uv_write_t req;
  uv_buf_t buf;
  uint8_t *data;            /* the buffer given up by the link */
  size_t cap;
} wreq_t;

static void flush(halo_conn_t *c);

/* -- back-pressure ------------------------------------------------------------ */

size_t halo__net_waiting(halo_conn_t *c) { return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + c->out.len; }

/* A sender that found the link congested waits for it at its next yield. */
void halo__net_throttle(halo_conn_t *c, halo_proc_t *p) {
  halo_proc_ext_t *x = halo__proc_ext(p);
  if (!x || x->throttled) return;
  if (c->nthrottled == c->capthrottled) {
    uint32_t cap = c->capthrottled ? c->capthrottled * 2 : 8;
    uint64_t *v = realloc(c->throttled, cap * sizeof *v);
    if (!v) return;
    c->throttled = v;
    c->capthrottled = cap;
  }
  c->throttled[c->nthrottled++] = p->id;
  x->throttled = HALO_THROTTLED;
}

/* The link drained (or closed): its senders go on. */
static void unthrottle(halo_conn_t *c) {
  halo_node_t *n = c->net->node;
  for (uint32_t i = 0; i < c->nthrottled; i++) {
    halo_proc_t *p = halo_proc_find(n, c->throttled[i]);
    if (!p || !p->ext) continue;
    int parked = p->ext->throttled == HALO_PARKED;
    p->ext->throttled = 0;
    if (parked && p->wait == HALO_WAIT_SLEEP && !p->wake) halo_sched_wake(n, p, HALO_WAKE_TIMEOUT);
  }
  c->nthrottled = 0;
}

/* -- closing ------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h) {
  halo_conn_t *c = h->data;
  if (--c->open_handles > 0) return;
  free(c->rbuf);
  free(c->throttled);
  halo_mpw_free(&c->out);
  free(c->spare);
  free(c);
}

void halo__net_report_dial(halo_conn_t *c, int ok, const char *why) {
  if (!c->dial_id) return;
  halo_net_t *net = c->net;
  struct halo_dial_result *r = &net->results[net->next_result++ % 32];
  r->id = c->dial_id;
  r->ok = ok;
  snprintf(r->why, sizeof r->why, "%s", why ? why : "closed");
  c->dial_id = 0;
}

/* Closes c. why == NULL: a quiet close (a duplicate, a replaced link,
 * the node stopping): nothing is counted or logged. */
void halo__net_conn_close(halo_conn_t *c, const char *why) {
  if (c->closing) return;
  flush(c); /* what is buffered (a REJECT, the last frames) goes first */
  if (c->closing) return; /* the write failed and closed it */
  c->closing = 1;
  halo__net_report_dial(c, 0, why);
  halo_net_t *net = c->net;
  if (c->prev) c->prev->next = c->next;
  else net->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  halo__net_session_unlink(c, why);
  unthrottle(c);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* -- writing ------------------------------------------------------------------ */

static void on_written(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  halo_conn_t *c = req->handle->data;
  c->writing--;
  if (!c->spare && w->cap <= SPARE_MAX && !c->closing) {
    c->spare = w->data;
    c->spare_cap = w->cap;
  } else {
    free(w->data);
  }
  free(w);
  if (status < 0 && !c->closing) return halo__net_conn_close(c, uv_strerror(status));
  if (c->nthrottled && !c->closing && halo__net_waiting(c) <= DRAINED) unthrottle(c);
}

/* Hands the buffered frames to the socket: written at once when it takes
 * them, else queued behind the writes in flight (the buffer goes with them
 * and a fresh one takes its place). */
static void flush(halo_conn_t *c) {
  if (c->closing || !c->out.len || c->state == C_CONNECTING) return;
  size_t off = 0;
  if (!c->writing) {
    uv_buf_t b = uv_buf_init((char *)c->out.buf, (unsigned)c->out.len);
    int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r == (int)c->out.len) {
      c->out.len = 0;
      return;
    }
    if (r < 0 && r != UV_EAGAIN) {
      c->out.len = 0;
      return halo__net_conn_close(c, uv_strerror(r));
    }
    if (r > 0) off = (size_t)r;
  }
  wreq_t *w = malloc(sizeof *w);
  if (!w) {
    c->out.len = 0;
    return halo__net_conn_close(c, "out of memory");
  }
  w->data = c->out.buf;
  w->cap = c->out.cap;
  w->buf = uv_buf_init((char *)c->out.buf + off, (unsigned)(c->out.len - off));
  c->out.buf = c->spare;
  c->out.cap = c->spare ? c->spare_cap : 0;
  c->out.len = 0;
  c->spare = NULL;
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_written);
  if (rc) {
    free(w->data);
    free(w);
    return halo__net_conn_close(c, uv_strerror(rc));
  }
  c->writing++;
}

void halo_net_flush(halo_net_t *net) {
  for (halo_conn_t *c = net->conns, *next; c; c = next) {
    next = c->next; /* a failed write unlinks c */
    if (c->out.len) flush(c);
  }
}

/* Starts a frame of this type in o with head bytes of body to fill;
 * returns the frame's offset, or -1 (out of memory). */
long halo__net_frame_begin(halo_mpw_t *o, uint8_t type, const void *head, size_t hlen) {
  size_t start = o->len;
  uint8_t *p = halo_mpw_reserve(o, 5 + hlen);
  if (!p) {
    o->err = 0;
    o->len = start;
    return -1;
  }
  p[4] = type;
  if (hlen) memcpy(p + 5, head, hlen);
  return (long)start;
}

/* Closes the frame(s) begun at start in c's buffer (c NULL: a peer's
 * pending buffer): the length, counters, an early write of a full buffer. */
void halo__net_frame_end(halo_mpw_t *o, halo_conn_t *c, size_t start, int patch) {
  size_t len = o->len - start;
  if (patch) put32(o->buf + start, (uint32_t)(len - 4));
  if (!c) return;
  if (c->peer) c->peer->bytes_out += len;
  c->last_tx = halo_clock_ns();
  if (o->len >= FLUSH_AT) flush(c);
}

/* Appends one frame to o: type, then the pieces a and b as its body. */
int halo__net_put_frame(halo_mpw_t *o, halo_conn_t *c, uint8_t type, const void *a, size_t alen, const void *b,
                        size_t blen) {
  long start = halo__net_frame_begin(o, type, a, alen);
  if (start < 0) return HALO_ENOMEM;
  if (blen) {
    uint8_t *p = halo_mpw_reserve(o, blen);
    if (!p) {
      o->err = 0;
      o->len = (size_t)start;
      return HALO_ENOMEM;
    }
    memcpy(p, b, blen);
  }
  halo__net_frame_end(o, c, (size_t)start, 1);
  return 0;
}

int halo__net_send_frame(halo_conn_t *c, uint8_t type, const void *a, size_t alen, const void *b, size_t blen) {
  if (c->closing) return HALO_ENOCONN;
  return halo__net_put_frame(&c->out, c, type, a, alen, b, blen);
}

void halo__net_protocol_error(halo_conn_t *c, const char *why) {
  c->net->protocol_errors++;
  halo__net_conn_close(c, why);
}

/* -- reading ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  halo_conn_t *c = h->data;
  (void)suggested;
  if (c->rcap - c->rlen < 65536) {
    size_t nc = c->rcap ? c->rcap * 2 : 65536;
    while (nc - c->rlen < 65536) nc *= 2;
    uint8_t *nb = realloc(c->rbuf, nc);
    if (!nb) {
      *buf = uv_buf_init(NULL, 0);
      return;
    }
    c->rbuf = nb;
    c->rcap = nc;
  }
  *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void link_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  halo_conn_t *c = s->data;
  (void)buf;
  if (c->state == C_YIELDED) { /* the peer closes it: the wait goes on (see halo__net_handshake_timeout) */
    uv_read_stop(s);
    return;
  }
  if (nread < 0) {
    const char *why = nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread);
    return c->state == C_UP || c->state == C_YIELDED ? halo__net_conn_close(c, why)
                                                     : halo__net_handshake_failed(c, why);
  }
  if (nread == 0) return;
  c->rlen += (size_t)nread;
  c->last_rx = halo_clock_ns();
  if (c->peer && c->state == C_UP) c->peer->bytes_in += (uint64_t)nread;
  size_t off = 0;
  while (!c->closing) {
    uint32_t limit = c->state == C_UP ? (c->max_in ? c->max_in + FRAME_SLACK : HALO_NET_MAX_FRAME)
                                      : HANDSHAKE_FRAME_MAX;
    int type;
    const uint8_t *body;
    size_t blen;
    long k = halo_frame_next(c->rbuf + off, c->rlen - off, limit, &type, &body, &blen);
    if (!k) break;
    if (k < 0) {
      c->net->protocol_errors++;
      if (c->state != C_UP) return halo__net_handshake_failed(c, "oversized or empty frame");
      return halo__net_conn_close(c, "received a frame over the size limit");
    }
    off += (size_t)k;
    if (c->state == C_UP) halo__net_receive(c, type, body, body + blen);
    else halo__net_handshake_receive(c, type, body, body + blen);
  }
  if (c->closing) return;
  memmove(c->rbuf, c->rbuf + off, c->rlen - off);
  c->rlen -= off;
  if (!c->rlen && c->rcap > (1u << 20)) { /* after a big frame: back to small */
    free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = 0;
  }
}

/* Marked for the CPU profiler (core/prof.h). */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  int was = halo_prof_enter(HALO_PROF_NET);
  link_read(s, nread, buf);
  halo_prof_leave(was);
}

/* -- opening ------------------------------------------------------------------ */

static halo_conn_t *conn_new(halo_net_t *net, int dialer) {
  halo_conn_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  if (halo_random(c->nonce_self, NONCE)) {
    /* no system randomness: refuse rather than use guessable nonces */
    halo_log_proc(net->node, NULL, HALO_LOG_ERROR, "no randomness for a handshake nonce");
    free(c);
    return NULL;
  }
  c->net = net;
  c->dialer = dialer;
  uv_tcp_init(net->node->loop, &c->tcp);
  uv_timer_init(net->node->loop, &c->timer);
  c->tcp.data = c->timer.data = c->connect.data = c;
  c->open_handles = 2;
  c->next = net->conns;
  if (net->conns) net->conns->prev = c;
  net->conns = c;
  uv_timer_start(&c->timer, halo__net_handshake_timeout, HALO_NET_HANDSHAKE_MS, 0);
  return c;
}

void halo__net_on_connection(uv_stream_t *server, int status) {
  halo_net_t *net = server->data;
  if (status < 0) return;
  halo_conn_t *c = conn_new(net, 0);
  if (!c) return;
  if (uv_accept(server, (uv_stream_t *)&c->tcp)) return halo__net_conn_close(c, "accept failed");
  c->state = C_WAIT_HELLO;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connected(uv_connect_t *req, int status) {
  halo_conn_t *c = req->data;
  if (c->closing) return;
  if (status < 0) return halo__net_handshake_failed(c, uv_strerror(status));
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  halo__net_hello(c);
}

/* Dials host:port: a session-opening dial (join == 0; for = the peer it
 * re-establishes, or NULL) or a pool member joining for's session. */
int halo__net_dial(halo_net_t *net, const char *host, int port, const char *expect, halo_peer_t *for_peer, int join,
                   uint64_t *id) {
  struct sockaddr_storage addr;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr))
    return HALO_EINCORRECT;
  halo_conn_t *c = conn_new(net, 1);
  if (!c) return HALO_ENOMEM;
  c->state = C_CONNECTING;
  snprintf(c->host, sizeof c->host, "%s", host);
  c->port = port;
  c->redial = for_peer;
  c->join = join;
  if (join) {
    for_peer->joining++;
    memcpy(c->session, for_peer->session, NONCE);
  } else if (for_peer) {
    for_peer->dialing = 1;
  }
  if (!join) c->dial_id = ++net->next_dial;
  if (id) *id = c->dial_id;
  snprintf(c->expect, sizeof c->expect, "%s", expect ? expect : "");
  int rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, on_connected);
  if (rc) {
    halo__net_handshake_failed(c, uv_strerror(rc)); /* schedules the next re-dial, if any */
    return for_peer && !join ? 0 : rc; /* a join that cannot even start: dial_joins stops */
  }
  return 0;
}

/* -- keep-alive --------------------------------------------------------------- */

/* Pings the quiet links, closes the silent ones. */
void halo__net_keepalive(halo_net_t *net, uint64_t now) {
  uint64_t period = (uint64_t)net->keepalive_ms * 1000000u;
  for (halo_conn_t *c = net->conns, *next; c; c = next) {
    next = c->next;
    if (c->state != C_UP || c->closing || !period) continue;
    if (now - c->last_rx > period * net->keepalive_misses) {
      halo__net_conn_close(c, "the peer went silent (no keep-alive)");
      continue;
    }
    if (now - c->last_tx >= period) halo__net_send_frame(c, F_PING, NULL, 0, NULL, 0);
  }
}
