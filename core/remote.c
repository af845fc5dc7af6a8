/* Remote spawn and application start allow-lists (remote.h). Lists are
 * short: linear search, entries in the order they were enabled. */
#include "remote.h"

#include "errors.h"
#include "pid.h"

#include <stdlib.h>
#include <string.h>

void halo_remote_init(halo_remote_t *r) {
  memset(r, 0, sizeof *r);
  for (int k = 0; k < HALO_REMOTE_NKINDS; k++) r->enabled[k] = 1;
}

static void entry_free(halo_remote_entry_t *e) {
  for (uint32_t i = 0; i < e->nnodes; i++) free(e->nodes[i]);
  free(e->nodes);
  free(e->crcs);
  free(e->name);
  free(e->behavior);
}

void halo_remote_destroy(halo_remote_t *r) {
  for (int k = 0; k < HALO_REMOTE_NKINDS; k++) {
    for (uint32_t i = 0; i < r->n[k]; i++) entry_free(&r->entries[k][i]);
    free(r->entries[k]);
  }
  memset(r, 0, sizeof *r);
}

static halo_remote_entry_t *find(const halo_remote_t *r, int kind, const char *name) {
  for (uint32_t i = 0; i < r->n[kind]; i++)
    if (!strcmp(r->entries[kind][i].name, name)) return &r->entries[kind][i];
  return NULL;
}

const halo_remote_entry_t *halo_remote_find(const halo_remote_t *r, int kind, const char *name) {
  return find(r, kind, name);
}

static int has(const halo_remote_entry_t *e, uint32_t crc) {
  for (uint32_t i = 0; i < e->nnodes; i++)
    if (e->crcs[i] == crc) return 1;
  return 0;
}

/* Adds the nodes e does not list yet; on HALO_ENOMEM the ones added stay. */
static int add_nodes(halo_remote_entry_t *e, const char *const *nodes, size_t nnodes) {
  for (size_t i = 0; i < nnodes; i++) {
    uint32_t crc = halo_crc32(nodes[i], strlen(nodes[i]));
    if (has(e, crc)) continue;
    if (e->nnodes == e->cap) {
      uint32_t cap = e->cap ? e->cap * 2 : 4;
      uint32_t *crcs = realloc(e->crcs, cap * sizeof *crcs);
      if (!crcs) return HALO_ENOMEM;
      e->crcs = crcs;
      char **names = realloc(e->nodes, cap * sizeof *names);
      if (!names) return HALO_ENOMEM;
      e->nodes = names;
      e->cap = cap;
    }
    char *name = strdup(nodes[i]);
    if (!name) return HALO_ENOMEM;
    e->crcs[e->nnodes] = crc;
    e->nodes[e->nnodes++] = name;
  }
  return 0;
}

int halo_remote_enable(halo_remote_t *r, int kind, const char *name, const char *behavior,
                       const char *const *nodes, size_t nnodes) {
  halo_remote_entry_t *e = find(r, kind, name);
  if (e) {
    if (behavior && e->behavior && strcmp(behavior, e->behavior)) return HALO_ETAKEN;
    if (!nnodes) {
      e->any = 1;
      return 0;
    }
    return e->any ? 0 : add_nodes(e, nodes, nnodes);
  }
  if (r->n[kind] == r->cap[kind]) {
    uint32_t cap = r->cap[kind] ? r->cap[kind] * 2 : 4;
    halo_remote_entry_t *es = realloc(r->entries[kind], cap * sizeof *es);
    if (!es) return HALO_ENOMEM;
    r->entries[kind] = es;
    r->cap[kind] = cap;
  }
  halo_remote_entry_t ne = {0};
  ne.name = strdup(name);
  ne.behavior = behavior ? strdup(behavior) : NULL;
  ne.any = nnodes == 0;
  if (!ne.name || (behavior && !ne.behavior) || add_nodes(&ne, nodes, nnodes)) {
    entry_free(&ne);
    return HALO_ENOMEM;
  }
  r->entries[kind][r->n[kind]++] = ne;
  return 0;
}

int halo_remote_disable(halo_remote_t *r, int kind, const char *name, const char *const *nodes, size_t nnodes) {
  halo_remote_entry_t *e = find(r, kind, name);
  if (!e) return HALO_EUNKNOWN;
  if (!nnodes) {
    entry_free(e);
    uint32_t i = (uint32_t)(e - r->entries[kind]);
    memmove(e, e + 1, (r->n[kind] - i - 1) * sizeof *e);
    r->n[kind]--;
    return 0;
  }
  e->any = 0; /* "any" minus some: the rest stays closed */
  for (size_t i = 0; i < nnodes; i++) {
    uint32_t crc = halo_crc32(nodes[i], strlen(nodes[i]));
    for (uint32_t j = 0; j < e->nnodes; j++) {
      if (e->crcs[j] != crc) continue;
      free(e->nodes[j]);
      e->nnodes--;
      e->crcs[j] = e->crcs[e->nnodes];
      e->nodes[j] = e->nodes[e->nnodes];
      break;
    }
  }
  return 0;
}

int halo_remote_check(const halo_remote_t *r, int kind, const char *name, uint32_t node) {
  if (!r->enabled[kind]) return HALO_ENOTALLOWED;
  const halo_remote_entry_t *e = find(r, kind, name);
  if (!e) return HALO_ENAMEUNKNOWN;
  return e->any || has(e, node) ? 0 : HALO_ENOTALLOWED;
}
