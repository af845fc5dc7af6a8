#include "alloc.h"

#include <string.h>

void halo_alloc_init(halo_alloc_t *a, halo_alloc_fn inner, void *inner_ud) {
  memset(a, 0, sizeof *a);
  a->inner = inner;
  a->inner_ud = inner_ud;
  a->current = &a->unowned;
}

void *halo_alloc_lua(void *ud, void *ptr, size_t osize, size_t nsize) {
  halo_alloc_t *a = ud;
  void *r = a->inner(a->inner_ud, ptr, osize, nsize);
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
