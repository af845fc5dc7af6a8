#include "watchdog.h"
#include "clock.h"
#include "errors.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct halo_watchdog {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  halo_node_t *node;
  uint64_t soft_ns, hard_ns;
  uint64_t reported_seq;
  uint64_t seen_seq, seen_after, last_poll; /* callback sequence as the polls saw it */
  uint64_t reports;
  uint64_t stuck_since; /* busy mark of the stretch last reported stuck */
};

static halo_watchdog_stuck_cb stuck_cb;

void halo_watchdog_on_stuck(halo_watchdog_stuck_cb cb) { __atomic_store_n(&stuck_cb, cb, __ATOMIC_RELEASE); }

static void report(halo_watchdog_t *w, const char *what, int with_proc, uint64_t ms) {
  halo_node_t *n = w->node;
  char pid[HALO_PID_STRLEN] = "-", name[128] = "", beh[128] = "";
  /* Under wd_mu the loop thread neither frees nor renames the record it
   * published, nor the strings the record points to. */
  uv_mutex_lock(&n->wd_mu);
  halo_proc_t *p = with_proc ? __atomic_load_n(&n->wd_cb_proc, __ATOMIC_ACQUIRE) : NULL;
  if (p) {
    halo_pid_format(pid, sizeof pid, halo_node_pid(n, p->id));
    if (p->name) snprintf(name, sizeof name, " '%s'", p->name);
    if (p->behavior) snprintf(beh, sizeof beh, " %s", p->behavior);
  }
  uv_mutex_unlock(&n->wd_mu);
  fprintf(stderr, "[watchdog] %s: %s%s%s has been running for %llu ms\n", what, pid, name, beh,
          (unsigned long long)ms);
  fflush(stderr);
}

static void *run(void *arg) {
  halo_watchdog_t *w = arg;
  halo_node_t *n = w->node;
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    if (w->stop) break;
    uint64_t now = halo_clock_ns();
    uint64_t start = __atomic_load_n(&n->wd_cb_start, __ATOMIC_RELAXED);
    uint64_t seq = __atomic_load_n(&n->wd_cb_seq, __ATOMIC_RELAXED);
    /* Inside a batch the scheduler stamps a callback with the batch's clock
     * reading (it reads the clock once per batch). A callback whose sequence
     * number the previous poll had not seen began after that poll, so the
     * start is raised to it: a long batch of short callbacks is never
     * reported as one slow callback. */
    if (seq != w->seen_seq) {
      w->seen_seq = seq;
      w->seen_after = w->last_poll;
    }
    w->last_poll = now;
    if (start && start < w->seen_after) start = w->seen_after;
    if (start && now > start && now - start > w->soft_ns && seq != w->reported_seq) {
      w->reported_seq = seq;
      __atomic_add_fetch(&w->reports, 1, __ATOMIC_RELAXED);
      report(w, "slow callback", 1, (now - start) / 1000000u);
    }
    int in_poll = __atomic_load_n(&n->wd_in_poll, __ATOMIC_RELAXED);
    uint64_t busy = __atomic_load_n(&n->wd_busy_since, __ATOMIC_RELAXED);
    if (!in_poll && busy && now > busy && now - busy > w->hard_ns && busy != w->stuck_since) {
      halo_watchdog_stuck_cb cb = __atomic_load_n(&stuck_cb, __ATOMIC_ACQUIRE);
      w->stuck_since = busy; /* once per stuck stretch */
      report(w, cb ? "loop stuck past the hard limit, exiting" : "loop stuck past the hard limit", start != 0,
             (now - busy) / 1000000u);
      if (cb) cb(n);
    }
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

int halo_watchdog_start(halo_node_t *n, uint64_t soft_ms, uint64_t hard_ms) {
  halo_watchdog_t *w = calloc(1, sizeof *w);
  if (!w) return HALO_ENOMEM;
  w->node = n;
  w->soft_ns = (soft_ms ? soft_ms : 1000) * 1000000u;
  w->hard_ns = (hard_ms ? hard_ms : 30000) * 1000000u;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  n->watchdog = w; /* before the thread: the loop then takes wd_mu */
  if (pthread_create(&w->thread, NULL, run, w)) {
    n->watchdog = NULL;
    free(w);
    return HALO_ENOMEM;
  }
  return 0;
}

void halo_watchdog_stop(halo_node_t *n) {
  halo_watchdog_t *w = n->watchdog;
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
  n->watchdog = NULL;
}

uint64_t halo_watchdog_reports(halo_node_t *n) {
  halo_watchdog_t *w = n->watchdog;
  return w ? __atomic_load_n(&w->reports, __ATOMIC_RELAXED) : 0;
}
