/*
 * The HTTP server against halo's HTTP client (core/http.c) on the same libuv
 * loop (loopback, ephemeral port): static, C and process routes, 404/405,
 * answers in request order when a process route answers later, the limits
 * a client can reach (413), and a graceful close after which the loop
 * closes cleanly.
 */
#include "check.h"

#include "errors.h"
#include "http.h"
#include "httpd.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static uv_loop_t loop;

typedef struct result {
  int done, event, status;
  char body[256];
} result_t;

static void on_http(halo_http_req_t *r, void *ud, int event, int status, const char *data, size_t len) {
  result_t *res = ud;
  (void)r;
  if (event == HALO_HTTP_DATA) return;
  res->done = 1;
  res->event = event;
  res->status = status;
  snprintf(res->body, sizeof res->body, "%.*s", (int)len, data ? data : "");
}

/* Runs the loop until every result is done (at most 2 s). */
static void wait_all(result_t *r, int n) {
  uint64_t until = uv_now(&loop) + 2000;
  for (;;) {
    int left = 0;
    for (int i = 0; i < n; i++) left += !r[i].done;
    if (!left || uv_now(&loop) > until) break;
    uv_run(&loop, UV_RUN_ONCE);
  }
}

static void c_handler(void *ud, const halo_httpd_request_t *req, halo_httpd_response_t *res) {
  int *calls = ud;
  (*calls)++;
  const char *agent = "";
  for (size_t i = 0; i < req->nheaders; i++)
    if (req->headers[i].name_len == 4 && !memcmp(req->headers[i].name, "host", 4)) agent = "host";
  res->content_type = "text/x-c";
  res->body = malloc(128);
  res->body_len = (size_t)snprintf(res->body, 128, "%s %s q=%s %s", req->method, req->path, req->query, agent);
}

/* Process routes: answered from a timer, later than the request came. */
static halo_httpd_t *srv;
static uint64_t waiting_conn;
static uv_timer_t later;

static void on_later(uv_timer_t *t) {
  (void)t;
  halo_httpd_conn_t *c = halo_httpd_conn_find(srv, waiting_conn);
  if (c) CHECK_EQ(halo_httpd_respond(c, 202, "X-Late: 1\r\n", 11, "late", 4), 0);
}

static void on_dispatch(void *ud, halo_httpd_conn_t *c, const halo_httpd_request_t *req) {
  (void)ud;
  CHECK_EQ((uintptr_t)req->route_ud, 7);
  waiting_conn = halo_httpd_conn_id(c);
  uv_timer_start(&later, on_later, 20, 0);
}

static int closed;
static void on_closed(halo_httpd_t *s, void *ud) {
  (void)s;
  (void)ud;
  closed = 1;
}

static void test_routes(void) {
  uv_loop_init(&loop);
  uv_timer_init(&loop, &later);
  halo_httpd_limits_t lim;
  halo_httpd_limits_default(&lim);
  lim.max_body = 100;
  srv = halo_httpd_new(&loop, &lim, on_dispatch, NULL, NULL);
  CHECK(srv != NULL);
  CHECK_EQ(halo_httpd_listen(srv, "127.0.0.1", 0), 0);
  int port = halo_httpd_port(srv), calls = 0;
  CHECK(port > 0);
  CHECK_EQ(halo_httpd_route_static(srv, "/s", HALO_HTTPD_GET, 200, "text/plain", "static", 6), 0);
  CHECK_EQ(halo_httpd_route_c(srv, "/c", HALO_HTTPD_GET | HALO_HTTPD_POST, c_handler, &calls), 0);
  CHECK_EQ(halo_httpd_route_process(srv, "/p", HALO_HTTPD_GET, (void *)(uintptr_t)7), 0);
  CHECK_EQ(halo_httpd_route_static(srv, "bad", HALO_HTTPD_GET, 200, NULL, "", 0), HALO_EINCORRECT);

  halo_http_t *h = halo_http_new(&loop, "127.0.0.1", port);
  result_t r[6];
  memset(r, 0, sizeof r);
  halo_http_request(h, "GET", "/s", NULL, NULL, 0, NULL, 0, 2000, 0, on_http, &r[0], NULL);
  halo_http_request(h, "GET", "/c?x=1", NULL, NULL, 0, NULL, 0, 2000, 0, on_http, &r[1], NULL);
  halo_http_request(h, "GET", "/p", NULL, NULL, 0, NULL, 0, 2000, 0, on_http, &r[2], NULL);
  halo_http_request(h, "GET", "/none", NULL, NULL, 0, NULL, 0, 2000, 0, on_http, &r[3], NULL);
  halo_http_request(h, "DELETE", "/s", NULL, NULL, 0, NULL, 0, 2000, 0, on_http, &r[4], NULL);
  halo_http_request(h, "POST", "/c", "text/plain", NULL, 0, "0123456789012345678901234567890123456789012345678901234567890"
                    "123456789012345678901234567890123456789012345678901234567890", 120, 2000, 0, on_http, &r[5], NULL);
  wait_all(r, 6);
  CHECK_EQ(r[0].status, 200);
  CHECK_STR_EQ(r[0].body, "static");
  CHECK_EQ(r[1].status, 200);
  CHECK_STR_EQ(r[1].body, "GET /c q=x=1 host");
  CHECK_EQ(r[2].status, 202);
  CHECK_STR_EQ(r[2].body, "late");
  CHECK_EQ(r[3].status, 404);
  CHECK_EQ(r[4].status, 405);
  CHECK_EQ(r[5].status, 413);
  CHECK_EQ(calls, 1);
  halo_httpd_stats_t st;
  halo_httpd_stats(srv, &st);
  CHECK_EQ(st.not_found, 1);
  CHECK_EQ(st.method_not_allowed, 1);
  CHECK_EQ(st.body_too_large, 1);
  CHECK_EQ(st.requests, 5);

  /* a static answer replaced, then a graceful close */
  memset(r, 0, sizeof r);
  CHECK_EQ(halo_httpd_route_static(srv, "/s", HALO_HTTPD_GET, 503, NULL, "down", 4), 0);
  halo_http_request(h, "GET", "/s", NULL, NULL, 0, NULL, 0, 2000, 0, on_http, &r[0], NULL);
  wait_all(r, 1);
  CHECK_EQ(r[0].status, 503);
  CHECK_STR_EQ(r[0].body, "down");
  halo_httpd_close(srv, 0, on_closed, NULL);
  halo_http_delete(h);
  uv_close((uv_handle_t *)&later, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(closed, 1);
  CHECK_EQ(uv_loop_close(&loop), 0);
}

/* Requests in one packet: a process route first, its answer comes last,
 * yet the answers leave in order. */
static void test_pipeline_order(void) {
  uv_loop_init(&loop);
  uv_timer_init(&loop, &later);
  srv = halo_httpd_new(&loop, NULL, on_dispatch, NULL, NULL);
  CHECK_EQ(halo_httpd_route_static(srv, "/s", HALO_HTTPD_GET, 200, NULL, "S", 1), 0);
  CHECK_EQ(halo_httpd_route_process(srv, "/p", HALO_HTTPD_GET, (void *)(uintptr_t)7), 0);
  halo_httpd_conn_t *c = halo__httpd_conn_fake(srv);
  const char *reqs = "GET /p HTTP/1.1\r\n\r\nGET /s HTTP/1.1\r\n\r\nGET /s HTTP/1.1\r\n\r\n";
  halo__httpd_conn_feed(c, reqs, strlen(reqs));
  halo_httpd_stats_t st;
  halo_httpd_stats(srv, &st);
  CHECK_EQ(st.requests, 3);
  CHECK_EQ(st.responses, 0); /* the static answers wait behind the process one */
  for (int i = 0; i < 1000 && st.responses < 3; i++) {
    uv_run(&loop, UV_RUN_ONCE);
    halo_httpd_stats(srv, &st);
  }
  CHECK_EQ(st.responses, 3);
  closed = 0;
  halo_httpd_close(srv, 0, on_closed, NULL);
  uv_close((uv_handle_t *)&later, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(closed, 1);
  CHECK_EQ(uv_loop_close(&loop), 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN_TEST(test_routes);
  RUN_TEST(test_pipeline_order);
  return check_exit_code();
}
