#include "scheduler.h"
#include "clock.h"
#include "errors.h"
#include "timer.h"
#include "prof.h"

void halo_sched_ready(halo_node_t *n, halo_proc_t *p) {
  if (p->flags & HALO_PF_RUNQ) return;
  p->flags |= HALO_PF_RUNQ;
  p->runq_next = NULL;
  if (n->rq_tail) n->rq_tail->runq_next = p;
  else n->rq_head = p;
  n->rq_tail = p;
  halo__node_kick(n);
}

static halo_proc_t *runq_pop(halo_node_t *n) {
  halo_proc_t *p = n->rq_head;
  if (!p) return NULL;
  n->rq_head = p->runq_next;
  if (!n->rq_head) n->rq_tail = NULL;
  p->flags &= (uint8_t)~HALO_PF_RUNQ;
  return p;
}

void halo_sched_wake(halo_node_t *n, halo_proc_t *p, int wake) {
  if (p->state == HALO_STATE_ZOMBEE) {
    halo__proc_reap(n, p);
    return;
  }
  p->wake = (uint8_t)wake;
  if (p->wait != HALO_WAIT_RECEIVE) halo__proc_set_state(n, p, p->wait_state);
  else if (p->state == HALO_STATE_SLEEP) halo__proc_set_state(n, p, HALO_STATE_RUNNING);
  halo_sched_ready(n, p);
}

int halo__sched_runnable(const halo_proc_t *p) {
  if (p->state >= HALO_STATE_TERMINATED) return 0;
  if (p->wake) return 1;
  return p->wait == HALO_WAIT_RECEIVE && halo_mailbox_len(&p->mb) > 0;
}

int halo__sched_run(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg) {
  halo_proc_t *prev = n->current;
  uint64_t t0 = prev ? halo_clock_ns() : n->now;
  uint64_t *prev_alloc = n->alloc ? halo_alloc_attribute(n->alloc, &p->alloc_bytes) : NULL;
  if (p->t_suspend) {
    p->running_ns += t0 - p->t_suspend;
    p->t_suspend = 0;
  }
  n->current = p;
  p->flags |= HALO_PF_ACTIVE;
  /* The watchdog times top-level callbacks: a nested run (a child's init
   * inside its spawner's callback) keeps the spawner's sequence and start,
   * and only names the innermost process. */
  __atomic_store_n(&n->wd_cb_proc, p, __ATOMIC_RELEASE);
  if (!prev) {
    __atomic_store_n(&n->wd_cb_start, t0, __ATOMIC_RELAXED);
    /* Only this thread writes the sequence: no locked add on the hot path. */
    __atomic_store_n(&n->wd_cb_seq, n->wd_cb_seq + 1, __ATOMIC_RELAXED);
  }

  int rc = n->hooks.run(n, p, msg);

  p->flags &= (uint8_t)~HALO_PF_ACTIVE;
  int open = !prev && n->open == p;
  if (open && rc == HALO_RUN_IDLE && p->state < HALO_STATE_TERMINATED) {
    /* Inside a batch a callback that went back to waiting costs no clock
     * read: run_batch closes the interval once for all of them. */
    n->current = prev;
    if (n->alloc) halo_alloc_attribute(n->alloc, prev_alloc);
    __atomic_store_n(&n->wd_cb_start, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&n->wd_cb_proc, NULL, __ATOMIC_RELEASE);
    return rc;
  }
  uint64_t t1 = halo_clock_ns();
  n->now = t1;
  if (open) {
    p->running_ns += t1 - n->open_t0;
    n->open = NULL;
  } else {
    p->running_ns += t1 - t0;
  }
  if (rc == HALO_RUN_SUSPENDED && p->wait != HALO_WAIT_RECEIVE) p->t_suspend = t1;
  n->current = prev;
  if (n->alloc) halo_alloc_attribute(n->alloc, prev_alloc);
  if (!prev) __atomic_store_n(&n->wd_cb_start, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&n->wd_cb_proc, prev, __ATOMIC_RELEASE);
  return rc;
}

void halo__sched_after(halo_node_t *n, halo_proc_t *p, int rc) {
  if (p->state == HALO_STATE_ZOMBEE) {
    if (rc == HALO_RUN_EXITED && p->result.tag) {
      n->hooks.release(n, p->result);
      p->result.tag = 0;
    }
    if (!p->wait_timer) halo__proc_reap(n, p);
    return;
  }
  /* A behavior's init is done when it first waits for messages (function
   * processes are started by halo_proc_start). */
  if (!(p->flags & HALO_PF_STARTED) && rc == HALO_RUN_IDLE) {
    p->flags |= HALO_PF_STARTED;
    if (p->state == HALO_STATE_INIT) halo__proc_set_state(n, p, HALO_STATE_RUNNING);
    if (p->wait_state == HALO_STATE_INIT) p->wait_state = HALO_STATE_RUNNING;
    halo__proc_init_done(n, p);
  }
  if (rc == HALO_RUN_EXITED) {
    halo_payload_t reason = p->result;
    p->result.tag = 0;
    p->wait = HALO_WAIT_NONE;
    halo__proc_terminate(n, p, reason, 0);
    return;
  }
  if (rc == HALO_RUN_IDLE) p->wait = HALO_WAIT_RECEIVE;
  if (p->wait != HALO_WAIT_RECEIVE) return;
  if (!p->wake && !halo_mailbox_len(&p->mb)) halo__proc_set_state(n, p, HALO_STATE_SLEEP);
  else halo__proc_set_state(n, p, HALO_STATE_RUNNING);
}

/* Ends p's open batch interval: one clock read for the callbacks it ran. */
static void close_batch(halo_node_t *n, halo_proc_t *p) {
  if (n->open != p) return;
  uint64_t t1 = halo_clock_ns();
  p->running_ns += t1 - n->open_t0;
  n->now = t1;
  n->open = NULL;
}

/* Runs one process for up to n->batch steps. Callbacks that return to
 * waiting share one clock read at the end (see halo__sched_run); anything
 * else (suspend, exit, kill) closes the interval at once. */
static void run_batch(halo_node_t *n, halo_proc_t *p) {
  n->open = p;
  n->open_t0 = n->now;
  for (uint32_t i = 0; i < n->batch; i++) {
    int rc, gone;
    if (p->wake) {
      if (p->wait == HALO_WAIT_RECEIVE && p->wake == HALO_WAKE_TIMEOUT && halo_mailbox_len(&p->mb))
        p->wake = HALO_WAKE_NONE; /* a message beat the receive timeout */
      else {
        rc = halo__sched_run(n, p, NULL);
        goto after;
      }
    }
    if (p->wait != HALO_WAIT_RECEIVE) {
      close_batch(n, p);
      return;
    }
    halo_msg_t *m = halo_mailbox_pop(&p->mb);
    if (!m) break;
    halo_timer_wait_stop(n, p);
    rc = halo__sched_run(n, p, m);
    halo_msgpool_put(&n->msgs, m);
  after:
    /* After an exit or as a zombee, halo__sched_after may free p. */
    gone = rc == HALO_RUN_EXITED || p->state == HALO_STATE_ZOMBEE; /* interval closed */
    halo__sched_after(n, p, rc);
    if (gone) return;
    if (p->state >= HALO_STATE_TERMINATED) {
      close_batch(n, p);
      return;
    }
    if (rc == HALO_RUN_SUSPENDED && p->wait != HALO_WAIT_RECEIVE) {
      if (p->wake) halo_sched_ready(n, p); /* halo_proc_yield */
      return; /* closed: only IDLE leaves it open */
    }
  }
  close_batch(n, p);
  if (halo__sched_runnable(p)) halo_sched_ready(n, p);
  else if (p->wait == HALO_WAIT_RECEIVE && p->state == HALO_STATE_RUNNING)
    halo__proc_set_state(n, p, HALO_STATE_SLEEP);
}

/* Terminates every process, newest (children) first. */
static void node_shutdown(halo_node_t *n) {
  while (n->last) {
    halo_proc_t *p = n->last;
    if (p->state == HALO_STATE_ZOMBEE) {
      p->flags &= (uint8_t)~HALO_PF_ACTIVE;
      halo__proc_reap(n, p);
    } else {
      halo_proc_exit(n, p, n->hooks.reason(n, "shutdown"));
    }
  }
  n->stopped = 1;
  if (n->hooks.stopped) n->hooks.stopped(n);
}

void halo_sched_slice(halo_node_t *n) {
  int was = halo_prof_enter(HALO_PROF_SCHED);
  uint64_t start = halo_clock_ns(), deadline = start + n->slice_ns;
  halo_proc_t *p;
  n->now = start;
  while (!n->stopping && (p = runq_pop(n))) {
    if (!p->id) {
      halo__proc_recycle(n, p); /* freed while it sat in the queue */
      continue;
    }
    if (p->state == HALO_STATE_ZOMBEE) {
      if (p->wake) halo__proc_reap(n, p);
      continue;
    }
    run_batch(n, p);
    if (n->now >= deadline) break;
  }
  if (n->stopping && !n->current && !n->stopped) {
    while ((p = runq_pop(n)))
      if (!p->id) halo__proc_recycle(n, p);
    node_shutdown(n);
  }
  if (!n->rq_head && n->idle.data) uv_idle_stop(&n->idle);
  halo_prof_leave(was);
}
