/*
 * The transport's API (net.h) and its side towards the node: the routes
 * the node sends through (messages and link/monitor requests, compressed or
 * in fragments as the settings ask) and the delivery of what arrives.
 */
#include "net_internal.h"
#include "clock.h"
#include "errors.h"
#include "process.h"
#include "rel.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PENDING_MAX (8u << 20) /* bytes held for a peer being dialed */
#define CREATIONS_MAX (64u << 10) /* remote identifiers whose run is remembered, per generation */
#define MSG_HEAD HALO_FRAME_MSG_HEAD
#define FRAG_HEAD HALO_FRAME_FRAG_HEAD

/* REL body: u8 add, u8 type, u64 watcher (there), u64 target (here), u64
 * ref (non-zero: the watcher waits for a REPLY with it), u64 the target's
 * creation (0: any), and for a target by name: u8 length, the name. */
#define REL_HEAD 34

/* target_creation's answer for a target of an earlier run of its node. */
#define STALE UINT64_MAX

/* -- sending ------------------------------------------------------------------ */

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
    halo_conn_t *c = halo__net_pick_link(peer, from);
    if (!c || c->closing) return NULL;
    *pp = peer;
    *cp = c;
    return &c->out;
  }
  if (net->closing) return NULL;
  if (!peer || !peer->live) {
    const halo_net_route_t *r = halo_imap_get(&net->routes, node);
    if (!r) return NULL;
    if (!peer && !(peer = halo__net_peer_get(net, r->name))) return NULL;
    if (strcmp(peer->name, r->name)) return NULL;
    if (!peer->dialing && !halo__net_own_dial(net, r->name, NULL)) {
      snprintf(peer->host, sizeof peer->host, "%s", r->host);
      peer->port = r->port;
      peer->retry_at = 0;
      if (halo__net_dial(net, r->host, r->port, r->name, peer, 0, NULL) || !peer->dialing) return NULL;
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
  long start = halo__net_frame_begin(o, type, head, hlen);
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
  halo__net_frame_end(o, c, before, whole);
  peer->msgs_out++;
  if (!c) {
    peer->pending_msgs++;
    peer->pending_bytes += o->len - before;
  }
  n->hooks.release(n, pl); /* sent: the route owned it */
  if (from && ref && (base == HALO_MSG_REQUEST || base == HALO_MSG_INSPECT)) halo__rel_call_sent(n, from, node, ref);
  if (from && ref && kind == HALO_MSG_REPLY) halo__rel_call_done(n, from, (halo_pid_t){node, to_id}, ref);
  if (c && from && halo__net_waiting(c) > CONGESTED && !c->closing && halo_proc_find(n, from->id) == from)
    halo__net_throttle(c, from);
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
  int rc = halo__net_put_frame(o, c, F_REL, body, len, NULL, 0);
  if (!rc && !c) peer->pending_bytes += 5 + len;
  return rc;
}

/* -- receiving ---------------------------------------------------------------- */

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
  if (halo_frame_msg_parse(type, p, end, &m)) return halo__net_protocol_error(c, "malformed message frame");
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
  if (base == HALO_MSG_EVENT) n->counters.events_received++;
  int rc = t ? halo__enqueue(n, from, t, kind, queue, ref, pl, (uint32_t)len) : HALO_ENOPROC;
  if (rc) n->hooks.release(n, pl);
  if ((base == HALO_MSG_REQUEST || base == HALO_MSG_INSPECT) && ref) { /* a call: watched until answered */
    if (!rc) rc = halo__rel_call_taken(n, t, from, ref);
    if (rc) call_refuse(net, from, ref, rc);
  }
}

static void on_rel(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  char name[256];
  size_t nl = end - p > REL_HEAD ? p[REL_HEAD] : 0;
  if (end - p < REL_HEAD || (end - p > REL_HEAD && (!nl || (size_t)(end - p) != REL_HEAD + 1 + nl)) || p[0] > 1 ||
      p[1] > HALO_REL_MONITOR)
    return halo__net_protocol_error(c, "malformed link/monitor frame");
  memcpy(name, p + REL_HEAD + 1, nl);
  name[nl] = 0;
  if (strlen(name) != nl) return halo__net_protocol_error(c, "malformed link/monitor frame");
  halo_pid_t watcher = {c->peer->crc, get64(p + 2)};
  uint64_t creation = get64(p + 26);
  halo_creations_learn(&net->creations, HALO_ID_PID, watcher.node, watcher.id, c->peer->creation);
  halo__rel_remote_request(net->node, p[0], p[1], watcher, get64(p + 10), get64(p + 18), nl ? name : NULL,
                           creation && creation != net->creation);
}

void halo__net_receive(halo_conn_t *c, int type, const uint8_t *p, const uint8_t *end) {
  int base = type & 0x7f;
  if (base == F_MSG || base == F_REPLY || base == F_MSG_NAME) return on_msg(c, base, type & 0x80, p, end);
  if (type == F_REL) return on_rel(c, p, end);
  if (type == F_FRAG) return halo__net_receive_frag(c, p, end);
  if (type == F_READY) return halo__net_receive_ready(c, p, end);
  if (type == F_PING) return; /* its arrival is the point */
  halo__net_protocol_error(c, "unexpected frame type");
}

/* -- API ---------------------------------------------------------------------- */

static void free_handle(uv_handle_t *h) { free(h); }

static void on_prepare(uv_prepare_t *h) { halo_net_flush(h->data); }

/* Every 100 ms: ping quiet links, drop silent ones, re-dial lost peers and
 * links, drop fragmented messages that stopped coming. */
static void on_tick(uv_timer_t *t) {
  halo_net_t *net = t->data;
  uint64_t now = halo_clock_ns();
  halo__net_keepalive(net, now);
  halo__net_session_tick(net, now);
}

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
    if (!rc) rc = uv_listen((uv_stream_t *)t, 128, halo__net_on_connection);
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

int halo_net_connect(halo_net_t *net, const char *host, int port, const char *expect, uint64_t *id) {
  return halo__net_dial(net, host, port, expect, NULL, 0, id);
}

int halo_net_dial_result(halo_net_t *net, uint64_t id, const char **why) {
  for (int i = 0; i < 32; i++) {
    if (net->results[i].id != id) continue;
    if (why) *why = net->results[i].why;
    return net->results[i].ok ? 1 : -1;
  }
  return 0;
}

halo_peer_t *halo_net_peer_by_name(halo_net_t *net, const char *name) {
  halo_peer_t *p = halo_imap_get(&net->peers, halo_crc32(name, strlen(name)));
  return p && p->live ? p : NULL;
}

int halo_net_disconnect(halo_net_t *net, const char *name) {
  halo_peer_t *p = halo_net_peer_by_name(net, name);
  if (!p || strcmp(p->name, name)) return HALO_ENOCONN;
  halo_conn_t *first = NULL; /* the session's opening link: losing it loses the session, ready or not */
  for (int i = 0; i < HALO_NET_POOL_MAX; i++)
    if (p->links[i] && (!first || (first->join && !p->links[i]->join))) first = p->links[i];
  halo__net_conn_close(first, "disconnected on request");
  p->retry_at = 0;
  p->backoff_ms = 0;
  return 0;
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
    halo__net_conn_close(c, NULL);
  }
  if (net->acceptor) uv_close((uv_handle_t *)net->acceptor, free_handle);
  net->acceptor = NULL;
  if (net->node->route == &net->route) net->node->route = NULL;
  halo__net_peers_free(net);
  for (size_t i = 0; i < net->routes.cap; i++) free(net->routes.slots[i].val);
  halo_imap_destroy(&net->routes);
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
  halo_peer_t *p = halo__net_peer_get(net, name);
  if (!p || strcmp(p->name, name)) return p ? HALO_EINCORRECT : HALO_ENOMEM;
  snprintf(p->host, sizeof p->host, "%s", host); /* re-dialed while the route stands */
  p->port = port;
  if (p->live || p->dialing || halo__net_own_dial(net, name, NULL)) return 0;
  p->retry_at = 0;
  return halo__net_dial(net, host, port, name, p, 0, NULL);
}

void halo_net_route_del(halo_net_t *net, const char *name) {
  uint32_t crc = halo_crc32(name, strlen(name));
  free(halo_imap_del(&net->routes, crc));
  halo_peer_t *p = halo_imap_get(&net->peers, crc);
  if (p && !strcmp(p->name, name)) p->port = 0, p->retry_at = 0;
}

const halo_net_route_t *halo_net_route(halo_net_t *net, uint32_t crc) { return halo_imap_get(&net->routes, crc); }
