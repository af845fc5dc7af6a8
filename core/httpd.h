/*
 * An HTTP/1.1 server on libuv and llhttp: one listener, connections parsed
 * with llhttp, and a table of exact paths. Each route allows a set of
 * methods (HEAD wherever GET is) and is answered one of three ways:
 *   static   status, content type and body held here, answered on the loop;
 *   C        a halo_httpd_handler_cb fills the response on the loop;
 *   process  the request goes to the dispatch callback, which answers later
 *            with halo_httpd_respond or the halo_httpd_stream_* calls.
 * Unknown paths get 404, a known path with a method it does not allow 405
 * with Allow. Keep-alive and pipelining: requests on one connection are
 * answered strictly in the order they came, whatever kind answers them
 * (up to HALO_HTTPD_PIPELINE requests wait; reading pauses beyond). HEAD
 * answers carry the headers of GET without the body; request bodies come
 * with Content-Length or chunked; HTTP/1.0 and Connection: close end the
 * connection after the answer.
 *
 * Limits answer with a short text body and are counted in the stats:
 * malformed request 400 (then close), head larger than max_header 431,
 * body larger than max_body 413 (from Content-Length before the body is
 * read), a head not complete within header_timeout ms of the connection's
 * accept or of its first byte 408, a body not complete within body_timeout
 * ms of its head 408, an idle keep-alive connection closed after
 * idle_timeout ms, connections beyond max_connections answered 503 and
 * closed, a reader that leaves more than max_output bytes unsent is closed
 * when more output comes (a single answer may be larger).
 *
 * Writes to a socket the client has closed raise SIGPIPE: the process is
 * expected to ignore it.
 */
#ifndef HALO_HTTPD_H
#define HALO_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HALO_HTTPD_MAX_BODY (1u << 20)     /* default max_body */
#define HALO_HTTPD_MAX_HEADER (16u << 10)  /* default max_header: request line and headers */
#define HALO_HTTPD_MAX_OUTPUT (8u << 20)   /* default max_output per connection */
#define HALO_HTTPD_MAX_CONNECTIONS 10000   /* default max_connections */
#define HALO_HTTPD_HEADER_TIMEOUT 10000    /* default header_timeout, ms */
#define HALO_HTTPD_IDLE_TIMEOUT 60000      /* default idle_timeout, ms */
#define HALO_HTTPD_BODY_TIMEOUT 30000      /* default body_timeout, ms */
#define HALO_HTTPD_DRAIN_TIMEOUT 5000      /* time a closing connection gets to finish its answers */
#define HALO_HTTPD_PIPELINE 32             /* unanswered requests per connection before reading pauses */
#define HALO_HTTPD_MAX_HEADERS 100         /* header lines per request (more: 431) */

typedef struct halo_httpd halo_httpd_t;
typedef struct halo_httpd_conn halo_httpd_conn_t;

typedef struct halo_httpd_limits {
  size_t max_body, max_header, max_output;
  uint32_t max_connections;
  uint32_t header_timeout, idle_timeout, body_timeout; /* ms */
} halo_httpd_limits_t;

/** Counters of one server; every refused or dropped thing has one. */
typedef struct halo_httpd_stats {
  uint64_t accepted;          /* connections accepted (refused ones included) */
  uint64_t connections;       /* open now */
  uint64_t requests;          /* complete requests parsed */
  uint64_t reused;            /* requests after the first on their connection */
  uint64_t responses;         /* answers completely handed to the socket */
  uint64_t refused;           /* over max_connections: 503 and closed */
  uint64_t bad_requests;      /* 400 */
  uint64_t header_too_large;  /* 431 */
  uint64_t body_too_large;    /* 413 */
  uint64_t not_found;         /* 404 */
  uint64_t method_not_allowed;/* 405 */
  uint64_t header_timeouts;   /* head not complete in time (408 or closed) */
  uint64_t body_timeouts;     /* body not complete in time (408) */
  uint64_t idle_timeouts;     /* idle keep-alive connections closed */
  uint64_t output_overflows;  /* closed: more than max_output unsent */
  uint64_t handler_gone;      /* 503: the process answering went away */
  uint64_t handler_errors;    /* 500 answered for a failed handler */
  uint64_t drain_timeouts;    /* closing connections cut off after HALO_HTTPD_DRAIN_TIMEOUT */
  uint64_t buffered;          /* bytes of request buffers the open connections hold now */
} halo_httpd_stats_t;

typedef struct halo_httpd_header {
  const char *name, *value;   /* name lower-cased; neither NUL-terminated */
  size_t name_len, value_len;
} halo_httpd_header_t;

/** A request as a handler sees it; valid only during the call. */
typedef struct halo_httpd_request {
  const char *method;             /* NUL-terminated */
  const char *target, *path, *query; /* NUL-terminated; query "" when none */
  size_t target_len, path_len, query_len;
  int version_minor;              /* HTTP/1.<version_minor> */
  const halo_httpd_header_t *headers;
  size_t nheaders;                /* repeated headers come as separate entries */
  const char *body;               /* the whole body (transfer coding removed) */
  size_t body_len;
  const char *remote;             /* "ip:port" of the client */
  void *route_ud;                 /* the route's ud */
} halo_httpd_request_t;

/** What a C handler fills; the server frees body (malloc'ed, may be NULL). */
typedef struct halo_httpd_response {
  int status;                     /* preset 200 */
  const char *content_type;       /* preset "text/plain; charset=utf-8"; not freed */
  char *body;
  size_t body_len;
} halo_httpd_response_t;

/** A C route: answers req on the loop by filling res. */
typedef void (*halo_httpd_handler_cb)(void *ud, const halo_httpd_request_t *req, halo_httpd_response_t *res);
/** A process route's request: c waits for halo_httpd_respond (or a stream);
 *  may call anything here except halo_httpd_delete-like teardown of c. */
typedef void (*halo_httpd_dispatch_cb)(void *ud, halo_httpd_conn_t *c, const halo_httpd_request_t *req);
/** c is about to close; unanswered process requests are dropped. */
typedef void (*halo_httpd_conn_cb)(void *ud, halo_httpd_conn_t *c);
/** The server has closed (listener and every connection). */
typedef void (*halo_httpd_closed_cb)(halo_httpd_t *s, void *ud);

/** Method bits of a route's allowed set. */
enum {
  HALO_HTTPD_GET = 1, HALO_HTTPD_HEAD = 2, HALO_HTTPD_POST = 4, HALO_HTTPD_PUT = 8,
  HALO_HTTPD_DELETE = 16, HALO_HTTPD_PATCH = 32, HALO_HTTPD_OPTIONS = 64,
  HALO_HTTPD_ANY = 0xffff
};
/** The bit of a method name, 0 when it is none of the above. */
unsigned halo_httpd_method_bit(const char *name);

/** Fills l with the defaults above. */
void halo_httpd_limits_default(halo_httpd_limits_t *l);

/** A server on loop; dispatch gets process routes' requests, closed_conn
 *  each connection's end (either may be NULL). NULL when out of memory. */
halo_httpd_t *halo_httpd_new(uv_loop_t *loop, const halo_httpd_limits_t *limits,
                             halo_httpd_dispatch_cb dispatch, halo_httpd_conn_cb closed_conn, void *ud);

/** Listens on host:port (an IP literal; port 0: an ephemeral one). 0 or a
 *  libuv code. */
int halo_httpd_listen(halo_httpd_t *s, const char *host, int port);

/** The port listened on (0 before halo_httpd_listen). */
int halo_httpd_port(const halo_httpd_t *s);

/** Graceful close: stops accepting, closes idle connections, lets the others
 *  finish the answers under way (at most HALO_HTTPD_DRAIN_TIMEOUT ms, or
 *  drain_ms when not 0) and frees s; closed(s, ud) fires once everything
 *  is closed (never from inside this call). Calls after the first are ignored. */
void halo_httpd_close(halo_httpd_t *s, uint32_t drain_ms, halo_httpd_closed_cb closed, void *ud);

/** Sets (or replaces) a static answer; body is copied. 0 or HALO_ENOMEM /
 *  HALO_EINCORRECT (path not starting with '/', text with CR or LF). */
int halo_httpd_route_static(halo_httpd_t *s, const char *path, unsigned methods, int status,
                            const char *content_type, const char *body, size_t len);
/** Sets a C handler route. */
int halo_httpd_route_c(halo_httpd_t *s, const char *path, unsigned methods, halo_httpd_handler_cb cb, void *ud);
/** Sets a process route; its requests go to dispatch with route_ud = ud. */
int halo_httpd_route_process(halo_httpd_t *s, const char *path, unsigned methods, void *ud);
/** Removes a route: 0 or HALO_ENOPROC-like HALO_EINCORRECT when there is none. */
int halo_httpd_unroute(halo_httpd_t *s, const char *path);

/** The server's counters. */
void halo_httpd_stats(const halo_httpd_t *s, halo_httpd_stats_t *out);
/** Counts a 500 answered for a failed handler. */
void halo_httpd_count_handler_error(halo_httpd_t *s);

/** The connection with id, or NULL once it is closed. */
halo_httpd_conn_t *halo_httpd_conn_find(halo_httpd_t *s, uint64_t id);
/** A connection's id (never reused within a server) and its user pointer. */
uint64_t halo_httpd_conn_id(const halo_httpd_conn_t *c);
void *halo_httpd_conn_ud(const halo_httpd_conn_t *c);
void halo_httpd_conn_set_ud(halo_httpd_conn_t *c, void *ud);

/** Answers the oldest unanswered process request of c with status, extra
 *  header lines ("Name: value\r\n"..., never Content-Length, Connection or
 *  Transfer-Encoding) and body (Content-Length is set). 0, or UV_EINVAL
 *  when no request waits, UV_EPIPE when c is closing. */
int halo_httpd_respond(halo_httpd_conn_t *c, int status, const char *headers, size_t hlen,
                       const char *body, size_t blen);
/** Starts a streamed answer to that request (chunked; HTTP/1.0: delimited by
 *  the close). For HEAD or a status without a body (1xx, 204, 304) the head
 *  is the whole answer and later writes get UV_EINVAL. Same codes as
 *  halo_httpd_respond. */
int halo_httpd_stream_start(halo_httpd_conn_t *c, int status, const char *headers, size_t hlen);
/** A piece of the streamed answer (empty: nothing). 0, UV_EINVAL (no stream
 *  started), UV_EPIPE (client gone or output bound exceeded). */
int halo_httpd_stream_write(halo_httpd_conn_t *c, const char *data, size_t len);
/** Ends the streamed answer. Same codes as halo_httpd_stream_write. */
int halo_httpd_stream_finish(halo_httpd_conn_t *c);
/** The process answering c went away: its unanswered requests get 503 and
 *  c closes once they are written. */
void halo_httpd_conn_fail(halo_httpd_conn_t *c);

/* -- for the fuzz target and tests: a connection without a socket ------------- */

/** A connection of s fed by hand; its output is discarded. */
halo_httpd_conn_t *halo__httpd_conn_fake(halo_httpd_t *s);
/** Parses data as if read from the socket. */
void halo__httpd_conn_feed(halo_httpd_conn_t *c, const char *data, size_t len);

#endif
