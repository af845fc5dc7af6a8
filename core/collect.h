/*
 * The node's built-in metric families (halo_*), the counterparts of the
 * reference exporter's ergo_* families with the same labels, units and
 * meanings. They are computed when the exposition is written: one pass over
 * the process table, one over the events, one over the peers, read straight
 * from the C records. The reference exports every family as a gauge; halo
 * keeps the names and gives the `_total` ones the type their suffix
 * promises to Prometheus' linter (halo_collect_family_type).
 */
#ifndef HALO_COLLECT_H
#define HALO_COLLECT_H

#include <stdint.h>

#include "metrics.h"
#include "node.h"

#define HALO_COLLECT_TOP_N 50 /* default N of every built-in top and bottom family */

struct halo_net;

typedef struct halo_collect_opts {
  uint32_t top_n;         /* 0: HALO_COLLECT_TOP_N */
  double lua_heap;        /* bytes of the Lua heap (the host knows it) */
  uint32_t apps_total, apps_running; /* applications known to the host, running ones */
  struct halo_net *net;   /* the transport, NULL when it is not running */
} halo_collect_opts_t;

/** One built-in family of the catalogue. */
typedef struct halo_collect_family {
  const char *name;
  const char *labels; /* comma-separated, "" for none (node is on every series) */
  const char *help;   /* the HELP line: meaning and unit */
  const char *note;   /* how halo computes it, for the README's table */
  int src, idx;       /* internal: where the value comes from */
} halo_collect_family_t;

/** The TYPE of a built-in family: counter for the cumulative `_total`
 *  families, untyped for the six `_total` families that are instant counts
 *  (processes, applications, names, aliases, events, connected nodes: a
 *  counter may not fall, a gauge may not end in _total), gauge for the rest. */
int halo_collect_family_type(const halo_collect_family_t *f);

/** The catalogue, sorted by name. */
extern const halo_collect_family_t halo_collect_families[];
extern const int halo_collect_nfamilies;

/** Families of the reference that halo does not export, with the reason
 *  (name, reason pairs, NULL-terminated; empty when every family has a meaning). */
extern const char *const halo_collect_absent[];

/** Appends the exposition of the built-in families and of registry m's
 *  (m may be NULL), sorted by name, to b in one go. 0 or HALO_ENOMEM. */
int halo_collect_expose(halo_node_t *n, halo_metrics_t *m, const halo_collect_opts_t *o, halo_mbuf_t *b);

/* The same in steps, so that a large process table is not walked in one
 * loop turn: new, step until it returns 1 (the host runs other work
 * between steps), finish, delete. While a pass is under way the host tells
 * it of every record it frees (halo_collect_forget, from its free hook);
 * a process that ends before finish leaves the top families. */
typedef struct halo_collect halo_collect_t;

/** A pass over n's records; NULL when out of memory. */
halo_collect_t *halo_collect_new(halo_node_t *n, const halo_collect_opts_t *o);
/** Reads at most budget more records; 1 when every record has been read. */
int halo_collect_step(halo_collect_t *c, uint32_t budget);
/** Record p is about to be freed. */
void halo_collect_forget(halo_collect_t *c, halo_proc_t *p);
/** Reads what is left, then the node, events and peers, and appends the
 *  exposition (built-in and m's families) to b. 0 or HALO_ENOMEM. */
int halo_collect_finish(halo_collect_t *c, halo_metrics_t *m, halo_mbuf_t *b);
void halo_collect_delete(halo_collect_t *c);

#endif
