/*
 * The scheduler: a FIFO run queue of ready processes, drained from a libuv
 * idle callback for a bounded slice per loop iteration, each process for a
 * bounded batch of messages, so timers and I/O are never starved and a
 * flooding process cannot keep a quiet one waiting for more than one turn.
 */
#ifndef HALO_SCHEDULER_H
#define HALO_SCHEDULER_H

#include "node.h"

/** Puts p at the tail of the run queue (no-op when already queued). */
void halo_sched_ready(halo_node_t *n, halo_proc_t *p);

/** Makes a waiting process runnable with a wake reason. */
void halo_sched_wake(halo_node_t *n, halo_proc_t *p, int wake);

/** Runs p once through the host's run hook with accounting (nested calls
 *  are allowed: the previous current process is restored). */
int halo__sched_run(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg);

/** Handles the outcome of a run: state changes, termination, requeue. */
void halo__sched_after(halo_node_t *n, halo_proc_t *p, int rc);

/** 1 when p has work: a wait that ended, or messages while it receives. */
int halo__sched_runnable(const halo_proc_t *p);

/** Makes sure the scheduler runs at the next loop iteration. */
void halo__node_kick(halo_node_t *n);

/** One scheduler slice (the idle callback body); exposed for tests. */
void halo_sched_slice(halo_node_t *n);

#endif
