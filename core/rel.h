/*
 * Links and monitors. Both are one-directional, as in the reference: when
 * watcher W links to target T, T's end sends W an exit signal (urgent queue);
 * when W monitors T, W gets a down message (system queue). Targets are PIDs,
 * registered names or aliases. Each relation is stored twice: in the
 * target's watcher list (to notify) and in the watcher's list (to show and
 * to clean up when the watcher ends first).
 */
#ifndef HALO_REL_H
#define HALO_REL_H

#include "node.h"

enum halo_rel_type { HALO_REL_LINK, HALO_REL_MONITOR };

#define HALO_REL_ACK_MS 5000
/* HALO_TARGET_CALL: the callee side of a call from another node, watched
 * for the call's duration (its end fails the call at once). */
enum halo_target_kind { HALO_TARGET_PID, HALO_TARGET_NAME, HALO_TARGET_ALIAS, HALO_TARGET_EVENT, HALO_TARGET_CALL };

typedef struct halo_rel {
  uint64_t watcher;  /* watcher id */
  uint64_t target;   /* target process id */
  uint64_t alias;    /* HALO_TARGET_ALIAS */
  char *name;        /* HALO_TARGET_NAME, owned by the target-side copy */
  uint8_t type, tkind;
  uint32_t wnode;    /* the watcher's node when it is on another node, else 0 */
  uint32_t tnode;    /* the target's node when it is on another node, else 0 */
  uint64_t token;    /* across nodes, a name, event or call target: what the
                      * other node's notice names it by (the watcher's ref) */
} halo_rel_t;

typedef struct halo_relvec {
  halo_rel_t *v;
  uint32_t len, cap;
} halo_relvec_t;

struct halo_proc_ext {
  halo_relvec_t watchers;  /* who is told when this process (or its name/alias) ends */
  halo_relvec_t watching;  /* what this process links to or monitors */
  uint64_t *aliases;
  uint32_t naliases, capaliases;
  halo_timer_t *timers;    /* armed send_after timers */
  uint64_t spawner;        /* process waiting for this one's init */
  struct halo_caller { uint64_t id, ref; } *callers; /* calls made to this one (some no longer wait) */
  uint32_t ncallers, capcallers;
  struct halo_pool *pool;  /* set when the process is a pool (pool.h) */
  uint8_t compress;        /* compress its messages to other nodes (net.h) */
  uint8_t throttled;       /* HALO_THROTTLED: a link it sent on is congested; HALO_PARKED: and it yielded */
  uint32_t ack_node;       /* a remote link/monitor it waits to see confirmed: the node ... */
  uint64_t ack_ref;        /* ... and the reply it waits for */
  uint32_t call_node;      /* the node of its last call to another node ... */
  uint64_t call_ref;       /* ... and that call's ref (losing the node fails it) */
  struct halo_event **owned;               /* events it produces (event.h) */
  uint32_t nowned, capowned;
  struct halo_evsub { struct halo_event *ev; uint8_t type; } *evsubs; /* its subscriptions */
  uint32_t nevsubs, capevsubs;
};

/** Returns p's extension, allocating it on first use (NULL when out of memory). */
halo_proc_ext_t *halo__proc_ext(halo_proc_t *p);

/** Creates a relation. Errors: HALO_ETARGETEXIST, HALO_ENOTALLOWED (self), HALO_ENOMEM. */
int halo_rel_add(halo_node_t *n, halo_proc_t *watcher, int type, halo_proc_t *target,
                 int tkind, const char *name, uint64_t alias);
/** Removes a relation: 0 or HALO_ETARGETUNKNOWN. */
int halo_rel_remove(halo_node_t *n, halo_proc_t *watcher, int type, int tkind,
                    uint64_t target, const char *name, uint64_t alias);

/** Targets on another node: a PID (name NULL) or a name registered there
 *  (name without the "<CRC." wrapping). Records that watcher links to /
 *  monitors it and asks that node to tell it; the watcher then waits (like
 *  a call, at most HALO_REL_ACK_MS) until that node confirms, so whatever
 *  happens after the wait sees the relation in place. HALO_ETARGETEXIST,
 *  HALO_ENOCONN (no route or no link to that node), HALO_ENOPROC (a PID of
 *  an earlier run of that node). */
int halo_rel_add_remote(halo_node_t *n, halo_proc_t *watcher, int type, halo_pid_t target, const char *name);
/** Drops such a relation (and tells the other node). 0 or HALO_ETARGETUNKNOWN. */
int halo_rel_remove_remote(halo_node_t *n, halo_proc_t *watcher, int type, halo_pid_t target, const char *name);
/** From another node: watcher (there) links to / monitors local target id
 *  (or the process registered as name, when not NULL), confirmed with a
 *  reply to ref (when not 0). When the target does not exist (stale: it
 *  was addressed in an earlier run of this node) the watcher is told at
 *  once ("unknown process"). */
void halo__rel_remote_request(halo_node_t *n, int add, int type, halo_pid_t watcher, uint64_t target, uint64_t ref,
                              const char *name, int stale);
/** An exit or down from a remote target arrived for local watcher: its side
 *  of the relation goes (token: the one of a name or event target, 0 for a PID). */
void halo__rel_remote_fired(halo_node_t *n, halo_proc_t *watcher, int type, halo_pid_t target, uint64_t token);
/** The link to node crc is gone: local watchers of its processes, names and
 *  events get reason (an exit or a down), calls waiting on it fail with
 *  reason, and its watchers of local processes are dropped. */
void halo__rel_node_down(halo_node_t *n, uint32_t crc, const halo_payload_t *reason);

/** Watcher subscribed (by type) to event name of node crc, produced there by
 *  producer; token: what that node's end-of-event notice carries. Its end
 *  (or the node's loss) then reaches the watcher. 0 or HALO_ENOMEM. */
int halo_rel_watch_event(halo_node_t *n, halo_proc_t *watcher, int type, uint32_t crc, uint64_t producer,
                         const char *name, uint64_t token);
/** Drops such a subscription record: 0 or HALO_ETARGETUNKNOWN. */
int halo_rel_unwatch_event(halo_node_t *n, halo_proc_t *watcher, int type, uint32_t crc, const char *name);

/** Calls across nodes. On the caller's node: caller called a process of
 *  node (ref), so losing that node fails the call. */
void halo__rel_call_sent(halo_node_t *n, halo_proc_t *caller, uint32_t node, uint64_t ref);
/** On the callee's node: callee took a call (ref) from caller of another
 *  node and is watched until it replies: its end fails the call with its
 *  reason. 0 or HALO_ENOMEM. */
int halo__rel_call_taken(halo_node_t *n, halo_proc_t *callee, halo_pid_t caller, uint64_t ref);
/** ... callee replied to caller's call ref: the watch goes. */
void halo__rel_call_done(halo_node_t *n, halo_proc_t *callee, halo_pid_t caller, uint64_t ref);
/** Fails the call ref that local process caller waits on with reason (owned
 *  by the callee): caller's halo.call returns at once. 0, or HALO_EIGNORED
 *  when it waits for no such call (reason stays with the caller). */
int halo_proc_call_fail(halo_node_t *n, uint64_t caller, uint64_t ref, halo_payload_t reason);

/** Notifies every watcher of p (all target kinds) with reason and drops
 *  the relations; drops p's own watching relations. */
void halo__rel_fire_all(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason);
/** Notifies watchers of one name or alias of p with reason and drops those relations. */
void halo__rel_fire_target(halo_node_t *n, halo_proc_t *p, int tkind, const char *name,
                           uint64_t alias, const halo_payload_t *reason);
/** Frees p's extension. */
void halo__proc_ext_free(halo_proc_t *p);

#endif
