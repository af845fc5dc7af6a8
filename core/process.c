#include "process.h"
#include "clock.h"
#include "errors.h"
#include "log.h"
#include "node.h"
#include "rel.h"
#include "pool.h"
#include "event.h"
#include "scheduler.h"
#include "timer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FREE_PROCS_MAX 4096

static const char *const state_names[] = {"init", "sleep", "running", "wait response",
                                          "terminated", "zombee"};

const char *halo_state_name(int state) {
  switch (state) {
  case HALO_STATE_INIT:
  case HALO_STATE_SLEEP:
  case HALO_STATE_RUNNING:
  case HALO_STATE_WAIT:
  case HALO_STATE_TERMINATED:
  case HALO_STATE_ZOMBEE: return state_names[halo_state_index(state)];
  default: return "unknown";
  }
}

void halo__proc_set_state(halo_node_t *n, halo_proc_t *p, int state) {
  /* Zombee is final: a killed callback that goes on to call or spawn before
   * it suspends must not look alive ("wait response") again. */
  if (p->state == state || p->state == HALO_STATE_ZOMBEE) return;
  if (p->state) n->state_count[halo_state_index(p->state)]--;
  n->state_count[halo_state_index(state)]++;
  p->state = (uint8_t)state;
  p->t_state = n->now;
}

halo_proc_t *halo_proc_find(halo_node_t *n, uint64_t id) { return halo_imap_get(&n->procs, id); }

/* -- Spawn ----------------------------------------------------------------- */

int halo_proc_spawn(halo_node_t *n, const halo_spawn_opts_t *o, halo_proc_t **out) {
  halo_proc_t *p;
  if (n->stopping) {
    n->counters.spawn_failed++;
    return HALO_ENODESTOP;
  }
  if (o->name && (!*o->name || halo_smap_get(&n->names, o->name))) {
    n->counters.spawn_failed++;
    return *o->name ? HALO_ETAKEN : HALO_EINCORRECT;
  }
  halo__node_wd_lock(n);
  if (n->free_procs) {
    p = n->free_procs;
    n->free_procs = p->next;
    n->nfree_procs--;
  } else if (!(p = malloc(sizeof *p))) {
    halo__node_wd_unlock(n);
    n->counters.spawn_failed++;
    return HALO_ENOMEM;
  }
  memset(p, 0, sizeof *p);
  p->id = ++n->next_id;
  halo__node_wd_unlock(n); /* the other fields it reads are set before any callback runs */
  if (halo_imap_put(&n->procs, p->id, p)) {
    free(p);
    n->counters.spawn_failed++;
    return HALO_ENOMEM;
  }
  halo_mailbox_init(&p->mb, o->mailbox_limit);
  n->now = halo_clock_ns();
  p->t_spawn = n->now;
  halo__proc_set_state(n, p, HALO_STATE_INIT);
  p->parent = halo_node_pid(n, o->parent ? o->parent->id : 1);
  if (o->leader.id) p->leader = o->leader;
  else p->leader = o->parent ? o->parent->leader : halo_node_pid(n, 1);
  if (o->log_level != HALO_LOG_DEFAULT) p->log_level = (int8_t)o->log_level;
  else p->log_level = (int8_t)(o->parent ? o->parent->log_level : n->log.level);
  p->behavior = halo_node_intern(n, o->behavior ? o->behavior : "function");
  p->kind = halo_node_intern(n, o->kind ? o->kind : "actor");
  /* A process belongs to its parent's application unless told otherwise. */
  p->application = o->application ? halo_node_intern(n, o->application)
                                  : o->parent ? halo_node_intern_ref(o->parent->application)
                                              : halo_node_intern(n, "");
  if (o->func) p->flags |= HALO_PF_FUNC;
  p->prev = n->last;
  if (n->last) n->last->next = p;
  else n->first = p;
  n->last = p;
  n->nprocs++;
  if (o->name) halo_name_register(n, p, o->name);
  if (o->parent && o->link_parent) halo_rel_add(n, p, HALO_REL_LINK, o->parent, HALO_TARGET_PID, NULL, 0);
  if (o->parent && o->link_child) p->flags |= HALO_PF_LINK_CHILD;
  if (o->parent && o->monitor) halo_rel_add(n, o->parent, HALO_REL_MONITOR, p, HALO_TARGET_PID, NULL, 0);
  *out = p;
  return 0;
}

/* Tells a process waiting in halo_proc_wait_spawn() how its child's init ended. */
static void notify_spawner(halo_node_t *n, halo_proc_t *child, const halo_payload_t *reason) {
  if (!child->ext || !child->ext->spawner) return;
  halo_proc_t *s = halo_proc_find(n, child->ext->spawner);
  child->ext->spawner = 0;
  if (!s || s->wait != HALO_WAIT_SPAWN || s->wait_ref != child->id || s->wake) return;
  halo_timer_wait_stop(n, s);
  if (reason) s->result = n->hooks.dup(n, reason);
  halo_sched_wake(n, s, reason ? HALO_WAKE_ERROR : HALO_WAKE_REPLY);
}

void halo__proc_init_done(halo_node_t *n, halo_proc_t *p) {
  if (p->flags & HALO_PF_LINK_CHILD) {
    halo_proc_t *parent = halo_proc_find(n, p->parent.id);
    if (parent && parent->state < HALO_STATE_TERMINATED)
      halo_rel_add(n, parent, HALO_REL_LINK, p, HALO_TARGET_PID, NULL, 0);
  }
  p->init_ns = n->now - p->t_spawn;
  p->wakeups++; /* the post-init kick counts as a wake-up, as in the reference */
  n->counters.spawned++;
  notify_spawner(n, p, NULL);
}

int halo_proc_start(halo_node_t *n, halo_proc_t *p, halo_payload_t *reason) {
  uint64_t id = p->id;
  p->depth = n->current ? (uint8_t)(n->current->depth + 1) : 0;
  /* A function process has no init: it is started (InitTime 0) before its body runs. */
  if (p->flags & HALO_PF_FUNC) {
    halo__proc_set_state(n, p, HALO_STATE_RUNNING);
    p->flags |= HALO_PF_STARTED;
    halo__proc_init_done(n, p);
  }
  int rc = halo__sched_run(n, p, NULL);
  if (rc == HALO_RUN_EXITED && reason) *reason = n->hooks.dup(n, &p->result);
  halo__sched_after(n, p, rc);
  if (rc != HALO_RUN_EXITED && halo_proc_find(n, id) == p && halo__sched_runnable(p))
    halo_sched_ready(n, p);
  return rc;
}

/* -- Messages ---------------------------------------------------------------- */

int halo__enqueue(halo_node_t *n, halo_pid_t from, halo_proc_t *to, int kind, int queue,
                  uint64_t ref, halo_payload_t pl, uint32_t size) {
  if (to->state >= HALO_STATE_TERMINATED) return HALO_ETERMINATED;
  if (to->ext && to->ext->pool && queue == HALO_Q_MAIN && (kind & 0xff) <= HALO_MSG_EVENT)
    return halo__pool_route(n, to, from, kind, ref, pl, size);
  halo_msg_t *m = halo_msgpool_get(&n->msgs);
  if (!m) return HALO_ENOMEM;
  m->from = from;
  m->ref = ref;
  m->t_enq = halo_clock_ns();
  m->pval = pl.val;
  m->ptag = pl.tag;
  m->size = size;
  m->kind = (uint8_t)kind;
  m->flags = (uint8_t)(kind >> HALO_KIND_FLAGS_SHIFT);
  int rc = halo_mailbox_push(&to->mb, queue, m);
  if (rc) {
    halo_msgpool_put(&n->msgs, m);
    return rc;
  }
  to->msgs_in++;
  if (to->state == HALO_STATE_SLEEP) {
    halo__proc_set_state(n, to, HALO_STATE_RUNNING);
    to->wakeups++;
    halo_sched_ready(n, to);
  }
  return 0;
}

void halo_log_proc_msg(halo_node_t *n, halo_proc_t *p, int level, const char *msg, size_t len) {
  int active = p ? p->log_level : n->log.level;
  if (level < active || level >= HALO_LOG_DISABLED) return;
  halo_log_record_t rec = {0};
  rec.time = halo_clock_wall_ns();
  rec.level = level;
  if (p) {
    rec.pid = halo_node_pid(n, p->id);
    rec.name = p->name;
    rec.behavior = p->behavior;
  }
  rec.msg = msg;
  rec.len = len;
  halo_log_emit(&n->log, &rec);
}

void halo_log_proc(halo_node_t *n, halo_proc_t *p, int level, const char *fmt, ...) {
  int active = p ? p->log_level : n->log.level;
  if (level < active || level >= HALO_LOG_DISABLED) return; /* before formatting */
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (len < 0) return;
  halo_log_proc_msg(n, p, level, buf, (size_t)len < sizeof buf ? (size_t)len : sizeof buf - 1);
}

int halo_send_proc(halo_node_t *n, halo_proc_t *from, halo_proc_t *to, int kind, int queue,
                   uint64_t ref, halo_payload_t pl, uint32_t size) {
  halo_pid_t fp = halo_node_pid(n, from ? from->id : 1);
  int rc = halo__enqueue(n, fp, to, kind, queue, ref, pl, size);
  if (rc) n->counters.send_errors_local++;
  else if (from) from->msgs_out++;
  return rc;
}

/* Routes without counting errors; the callers count them as send or call errors. */
static int route(halo_node_t *n, halo_proc_t *from, halo_pid_t to, int kind, int queue,
                 uint64_t ref, halo_payload_t pl, uint32_t size, int *remote) {
  int rc;
  *remote = to.node != n->crc;
  if (*remote) {
    if (!n->route) return HALO_ENOCONN;
    rc = n->route->send(n->route->ud, n, from, to, kind, queue, ref, pl, size);
  } else {
    halo_proc_t *t = halo_proc_find(n, to.id);
    if (!t) return HALO_ENOPROC;
    rc = halo__enqueue(n, halo_node_pid(n, from ? from->id : 1), t, kind, queue, ref, pl, size);
  }
  if (!rc && from) from->msgs_out++;
  return rc;
}

int halo_send(halo_node_t *n, halo_proc_t *from, halo_pid_t to, int kind, int queue,
              uint64_t ref, halo_payload_t pl, uint32_t size) {
  int remote, rc = route(n, from, to, kind, queue, ref, pl, size, &remote);
  if (rc) {
    if (remote) n->counters.send_errors_remote++;
    else n->counters.send_errors_local++;
  }
  return rc;
}

int halo_send_name(halo_node_t *n, halo_proc_t *from, uint32_t node, const char *name, int kind, int queue,
                   halo_payload_t pl, uint32_t size) {
  int rc = n->route && n->route->send_name
               ? n->route->send_name(n->route->ud, n, from, node, name, kind, queue, 0, pl, size)
               : HALO_ENOCONN;
  if (rc) n->counters.send_errors_remote++;
  else if (from) from->msgs_out++;
  return rc;
}

static int64_t call_to(halo_node_t *n, halo_proc_t *p, halo_pid_t to, const char *name, int kind, int queue,
                       halo_payload_t request, uint32_t size, uint64_t timeout_ms);

/* The caller of call e to local process p if it still waits for that reply, else NULL. */
static halo_proc_t *waiting(halo_node_t *n, const struct halo_caller *e, const halo_proc_t *p) {
  halo_proc_t *c = halo_proc_find(n, e->id);
  return c && c->wait == HALO_WAIT_REPLY && !c->wake && c->wait_ref == e->ref && c->wait_pid.node == n->crc &&
                 c->wait_pid.id == p->id
             ? c
             : NULL;
}

/* Notes that caller waits for callee's reply (the callee's end aborts the
 * call). Entries of calls no longer waited for (answered, timed out) are
 * dropped when the list is full, so a long-lived server's list stays as long
 * as its pending calls. */
static void add_caller(halo_node_t *n, halo_proc_t *callee, halo_proc_t *caller) {
  halo_proc_ext_t *x = callee ? halo__proc_ext(callee) : NULL;
  if (!x) return; /* out of memory: the call still ends by reply or timeout */
  if (x->ncallers == x->capcallers) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < x->ncallers; i++)
      if (waiting(n, &x->callers[i], callee)) x->callers[k++] = x->callers[i];
    x->ncallers = k;
    if (k >= x->capcallers / 2) { /* mostly still waiting: grow */
      uint32_t nc = x->capcallers ? x->capcallers * 2 : 4;
      struct halo_caller *v = realloc(x->callers, nc * sizeof *v);
      if (!v) return;
      x->callers = v;
      x->capcallers = nc;
    }
  }
  x->callers[x->ncallers++] = (struct halo_caller){caller->id, caller->wait_ref};
}

int64_t halo_call(halo_node_t *n, halo_proc_t *p, halo_pid_t to, int kind, int queue,
                  halo_payload_t request, uint32_t size, uint64_t timeout_ms) {
  return call_to(n, p, to, NULL, kind, queue, request, size, timeout_ms);
}

int64_t halo_call_name(halo_node_t *n, halo_proc_t *p, uint32_t node, const char *name, int kind, int queue,
                       halo_payload_t request, uint32_t size, uint64_t timeout_ms) {
  return call_to(n, p, (halo_pid_t){node, 0}, name, kind, queue, request, size, timeout_ms);
}

static int64_t call_to(halo_node_t *n, halo_proc_t *p, halo_pid_t to, const char *name, int kind, int queue,
                       halo_payload_t request, uint32_t size, uint64_t timeout_ms) {
  int remote, rc;
  if (!name && to.node == n->crc && to.id == p->id) {
    n->counters.call_errors_local++;
    return HALO_ENOTALLOWED;
  }
  if (kind == HALO_MSG_INSPECT && to.node != n->crc) { /* peers refuse it: a node inspects its own */
    n->counters.call_errors_remote++;
    return HALO_ENOTALLOWED;
  }
  uint64_t ref = ++n->next_ref;
  /* Arm the timer first: once routed, the request belongs to the receiver
   * and a failure after that point could not hand it back. */
  rc = halo_timer_wait_start(n, p, timeout_ms);
  if (rc) {
    n->counters.call_errors_local++;
    return rc;
  }
  if (!name && to.node == n->crc) { /* a pool notes the worker this call goes to (below) */
    halo_proc_t *t = halo_proc_find(n, to.id);
    if (t && t->ext && t->ext->pool) t->ext->pool->last = 0;
  }
  if (name) { /* a name on another node */
    remote = 1;
    rc = n->route && n->route->send_name
             ? n->route->send_name(n->route->ud, n, p, to.node, name, kind, queue, ref, request, size)
             : HALO_ENOCONN;
    if (!rc) p->msgs_out++;
  } else {
    rc = route(n, p, to, kind, queue, ref, request, size, &remote);
  }
  if (rc) {
    halo_timer_wait_stop(n, p);
    if (remote) n->counters.call_errors_remote++;
    else n->counters.call_errors_local++;
    return rc;
  }
  p->wait = HALO_WAIT_REPLY;
  p->wait_for = kind == HALO_MSG_INSPECT ? HALO_FOR_INSPECT : HALO_FOR_CALL;
  p->wait_ref = ref;
  p->wait_state = p->state;
  halo__proc_set_state(n, p, HALO_STATE_WAIT);
  if (!remote) {
    /* a pool's worker answers: the caller waits on it (pools of pools too),
     * so the end of that worker aborts the call */
    halo_proc_t *callee = halo_proc_find(n, to.id);
    for (int hop = 0; hop < 8 && callee && callee->ext && callee->ext->pool && callee->ext->pool->last; hop++) {
      halo_proc_t *w = halo_proc_find(n, callee->ext->pool->last);
      if (!w) break;
      callee = w;
    }
    if (callee) to.id = callee->id;
    add_caller(n, callee, p);
  }
  p->wait_pid = to;
  return (int64_t)ref;
}

int halo_call_abort(halo_node_t *n, halo_proc_t *caller, uint64_t ref, const halo_payload_t *reason) {
  if (caller->wait != HALO_WAIT_REPLY || caller->wait_ref != ref || caller->wake) return HALO_EIGNORED;
  halo_timer_wait_stop(n, caller);
  if (caller->state == HALO_STATE_ZOMBEE) {
    halo__proc_reap(n, caller);
    return 0;
  }
  if (caller->wait_pid.node == n->crc) n->counters.call_errors_local++;
  else n->counters.call_errors_remote++;
  caller->result = n->hooks.dup(n, reason);
  halo_sched_wake(n, caller, HALO_WAKE_ENDED);
  return 0;
}

void halo_call_abort_all(halo_node_t *n, halo_pid_t callee, const halo_payload_t *reason) {
  for (halo_proc_t *c = n->first, *next; c; c = next) {
    next = c->next;
    if (c->wait == HALO_WAIT_REPLY && c->wait_pid.node == callee.node &&
        (!callee.id || c->wait_pid.id == callee.id))
      halo_call_abort(n, c, c->wait_ref, reason);
  }
}

/* The callers of p that still wait for its reply learn that it ended. */
static void abort_callers(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason) {
  halo_proc_ext_t *x = p->ext;
  if (!x || !x->ncallers) return;
  struct halo_caller *v = x->callers;
  uint32_t len = x->ncallers;
  x->callers = NULL;
  x->ncallers = x->capcallers = 0;
  for (uint32_t i = 0; i < len; i++) {
    halo_proc_t *c = waiting(n, &v[i], p);
    if (c) halo_call_abort(n, c, v[i].ref, reason);
  }
  free(v);
}

int halo_reply(halo_node_t *n, halo_proc_t *from, halo_pid_t to, uint64_t ref, halo_payload_t pl) {
  if (to.node != n->crc) {
    /* The cluster layer carries replies; without it there is no route. */
    if (!n->route) return HALO_ENOCONN;
    int rc = n->route->send(n->route->ud, n, from, to, HALO_MSG_REPLY, HALO_Q_URGENT, ref, pl, 0);
    if (!rc && from) from->msgs_out++;
    return rc;
  }
  halo_proc_t *t = halo_proc_find(n, to.id);
  if (!t) {
    n->counters.late_replies++;
    return HALO_ENOPROC;
  }
  if (t->wait != HALO_WAIT_REPLY || t->wait_ref != ref || t->wake) {
    n->counters.late_replies++;
    return HALO_EIGNORED;
  }
  halo_timer_wait_stop(n, t);
  t->msgs_in++;
  if (from) from->msgs_out++;
  if (t->state == HALO_STATE_ZOMBEE) {
    n->hooks.release(n, pl);
    halo__proc_reap(n, t);
    return 0;
  }
  t->result = pl;
  halo_sched_wake(n, t, HALO_WAKE_REPLY);
  return 0;
}

/* -- Waiting ----------------------------------------------------------------- */

int halo_proc_sleep(halo_node_t *n, halo_proc_t *p, uint64_t ms) {
  int rc = halo_timer_wait_start(n, p, ms);
  if (rc) return rc;
  p->wait = HALO_WAIT_SLEEP;
  p->wait_state = p->state;
  return 0;
}

int halo_proc_yield(halo_node_t *n, halo_proc_t *p) {
  (void)n;
  p->wait = HALO_WAIT_SLEEP;
  p->wait_state = p->state;
  if (p->ext && p->ext->throttled) { /* parked: the congested link wakes it */
    p->ext->throttled = HALO_PARKED;
    return 0;
  }
  p->wake = HALO_WAKE_TIMEOUT; /* runnable at once, after the others in the queue */
  return 0;
}

int halo_proc_receive(halo_node_t *n, halo_proc_t *p, uint64_t ms) {
  p->wait = HALO_WAIT_RECEIVE;
  if (ms != UINT64_MAX && !halo_mailbox_len(&p->mb)) return halo_timer_wait_start(n, p, ms);
  return 0;
}

int halo_proc_wait_spawn(halo_node_t *n, halo_proc_t *p, halo_proc_t *child, uint64_t timeout_ms) {
  halo_proc_ext_t *x = halo__proc_ext(child);
  if (!x) return HALO_ENOMEM;
  int rc = halo_timer_wait_start(n, p, timeout_ms);
  if (rc) return rc;
  x->spawner = p->id;
  p->wait = HALO_WAIT_SPAWN;
  p->wait_ref = child->id;
  p->wait_state = p->state;
  halo__proc_set_state(n, p, HALO_STATE_WAIT);
  return 0;
}

/* -- Termination ----------------------------------------------------------- */

static void free_record(halo_node_t *n, halo_proc_t *p) {
  halo_imap_del(&n->procs, p->id);
  if (p->prev) p->prev->next = p->next;
  else n->first = p->next;
  if (p->next) p->next->prev = p->prev;
  else n->last = p->prev;
  n->nprocs--;
  n->state_count[halo_state_index(p->state)]--;
  if (n->hooks.free) n->hooks.free(n, p);
  halo__proc_ext_free(p);
  halo_mailbox_destroy(&p->mb);
  halo__node_wd_lock(n);
  halo_node_unintern(n, p->behavior);
  halo_node_unintern(n, p->kind);
  halo_node_unintern(n, p->application);
  p->behavior = p->kind = p->application = NULL;
  free(p->name);
  p->name = NULL;
  p->id = 0;
  /* A record still linked in the run queue is recycled when popped. */
  if (!(p->flags & HALO_PF_RUNQ)) halo__proc_recycle(n, p);
  halo__node_wd_unlock(n);
}

void halo__proc_recycle(halo_node_t *n, halo_proc_t *p) {
  if (n->nfree_procs < FREE_PROCS_MAX) {
    p->next = n->free_procs;
    n->free_procs = p;
    n->nfree_procs++;
  } else {
    free(p);
  }
}

static void drain_mailbox(halo_node_t *n, halo_proc_t *p) {
  halo_msg_t *m;
  while ((m = halo_mailbox_pop(&p->mb))) {
    halo_payload_t pl = {m->pval, m->ptag};
    if (pl.tag) n->hooks.release(n, pl);
    halo_msgpool_put(&n->msgs, m);
  }
}

void halo__proc_terminate(halo_node_t *n, halo_proc_t *p, halo_payload_t reason, int zombee) {
  int in_init = !(p->flags & HALO_PF_STARTED);
  if (p->result.tag) {
    n->hooks.release(n, p->result);
    p->result.tag = 0;
  }
  halo__proc_set_state(n, p, zombee ? HALO_STATE_ZOMBEE : HALO_STATE_TERMINATED);
  p->flags |= HALO_PF_DEAD;
  if (p->t_suspend) { /* its time inside the callback ends here: a zombee never runs again */
    uint64_t now = halo_clock_ns();
    if (now > p->t_suspend) p->running_ns += now - p->t_suspend;
    p->t_suspend = 0;
  }
  if (!zombee && n->hooks.terminate) {
    halo_proc_t *prev = n->current;
    n->current = p;
    n->hooks.terminate(n, p, &reason);
    n->current = prev;
  }
  halo__rel_fire_all(n, p, &reason);
  if (n->hooks.ended) n->hooks.ended(n, p);
  abort_callers(n, p, &reason);
  if (p->ext && (p->ext->nowned || p->ext->nevsubs)) halo__event_proc_ended(n, p, &reason);
  if (n->log.nloggers) halo_log_remove_process(&n->log, p->id);
  if (p->name) {
    halo_smap_del(&n->names, p->name);
    halo__node_wd_lock(n);
    free(p->name);
    p->name = NULL;
    halo__node_wd_unlock(n);
  }
  if (p->ext) {
    for (uint32_t i = 0; i < p->ext->naliases; i++) halo_imap_del(&n->aliases, p->ext->aliases[i]);
    p->ext->naliases = 0;
  }
  halo_timer_cancel_all(n, p);
  /* A zombee keeps its wait: its record goes when the wait ends (timer,
   * reply, child's init) or, when it runs right now, when the run returns. */
  if (!zombee) halo_timer_wait_stop(n, p);
  drain_mailbox(n, p);
  if (in_init) {
    n->counters.spawn_failed++;
    notify_spawner(n, p, &reason);
  }
  else if (p->ext) p->ext->spawner = 0;
  n->hooks.release(n, reason);
  if (!in_init) n->counters.terminated++;
  if (!zombee) free_record(n, p);
  if (n->auto_stop && !n->stopping && halo_node_alive(n) == 0) halo_node_stop(n, n->exit_code);
}

void halo__proc_reap(halo_node_t *n, halo_proc_t *p) {
  halo_timer_wait_stop(n, p);
  if (p->result.tag) {
    n->hooks.release(n, p->result);
    p->result.tag = 0;
  }
  p->wait = HALO_WAIT_NONE;
  if (p->flags & HALO_PF_ACTIVE) return; /* reaped when its run returns */
  free_record(n, p);
}

void halo_proc_exit(halo_node_t *n, halo_proc_t *p, halo_payload_t reason) {
  if (p->state >= HALO_STATE_TERMINATED) {
    n->hooks.release(n, reason);
    if (p->state == HALO_STATE_ZOMBEE) halo__proc_reap(n, p);
    return;
  }
  halo_timer_wait_stop(n, p);
  halo__proc_terminate(n, p, reason, 0);
}

int halo_proc_kill(halo_node_t *n, halo_proc_t *p) {
  if (p->state >= HALO_STATE_TERMINATED) return 0;
  return halo_proc_end(n, p, n->hooks.reason(n, "kill"));
}

int halo_proc_end(halo_node_t *n, halo_proc_t *p, halo_payload_t reason) {
  if (p->state >= HALO_STATE_TERMINATED) {
    n->hooks.release(n, reason);
    return 0;
  }
  int inside = (p->flags & HALO_PF_ACTIVE) || p->state == HALO_STATE_INIT ||
               p->wait == HALO_WAIT_REPLY || p->wait == HALO_WAIT_SLEEP ||
               p->wait == HALO_WAIT_SPAWN;
  if (!inside) {
    halo_timer_wait_stop(n, p);
    halo__proc_terminate(n, p, reason, 0);
    return 0;
  }
  /* Inside a callback: the process becomes a zombee and never runs again. */
  halo__proc_terminate(n, p, reason, 1);
  return 0;
}

/* -- Names and aliases ---------------------------------------------------- */

int halo_name_register(halo_node_t *n, halo_proc_t *p, const char *name) {
  if (!*name) return HALO_EINCORRECT;
  if (p->name || halo_smap_get(&n->names, name)) return HALO_ETAKEN;
  char *c = strdup(name);
  if (!c) return HALO_ENOMEM;
  if (halo_smap_put(&n->names, c, p)) {
    free(c);
    return HALO_ENOMEM;
  }
  halo__node_wd_lock(n);
  p->name = c;
  halo__node_wd_unlock(n);
  return 0;
}

int halo_name_unregister(halo_node_t *n, const char *name) {
  halo_proc_t *p = halo_smap_get(&n->names, name);
  if (!p) return HALO_ENAMEUNKNOWN;
  halo_payload_t reason = n->hooks.reason(n, "unregistered");
  halo__rel_fire_target(n, p, HALO_TARGET_NAME, p->name, 0, &reason);
  n->hooks.release(n, reason);
  halo_smap_del(&n->names, p->name);
  halo__node_wd_lock(n);
  free(p->name);
  p->name = NULL;
  halo__node_wd_unlock(n);
  return 0;
}

halo_proc_t *halo_name_lookup(halo_node_t *n, const char *name) {
  return halo_smap_get(&n->names, name);
}

int64_t halo_alias_new(halo_node_t *n, halo_proc_t *p) {
  halo_proc_ext_t *x = halo__proc_ext(p);
  if (!x) return HALO_ENOMEM;
  if (x->naliases == x->capaliases) {
    uint32_t nc = x->capaliases ? x->capaliases * 2 : 2;
    uint64_t *na = realloc(x->aliases, nc * sizeof *na);
    if (!na) return HALO_ENOMEM;
    x->aliases = na;
    x->capaliases = nc;
  }
  uint64_t id = ++n->next_alias;
  if (halo_imap_put(&n->aliases, id, p)) return HALO_ENOMEM;
  x->aliases[x->naliases++] = id;
  return (int64_t)id;
}

int halo_alias_delete(halo_node_t *n, halo_proc_t *p, uint64_t alias) {
  halo_proc_t *owner = halo_imap_get(&n->aliases, alias);
  if (!owner) return HALO_EALIASUNKNOWN;
  if (owner != p) return HALO_ENOTOWNER;
  halo_payload_t reason = n->hooks.reason(n, "unregistered");
  halo__rel_fire_target(n, p, HALO_TARGET_ALIAS, NULL, alias, &reason);
  n->hooks.release(n, reason);
  halo_imap_del(&n->aliases, alias);
  halo_proc_ext_t *x = p->ext;
  for (uint32_t i = 0; i < x->naliases; i++) {
    if (x->aliases[i] == alias) {
      x->aliases[i] = x->aliases[--x->naliases];
      break;
    }
  }
  return 0;
}

halo_proc_t *halo_alias_lookup(halo_node_t *n, uint64_t alias) {
  return halo_imap_get(&n->aliases, alias);
}
