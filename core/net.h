/*
 * The inter-node transport: an acceptor, dialed connections, the handshake,
 * a pool of TCP links per peer and message frames.
 *
 * Frames: a 4-byte big-endian length of what follows, a type byte, a body.
 * Handshake (the cookie never crosses the wire; each side proves it knows
 * it with an HMAC over both per-connection nonces, both names, its creation
 * id and its size limit; the acceptor proves itself only after the dialer):
 *   dialer   -> HELLO     {version, flags, name_d, nonce_d, creation_d[, session]}
 *   acceptor -> CHALLENGE {name_a, nonce_a, creation_a}
 *   dialer   -> PROOF     {HMAC(cookie, "D"|nonce_a|nonce_d|name_d|name_a|creation_d|max_d), max_d}
 *   acceptor -> WELCOME   {HMAC(cookie, "A"|nonce_d|nonce_a|name_a|name_d|creation_a|max_a), max_a, pool size}
 *   or REJECT {reason} (final: the dialer stops re-dialing) or YIELD
 *   {reason} (not now: the peer is connected already, or both sides dialed
 *   at once and the dial of the node with the smaller name goes on).
 * The first link of a peer opens a session (its id is the dialer's nonce);
 * the dialer then opens the rest of the pool (the acceptor's size, default
 * 3) with HELLO flag JOIN carrying that session id, each with its own full
 * proof. A sender's messages to a peer always take the link its PID picks,
 * so they stay ordered. Frames after the handshake are not authenticated or
 * encrypted: run clusters on a trusted network.
 * Message frames: kind, queue, from id, to id, the creation of the run the
 * sender believes the target belongs to (0: the current one; another than
 * the receiver's: no such target), ref, payload (MessagePack
 * made by the host's encode hook), zlib-compressed when the sender asked
 * (type | 0x80); a frame over the fragment size travels as FRAG frames
 * {id, total, offset, bytes} reassembled by the receiver. Writes are
 * coalesced: frames go into the link's buffer, written once per loop
 * iteration (or when the buffer passes 256 KB). A protocol error closes the
 * link; the node keeps serving.
 */
#ifndef HALO_NET_H
#define HALO_NET_H

#include <uv.h>

#include "creation.h"
#include "msgpack.h"
#include "node.h"

#define HALO_NET_DEFAULT_PORT 11144
#define HALO_NET_HANDSHAKE "HHS:R1" /* version strings in the reference's style */
#define HALO_NET_PROTO "HNP:R1"
#define HALO_NET_HANDSHAKE_MS 5000
#define HALO_NET_MAX_FRAME (64u << 20)   /* no frame is longer, whatever the settings */
#define HALO_NET_MAX_MESSAGE (16u << 20) /* default limit of a message's encoding (max_message) */
#define HALO_NET_ASSEMBLY_BUDGET (64u << 20) /* default bytes held per peer for reassembly */
#define HALO_NET_POOL_MAX 8
#define HALO_NET_NONCE 16

typedef struct halo_conn halo_conn_t;

typedef struct halo_net_route {
  char name[256];
  char host[64];
  int port;
} halo_net_route_t;

typedef struct halo_peer {
  char *name;               /* "name@host" */
  uint32_t crc;
  halo_conn_t *links[HALO_NET_POOL_MAX]; /* established links by slot */
  int pool_size;            /* links wanted (the acceptor's setting) */
  int live;                 /* established links of the session now */
  int ready;                /* the session's links are fixed: messages flow (see READY) */
  uint64_t ready_by;        /* the dialer declares it ready by then even with joins missing */
  uint8_t session[HALO_NET_NONCE]; /* id of the current session (joins must name it) */
  uint64_t links_made;      /* links established so far: past the pool size, each is a replacement */
  int dialed;               /* this side dialed */
  uint64_t connected_at;    /* halo_clock_ns() */
  uint64_t started_at;      /* when the peer node started, on our halo_clock_ns() (from the handshake) */
  uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
  uint32_t max_message;     /* the peer's limit, 0 = none */
  uint64_t creation;        /* the peer's random id for this run (same name, other node: refused) */
  /* re-dialing a peer this side dialed, after its link was lost */
  char host[64];
  int port;                 /* 0: not ours to re-dial */
  int dialing;              /* a dial is under way */
  int joining;              /* join dials under way */
  uint64_t retry_at;        /* halo_clock_ns() of the next attempt, 0 = none */
  uint32_t backoff_ms;
  uint64_t reconnections;
  uint64_t compressed_sent, compressed_bytes, compressed_orig;       /* wire bytes, original bytes */
  uint64_t decompressed_recv, decompressed_bytes, decompressed_orig;
  uint64_t frag_sent, frag_msgs_sent, frag_recv, frag_msgs_recv, frag_timeouts;
  uint64_t next_frag;       /* id of the next fragmented message to it */
  halo_imap_t assemblies;   /* fragment id -> messages being reassembled */
  size_t assembly_bytes;    /* what they hold (at most net->assembly_budget) */
  halo_imap_t pending;      /* frames sent before the session was ready, by sender class
                             * (id % 255 + 1 -> halo_mpw_t *): each class goes to the link its
                             * senders will use, so nothing overtakes them */
  size_t pending_bytes;
  uint64_t pending_msgs;
} halo_peer_t;

typedef struct halo_net {
  halo_node_t *node;
  uv_tcp_t *acceptor;      /* NULL until listening */
  char host[64];
  int port;
  char *cookie;
  uint64_t creation;        /* random per start: tells two nodes of one name apart, and runs */
  halo_creations_t creations; /* the runs of other nodes' PIDs and aliases seen here */
  int stale_self;           /* PIDs of an earlier run of this node have come back */
  uint32_t max_message;     /* ours, advertised: a message's encoding (compressed or not, once inflated)
                             * may not be larger (default HALO_NET_MAX_MESSAGE; 0 = HALO_NET_MAX_FRAME) */
  uint32_t compress_threshold; /* compress payloads larger than this (default 1024) for processes that ask */
  int pool_size;            /* links per peer we ask dialers for (default 3, at most HALO_NET_POOL_MAX) */
  uint32_t fragment_size;   /* frames over this travel in fragments (default 65000; 0 = never) */
  uint32_t fragment_timeout_ms; /* an incomplete message is dropped after this (default 30000) */
  uint32_t max_assemblies;  /* messages being reassembled per peer (default 1000) */
  size_t assembly_budget;   /* bytes they may hold per peer (default HALO_NET_ASSEMBLY_BUDGET; never less
                             * than a message of the full size per link of its session) */
  uv_prepare_t *flush;      /* writes the links' buffers once per loop iteration */
  halo_imap_t peers;        /* crc -> halo_peer_t */
  halo_imap_t routes;       /* crc -> halo_net_route_t: where registrars say nodes listen */
  halo_conn_t *conns;       /* every open connection (handshaking or not) */
  halo_route_t route;
  uint64_t handshake_errors, connections_established, connections_lost, protocol_errors;
  uint64_t simultaneous_connects; /* a dial of ours met the peer's dial of us and one gave way */
  uint64_t pending_dropped; /* messages sent to a node that could not be reached */
  uint64_t msgs_refused;    /* messages received and not delivered: a kind peers may not send,
                             * undecodable, bad or over-limit compressed data */
  uint64_t inflate_refused; /* of those: compressed payloads that inflate past the limit */
  struct halo_dial_result { uint64_t id; int ok; char why[96]; } results[32]; /* recent dials */
  uint32_t next_result;
  uint64_t next_dial;
  uv_timer_t *tick;         /* keep-alive and re-dial */
  uint32_t keepalive_ms;    /* ping a quiet link this often (default 1000) */
  uint32_t keepalive_misses;/* declare the peer dead after this many quiet periods (default 3) */
  int closing;
} halo_net_t;

/** Starts the transport of node n with this cookie; routes remote sends. */
int halo_net_init(halo_net_t *net, halo_node_t *n, const char *cookie);
/** Listens on host:port; port 0 = HALO_NET_DEFAULT_PORT, trying the next
 *  ports when taken (up to 100). The chosen port is in net->port. */
int halo_net_listen(halo_net_t *net, const char *host, int port);
/** How dial id ended: 1 connected, -1 failed (*why set), 0 still under way
 *  (or too old to remember). */
int halo_net_dial_result(halo_net_t *net, uint64_t id, const char **why);
/** Dials "host:port"; the handshake runs in the background; *id names it.
 *  expect (or NULL) is the node name the dialer means to reach: another
 *  name answering gets no proof. A peer dialed
 *  this way is re-dialed (backing off from 100 ms to 5 s) when its link is
 *  lost; a quiet link is pinged and a silent peer dropped. */
int halo_net_connect(halo_net_t *net, const char *host, int port, const char *expect, uint64_t *id);
/** Writes every link's buffered frames now (the loop does it before each poll). */
void halo_net_flush(halo_net_t *net);
/** A registrar says node name listens at host:port: remembered (messages
 *  to it connect on first use) and dialed now unless connected (the full
 *  mesh). HALO_EINCORRECT for a bad name, HALO_ENOMEM. */
int halo_net_route_set(halo_net_t *net, const char *name, const char *host, int port);
/** Closes the session with the established peer name (its links and
 *  monitors end with "no connection", counted as a lost connection) and
 *  does not re-dial it: the next message to it connects again through its
 *  route, if it has one. HALO_ENOCONN when it is not connected. */
int halo_net_disconnect(halo_net_t *net, const char *name);
/** Node name left: no route, no more re-dials. */
void halo_net_route_del(halo_net_t *net, const char *name);
/** The route of node crc, or NULL. */
const halo_net_route_t *halo_net_route(halo_net_t *net, uint32_t crc);
/** The established peer with this node name, or NULL. */
halo_peer_t *halo_net_peer_by_name(halo_net_t *net, const char *name);
/** The creation to send with identifier (kind, node, id): this node's own
 *  for its own, the one it was last seen with for another node's, else 0. */
uint64_t halo_net_creation_of(halo_net_t *net, int kind, uint32_t node, uint64_t id);
/** Identifier (kind, node, id) was received as belonging to run creation. */
void halo_net_learn(halo_net_t *net, int kind, uint32_t node, uint64_t id, uint64_t creation);
/** 1 when local identifier (kind, id) came back from another node as one of
 *  an earlier run of this node (it names no process of this run). */
int halo_net_stale(halo_net_t *net, int kind, uint64_t id);
/** Closes everything (node stop). */
void halo_net_close(halo_net_t *net);

#endif
