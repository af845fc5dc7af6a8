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
 *
 * Heap sampling (halo_alloc_sampling): one block per `rate` bytes requested
 * on average is sampled, the distance to the next sample drawn from an
 * exponential distribution of mean `rate` (as Go's runtime does), so every
 * byte has the same chance 1/rate and a block of s bytes is sampled with
 * probability 1 - exp(-s/rate); its record carries the weight 1/that, the
 * number of blocks like it it stands for (Go's unsampling of heap
 * profiles). The request path only subtracts the grown bytes from a
 * counter; the slow path runs when it crosses zero. A sampled block's
 * release is seen through a 4096-entry filter of counts over the sampled
 * addresses: a free or realloc pays one load when nothing it touches is
 * sampled, the hash lookup only on a hit. The host names the site of a
 * record (on_sample, then halo_alloc_sample_done); records stay until then
 * even when their block is freed, so none is lost for cumulative figures.
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

#define HALO_ALLOC_FILTER 4096

/** One sampled block. */
typedef struct halo_alloc_sample {
  void *ptr;          /* the block; NULL once freed */
  size_t size;        /* its size when sampled */
  double weight;      /* blocks it stands for: 1 / P(sampled) */
  uint32_t site;      /* the host's site id; 0 until named */
  uint32_t next;      /* free list of records */
  uint64_t owner;     /* the host's owner tag (a process id; 0: none) */
} halo_alloc_sample_t;

struct halo_alloc;
/** Told of a new record (index idx) from inside the allocator: the host may
 *  neither allocate through this allocator nor run Lua there. */
typedef void (*halo_alloc_sample_fn)(void *ud, struct halo_alloc *a, uint32_t idx);

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
  int64_t sample_left; /* bytes still to request before the next sample */
  uint64_t sample_rate; /* mean bytes between samples; 0: off */
  uint64_t rng;
  uint64_t sampled;    /* samples taken */
  halo_alloc_sample_fn on_sample;
  void *sample_ud;
  halo_alloc_sample_t *samples; /* records by index, [0] unused */
  uint32_t nsamples, capsamples, free_sample;
  uint32_t live_samples; /* records whose block is held */
  uint8_t *filter;     /* HALO_ALLOC_FILTER counts of sampled addresses by hash */
  halo_imap_t by_ptr;  /* sampled block -> record index */
} halo_alloc_t;

/** Prepares a wrapper around inner. */
void halo_alloc_init(halo_alloc_t *a, halo_alloc_fn inner, void *inner_ud);

/** Returns the kept blocks to the inner allocator and forgets the big ones
 *  (call once the wrapper is uninstalled: Lua then frees them through the
 *  inner allocator, which owns them). */
void halo_alloc_release(halo_alloc_t *a);

/** Samples one block per rate bytes on average from now on (0: stops
 *  sampling; records taken stay and still see their frees). Returns 0 or
 *  HALO_ENOMEM. */
int halo_alloc_sampling(halo_alloc_t *a, uint64_t rate);

/** Record idx, or NULL. */
static inline halo_alloc_sample_t *halo_alloc_sample(halo_alloc_t *a, uint32_t idx) {
  return idx && idx < a->nsamples ? &a->samples[idx] : NULL;
}

/** The host has named the site of record idx: it is dropped if its block
 *  is already freed. */
void halo_alloc_sample_done(halo_alloc_t *a, uint32_t idx);

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
