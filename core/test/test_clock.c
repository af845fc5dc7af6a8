#include "check.h"

#include "clock.h"

#include <stdint.h>
#include <time.h>

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_monotonic(void) {
  uint64_t prev = halo_clock_ns();
  for (int i = 0; i < 1000000; i++) {
    uint64_t t = halo_clock_ns();
    if (t < prev) {
      CHECK_EQ(t, prev);
      break;
    }
    prev = t;
  }
  /* It advances. */
  uint64_t t0 = halo_clock_ns(), until = mono_ns() + 1000000000u;
  while (halo_clock_ns() == t0 && mono_ns() < until) {}
  CHECK(halo_clock_ns() > t0);
}

/* Reads both clocks at (nearly) the same instant: the halo reading is
 * bracketed by two CLOCK_MONOTONIC readings and the tightest bracket of a
 * few tries is kept, so a preemption between reads does not skew it. */
static void paired(uint64_t *h, uint64_t *m) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 20; i++) {
    uint64_t a = mono_ns(), x = halo_clock_ns(), b = mono_ns();
    if (b - a < best) {
      best = b - a;
      *h = x;
      *m = a + (b - a) / 2;
    }
  }
}

/* Over ~50 ms the clock agrees with CLOCK_MONOTONIC within 1%, and reads
 * close to it (the TSC path is anchored to CLOCK_MONOTONIC). */
static void test_scale(void) {
  uint64_t h0, m0, h1, m1;
  paired(&h0, &m0);
  struct timespec d = {0, 50 * 1000000};
  nanosleep(&d, NULL);
  paired(&h1, &m1);
  double dh = (double)(h1 - h0), dm = (double)(m1 - m0);
  CHECK(dm >= 50e6);
  if (!(dh > dm * 0.99 && dh < dm * 1.01))
    fprintf(stderr, "halo_clock_ns advanced %.0f ns, CLOCK_MONOTONIC %.0f ns (tsc %d)\n", dh, dm,
            halo_clock_uses_tsc());
  CHECK(dh > dm * 0.99 && dh < dm * 1.01);
  int64_t offset = (int64_t)(h1 - m1);
  CHECK(offset > -10000000 && offset < 10000000);
}

static void test_wall(void) {
  uint64_t w = halo_clock_wall_ns();
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t r = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  /* After 2020-01-01 and before 2200, in ns. */
  CHECK(w > 1577836800ull * 1000000000u);
  CHECK(w < 7258118400ull * 1000000000u);
  CHECK(r >= w && r - w < 1000000000u);
  uint64_t w2 = halo_clock_wall_ns();
  CHECK(w2 >= w);
}

static void test_init_idempotent(void) {
  int tsc = halo_clock_uses_tsc();
  uint64_t t0 = halo_clock_ns();
  halo_clock_init();
  CHECK_EQ(halo_clock_uses_tsc(), tsc);
  CHECK(halo_clock_ns() >= t0);
}

int main(void) {
  halo_clock_init();
  fprintf(stderr, "clock source: %s\n", halo_clock_uses_tsc() ? "tsc" : "clock_gettime");
  RUN_TEST(test_monotonic);
  RUN_TEST(test_scale);
  RUN_TEST(test_wall);
  RUN_TEST(test_init_idempotent);
  return check_exit_code();
}
