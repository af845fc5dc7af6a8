/*
 * Remote spawn and application start: what other nodes may ask this node to
 * run. A request passes when its node flag is on (both are by default) and
 * an allow-list entry of that name names the caller's node or no node (any
 * node). The network's introspection (NetworkInfo's Flags, EnabledSpawn and
 * EnabledApplicationStart) reads this state; lua/halo/remote.lua changes it
 * and asks it before it serves a request.
 */
#ifndef HALO_REMOTE_H
#define HALO_REMOTE_H

#include <stddef.h>
#include <stdint.h>

/** What a request asks for. */
enum { HALO_REMOTE_SPAWN, HALO_REMOTE_APPLICATION_START, HALO_REMOTE_NKINDS };

/** One allow-list entry. */
typedef struct halo_remote_entry {
  char *name;
  char *behavior;    /* display name of the behavior (spawn entries), else NULL */
  int any;           /* 1: any node may ask */
  uint32_t *crcs;    /* otherwise these nodes (their name CRCs) ... */
  char **nodes;      /* ... and names, nnodes of them */
  uint32_t nnodes, cap;
} halo_remote_entry_t;

typedef struct halo_remote {
  int enabled[HALO_REMOTE_NKINDS]; /* the node flags */
  halo_remote_entry_t *entries[HALO_REMOTE_NKINDS];
  uint32_t n[HALO_REMOTE_NKINDS], cap[HALO_REMOTE_NKINDS];
} halo_remote_t;

/** Both flags on, no entries. */
void halo_remote_init(halo_remote_t *r);
/** Frees every entry. */
void halo_remote_destroy(halo_remote_t *r);

/** Adds nodes to the entry name of kind; a new entry takes behavior (may be
 *  NULL). No nodes: any node. Returns 0, HALO_ETAKEN when a spawn entry of
 *  that name has another behavior, or HALO_ENOMEM (nothing changed). */
int halo_remote_enable(halo_remote_t *r, int kind, const char *name, const char *behavior,
                       const char *const *nodes, size_t nnodes);
/** Removes nodes from the entry (an entry open to any node then is open to
 *  none), or with no nodes the entry. Returns 0 or HALO_EUNKNOWN. */
int halo_remote_disable(halo_remote_t *r, int kind, const char *name, const char *const *nodes, size_t nnodes);

/** The entry name of kind, or NULL. */
const halo_remote_entry_t *halo_remote_find(const halo_remote_t *r, int kind, const char *name);

/** Whether node (its name CRC) may ask for name of kind: 0, HALO_ENOTALLOWED
 *  (flag off or node not listed) or HALO_ENAMEUNKNOWN (no such entry). */
int halo_remote_check(const halo_remote_t *r, int kind, const char *name, uint32_t node);

#endif
