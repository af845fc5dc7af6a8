#include "timer.h"
#include "errors.h"
#include "rel.h"
#include "scheduler.h"

#include <stdlib.h>

static halo_timer_t *timer_get(halo_node_t *n) {
  halo_timer_t *t = n->free_timers;
  if (t) {
    n->free_timers = t->free_next;
  } else {
    t = calloc(1, sizeof *t);
    if (!t) return NULL;
    uv_timer_init(n->loop, &t->h);
    t->h.data = t;
    t->node = n;
    n->nhandles++;
  }
  t->free_next = NULL;
  t->owner = NULL;
  t->id = 0;
  n->ntimers++;
  return t;
}

/* Timeout to pass to uv_timer_start for a wait of at least ms. libuv's loop
 * time may come from a coarse clock a tick behind the precise one, so a
 * plain ms could end the wait up to a tick early: add that lag. */
static uint64_t timeout_ms(uv_loop_t *loop, uint64_t ms) {
  uv_update_time(loop);
  if (!ms) return 0;
  uint64_t now = (uv_hrtime() + 999999) / 1000000, loop_now = uv_now(loop);
  return ms + (now > loop_now ? now - loop_now : 0);
}

static void timer_put(halo_node_t *n, halo_timer_t *t) {
  uv_timer_stop(&t->h);
  t->owner = NULL;
  t->payload.tag = 0;
  t->free_next = n->free_timers;
  n->free_timers = t;
  n->ntimers--;
}

static void on_wait(uv_timer_t *h) {
  halo_timer_t *t = h->data;
  halo_node_t *n = t->node;
  halo_proc_t *p = t->owner;
  p->wait_timer = NULL;
  timer_put(n, t);
  if (p->wait == HALO_WAIT_REPLY && p->state != HALO_STATE_ZOMBEE) n->counters.call_errors_local++;
  halo_sched_wake(n, p, HALO_WAKE_TIMEOUT);
}

int halo_timer_wait_start(halo_node_t *n, halo_proc_t *p, uint64_t ms) {
  halo_timer_wait_stop(n, p);
  halo_timer_t *t = timer_get(n);
  if (!t) return HALO_ENOMEM;
  t->owner = p;
  p->wait_timer = t;
  uv_timer_start(&t->h, on_wait, timeout_ms(n->loop, ms), 0);
  return 0;
}

void halo_timer_wait_stop(halo_node_t *n, halo_proc_t *p) {
  if (!p->wait_timer) return;
  timer_put(n, p->wait_timer);
  p->wait_timer = NULL;
}

static void owner_unlink(halo_timer_t *t) {
  halo_proc_ext_t *x = t->owner->ext;
  if (t->oprev) t->oprev->onext = t->onext;
  else x->timers = t->onext;
  if (t->onext) t->onext->oprev = t->oprev;
  t->onext = t->oprev = NULL;
}

static void on_send_after(uv_timer_t *h) {
  halo_timer_t *t = h->data;
  halo_node_t *n = t->node;
  halo_proc_t *owner = t->owner;
  halo_payload_t pl = t->payload;
  halo_pid_t to = t->to;
  uint32_t size = t->size;
  halo_imap_del(&n->timers, t->id);
  owner_unlink(t);
  timer_put(n, t);
  if (halo_send(n, owner, to, HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl, size))
    n->hooks.release(n, pl);
}

int64_t halo_timer_send_after(halo_node_t *n, halo_proc_t *owner, halo_pid_t to,
                              halo_payload_t pl, uint32_t size, uint64_t ms) {
  halo_proc_ext_t *x = halo__proc_ext(owner);
  if (!x) return HALO_ENOMEM;
  halo_timer_t *t = timer_get(n);
  if (!t) return HALO_ENOMEM;
  t->id = ++n->next_timer;
  if (halo_imap_put(&n->timers, t->id, t)) {
    timer_put(n, t);
    return HALO_ENOMEM;
  }
  t->owner = owner;
  t->to = to;
  t->payload = pl;
  t->size = size;
  t->oprev = NULL;
  t->onext = x->timers;
  if (x->timers) x->timers->oprev = t;
  x->timers = t;
  uv_timer_start(&t->h, on_send_after, timeout_ms(n->loop, ms), 0);
  return (int64_t)t->id;
}

static void cancel(halo_node_t *n, halo_timer_t *t) {
  halo_imap_del(&n->timers, t->id);
  owner_unlink(t);
  n->hooks.release(n, t->payload);
  timer_put(n, t);
}

int halo_timer_cancel(halo_node_t *n, halo_proc_t *owner, uint64_t id) {
  halo_timer_t *t = halo_imap_get(&n->timers, id);
  if (!t || t->owner != owner) return HALO_ETARGETUNKNOWN;
  cancel(n, t);
  return 0;
}

void halo_timer_cancel_all(halo_node_t *n, halo_proc_t *owner) {
  if (!owner->ext) return;
  while (owner->ext->timers) cancel(n, owner->ext->timers);
}

static void on_close(uv_handle_t *h) { free(h->data); }

void halo_timer_close_all(halo_node_t *n) {
  while (n->free_timers) {
    halo_timer_t *t = n->free_timers;
    n->free_timers = t->free_next;
    n->nhandles--;
    uv_close((uv_handle_t *)&t->h, on_close);
  }
}
