#include "map.h"
#include "errors.h"

#include <stdlib.h>
#include <string.h>

/* -- integer keys ---------------------------------------------------------- */

static inline size_t ihash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return (size_t)k;
}

void halo_imap_init(halo_imap_t *m) { memset(m, 0, sizeof *m); }

void halo_imap_destroy(halo_imap_t *m) {
  free(m->slots);
  memset(m, 0, sizeof *m);
}

void *halo_imap_get(const halo_imap_t *m, uint64_t key) {
  if (!m->cap) return NULL;
  size_t mask = m->cap - 1, i = ihash(key) & mask;
  for (;;) {
    const halo_imap_slot_t *s = &m->slots[i];
    if (s->key == key) return s->val;
    if (!s->val) return NULL;
    i = (i + 1) & mask;
  }
}

static int iresize(halo_imap_t *m, size_t ncap) {
  halo_imap_slot_t *ns = calloc(ncap, sizeof *ns), *old = m->slots;
  size_t ocap = m->cap;
  if (!ns) return HALO_ENOMEM;
  m->slots = ns;
  m->cap = ncap;
  for (size_t j = 0; j < ocap; j++) {
    if (!old[j].val) continue;
    size_t i = ihash(old[j].key) & (ncap - 1);
    while (ns[i].val) i = (i + 1) & (ncap - 1);
    ns[i] = old[j];
  }
  free(old);
  return 0;
}

int halo_imap_put(halo_imap_t *m, uint64_t key, void *val) {
  if ((m->len + 1) * 4 > m->cap * 3 && iresize(m, m->cap ? m->cap * 2 : 16)) return HALO_ENOMEM;
  size_t mask = m->cap - 1, i = ihash(key) & mask;
  while (m->slots[i].val && m->slots[i].key != key) i = (i + 1) & mask;
  if (!m->slots[i].val) m->len++;
  m->slots[i].key = key;
  m->slots[i].val = val;
  return 0;
}

void *halo_imap_del(halo_imap_t *m, uint64_t key) {
  if (!m->cap) return NULL;
  size_t mask = m->cap - 1, i = ihash(key) & mask;
  while (m->slots[i].val && m->slots[i].key != key) i = (i + 1) & mask;
  if (!m->slots[i].val) return NULL;
  void *old = m->slots[i].val;
  /* Backward shift: pull later entries of the probe run into the hole. */
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (!m->slots[j].val) break;
    size_t home = ihash(m->slots[j].key) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].val = NULL;
  m->slots[i].key = 0;
  m->len--;
  /* A map that emptied after a burst gives its memory (and its cache
   * footprint) back; it grows at 3/4 full and shrinks below 1/8. */
  if (m->cap > 64 && m->len * 8 < m->cap) (void)iresize(m, m->cap / 2);
  return old;
}

/* -- string keys ----------------------------------------------------------- */

static inline uint32_t shash(const char *s) {
  uint32_t h = 2166136261u;
  while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
  return h;
}

void halo_smap_init(halo_smap_t *m) { memset(m, 0, sizeof *m); }

void halo_smap_destroy(halo_smap_t *m) {
  free(m->slots);
  memset(m, 0, sizeof *m);
}

static size_t sfind(const halo_smap_t *m, const char *key, uint32_t h) {
  size_t mask = m->cap - 1, i = h & mask;
  while (m->slots[i].val && (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
    i = (i + 1) & mask;
  return i;
}

void *halo_smap_get(const halo_smap_t *m, const char *key) {
  if (!m->cap) return NULL;
  return m->slots[sfind(m, key, shash(key))].val;
}

static int sgrow(halo_smap_t *m) {
  size_t ncap = m->cap ? m->cap * 2 : 16, ocap = m->cap;
  halo_smap_slot_t *ns = calloc(ncap, sizeof *ns), *old = m->slots;
  if (!ns) return HALO_ENOMEM;
  m->slots = ns;
  m->cap = ncap;
  for (size_t j = 0; j < ocap; j++) {
    if (!old[j].val) continue;
    size_t i = old[j].hash & (ncap - 1);
    while (ns[i].val) i = (i + 1) & (ncap - 1);
    ns[i] = old[j];
  }
  free(old);
  return 0;
}

int halo_smap_put(halo_smap_t *m, const char *key, void *val) {
  if ((m->len + 1) * 4 > m->cap * 3 && sgrow(m)) return HALO_ENOMEM;
  uint32_t h = shash(key);
  size_t i = sfind(m, key, h);
  if (!m->slots[i].val) m->len++;
  m->slots[i].key = key;
  m->slots[i].hash = h;
  m->slots[i].val = val;
  return 0;
}

void *halo_smap_del(halo_smap_t *m, const char *key) {
  if (!m->cap) return NULL;
  uint32_t h = shash(key);
  size_t mask = m->cap - 1, i = sfind(m, key, h);
  if (!m->slots[i].val) return NULL;
  void *old = m->slots[i].val;
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (!m->slots[j].val) break;
    size_t home = m->slots[j].hash & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  memset(&m->slots[i], 0, sizeof m->slots[i]);
  m->len--;
  return old;
}
