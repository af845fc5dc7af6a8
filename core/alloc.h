/*
 * Accounting allocator for the Lua state. It wraps the state's own allocator
 * (lua_getallocf/lua_setallocf) and attributes every allocated byte to the
 * process that was running when it was requested. The cost is two additions
 * per call; it stays on. Frees cannot be attributed to an owner without a
 * header per block, so per-process figures are cumulative allocations while
 * the node keeps live totals.
 */
#ifndef HALO_ALLOC_H
#define HALO_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/** Same shape as lua_Alloc, declared here so core/ never includes lua.h. */
typedef void *(*halo_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);

typedef struct halo_alloc {
  halo_alloc_fn inner;
  void *inner_ud;
  uint64_t *current;   /* counter of the running process, or &unowned */
  uint64_t unowned;    /* bytes allocated outside any process */
  uint64_t allocated;  /* cumulative bytes requested */
  uint64_t freed;      /* cumulative bytes released */
  uint64_t calls;
} halo_alloc_t;

/** Prepares a wrapper around inner. */
void halo_alloc_init(halo_alloc_t *a, halo_alloc_fn inner, void *inner_ud);

/** The wrapper to install with lua_setallocf(L, halo_alloc_lua, a). */
void *halo_alloc_lua(void *ud, void *ptr, size_t osize, size_t nsize);

/** Points attribution at counter (NULL = unowned); returns the previous target. */
static inline uint64_t *halo_alloc_attribute(halo_alloc_t *a, uint64_t *counter) {
  uint64_t *old = a->current;
  a->current = counter ? counter : &a->unowned;
  return old;
}

/** Bytes currently held through this allocator since it was installed. */
static inline int64_t halo_alloc_live(const halo_alloc_t *a) {
  return (int64_t)(a->allocated - a->freed);
}

#endif
