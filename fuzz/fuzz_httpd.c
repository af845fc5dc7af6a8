/* libFuzzer target for the HTTP server's request parsing (make fuzz): the
 * input is what a client could send on one connection, fed to a connection
 * without a socket (core/httpd.c's fake connection) in pieces whose sizes
 * come from the input's first bytes. Routes of every kind are set: static,
 * C, and process routes whose "handler" answers at once, streams, or leaves
 * the request waiting until the connection is failed. Tight limits make the
 * 400/413/431 paths and the pipeline pause reachable. The server is then
 * closed and the loop must close cleanly; a crash, a leak or a sanitizer
 * report is a finding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int closed;
static unsigned turn;

static void on_closed(halo_httpd_t *s, void *ud) {
  (void)s;
  (void)ud;
  closed = 1;
}

static void c_handler(void *ud, const halo_httpd_request_t *req, halo_httpd_response_t *res) {
  (void)ud;
  if (!req->method || req->path[0] != '/' || strlen(req->path) != req->path_len) abort();
  res->body = malloc(req->body_len + 1);
  if (res->body) {
    memcpy(res->body, req->body, req->body_len);
    res->body_len = req->body_len;
  }
}

static void on_dispatch(void *ud, halo_httpd_conn_t *c, const halo_httpd_request_t *req) {
  (void)ud;
  for (size_t i = 0; i < req->nheaders; i++)
    for (size_t k = 0; k < req->headers[i].name_len; k++)
      if (req->headers[i].name[k] >= 'A' && req->headers[i].name[k] <= 'Z') abort();
  switch (turn++ % 3) {
  case 0: halo_httpd_respond(c, 200, "X-A: b\r\n", 8, req->body, req->body_len); break;
  case 1:
    halo_httpd_stream_start(c, 200, NULL, 0);
    halo_httpd_stream_write(c, req->target, req->target_len);
    halo_httpd_stream_finish(c);
    break;
  default: break; /* left waiting */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  halo_httpd_limits_t lim;
  halo_httpd_limits_default(&lim);
  lim.max_header = 512;
  lim.max_body = 2048;
  lim.max_output = 1 << 16;
  halo_httpd_t *s = halo_httpd_new(&loop, &lim, on_dispatch, NULL, NULL);
  if (!s) abort();
  halo_httpd_route_static(s, "/s", HALO_HTTPD_GET, 200, "text/plain", "static", 6);
  halo_httpd_route_c(s, "/c", HALO_HTTPD_ANY, c_handler, NULL);
  halo_httpd_route_process(s, "/p", HALO_HTTPD_GET | HALO_HTTPD_POST, NULL);
  turn = 0;
  size_t splits = size > 4 ? 4 : size;
  halo_httpd_conn_t *c = halo__httpd_conn_fake(s);
  uint64_t id = halo_httpd_conn_id(c);
  const uint8_t *p = data + splits, *end = data + size;
  for (size_t i = 0; p < end; i++) {
    size_t n = splits ? (size_t)data[i % splits] + 1 : (size_t)(end - p);
    if (n > (size_t)(end - p)) n = (size_t)(end - p);
    if (!halo_httpd_conn_find(s, id)) break;
    halo__httpd_conn_feed(c, (const char *)p, n);
    p += n;
  }
  if (halo_httpd_conn_find(s, id)) halo_httpd_conn_fail(c);
  closed = 0;
  halo_httpd_close(s, 1, on_closed, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (!closed || uv_loop_close(&loop)) abort();
  return 0;
}
