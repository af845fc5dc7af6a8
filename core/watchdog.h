/*
 * Watchdog thread. It reads markers the loop thread stores with relaxed
 * atomics (no locks on the hot path) and
 *  - logs once per callback that runs longer than soft_ms (PID, name, behavior);
 *  - logs when the loop has been busy (not waiting in poll) for longer than
 *    hard_ms and calls the stuck handler, if one is set: the program decides
 *    (the halo executable exits with status 70); a library never exits.
 * A report names the running process under the node's wd_mu, so the loop
 * thread cannot free what it reads meanwhile.
 */
#ifndef HALO_WATCHDOG_H
#define HALO_WATCHDOG_H

#include <stdint.h>

#include "node.h"

typedef struct halo_watchdog halo_watchdog_t;

/** Called on the watchdog thread when n's loop is stuck past the hard limit. */
typedef void (*halo_watchdog_stuck_cb)(halo_node_t *n);

/** Sets the stuck handler of every watchdog of the OS process (NULL: report only). */
void halo_watchdog_on_stuck(halo_watchdog_stuck_cb cb);

/** Starts watching n; returns 0 or a negative code. soft/hard 0: defaults (1 s, 30 s). */
int halo_watchdog_start(halo_node_t *n, uint64_t soft_ms, uint64_t hard_ms);

/** Stops and joins the thread. */
void halo_watchdog_stop(halo_node_t *n);

/** Number of slow-callback reports so far (for tests). */
uint64_t halo_watchdog_reports(halo_node_t *n);

#endif
