/*
 * The SIGPROF chain of the CPU profiler (core/prof.c): a tick on the loop
 * thread while its mark says Lua goes on to the chained handler (LuaJIT's
 * in halo), any other mark is counted under it; a tick that lands on
 * another thread of the OS process (libuv's thread pool, the watchdog) never
 * reaches the chained handler, which only knows the loop's Lua state, and
 * is counted apart. Hooking twice and unhooking twice are refused, and
 * unhooking gives SIGPROF back to the chained handler.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "check.h"
#include "errors.h"
#include "prof.h"

static pthread_t main_thread;
static volatile sig_atomic_t chained_main, chained_other;

static void fake_luajit(int sig) {
  (void)sig;
  if (pthread_equal(pthread_self(), main_thread)) chained_main++;
  else chained_other++;
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void burn(double seconds) {
  volatile unsigned long sink = 0;
  double t0 = cpu_now();
  while (cpu_now() - t0 < seconds)
    for (int i = 0; i < 10000; i++) sink += (unsigned long)i;
}

static void *burner(void *arg) {
  (void)arg;
  burn(0.2);
  return NULL;
}

int main(void) {
  main_thread = pthread_self();
  struct sigaction sa, now;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fake_luajit;
  sigemptyset(&sa.sa_mask);
  CHECK_EQ(sigaction(SIGPROF, &sa, NULL), 0);

  CHECK_EQ(halo_prof_hook(), 0);
  CHECK_EQ(halo_prof_hook(), HALO_ETAKEN);
  struct itimerval it = {{0, 1000}, {0, 1000}};
  CHECK_EQ(setitimer(ITIMER_PROF, &it, NULL), 0);

  /* the loop thread in Lua: the chained handler takes the ticks */
  int old = halo_prof_enter(HALO_PROF_LUA);
  burn(0.1);
  CHECK(chained_main > 0);

  /* another thread burns while the loop thread waits in Lua's mark */
  pthread_t t;
  CHECK_EQ(pthread_create(&t, NULL, burner, NULL), 0);
  pthread_join(t, NULL);
  CHECK_EQ(chained_other, 0);

  /* the loop thread in the scheduler: counted under that mark */
  halo_prof_leave(old);
  old = halo_prof_enter(HALO_PROF_SCHED);
  sig_atomic_t before = chained_main;
  burn(0.05);
  halo_prof_leave(old);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_PROF, &off, NULL);
  CHECK_EQ(chained_main, before);
  uint64_t ticks[HALO_PROF_NMARKS];
  halo_prof_ticks(ticks);
  CHECK(ticks[HALO_PROF_SCHED] > 0);
  CHECK(ticks[HALO_PROF_THREAD] > 0);
  CHECK_EQ(ticks[HALO_PROF_LUA], 0);
  CHECK_STR_EQ(halo_prof_mark_name(HALO_PROF_THREAD), "halo_other_thread");

  CHECK_EQ(halo_prof_unhook(), 0);
  CHECK_EQ(halo_prof_unhook(), HALO_EINCORRECT);
  CHECK_EQ(sigaction(SIGPROF, NULL, &now), 0);
  CHECK(now.sa_handler == fake_luajit);
  return check_exit_code();
}
