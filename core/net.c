#include "net.h"
#include "clock.h"
#include "errors.h"
#include "event.h"
#include "frame.h"
#include "msgpack.h"
#include "process.h"
#include "rel.h"
#include "scheduler.h"

#include <stdlib.h>
#include <zlib.h>
#include <string.h>

enum { C_CONNECTING, C_HELLO_SENT, C_WAIT_HELLO, C_WAIT_PROOF, C_WAIT_WELCOME, C_UP, C_YIELDED };

#define NONCE HALO_NET_NONCE
#define VERSION HALO_FRAME_VERSION
#define HELLO_JOIN HALO_FRAME_HELLO_JOIN
#define HANDSHAKE_FRAME_MAX 1024
#define FLUSH_AT (256u << 10)  /* write at once when a link's buffer passes this */
#define SPARE_MAX (4u << 20)   /* keep a written buffer for reuse up to this size */
#define CONGESTED (8u << 20)   /* bytes waiting on a link that make its senders wait */
#define DRAINED (2u << 20)     /* ... until no more than this waits */
#define PENDING_MAX (8u << 20) /* bytes held for a peer being dialed */
#define JOIN_WAIT_NS 1000000000u /* a session is used with the links it has after this */
#define CREATIONS_MAX (64u << 10) /* remote identifiers whose run is remembered, per generation */
#define FRAME_SLACK HALO_FRAME_SLACK

struct halo_conn {
  halo_conn_t *next, *prev;
  halo_net_t *net;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect;
  int state, dialer, closing, open_handles;
  int join;                 /* a pool member joining an existing session */
  int slot;                 /* its index in peer->links once up */
  uint8_t nonce_self[NONCE], nonce_peer[NONCE];
  uint8_t session[NONCE];   /* join: the session it joins */
  char peer_name[256];
  uint64_t peer_creation;
  uint64_t peer_age;        /* the peer node's age in seconds, from the handshake */
  uint32_t max_in;          /* the message size limit this side advertised on this link (0: none) */
  halo_peer_t *peer;        /* set once up */
  halo_peer_t *redial;      /* the peer this dial re-establishes or joins */
  uint64_t dial_id;         /* this side's dial, reported once in net->results */
  char expect[256];         /* the node this dial means to reach ("" = any) */
  char why[128];            /* YIELD: the peer's reason */
  char host[64];            /* dialed address */
  int port;
  uint64_t last_rx, last_tx;
  uint8_t *rbuf;
  size_t rlen, rcap;
  halo_mpw_t out;           /* frames not yet handed to the socket */
  uint64_t *throttled;      /* processes that sent while it was congested */
  uint32_t nthrottled, capthrottled;
  uint8_t *spare;           /* a written buffer kept for reuse */
  size_t spare_cap;
  int writing;              /* uv_writes in flight */
};

typedef struct wreq {
  uv_write_t req;
  uv_buf_t buf;
  uint8_t *data;            /* the buffer given up by the link */
  size_t cap;
} wreq_t;

typedef halo_frame_asm_t assembly_t;

/* the wire's big-endian helpers (frame.c) */
#define put32 halo__put32
#define get32 halo__get32
#define put64 halo__put64
#define get64 halo__get64

static void on_tick(uv_timer_t *t);

/* -- closing ----------------------------------------------------------------- */

static void free_handle(uv_handle_t *h) { free(h); }

static void on_handle_closed(uv_handle_t *h) {
  halo_conn_t *c = h->data;
  if (--c->open_handles > 0) return;
  free(c->rbuf);
  free(c->throttled);
  halo_mpw_free(&c->out);
  free(c->spare);
  free(c);
}

static void report_dial(halo_conn_t *c, int ok, const char *why) {
  if (!c->dial_id) return;
  halo_net_t *net = c->net;
  struct halo_dial_result *r = &net->results[net->next_result++ % 32];
  r->id = c->dial_id;
  r->ok = ok;
  snprintf(r->why, sizeof r->why, "%s", why ? why : "closed");
  c->dial_id = 0;
}

int halo_net_dial_result(halo_net_t *net, uint64_t id, const char **why) {
  for (int i = 0; i < 32; i++) {
    if (net->results[i].id != id) continue;
    if (why) *why = net->results[i].why;
    return net->results[i].ok ? 1 : -1;
  }
  return 0;
}

static void schedule_redial(halo_peer_t *p) {
  p->backoff_ms = p->backoff_ms ? (p->backoff_ms * 2 > 5000 ? 5000 : p->backoff_ms * 2) : 100;
  p->retry_at = halo_clock_ns() + (uint64_t)p->backoff_ms * 1000000u;
}

static void flush(halo_conn_t *c);
static void drop_session(halo_net_t *net, halo_peer_t *p);
static halo_conn_t *own_dial(halo_net_t *net, const char *name, const halo_conn_t *except);

static halo_conn_t *pick_link(const halo_peer_t *p, uint64_t from);
static void protocol_error(halo_conn_t *c, const char *why);
static int send_message(halo_net_t *net, halo_node_t *n, halo_proc_t *from, uint32_t node, uint64_t to_id,
                        const char *name, int kind, int queue, uint64_t ref, halo_payload_t pl);

static halo_peer_t *peer_named(halo_net_t *net, const char *name) {
  if (!name || !*name) return NULL;
  halo_peer_t *p = halo_imap_get(&net->peers, halo_crc32(name, strlen(name)));
  return p && !strcmp(p->name, name) ? p : NULL;
}

/* The messages in a pending buffer (a fragmented one counts once). */
static uint64_t count_msgs(const halo_mpw_t *b) {
  uint64_t n = 0;
  int type;
  const uint8_t *body;
  size_t blen;
  for (size_t off = 0, k; off < b->len; off += k) {
    long r = halo_frame_next(b->buf + off, b->len - off, HALO_NET_MAX_FRAME, &type, &body, &blen);
    if (r <= 0) break;
    k = (size_t)r;
    int base = type & 0x7f;
    n += base == F_MSG || base == F_REPLY || base == F_MSG_NAME || (type == F_FRAG && !get32(body + 12));
  }
  return n;
}

/* Empties p's pending buffers: into the links of a ready session
 * (deliver), or away (what does not fit a link is counted as dropped). */
static void clear_pending(halo_net_t *net, halo_peer_t *p, int deliver) {
  for (size_t i = 0; i < p->pending.cap; i++) {
    halo_mpw_t *b = p->pending.slots[i].val;
    if (!b) continue;
    halo_conn_t *l = deliver ? pick_link(p, p->pending.slots[i].key - 1) : NULL;
    uint8_t *dst = l ? halo_mpw_reserve(&l->out, b->len) : NULL;
    if (dst) {
      memcpy(dst, b->buf, b->len);
      p->bytes_out += b->len;
    } else if (deliver) {
      if (l) l->out.err = 0;
      net->pending_dropped += count_msgs(b);
    }
    halo_mpw_free(b);
    free(b);
  }
  halo_imap_destroy(&p->pending);
  halo_imap_init(&p->pending);
  p->pending_bytes = 0;
  p->pending_msgs = 0;
}

/* Messages held for a session that will not come: lost, counted, and the
 * relations waiting on that node end ("no connection"). */
static void drop_pending(halo_net_t *net, halo_peer_t *p, const char *why) {
  int had = p->pending.len > 0;
  if (had && p->pending_msgs)
    halo_log_proc(net->node, NULL, HALO_LOG_WARNING, "dropped %llu messages to %s: %s",
                  (unsigned long long)p->pending_msgs, p->name, why);
  net->pending_dropped += p->pending_msgs;
  clear_pending(net, p, 0);
  if (had && !p->live && !net->closing) {
    halo_payload_t reason = net->node->hooks.reason(net->node, "no connection");
    halo__rel_node_down(net->node, p->crc, &reason);
    net->node->hooks.release(net->node, reason);
  }
}

static uint64_t node_age(halo_net_t *net) { return (halo_clock_ns() - net->node->t_start) / 1000000000u; }

static size_t waiting(halo_conn_t *c) { return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + c->out.len; }

/* A sender that found the link congested waits for it at its next yield. */
static void throttle(halo_conn_t *c, halo_proc_t *p) {
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

/* Drops what is being reassembled from p; counted as timed out (lost). */
/* all == 0: only those without a new piece for quiet_ns. */
static void drop_assemblies(halo_peer_t *p, int all, uint64_t quiet_ns) {
  uint64_t now = halo_clock_ns();
  for (size_t i = 0; i < p->assemblies.cap; i++) {
    assembly_t *a = p->assemblies.slots[i].val;
    if (!a || (!all && now - a->last < quiet_ns)) continue;
    halo_imap_del(&p->assemblies, p->assemblies.slots[i].key);
    halo_frame_asm_free(a, &p->assembly_bytes);
    free(a);
    p->frag_timeouts++;
    i = (size_t)-1; /* the map may have shrunk: rescan */
  }
}

/* The peer has no link left: links and monitors across it end. */
static void peer_lost(halo_net_t *net, halo_peer_t *p, const char *why) {
  p->ready = 0;
  drop_pending(net, p, why);
  net->connections_lost++;
  halo_log_proc(net->node, NULL, HALO_LOG_WARNING, "connection to %s lost: %s", p->name, why);
  halo_payload_t reason = net->node->hooks.reason(net->node, "no connection");
  halo__rel_node_down(net->node, p->crc, &reason);
  halo__event_node_down(net->node, p->crc);
  net->node->hooks.release(net->node, reason);
  if (p->port && !net->closing) {
    p->backoff_ms = 0;
    schedule_redial(p);
  }
}

/* Closes c. why == NULL: a quiet close (a duplicate, a replaced link,
 * the node stopping): nothing is counted or logged. */
static void conn_close(halo_conn_t *c, const char *why) {
  if (c->closing) return;
  flush(c); /* what is buffered (a REJECT, the last frames) goes first */
  if (c->closing) return; /* the write failed and closed it */
  c->closing = 1;
  report_dial(c, 0, why);
  halo_net_t *net = c->net;
  if (c->prev) c->prev->next = c->next;
  else net->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  halo_peer_t *r = c->redial;
  if (r) {
    if (c->join) r->joining--;
    else r->dialing = 0;
    if (!c->join && !r->live && !net->closing && r->port) schedule_redial(r);
  }
  /* a failed session dial: what waited for it is lost (unless another dial
   * or session of that peer may still carry it) */
  halo_peer_t *w = !c->join && c->state != C_UP && why ? (r ? r : peer_named(net, c->expect[0] ? c->expect : c->peer_name))
                                                         : NULL;
  if (w && !w->live && !w->dialing && !own_dial(net, w->name, c)) drop_pending(net, w, why);
  halo_peer_t *p = c->peer;
  if (p && p->links[c->slot] == c) {
    p->links[c->slot] = NULL;
    p->live--;
    if (why && c->join && !p->ready && p->live) {
      /* a join lost before READY: the session goes on without it (READY says so) */
    } else if (why) { /* one link lost: the session is (its frames are gone, order cannot hold) */
      drop_session(net, p);
      peer_lost(net, p, why);
    } else if (!p->live) {
      p->ready = 0;
    }
  } else if (why && c->state != C_UP) {
    halo_log_proc(net->node, NULL, HALO_LOG_WARNING, "connection %s%s%s%s failed: %s", c->peer_name[0] ? "with " : "",
                  c->peer_name, c->port ? (c->peer_name[0] ? " at " : "to ") : "", c->port ? c->host : "", why);
  }
  unthrottle(c);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void handshake_failed(halo_conn_t *c, const char *why) {
  c->net->handshake_errors++;
  conn_close(c, why);
}

/* -- writing ----------------------------------------------------------------- */

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
  if (status < 0 && !c->closing) return conn_close(c, uv_strerror(status));
  if (c->nthrottled && !c->closing && waiting(c) <= DRAINED) unthrottle(c);
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
      return conn_close(c, uv_strerror(r));
    }
    if (r > 0) off = (size_t)r;
  }
  wreq_t *w = malloc(sizeof *w);
  if (!w) {
    c->out.len = 0;
    return conn_close(c, "out of memory");
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
    return conn_close(c, uv_strerror(rc));
  }
  c->writing++;
}

void halo_net_flush(halo_net_t *net) {
  for (halo_conn_t *c = net->conns, *next; c; c = next) {
    next = c->next; /* a failed write unlinks c */
    if (c->out.len) flush(c);
  }
}

static void on_prepare(uv_prepare_t *h) { halo_net_flush(h->data); }

/* Starts a frame of this type in o with head bytes of body to fill;
 * returns the frame's offset, or -1 (out of memory). */
static long frame_begin(halo_mpw_t *o, uint8_t type, const void *head, size_t hlen) {
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
static void frame_end(halo_mpw_t *o, halo_conn_t *c, size_t start, int patch) {
  size_t len = o->len - start;
  if (patch) put32(o->buf + start, (uint32_t)(len - 4));
  if (!c) return;
  if (c->peer) c->peer->bytes_out += len;
  c->last_tx = halo_clock_ns();
  if (o->len >= FLUSH_AT) flush(c);
}

/* Appends one frame to o: type, then the pieces a and b as its body. */
static int put_frame(halo_mpw_t *o, halo_conn_t *c, uint8_t type, const void *a, size_t alen, const void *b,
                     size_t blen) {
  long start = frame_begin(o, type, a, alen);
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
  frame_end(o, c, (size_t)start, 1);
  return 0;
}

static int send_frame(halo_conn_t *c, uint8_t type, const void *a, size_t alen, const void *b, size_t blen) {
  if (c->closing) return HALO_ENOCONN;
  return put_frame(&c->out, c, type, a, alen, b, blen);
}

/* -- handshake --------------------------------------------------------------- */

/* The proof under our cookie (halo_frame_mac): 0, or UV_EIO. */
static int mac(halo_net_t *net, char tag, const uint8_t *n1, const uint8_t *n2, const char *a, const char *b,
               uint64_t creation, uint32_t max, uint8_t out[HALO_SHA256_LEN]) {
  return halo_frame_mac(net->cookie, tag, n1, n2, a, b, creation, max, out);
}

static void reject(halo_conn_t *c, const char *why) {
  send_frame(c, F_REJECT, why, strlen(why), NULL, 0);
  handshake_failed(c, why);
}

/* Not now (see net.h): not a failure, nothing counted; the dialer retries. */
static void yield(halo_conn_t *c, const char *why) {
  send_frame(c, F_YIELD, why, strlen(why), NULL, 0);
  conn_close(c, NULL);
}

/* Both dial: the peer's dial gives way to ours. */
static void yield_simultaneous(halo_conn_t *c) {
  c->net->simultaneous_connects++;
  yield(c, "simultaneous connect: our dial goes on");
}

static void on_timeout(uv_timer_t *t) {
  halo_conn_t *c = t->data;
  if (c->state == C_YIELDED) {
    char why[200];
    snprintf(why, sizeof why, "the peer said not now (%s) and did not connect itself", c->why);
    return conn_close(c, why);
  }
  if (c->state != C_UP) handshake_failed(c, "handshake timed out");
}

/* Whether the session c opens replaces p's current one, when both got
 * through (dials by address, whose target name was not known in time):
 * dialed by different nodes, the one the smaller name dialed wins; dialed by
 * the same node, the one with the smaller session id (the dialer's nonce).
 * Both sides decide alike. */
static int replaces(const halo_conn_t *c, const halo_peer_t *p) {
  const char *self = c->net->node->name;
  int d = strcmp(c->dialer ? self : c->peer_name, p->dialed ? self : p->name);
  if (d) return d < 0;
  return memcmp(c->dialer ? c->nonce_self : c->nonce_peer, p->session, NONCE) < 0;
}

/* Our own session-opening dial of `name` that is still handshaking. */
static halo_conn_t *own_dial(halo_net_t *net, const char *name, const halo_conn_t *except) {
  for (halo_conn_t *d = net->conns; d; d = d->next)
    if (d != except && d->dialer && !d->join && !d->closing && d->state != C_UP &&
        (!strcmp(d->expect, name) || !strcmp(d->peer_name, name)))
      return d;
  return NULL;
}

/* Why the peer may not join (NULL: it may). final: a refusal that stands
 * (REJECT), else not now (YIELD). */
static const char *admission(halo_conn_t *c, int *final) {
  halo_net_t *net = c->net;
  uint32_t crc = halo_crc32(c->peer_name, strlen(c->peer_name));
  *final = 1;
  if (crc == net->node->crc || crc == 0) return "the node name's hash is not usable here";
  halo_peer_t *peer = halo_imap_get(&net->peers, crc);
  if (peer && strcmp(peer->name, c->peer_name)) return "another node name with the same hash is known";
  *final = 0;
  if (c->join) {
    if (!peer || !peer->live || peer->creation != c->peer_creation || memcmp(peer->session, c->session, NONCE))
      return "no such session";
    if (peer->live >= peer->pool_size || peer->ready) return "the pool is full";
    return NULL;
  }
  if (peer && peer->live && peer->creation != c->peer_creation) return "a node of that name is connected already";
  return NULL;
}

/* The next free slot of p's pool, or -1. */
static int free_slot(const halo_peer_t *p) {
  for (int i = 0; i < p->pool_size && i < HALO_NET_POOL_MAX; i++)
    if (!p->links[i]) return i;
  return -1;
}

static void dial_joins(halo_net_t *net, halo_peer_t *p);
static int dial(halo_net_t *net, const char *host, int port, const char *expect, halo_peer_t *for_peer, int join,
                uint64_t *id);

/* Ends a session-opening link that lost to another one (quietly). */
static void lose_quietly(halo_conn_t *c) {
  report_dial(c, 1, NULL); /* connected: through the other session */
  if (c->state != C_UP && c->state != C_YIELDED && c->state != C_CONNECTING) /* so the other side counts no failure */
    send_frame(c, F_YIELD, "connected already", 17, NULL, 0);
  c->state = C_UP;
  conn_close(c, NULL);
}

/* Closes p's links without counting a loss: a session replaced them. */
static void drop_session(halo_net_t *net, halo_peer_t *p) {
  for (halo_conn_t *d = net->conns, *next; d; d = next) {
    next = d->next; /* its joins still dialing belong to it too */
    if (d->join && d->redial == p && !d->closing) conn_close(d, NULL);
  }
  for (int i = 0; i < HALO_NET_POOL_MAX; i++) {
    halo_conn_t *l = p->links[i];
    if (!l) continue;
    p->links[i] = NULL;
    p->live--;
    l->peer = NULL;
    conn_close(l, NULL);
  }
}

static halo_peer_t *peer_get(halo_net_t *net, const char *name) {
  uint32_t crc = halo_crc32(name, strlen(name));
  halo_peer_t *peer = halo_imap_get(&net->peers, crc);
  if (peer) return peer;
  peer = calloc(1, sizeof *peer);
  if (!peer || !(peer->name = strdup(name)) || halo_imap_put(&net->peers, crc, peer)) {
    if (peer) free(peer->name);
    free(peer);
    return NULL;
  }
  peer->crc = crc;
  halo_imap_init(&peer->assemblies);
  return peer;
}

/* The session's links are fixed from now on: what waited goes out, each
 * sender class on the link its senders use from now on. */
static void start_flowing(halo_net_t *net, halo_peer_t *p) {
  p->ready = 1;
  clear_pending(net, p, 1);
}

/* Dialer: the joins are in (or the wait is over): READY {count, the join
 * nonces} on the first link tells the acceptor which links the session
 * keeps. */
static void session_ready(halo_peer_t *p) {
  halo_conn_t *first = NULL;
  uint8_t body[1 + HALO_NET_POOL_MAX * NONCE];
  size_t k = 1;
  body[0] = 0;
  for (int i = 0; i < HALO_NET_POOL_MAX; i++) {
    halo_conn_t *l = p->links[i];
    if (!l) continue;
    if (!l->join) {
      first = l;
      continue;
    }
    memcpy(body + k, l->nonce_self, NONCE), k += NONCE;
    body[0]++;
  }
  if (!first || send_frame(first, F_READY, body, k, NULL, 0)) return;
  start_flowing(first->net, p);
}

/* Acceptor: READY names the joins the dialer keeps; the others go. */
static void on_ready(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_peer_t *peer = c->peer;
  if (c->dialer || c->join || peer->ready || halo_frame_ready_parse(p, end, HALO_NET_POOL_MAX) < 0)
    return protocol_error(c, "malformed ready");
  for (int j = 0; j < p[0]; j++) { /* every link it names must still be here */
    int here = 0;
    for (int i = 0; i < HALO_NET_POOL_MAX && !here; i++)
      here = peer->links[i] && peer->links[i]->join && !memcmp(peer->links[i]->nonce_peer, p + 1 + j * NONCE, NONCE);
    if (!here) return conn_close(c, "a link of the session was lost before it was ready");
  }
  for (int i = 0; i < HALO_NET_POOL_MAX; i++) {
    halo_conn_t *l = peer->links[i];
    if (!l || !l->join) continue;
    int kept = 0;
    for (int j = 0; j < p[0] && !kept; j++) kept = !memcmp(l->nonce_peer, p + 1 + j * NONCE, NONCE);
    if (kept) continue;
    peer->links[i] = NULL;
    peer->live--;
    l->peer = NULL;
    conn_close(l, NULL);
  }
  start_flowing(c->net, peer);
}

static void established(halo_conn_t *c, uint32_t max_message, int pool_size) {
  halo_net_t *net = c->net;
  int final;
  const char *no = admission(c, &final);
  if (no && c->join) return conn_close(c, NULL); /* the session went meanwhile */
  if (no) return handshake_failed(c, no);
  halo_peer_t *peer = peer_get(net, c->peer_name);
  if (!peer) return conn_close(c, "out of memory");
  int opened = 0;
  if (!c->join) {
    if (peer->live) { /* a session is up already (dials whose names were not known in time) */
      if (peer->creation == c->peer_creation && !replaces(c, peer)) return lose_quietly(c);
      drop_session(net, peer); /* replaced: not a loss */
    } else if (peer->connected_at) {
      drop_assemblies(peer, 1, 0); /* from the session that was lost */
    }
    memcpy(peer->session, c->dialer ? c->nonce_self : c->nonce_peer, NONCE);
    peer->pool_size = pool_size < 1 ? 1 : pool_size > HALO_NET_POOL_MAX ? HALO_NET_POOL_MAX : pool_size;
    peer->creation = c->peer_creation;
    peer->max_message = max_message;
    peer->dialed = c->dialer;
    peer->connected_at = halo_clock_ns();
    peer->started_at = peer->connected_at - (c->peer_age < 1000000000u ? c->peer_age : 0) * 1000000000u;
    if (c->dialer) { /* ours to re-dial if it goes */
      snprintf(peer->host, sizeof peer->host, "%s", c->host);
      peer->port = c->port;
    }
    peer->retry_at = 0;
    peer->backoff_ms = 0;
    peer->ready = 0;
    peer->ready_by = halo_clock_ns() + JOIN_WAIT_NS;
    opened = 1;
  } else if (peer->ready) { /* too late: the session's links are fixed */
    return conn_close(c, NULL);
  }
  int slot = free_slot(peer);
  if (slot < 0) return conn_close(c, NULL);
  uv_timer_stop(&c->timer);
  report_dial(c, 1, NULL);
  c->state = C_UP;
  c->peer = peer;
  c->slot = slot;
  if (c->redial) {
    if (c->join) c->redial->joining--;
    else c->redial->dialing = 0;
  }
  c->redial = NULL;
  peer->links[slot] = c;
  peer->live++;
  if (peer->links_made++ >= (uint64_t)peer->pool_size) peer->reconnections++;
  if (!opened) {
    if (c->dialer && peer->live == peer->pool_size) session_ready(peer);
    return;
  }
  net->connections_established++;
  halo_log_proc(net->node, NULL, HALO_LOG_INFO, "connected to %s (%s)", peer->name, c->dialer ? "dialed" : "accepted");
  /* our dials of it that yielded (or still run) are answered by this session */
  for (halo_conn_t *d; (d = own_dial(net, peer->name, c));) {
    if (!c->dialer) net->simultaneous_connects++; /* both dialed: ours gives way to theirs */
    lose_quietly(d);
  }
  if (c->dialer) {
    if (peer->pool_size == 1) session_ready(peer);
    else dial_joins(net, peer);
  }
}

/* Acceptor: HELLO {version, flags, name_d, nonce_d, creation_d[, session]}
 * -> CHALLENGE {name_a, nonce_a, creation_a}. Nothing derived from the
 * cookie leaves before the dialer has proved itself. */
static void on_hello(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  halo_frame_hello_t h;
  int bad = halo_frame_hello_parse(p, end, &h);
  if (bad == -2) return reject(c, "unsupported protocol version");
  if (bad) return handshake_failed(c, "malformed hello");
  c->join = h.join;
  memcpy(c->peer_name, h.name, sizeof c->peer_name);
  memcpy(c->nonce_peer, h.nonce, NONCE);
  c->peer_creation = h.creation;
  if (c->join) memcpy(c->session, h.session, NONCE);
  if (!strcmp(c->peer_name, net->node->name)) return reject(c, "duplicate node name");
  if (!c->join) {
    halo_peer_t *peer = halo_net_peer_by_name(net, c->peer_name);
    if (peer && peer->creation == c->peer_creation) return yield(c, "connected already");
    halo_conn_t *mine = own_dial(net, c->peer_name, NULL);
    /* both dial: the smaller name's dial goes on, unless ours has given its
     * proof already (the peer may have taken it as up): then ours does. The
     * other way round, ours gives way only once theirs has proved itself
     * (on_proof): an unproven HELLO must not stop a dial. */
    if (mine && mine->state != C_YIELDED &&
        (mine->state == C_WAIT_WELCOME || strcmp(net->node->name, c->peer_name) < 0))
      return yield_simultaneous(c);
  }
  uint8_t body[1 + 255 + NONCE + 8];
  size_t nl = strlen(net->node->name), k = 0;
  body[k++] = (uint8_t)nl;
  memcpy(body + k, net->node->name, nl), k += nl;
  memcpy(body + k, c->nonce_self, NONCE), k += NONCE;
  put64(body + k, net->creation), k += 8;
  if (send_frame(c, F_CHALLENGE, body, k, NULL, 0) || c->closing) return;
  c->state = C_WAIT_PROOF;
}

/* Dialer: CHALLENGE -> PROOF {MAC_D, max_d}. */
static void on_challenge(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  char name[256];
  if (halo_frame_challenge_parse(p, end, name, c->nonce_peer, &c->peer_creation))
    return handshake_failed(c, "malformed challenge");
  if (!strcmp(name, net->node->name)) return reject(c, "duplicate node name");
  if (c->expect[0] && strcmp(name, c->expect)) {
    /* not the node we meant to reach: no proof for it (its name shown as printable ASCII) */
    char why[600], shown[256];
    halo_frame_reason((const uint8_t *)name, (const uint8_t *)name + strlen(name), shown, sizeof shown);
    snprintf(why, sizeof why, "answered as %s, not %s", shown, c->expect);
    return handshake_failed(c, why);
  }
  snprintf(c->peer_name, sizeof c->peer_name, "%s", name);
  uint8_t body[HALO_SHA256_LEN + 12];
  c->max_in = net->max_message; /* what this link promised to accept */
  if (mac(net, 'D', c->nonce_peer, c->nonce_self, net->node->name, c->peer_name, net->creation, net->max_message, body))
    return handshake_failed(c, "no HMAC for our proof");
  put32(body + HALO_SHA256_LEN, net->max_message);
  put64(body + HALO_SHA256_LEN + 4, node_age(net));
  if (send_frame(c, F_PROOF, body, sizeof body, NULL, 0) || c->closing) return;
  c->state = C_WAIT_WELCOME;
}

/* Acceptor: PROOF {MAC_D, max_d, node age} checked -> WELCOME {MAC_A,
 * max_a, pool size, node age} (the ages, in seconds, are informational). */
static void on_proof(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  uint8_t want[HALO_SHA256_LEN], body[HALO_SHA256_LEN + 13];
  if (end - p != HALO_FRAME_PROOF_LEN) return handshake_failed(c, "malformed proof");
  c->peer_age = get64(p + HALO_SHA256_LEN + 4);
  uint32_t max_d = get32(p + HALO_SHA256_LEN);
  if (mac(net, 'D', c->nonce_self, c->nonce_peer, c->peer_name, net->node->name, c->peer_creation, max_d, want) ||
      !halo_digest_equal(want, p))
    return reject(c, "the dialer's proof does not match our cookie");
  int final;
  const char *no = admission(c, &final); /* refused before WELCOME: the dialer must not think it joined */
  if (no) return final ? reject(c, no) : yield(c, no);
  halo_conn_t *mine = c->join ? NULL : own_dial(net, c->peer_name, NULL);
  if (mine && mine->state == C_WAIT_WELCOME) return yield_simultaneous(c);
  /* else a dial of ours still before its proof gives way: established() ends it */
  c->max_in = net->max_message;
  if (mac(net, 'A', c->nonce_peer, c->nonce_self, net->node->name, c->peer_name, net->creation, net->max_message, body))
    return handshake_failed(c, "no HMAC for our proof");
  put32(body + HALO_SHA256_LEN, net->max_message);
  body[HALO_SHA256_LEN + 4] = (uint8_t)net->pool_size;
  put64(body + HALO_SHA256_LEN + 5, node_age(net));
  if (send_frame(c, F_WELCOME, body, sizeof body, NULL, 0) || c->closing) return;
  established(c, max_d, net->pool_size);
}

/* Dialer: WELCOME checked -> established. */
static void on_welcome(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  uint8_t want[HALO_SHA256_LEN];
  if (end - p != HALO_FRAME_WELCOME_LEN) return handshake_failed(c, "malformed welcome");
  c->peer_age = get64(p + HALO_SHA256_LEN + 5);
  uint32_t max_a = get32(p + HALO_SHA256_LEN);
  if (mac(net, 'A', c->nonce_self, c->nonce_peer, c->peer_name, net->node->name, c->peer_creation, max_a, want) ||
      !halo_digest_equal(want, p))
    return handshake_failed(c, "the acceptor's proof does not match our cookie");
  established(c, max_a, p[HALO_SHA256_LEN + 4]);
}

/* -- messages ---------------------------------------------------------------- */

#define MSG_HEAD HALO_FRAME_MSG_HEAD
#define FRAG_HEAD HALO_FRAME_FRAG_HEAD

static void protocol_error(halo_conn_t *c, const char *why) {
  c->net->protocol_errors++;
  conn_close(c, why);
}

/* A message from the wire that is not delivered: counted and logged. */
static void refuse(halo_conn_t *c, const char *why) {
  c->net->msgs_refused++;
  halo_log_proc(c->net->node, NULL, HALO_LOG_WARNING, "refused a message from %s: %s", c->peer->name, why);
}

/* A call from another node that no process here takes: it fails at once
 * with why (unknown process, full mailbox). */
static void call_refuse(halo_net_t *net, halo_pid_t caller, uint64_t ref, int why) {
  halo_node_t *n = net->node;
  halo_payload_t reason = n->hooks.reason(n, halo_strerror(why));
  if (send_message(net, n, NULL, caller.node, caller.id, NULL, HALO_MSG_REPLY | HALO_KIND_FAILED, HALO_Q_URGENT,
                   ref, reason))
    n->hooks.release(n, reason);
}

/* MSG, REPLY and MSG_NAME frames (zipped: the payload is compressed). */
static void on_msg(halo_conn_t *c, int type, int zipped, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  halo_node_t *n = net->node;
  halo_peer_t *peer = c->peer;
  halo_frame_msg_t m;
  if (halo_frame_msg_parse(type, p, end, &m)) return protocol_error(c, "malformed message frame");
  int kind = m.kind, queue = m.queue;
  halo_pid_t from = {peer->crc, m.from};
  halo_pid_t to = {n->crc, m.to};
  uint64_t ref = m.ref;
  int stale = m.creation && m.creation != net->creation; /* addressed to an earlier run */
  const uint8_t *payload = m.payload;
  size_t len = m.len;
  halo_proc_t *t = NULL;
  halo_creations_learn(&net->creations, HALO_ID_PID, from.node, from.id, peer->creation);
  if (type == F_MSG_NAME) {
    uint32_t crc;
    uint64_t alias;
    if (!strncmp(m.name, "Alias#", 6)) /* an alias of ours, sent from there */
      t = !halo_ref_parse(m.name, strlen(m.name), "Alias", &crc, &alias) && crc == n->crc ? halo_alias_lookup(n, alias)
                                                                                          : NULL;
    else t = halo_name_lookup(n, m.name);
  } else {
    t = halo_proc_find(n, to.id);
  }
  if (stale) t = NULL;
  peer->msgs_in++;
  if (type != F_REPLY && !halo_frame_kind_allowed(kind, queue))
    return refuse(c, "a kind of message only the node itself makes");
  uint8_t *plain = NULL;
  if (zipped) {
    size_t wire = len;
    int rc = halo_frame_inflate(payload, len, c->max_in ? c->max_in : HALO_NET_MAX_FRAME, &plain, &len);
    if (rc == -2) net->inflate_refused++;
    if (rc == -1) net->protocol_errors++;
    if (rc) return refuse(c, rc == -2 ? "it decompresses past the size limit" : "bad compressed data");
    payload = plain;
    peer->decompressed_recv++;
    peer->decompressed_bytes += wire;
    peer->decompressed_orig += len;
  }
  halo_payload_t pl;
  int bad = !n->hooks.decode || n->hooks.decode(n, payload, len, &pl);
  free(plain);
  if (bad) {
    net->protocol_errors++;
    return refuse(c, "undecodable");
  }
  int flags = kind >> HALO_KIND_FLAGS_SHIFT, base = kind & 0xff;
  if (type == F_REPLY) {
    if (stale) n->hooks.release(n, pl);
    else if (flags & HALO_MF_FAILED) {
      if (halo_proc_call_fail(n, to.id, ref, pl)) n->hooks.release(n, pl);
    } else if (halo_reply(n, NULL, to, ref, pl)) {
      n->hooks.release(n, pl); /* late: counted by halo_reply */
    }
    return;
  }
  if (t && flags & HALO_MF_NOTICE && (base == HALO_MSG_EXIT || base == HALO_MSG_DOWN))
    halo__rel_remote_fired(n, t, base == HALO_MSG_EXIT ? HALO_REL_LINK : HALO_REL_MONITOR, from, ref);
  int rc = t ? halo__enqueue(n, from, t, kind, queue, ref, pl, (uint32_t)len) : HALO_ENOPROC;
  if (rc) n->hooks.release(n, pl);
  if ((base == HALO_MSG_REQUEST || base == HALO_MSG_INSPECT) && ref) { /* a call: watched until answered */
    if (!rc) rc = halo__rel_call_taken(n, t, from, ref);
    if (rc) call_refuse(net, from, ref, rc);
  }
}

/* REL body: u8 add, u8 type, u64 watcher (there), u64 target (here), u64
 * ref (non-zero: the watcher waits for a REPLY with it), u64 the target's
 * creation (0: any), and for a target by name: u8 length, the name. */
#define REL_HEAD 34
static void on_rel(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  char name[256];
  size_t nl = end - p > REL_HEAD ? p[REL_HEAD] : 0;
  if (end - p < REL_HEAD || (end - p > REL_HEAD && (!nl || (size_t)(end - p) != REL_HEAD + 1 + nl)) || p[0] > 1 ||
      p[1] > HALO_REL_MONITOR)
    return protocol_error(c, "malformed link/monitor frame");
  memcpy(name, p + REL_HEAD + 1, nl);
  name[nl] = 0;
  if (strlen(name) != nl) return protocol_error(c, "malformed link/monitor frame");
  halo_pid_t watcher = {c->peer->crc, get64(p + 2)};
  uint64_t creation = get64(p + 26);
  halo_creations_learn(&net->creations, HALO_ID_PID, watcher.node, watcher.id, c->peer->creation);
  halo__rel_remote_request(net->node, p[0], p[1], watcher, get64(p + 10), get64(p + 18), nl ? name : NULL,
                           creation && creation != net->creation);
}

static void dispatch_up(halo_conn_t *c, int type, const uint8_t *p, const uint8_t *end);

/* A piece of a fragmented frame; the last one dispatches the whole. They
 * come in order (one sender's frames share a link). */
static void on_frag(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  halo_peer_t *peer = c->peer;
  halo_frame_frag_t f;
  uint32_t limit = c->max_in ? c->max_in + FRAME_SLACK : HALO_NET_MAX_FRAME;
  if (halo_frame_frag_parse(p, end, limit, &f)) return protocol_error(c, "malformed fragment");
  /* a peer that keeps to the limit has at most one message in pieces per
   * link: the budget never refuses that much */
  size_t budget = (size_t)peer->pool_size * limit;
  if (budget < net->assembly_budget) budget = net->assembly_budget;
  assembly_t *a = halo_imap_get(&peer->assemblies, f.id);
  if (!a) {
    if (f.off) return; /* the rest of a message dropped by the timeout: late, not wrong */
    if (peer->assemblies.len >= net->max_assemblies) return protocol_error(c, "too many fragmented messages at once");
    if (!(a = calloc(1, sizeof *a)) || halo_imap_put(&peer->assemblies, f.id, a)) {
      free(a);
      return conn_close(c, "out of memory");
    }
  }
  int rc = halo_frame_asm_add(a, &f, &peer->assembly_bytes, budget);
  if (rc == 1 || rc < 0) {
    halo_imap_del(&peer->assemblies, f.id);
    if (rc < 0) {
      halo_frame_asm_free(a, &peer->assembly_bytes);
      free(a);
      if (rc == HALO_ENOMEM) return conn_close(c, "out of memory");
      return protocol_error(c, rc == -2 ? "fragmented messages over the reassembly budget" : "a fragment out of order");
    }
  }
  a->last = halo_clock_ns(); /* the timeout counts from the last piece: a big message may take long */
  peer->frag_recv++;
  if (!rc) return;
  peer->frag_msgs_recv++;
  int type = a->buf[0];
  if ((type & 0x7f) == F_FRAG) protocol_error(c, "a fragment inside a fragment");
  else dispatch_up(c, type, a->buf + 1, a->buf + a->total);
  halo_frame_asm_free(a, &peer->assembly_bytes);
  free(a);
}

static void dispatch_up(halo_conn_t *c, int type, const uint8_t *p, const uint8_t *end) {
  int base = type & 0x7f;
  if (base == F_MSG || base == F_REPLY || base == F_MSG_NAME) return on_msg(c, base, type & 0x80, p, end);
  if (type == F_REL) return on_rel(c, p, end);
  if (type == F_FRAG) return on_frag(c, p, end);
  if (type == F_READY) return on_ready(c, p, end);
  if (type == F_PING) return; /* its arrival is the point */
  protocol_error(c, "unexpected frame type");
}

static void dispatch(halo_conn_t *c, int type, const uint8_t *p, const uint8_t *end) {
  switch (c->state) {
  case C_UP: return dispatch_up(c, type, p, end);
  case C_WAIT_HELLO:
    if (type == F_HELLO) return on_hello(c, p, end);
    break;
  case C_HELLO_SENT:
    if (type == F_CHALLENGE) return on_challenge(c, p, end);
    break;
  case C_WAIT_PROOF:
    if (type == F_PROOF) return on_proof(c, p, end);
    break;
  case C_WAIT_WELCOME:
    if (type == F_WELCOME) return on_welcome(c, p, end);
    break;
  case C_YIELDED:
    return; /* waiting for the peer's own dial; nothing here matters */
  }
  char why[128];
  halo_frame_reason(p, end, why, sizeof why);
  if (type == F_REJECT) {
    if (c->redial && !c->join) c->redial->port = 0; /* a refusal is an answer: no more re-dials */
    return handshake_failed(c, why);
  }
  if (type == F_YIELD && !c->dialer) return conn_close(c, NULL); /* the dialer got there another way */
  if (type == F_YIELD && c->dialer) {
    if (halo_net_peer_by_name(c->net, c->peer_name[0] ? c->peer_name : c->expect)) return lose_quietly(c);
    if (c->join) return conn_close(c, NULL); /* the session goes on without it (READY says so) */
    c->state = C_YIELDED; /* until the peer's dial arrives, or the timer ends it */
    snprintf(c->why, sizeof c->why, "%s", why);
    uv_timer_start(&c->timer, on_timeout, 2000, 0);
    return;
  }
  handshake_failed(c, "unexpected frame during the handshake");
}

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

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  halo_conn_t *c = s->data;
  (void)buf;
  if (c->state == C_YIELDED) { /* the peer closes it: the wait goes on (see on_timeout) */
    uv_read_stop(s);
    return;
  }
  if (nread < 0) {
    const char *why = nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread);
    return c->state == C_UP || c->state == C_YIELDED ? conn_close(c, why) : handshake_failed(c, why);
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
      if (c->state != C_UP) return handshake_failed(c, "oversized or empty frame");
      return conn_close(c, "received a frame over the size limit");
    }
    off += (size_t)k;
    dispatch(c, type, body, body + blen);
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

/* -- connections --------------------------------------------------------------- */

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
  uv_timer_start(&c->timer, on_timeout, HALO_NET_HANDSHAKE_MS, 0);
  return c;
}

static void on_connection(uv_stream_t *server, int status) {
  halo_net_t *net = server->data;
  if (status < 0) return;
  halo_conn_t *c = conn_new(net, 0);
  if (!c) return;
  if (uv_accept(server, (uv_stream_t *)&c->tcp)) return conn_close(c, "accept failed");
  c->state = C_WAIT_HELLO;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connected(uv_connect_t *req, int status) {
  halo_conn_t *c = req->data;
  if (c->closing) return;
  if (status < 0) return handshake_failed(c, uv_strerror(status));
  halo_net_t *net = c->net;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  uint8_t body[3 + 255 + 2 * NONCE + 8];
  size_t nl = strlen(net->node->name), k = 0;
  body[k++] = VERSION;
  body[k++] = c->join ? HELLO_JOIN : 0;
  body[k++] = (uint8_t)nl;
  memcpy(body + k, net->node->name, nl), k += nl;
  memcpy(body + k, c->nonce_self, NONCE), k += NONCE;
  put64(body + k, net->creation), k += 8;
  if (c->join) memcpy(body + k, c->session, NONCE), k += NONCE;
  int yielded = c->state == C_YIELDED; /* the peer's dial came first: stay quiet */
  c->state = C_HELLO_SENT;
  if (yielded) c->state = C_YIELDED;
  else send_frame(c, F_HELLO, body, k, NULL, 0);
}

/* -- routing --------------------------------------------------------------------- */

/* The link for messages from sender id: the same one every time while the
 * pool holds, so one sender's messages stay ordered. */
static halo_conn_t *pick_link(const halo_peer_t *p, uint64_t from) {
  int k = p->pool_size > 0 ? p->pool_size : 1;
  int i = (int)((from % 255) % (uint64_t)k);
  for (int j = 0; j < HALO_NET_POOL_MAX; j++) {
    halo_conn_t *c = p->links[(i + j) % HALO_NET_POOL_MAX];
    if (c) return c;
  }
  return NULL;
}

/* Replaces the payload at [at, o->len) by its zlib compression when that
 * makes it smaller; returns 1 when it did. */
static int compress_in_place(halo_mpw_t *o, halo_peer_t *p, size_t at) {
  size_t n = o->len - at;
  uLongf zlen = compressBound((uLong)n);
  uint8_t *z = malloc(zlen);
  int done = z && compress2(z, &zlen, o->buf + at, (uLong)n, Z_BEST_SPEED) == Z_OK && 4 + zlen < n;
  if (done) {
    put32(o->buf + at, (uint32_t)n);
    memcpy(o->buf + at + 4, z, zlen);
    o->len = at + 4 + zlen;
    p->compressed_sent++;
    p->compressed_bytes += 4 + zlen;
    p->compressed_orig += n;
  }
  free(z);
  return done;
}

/* Splits the frame at [start, o->len) into FRAG frames of at most piece
 * bytes in place: the pieces move right, last first, to make room for their
 * heads. */
static int fragment_in_place(halo_mpw_t *o, halo_peer_t *p, size_t piece, size_t start) {
  size_t body = o->len - start - 4;
  size_t count = (body + piece - 1) / piece, grow = count * (4 + 1 + FRAG_HEAD) - 4;
  if (!halo_mpw_reserve(o, grow)) {
    o->err = 0;
    o->len = start;
    return HALO_ENOMEM;
  }
  uint8_t *b = o->buf + start;
  uint64_t id = ++p->next_frag;
  for (size_t i = count; i-- > 0;) {
    size_t off = i * piece, n = body - off < piece ? body - off : piece;
    uint8_t *f = b + i * (4 + 1 + FRAG_HEAD + piece);
    memmove(f + 5 + FRAG_HEAD, b + 4 + off, n); /* its destination is never left of its source */
    put32(f, (uint32_t)(1 + FRAG_HEAD + n));
    f[4] = F_FRAG;
    put64(f + 5, id);
    put32(f + 13, (uint32_t)body);
    put32(f + 17, (uint32_t)off);
  }
  p->frag_sent += count;
  p->frag_msgs_sent++;
  return 0;
}

/* Where frames from sender id `from` to node crc go: the link the sender
 * picks in a ready session (*cp set), or, while the session opens or is
 * dialed (a registrar's route starts the dial: connecting is automatic on
 * first use), the pending buffer of the sender's class (*cp NULL). NULL:
 * no connection and no route. */
static halo_mpw_t *out_for(halo_net_t *net, uint32_t node, uint64_t from, halo_peer_t **pp, halo_conn_t **cp) {
  halo_peer_t *peer = halo_imap_get(&net->peers, node);
  *cp = NULL;
  if (peer && peer->ready) {
    halo_conn_t *c = pick_link(peer, from);
    if (!c || c->closing) return NULL;
    *pp = peer;
    *cp = c;
    return &c->out;
  }
  if (net->closing) return NULL;
  if (!peer || !peer->live) {
    const halo_net_route_t *r = halo_imap_get(&net->routes, node);
    if (!r) return NULL;
    if (!peer && !(peer = peer_get(net, r->name))) return NULL;
    if (strcmp(peer->name, r->name)) return NULL;
    if (!peer->dialing && !own_dial(net, r->name, NULL)) {
      snprintf(peer->host, sizeof peer->host, "%s", r->host);
      peer->port = r->port;
      peer->retry_at = 0;
      if (dial(net, r->host, r->port, r->name, peer, 0, NULL) || !peer->dialing) return NULL;
    }
  }
  if (peer->pending_bytes > PENDING_MAX) return NULL;
  uint64_t key = from % 255 + 1;
  halo_mpw_t *b = halo_imap_get(&peer->pending, key);
  if (!b) {
    if (!(b = calloc(1, sizeof *b)) || halo_imap_put(&peer->pending, key, b)) {
      free(b);
      return NULL;
    }
  }
  *pp = peer;
  return b;
}

/* target_creation's answer for a target of an earlier run of its node. */
#define STALE UINT64_MAX

/* The creation to send with a message to node's process to_id (or alias
 * name there): the one it was seen with, 0 when unknown, STALE when it
 * belongs to a run before the one connected now. */
static uint64_t target_creation(halo_net_t *net, uint32_t node, uint64_t to_id, const char *name) {
  uint64_t creation = 0, alias;
  uint32_t crc;
  if (!name) creation = halo_creations_get(&net->creations, HALO_ID_PID, node, to_id);
  else if (!strncmp(name, "Alias#", 6) && !halo_ref_parse(name, strlen(name), "Alias", &crc, &alias))
    creation = halo_creations_get(&net->creations, HALO_ID_ALIAS, crc, alias);
  halo_peer_t *peer = creation ? halo_imap_get(&net->peers, node) : NULL;
  return peer && peer->ready && peer->creation != creation ? STALE : creation;
}

/* Encodes pl straight into the link's buffer (or the pending one) as one
 * frame: the message head, then (for a name target) the name's length and
 * bytes, then the payload, compressed when the sending process asked for
 * it and the payload is over the threshold (and compression makes it
 * smaller), in fragments when the frame is over the fragment size. On
 * success the route owns pl and releases it; on failure the caller does. */
static int send_message(halo_net_t *net, halo_node_t *n, halo_proc_t *from, uint32_t node, uint64_t to_id,
                        const char *name, int kind, int queue, uint64_t ref, halo_payload_t pl) {
  if (!n->hooks.encode) return HALO_ENOTALLOWED;
  size_t nl = name ? strlen(name) : 0;
  if (name && (!nl || nl > 255)) return HALO_EINCORRECT;
  uint64_t creation = target_creation(net, node, to_id, name);
  if (creation == STALE) return HALO_ENOPROC;
  halo_peer_t *peer;
  halo_conn_t *c;
  halo_mpw_t *o = out_for(net, node, from ? from->id : 1, &peer, &c);
  if (!o) return HALO_ENOCONN;
  uint8_t head[MSG_HEAD + 1 + 255];
  head[0] = (uint8_t)(kind >> 8), head[1] = (uint8_t)kind, head[2] = (uint8_t)queue;
  put64(head + 3, from ? from->id : 1);
  put64(head + 11, to_id);
  put64(head + 19, ref);
  put64(head + 27, creation);
  size_t hlen = MSG_HEAD;
  if (name) {
    head[hlen++] = (uint8_t)nl;
    memcpy(head + hlen, name, nl), hlen += nl;
  }
  int base = kind & 0xff;
  uint8_t type = name ? F_MSG_NAME : base == HALO_MSG_REPLY ? F_REPLY : F_MSG;
  long start = frame_begin(o, type, head, hlen);
  if (start < 0) return HALO_ENOMEM;
  size_t at = o->len;
  int zip = from && from->ext && from->ext->compress;
  size_t limit = peer->max_message && !zip ? peer->max_message : HALO_NET_MAX_FRAME - 320;
  o->max = at + limit;
  int rc = n->hooks.encode(n, pl, o);
  o->max = 0;
  if (!rc && zip && o->len - at > net->compress_threshold && compress_in_place(o, peer, at))
    o->buf[start + 4] |= 0x80;
  if (!rc && peer->max_message && o->len - at > peer->max_message) rc = HALO_ETOOLARGE;
  if (rc) {
    o->err = 0;
    o->len = (size_t)start;
    return rc;
  }
  int whole = !net->fragment_size || o->len - (size_t)start - 4 <= net->fragment_size;
  if (!whole && (rc = fragment_in_place(o, peer, net->fragment_size, (size_t)start))) return rc;
  size_t before = (size_t)start;
  frame_end(o, c, before, whole);
  peer->msgs_out++;
  if (!c) {
    peer->pending_msgs++;
    peer->pending_bytes += o->len - before;
  }
  n->hooks.release(n, pl); /* sent: the route owned it */
  if (from && ref && (base == HALO_MSG_REQUEST || base == HALO_MSG_INSPECT)) halo__rel_call_sent(n, from, node, ref);
  if (from && ref && kind == HALO_MSG_REPLY) halo__rel_call_done(n, from, (halo_pid_t){node, to_id}, ref);
  if (c && from && waiting(c) > CONGESTED && !c->closing && halo_proc_find(n, from->id) == from) throttle(c, from);
  return 0;
}

static int route_send(void *ud, halo_node_t *n, halo_proc_t *from, halo_pid_t to, int kind, int queue,
                      uint64_t ref, halo_payload_t pl, uint32_t size) {
  (void)size;
  return send_message(ud, n, from, to.node, to.id, NULL, kind, queue, ref, pl);
}

static int route_send_name(void *ud, halo_node_t *n, halo_proc_t *from, uint32_t node, const char *name, int kind,
                           int queue, uint64_t ref, halo_payload_t pl, uint32_t size) {
  (void)size;
  return send_message(ud, n, from, node, 0, name, kind, queue, ref, pl);
}

static int route_rel(void *ud, halo_node_t *n, int add, int type, uint64_t watcher, halo_pid_t target,
                     uint64_t ref, const char *name) {
  halo_net_t *net = ud;
  (void)n;
  size_t nl = name ? strlen(name) : 0;
  if (name && (!nl || nl > 255)) return HALO_EINCORRECT;
  uint64_t creation = name ? 0 : target_creation(net, target.node, target.id, NULL);
  if (creation == STALE) return HALO_ENOPROC;
  halo_peer_t *peer;
  halo_conn_t *c;
  halo_mpw_t *o = out_for(net, target.node, watcher, &peer, &c);
  if (!o) return HALO_ENOCONN;
  uint8_t body[REL_HEAD + 1 + 255];
  body[0] = (uint8_t)(add != 0);
  body[1] = (uint8_t)type;
  put64(body + 2, watcher);
  put64(body + 10, target.id);
  put64(body + 18, ref);
  put64(body + 26, creation);
  size_t len = REL_HEAD;
  if (name) {
    body[len++] = (uint8_t)nl;
    memcpy(body + len, name, nl), len += nl;
  }
  int rc = put_frame(o, c, F_REL, body, len, NULL, 0);
  if (!rc && !c) peer->pending_bytes += 5 + len;
  return rc;
}

/* -- API ----------------------------------------------------------------------------- */

int halo_net_init(halo_net_t *net, halo_node_t *n, const char *cookie) {
  memset(net, 0, sizeof *net);
  net->node = n;
  if (!(net->cookie = strdup(cookie))) return HALO_ENOMEM;
  if (halo_random(&net->creation, sizeof net->creation)) return UV_EIO; /* no randomness: no node id */
  if (!net->creation || net->creation == STALE) net->creation = 1; /* 0: "unknown" on the wire */
  halo_imap_init(&net->peers);
  halo_imap_init(&net->routes);
  halo_creations_init(&net->creations, CREATIONS_MAX);
  net->route.send = route_send;
  net->route.rel = route_rel;
  net->route.send_name = route_send_name;
  net->route.ud = net;
  net->keepalive_ms = 1000;
  net->compress_threshold = 1024;
  net->keepalive_misses = 3;
  net->pool_size = 3;
  net->fragment_size = 65000;
  net->fragment_timeout_ms = 30000;
  net->max_assemblies = 1000;
  net->max_message = HALO_NET_MAX_MESSAGE;
  net->assembly_budget = HALO_NET_ASSEMBLY_BUDGET;
  if (!(net->tick = malloc(sizeof *net->tick)) || !(net->flush = malloc(sizeof *net->flush))) return HALO_ENOMEM;
  uv_timer_init(n->loop, net->tick);
  net->tick->data = net;
  uv_timer_start(net->tick, on_tick, 100, 100);
  uv_unref((uv_handle_t *)net->tick);
  uv_prepare_init(n->loop, net->flush);
  net->flush->data = net;
  uv_prepare_start(net->flush, on_prepare);
  uv_unref((uv_handle_t *)net->flush);
  n->route = &net->route;
  return 0;
}

int halo_net_listen(halo_net_t *net, const char *host, int port) {
  if (net->acceptor) return HALO_ETAKEN;
  int first = port ? port : HALO_NET_DEFAULT_PORT, last = port ? port : first + 99, rc = 0;
  for (int p = first; p <= last; p++) {
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, p, (struct sockaddr_in *)&addr) && uv_ip6_addr(host, p, (struct sockaddr_in6 *)&addr))
      return HALO_EINCORRECT;
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t) return HALO_ENOMEM;
    uv_tcp_init(net->node->loop, t);
    t->data = net;
    rc = uv_tcp_bind(t, (const struct sockaddr *)&addr, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)t, 128, on_connection);
    if (!rc) {
      net->acceptor = t;
      net->port = p;
      snprintf(net->host, sizeof net->host, "%s", host);
      return 0;
    }
    uv_close((uv_handle_t *)t, free_handle); /* a failed bind spoils the handle */
    if (rc != UV_EADDRINUSE) break;
  }
  return rc;
}

/* Dials host:port: a session-opening dial (join == 0; for = the peer it
 * re-establishes, or NULL) or a pool member joining for's session. */
static int dial(halo_net_t *net, const char *host, int port, const char *expect, halo_peer_t *for_peer, int join,
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
    handshake_failed(c, uv_strerror(rc)); /* schedules the next re-dial, if any */
    return for_peer && !join ? 0 : rc; /* a join that cannot even start: dial_joins stops */
  }
  return 0;
}

/* Opens the rest of p's pool (this side dialed its session). */
static void dial_joins(halo_net_t *net, halo_peer_t *p) {
  while (p->port && p->dialed && p->live && !p->ready && p->live + p->joining < p->pool_size && !net->closing)
    if (dial(net, p->host, p->port, p->name, p, 1, NULL)) break;
}

int halo_net_connect(halo_net_t *net, const char *host, int port, const char *expect, uint64_t *id) {
  return dial(net, host, port, expect, NULL, 0, id);
}

/* Every 100 ms: ping quiet links, drop silent ones, re-dial lost peers and
 * links, drop fragmented messages that stopped coming. */
static void on_tick(uv_timer_t *t) {
  halo_net_t *net = t->data;
  uint64_t now = halo_clock_ns(), period = (uint64_t)net->keepalive_ms * 1000000u;
  for (halo_conn_t *c = net->conns, *next; c; c = next) {
    next = c->next;
    if (c->state != C_UP || c->closing || !period) continue;
    if (now - c->last_rx > period * net->keepalive_misses) {
      conn_close(c, "the peer went silent (no keep-alive)");
      continue;
    }
    if (now - c->last_tx >= period) send_frame(c, F_PING, NULL, 0, NULL, 0);
  }
  uint64_t quiet = (uint64_t)net->fragment_timeout_ms * 1000000u;
  for (size_t i = 0; i < net->peers.cap; i++) {
    halo_peer_t *p = net->peers.slots[i].val;
    if (!p) continue;
    if (p->assemblies.len) drop_assemblies(p, 0, quiet);
    if (p->live && p->dialed && !p->ready && now >= p->ready_by) session_ready(p); /* with the links it has */
    if (p->live && !p->dialed && !p->ready && now >= p->ready_by + (uint64_t)HALO_NET_HANDSHAKE_MS * 1000000u) {
      halo_conn_t *first = NULL; /* the dialer never said READY: the session goes */
      for (int k = 0; k < HALO_NET_POOL_MAX && !first; k++)
        if (p->links[k] && !p->links[k]->join) first = p->links[k];
      if (first) conn_close(first, "no READY from the dialer");
    }
    if (p->live || p->dialing || !p->retry_at || now < p->retry_at) continue;
    p->retry_at = 0;
    if (dial(net, p->host, p->port, p->name, p, 0, NULL)) schedule_redial(p);
  }
}

halo_peer_t *halo_net_peer_by_name(halo_net_t *net, const char *name) {
  halo_peer_t *p = halo_imap_get(&net->peers, halo_crc32(name, strlen(name)));
  return p && p->live ? p : NULL;
}

static void free_peers(halo_net_t *net) {
  for (size_t i = 0; i < net->peers.cap; i++) {
    halo_peer_t *p = net->peers.slots[i].val;
    if (!p) continue;
    drop_assemblies(p, 1, 0);
    halo_imap_destroy(&p->assemblies);
    drop_pending(net, p, "the node stops");
    halo_imap_destroy(&p->pending);
    free(p->name);
    free(p);
  }
  halo_imap_destroy(&net->peers);
  for (size_t i = 0; i < net->routes.cap; i++) free(net->routes.slots[i].val);
  halo_imap_destroy(&net->routes);
}

void halo_net_close(halo_net_t *net) {
  net->closing = 1;
  if (net->tick) uv_close((uv_handle_t *)net->tick, free_handle);
  net->tick = NULL;
  if (net->flush) uv_close((uv_handle_t *)net->flush, free_handle);
  net->flush = NULL;
  while (net->conns) {
    halo_conn_t *c = net->conns;
    if (c->peer) c->peer->links[c->slot] = NULL;
    c->peer = NULL;
    conn_close(c, NULL);
  }
  if (net->acceptor) uv_close((uv_handle_t *)net->acceptor, free_handle);
  net->acceptor = NULL;
  if (net->node->route == &net->route) net->node->route = NULL;
  free_peers(net);
  halo_creations_destroy(&net->creations);
  free(net->cookie);
  net->cookie = NULL;
}

uint64_t halo_net_creation_of(halo_net_t *net, int kind, uint32_t node, uint64_t id) {
  if (node == net->node->crc) return net->creation;
  return halo_creations_get(&net->creations, kind, node, id);
}

void halo_net_learn(halo_net_t *net, int kind, uint32_t node, uint64_t id, uint64_t creation) {
  if (node == net->node->crc) { /* ours: only an earlier run's is worth remembering */
    if (creation && creation != net->creation) net->stale_self = 1;
    if (!net->stale_self) return;
  }
  halo_creations_learn(&net->creations, kind, node, id, creation);
}

int halo_net_stale(halo_net_t *net, int kind, uint64_t id) {
  if (!net->stale_self) return 0;
  uint64_t creation = halo_creations_get(&net->creations, kind, net->node->crc, id);
  return creation && creation != net->creation;
}

int halo_net_route_set(halo_net_t *net, const char *name, const char *host, int port) {
  size_t nl = strlen(name);
  if (!nl || nl > 255 || !strchr(name, '@') || strlen(host) >= 64 || port <= 0 || port > 65535) return HALO_EINCORRECT;
  uint32_t crc = halo_crc32(name, nl);
  if (crc == net->node->crc || crc == 0) return HALO_EINCORRECT;
  halo_net_route_t *r = halo_imap_get(&net->routes, crc);
  if (!r) {
    if (!(r = calloc(1, sizeof *r)) || halo_imap_put(&net->routes, crc, r)) {
      free(r);
      return HALO_ENOMEM;
    }
  }
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->host, sizeof r->host, "%s", host);
  r->port = port;
  halo_peer_t *p = peer_get(net, name);
  if (!p || strcmp(p->name, name)) return p ? HALO_EINCORRECT : HALO_ENOMEM;
  snprintf(p->host, sizeof p->host, "%s", host); /* re-dialed while the route stands */
  p->port = port;
  if (p->live || p->dialing || own_dial(net, name, NULL)) return 0;
  p->retry_at = 0;
  return dial(net, host, port, name, p, 0, NULL);
}

void halo_net_route_del(halo_net_t *net, const char *name) {
  uint32_t crc = halo_crc32(name, strlen(name));
  free(halo_imap_del(&net->routes, crc));
  halo_peer_t *p = halo_imap_get(&net->peers, crc);
  if (p && !strcmp(p->name, name)) p->port = 0, p->retry_at = 0;
}

const halo_net_route_t *halo_net_route(halo_net_t *net, uint32_t crc) { return halo_imap_get(&net->routes, crc); }
