#include "alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

void halo_alloc_init(halo_alloc_t *a, halo_alloc_fn inner, void *inner_ud) {
  memset(a, 0, sizeof *a);
  a->inner = inner;
  a->inner_ud = inner_ud;
  a->current = &a->unowned;
  a->sample_left = INT64_MAX;
  a->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)a;
  halo_imap_init(&a->big);
  halo_imap_init(&a->by_ptr);
}

void halo_alloc_release(halo_alloc_t *a) {
  for (int k = 0; k <= HALO_ALLOC_BIG_MAX - HALO_ALLOC_BIG_MIN; k++)
    while (a->kept[k]) {
      void *p = a->kept[k];
      a->kept[k] = *(void **)p;
      a->inner(a->inner_ud, p, (size_t)1 << (k + HALO_ALLOC_BIG_MIN), 0);
    }
  a->kept_bytes = 0;
  halo_imap_destroy(&a->big);
  halo_imap_destroy(&a->by_ptr);
  free(a->samples);
  free(a->filter);
  a->samples = NULL;
  a->filter = NULL;
  a->nsamples = a->capsamples = a->free_sample = a->live_samples = 0;
  a->sample_rate = 0;
  a->sample_left = INT64_MAX;
}

/* -- heap sampling (alloc.h) -- */

static unsigned filter_slot(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p >> 4;
  return (unsigned)((x * 0x9E3779B97F4A7C15ull) >> 52) & (HALO_ALLOC_FILTER - 1);
}

/* Filter counts saturate: a full slot stays full (a lookup on every hit). */
static void filter_add(halo_alloc_t *a, const void *p) {
  uint8_t *c = &a->filter[filter_slot(p)];
  if (*c < 255) (*c)++;
}

static void filter_sub(halo_alloc_t *a, const void *p) {
  uint8_t *c = &a->filter[filter_slot(p)];
  if (*c < 255) (*c)--;
}

/* Bytes to the next sample: exponential with mean rate (xorshift64*). */
static int64_t next_interval(halo_alloc_t *a) {
  a->rng ^= a->rng >> 12;
  a->rng ^= a->rng << 25;
  a->rng ^= a->rng >> 27;
  double u = (double)((a->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0; /* [0, 1) */
  double d = -log(1.0 - u) * (double)a->sample_rate;
  return d < 1.0 ? 1 : d > 1e15 ? (int64_t)1e15 : (int64_t)d;
}

int halo_alloc_sampling(halo_alloc_t *a, uint64_t rate) {
  if (rate && !a->filter) {
    if (!(a->filter = calloc(HALO_ALLOC_FILTER, 1))) return HALO_ENOMEM;
    if (!(a->samples = malloc(64 * sizeof *a->samples))) return HALO_ENOMEM;
    a->capsamples = 64;
    a->nsamples = 1;
  }
  a->sample_rate = rate;
  a->sample_left = rate ? next_interval(a) : INT64_MAX;
  return 0;
}

static void record_free(halo_alloc_t *a, uint32_t idx) {
  a->samples[idx].ptr = NULL;
  a->samples[idx].next = a->free_sample;
  a->free_sample = idx;
}

void halo_alloc_sample_done(halo_alloc_t *a, uint32_t idx) {
  halo_alloc_sample_t *r = halo_alloc_sample(a, idx);
  if (r && !r->ptr) record_free(a, idx);
}

/* The block p of size bytes crossed the sampling counter. Out of memory
 * here loses the sample, never the allocation. */
static void sample_take(halo_alloc_t *a, void *p, size_t size) {
  if (!a->sample_rate) {
    a->sample_left = INT64_MAX;
    return;
  }
  a->sample_left = next_interval(a);
  if (halo_imap_get(&a->by_ptr, (uint64_t)(uintptr_t)p)) return;
  uint32_t idx = a->free_sample;
  if (idx) {
    a->free_sample = a->samples[idx].next;
  } else {
    if (a->nsamples == a->capsamples) {
      halo_alloc_sample_t *ns = realloc(a->samples, 2 * (size_t)a->capsamples * sizeof *ns);
      if (!ns) return;
      a->samples = ns;
      a->capsamples *= 2;
    }
    idx = a->nsamples++;
  }
  if (halo_imap_put(&a->by_ptr, (uint64_t)(uintptr_t)p, (void *)(uintptr_t)idx)) {
    record_free(a, idx);
    return;
  }
  double q = 1.0 - exp(-(double)size / (double)a->sample_rate);
  a->samples[idx] = (halo_alloc_sample_t){p, size, q > 0 ? 1.0 / q : 1.0, 0, 0, 0};
  filter_add(a, p);
  a->live_samples++;
  a->sampled++;
  if (a->on_sample) a->on_sample(a->sample_ud, a, idx);
}

/* ptr was freed (r NULL) or moved to r: its record follows. */
static void sample_moved(halo_alloc_t *a, void *ptr, void *r) {
  uint32_t idx = (uint32_t)(uintptr_t)halo_imap_del(&a->by_ptr, (uint64_t)(uintptr_t)ptr);
  if (!idx) return;
  filter_sub(a, ptr);
  halo_alloc_sample_t *s = &a->samples[idx];
  if (r && !halo_imap_put(&a->by_ptr, (uint64_t)(uintptr_t)r, (void *)(uintptr_t)idx)) {
    filter_add(a, r);
    s->ptr = r; /* the size stays the sampled one: live never exceeds what was counted as allocated */
    return;
  }
  a->live_samples--;
  if (s->site) record_free(a, idx);
  else s->ptr = NULL; /* its site still to be named (halo_alloc_sample_done) */
}

static int shift_for(size_t n) {
  int k = HALO_ALLOC_BIG_MIN;
  while (((size_t)1 << k) < n) k++;
  return k;
}

/* A big block of 2^k bytes: a kept one, or a new one. */
static void *big_get(halo_alloc_t *a, int k) {
  size_t size = (size_t)1 << k;
  void **slot = &a->kept[k - HALO_ALLOC_BIG_MIN];
  void *p = *slot;
  if (p) {
    *slot = *(void **)p;
    a->kept_bytes -= size;
  } else if (!(p = a->inner(a->inner_ud, NULL, 0, size))) {
    return NULL;
  }
  if (halo_imap_put(&a->big, (uint64_t)(uintptr_t)p, (void *)(uintptr_t)size)) {
    a->inner(a->inner_ud, p, size, 0);
    return NULL;
  }
  return p;
}

static void big_put(halo_alloc_t *a, void *p, size_t size) {
  halo_imap_del(&a->big, (uint64_t)(uintptr_t)p);
  if (a->kept_bytes + size > HALO_ALLOC_KEEP) {
    a->inner(a->inner_ud, p, size, 0);
    return;
  }
  void **slot = &a->kept[shift_for(size) - HALO_ALLOC_BIG_MIN];
  *(void **)p = *slot;
  *slot = p;
  a->kept_bytes += size;
}

/* The allocation itself, big blocks apart (see alloc.h). */
static void *alloc(halo_alloc_t *a, void *ptr, size_t osize, size_t nsize) {
  const size_t lo = (size_t)1 << HALO_ALLOC_BIG_MIN, hi = (size_t)1 << HALO_ALLOC_BIG_MAX;
  size_t have = ptr && osize >= lo ? (size_t)(uintptr_t)halo_imap_get(&a->big, (uint64_t)(uintptr_t)ptr) : 0;
  int big = nsize >= lo && nsize <= hi;
  if (!have && !big) return a->inner(a->inner_ud, ptr, osize, nsize);
  if (have && nsize == 0) {
    big_put(a, ptr, have);
    return NULL;
  }
  if (have && big && nsize <= have) return ptr; /* it still fits */
  void *np = big ? big_get(a, shift_for(nsize)) : a->inner(a->inner_ud, NULL, 0, nsize);
  if (!np) return NULL; /* the old block stays, as realloc leaves it */
  if (ptr) {
    memcpy(np, ptr, osize < nsize ? osize : nsize);
    if (have) big_put(a, ptr, have);
    else a->inner(a->inner_ud, ptr, osize, 0);
  }
  return np;
}

void *halo_alloc_lua(void *ud, void *ptr, size_t osize, size_t nsize) {
  halo_alloc_t *a = ud;
  if (a->test_fail && nsize > (ptr ? osize : 0)) return NULL;
  void *r = alloc(a, ptr, osize, nsize);
  /* With ptr == NULL, osize carries a type tag in Lua 5.x, not a size. */
  size_t old = ptr ? osize : 0;
  if (nsize == 0 || r) {
    a->calls++;
    if (ptr && a->live_samples && a->filter[filter_slot(ptr)])
      sample_moved(a, ptr, r);
    if (nsize > old) {
      a->allocated += nsize - old;
      *a->current += nsize - old;
      if ((a->sample_left -= (int64_t)(nsize - old)) < 0) sample_take(a, r, nsize);
    } else {
      a->freed += old - nsize;
    }
  }
  return r;
}
