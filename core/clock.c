#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int halo__clock_tsc;
uint64_t halo__clock_tsc0, halo__clock_ns0, halo__clock_mult;

uint64_t halo__clock_gettime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t halo_clock_wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int halo_clock_uses_tsc(void) { return halo__clock_tsc; }

#if defined(__x86_64__)
/* The TSC is only usable as a clock when it ticks at a constant rate and
 * keeps ticking in deep C-states; the kernel reports both as cpu flags. */
static int tsc_invariant(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[4096];
  int constant = 0, nonstop = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "flags", 5) != 0) continue;
    constant = strstr(line, " constant_tsc") != NULL;
    nonstop = strstr(line, " nonstop_tsc") != NULL;
    break;
  }
  fclose(f);
  return constant && nonstop;
}

static void calibrate(void) {
  if (!tsc_invariant()) return;
  /* Pair TSC and CLOCK_MONOTONIC readings 5 ms apart; each pair brackets the
   * clock_gettime call with two TSC reads and keeps the tightest bracket. */
  uint64_t t0 = 0, n0 = 0, t1 = 0, n1 = 0, best = UINT64_MAX;
  for (int i = 0; i < 8; i++) {
    uint64_t a = halo__rdtsc(), n = halo__clock_gettime_ns(), b = halo__rdtsc();
    if (b - a < best) { best = b - a; t0 = a + (b - a) / 2; n0 = n; }
  }
  while (halo__clock_gettime_ns() - n0 < 5000000) {}
  best = UINT64_MAX;
  for (int i = 0; i < 8; i++) {
    uint64_t a = halo__rdtsc(), n = halo__clock_gettime_ns(), b = halo__rdtsc();
    if (b - a < best) { best = b - a; t1 = a + (b - a) / 2; n1 = n; }
  }
  if (t1 <= t0 || n1 <= n0) return;
  halo__clock_mult = (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0));
  halo__clock_tsc0 = t1;
  halo__clock_ns0 = n1;
  halo__clock_tsc = halo__clock_mult != 0;
}
#else
static void calibrate(void) {}
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;

void halo_clock_init(void) { pthread_once(&once, calibrate); }
