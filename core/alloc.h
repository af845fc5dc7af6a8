/*
 * Accounting allocator for the Lua state. It wraps the state's own allocator
 * (lua_getallocf/lua_setallocf) and attributes every allocated byte to the
 * process that was running when it was requested. The cost is two additions
 * per call; it stays on. Frees cannot be attributed to an owner without a
 * header per block, so per-process figures are cumulative allocations while
 * the node keeps live totals.
 *
 * Blocks of 64 KB to 64 MB (big strings: messages from other nodes, file
 * contents) are rounded up to a power of two and, when Lua frees them, kept
 * for reuse (up to 64 MB in all) instead of going back to the system: on
 * these machines a fresh page costs a fault of several microseconds, which
 * made every 200 KB message cost 50 of them. They still come from the inner
 * allocator, so a block may be freed through it once the wrapper is gone.
 */
#ifndef HALO_ALLOC_H
#define HALO_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"

#define HALO_ALLOC_BIG_MIN 16   /* 64 KB: the smallest kept block, as a shift */
#define HALO_ALLOC_BIG_MAX 26   /* 64 MB: the largest */
#define HALO_ALLOC_KEEP (64u << 20) /* bytes of freed big blocks kept for reuse */

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
  halo_imap_t big;     /* live big blocks handed out: address -> their real size */
  void *kept[HALO_ALLOC_BIG_MAX - HALO_ALLOC_BIG_MIN + 1]; /* freed ones by size, chained through their first word */
  size_t kept_bytes;
  int test_fail;       /* test knob: while set, every request that grows a block fails */
} halo_alloc_t;

/** Prepares a wrapper around inner. */
void halo_alloc_init(halo_alloc_t *a, halo_alloc_fn inner, void *inner_ud);

/** Returns the kept blocks to the inner allocator and forgets the big ones
 *  (call once the wrapper is uninstalled: Lua then frees them through the
 *  inner allocator, which owns them). */
void halo_alloc_release(halo_alloc_t *a);

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
