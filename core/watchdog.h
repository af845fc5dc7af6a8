/*
 * Watchdog thread. It reads markers the loop thread stores with relaxed
 * atomics (no locks on the hot path) and
 *  - logs once per callback that runs longer than soft_ms (PID, name, behavior);
 *  - logs and exits the OS process with status 70 when the loop has been
 *    busy (not waiting in poll) for longer than hard_ms.
 */
#ifndef HALO_WATCHDOG_H
#define HALO_WATCHDOG_H

#include <stdint.h>

#include "node.h"

typedef struct halo_watchdog halo_watchdog_t;

/** Starts watching n; returns 0 or a negative code. soft/hard 0: defaults (1 s, 30 s). */
int halo_watchdog_start(halo_node_t *n, uint64_t soft_ms, uint64_t hard_ms);

/** Stops and joins the thread. */
void halo_watchdog_stop(halo_node_t *n);

/** Number of slow-callback reports so far (for tests). */
uint64_t halo_watchdog_reports(halo_node_t *n);

#endif
