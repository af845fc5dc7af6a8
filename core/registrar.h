/*
 * The embedded registrar (the reference's ESRD, simplified): nodes of one
 * host find each other with nothing else running.
 *
 * The first node to bind 127.0.0.1:port (default 4499) serves; the others
 * connect to it and register {name, host, port of their acceptor}. Names
 * are unique per server: a second registration of a name is refused. A
 * registration lasts as long as its TCP connection. The server tells every
 * registered node about the others (JOIN, LEFT), so each node dials every
 * node it hears of and the nodes form a full mesh; a node that left is no
 * longer re-dialed. When the serving node goes away, the others try every
 * second to serve (one wins the port) or to register with the one that
 * does, within about a second.
 *
 * The server also answers resolve requests from other hosts on UDP
 * 0.0.0.0:port: "RESOLVE <name>" -> "ROUTE <name> <host> <port>" or
 * "UNKNOWN <name>". A node started with --join name@host[:port] asks
 * host's registrar that way every second until it knows the node, then
 * dials it (halo_joiner below).
 *
 * Wire: text lines on localhost TCP, at most 600 bytes each.
 *   node -> server  "REG <name> <host> <port>"
 *   server -> node  "OK" | "ERR <reason>", then "JOIN <name> <host> <port>" for
 *                   each known node and "END"; later JOIN and LEFT <name> lines.
 * Anything else closes that connection; the server keeps serving.
 */
#ifndef HALO_REGISTRAR_H
#define HALO_REGISTRAR_H

#include "net.h"

#define HALO_REGISTRAR_PORT 4499
#define HALO_REGISTRAR_VERSION "ESRD:R1"

typedef struct halo_reg_node {
  char name[256];
  char host[64];
  int port;
  struct halo_regconn *owner; /* server: the connection that registered it (NULL: this node) */
  int stale;                  /* client: not in the server's latest list */
} halo_reg_node_t;

typedef struct halo_registrar {
  halo_net_t *net;
  int port;                   /* 127.0.0.1:port */
  int serving;                /* this node is the server */
  uv_tcp_t *listener;
  uv_udp_t *udp;              /* server: resolve requests from other hosts */
  struct halo_regconn *conns; /* server: registered nodes; client: the link to the server */
  int registered;             /* client: the server said OK */
  halo_reg_node_t *nodes;     /* known nodes (not this one) */
  uint32_t nnodes, capnodes;
  uv_timer_t *retry;          /* every second while neither serving nor registered */
  char error[128];            /* the last refusal or failure, "" if none */
  uint64_t elections, registrations;
  uint64_t stale_until;       /* server: nodes known before it served and not registered again leave then */
  int closing;
} halo_registrar_t;

/** Starts the embedded registrar for net (listening already) on port (0:
 *  HALO_REGISTRAR_PORT): serves or registers, now or within a second. */
int halo_registrar_start(halo_registrar_t *r, halo_net_t *net, int port);
void halo_registrar_stop(halo_registrar_t *r);

/* Nodes to join on other hosts: resolved through their hosts' registrars. */
typedef struct halo_join {
  char name[256];
  char host[64];            /* the host part of the name: where its registrar is */
  int port;                 /* that registrar's UDP port */
  int known;                /* its route is set */
} halo_join_t;

typedef struct halo_joiner {
  halo_net_t *net;
  uv_udp_t *udp;
  uv_timer_t *timer;        /* asks every second for the nodes not known yet */
  halo_join_t *joins;
  uint32_t njoins, capjoins;
  uint64_t asked, answered;
} halo_joiner_t;

/** Starts asking for spec ("name@host" or "name@host:port", port defaulting
 *  to default_port) every second until its route is known. 0,
 *  HALO_EINCORRECT (bad spec), HALO_ENOMEM. j is zeroed on first use. */
int halo_joiner_add(halo_joiner_t *j, halo_net_t *net, const char *spec, int default_port);
void halo_joiner_stop(halo_joiner_t *j);

#endif
