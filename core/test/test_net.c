/*
 * The transport on real loopback sockets, in one loop: two nodes with a
 * tiny C host (payloads are byte counts; the encoding is that many bytes),
 * or one node and a raw peer written here that speaks the wire format
 * (frame.h) with the cookie, to send what a halo node never would.
 */
#include "check.h"

#include "errors.h"
#include "frame.h"
#include "net.h"
#include "node.h"
#include "process.h"
#include "rel.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zlib.h>

#define COOKIE "test cookie"

/* -- Fake host ---------------------------------------------------------------- */

typedef struct host {
  int64_t live;            /* payloads made and not yet released or consumed */
  uint64_t msgs, bytes;    /* messages delivered, their payload bytes */
  uint64_t order_bad;      /* messages out of order (payload values must grow per sender) */
  uint64_t last_val;
  int kinds[16];           /* delivered messages by kind */
  uint64_t wakes;
  int stopped;
} host_t;

enum { PL_BYTES = 1, PL_REASON = 2 };

static uv_loop_t loop;
static uv_timer_t guard;
static int guard_fired;

static host_t *H(halo_node_t *n) { return n->host; }

static int hook_run(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg) {
  if (msg) {
    p->wait = HALO_WAIT_NONE;
    H(n)->msgs++;
    H(n)->bytes += msg->pval >> 32;
    if ((msg->pval & 0xffffffffu) < H(n)->last_val) H(n)->order_bad++;
    H(n)->last_val = msg->pval & 0xffffffffu;
    H(n)->kinds[msg->kind & 15]++;
    if (msg->ptag) H(n)->live--;
    return HALO_RUN_IDLE;
  }
  if (p->wake) {
    H(n)->wakes++;
    p->wake = HALO_WAKE_NONE;
    p->wait = HALO_WAIT_NONE;
  }
  return HALO_RUN_IDLE;
}

static void hook_terminate(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason) {
  (void)n, (void)p, (void)reason;
}
static void hook_free(halo_node_t *n, halo_proc_t *p) { (void)n, (void)p; }
static halo_payload_t hook_dup(halo_node_t *n, const halo_payload_t *pl) {
  if (pl->tag) H(n)->live++;
  return *pl;
}
static void hook_release(halo_node_t *n, halo_payload_t pl) {
  if (pl.tag) H(n)->live--;
}
static halo_payload_t hook_signal(halo_node_t *n, const halo_signal_info_t *info, const halo_payload_t *reason) {
  (void)info, (void)reason;
  H(n)->live++;
  return (halo_payload_t){0, PL_REASON};
}
static halo_payload_t hook_reason(halo_node_t *n, const char *text) {
  (void)text;
  H(n)->live++;
  return (halo_payload_t){0, PL_REASON};
}
/* A payload's value: its size in the high half, a sequence number in the low half. */
static int hook_encode(halo_node_t *n, halo_payload_t pl, struct halo_mpw *w) {
  (void)n;
  size_t len = pl.val >> 32;
  uint8_t *d = halo_mpw_reserve(w, len < 4 ? 4 : len);
  if (!d) return w->err;
  memset(d, 'x', len < 4 ? 4 : len);
  halo__put32(d, (uint32_t)pl.val);
  return 0;
}
static int hook_decode(halo_node_t *n, const void *buf, size_t len, halo_payload_t *out) {
  if (len < 4) return HALO_EMALFORMED;
  H(n)->live++;
  *out = (halo_payload_t){(uint64_t)len << 32 | halo__get32(buf), PL_BYTES};
  return 0;
}
static void hook_stopped(halo_node_t *n) { H(n)->stopped = 1; }

static const halo_node_hooks_t hooks = {hook_run,    hook_terminate, hook_free,   hook_dup,    hook_release, hook_signal,
                                        hook_reason, hook_encode,    hook_decode, NULL,        hook_stopped, NULL};

static halo_payload_t pl_make(halo_node_t *n, uint32_t size, uint32_t seq) {
  H(n)->live++;
  return (halo_payload_t){(uint64_t)size << 32 | seq, PL_BYTES};
}

/* -- Fixture ----------------------------------------------------------------- */

typedef struct tnode {
  halo_node_t node;
  halo_net_t net;
  host_t host;
} tnode_t;

static tnode_t A, B;

static void on_guard(uv_timer_t *t) {
  (void)t;
  guard_fired = 1;
}

/* Runs the loop until cond holds; fails the test after ms. */
#define RUN_UNTIL(cond, ms)                                                              \
  do {                                                                                   \
    guard_fired = 0;                                                                     \
    uv_update_time(&loop);                                                               \
    uv_timer_start(&guard, on_guard, ms, 0);                                             \
    while (!(cond) && !guard_fired) uv_run(&loop, UV_RUN_ONCE);                          \
    uv_timer_stop(&guard);                                                               \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "%s:%d: timed out waiting for %s\n", __FILE__, __LINE__, #cond);   \
      check_failures++;                                                                  \
    }                                                                                    \
  } while (0)

static void node_up(tnode_t *t, const char *name) {
  memset(t, 0, sizeof *t);
  CHECK_EQ(halo_node_init(&t->node, &loop, name), 0);
  t->node.hooks = hooks;
  t->node.host = &t->host;
  t->node.auto_stop = 0;
  CHECK_EQ(halo_node_start(&t->node), 0);
  CHECK_EQ(halo_net_init(&t->net, &t->node, COOKIE), 0);
  CHECK_EQ(halo_net_listen(&t->net, "127.0.0.1", 0), 0);
}

static void node_down(tnode_t *t) {
  halo_node_stop(&t->node, 0);
  RUN_UNTIL(t->node.stopped, 2000);
  halo_net_close(&t->net);
  halo_node_close(&t->node);
}

static void setup(void) {
  CHECK_EQ(uv_loop_init(&loop), 0);
  uv_timer_init(&loop, &guard);
}

static void teardown(int nodes) {
  if (nodes > 1) node_down(&B);
  node_down(&A);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(uv_loop_close(&loop), 0);
  halo_node_destroy(&A.node);
  CHECK_EQ(A.host.live, 0);
  if (nodes > 1) {
    halo_node_destroy(&B.node);
    CHECK_EQ(B.host.live, 0);
  }
}

static halo_proc_t *start(tnode_t *t, const char *name) {
  halo_spawn_opts_t o = {0};
  o.name = name;
  halo_proc_t *p = NULL;
  CHECK_EQ(halo_proc_spawn(&t->node, &o, &p), 0);
  CHECK_EQ(halo_proc_start(&t->node, p, NULL), HALO_RUN_IDLE);
  return p;
}

/* -- A raw peer ----------------------------------------------------------------- */

typedef struct raw {
  uv_tcp_t tcp;
  uv_connect_t req;
  int connected, closed;
  uint8_t *buf;
  size_t len, cap;
  int frames[256];           /* frames received by type */
  uint64_t bytes;            /* bytes received */
  uint8_t last[512];         /* the last handshake frame's body */
  size_t last_len;
  uint8_t nonce[HALO_FRAME_NONCE], nonce_peer[HALO_FRAME_NONCE];
  char name[64], peer_name[256];
  uint64_t peer_creation;
} raw_t;

static raw_t R;

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  raw_t *r = h->data;
  (void)suggested;
  if (r->cap - r->len < 65536) {
    r->cap = r->cap ? r->cap * 2 : 1 << 17;
    r->buf = realloc(r->buf, r->cap);
  }
  *b = uv_buf_init((char *)r->buf + r->len, (unsigned)(r->cap - r->len));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  raw_t *r = s->data;
  (void)b;
  if (n < 0) {
    r->closed = 1;
    uv_read_stop(s);
    return;
  }
  r->len += (size_t)n;
  r->bytes += (uint64_t)n;
  size_t off = 0;
  for (;;) {
    int type;
    const uint8_t *body;
    size_t blen;
    long k = halo_frame_next(r->buf + off, r->len - off, HALO_NET_MAX_FRAME, &type, &body, &blen);
    if (k <= 0) break;
    r->frames[type & 0xff]++;
    if (blen <= sizeof r->last && type < F_MSG) {
      memcpy(r->last, body, blen);
      r->last_len = blen;
    }
    off += (size_t)k;
  }
  memmove(r->buf, r->buf + off, r->len - off);
  r->len -= off;
}

static void raw_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

/* Sends one frame: type, then body. */
static void raw_send(raw_t *r, int type, const void *body, size_t n) {
  uv_write_t *w = malloc(sizeof *w + 5 + n);
  uint8_t *f = (uint8_t *)(w + 1);
  halo__put32(f, (uint32_t)(n + 1));
  f[4] = (uint8_t)type;
  memcpy(f + 5, body, n);
  uv_buf_t b = uv_buf_init((char *)f, (unsigned)(5 + n));
  CHECK_EQ(uv_write(w, (uv_stream_t *)&r->tcp, &b, 1, raw_written), 0);
}

static void raw_connected(uv_connect_t *req, int status) {
  raw_t *r = req->data;
  CHECK_EQ(status, 0);
  r->connected = 1;
  uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}

/* Dials node t as "raw@localhost" and runs the whole handshake (the node's
 * pool size must be 1: READY names no join). */
static void raw_join(raw_t *r, tnode_t *t) {
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "raw@localhost");
  memset(r->nonce, 0x5a, sizeof r->nonce);
  uv_tcp_init(&loop, &r->tcp);
  r->tcp.data = r->req.data = r;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", t->net.port, &addr);
  CHECK_EQ(uv_tcp_connect(&r->req, &r->tcp, (const struct sockaddr *)&addr, raw_connected), 0);
  RUN_UNTIL(r->connected, 2000);
  uint8_t hello[3 + 64 + 2 * HALO_FRAME_NONCE + 8];
  size_t k = 0, nl = strlen(r->name);
  hello[k++] = HALO_FRAME_VERSION;
  hello[k++] = 0;
  hello[k++] = (uint8_t)nl;
  memcpy(hello + k, r->name, nl), k += nl;
  memcpy(hello + k, r->nonce, HALO_FRAME_NONCE), k += HALO_FRAME_NONCE;
  halo__put64(hello + k, 42), k += 8;
  raw_send(r, F_HELLO, hello, k);
  RUN_UNTIL(r->frames[F_CHALLENGE], 2000);
  CHECK_EQ(halo_frame_challenge_parse(r->last, r->last + r->last_len, r->peer_name, r->nonce_peer,
                                      &r->peer_creation), 0);
  uint8_t proof[HALO_FRAME_PROOF_LEN];
  uint32_t max = 1u << 20;
  halo_frame_mac(COOKIE, 'D', r->nonce_peer, r->nonce, r->name, r->peer_name, 42, max, proof);
  halo__put32(proof + HALO_SHA256_LEN, max);
  halo__put64(proof + HALO_SHA256_LEN + 4, 1);
  raw_send(r, F_PROOF, proof, sizeof proof);
  RUN_UNTIL(r->frames[F_WELCOME], 2000);
  uint8_t ready = 0;
  raw_send(r, F_READY, &ready, 1);
  halo_peer_t *p = NULL;
  RUN_UNTIL((p = halo_net_peer_by_name(&t->net, r->name)) && p->ready, 2000);
  t->net.keepalive_ms = 0; /* the raw peer does not ping: only what it sends may close its link */
}

static void raw_close(raw_t *r) {
  if (!uv_is_closing((uv_handle_t *)&r->tcp)) uv_close((uv_handle_t *)&r->tcp, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  free(r->buf);
  r->buf = NULL;
}

/* A MSG frame from the raw peer to process id, with this kind and queue. */
static void raw_msg(raw_t *r, int type, int kind, int queue, uint64_t to, const void *payload, size_t n) {
  uint8_t *b = calloc(1, HALO_FRAME_MSG_HEAD + n);
  b[0] = (uint8_t)(kind >> 8), b[1] = (uint8_t)kind, b[2] = (uint8_t)queue;
  halo__put64(b + 3, 7);
  halo__put64(b + 11, to);
  memcpy(b + HALO_FRAME_MSG_HEAD, payload, n);
  raw_send(r, type, b, HALO_FRAME_MSG_HEAD + n);
  free(b);
}

/* -- Input from other nodes -------------------------------------------------------- */

static void test_default_limits(void) {
  setup();
  node_up(&A, "a@localhost");
  CHECK_EQ(A.net.max_message, HALO_NET_MAX_MESSAGE);
  CHECK_EQ(A.net.assembly_budget, HALO_NET_ASSEMBLY_BUDGET);
  teardown(1);
}

/* Timeout, inspect and log messages, and flags on plain messages, are the
 * node's own: a peer's are refused and counted; a regular one gets through. */
static void test_internal_kinds_refused(void) {
  setup();
  node_up(&A, "a@localhost");
  A.net.pool_size = 1;
  halo_proc_t *p = start(&A, "target");
  raw_join(&R, &A);
  static const int bad[][2] = {{HALO_MSG_TIMEOUT, HALO_Q_MAIN},      {HALO_MSG_INSPECT, HALO_Q_URGENT},
                               {HALO_MSG_LOG, HALO_Q_LOG},           {HALO_MSG_REGULAR, HALO_Q_LOG},
                               {HALO_MSG_REGULAR | HALO_KIND_NOTICE, HALO_Q_MAIN}, {HALO_MSG_REPLY, HALO_Q_MAIN},
                               {HALO_MSG_EXIT | (8 << HALO_KIND_FLAGS_SHIFT), HALO_Q_URGENT}};
  const int nbad = (int)(sizeof bad / sizeof bad[0]);
  for (int i = 0; i < nbad; i++) raw_msg(&R, F_MSG, bad[i][0], bad[i][1], p->id, "abcd", 4);
  raw_msg(&R, F_MSG, HALO_MSG_REGULAR, HALO_Q_MAIN, p->id, "abcd", 4);
  RUN_UNTIL(A.host.msgs >= 1, 2000);
  CHECK_EQ(A.host.msgs, 1);
  CHECK_EQ(A.host.kinds[HALO_MSG_REGULAR], 1);
  CHECK_EQ(A.net.msgs_refused, nbad);
  CHECK_EQ(A.net.protocol_errors, 0);
  CHECK(halo_net_peer_by_name(&A.net, "raw@localhost") != NULL); /* refused, not a reason to drop the peer */
  raw_close(&R);
  teardown(1);
}

/* A compressed payload that inflates past the limit is refused and counted,
 * whether it declares its size honestly or not. */
static void test_decompression_bomb(void) {
  setup();
  node_up(&A, "a@localhost");
  A.net.pool_size = 1;
  A.net.max_message = 65536;
  halo_proc_t *p = start(&A, "target");
  raw_join(&R, &A);
  size_t big = 8u << 20;
  uint8_t *plain = calloc(1, big);
  uLongf zlen = compressBound((uLong)big);
  uint8_t *z = malloc(4 + zlen);
  CHECK_EQ(compress2(z + 4, &zlen, plain, (uLong)big, Z_BEST_COMPRESSION), Z_OK);
  CHECK(zlen < 65536);
  halo__put32(z, (uint32_t)big); /* declared: over the limit */
  raw_msg(&R, F_MSG | 0x80, HALO_MSG_REGULAR, HALO_Q_MAIN, p->id, z, 4 + zlen);
  halo__put32(z, 1000); /* declared small, inflates past it */
  raw_msg(&R, F_MSG | 0x80, HALO_MSG_REGULAR, HALO_Q_MAIN, p->id, z, 4 + zlen);
  uLongf small = compressBound(1000);
  CHECK_EQ(compress2(z + 4, &small, plain, 1000, Z_BEST_SPEED), Z_OK);
  halo__put32(z, 1000); /* a fair one */
  raw_msg(&R, F_MSG | 0x80, HALO_MSG_REGULAR, HALO_Q_MAIN, p->id, z, 4 + small);
  RUN_UNTIL(A.host.msgs >= 1, 3000);
  CHECK_EQ(A.host.msgs, 1);
  CHECK_EQ(A.host.bytes, 1000);
  CHECK_EQ(A.net.inflate_refused, 2);
  CHECK_EQ(A.net.msgs_refused, 2);
  free(plain);
  free(z);
  raw_close(&R);
  teardown(1);
}

/* A peer's REJECT or YIELD reason (logged, and in the error a dial
 * returns) is printable ASCII: control bytes, DEL and bytes past it (C1
 * controls such as CSI, U+009B in UTF-8) become '?'. */
static void test_reason_printable(void) {
  static const uint8_t in[] = "no\r\n\x1b[2J \xc2\x9b" "31m \x9b \xff\x7f ok";
  char out[64];
  halo_frame_reason(in, in + sizeof in - 1, out, sizeof out);
  CHECK_STR_EQ(out, "no???[2J ??31m ? ?? ok");
  halo_frame_reason(in, in + sizeof in - 1, out, 5);
  CHECK_STR_EQ(out, "no??");
}

static uv_tcp_t raw_server;

static void raw_accepted(uv_stream_t *server, int status) {
  CHECK_EQ(status, 0);
  uv_tcp_init(&loop, &R.tcp);
  R.tcp.data = &R;
  CHECK_EQ(uv_accept(server, (uv_stream_t *)&R.tcp), 0);
  R.connected = 1;
  uv_read_start((uv_stream_t *)&R.tcp, raw_alloc, raw_read);
}

/* A node that dials an address where something answers under another name
 * (control bytes, C1 CSI, a byte that is not UTF-8 in it) fails the dial
 * with an error of printable ASCII. */
static void test_dial_error_printable(void) {
  setup();
  node_up(&A, "a@localhost");
  memset(&R, 0, sizeof R);
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(&loop, &raw_server);
  CHECK_EQ(uv_tcp_bind(&raw_server, (const struct sockaddr *)&addr, 0), 0);
  CHECK_EQ(uv_listen((uv_stream_t *)&raw_server, 4, raw_accepted), 0);
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(&raw_server, (struct sockaddr *)&bound, &blen);
  uint64_t id;
  CHECK_EQ(halo_net_connect(&A.net, "127.0.0.1", ntohs(((struct sockaddr_in *)&bound)->sin_port), "b@localhost", &id), 0);
  RUN_UNTIL(R.frames[F_HELLO], 2000);
  static const char name[] = "\x1b]0;t\x07\xc2\x9b" "2J\xff@localhost";
  uint8_t body[1 + sizeof name + HALO_FRAME_NONCE + 8];
  size_t k = 0;
  body[k++] = (uint8_t)(sizeof name - 1);
  memcpy(body + k, name, sizeof name - 1), k += sizeof name - 1;
  memset(body + k, 1, HALO_FRAME_NONCE + 8), k += HALO_FRAME_NONCE + 8;
  raw_send(&R, F_CHALLENGE, body, k);
  const char *why = NULL;
  RUN_UNTIL(halo_net_dial_result(&A.net, id, &why), 2000);
  CHECK_EQ(halo_net_dial_result(&A.net, id, &why), -1);
  CHECK(why && strstr(why, "answered as "));
  for (const char *c = why; c && *c; c++) CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
  raw_close(&R);
  uv_close((uv_handle_t *)&raw_server, NULL);
  teardown(1);
}

/* A FRAG frame: id, total, offset, bytes. */
static void raw_frag(raw_t *r, uint64_t id, uint32_t total, uint32_t off, const uint8_t *bytes, size_t n) {
  uint8_t *b = malloc(HALO_FRAME_FRAG_HEAD + n);
  halo__put64(b, id);
  halo__put32(b + 8, total);
  halo__put32(b + 12, off);
  memcpy(b + HALO_FRAME_FRAG_HEAD, bytes, n);
  raw_send(r, F_FRAG, b, HALO_FRAME_FRAG_HEAD + n);
  free(b);
}

/* Reassembly holds what came, not what was announced, and a peer's pieces
 * in flight may not pass the budget (here: the one full-size message its
 * one link may have in pieces): past it the link goes. */
static void test_reassembly_budget(void) {
  setup();
  node_up(&A, "a@localhost");
  A.net.pool_size = 1;
  A.net.max_message = 1u << 20;
  A.net.assembly_budget = 256u << 10;
  start(&A, "target");
  raw_join(&R, &A);
  halo_peer_t *peer = halo_net_peer_by_name(&A.net, "raw@localhost");
  uint8_t piece[1000];
  memset(piece, 'p', sizeof piece);
  piece[0] = F_MSG;
  uint32_t total = 1u << 20; /* each announces 1 MB, the message limit */
  for (uint64_t id = 1; id <= 3; id++) raw_frag(&R, id, total, 0, piece, sizeof piece);
  RUN_UNTIL(peer->frag_recv == 3, 2000);
  CHECK_EQ(peer->assemblies.len, 3);
  CHECK(peer->assembly_bytes <= 3 * 65536);
  CHECK_EQ(A.net.protocol_errors, 0);
  for (uint32_t off = sizeof piece; !R.closed && off < total; off += sizeof piece)
    raw_frag(&R, 1, total, off, piece, total - off < sizeof piece ? total - off : sizeof piece);
  RUN_UNTIL(R.closed, 3000);
  CHECK_EQ(A.net.protocol_errors, 1);
  CHECK_EQ(peer->frag_msgs_recv, 0); /* the link went before the message was whole */
  CHECK(peer->assembly_bytes <= A.net.assembly_budget);
  raw_close(&R);
  teardown(1);
}

/* A peer that keeps to the limit has at most one message in pieces per
 * link: messages of the full size on every link at once are reassembled
 * whatever the budget says (here: one message's size). */
static void test_reassembly_full_size_per_link(void) {
  setup();
  node_up(&A, "a@localhost");
  node_up(&B, "b@localhost");
  A.net.pool_size = 2;
  A.net.max_message = 1u << 20;
  A.net.assembly_budget = 1u << 20;
  halo_proc_t *sink = start(&A, "sink");
  halo_proc_t *s1 = start(&B, "s1"), *s2 = start(&B, "s2");
  CHECK(s1->id % 255 % 2 != s2->id % 255 % 2); /* on different links */
  CHECK_EQ(halo_net_connect(&B.net, "127.0.0.1", A.net.port, "a@localhost", NULL), 0);
  halo_peer_t *pb = NULL;
  RUN_UNTIL((pb = halo_net_peer_by_name(&B.net, "a@localhost")) && pb->ready && pb->live == 2, 3000);
  for (int round = 0; round < 2; round++)
    for (halo_proc_t *src = s1; src; src = src == s1 ? s2 : NULL)
      CHECK_EQ(halo_send(&B.node, src, halo_node_pid(&A.node, sink->id), HALO_MSG_REGULAR, HALO_Q_MAIN, 0,
                         pl_make(&B.node, 1u << 20, 1), 0),
               0);
  RUN_UNTIL(A.host.msgs == 4 || A.net.protocol_errors, 5000);
  CHECK_EQ(A.host.msgs, 4);
  CHECK_EQ(A.net.protocol_errors, 0);
  halo_peer_t *pa = halo_net_peer_by_name(&A.net, "b@localhost");
  CHECK(pa && pa->frag_msgs_recv == 4 && pa->assembly_bytes == 0);
  teardown(2);
}

/* A frame over the advertised limit closes the link and is counted. */
static void test_frame_limit(void) {
  setup();
  node_up(&A, "a@localhost");
  A.net.pool_size = 1;
  A.net.max_message = 4096;
  halo_proc_t *p = start(&A, "target");
  raw_join(&R, &A);
  uint8_t *payload = calloc(1, 8192);
  raw_msg(&R, F_MSG, HALO_MSG_REGULAR, HALO_Q_MAIN, p->id, payload, 8192);
  RUN_UNTIL(R.closed, 2000);
  CHECK_EQ(A.net.protocol_errors, 1);
  CHECK_EQ(A.host.msgs, 0);
  free(payload);
  raw_close(&R);
  teardown(1);
}

/* -- Sessions ------------------------------------------------------------------ */

/* b dials a with pool size k: both see a ready session of k links (READY
 * told a which joins stay), and one sender's messages arrive in order. */
static void session_of(int k) {
  setup();
  node_up(&A, "a@localhost");
  node_up(&B, "b@localhost");
  A.net.pool_size = k;
  halo_proc_t *sink = start(&A, "sink");
  halo_proc_t *src = start(&B, "src");
  uint64_t id;
  CHECK_EQ(halo_net_connect(&B.net, "127.0.0.1", A.net.port, "a@localhost", &id), 0);
  halo_peer_t *pa = NULL, *pb = NULL;
  RUN_UNTIL((pb = halo_net_peer_by_name(&B.net, "a@localhost")) && pb->ready &&
                (pa = halo_net_peer_by_name(&A.net, "b@localhost")) && pa->ready,
            3000);
  if (!pa || !pb) return teardown(2);
  CHECK_EQ(pb->live, k);
  CHECK_EQ(pa->live, k);
  CHECK_EQ(pb->pool_size, k);
  CHECK_EQ(halo_net_dial_result(&B.net, id, NULL), 1);
  for (uint32_t i = 1; i <= 200; i++)
    CHECK_EQ(halo_send(&B.node, src, halo_node_pid(&A.node, sink->id), HALO_MSG_REGULAR, HALO_Q_MAIN, 0,
                       pl_make(&B.node, 100 + i * 10, i), 0),
             0);
  RUN_UNTIL(A.host.msgs == 200, 3000);
  CHECK_EQ(A.host.order_bad, 0);
  CHECK_EQ(A.net.connections_established, 1);
  CHECK_EQ(B.net.connections_established, 1);
  CHECK_EQ(A.net.handshake_errors + B.net.handshake_errors, 0);
  teardown(2);
}

static void test_session_pool_1(void) { session_of(1); }
static void test_session_pool_2(void) { session_of(2); }
static void test_session_pool_5(void) { session_of(5); }
static void test_session_pool_8(void) { session_of(HALO_NET_POOL_MAX); }

/* Messages sent before the session is ready wait and go out in order; a
 * join that is refused leaves the session with the links it has. */
static void test_pending_until_ready(void) {
  setup();
  node_up(&A, "a@localhost");
  node_up(&B, "b@localhost");
  halo_proc_t *sink = start(&A, "sink");
  halo_proc_t *src = start(&B, "src");
  CHECK_EQ(halo_net_route_set(&B.net, "a@localhost", "127.0.0.1", A.net.port), 0);
  for (uint32_t i = 1; i <= 50; i++)
    CHECK_EQ(halo_send(&B.node, src, halo_node_pid(&A.node, sink->id), HALO_MSG_REGULAR, HALO_Q_MAIN, 0,
                       pl_make(&B.node, 64, i), 0),
             0);
  halo_peer_t *pb = halo_imap_get(&B.net.peers, A.node.crc);
  CHECK(pb && !pb->ready && pb->pending_msgs == 50);
  RUN_UNTIL(A.host.msgs == 50, 3000);
  CHECK_EQ(A.host.order_bad, 0);
  CHECK_EQ(pb->pending_msgs, 0);
  CHECK_EQ(B.net.pending_dropped, 0);
  teardown(2);
}

/* Messages held for a node whose dial fails are dropped and counted. */
static void test_pending_dropped(void) {
  setup();
  node_up(&B, "b@localhost");
  node_up(&A, "a@localhost");
  halo_proc_t *src = start(&B, "src");
  int port = A.net.port;
  halo_node_stop(&A.node, 0);
  RUN_UNTIL(A.node.stopped, 2000);
  halo_net_close(&A.net); /* nobody listens there now */
  CHECK_EQ(halo_net_route_set(&B.net, "a@localhost", "127.0.0.1", port), 0);
  for (uint32_t i = 1; i <= 5; i++)
    CHECK_EQ(halo_send(&B.node, src, halo_node_pid(&A.node, 1), HALO_MSG_REGULAR, HALO_Q_MAIN, 0,
                       pl_make(&B.node, 64, i), 0),
             0);
  RUN_UNTIL(B.net.pending_dropped == 5, 3000);
  halo_net_route_del(&B.net, "a@localhost");
  node_down(&B);
  halo_node_close(&A.node);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(uv_loop_close(&loop), 0);
  halo_node_destroy(&A.node);
  halo_node_destroy(&B.node);
  CHECK_EQ(B.host.live, 0);
}

/* halo_net_disconnect ends the session on both sides, counted as a loss;
 * the node that asked does not re-dial, and its next message connects
 * through the route. */
static void test_disconnect(void) {
  setup();
  node_up(&A, "a@localhost");
  node_up(&B, "b@localhost");
  halo_proc_t *sink = start(&A, "sink");
  halo_proc_t *src = start(&B, "src");
  CHECK_EQ(halo_net_route_set(&B.net, "a@localhost", "127.0.0.1", A.net.port), 0);
  halo_peer_t *pa = NULL, *pb = NULL;
  RUN_UNTIL((pb = halo_net_peer_by_name(&B.net, "a@localhost")) && pb->ready &&
                (pa = halo_net_peer_by_name(&A.net, "b@localhost")) && pa->ready,
            3000);
  CHECK_EQ(halo_net_disconnect(&B.net, "nobody@localhost"), HALO_ENOCONN);
  CHECK_EQ(halo_net_disconnect(&B.net, "a@localhost"), 0);
  CHECK(halo_net_peer_by_name(&B.net, "a@localhost") == NULL);
  CHECK_EQ(pb->retry_at, 0);
  CHECK_EQ(pb->dialing, 0);
  CHECK_EQ(B.net.connections_lost, 1);
  CHECK_EQ(halo_net_disconnect(&B.net, "a@localhost"), HALO_ENOCONN);
  RUN_UNTIL(A.net.connections_lost == 1, 3000);
  CHECK(halo_net_peer_by_name(&A.net, "b@localhost") == NULL);
  CHECK_EQ(B.net.connections_established, 1); /* not re-dialed meanwhile */
  CHECK_EQ(halo_send(&B.node, src, halo_node_pid(&A.node, sink->id), HALO_MSG_REGULAR, HALO_Q_MAIN, 0,
                     pl_make(&B.node, 64, 1), 0),
           0);
  RUN_UNTIL(A.host.msgs == 1, 3000);
  CHECK_EQ(B.net.connections_established, 2);
  teardown(2);
}

/* A sender that finds its link congested (the peer does not read) is
 * parked at its next yield and goes on once the link drains. */
static void test_sender_parked(void) {
  setup();
  node_up(&A, "a@localhost");
  A.net.pool_size = 1;
  halo_proc_t *src = start(&A, "src");
  raw_join(&R, &A);
  uv_read_stop((uv_stream_t *)&R.tcp);
  halo_proc_ext_t *x = halo__proc_ext(src);
  halo_pid_t to = {halo_crc32("raw@localhost", 13), 1};
  A.net.fragment_size = 0;
  for (uint32_t i = 1; i <= 64 && !x->throttled; i++) {
    CHECK_EQ(halo_send(&A.node, src, to, HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl_make(&A.node, 512u << 10, i), 0), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  CHECK_EQ(x->throttled, HALO_THROTTLED);
  CHECK_EQ(halo_proc_yield(&A.node, src), 0);
  CHECK_EQ(x->throttled, HALO_PARKED);
  uint64_t wakes = A.host.wakes;
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_EQ(A.host.wakes, wakes); /* parked: not run while the link is full */
  uv_read_start((uv_stream_t *)&R.tcp, raw_alloc, raw_read);
  RUN_UNTIL(A.host.wakes > wakes, 5000);
  CHECK_EQ(x->throttled, 0);
  RUN_UNTIL(R.frames[F_MSG] >= 10, 5000);
  raw_close(&R);
  teardown(1);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* the raw peer writes on after the node closed its link */
  RUN_TEST(test_default_limits);
  RUN_TEST(test_reason_printable);
  RUN_TEST(test_dial_error_printable);
  RUN_TEST(test_internal_kinds_refused);
  RUN_TEST(test_decompression_bomb);
  RUN_TEST(test_reassembly_budget);
  RUN_TEST(test_frame_limit);
  RUN_TEST(test_reassembly_full_size_per_link);
  RUN_TEST(test_session_pool_1);
  RUN_TEST(test_session_pool_2);
  RUN_TEST(test_session_pool_5);
  RUN_TEST(test_session_pool_8);
  RUN_TEST(test_pending_until_ready);
  RUN_TEST(test_pending_dropped);
  RUN_TEST(test_sender_parked);
  RUN_TEST(test_disconnect);
  return check_exit_code();
}
