#include "net.h"
#include "clock.h"
#include "errors.h"
#include "msgpack.h"
#include "process.h"
#include "rel.h"
#include "sha256.h"

#include <stdlib.h>
#include <zlib.h>
#include <string.h>

enum { F_HELLO = 1, F_CHALLENGE, F_PROOF, F_WELCOME, F_REJECT, F_PING, F_MSG = 16, F_REPLY, F_REL, F_MSG_NAME };
enum { C_CONNECTING, C_HELLO_SENT, C_WAIT_HELLO, C_WAIT_PROOF, C_WAIT_WELCOME, C_UP };

#define NONCE 16
#define VERSION 1
#define HANDSHAKE_FRAME_MAX 1024

struct halo_conn {
  halo_conn_t *next, *prev;
  halo_net_t *net;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect;
  int state, dialer, closing, open_handles;
  uint8_t nonce_self[NONCE], nonce_peer[NONCE];
  char peer_name[256];
  uint64_t peer_creation;
  halo_peer_t *peer;
  halo_peer_t *redial;      /* the peer this dial re-establishes */
  uint64_t dial_id;         /* this side's dial, reported once in net->results */
  char expect[256];         /* the node this dial means to reach ("" = any) */
  char host[64];            /* dialed address */
  int port;
  uint64_t last_rx, last_tx;
  uint8_t *rbuf;
  size_t rlen, rcap;
};

typedef struct wreq {
  uv_write_t req;
  uv_buf_t buf;
  uint8_t data[];
} wreq_t;

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void on_tick(uv_timer_t *t);

/* -- closing ----------------------------------------------------------------- */

static void free_handle(uv_handle_t *h) { free(h); }

static void on_handle_closed(uv_handle_t *h) {
  halo_conn_t *c = h->data;
  if (--c->open_handles > 0) return;
  free(c->rbuf);
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

static void conn_close(halo_conn_t *c, const char *why) {
  if (c->closing) return;
  c->closing = 1;
  report_dial(c, 0, why);
  halo_net_t *net = c->net;
  if (c->prev) c->prev->next = c->next;
  else net->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->redial) {
    c->redial->dialing = 0;
    if (!c->redial->conn && !net->closing) schedule_redial(c->redial);
  }
  if (c->peer && c->peer->conn == c) {
    c->peer->conn = NULL;
    net->connections_lost++;
    halo_log_proc(net->node, NULL, HALO_LOG_WARNING, "connection to %s lost: %s", c->peer->name, why);
    /* links and monitors across this link end with "no connection" */
    halo_payload_t reason = net->node->hooks.reason(net->node, "no connection");
    halo__rel_node_down(net->node, c->peer->crc, &reason);
    net->node->hooks.release(net->node, reason);
    if (c->peer->port && !net->closing) {
      c->peer->backoff_ms = 0;
      schedule_redial(c->peer);
    }
  } else if (why && c->state != C_UP) {
    halo_log_proc(net->node, NULL, HALO_LOG_WARNING, "connection %s%s%s%s failed: %s", c->peer_name[0] ? "with " : "",
                  c->peer_name, c->port ? (c->peer_name[0] ? " at " : "to ") : "", c->port ? c->host : "", why);
  }
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
  if (status < 0 && !c->closing) conn_close(c, uv_strerror(status));
  free(w);
}

/* Sends one frame: type, then the pieces a and b as its body. */
static int send_frame(halo_conn_t *c, uint8_t type, const void *a, size_t alen, const void *b, size_t blen) {
  if (c->closing) return HALO_ENOCONN;
  size_t body = 1 + alen + blen;
  if (body > UINT32_MAX) return HALO_ETOOLARGE;
  wreq_t *w = malloc(sizeof *w + 4 + body);
  if (!w) return HALO_ENOMEM;
  put32(w->data, (uint32_t)body);
  w->data[4] = type;
  if (alen) memcpy(w->data + 5, a, alen);
  if (blen) memcpy(w->data + 5 + alen, b, blen);
  w->buf = uv_buf_init((char *)w->data, (unsigned)(4 + body));
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_written);
  if (rc) {
    free(w);
    conn_close(c, uv_strerror(rc));
    return HALO_ENOCONN;
  }
  if (c->peer && c->state == C_UP) c->peer->bytes_out += 4 + body;
  c->last_tx = halo_clock_ns();
  return 0;
}

/* -- handshake --------------------------------------------------------------- */

/* HMAC(cookie, tag | nonce1 | nonce2 | name1 | 0 | name2 | creation | max):
 * bound to both nonces, both names, the prover's creation id and the
 * message size limit it advertises. */
static void mac(halo_net_t *net, char tag, const uint8_t *n1, const uint8_t *n2, const char *a, const char *b,
                uint64_t creation, uint32_t max, uint8_t out[HALO_SHA256_LEN]) {
  uint8_t msg[1 + 2 * NONCE + 2 * 256 + 1 + 12];
  size_t k = 0, al = strlen(a), bl = strlen(b);
  msg[k++] = (uint8_t)tag;
  memcpy(msg + k, n1, NONCE), k += NONCE;
  memcpy(msg + k, n2, NONCE), k += NONCE;
  memcpy(msg + k, a, al), k += al;
  msg[k++] = 0;
  memcpy(msg + k, b, bl), k += bl;
  put64(msg + k, creation), k += 8;
  put32(msg + k, max), k += 4;
  halo_hmac_sha256(net->cookie, strlen(net->cookie), msg, k, out);
}

/* A name field: length byte, then "name@host". */
static int read_name(const uint8_t **p, const uint8_t *end, char out[256]) {
  if (*p >= end) return -1;
  size_t n = **p;
  (*p)++;
  if (n == 0 || (size_t)(end - *p) < n) return -1;
  memcpy(out, *p, n);
  out[n] = 0;
  *p += n;
  if (strlen(out) != n || !strchr(out, '@')) return -1;
  return 0;
}

static void reject(halo_conn_t *c, const char *why) {
  send_frame(c, F_REJECT, why, strlen(why), NULL, 0);
  handshake_failed(c, why);
}

static void on_timeout(uv_timer_t *t) {
  halo_conn_t *c = t->data;
  if (c->state != C_UP) handshake_failed(c, "handshake timed out");
}

/* Which of two links between the same pair survives. Dialed by different
 * nodes: the one the smaller name dialed. Dialed by the same node: the one
 * whose dialer nonce is smaller. Both sides decide alike. */
static const char *dialer_name(const halo_conn_t *c) { return c->dialer ? c->net->node->name : c->peer_name; }
static const uint8_t *dialer_nonce(const halo_conn_t *c) { return c->dialer ? c->nonce_self : c->nonce_peer; }
static int keep_first(const halo_conn_t *a, const halo_conn_t *b) {
  int d = strcmp(dialer_name(a), dialer_name(b));
  if (d) return d < 0;
  return memcmp(dialer_nonce(a), dialer_nonce(b), NONCE) < 0;
}

/* Why the peer may not join (NULL: it may): its name's hash clashes with
 * ours, with 0 (the "local" marker of relations) or with a known node, or a
 * node of that name from another run is connected. */
static const char *admission(halo_conn_t *c) {
  halo_net_t *net = c->net;
  uint32_t crc = halo_crc32(c->peer_name, strlen(c->peer_name));
  if (crc == net->node->crc || crc == 0) return "the node name's hash is not usable here";
  halo_peer_t *peer = halo_imap_get(&net->peers, crc);
  if (peer && strcmp(peer->name, c->peer_name)) return "another node name with the same hash is known";
  if (peer && peer->conn && peer->conn != c && peer->creation != c->peer_creation)
    return "a node of that name is connected already";
  return NULL;
}

static void established(halo_conn_t *c, uint32_t max_message) {
  halo_net_t *net = c->net;
  uint32_t crc = halo_crc32(c->peer_name, strlen(c->peer_name));
  const char *no = admission(c);
  if (no) return handshake_failed(c, no);
  halo_peer_t *peer = halo_imap_get(&net->peers, crc);
  if (!peer) {
    peer = calloc(1, sizeof *peer);
    if (!peer || !(peer->name = strdup(c->peer_name)) || halo_imap_put(&net->peers, crc, peer)) {
      if (peer) free(peer->name);
      free(peer);
      conn_close(c, "out of memory");
      return;
    }
    peer->crc = crc;
  }
  int replaced = 0;
  if (peer->conn && peer->conn != c) {
    if (!keep_first(c, peer->conn)) {
      report_dial(c, 1, NULL); /* connected: through the other link */
      c->state = C_UP;
      conn_close(c, NULL); /* the other link stays */
      return;
    }
    halo_conn_t *old = peer->conn;
    peer->conn = NULL; /* not a loss: replaced */
    old->peer = NULL;
    conn_close(old, NULL);
    replaced = 1;
  }
  uv_timer_stop(&c->timer);
  report_dial(c, 1, NULL);
  c->state = C_UP;
  c->peer = peer;
  if (peer->connected_at && !replaced) peer->reconnections++;
  peer->conn = c;
  peer->creation = c->peer_creation;
  peer->dialed = c->dialer;
  if (c->dialer) { /* ours to re-dial if it goes */
    snprintf(peer->host, sizeof peer->host, "%s", c->host);
    peer->port = c->port;
  }
  peer->retry_at = 0;
  peer->backoff_ms = 0;
  if (c->redial) c->redial->dialing = 0;
  c->redial = NULL;
  peer->connected_at = halo_clock_ns();
  peer->max_message = max_message;
  net->connections_established++;
  halo_log_proc(net->node, NULL, HALO_LOG_INFO, "connected to %s (%s)", peer->name, c->dialer ? "dialed" : "accepted");
}

/* Acceptor: HELLO {version, name_d, nonce_d, creation_d} -> CHALLENGE {name_a,
 * nonce_a, creation_a}. Nothing derived from the cookie leaves before the
 * dialer has proved itself. */
static void on_hello(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  if (p >= end || *p++ != VERSION) return reject(c, "unsupported protocol version");
  if (read_name(&p, end, c->peer_name) || end - p != NONCE + 8) return handshake_failed(c, "malformed hello");
  memcpy(c->nonce_peer, p, NONCE);
  c->peer_creation = get64(p + NONCE);
  if (!strcmp(c->peer_name, net->node->name)) return reject(c, "duplicate node name");
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
  if (read_name(&p, end, name) || end - p != NONCE + 8) return handshake_failed(c, "malformed challenge");
  memcpy(c->nonce_peer, p, NONCE);
  c->peer_creation = get64(p + NONCE);
  if (!strcmp(name, net->node->name)) return reject(c, "duplicate node name");
  if (c->expect[0] && strcmp(name, c->expect)) {
    /* not the node we meant to reach: no proof for it */
    char why[600];
    snprintf(why, sizeof why, "answered as %s, not %s", name, c->expect);
    return handshake_failed(c, why);
  }
  snprintf(c->peer_name, sizeof c->peer_name, "%s", name);
  uint8_t body[HALO_SHA256_LEN + 4];
  mac(net, 'D', c->nonce_peer, c->nonce_self, net->node->name, c->peer_name, net->creation, net->max_message, body);
  put32(body + HALO_SHA256_LEN, net->max_message);
  if (send_frame(c, F_PROOF, body, sizeof body, NULL, 0) || c->closing) return;
  c->state = C_WAIT_WELCOME;
}

/* Acceptor: PROOF checked -> WELCOME {MAC_A, max_a}. */
static void on_proof(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  uint8_t want[HALO_SHA256_LEN], body[HALO_SHA256_LEN + 4];
  if (end - p != HALO_SHA256_LEN + 4) return handshake_failed(c, "malformed proof");
  uint32_t max_d = get32(p + HALO_SHA256_LEN);
  mac(net, 'D', c->nonce_self, c->nonce_peer, c->peer_name, net->node->name, c->peer_creation, max_d, want);
  if (!halo_digest_equal(want, p)) return reject(c, "the dialer's proof does not match our cookie");
  const char *no = admission(c); /* refused before WELCOME: the dialer must not think it joined */
  if (no) return reject(c, no);
  mac(net, 'A', c->nonce_peer, c->nonce_self, net->node->name, c->peer_name, net->creation, net->max_message, body);
  put32(body + HALO_SHA256_LEN, net->max_message);
  if (send_frame(c, F_WELCOME, body, sizeof body, NULL, 0) || c->closing) return;
  established(c, max_d);
}

/* Dialer: WELCOME checked -> established. */
static void on_welcome(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  uint8_t want[HALO_SHA256_LEN];
  if (end - p != HALO_SHA256_LEN + 4) return handshake_failed(c, "malformed welcome");
  uint32_t max_a = get32(p + HALO_SHA256_LEN);
  mac(net, 'A', c->nonce_self, c->nonce_peer, c->peer_name, net->node->name, c->peer_creation, max_a, want);
  if (!halo_digest_equal(want, p)) return handshake_failed(c, "the acceptor's proof does not match our cookie");
  established(c, max_a);
}

/* -- messages ---------------------------------------------------------------- */

/* MSG body: u16 kind (with flags), u8 queue, u64 from, u64 to, u64 ref, payload. */
#define MSG_HEAD 27

/* A compressed payload: u32 original length, then a zlib stream. Returns a
 * malloc'ed buffer with *len set, or NULL. */
static uint8_t *inflate_payload(const uint8_t *p, size_t n, size_t *len) {
  if (n < 4) return NULL;
  uLongf out = get32(p);
  if (out == 0 || out > HALO_NET_MAX_FRAME) return NULL;
  uint8_t *buf = malloc(out);
  if (!buf) return NULL;
  if (uncompress(buf, &out, p + 4, (uLong)(n - 4)) != Z_OK || out != get32(p)) {
    free(buf);
    return NULL;
  }
  *len = out;
  return buf;
}

/* MSG, REPLY and MSG_NAME frames (zipped: the payload is compressed). */
static void on_msg(halo_conn_t *c, int type, int zipped, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  halo_node_t *n = net->node;
  halo_peer_t *peer = c->peer;
  if (end - p < MSG_HEAD) {
    net->protocol_errors++;
    return conn_close(c, "malformed message frame");
  }
  int kind = (int)(p[0] << 8 | p[1]), queue = p[2];
  halo_pid_t from = {peer->crc, get64(p + 3)};
  halo_pid_t to = {n->crc, get64(p + 11)};
  uint64_t ref = get64(p + 19);
  const uint8_t *payload = p + MSG_HEAD;
  halo_proc_t *t = NULL;
  if (type == F_MSG_NAME) { /* the head, a name, then the payload */
    char name[256];
    size_t nl = payload < end ? *payload : 0;
    if (!nl || (size_t)(end - payload) < 1 + nl) {
      net->protocol_errors++;
      return conn_close(c, "malformed message frame");
    }
    memcpy(name, payload + 1, nl);
    name[nl] = 0;
    t = strlen(name) == nl ? halo_name_lookup(n, name) : NULL;
    payload += 1 + nl;
  } else {
    t = halo_proc_find(n, to.id);
  }
  size_t len = (size_t)(end - payload);
  uint8_t *plain = NULL;
  peer->msgs_in++;
  if (zipped) {
    size_t wire = len;
    if (!(plain = inflate_payload(payload, len, &len))) {
      net->protocol_errors++;
      halo_log_proc(n, NULL, HALO_LOG_WARNING, "dropped a message from %s: bad compressed data", peer->name);
      return;
    }
    payload = plain;
    peer->decompressed_recv++;
    peer->decompressed_bytes += wire;
    peer->decompressed_orig += len;
  }
  halo_payload_t pl;
  int bad = queue >= HALO_NQUEUES || !n->hooks.decode || n->hooks.decode(n, payload, len, &pl);
  free(plain);
  if (bad) {
    net->protocol_errors++;
    halo_log_proc(n, NULL, HALO_LOG_WARNING, "dropped an undecodable message from %s", peer->name);
    return;
  }
  if (type == F_REPLY) {
    if (halo_reply(n, NULL, to, ref, pl)) n->hooks.release(n, pl); /* late: counted by halo_reply */
    return;
  }
  int base = kind & 0xff;
  if (t && (kind >> HALO_KIND_FLAGS_SHIFT) & HALO_MF_NOTICE && (base == HALO_MSG_EXIT || base == HALO_MSG_DOWN))
    halo__rel_remote_fired(n, t, base == HALO_MSG_EXIT ? HALO_REL_LINK : HALO_REL_MONITOR, from);
  if (!t || halo__enqueue(n, from, t, kind, queue, ref, pl, (uint32_t)len)) n->hooks.release(n, pl);
}

/* REL body: u8 add, u8 type, u64 watcher (there), u64 target (here). */
static void on_rel(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  if (end - p != 18 || p[0] > 1 || p[1] > HALO_REL_MONITOR) {
    c->net->protocol_errors++;
    return conn_close(c, "malformed link/monitor frame");
  }
  halo__rel_remote_request(c->net->node, p[0], p[1], (halo_pid_t){c->peer->crc, get64(p + 2)}, get64(p + 10));
}

static void dispatch(halo_conn_t *c, int type, const uint8_t *p, const uint8_t *end) {
  switch (c->state) {
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
  case C_UP:
    if ((type & 0x7f) == F_MSG || (type & 0x7f) == F_REPLY || (type & 0x7f) == F_MSG_NAME)
      return on_msg(c, type & 0x7f, type & 0x80, p, end);
    if (type == F_REL) return on_rel(c, p, end);
    if (type == F_PING) return; /* its arrival is the point */
    c->net->protocol_errors++;
    return conn_close(c, "unexpected frame type");
  }
  if (type == F_REJECT) {
    char why[128];
    size_t l = (size_t)(end - p) < sizeof why - 1 ? (size_t)(end - p) : sizeof why - 1;
    memcpy(why, p, l);
    why[l] = 0;
    if (c->redial) c->redial->port = 0; /* a refusal is an answer: no more re-dials */
    return handshake_failed(c, why);
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
  if (nread < 0) {
    const char *why = nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread);
    return c->state == C_UP ? conn_close(c, why) : handshake_failed(c, why);
  }
  if (nread == 0) return;
  c->rlen += (size_t)nread;
  c->last_rx = halo_clock_ns();
  if (c->peer && c->state == C_UP) c->peer->bytes_in += (uint64_t)nread;
  size_t off = 0;
  while (!c->closing && c->rlen - off >= 4) {
    uint32_t len = get32(c->rbuf + off);
    size_t limit = c->state == C_UP ? (c->net->max_message ? c->net->max_message + 64u : HALO_NET_MAX_FRAME)
                                    : HANDSHAKE_FRAME_MAX;
    if (len == 0 || len > limit) {
      c->net->protocol_errors++;
      if (c->state != C_UP) return handshake_failed(c, "oversized or empty frame");
      return conn_close(c, "received a frame over the size limit");
    }
    if (c->rlen - off - 4 < len) break;
    const uint8_t *f = c->rbuf + off + 4;
    off += 4 + (size_t)len;
    dispatch(c, f[0], f + 1, f + len);
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
  if (uv_random(NULL, NULL, c->nonce_self, NONCE, 0, NULL)) {
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
  uint8_t body[2 + 255 + NONCE + 8];
  size_t nl = strlen(net->node->name), k = 0;
  body[k++] = VERSION;
  body[k++] = (uint8_t)nl;
  memcpy(body + k, net->node->name, nl), k += nl;
  memcpy(body + k, c->nonce_self, NONCE), k += NONCE;
  put64(body + k, net->creation), k += 8;
  c->state = C_HELLO_SENT;
  send_frame(c, F_HELLO, body, k, NULL, 0);
}

/* -- routing --------------------------------------------------------------------- */

/* Sends a message frame: prefix, then the encoded payload, compressed when
 * the sending process asked for it and the payload is over the threshold
 * (and compression makes it smaller). */
static int send_payload(halo_net_t *net, halo_peer_t *peer, halo_proc_t *from, uint8_t type, const uint8_t *prefix,
                        size_t plen, const halo_mpw_t *w) {
  if (from && from->ext && from->ext->compress && w->len > net->compress_threshold) {
    uLongf zlen = compressBound((uLong)w->len);
    uint8_t *z = malloc(4 + zlen);
    if (z && compress2(z + 4, &zlen, w->buf, (uLong)w->len, Z_BEST_SPEED) == Z_OK && 4 + zlen < w->len) {
      put32(z, (uint32_t)w->len);
      int rc = send_frame(peer->conn, type | 0x80, prefix, plen, z, 4 + zlen);
      free(z);
      if (!rc) {
        peer->compressed_sent++;
        peer->compressed_bytes += 4 + zlen;
        peer->compressed_orig += w->len;
      }
      return rc;
    }
    free(z);
  }
  return send_frame(peer->conn, type, prefix, plen, w->buf, w->len);
}

/* Encodes pl and sends it to node `node` as one frame: the message head,
 * then (for a name target) the name's length and bytes, then the payload.
 * On success the route owns pl and releases it; on failure the caller does. */
static int send_message(halo_net_t *net, halo_node_t *n, halo_proc_t *from, uint32_t node, uint64_t to_id,
                        const char *name, int kind, int queue, uint64_t ref, halo_payload_t pl) {
  halo_peer_t *peer = halo_imap_get(&net->peers, node);
  if (!peer || !peer->conn) return HALO_ENOCONN;
  if (!n->hooks.encode) return HALO_ENOTALLOWED;
  size_t nl = name ? strlen(name) : 0;
  if (name && (!nl || nl > 255)) return HALO_EINCORRECT;
  halo_mpw_t w;
  halo_mpw_init(&w, peer->max_message ? peer->max_message : HALO_NET_MAX_FRAME - 320);
  int rc = n->hooks.encode(n, pl, &w);
  if (rc) {
    halo_mpw_free(&w);
    return rc;
  }
  uint8_t prefix[MSG_HEAD + 1 + 255];
  prefix[0] = (uint8_t)(kind >> 8), prefix[1] = (uint8_t)kind, prefix[2] = (uint8_t)queue;
  put64(prefix + 3, from ? from->id : 1);
  put64(prefix + 11, to_id);
  put64(prefix + 19, ref);
  size_t plen = MSG_HEAD;
  if (name) {
    prefix[plen++] = (uint8_t)nl;
    memcpy(prefix + plen, name, nl), plen += nl;
  }
  uint8_t type = name ? F_MSG_NAME : kind == HALO_MSG_REPLY ? F_REPLY : F_MSG;
  rc = send_payload(net, peer, from, type, prefix, plen, &w);
  halo_mpw_free(&w);
  if (rc) return rc;
  peer->msgs_out++;
  n->hooks.release(n, pl); /* sent: the route owned it */
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

static int route_rel(void *ud, halo_node_t *n, int add, int type, uint64_t watcher, halo_pid_t target) {
  halo_net_t *net = ud;
  (void)n;
  halo_peer_t *peer = halo_imap_get(&net->peers, target.node);
  if (!peer || !peer->conn) return HALO_ENOCONN;
  uint8_t body[18];
  body[0] = (uint8_t)(add != 0);
  body[1] = (uint8_t)type;
  put64(body + 2, watcher);
  put64(body + 10, target.id);
  return send_frame(peer->conn, F_REL, body, sizeof body, NULL, 0);
}

/* -- API ----------------------------------------------------------------------------- */

int halo_net_init(halo_net_t *net, halo_node_t *n, const char *cookie) {
  memset(net, 0, sizeof *net);
  net->node = n;
  if (!(net->cookie = strdup(cookie))) return HALO_ENOMEM;
  if (uv_random(NULL, NULL, &net->creation, sizeof net->creation, 0, NULL)) return HALO_ENOMEM;
  halo_imap_init(&net->peers);
  net->route.send = route_send;
  net->route.rel = route_rel;
  net->route.send_name = route_send_name;
  net->route.ud = net;
  net->keepalive_ms = 1000;
  net->compress_threshold = 1024;
  net->keepalive_misses = 3;
  if (!(net->tick = malloc(sizeof *net->tick))) return HALO_ENOMEM;
  uv_timer_init(n->loop, net->tick);
  net->tick->data = net;
  uv_timer_start(net->tick, on_tick, 100, 100);
  uv_unref((uv_handle_t *)net->tick);
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

static int dial(halo_net_t *net, const char *host, int port, const char *expect, halo_peer_t *redial, uint64_t *id) {
  struct sockaddr_storage addr;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr))
    return HALO_EINCORRECT;
  halo_conn_t *c = conn_new(net, 1);
  if (!c) return HALO_ENOMEM;
  c->state = C_CONNECTING;
  snprintf(c->host, sizeof c->host, "%s", host);
  c->port = port;
  c->redial = redial;
  if (redial) redial->dialing = 1;
  c->dial_id = ++net->next_dial;
  if (id) *id = c->dial_id;
  snprintf(c->expect, sizeof c->expect, "%s", expect ? expect : "");
  int rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, on_connected);
  if (rc) {
    handshake_failed(c, uv_strerror(rc)); /* schedules the next re-dial, if any */
    return redial ? 0 : rc;
  }
  return 0;
}

int halo_net_connect(halo_net_t *net, const char *host, int port, const char *expect, uint64_t *id) {
  return dial(net, host, port, expect, NULL, id);
}

/* Every 100 ms: ping quiet links, drop silent ones, re-dial lost peers. */
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
  for (size_t i = 0; i < net->peers.cap; i++) {
    halo_peer_t *p = net->peers.slots[i].val;
    if (!p || p->conn || p->dialing || !p->retry_at || now < p->retry_at) continue;
    p->retry_at = 0;
    if (dial(net, p->host, p->port, p->name, p, NULL)) schedule_redial(p);
  }
}

halo_peer_t *halo_net_peer_by_name(halo_net_t *net, const char *name) {
  halo_peer_t *p = halo_imap_get(&net->peers, halo_crc32(name, strlen(name)));
  return p && p->conn ? p : NULL;
}

static void free_peers(halo_net_t *net) {
  for (size_t i = 0; i < net->peers.cap; i++) {
    halo_peer_t *p = net->peers.slots[i].val;
    if (!p) continue;
    free(p->name);
    free(p);
  }
  halo_imap_destroy(&net->peers);
}

void halo_net_close(halo_net_t *net) {
  net->closing = 1;
  if (net->tick) uv_close((uv_handle_t *)net->tick, free_handle);
  net->tick = NULL;
  while (net->conns) {
    halo_conn_t *c = net->conns;
    if (c->peer) c->peer->conn = NULL;
    c->peer = NULL;
    conn_close(c, NULL);
  }
  if (net->acceptor) uv_close((uv_handle_t *)net->acceptor, free_handle);
  net->acceptor = NULL;
  if (net->node->route == &net->route) net->node->route = NULL;
  free_peers(net);
  free(net->cookie);
  net->cookie = NULL;
}
