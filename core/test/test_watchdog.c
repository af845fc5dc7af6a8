/*
 * The watchdog thread: slow-callback reports that name a process the loop
 * renames meanwhile (run it in the ThreadSanitizer build, -DHALO_TSAN=ON, to
 * check the reads), and a stuck loop that is reported and handed to the
 * stuck handler instead of ending the OS process.
 */
#include "check.h"
#include "clock.h"
#include "node.h"
#include "process.h"
#include "watchdog.h"

#include <stdio.h>
#include <uv.h>

static uv_loop_t loop;
static halo_node_t node;
static int stuck_calls;

/* Keeps the loop busy for ms, renaming p all the while: what a report reads
 * of the running process is freed and replaced under the watchdog. */
static void busy(halo_proc_t *p, uint64_t ms) {
  uint64_t end = halo_clock_ns() + ms * 1000000u;
  char name[32];
  for (int i = 0; halo_clock_ns() < end; i++) {
    if (p->name) halo_name_unregister(&node, p->name);
    snprintf(name, sizeof name, "busy.%d", i);
    halo_name_register(&node, p, name);
  }
}

static int hook_run(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg) {
  (void)n;
  if (msg) busy(p, msg->pval);
  return HALO_RUN_IDLE;
}

static void hook_terminate(halo_node_t *n, halo_proc_t *p, const halo_payload_t *r) { (void)n, (void)p, (void)r; }
static void hook_free(halo_node_t *n, halo_proc_t *p) { (void)n, (void)p; }
static halo_payload_t hook_dup(halo_node_t *n, const halo_payload_t *pl) { (void)n; return *pl; }
static void hook_release(halo_node_t *n, halo_payload_t pl) { (void)n, (void)pl; }
static halo_payload_t hook_signal(halo_node_t *n, const halo_signal_info_t *i, const halo_payload_t *r) {
  (void)n, (void)i, (void)r;
  return (halo_payload_t){0, 0};
}
static halo_payload_t hook_reason(halo_node_t *n, const char *t) {
  (void)n, (void)t;
  return (halo_payload_t){0, 0};
}
static void hook_stopped(halo_node_t *n) { halo_node_close(n); }

static void on_stuck(halo_node_t *n) {
  (void)n;
  __atomic_add_fetch(&stuck_calls, 1, __ATOMIC_RELAXED);
}

/* Sends p a message that keeps its callback busy for ms and runs it. */
static void run_busy(halo_proc_t *p, uint64_t ms) {
  CHECK_EQ(halo_send_proc(&node, NULL, p, HALO_MSG_REGULAR, HALO_Q_MAIN, 0, (halo_payload_t){ms, 1}, 0), 0);
  while (node.rq_head) uv_run(&loop, UV_RUN_NOWAIT);
}

static halo_proc_t *setup(uint64_t soft_ms, uint64_t hard_ms) {
  CHECK_EQ(uv_loop_init(&loop), 0);
  CHECK_EQ(halo_node_init(&node, &loop, "wd@localhost"), 0);
  node.hooks = (halo_node_hooks_t){hook_run, hook_terminate, hook_free, hook_dup, hook_release, hook_signal,
                                   hook_reason, NULL, NULL, NULL, hook_stopped, NULL};
  node.auto_stop = 0;
  CHECK_EQ(halo_node_start(&node), 0);
  CHECK_EQ(halo_watchdog_start(&node, soft_ms, hard_ms), 0);
  halo_spawn_opts_t o = {0};
  o.behavior = "busy";
  halo_proc_t *p = NULL;
  CHECK_EQ(halo_proc_spawn(&node, &o, &p), 0);
  CHECK_EQ(halo_proc_start(&node, p, NULL), HALO_RUN_IDLE);
  return p;
}

static void teardown(void) {
  halo_watchdog_stop(&node);
  halo_node_stop(&node, 0);
  while (!node.stopped) uv_run(&loop, UV_RUN_NOWAIT);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(uv_loop_close(&loop), 0);
  halo_node_destroy(&node);
}

static void test_slow_callback_renamed(void) {
  halo_proc_t *p = setup(5, 60000);
  for (int i = 0; i < 3; i++) run_busy(p, 150);
  CHECK(halo_watchdog_reports(&node) >= 2);
  teardown();
}

/* Regression: the watchdog called _exit(70) itself; the library now only
 * reports, and the program's stuck handler decides. */
static void test_stuck_loop_goes_to_the_handler(void) {
  halo_proc_t *p = setup(60000, 30);
  run_busy(p, 300); /* no handler: reported, nothing else */
  CHECK_EQ(__atomic_load_n(&stuck_calls, __ATOMIC_RELAXED), 0);
  halo_watchdog_on_stuck(on_stuck);
  run_busy(p, 300);
  CHECK_EQ(__atomic_load_n(&stuck_calls, __ATOMIC_RELAXED), 1);
  halo_watchdog_on_stuck(NULL);
  teardown();
}

int main(void) {
  RUN_TEST(test_slow_callback_renamed);
  RUN_TEST(test_stuck_loop_goes_to_the_handler);
  return check_exit_code();
}
