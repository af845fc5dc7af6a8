#include "creation.h"
#include "errors.h"

_Static_assert(sizeof(void *) >= sizeof(uint64_t), "creations are kept as pointer values");

/* One 64-bit key per identifier: the node's CRC, the kind, 31 bits of id
 * (process and alias counters stay below that for a node's life). */
static uint64_t key_of(int kind, uint32_t node, uint64_t id) {
  if (!id || id >> 31) return 0;
  return (uint64_t)node << 32 | (uint64_t)(kind == HALO_ID_ALIAS) << 31 | id;
}

void halo_creations_init(halo_creations_t *c, size_t max) {
  halo_imap_init(&c->gen[0]);
  halo_imap_init(&c->gen[1]);
  c->max = max ? max : 1;
}

void halo_creations_destroy(halo_creations_t *c) {
  halo_imap_destroy(&c->gen[0]);
  halo_imap_destroy(&c->gen[1]);
}

static int put(halo_creations_t *c, uint64_t key, uint64_t creation) {
  if (c->gen[0].len >= c->max) { /* the older generation is forgotten */
    halo_imap_destroy(&c->gen[1]);
    c->gen[1] = c->gen[0];
    halo_imap_init(&c->gen[0]);
  }
  return halo_imap_put(&c->gen[0], key, (void *)(uintptr_t)creation);
}

int halo_creations_learn(halo_creations_t *c, int kind, uint32_t node, uint64_t id, uint64_t creation) {
  uint64_t key = key_of(kind, node, id);
  if (!key || !creation) return 0;
  if ((uint64_t)(uintptr_t)halo_imap_get(&c->gen[0], key) == creation) return 0;
  halo_imap_del(&c->gen[1], key);
  return put(c, key, creation);
}

uint64_t halo_creations_get(halo_creations_t *c, int kind, uint32_t node, uint64_t id) {
  uint64_t key = key_of(kind, node, id);
  if (!key) return 0;
  void *v = halo_imap_get(&c->gen[0], key);
  if (v) return (uint64_t)(uintptr_t)v;
  if (!(v = halo_imap_del(&c->gen[1], key))) return 0;
  put(c, key, (uint64_t)(uintptr_t)v); /* in use: kept a generation longer */
  return (uint64_t)(uintptr_t)v;
}
