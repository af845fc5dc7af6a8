/*
 * Timers on the node's libuv loop: the wait timer of a suspended process
 * (call timeout, sleep, receive timeout, spawn timeout) and send_after
 * timers, which belong to the process that armed them and are cancelled when
 * it ends. uv_timer_t handles are pooled: a handle is closed only when the
 * node closes.
 */
#ifndef HALO_TIMER_H
#define HALO_TIMER_H

#include <uv.h>

#include "node.h"

struct halo_timer {
  uv_timer_t h;
  halo_node_t *node;
  uint64_t id;             /* send_after timers; 0 for wait timers */
  halo_proc_t *owner;
  halo_timer_t *onext, *oprev; /* owner's send_after timers */
  halo_pid_t to;
  halo_payload_t payload;
  uint32_t size;
  halo_timer_t *free_next;
};

/** Arms p's wait timer for ms; when it fires p is woken with HALO_WAKE_TIMEOUT. */
int halo_timer_wait_start(halo_node_t *n, halo_proc_t *p, uint64_t ms);
/** Disarms p's wait timer, if any. */
void halo_timer_wait_stop(halo_node_t *n, halo_proc_t *p);

/** Sends pl to `to` after ms on behalf of owner; returns the timer id (> 0) or an error.
 *  The payload belongs to the timer from then on. */
int64_t halo_timer_send_after(halo_node_t *n, halo_proc_t *owner, halo_pid_t to,
                              halo_payload_t pl, uint32_t size, uint64_t ms);
/** Cancels a send_after timer of owner: 0, or HALO_ETARGETUNKNOWN when it has fired or never existed. */
int halo_timer_cancel(halo_node_t *n, halo_proc_t *owner, uint64_t id);
/** Cancels every send_after timer of owner (it is ending). */
void halo_timer_cancel_all(halo_node_t *n, halo_proc_t *owner);
/** Closes the pooled handles (node closing). */
void halo_timer_close_all(halo_node_t *n);

#endif
