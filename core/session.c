/*
 * Peers and their sessions: the pool of links of a session, opening it and
 * its joins, READY, the pending buffers of messages sent before it is
 * ready, reassembly of fragmented messages, the loss of a session and the
 * re-dial.
 */
#include "net_internal.h"
#include "clock.h"
#include "errors.h"
#include "event.h"
#include "rel.h"

#include <stdlib.h>
#include <string.h>

#define JOIN_WAIT_NS 1000000000u /* a session is used with the links it has after this */

typedef halo_frame_asm_t assembly_t;

/* -- peers -------------------------------------------------------------------- */

static halo_peer_t *peer_named(halo_net_t *net, const char *name) {
  if (!name || !*name) return NULL;
  halo_peer_t *p = halo_imap_get(&net->peers, halo_crc32(name, strlen(name)));
  return p && !strcmp(p->name, name) ? p : NULL;
}

halo_peer_t *halo__net_peer_get(halo_net_t *net, const char *name) {
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

/* The link for messages from sender id: the same one every time while the
 * pool holds, so one sender's messages stay ordered. */
halo_conn_t *halo__net_pick_link(const halo_peer_t *p, uint64_t from) {
  int k = p->pool_size > 0 ? p->pool_size : 1;
  int i = (int)((from % 255) % (uint64_t)k);
  for (int j = 0; j < HALO_NET_POOL_MAX; j++) {
    halo_conn_t *c = p->links[(i + j) % HALO_NET_POOL_MAX];
    if (c) return c;
  }
  return NULL;
}

static void schedule_redial(halo_peer_t *p) {
  p->backoff_ms = p->backoff_ms ? (p->backoff_ms * 2 > 5000 ? 5000 : p->backoff_ms * 2) : 100;
  p->retry_at = halo_clock_ns() + (uint64_t)p->backoff_ms * 1000000u;
}

/* -- pending messages --------------------------------------------------------- */

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
    halo_conn_t *l = deliver ? halo__net_pick_link(p, p->pending.slots[i].key - 1) : NULL;
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

/* -- losing a session --------------------------------------------------------- */

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

/* Closes p's links without counting a loss: a session replaced them. */
static void drop_session(halo_net_t *net, halo_peer_t *p) {
  for (halo_conn_t *d = net->conns, *next; d; d = next) {
    next = d->next; /* its joins still dialing belong to it too */
    if (d->join && d->redial == p && !d->closing) halo__net_conn_close(d, NULL);
  }
  for (int i = 0; i < HALO_NET_POOL_MAX; i++) {
    halo_conn_t *l = p->links[i];
    if (!l) continue;
    p->links[i] = NULL;
    p->live--;
    l->peer = NULL;
    halo__net_conn_close(l, NULL);
  }
}

/* Link c closes (why as halo__net_conn_close): the dial it made and the
 * session it served learn of it. */
void halo__net_session_unlink(halo_conn_t *c, const char *why) {
  halo_net_t *net = c->net;
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
  if (w && !w->live && !w->dialing && !halo__net_own_dial(net, w->name, c)) drop_pending(net, w, why);
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
}

/* -- opening a session -------------------------------------------------------- */

/* The next free slot of p's pool, or -1. */
static int free_slot(const halo_peer_t *p) {
  for (int i = 0; i < p->pool_size && i < HALO_NET_POOL_MAX; i++)
    if (!p->links[i]) return i;
  return -1;
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
  if (!first || halo__net_send_frame(first, F_READY, body, k, NULL, 0)) return;
  start_flowing(first->net, p);
}

/* Opens the rest of p's pool (this side dialed its session). */
static void dial_joins(halo_net_t *net, halo_peer_t *p) {
  while (p->port && p->dialed && p->live && !p->ready && p->live + p->joining < p->pool_size && !net->closing)
    if (halo__net_dial(net, p->host, p->port, p->name, p, 1, NULL)) break;
}

void halo__net_established(halo_conn_t *c, uint32_t max_message, int pool_size) {
  halo_net_t *net = c->net;
  int final;
  const char *no = halo__net_admission(c, &final);
  if (no && c->join) return halo__net_conn_close(c, NULL); /* the session went meanwhile */
  if (no) return halo__net_handshake_failed(c, no);
  halo_peer_t *peer = halo__net_peer_get(net, c->peer_name);
  if (!peer) return halo__net_conn_close(c, "out of memory");
  int opened = 0;
  if (!c->join) {
    if (peer->live) { /* a session is up already (dials whose names were not known in time) */
      if (peer->creation == c->peer_creation && !replaces(c, peer)) return halo__net_lose_quietly(c);
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
    return halo__net_conn_close(c, NULL);
  }
  int slot = free_slot(peer);
  if (slot < 0) return halo__net_conn_close(c, NULL);
  uv_timer_stop(&c->timer);
  halo__net_report_dial(c, 1, NULL);
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
  for (halo_conn_t *d; (d = halo__net_own_dial(net, peer->name, c));) {
    if (!c->dialer) net->simultaneous_connects++; /* both dialed: ours gives way to theirs */
    halo__net_lose_quietly(d);
  }
  if (c->dialer) {
    if (peer->pool_size == 1) session_ready(peer);
    else dial_joins(net, peer);
  }
}

/* Acceptor: READY names the joins the dialer keeps; the others go. */
void halo__net_receive_ready(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_peer_t *peer = c->peer;
  if (c->dialer || c->join || peer->ready || halo_frame_ready_parse(p, end, HALO_NET_POOL_MAX) < 0)
    return halo__net_protocol_error(c, "malformed ready");
  for (int j = 0; j < p[0]; j++) { /* every link it names must still be here */
    int here = 0;
    for (int i = 0; i < HALO_NET_POOL_MAX && !here; i++)
      here = peer->links[i] && peer->links[i]->join && !memcmp(peer->links[i]->nonce_peer, p + 1 + j * NONCE, NONCE);
    if (!here) return halo__net_conn_close(c, "a link of the session was lost before it was ready");
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
    halo__net_conn_close(l, NULL);
  }
  start_flowing(c->net, peer);
}

/* -- fragments ---------------------------------------------------------------- */

/* A piece of a fragmented frame; the last one dispatches the whole. They
 * come in order (one sender's frames share a link). */
void halo__net_receive_frag(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  halo_peer_t *peer = c->peer;
  halo_frame_frag_t f;
  uint32_t limit = c->max_in ? c->max_in + FRAME_SLACK : HALO_NET_MAX_FRAME;
  if (halo_frame_frag_parse(p, end, limit, &f)) return halo__net_protocol_error(c, "malformed fragment");
  /* a peer that keeps to the limit has at most one message in pieces per
   * link: the budget never refuses that much */
  size_t budget = (size_t)peer->pool_size * limit;
  if (budget < net->assembly_budget) budget = net->assembly_budget;
  assembly_t *a = halo_imap_get(&peer->assemblies, f.id);
  if (!a) {
    if (f.off) return; /* the rest of a message dropped by the timeout: late, not wrong */
    if (peer->assemblies.len >= net->max_assemblies)
      return halo__net_protocol_error(c, "too many fragmented messages at once");
    if (!(a = calloc(1, sizeof *a)) || halo_imap_put(&peer->assemblies, f.id, a)) {
      free(a);
      return halo__net_conn_close(c, "out of memory");
    }
  }
  int rc = halo_frame_asm_add(a, &f, &peer->assembly_bytes, budget);
  if (rc == 1 || rc < 0) {
    halo_imap_del(&peer->assemblies, f.id);
    if (rc < 0) {
      halo_frame_asm_free(a, &peer->assembly_bytes);
      free(a);
      if (rc == HALO_ENOMEM) return halo__net_conn_close(c, "out of memory");
      return halo__net_protocol_error(c, rc == -2 ? "fragmented messages over the reassembly budget"
                                                  : "a fragment out of order");
    }
  }
  a->last = halo_clock_ns(); /* the timeout counts from the last piece: a big message may take long */
  peer->frag_recv++;
  if (!rc) return;
  peer->frag_msgs_recv++;
  int type = a->buf[0];
  if ((type & 0x7f) == F_FRAG) halo__net_protocol_error(c, "a fragment inside a fragment");
  else halo__net_receive(c, type, a->buf + 1, a->buf + a->total);
  halo_frame_asm_free(a, &peer->assembly_bytes);
  free(a);
}

/* -- timer and shutdown ------------------------------------------------------- */

/* Re-dials lost peers, declares sessions ready (or gone) whose joins are
 * late, drops fragmented messages that stopped coming. */
void halo__net_session_tick(halo_net_t *net, uint64_t now) {
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
      if (first) halo__net_conn_close(first, "no READY from the dialer");
    }
    if (p->live || p->dialing || !p->retry_at || now < p->retry_at) continue;
    p->retry_at = 0;
    if (halo__net_dial(net, p->host, p->port, p->name, p, 0, NULL)) schedule_redial(p);
  }
}

/* Frees every peer (the node stops). */
void halo__net_peers_free(halo_net_t *net) {
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
}
