/*
 * Open-addressing hash maps with linear probing and backward-shift deletion
 * (no tombstones), used for the process table, aliases, timers and names.
 * Keys of halo_smap are borrowed: the caller keeps the string alive while it
 * is in the map.
 */
#ifndef HALO_MAP_H
#define HALO_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct halo_imap_slot { uint64_t key; void *val; } halo_imap_slot_t;

/** Map from a non-zero uint64 key to a non-NULL pointer. */
typedef struct halo_imap {
  halo_imap_slot_t *slots;
  size_t cap; /* power of two or 0 */
  size_t len;
} halo_imap_t;

void halo_imap_init(halo_imap_t *m);
void halo_imap_destroy(halo_imap_t *m);
/** Returns the value for key or NULL. */
void *halo_imap_get(const halo_imap_t *m, uint64_t key);
/** Inserts or replaces; returns 0 or HALO_ENOMEM. */
int halo_imap_put(halo_imap_t *m, uint64_t key, void *val);
/** Removes key; returns the old value or NULL. */
void *halo_imap_del(halo_imap_t *m, uint64_t key);

typedef struct halo_smap_slot { const char *key; uint32_t hash; void *val; } halo_smap_slot_t;

/** Map from a NUL-terminated string to a non-NULL pointer. */
typedef struct halo_smap {
  halo_smap_slot_t *slots;
  size_t cap;
  size_t len;
} halo_smap_t;

void halo_smap_init(halo_smap_t *m);
void halo_smap_destroy(halo_smap_t *m);
void *halo_smap_get(const halo_smap_t *m, const char *key);
int halo_smap_put(halo_smap_t *m, const char *key, void *val);
void *halo_smap_del(halo_smap_t *m, const char *key);

#endif
