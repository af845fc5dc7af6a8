#include "alloc.h"

#include <string.h>

void halo_alloc_init(halo_alloc_t *a, halo_alloc_fn inner, void *inner_ud) {
  memset(a, 0, sizeof *a);
  a->inner = inner;
  a->inner_ud = inner_ud;
  a->current = &a->unowned;
  halo_imap_init(&a->big);
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
    if (nsize > old) {
      a->allocated += nsize - old;
      *a->current += nsize - old;
    } else {
      a->freed += old - nsize;
    }
  }
  return r;
}
