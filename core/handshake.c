/*
 * The handshake of a link (see net.h): HELLO, CHALLENGE, PROOF, WELCOME,
 * REJECT and YIELD, who may join (admission), and which dial goes on when
 * two nodes dial each other at once.
 */
#include "net_internal.h"
#include "clock.h"

#include <stdio.h>
#include <string.h>

#define VERSION HALO_FRAME_VERSION
#define HELLO_JOIN HALO_FRAME_HELLO_JOIN

void halo__net_handshake_failed(halo_conn_t *c, const char *why) {
  c->net->handshake_errors++;
  halo__net_conn_close(c, why);
}

/* The proof under our cookie (halo_frame_mac): 0, or UV_EIO. */
static int mac(halo_net_t *net, char tag, const uint8_t *n1, const uint8_t *n2, const char *a, const char *b,
               uint64_t creation, uint32_t max, uint8_t out[HALO_SHA256_LEN]) {
  return halo_frame_mac(net->cookie, tag, n1, n2, a, b, creation, max, out);
}

static uint64_t node_age(halo_net_t *net) { return (halo_clock_ns() - net->node->t_start) / 1000000000u; }

static void reject(halo_conn_t *c, const char *why) {
  halo__net_send_frame(c, F_REJECT, why, strlen(why), NULL, 0);
  halo__net_handshake_failed(c, why);
}

/* Not now (see net.h): not a failure, nothing counted; the dialer retries. */
static void yield(halo_conn_t *c, const char *why) {
  halo__net_send_frame(c, F_YIELD, why, strlen(why), NULL, 0);
  halo__net_conn_close(c, NULL);
}

/* Both dial: the peer's dial gives way to ours. */
static void yield_simultaneous(halo_conn_t *c) {
  c->net->simultaneous_connects++;
  yield(c, "simultaneous connect: our dial goes on");
}

void halo__net_handshake_timeout(uv_timer_t *t) {
  halo_conn_t *c = t->data;
  if (c->state == C_YIELDED) {
    char why[200];
    snprintf(why, sizeof why, "the peer said not now (%s) and did not connect itself", c->why);
    return halo__net_conn_close(c, why);
  }
  if (c->state != C_UP) halo__net_handshake_failed(c, "handshake timed out");
}

/* Our own session-opening dial of `name` that is still handshaking. */
halo_conn_t *halo__net_own_dial(halo_net_t *net, const char *name, const halo_conn_t *except) {
  for (halo_conn_t *d = net->conns; d; d = d->next)
    if (d != except && d->dialer && !d->join && !d->closing && d->state != C_UP &&
        (!strcmp(d->expect, name) || !strcmp(d->peer_name, name)))
      return d;
  return NULL;
}

/* Why the peer may not join (NULL: it may). final: a refusal that stands
 * (REJECT), else not now (YIELD). */
const char *halo__net_admission(halo_conn_t *c, int *final) {
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

/* Ends a session-opening link that lost to another one (quietly). */
void halo__net_lose_quietly(halo_conn_t *c) {
  halo__net_report_dial(c, 1, NULL); /* connected: through the other session */
  if (c->state != C_UP && c->state != C_YIELDED && c->state != C_CONNECTING) /* so the other side counts no failure */
    halo__net_send_frame(c, F_YIELD, "connected already", 17, NULL, 0);
  c->state = C_UP;
  halo__net_conn_close(c, NULL);
}

/* -- steps -------------------------------------------------------------------- */

/* Dialer, connected: HELLO {version, flags, name_d, nonce_d, creation_d[, session]}. */
void halo__net_hello(halo_conn_t *c) {
  halo_net_t *net = c->net;
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
  else halo__net_send_frame(c, F_HELLO, body, k, NULL, 0);
}

/* Acceptor: HELLO {version, flags, name_d, nonce_d, creation_d[, session]}
 * -> CHALLENGE {name_a, nonce_a, creation_a}. Nothing derived from the
 * cookie leaves before the dialer has proved itself. */
static void on_hello(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  halo_frame_hello_t h;
  int bad = halo_frame_hello_parse(p, end, &h);
  if (bad == -2) return reject(c, "unsupported protocol version");
  if (bad) return halo__net_handshake_failed(c, "malformed hello");
  c->join = h.join;
  memcpy(c->peer_name, h.name, sizeof c->peer_name);
  memcpy(c->nonce_peer, h.nonce, NONCE);
  c->peer_creation = h.creation;
  if (c->join) memcpy(c->session, h.session, NONCE);
  if (!strcmp(c->peer_name, net->node->name)) return reject(c, "duplicate node name");
  if (!c->join) {
    halo_peer_t *peer = halo_net_peer_by_name(net, c->peer_name);
    if (peer && peer->creation == c->peer_creation) return yield(c, "connected already");
    halo_conn_t *mine = halo__net_own_dial(net, c->peer_name, NULL);
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
  if (halo__net_send_frame(c, F_CHALLENGE, body, k, NULL, 0) || c->closing) return;
  c->state = C_WAIT_PROOF;
}

/* Dialer: CHALLENGE -> PROOF {MAC_D, max_d}. */
static void on_challenge(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  char name[256];
  if (halo_frame_challenge_parse(p, end, name, c->nonce_peer, &c->peer_creation))
    return halo__net_handshake_failed(c, "malformed challenge");
  if (!strcmp(name, net->node->name)) return reject(c, "duplicate node name");
  if (c->expect[0] && strcmp(name, c->expect)) {
    /* not the node we meant to reach: no proof for it (its name shown as printable ASCII) */
    char why[600], shown[256];
    halo_frame_reason((const uint8_t *)name, (const uint8_t *)name + strlen(name), shown, sizeof shown);
    snprintf(why, sizeof why, "answered as %s, not %s", shown, c->expect);
    return halo__net_handshake_failed(c, why);
  }
  snprintf(c->peer_name, sizeof c->peer_name, "%s", name);
  uint8_t body[HALO_SHA256_LEN + 12];
  c->max_in = net->max_message; /* what this link promised to accept */
  if (mac(net, 'D', c->nonce_peer, c->nonce_self, net->node->name, c->peer_name, net->creation, net->max_message, body))
    return halo__net_handshake_failed(c, "no HMAC for our proof");
  put32(body + HALO_SHA256_LEN, net->max_message);
  put64(body + HALO_SHA256_LEN + 4, node_age(net));
  if (halo__net_send_frame(c, F_PROOF, body, sizeof body, NULL, 0) || c->closing) return;
  c->state = C_WAIT_WELCOME;
}

/* Acceptor: PROOF {MAC_D, max_d, node age} checked -> WELCOME {MAC_A,
 * max_a, pool size, node age} (the ages, in seconds, are informational). */
static void on_proof(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  uint8_t want[HALO_SHA256_LEN], body[HALO_SHA256_LEN + 13];
  if (end - p != HALO_FRAME_PROOF_LEN) return halo__net_handshake_failed(c, "malformed proof");
  c->peer_age = get64(p + HALO_SHA256_LEN + 4);
  uint32_t max_d = get32(p + HALO_SHA256_LEN);
  if (mac(net, 'D', c->nonce_self, c->nonce_peer, c->peer_name, net->node->name, c->peer_creation, max_d, want) ||
      !halo_digest_equal(want, p))
    return reject(c, "the dialer's proof does not match our cookie");
  int final;
  const char *no = halo__net_admission(c, &final); /* refused before WELCOME: the dialer must not think it joined */
  if (no) return final ? reject(c, no) : yield(c, no);
  halo_conn_t *mine = c->join ? NULL : halo__net_own_dial(net, c->peer_name, NULL);
  if (mine && mine->state == C_WAIT_WELCOME) return yield_simultaneous(c);
  /* else a dial of ours still before its proof gives way: halo__net_established() ends it */
  c->max_in = net->max_message;
  if (mac(net, 'A', c->nonce_peer, c->nonce_self, net->node->name, c->peer_name, net->creation, net->max_message, body))
    return halo__net_handshake_failed(c, "no HMAC for our proof");
  put32(body + HALO_SHA256_LEN, net->max_message);
  body[HALO_SHA256_LEN + 4] = (uint8_t)net->pool_size;
  put64(body + HALO_SHA256_LEN + 5, node_age(net));
  if (halo__net_send_frame(c, F_WELCOME, body, sizeof body, NULL, 0) || c->closing) return;
  halo__net_established(c, max_d, net->pool_size);
}

/* Dialer: WELCOME checked -> established. */
static void on_welcome(halo_conn_t *c, const uint8_t *p, const uint8_t *end) {
  halo_net_t *net = c->net;
  uint8_t want[HALO_SHA256_LEN];
  if (end - p != HALO_FRAME_WELCOME_LEN) return halo__net_handshake_failed(c, "malformed welcome");
  c->peer_age = get64(p + HALO_SHA256_LEN + 5);
  uint32_t max_a = get32(p + HALO_SHA256_LEN);
  if (mac(net, 'A', c->nonce_self, c->nonce_peer, c->peer_name, net->node->name, c->peer_creation, max_a, want) ||
      !halo_digest_equal(want, p))
    return halo__net_handshake_failed(c, "the acceptor's proof does not match our cookie");
  halo__net_established(c, max_a, p[HALO_SHA256_LEN + 4]);
}

/* A frame on a link still handshaking (or waiting after a YIELD). */
void halo__net_handshake_receive(halo_conn_t *c, int type, const uint8_t *p, const uint8_t *end) {
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
  case C_YIELDED:
    return; /* waiting for the peer's own dial; nothing here matters */
  }
  char why[128];
  halo_frame_reason(p, end, why, sizeof why);
  if (type == F_REJECT) {
    if (c->redial && !c->join) c->redial->port = 0; /* a refusal is an answer: no more re-dials */
    return halo__net_handshake_failed(c, why);
  }
  if (type == F_YIELD && !c->dialer) return halo__net_conn_close(c, NULL); /* the dialer got there another way */
  if (type == F_YIELD && c->dialer) {
    if (halo_net_peer_by_name(c->net, c->peer_name[0] ? c->peer_name : c->expect)) return halo__net_lose_quietly(c);
    if (c->join) return halo__net_conn_close(c, NULL); /* the session goes on without it (READY says so) */
    c->state = C_YIELDED; /* until the peer's dial arrives, or the timer ends it */
    snprintf(c->why, sizeof c->why, "%s", why);
    uv_timer_start(&c->timer, halo__net_handshake_timeout, 2000, 0);
    return;
  }
  halo__net_handshake_failed(c, "unexpected frame during the handshake");
}
