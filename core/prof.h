/*
 * What the event loop's thread is doing, for the CPU profiler.
 *
 * The core marks its phases in one word (halo_prof_enter / halo_prof_leave
 * around each, nesting restored on leave): Lua (inside the gate: process
 * code and hooks), the scheduler's slice, a network link's read, the HTTP
 * server's read, libuv's poll phase. The mark is one
 * relaxed atomic store, so it stays on whether a profile runs or not.
 *
 * LuaJIT's profiler (jit.profile) samples by SIGPROF on ITIMER_PROF: CPU
 * time, not wall time, so an idle loop blocked in epoll costs no sample.
 * While a profile runs, halo_prof_hook chains a handler in front of
 * LuaJIT's: a tick that lands while the mark says Lua goes on to LuaJIT
 * (whose callback then reads the Lua stack of the coroutine concerned); any
 * other tick is counted here under its mark and never reaches LuaJIT, which
 * would otherwise attribute core C time to whatever Lua code runs next.
 * Sampling the mark from the signal (rather than a timer on the loop, which
 * only runs between callbacks, or a thread polling the word, which counts
 * wall time) gives C samples on the same CPU clock and at the same rate as
 * the Lua ones, so the two add up into one profile.
 */
#ifndef HALO_PROF_H
#define HALO_PROF_H

#include <stdint.h>

enum {
  HALO_PROF_LOOP,   /* libuv and core code not otherwise marked */
  HALO_PROF_LUA,    /* inside the gate: LuaJIT's profiler takes these ticks */
  HALO_PROF_SCHED,  /* the scheduler's slice, between processes */
  HALO_PROF_NET,    /* a cluster link's read: frames, decompression, delivery */
  HALO_PROF_HTTPD,  /* the HTTP server's read: parsing, routing */
  HALO_PROF_POLL,   /* libuv's poll phase: epoll and I/O dispatch */
  HALO_PROF_GC,     /* a collector step halo paces between slices (bindings/gc.c) */
  HALO_PROF_THREAD, /* not a mark: a tick that landed on another thread (libuv's pool, the watchdog) */
  HALO_PROF_NMARKS
};

extern int halo_prof_mark_;

/** Sets the mark; returns the previous one for halo_prof_leave. */
static inline int halo_prof_enter(int mark) {
  int old = __atomic_load_n(&halo_prof_mark_, __ATOMIC_RELAXED);
  __atomic_store_n(&halo_prof_mark_, mark, __ATOMIC_RELAXED);
  return old;
}

static inline void halo_prof_leave(int old) { __atomic_store_n(&halo_prof_mark_, old, __ATOMIC_RELAXED); }

/** The C-function-like name of a mark ("halo_sched_slice", ...). */
const char *halo_prof_mark_name(int mark);
/** The core file a mark stands for ("core/scheduler.c", ...). */
const char *halo_prof_mark_file(int mark);

/** Puts the mark-counting handler in front of the current SIGPROF handler
 *  (call on the loop thread right after LuaJIT's profiler started) and
 *  zeroes the counts. Ticks that land on other threads are counted under
 *  HALO_PROF_THREAD.
 *  Returns 0, HALO_ETAKEN when already hooked, or a negative errno. */
int halo_prof_hook(void);

/** Gives SIGPROF back to the handler found by halo_prof_hook (call before
 *  LuaJIT's profiler stops). Returns 0 or HALO_EINCORRECT when not hooked. */
int halo_prof_unhook(void);

/** Ticks counted per mark since the hook (HALO_PROF_LUA stays 0: those went
 *  to LuaJIT). */
void halo_prof_ticks(uint64_t out[HALO_PROF_NMARKS]);

#endif
