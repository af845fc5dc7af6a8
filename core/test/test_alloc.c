#include "check.h"

#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>

/* A plain lua_Alloc-shaped allocator over realloc/free that can be told to
 * fail and counts what it holds. */
typedef struct plain {
  int fail;        /* next growing call returns NULL */
  int64_t held;    /* bytes it believes are live */
  uint64_t calls;
} plain_t;

static void *plain_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  plain_t *pl = ud;
  pl->calls++;
  if (nsize == 0) {
    if (ptr) pl->held -= (int64_t)osize;
    free(ptr);
    return NULL;
  }
  if (pl->fail) {
    pl->fail = 0;
    return NULL;
  }
  void *r = realloc(ptr, nsize);
  if (r) pl->held += (int64_t)nsize - (ptr ? (int64_t)osize : 0);
  return r;
}

#define ALLOC(a, ptr, osize, nsize) halo_alloc_lua((a), (ptr), (osize), (nsize))

static void test_unowned(void) {
  plain_t pl = {0};
  halo_alloc_t a;
  halo_alloc_init(&a, plain_alloc, &pl);
  CHECK(a.current == &a.unowned);
  CHECK_EQ(halo_alloc_live(&a), 0);
  /* With ptr == NULL, osize is Lua's type tag, not a size. */
  void *p = ALLOC(&a, NULL, 5, 100);
  CHECK(p != NULL);
  CHECK_EQ(a.allocated, 100);
  CHECK_EQ(a.freed, 0);
  CHECK_EQ(a.unowned, 100);
  CHECK_EQ(halo_alloc_live(&a), 100);
  CHECK_EQ(a.calls, 1);
  CHECK_EQ(pl.calls, 1);
  p = ALLOC(&a, p, 100, 0);
  CHECK(p == NULL);
  CHECK_EQ(a.freed, 100);
  CHECK_EQ(halo_alloc_live(&a), 0);
  CHECK_EQ(a.unowned, 100); /* cumulative: frees are not attributed */
  CHECK_EQ(pl.held, 0);
}

static void test_realloc(void) {
  plain_t pl = {0};
  halo_alloc_t a;
  halo_alloc_init(&a, plain_alloc, &pl);
  uint64_t proc = 0;
  halo_alloc_attribute(&a, &proc);
  char *p = ALLOC(&a, NULL, 0, 16);
  for (int i = 0; i < 16; i++) p[i] = (char)i;
  p = ALLOC(&a, p, 16, 64); /* growth: +48 */
  CHECK_EQ(proc, 64);
  CHECK_EQ(a.allocated, 64);
  CHECK_EQ(halo_alloc_live(&a), 64);
  for (int i = 0; i < 16; i++) CHECK_EQ(p[i], i);
  p = ALLOC(&a, p, 64, 24); /* shrink: 40 freed, nothing attributed */
  CHECK_EQ(proc, 64);
  CHECK_EQ(a.freed, 40);
  CHECK_EQ(halo_alloc_live(&a), 24);
  p = ALLOC(&a, p, 24, 24); /* same size */
  CHECK_EQ(a.allocated, 64);
  CHECK_EQ(a.freed, 40);
  CHECK_EQ(pl.held, halo_alloc_live(&a));
  /* A failed growth counts nothing and leaves the block alone. */
  uint64_t calls = a.calls;
  pl.fail = 1;
  CHECK(ALLOC(&a, p, 24, 1 << 20) == NULL);
  CHECK_EQ(a.allocated, 64);
  CHECK_EQ(a.freed, 40);
  CHECK_EQ(proc, 64);
  CHECK_EQ(a.calls, calls);
  pl.fail = 1;
  CHECK(ALLOC(&a, NULL, 3, 10) == NULL);
  CHECK_EQ(a.allocated, 64);
  ALLOC(&a, p, 24, 0);
  CHECK_EQ(halo_alloc_live(&a), 0);
  CHECK_EQ(a.allocated - a.freed, 0);
  CHECK_EQ(pl.held, 0);
  CHECK_EQ(a.unowned, 0);
}

static void test_attribution(void) {
  plain_t pl = {0};
  halo_alloc_t a;
  halo_alloc_init(&a, plain_alloc, &pl);
  uint64_t p1 = 0, p2 = 0;
  void *blocks[6];
  blocks[0] = ALLOC(&a, NULL, 0, 10); /* unowned */
  uint64_t *prev = halo_alloc_attribute(&a, &p1);
  CHECK(prev == &a.unowned);
  blocks[1] = ALLOC(&a, NULL, 0, 20);
  blocks[2] = ALLOC(&a, NULL, 0, 30);
  /* Nested run of another process, then back. */
  prev = halo_alloc_attribute(&a, &p2);
  CHECK(prev == &p1);
  blocks[3] = ALLOC(&a, NULL, 0, 40);
  blocks[1] = ALLOC(&a, blocks[1], 20, 25); /* p2 grows p1's block: p2 pays */
  prev = halo_alloc_attribute(&a, prev);
  CHECK(prev == &p2);
  CHECK(a.current == &p1);
  blocks[4] = ALLOC(&a, NULL, 0, 50);
  /* NULL returns attribution to the node. */
  prev = halo_alloc_attribute(&a, NULL);
  CHECK(prev == &p1);
  CHECK(a.current == &a.unowned);
  blocks[5] = ALLOC(&a, NULL, 0, 60);
  CHECK_EQ(a.unowned, 70);
  CHECK_EQ(p1, 100);
  CHECK_EQ(p2, 45);
  CHECK_EQ(a.allocated, 215);
  CHECK_EQ(a.unowned + p1 + p2, a.allocated);
  CHECK_EQ(halo_alloc_live(&a), 215);
  /* Frees under any attribution lower the live total only. */
  halo_alloc_attribute(&a, &p2);
  size_t sizes[6] = {10, 25, 30, 40, 50, 60};
  int64_t live = 215;
  for (int i = 0; i < 6; i++) {
    ALLOC(&a, blocks[i], sizes[i], 0);
    live -= (int64_t)sizes[i];
    CHECK_EQ(halo_alloc_live(&a), live);
  }
  CHECK_EQ(p1, 100);
  CHECK_EQ(p2, 45);
  CHECK_EQ(a.freed, 215);
  CHECK_EQ(a.calls, 13);
  CHECK_EQ(pl.held, 0);
}

/* Big blocks: rounded up, kept when freed, reused, moved across the
 * threshold with their contents; a big block the inner allocator handed out
 * before goes back to it. */
static void test_big(void) {
  plain_t pl = {0};
  halo_alloc_t a;
  halo_alloc_init(&a, plain_alloc, &pl);
  unsigned char *p = ALLOC(&a, NULL, 0, 100000);
  CHECK(p != NULL);
  CHECK_EQ(pl.held, 131072);
  for (int i = 0; i < 100000; i++) p[i] = (unsigned char)(i * 7);
  CHECK(ALLOC(&a, p, 100000, 120000) == p); /* still fits its 128 KB */
  CHECK(ALLOC(&a, p, 120000, 0) == NULL);
  CHECK_EQ(pl.held, 131072); /* kept, not returned */
  CHECK_EQ(a.kept_bytes, 131072);
  uint64_t calls = pl.calls;
  unsigned char *q = ALLOC(&a, NULL, 0, 70000);
  CHECK(q == p); /* the kept block again, without the inner allocator */
  CHECK_EQ(pl.calls, calls);
  CHECK_EQ(a.kept_bytes, 0);
  for (int i = 0; i < 70000; i++) q[i] = (unsigned char)(i * 13);
  unsigned char *r = ALLOC(&a, q, 70000, 200000); /* grows into a 256 KB block */
  CHECK(r != NULL && r != q);
  int same = 1;
  for (int i = 0; i < 70000; i++) same &= r[i] == (unsigned char)(i * 13);
  CHECK(same);
  CHECK_EQ(a.kept_bytes, 131072); /* the old one is kept */
  unsigned char *s = ALLOC(&a, r, 200000, 1000); /* shrinks out of the big blocks */
  CHECK(s != NULL);
  same = 1;
  for (int i = 0; i < 1000; i++) same &= s[i] == (unsigned char)(i * 13);
  CHECK(same);
  CHECK_EQ(a.kept_bytes, 131072 + 262144);
  ALLOC(&a, s, 1000, 0);
  /* allocated by the inner allocator before the wrapper: returned to it */
  void *x = plain_alloc(&pl, NULL, 0, 90000);
  int64_t held = pl.held;
  ALLOC(&a, x, 90000, 0);
  CHECK_EQ(pl.held, held - 90000);
  CHECK_EQ(a.kept_bytes, 131072 + 262144);
  /* at most HALO_ALLOC_KEEP bytes are kept */
  void *m[3];
  for (int i = 0; i < 3; i++) m[i] = ALLOC(&a, NULL, 0, 32u << 20);
  for (int i = 0; i < 3; i++) ALLOC(&a, m[i], 32u << 20, 0);
  CHECK(a.kept_bytes <= HALO_ALLOC_KEEP);
  /* a failing inner allocator: NULL, the old block intact */
  unsigned char *t = ALLOC(&a, NULL, 0, 100);
  t[0] = 42;
  pl.fail = 1;
  CHECK(ALLOC(&a, t, 100, 1u << 27) == NULL); /* over 64 MB: the inner allocator's, which fails */
  CHECK_EQ(t[0], 42);
  ALLOC(&a, t, 100, 0);
  halo_alloc_release(&a);
  CHECK_EQ(pl.held, 0);
}

typedef struct seen { uint32_t idx[64]; int n; } seen_t;

static void on_sample(void *ud, halo_alloc_t *a, uint32_t idx) {
  seen_t *s = ud;
  (void)a;
  if (s->n < 64) s->idx[s->n++] = idx;
}

/* Sampling: the counter, the weight, frees and moves of sampled blocks,
 * records kept until named, rate 0 stopping it. */
static void test_sampling(void) {
  plain_t pl = {0};
  halo_alloc_t a;
  seen_t seen = {{0}, 0};
  halo_alloc_init(&a, plain_alloc, &pl);
  a.on_sample = on_sample;
  a.sample_ud = &seen;
  void *q = ALLOC(&a, NULL, 0, 10);
  CHECK_EQ(seen.n, 0); /* off by default */
  CHECK_EQ(halo_alloc_sampling(&a, 1), 0); /* every byte: each block is sampled */
  void *p = ALLOC(&a, NULL, 0, 100);
  CHECK_EQ(seen.n, 1);
  halo_alloc_sample_t *r = halo_alloc_sample(&a, seen.idx[0]);
  CHECK(r && r->ptr == p && r->size == 100);
  CHECK(r->weight > 0.999 && r->weight < 1.001); /* 1 - exp(-100) */
  CHECK_EQ(a.live_samples, 1);
  p = ALLOC(&a, p, 100, 5000); /* a move: the record follows (the growth samples nothing new) */
  r = halo_alloc_sample(&a, seen.idx[0]);
  CHECK(r->ptr == p && r->size == 100);
  CHECK_EQ(a.live_samples, 1);
  ALLOC(&a, p, 5000, 0); /* freed before its site is named: kept until then */
  CHECK_EQ(a.live_samples, 0);
  CHECK(r->ptr == NULL);
  r->site = 7;
  halo_alloc_sample_done(&a, seen.idx[0]);
  void *p2 = ALLOC(&a, NULL, 0, 8); /* reuses the record */
  CHECK_EQ(seen.n, 2);
  CHECK_EQ(seen.idx[1], seen.idx[0]);
  halo_alloc_sample(&a, seen.idx[1])->site = 7;
  ALLOC(&a, p2, 8, 0); /* named: dropped at once */
  CHECK_EQ(a.free_sample, seen.idx[1]);
  CHECK_EQ(halo_alloc_sampling(&a, 1 << 20), 0);
  CHECK(a.sample_left > 0);
  int taken = 0;
  for (int i = 0; i < 20000; i++) { /* 20 MB at 1 MB: ~19 samples (Poisson: none at all is e^-19), big weights */
    void *b = ALLOC(&a, NULL, 0, 1000);
    if (seen.n > 2 + taken) {
      halo_alloc_sample_t *s = halo_alloc_sample(&a, seen.idx[2 + taken]);
      CHECK(s->weight > 1000 && s->weight < 1100); /* 1 / (1 - exp(-1000 / 2^20)) ~ 1049 */
      taken++;
    }
    ALLOC(&a, b, 1000, 0);
  }
  CHECK(taken >= 3 && taken <= 60);
  CHECK_EQ(halo_alloc_sampling(&a, 0), 0);
  uint64_t before = a.sampled;
  for (int i = 0; i < 1000; i++) ALLOC(&a, ALLOC(&a, NULL, 0, 1000), 1000, 0);
  CHECK_EQ(a.sampled, before);
  ALLOC(&a, q, 10, 0);
  halo_alloc_release(&a);
  CHECK_EQ(pl.held, 0);
}

int main(void) {
  RUN_TEST(test_big);
  RUN_TEST(test_unowned);
  RUN_TEST(test_realloc);
  RUN_TEST(test_attribution);
  RUN_TEST(test_sampling);
  return check_exit_code();
}
