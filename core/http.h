/*
 * An HTTP/1.1 client on libuv and llhttp, made for etcd's v3 JSON API: one
 * client per host:port, requests with a body and a content type, responses
 * delimited by Content-Length, chunked encoding or the end of the
 * connection, and long-lived streaming responses (watch, lease keep-alive).
 *
 * Every request gets a connection of its own while it runs: an idle one
 * kept alive from an earlier request (most recently used first), or a new
 * one (the host is resolved with uv_getaddrinfo for each new connection
 * unless it is an IP literal; each address is tried in turn). When a reused
 * connection turns out to have been closed by the server before any byte
 * of the response arrived, the request is sent once more on a fresh
 * connection, whatever its method. Idle connections do not keep the loop
 * alive.
 *
 * Response headers are parsed into a block the callbacks can read
 * (halo_http_req_headers): names lower-cased, values without surrounding
 * blanks, in the order received; trailers of chunked bodies are not kept.
 *
 * The callback of a request gets any number of HALO_HTTP_DATA events
 * (streaming requests only), then exactly one HALO_HTTP_DONE or
 * HALO_HTTP_ERROR, after which the request is gone. Callbacks never fire
 * from inside halo_http_request; halo_http_cancel and halo_http_delete fire
 * HALO_HTTP_ERROR "cancelled" synchronously. A callback may call anything
 * here, including halo_http_delete of its own client.
 *
 * Writes to a socket the server has closed raise SIGPIPE: the process is
 * expected to ignore it.
 */
#ifndef HALO_HTTP_H
#define HALO_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HALO_HTTP_MAX_BODY (4u << 20) /* default response body limit of non-streaming requests */
#define HALO_HTTP_MAX_IDLE 4          /* default number of idle connections kept */
#define HALO_HTTP_IDLE_MS 30000       /* default time an idle connection is kept */
#define HALO_HTTP_MAX_HEAD (64u << 10) /* limit of a response's status line and headers */

typedef struct halo_http halo_http_t;
typedef struct halo_http_req halo_http_req_t;

/** A request header; both strings NUL-terminated. */
typedef struct halo_http_header {
  const char *name, *value;
} halo_http_header_t;

/** Counters of a client. */
typedef struct halo_http_stats {
  uint64_t connects;  /* TCP connections started (each address tried counts) */
  uint64_t reuses;    /* requests sent on a kept-alive connection */
  unsigned active;    /* connections with a request */
  unsigned idle;      /* connections kept alive for the next request */
} halo_http_stats_t;

enum {
  HALO_HTTP_DATA = 1, /* streaming: a piece of the body (transfer coding removed); status is set */
  HALO_HTTP_DONE,     /* complete: status is the HTTP status; non-streaming: data/len is the whole
                       * body, NUL-terminated (never NULL); streaming: data NULL, len 0 */
  HALO_HTTP_ERROR     /* failed: status is a negative code (UV_ECANCELED, HALO_ETIMEDOUT,
                       * HALO_ETOOLARGE, HALO_EMALFORMED, UV_EOF for a server closing the
                       * connection early, or libuv's code for network errors); data is the
                       * NUL-terminated text: "cancelled", "timed out", "response too large",
                       * "malformed response", "closed by the server mid-response",
                       * "closed by the server before responding", "connection refused"... */
};

/** Called for each event of request r; data is valid only during the call. r
 *  stays valid until the HALO_HTTP_DONE or HALO_HTTP_ERROR call returns. */
typedef void (*halo_http_cb)(halo_http_req_t *r, void *ud, int event, int status, const char *data,
                             size_t len);

/** A client for host:port on loop; host is a name or an IPv4/IPv6 literal.
 *  NULL when out of memory or the arguments are wrong. */
halo_http_t *halo_http_new(uv_loop_t *loop, const char *host, int port);

/** Cancels every request (each callback gets "cancelled"), closes every
 *  connection and frees h; safe from inside any callback of h (h is freed
 *  when that callback returns). The handles finish closing on the next turn
 *  of the loop, after which uv_loop_close succeeds. NULL is ignored. */
void halo_http_delete(halo_http_t *h);

/** The response body limit of non-streaming requests (default
 *  HALO_HTTP_MAX_BODY); a larger body ends the request with "response too
 *  large". */
void halo_http_set_max_body(halo_http_t *h, size_t max_body);

/** Keeps at most max_idle idle connections (0: none, each request closes its
 *  connection) for idle_ms each (defaults HALO_HTTP_MAX_IDLE,
 *  HALO_HTTP_IDLE_MS). Idle connections beyond the new limit close now (the
 *  least recently used first); the new time applies from their next idle
 *  period. */
void halo_http_set_idle(halo_http_t *h, unsigned max_idle, uint32_t idle_ms);

/** NULL when name: value may be sent as a request header, else why not:
 *  the name must be an HTTP token other than Content-Length and
 *  Transfer-Encoding (the client frames the body), the value printable
 *  text or tabs, never CR or LF (no header injection). */
const char *halo_http_header_check(const char *name, const char *value);

/** Starts method path (the request target, e.g. "/v3/kv/range") with body[0..len)
 *  sent with Content-Length (omitted for a GET or HEAD without a body),
 *  content_type (NULL: no Content-Type) and headers[0..nheaders) (each
 *  passing halo_http_header_check; a Host among them replaces the client's
 *  host:port). timeout_ms, 0 = none: for a
 *  non-streaming request the time allowed for all of it, connecting
 *  included; for a streaming one (stream != 0) the longest silence from the
 *  server. The body is copied. *out (out may be NULL) names the request for
 *  halo_http_cancel. Returns 0, or UV_EINVAL (bad arguments, client being
 *  deleted), UV_ENOMEM or a libuv error, and then cb never fires. */
int halo_http_request(halo_http_t *h, const char *method, const char *path, const char *content_type,
                      const halo_http_header_t *headers, size_t nheaders, const void *body, size_t len, uint32_t timeout_ms, int stream, halo_http_cb cb,
                      void *ud, halo_http_req_t **out);

/** The response headers of r, valid during its HALO_HTTP_DATA and
 *  HALO_HTTP_DONE callbacks: *len bytes of NUL-terminated name, value
 *  pairs ("content-type\0text/plain\0server\0nginx\0"); a name received
 *  twice appears twice. NULL (and *len 0) when there are none. */
const char *halo_http_req_headers(const halo_http_req_t *r, size_t *len);

/** Fills *out with h's counters. */
void halo_http_stats(const halo_http_t *h, halo_http_stats_t *out);

/** Ends r: its callback gets HALO_HTTP_ERROR "cancelled" (UV_ECANCELED) before
 *  this returns; nothing happens when r has already had its terminal event
 *  (possible only from inside that callback, as r is freed after it). The
 *  connection r was using is closed. */
void halo_http_cancel(halo_http_req_t *r);

#endif
