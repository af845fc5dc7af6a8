#include "prof.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "errors.h"

int halo_prof_mark_;

static uint64_t ticks[HALO_PROF_NMARKS];
static struct sigaction chained; /* LuaJIT's handler, called for Lua ticks */
static int hooked;

static const char *const names[HALO_PROF_NMARKS] = {
  "halo_loop", "lua", "halo_sched_slice", "halo_link_read", "halo_httpd_read", "halo_loop_poll",
  "halo_gc_step", "halo_other_thread",
};
static const char *const files[HALO_PROF_NMARKS] = {
  "core/node.c", "", "core/scheduler.c", "core/link.c", "core/httpd.c", "core/node.c", "bindings/gc.c", "",
};

const char *halo_prof_mark_name(int mark) {
  return mark >= 0 && mark < HALO_PROF_NMARKS ? names[mark] : "halo_loop";
}

const char *halo_prof_mark_file(int mark) {
  return mark >= 0 && mark < HALO_PROF_NMARKS ? files[mark] : "core/node.c";
}

/* ITIMER_PROF counts the CPU time of every thread and the kernel delivers
 * the tick to whichever one is running. The mark and LuaJIT's profiler both
 * belong to the loop thread: a tick elsewhere (libuv's thread pool, the
 * watchdog) is counted apart and never reaches LuaJIT, whose handler would
 * rewrite the loop's dispatch table from that thread. */
static pthread_t loop_thread;

static void on_sigprof(int sig, siginfo_t *si, void *uc) {
  if (!pthread_equal(pthread_self(), loop_thread)) {
    __atomic_fetch_add(&ticks[HALO_PROF_THREAD], 1, __ATOMIC_RELAXED);
    return;
  }
  int mark = __atomic_load_n(&halo_prof_mark_, __ATOMIC_RELAXED);
  if (mark != HALO_PROF_LUA && mark >= 0 && mark < HALO_PROF_NMARKS) {
    __atomic_fetch_add(&ticks[mark], 1, __ATOMIC_RELAXED);
    return;
  }
  if (chained.sa_flags & SA_SIGINFO) {
    if (chained.sa_sigaction) chained.sa_sigaction(sig, si, uc);
  } else if (chained.sa_handler != SIG_IGN && chained.sa_handler != SIG_DFL) {
    chained.sa_handler(sig);
  }
}

int halo_prof_hook(void) {
  if (hooked) return HALO_ETAKEN;
  for (int i = 0; i < HALO_PROF_NMARKS; i++) __atomic_store_n(&ticks[i], 0, __ATOMIC_RELAXED);
  loop_thread = pthread_self();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigprof;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGPROF, &sa, &chained) != 0) return -errno;
  hooked = 1;
  return 0;
}

int halo_prof_unhook(void) {
  if (!hooked) return HALO_EINCORRECT;
  sigaction(SIGPROF, &chained, NULL);
  hooked = 0;
  return 0;
}

void halo_prof_ticks(uint64_t out[HALO_PROF_NMARKS]) {
  for (int i = 0; i < HALO_PROF_NMARKS; i++) out[i] = __atomic_load_n(&ticks[i], __ATOMIC_RELAXED);
}
