/*
 * The collector's pacing: halo takes LuaJIT's incremental collector steps
 * itself, between two process slices, where it can time them.
 *
 * LuaJIT runs a collector step inside whichever allocation crosses its
 * trigger, in the middle of a process's code, and has no hook around it:
 * neither its length nor its share of the CPU can be measured there, and
 * the process that happened to allocate is billed for it. Through the
 * public lua_gc API halo can instead (1) run a step that pays the debt of
 * the bytes allocated since the previous one (LUA_GCSTEP n: the work n KB
 * of allocation would have paid for, LuaJIT's own pacing), timed, and (2)
 * move LuaJIT's own trigger out of the way (LUA_GCSETPAUSE then
 * LUA_GCRESTART -1 puts it a margin past the paced one). After each
 * slice (hb_gc_slice, from hook_run): while a cycle is under way, a step
 * once GC_BATCH bytes were allocated since the last; otherwise a new cycle
 * once the heap has grown to the pause setting's percent of what the last
 * cycle left (LuaJIT's rule), so the collector does the same work on the
 * same schedule, only at slice boundaries.
 *
 * LuaJIT's trigger stays as the backstop, a quarter of the live heap past
 * the paced one: a slice that allocates more than that before it yields
 * gets LuaJIT's own steps inside it, as before; those are not timed
 * (runtime_stats shows how many cycles ended so: the sentinel's count of
 * cycles less those the paced steps ended).
 * A finalizer that raises ends the step through the gate (logged against
 * the node): a process is never billed for another's garbage. A CPU
 * profile counts a step's ticks under the core's mark halo_gc_step: LuaJIT
 * would hand them to its hook at the next Lua instruction, in whichever
 * process runs next.
 */
#include "binding.h"
#include "process.h"
#include "prof.h"

#include <string.h>

#define GC_BATCH (16u * 1024u) /* bytes allocated between two steps of a cycle, at least */
#define MARGIN 4               /* LuaJIT's own trigger: a quarter of the live heap past the paced one */

static uint64_t heap_bytes(halo_binding_t *B) {
  int64_t t = (int64_t)B->gc.total0 + halo_alloc_live(&B->alloc);
  return t > 0 ? (uint64_t)t : 0;
}

static int pause_setting(lua_State *L) {
  int pause = lua_gc(L, LUA_GCSETPAUSE, 200);
  lua_gc(L, LUA_GCSETPAUSE, pause);
  return pause > 0 ? pause : 200;
}

/* Moves LuaJIT's trigger to the backstop: a quarter of the live heap (as
 * the last cycle left it) past the heap while a cycle runs, past the next
 * cycle's start between cycles. A slice that allocates more than that
 * before it yields gets LuaJIT's own steps inside it, so the heap never
 * outgrows LuaJIT's own pacing by much more than the margin. What lies
 * past the trigger LuaJIT's steps pay for: the next paced step pays for
 * the headroom at most. */
static void backstop(halo_binding_t *B, lua_State *L) {
  hb_gc_t *g = &B->gc;
  uint64_t heap = heap_bytes(B);
  uint64_t from = g->active || g->next_total < heap ? heap : g->next_total;
  uint64_t margin = g->live / MARGIN > 4 * GC_BATCH ? g->live / MARGIN : 4 * GC_BATCH;
  uint64_t pct = heap >= 1024 ? (from + margin) / (heap / 100) : 1000;
  if (pct < 101) pct = 101;
  if (pct > 1000000) pct = 1000000;
  int pause = lua_gc(L, LUA_GCSETPAUSE, (int)pct);
  lua_gc(L, LUA_GCRESTART, -1);
  lua_gc(L, LUA_GCSETPAUSE, pause);
  g->headroom = heap / 100 * (pct - 100);
}

/* The next cycle starts at the pause setting's percent of what the cycle
 * left: the heap when its sweep was over (the sentinel's finalizer), or
 * the least heap seen after its steps. LuaJIT uses its estimate of the
 * live heap; the heap when the cycle ends also holds all that was
 * allocated since its atomic phase, and would set the start too late. */
static void cycle_ended(halo_binding_t *B, lua_State *L) {
  hb_gc_t *g = &B->gc;
  uint64_t heap = heap_bytes(B);
  if (g->low && g->low < heap) heap = g->low;
  if (g->swept && g->swept < heap) heap = g->swept;
  g->active = 0;
  g->low = g->swept = 0;
  g->live = heap;
  g->next_total = heap / 100 * (uint64_t)pause_setting(L);
}

void hb_gc_swept(halo_binding_t *B) {
  if (B->gc.on) B->gc.swept = heap_bytes(B);
}

typedef struct step_ctx {
  halo_binding_t *B;
  int kb;
} step_ctx_t;

static int step_body(lua_State *L, void *ud) {
  step_ctx_t *c = ud;
  hb_gc_t *g = &c->B->gc;
  int mark = halo_prof_enter(HALO_PROF_GC); /* a CPU profile's tick here is the step's, not the next process's */
  uint64_t t0 = uv_hrtime();
  int done = lua_gc(L, LUA_GCSTEP, c->kb);
  uint64_t dt = uv_hrtime() - t0;
  g->wall_total += dt;
  halo_prof_leave(mark);
  g->steps++;
  g->last_pause_ns = dt;
  if (dt > g->max_pause_ns) g->max_pause_ns = dt;
  if (done) {
    g->cycles++;
    cycle_ended(c->B, L);
  } else {
    uint64_t heap = heap_bytes(c->B);
    if (!g->low || heap < g->low) g->low = heap;
  }
  backstop(c->B, L);
  g->sentinel = hb_heap_cycles();
  return 0;
}

/* A cycle ended outside the paced steps (LuaJIT's backstop inside a slice,
 * or collectgarbage() from Lua): LuaJIT is back in its pause, and its
 * trigger at the pause setting; a paced step now would start a cycle early. */
static void ended_elsewhere(halo_binding_t *B) {
  hb_gc_t *g = &B->gc;
  g->sentinel = hb_heap_cycles();
  cycle_ended(B, B->L);
  backstop(B, B->L);
  g->last_alloc = B->alloc.allocated;
}

void hb_gc_slice(halo_binding_t *B, halo_proc_t *p) {
  hb_gc_t *g = &B->gc;
  if (!g->on || !lua_gc(B->L, LUA_GCISRUNNING, 0)) return; /* collectgarbage("stop") holds until "restart" */
  if (hb_heap_cycles() != g->sentinel) ended_elsewhere(B);
  uint64_t since = B->alloc.allocated - g->last_alloc;
  if (g->active) {
    if (since < GC_BATCH) return;
  } else {
    if (heap_bytes(B) < g->next_total) return;
    g->active = 1;
    since = 0; /* the new cycle owes nothing for what came before it: a first step starts it */
  }
  g->last_alloc = B->alloc.allocated;
  if (since > g->headroom) since = g->headroom;
  step_ctx_t c = {B, since / 1024 > 1048576 ? 1048576 : (int)(since / 1024)};
  /* on the node's account: no current process (a finalizer's halo.self()
   * is nil), its allocations unowned, its time taken off p's slice */
  halo_node_t *n = &B->node;
  uint64_t *owner = halo_alloc_attribute(&B->alloc, NULL);
  n->current = NULL;
  uint64_t t0 = uv_hrtime();
  hb_gate(B, NULL, "the collector", step_body, &c);
  uint64_t ns = uv_hrtime() - t0;
  n->current = p;
  halo_alloc_attribute(&B->alloc, owner);
  if (n->open == p) n->open_t0 += ns; /* the batch closes p's interval later */
  else p->running_ns -= ns;          /* the scheduler adds the slice's time right after */
}

void hb_gc_start(halo_binding_t *B, lua_State *L, int opts) {
  hb_gc_t *g = &B->gc;
  memset(g, 0, sizeof *g);
  lua_getfield(L, opts, "gc_pacing");
  g->on = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  g->total0 = (uint64_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024u + (uint64_t)lua_gc(L, LUA_GCCOUNTB, 0);
  g->wall0 = uv_hrtime();
  g->idle0 = uv_metrics_idle_time(&B->loop);
  if (!g->on) return;
  g->sentinel = hb_heap_cycles();
  /* The heap at start may hold garbage of earlier work in this Lua state
   * (another node's run): a cycle under way from the start finds what is
   * live, where a first threshold taken from this heap would be late. */
  g->live = g->total0;
  g->next_total = g->total0 / 100 * (uint64_t)pause_setting(L);
  g->active = 1;
  backstop(B, L);
}

int hb_gc_pacing(lua_State *L) {
  halo_binding_t *B = halo__B;
  if (!B) return luaL_error(L, "core.heap.pacing: no node runs");
  hb_gc_t *g = &B->gc;
  if (!lua_isnoneornil(L, 1)) {
    int on = lua_toboolean(L, 1);
    if (on && !g->on) {
      g->on = 1;
      ended_elsewhere(B); /* LuaJIT's own steps may be midway: the model starts over */
    } else if (!on && g->on) {
      g->on = 0;
      g->active = 0;
      lua_gc(B->L, LUA_GCRESTART, -1);
    }
  }
  lua_pushboolean(L, g->on);
  return 1;
}

void hb_gc_stop(halo_binding_t *B, lua_State *L) {
  if (B->gc.on) lua_gc(L, LUA_GCRESTART, -1); /* LuaJIT's own trigger again, at the pause setting */
  B->gc.on = 0;
}

void hb_gc_push_stats(halo_binding_t *B, lua_State *L) {
  hb_gc_t *g = &B->gc;
  /* the share: time in steps over the time the loop was busy (not waiting
   * in its poll for I/O or timers); both are wall time, so a machine whose
   * other jobs preempt the node stretches both alike */
  uint64_t idle = uv_metrics_idle_time(&B->loop) - g->idle0, wall = uv_hrtime() - g->wall0;
  uint64_t busy = wall > idle ? wall - idle : 0;
  lua_createtable(L, 0, 8);
  lua_pushboolean(L, g->on);
  lua_setfield(L, -2, "pacing");
  lua_pushboolean(L, g->active);
  lua_setfield(L, -2, "active");
  lua_pushnumber(L, (lua_Number)g->steps);
  lua_setfield(L, -2, "steps");
  lua_pushnumber(L, (lua_Number)g->cycles);
  lua_setfield(L, -2, "cycles");
  lua_pushnumber(L, (lua_Number)g->wall_total);
  lua_setfield(L, -2, "ns_total");
  lua_pushnumber(L, (lua_Number)g->last_pause_ns);
  lua_setfield(L, -2, "last_pause_ns");
  lua_pushnumber(L, (lua_Number)g->max_pause_ns);
  lua_setfield(L, -2, "max_pause_ns");
  lua_pushnumber(L, (lua_Number)busy);
  lua_setfield(L, -2, "busy_ns");
  lua_pushnumber(L, busy ? (lua_Number)g->wall_total * 100.0 / (lua_Number)busy : 0.0);
  lua_setfield(L, -2, "cpu_percent");
}
