/*
 * The node's view of itself: process short info, filtered and sorted
 * process lists and node info. Bindings turn these structs into Lua tables;
 * MCP tools, metrics and the Observer read nothing else.
 */
#ifndef HALO_INTROSPECT_H
#define HALO_INTROSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "node.h"

/** Sort and threshold keys of a process list. */
enum halo_proc_key {
  HALO_KEY_MAILBOX,
  HALO_KEY_MAILBOX_LATENCY,
  HALO_KEY_RUNNING_TIME,
  HALO_KEY_INIT_TIME,
  HALO_KEY_WAKEUPS,
  HALO_KEY_UPTIME,
  HALO_KEY_MESSAGES_IN,
  HALO_KEY_MESSAGES_OUT,
  HALO_KEY_DRAIN,
  HALO_KEY_PID,         /* spawn order */
  HALO_KEY_STATE,       /* the state's bit value */
  HALO_KEY_NAME,        /* text keys: sort only, no thresholds */
  HALO_KEY_BEHAVIOR,
  HALO_KEY_APPLICATION,
  HALO_NKEYS
};

/** A state name as a filter gives it: case-insensitive, '_' for the space of
 *  "wait response" ("wait_response" too); 0 when unknown. */
int halo_proc_state_parse(const char *name);

/** "mailbox", "mailbox_latency", ... "drain", "pid", "state", "name",
 *  "behavior", "application"; -1 when unknown. */
int halo_proc_key_parse(const char *name);
/** True for the keys compared as text (name, behavior, application). */
int halo_proc_key_is_text(int key);
const char *halo_proc_key_name(int key);

typedef struct halo_proc_short {
  halo_pid_t pid, parent, leader;
  const char *name, *application, *behavior, *kind;
  uint64_t messages_in, messages_out, mailbox;
  uint64_t mailbox_latency, running_time, init_time, wakeups; /* ns, ns, ns, count */
  int64_t uptime;      /* s */
  int state;
  uint64_t state_time; /* ns in the current state */
  int log_level;
} halo_proc_short_t;

void halo_proc_short_info(halo_node_t *n, halo_proc_t *p, uint64_t now, halo_proc_short_t *out);

/** Value of a key for p: ns for times, s for uptime, a ratio for drain. */
double halo_proc_key_value(halo_node_t *n, halo_proc_t *p, int key, uint64_t now);

typedef struct halo_proc_filter {
  const char *application; /* exact */
  const char *behavior;    /* substring */
  const char *name;        /* substring of the registered name */
  int state;               /* 0: any */
  double min[HALO_NKEYS], max[HALO_NKEYS];
  uint32_t has_min, has_max; /* bit per key */
  int sort_by;             /* key, or -1: spawn order */
  int ascending;           /* sort_by ascending instead of descending */
  size_t limit;            /* 0: no limit */
  size_t *matched;         /* when set: receives how many matched before the limit */
} halo_proc_filter_t;

void halo_proc_filter_init(halo_proc_filter_t *f);

/** Matching processes, sorted descending (f->ascending: ascending) by
 *  f->sort_by (ties in spawn order), at most f->limit; without sort_by the first f->limit in spawn
 *  order. A sorted list with a limit keeps only the best f->limit while it
 *  scans (a heap), so its cost grows with the processes scanned, not with
 *  the sort. Filters apply in the order application, behavior, state, name,
 *  then minimums and maximums. Returns a malloc'ed array (caller frees) and
 *  its length in *count; NULL with *count == 0 when nothing matches or
 *  memory ran out. */
halo_proc_t **halo_process_list(halo_node_t *n, const halo_proc_filter_t *f, size_t *count);

/** The children of local process parent_id (processes whose parent it is),
 *  in spawn order; with recursive, every descendant, level by level (each
 *  level in spawn order). One scan of the process table. Returns a
 *  malloc'ed array (caller frees) or NULL with *count == 0. */
halo_proc_t **halo_process_children(halo_node_t *n, uint64_t parent_id, int recursive, size_t *count);

#endif
