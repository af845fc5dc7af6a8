/*
 * Pools: a process whose main-queue traffic (messages, calls, events) is
 * forwarded at enqueue time to one of its workers, round-robin, keeping the
 * original sender and ref (so a worker's reply goes straight to the caller).
 * A worker that is gone or whose mailbox is full is skipped; when none can
 * take the message it is dropped, counted as unhandled and logged; the sender
 * already had its success, as in the reference. Urgent and system traffic
 * (exits, downs, inspect) still reach the pool process itself, whose Lua code
 * replaces dead workers. A pool that prefers idle workers first looks, from
 * the round-robin position on, for a worker waiting for its next message
 * with an empty mailbox, so a worker busy in a long call or sleep is passed
 * over while another is free. A call to a pool waits on the worker it went
 * to, so that worker's end aborts it as the end of a callee does.
 */
#ifndef HALO_POOL_H
#define HALO_POOL_H

#include "node.h"

typedef struct halo_pool {
  uint64_t *workers; /* worker process ids, in round-robin order */
  uint32_t nworkers, cap, next;
  int prefer_idle; /* first look for a worker waiting in receive with an empty mailbox */
  uint64_t forwarded, unhandled, restarts;
  uint64_t last; /* the worker the last message went to, 0 when it was dropped (a caller waits on it) */
} halo_pool_t;

/** Makes p a pool with these workers (replacing any earlier list). A worker
 *  may not be p itself. Errors: HALO_ENOTALLOWED, HALO_ENOMEM. */
int halo_pool_set_workers(halo_node_t *n, halo_proc_t *p, const uint64_t *ids, uint32_t count);
/** Turns the idle-first choice of p's pool on or off. HALO_EUNKNOWN when p is not a pool. */
int halo_pool_prefer_idle(halo_proc_t *p, int on);
/** Replaces worker old_id by new_id (a restart, counted). HALO_EUNKNOWN when
 *  old_id is not a worker of p. */
int halo_pool_replace_worker(halo_node_t *n, halo_proc_t *p, uint64_t old_id, uint64_t new_id);
/** p's pool, or NULL when p is not a pool. */
const halo_pool_t *halo_pool_of(const halo_proc_t *p);

/** Forwards a main-queue message sent to pool process p (called by enqueue).
 *  Returns 0 when a worker took it or it was dropped (and released). */
int halo__pool_route(halo_node_t *n, halo_proc_t *p, halo_pid_t from, int kind, uint64_t ref,
                     halo_payload_t pl, uint32_t size);
void halo__pool_free(halo_proc_t *p);

#endif
