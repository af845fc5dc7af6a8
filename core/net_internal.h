/*
 * The transport's internals shared by its files (not an API; net.h is):
 *   net.c        the API, the routes the node sends through, delivery of
 *                what arrives
 *   link.c       one TCP link: open, read, write buffer and flush,
 *                back-pressure, keep-alive, close
 *   handshake.c  HELLO .. WELCOME, REJECT, YIELD, admission, simultaneous
 *                dials
 *   session.c    peers: sessions and their pool of links, READY, pending
 *                buffers, reassembly, loss and re-dial
 */
#ifndef HALO_NET_INTERNAL_H
#define HALO_NET_INTERNAL_H

#include "frame.h"
#include "net.h"

/* a link's state: dialing, handshaking (each side's step), up, or waiting
 * after a YIELD for the peer's own dial */
enum { C_CONNECTING, C_HELLO_SENT, C_WAIT_HELLO, C_WAIT_PROOF, C_WAIT_WELCOME, C_UP, C_YIELDED };

#define NONCE HALO_NET_NONCE
#define FRAME_SLACK HALO_FRAME_SLACK
#define CONGESTED (8u << 20)   /* bytes waiting on a link that make its senders wait */
#define DRAINED (2u << 20)     /* ... until no more than this waits */

/* the wire's big-endian helpers (frame.c) */
#define put32 halo__put32
#define get32 halo__get32
#define put64 halo__put64
#define get64 halo__get64

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

/* -- link.c ------------------------------------------------------------------ */

/* Closes c. why == NULL: a quiet close (nothing counted or logged). */
void halo__net_conn_close(halo_conn_t *c, const char *why);
/* Records how c's dial ended (once) for halo_net_dial_result. */
void halo__net_report_dial(halo_conn_t *c, int ok, const char *why);
/* Counts a protocol error and closes c. */
void halo__net_protocol_error(halo_conn_t *c, const char *why);
/* Dials host:port: a session-opening dial or a join of for_peer's session. */
int halo__net_dial(halo_net_t *net, const char *host, int port, const char *expect, halo_peer_t *for_peer, int join,
                   uint64_t *id);
/* The acceptor's connection callback. */
void halo__net_on_connection(uv_stream_t *server, int status);
/* Bytes waiting to be written on c. */
size_t halo__net_waiting(halo_conn_t *c);
/* Sender p waits at its next yield until c drains. */
void halo__net_throttle(halo_conn_t *c, halo_proc_t *p);
/* Starts a frame in o; its offset, or -1. */
long halo__net_frame_begin(halo_mpw_t *o, uint8_t type, const void *head, size_t hlen);
/* Closes the frame(s) begun at start (c NULL: a pending buffer). */
void halo__net_frame_end(halo_mpw_t *o, halo_conn_t *c, size_t start, int patch);
/* Appends one frame (type, body a then b) to o. */
int halo__net_put_frame(halo_mpw_t *o, halo_conn_t *c, uint8_t type, const void *a, size_t alen, const void *b,
                        size_t blen);
/* Appends one frame to c's write buffer. */
int halo__net_send_frame(halo_conn_t *c, uint8_t type, const void *a, size_t alen, const void *b, size_t blen);
/* Pings the quiet links, closes the silent ones. */
void halo__net_keepalive(halo_net_t *net, uint64_t now);

/* -- handshake.c ------------------------------------------------------------- */

/* Counts a handshake error and closes c. */
void halo__net_handshake_failed(halo_conn_t *c, const char *why);
/* The timer of a link not up yet. */
void halo__net_handshake_timeout(uv_timer_t *t);
/* Dialer, connected: sends HELLO. */
void halo__net_hello(halo_conn_t *c);
/* A frame on a link not up. */
void halo__net_handshake_receive(halo_conn_t *c, int type, const uint8_t *p, const uint8_t *end);
/* Why the peer may not join (NULL: it may); *final: REJECT, else YIELD. */
const char *halo__net_admission(halo_conn_t *c, int *final);
/* Our own session-opening dial of name still handshaking, or NULL. */
halo_conn_t *halo__net_own_dial(halo_net_t *net, const char *name, const halo_conn_t *except);
/* Ends a session-opening link that lost to another one (quietly). */
void halo__net_lose_quietly(halo_conn_t *c);

/* -- session.c --------------------------------------------------------------- */

/* Link c is up: it opens or joins its peer's session. */
void halo__net_established(halo_conn_t *c, uint32_t max_message, int pool_size);
/* Link c closes: its dial and session learn of it. */
void halo__net_session_unlink(halo_conn_t *c, const char *why);
/* The peer of this name, made if new; NULL: out of memory. */
halo_peer_t *halo__net_peer_get(halo_net_t *net, const char *name);
/* The link for messages from sender id from, or NULL. */
halo_conn_t *halo__net_pick_link(const halo_peer_t *p, uint64_t from);
/* READY on an acceptor's link. */
void halo__net_receive_ready(halo_conn_t *c, const uint8_t *p, const uint8_t *end);
/* A FRAG frame; the last piece is received as the whole frame. */
void halo__net_receive_frag(halo_conn_t *c, const uint8_t *p, const uint8_t *end);
/* Re-dials, late READY, reassembly timeouts. */
void halo__net_session_tick(halo_net_t *net, uint64_t now);
/* Frees every peer (the node stops). */
void halo__net_peers_free(halo_net_t *net);

/* -- net.c ------------------------------------------------------------------- */

/* A frame on a link that is up. */
void halo__net_receive(halo_conn_t *c, int type, const uint8_t *p, const uint8_t *end);

#endif
