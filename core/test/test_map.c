#include "check.h"

#include "map.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The maps' hash functions, copied so the tests can build keys that share a
 * home slot. If map.c changes its hashes these tests still pass, they only
 * collide less. */
static size_t ihash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return (size_t)k;
}

static uint32_t shash(const char *s) {
  uint32_t h = 2166136261u;
  while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
  return h;
}

/* Values are never NULL in a map; encode small integers as pointers. */
#define V(i) ((void *)(uintptr_t)((i) + 1))

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Linear probing without tombstones: every slot between an entry's home
 * and the entry itself is occupied, so no lookup stops early. */
static int imap_invariant(const halo_imap_t *m) {
  size_t used = 0;
  for (size_t j = 0; j < m->cap; j++) {
    if (!m->slots[j].val) continue;
    used++;
    size_t mask = m->cap - 1;
    for (size_t i = ihash(m->slots[j].key) & mask; i != j; i = (i + 1) & mask)
      if (!m->slots[i].val) return 0;
  }
  return used == m->len && (m->cap == 0 || m->len * 4 <= m->cap * 3);
}

static int smap_invariant(const halo_smap_t *m) {
  size_t used = 0;
  for (size_t j = 0; j < m->cap; j++) {
    if (!m->slots[j].val) continue;
    used++;
    size_t mask = m->cap - 1;
    if (m->slots[j].hash != shash(m->slots[j].key)) return 0;
    for (size_t i = m->slots[j].hash & mask; i != j; i = (i + 1) & mask)
      if (!m->slots[i].val) return 0;
  }
  return used == m->len && (m->cap == 0 || m->len * 4 <= m->cap * 3);
}

/* The first n keys (from start) whose home slot in a 16-slot table is home. */
static void ikeys_home(uint64_t *out, int n, size_t home, uint64_t start) {
  for (uint64_t k = start; n; k++)
    if ((ihash(k) & 15) == home) {
      *out++ = k;
      n--;
    }
}

static void test_imap_basic(void) {
  halo_imap_t m;
  halo_imap_init(&m);
  CHECK(halo_imap_get(&m, 1) == NULL);
  CHECK(halo_imap_del(&m, 1) == NULL);
  CHECK_EQ(halo_imap_put(&m, 1, V(1)), 0);
  CHECK_EQ(halo_imap_put(&m, UINT64_MAX, V(2)), 0);
  CHECK(halo_imap_get(&m, 1) == V(1));
  CHECK(halo_imap_get(&m, UINT64_MAX) == V(2));
  CHECK(halo_imap_get(&m, 2) == NULL);
  CHECK_EQ(m.len, 2);
  /* Replace keeps the count. */
  CHECK_EQ(halo_imap_put(&m, 1, V(10)), 0);
  CHECK_EQ(m.len, 2);
  CHECK(halo_imap_get(&m, 1) == V(10));
  CHECK(halo_imap_del(&m, 1) == V(10));
  CHECK(halo_imap_del(&m, 1) == NULL);
  CHECK(halo_imap_get(&m, 1) == NULL);
  CHECK_EQ(m.len, 1);
  CHECK(imap_invariant(&m));
  halo_imap_destroy(&m);
  CHECK(m.slots == NULL && m.cap == 0 && m.len == 0);
}

static void test_imap_collisions(void) {
  halo_imap_t m;
  /* Runs that wrap around the end of the table (homes 14 and 15) and one
   * in the middle (home 5), interleaved so runs merge into one cluster. */
  uint64_t a[4], b[3], c[4];
  ikeys_home(a, 4, 14, 1);
  ikeys_home(b, 3, 15, 1);
  ikeys_home(c, 4, 5, 1);
  uint64_t all[11] = {a[0], b[0], a[1], b[1], a[2], c[0], c[1], b[2], a[3], c[2], c[3]};
  for (int victim = 0; victim < 11; victim++) {
    halo_imap_init(&m);
    for (int i = 0; i < 11; i++) CHECK_EQ(halo_imap_put(&m, all[i], V(i)), 0);
    CHECK_EQ(m.cap, 16); /* 11 keys fit without growing: the collisions are real */
    CHECK(imap_invariant(&m));
    /* Slots 14, 15, 0, 1, ... are one cluster. */
    CHECK(m.slots[14].val && m.slots[15].val && m.slots[0].val && m.slots[1].val);
    CHECK(halo_imap_del(&m, all[victim]) == V(victim));
    CHECK(imap_invariant(&m));
    for (int i = 0; i < 11; i++) CHECK(halo_imap_get(&m, all[i]) == (i == victim ? NULL : V(i)));
    /* Delete the rest in another order, checking reachability each time. */
    for (int k = 0; k < 11; k++) {
      int i = (victim + 1 + k * 5) % 11;
      if (i == victim) continue;
      if (!halo_imap_get(&m, all[i])) continue;
      CHECK(halo_imap_del(&m, all[i]) == V(i));
      CHECK(imap_invariant(&m));
    }
    for (int i = 0; i < 11; i++) {
      if (halo_imap_get(&m, all[i])) CHECK(halo_imap_del(&m, all[i]) == V(i));
      CHECK(imap_invariant(&m));
    }
    CHECK_EQ(m.len, 0);
    for (size_t j = 0; j < m.cap; j++) CHECK(m.slots[j].val == NULL);
    halo_imap_destroy(&m);
  }
}

static void test_imap_growth(void) {
  halo_imap_t m;
  halo_imap_init(&m);
  const uint64_t N = 100000;
  size_t lastcap = 0;
  for (uint64_t k = 1; k <= N; k++) {
    /* Process ids are sequential; keys spaced by 2^32 stress the hash. */
    CHECK_EQ(halo_imap_put(&m, k, V(k)), 0);
    CHECK_EQ(halo_imap_put(&m, k << 32, V(k + N)), 0);
    if (m.cap != lastcap) {
      CHECK((m.cap & (m.cap - 1)) == 0);
      CHECK(m.cap > lastcap);
      lastcap = m.cap;
    }
  }
  CHECK_EQ(m.len, 2 * N);
  CHECK(imap_invariant(&m));
  for (uint64_t k = 1; k <= N; k++) {
    CHECK(halo_imap_get(&m, k) == V(k));
    CHECK(halo_imap_get(&m, k << 32) == V(k + N));
  }
  for (uint64_t k = 1; k <= N; k += 2) CHECK(halo_imap_del(&m, k) == V(k));
  CHECK(imap_invariant(&m));
  for (uint64_t k = 1; k <= N; k++) CHECK(halo_imap_get(&m, k) == (k & 1 ? NULL : V(k)));
  halo_imap_destroy(&m);
}

static void test_imap_shrink(void) {
  halo_imap_t m;
  halo_imap_init(&m);
  const uint64_t N = 50000;
  for (uint64_t k = 1; k <= N; k++) CHECK_EQ(halo_imap_put(&m, k, V(k)), 0);
  size_t big = m.cap;
  CHECK(big >= 65536);
  /* Drain all but 20 keys: the table halves its way back down, keeping every
   * survivor reachable and the probe invariant at each step. */
  for (uint64_t k = 1; k <= N - 20; k++) {
    CHECK(halo_imap_del(&m, k) == V(k));
    if ((k & 4095) == 0) CHECK(imap_invariant(&m));
  }
  CHECK(imap_invariant(&m));
  CHECK_EQ(m.len, 20);
  CHECK(m.cap <= 256 && m.cap >= 32);
  for (uint64_t k = N - 19; k <= N; k++) CHECK(halo_imap_get(&m, k) == V(k));
  for (uint64_t k = 1; k <= N - 20; k += 997) CHECK(halo_imap_get(&m, k) == NULL);
  /* Never below 64 slots, and it grows again. */
  for (uint64_t k = N - 19; k <= N; k++) CHECK(halo_imap_del(&m, k) == V(k));
  CHECK(m.cap >= 64);
  for (uint64_t k = 1; k <= 1000; k++) CHECK_EQ(halo_imap_put(&m, k, V(k)), 0);
  CHECK(imap_invariant(&m));
  for (uint64_t k = 1; k <= 1000; k++) CHECK(halo_imap_get(&m, k) == V(k));
  halo_imap_destroy(&m);
}

static void test_imap_random(void) {
  enum { KEYS = 300, OPS = 200000 };
  void *ref[KEYS + 1] = {0};
  size_t live = 0;
  halo_imap_t m;
  halo_imap_init(&m);
  for (int op = 0; op < OPS; op++) {
    /* Small key space: many replaces, deletes of present keys, long runs. */
    uint64_t k = 1 + rnd() % KEYS;
    switch (rnd() % 4) {
    case 0:
    case 1: {
      void *v = V(rnd() % 1000);
      CHECK_EQ(halo_imap_put(&m, k, v), 0);
      if (!ref[k]) live++;
      ref[k] = v;
      break;
    }
    case 2:
      CHECK(halo_imap_del(&m, k) == ref[k]);
      if (ref[k]) live--;
      ref[k] = NULL;
      break;
    default: CHECK(halo_imap_get(&m, k) == ref[k]);
    }
    CHECK_EQ(m.len, live);
    if (op % 4096 == 0) {
      CHECK(imap_invariant(&m));
      for (uint64_t j = 1; j <= KEYS; j++) CHECK(halo_imap_get(&m, j) == ref[j]);
    }
    if (check_failures) break;
  }
  CHECK(imap_invariant(&m));
  for (uint64_t j = 1; j <= KEYS; j++) CHECK(halo_imap_get(&m, j) == ref[j]);
  halo_imap_destroy(&m);
}

/* -- string keys ----------------------------------------------------------- */

static char skeys[4000][16];

static void test_smap_basic(void) {
  halo_smap_t m;
  halo_smap_init(&m);
  CHECK(halo_smap_get(&m, "a") == NULL);
  CHECK(halo_smap_del(&m, "a") == NULL);
  CHECK_EQ(halo_smap_put(&m, "alpha", V(1)), 0);
  CHECK_EQ(halo_smap_put(&m, "", V(2)), 0); /* the empty string is a key like any other */
  /* Lookups compare contents, not pointers. */
  char buf[8] = "alpha";
  CHECK(halo_smap_get(&m, buf) == V(1));
  CHECK(halo_smap_get(&m, "") == V(2));
  CHECK(halo_smap_get(&m, "alph") == NULL);
  CHECK(halo_smap_get(&m, "alphab") == NULL);
  CHECK_EQ(halo_smap_put(&m, buf, V(3)), 0);
  CHECK_EQ(m.len, 2);
  CHECK(halo_smap_get(&m, "alpha") == V(3));
  CHECK(halo_smap_del(&m, "alpha") == V(3));
  CHECK(halo_smap_get(&m, "alpha") == NULL);
  CHECK_EQ(m.len, 1);
  CHECK(smap_invariant(&m));
  halo_smap_destroy(&m);
}

static void test_smap_collisions(void) {
  /* Names whose home slot in a 16-slot table is 15, and some with home 0:
   * one cluster wrapping around the end. */
  const char *k15[4], *k0[3];
  int n15 = 0, n0 = 0;
  for (int i = 0; i < 4000 && (n15 < 4 || n0 < 3); i++) {
    uint32_t h = shash(skeys[i]) & 15;
    if (h == 15 && n15 < 4) k15[n15++] = skeys[i];
    else if (h == 0 && n0 < 3) k0[n0++] = skeys[i];
  }
  CHECK(n15 == 4 && n0 == 3);
  const char *all[7] = {k15[0], k0[0], k15[1], k15[2], k0[1], k15[3], k0[2]};
  for (int victim = 0; victim < 7; victim++) {
    halo_smap_t m;
    halo_smap_init(&m);
    for (int i = 0; i < 7; i++) CHECK_EQ(halo_smap_put(&m, all[i], V(i)), 0);
    CHECK_EQ(m.cap, 16);
    CHECK(smap_invariant(&m));
    CHECK(halo_smap_del(&m, all[victim]) == V(victim));
    CHECK(smap_invariant(&m));
    for (int i = 0; i < 7; i++) CHECK(halo_smap_get(&m, all[i]) == (i == victim ? NULL : V(i)));
    for (int i = 6; i >= 0; i--) {
      if (i != victim) CHECK(halo_smap_del(&m, all[i]) == V(i));
      CHECK(smap_invariant(&m));
    }
    CHECK_EQ(m.len, 0);
    halo_smap_destroy(&m);
  }
}

static void test_smap_random(void) {
  enum { KEYS = 4000, OPS = 200000 };
  static void *ref[KEYS];
  size_t live = 0;
  halo_smap_t m;
  halo_smap_init(&m);
  for (int op = 0; op < OPS; op++) {
    /* A working set that drifts through the key space forces growth. */
    int k = (int)((rnd() % 500 + (uint64_t)op / 60) % KEYS);
    switch (rnd() % 4) {
    case 0:
    case 1: {
      void *v = V(rnd() % 1000);
      CHECK_EQ(halo_smap_put(&m, skeys[k], v), 0);
      if (!ref[k]) live++;
      ref[k] = v;
      break;
    }
    case 2:
      CHECK(halo_smap_del(&m, skeys[k]) == ref[k]);
      if (ref[k]) live--;
      ref[k] = NULL;
      break;
    default: CHECK(halo_smap_get(&m, skeys[k]) == ref[k]);
    }
    CHECK_EQ(m.len, live);
    if (op % 8192 == 0) {
      CHECK(smap_invariant(&m));
      for (int j = 0; j < KEYS; j++) CHECK(halo_smap_get(&m, skeys[j]) == ref[j]);
    }
    if (check_failures) break;
  }
  CHECK(smap_invariant(&m));
  for (int j = 0; j < KEYS; j++) CHECK(halo_smap_get(&m, skeys[j]) == ref[j]);
  halo_smap_destroy(&m);
}

int main(void) {
  for (int i = 0; i < 4000; i++) snprintf(skeys[i], sizeof skeys[i], "proc.%d", i);
  RUN_TEST(test_imap_basic);
  RUN_TEST(test_imap_collisions);
  RUN_TEST(test_imap_shrink);
  RUN_TEST(test_imap_growth);
  RUN_TEST(test_imap_random);
  RUN_TEST(test_smap_basic);
  RUN_TEST(test_smap_collisions);
  RUN_TEST(test_smap_random);
  return check_exit_code();
}
