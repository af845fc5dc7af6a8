#include "event.h"
#include "clock.h"
#include "errors.h"
#include "process.h"
#include "rel.h"

#include <stdlib.h>
#include <string.h>

halo_event_t *halo_event_find(halo_node_t *n, const char *name) { return halo_smap_get(&n->events, name); }

halo_payload_t halo_event_buffered(const halo_event_t *ev, uint32_t i) {
  return ev->ring[(ev->ring_head + i) % ev->buffer_size];
}

void halo_event_each(halo_node_t *n, void (*fn)(void *ud, const halo_event_t *ev), void *ud) {
  for (size_t i = 0; i < n->events.cap; i++)
    if (n->events.slots[i].val) fn(ud, n->events.slots[i].val);
}

static int alive(const halo_proc_t *p) { return p && p->state < HALO_STATE_TERMINATED; }

/* A message to the producer about its subscribers (notify): from the node. */
static void notice(halo_node_t *n, halo_event_t *ev, int what) {
  halo_proc_t *pp = halo_proc_find(n, ev->producer);
  if (!alive(pp)) return;
  halo_signal_info_t info = {HALO_MSG_REGULAR, HALO_TARGET_EVENT, halo_node_pid(n, ev->producer), ev->name, 0, what, pp->id};
  halo_payload_t pl = n->hooks.signal(n, &info, NULL);
  if (halo__enqueue(n, halo_node_pid(n, 1), pp, HALO_MSG_REGULAR, HALO_Q_SYSTEM, 0, pl, 0))
    n->hooks.release(n, pl);
}

static int vec_grow(void **v, uint32_t *cap, uint32_t len, size_t size) {
  if (len < *cap) return 0;
  uint32_t nc = *cap ? *cap * 2 : 4;
  void *nv = realloc(*v, nc * size);
  if (!nv) return HALO_ENOMEM;
  *v = nv;
  *cap = nc;
  return 0;
}

/* Drops ev from p's list of subscriptions (one entry per type). */
static void forget_sub(halo_proc_t *p, const halo_event_t *ev, int type) {
  halo_proc_ext_t *x = p ? p->ext : NULL;
  if (!x) return;
  for (uint32_t i = 0; i < x->nevsubs; i++) {
    if (x->evsubs[i].ev != ev || x->evsubs[i].type != type) continue;
    x->evsubs[i] = x->evsubs[--x->nevsubs];
    return;
  }
}

static void forget_owned(halo_proc_t *p, const halo_event_t *ev) {
  halo_proc_ext_t *x = p ? p->ext : NULL;
  if (!x) return;
  for (uint32_t i = 0; i < x->nowned; i++) {
    if (x->owned[i] != ev) continue;
    x->owned[i] = x->owned[--x->nowned];
    return;
  }
}

static void drop_sub_at(halo_node_t *n, halo_event_t *ev, uint32_t i) {
  memmove(&ev->subs[i], &ev->subs[i + 1], (ev->nsubs - i - 1) * sizeof *ev->subs);
  ev->nsubs--;
  if (ev->notify && ev->nsubs == 0) notice(n, ev, HALO_NOTICE_EVENT_STOP);
}

int halo_event_register(halo_node_t *n, halo_proc_t *p, const char *name, const halo_event_opts_t *o) {
  if (!name || !*name) return HALO_EINCORRECT;
  if (p->state == HALO_STATE_ZOMBEE) return HALO_ETERMINATED; /* its cleanup has run */
  if (halo_smap_get(&n->events, name)) return HALO_ETAKEN;
  halo_proc_ext_t *x = halo__proc_ext(p);
  if (!x || vec_grow((void **)&x->owned, &x->capowned, x->nowned, sizeof *x->owned)) return HALO_ENOMEM;
  halo_event_t *ev = calloc(1, sizeof *ev);
  if (!ev) return HALO_ENOMEM;
  ev->name = strdup(name);
  if (o->buffer) ev->ring = calloc(o->buffer, sizeof *ev->ring);
  if (!ev->name || (o->buffer && !ev->ring) || halo_smap_put(&n->events, ev->name, ev)) {
    free(ev->ring);
    free(ev->name);
    free(ev);
    return HALO_ENOMEM;
  }
  ev->producer = p->id;
  ev->notify = o->notify;
  ev->open = o->open;
  ev->buffer_size = o->buffer;
  ev->created_at = halo_clock_wall_ns();
  ev->token = ++n->next_ref;
  x->owned[x->nowned++] = ev;
  return 0;
}

/* Ends ev: each subscriber gets an exit (link) or down (monitor) naming the
 * event, with reason; the buffer is released and the record freed. */
static void end_event(halo_node_t *n, halo_event_t *ev, halo_proc_t *pp, const halo_payload_t *reason) {
  halo_smap_del(&n->events, ev->name);
  halo_pid_t producer = halo_node_pid(n, ev->producer);
  for (uint32_t i = 0; i < ev->nsubs; i++) {
    if (ev->subs[i].node) { /* another node's subscriber: told through the route */
      int link = ev->subs[i].type == HALO_REL_LINK;
      halo_signal_info_t info = {link ? HALO_MSG_EXIT : HALO_MSG_DOWN, HALO_TARGET_EVENT, producer, ev->name, 0, 0, 0};
      halo_payload_t pl = n->hooks.signal(n, &info, reason);
      halo_pid_t to = {ev->subs[i].node, ev->subs[i].pid};
      if (!n->route || n->route->send(n->route->ud, n, pp, to, info.kind | HALO_KIND_NOTICE,
                                      link ? HALO_Q_URGENT : HALO_Q_SYSTEM, ev->token, pl, 0))
        n->hooks.release(n, pl);
      continue;
    }
    halo_proc_t *w = halo_proc_find(n, ev->subs[i].pid);
    forget_sub(w, ev, ev->subs[i].type);
    if (!alive(w)) continue;
    int link = ev->subs[i].type == HALO_REL_LINK;
    halo_signal_info_t info = {link ? HALO_MSG_EXIT : HALO_MSG_DOWN, HALO_TARGET_EVENT, producer, ev->name, 0, 0, w->id};
    halo_payload_t pl = n->hooks.signal(n, &info, reason);
    if (halo__enqueue(n, producer, w, info.kind, link ? HALO_Q_URGENT : HALO_Q_SYSTEM, 0, pl, 0))
      n->hooks.release(n, pl);
  }
  for (uint32_t i = 0; i < ev->ring_len; i++) n->hooks.release(n, halo_event_buffered(ev, i));
  free(ev->subs);
  free(ev->ring);
  free(ev->name);
  free(ev);
}

int halo_event_unregister(halo_node_t *n, halo_proc_t *p, const char *name) {
  halo_event_t *ev = halo_smap_get(&n->events, name);
  if (!ev) return HALO_EEVENTUNKNOWN;
  if (ev->producer != p->id) return HALO_ENOTOWNER;
  forget_owned(p, ev);
  halo_payload_t reason = n->hooks.reason(n, "unregistered");
  end_event(n, ev, p, &reason);
  n->hooks.release(n, reason);
  return 0;
}

int halo_event_publish(halo_node_t *n, halo_proc_t *p, const char *name, halo_payload_t pl, uint32_t size) {
  halo_event_t *ev = halo_smap_get(&n->events, name);
  int rc = !ev ? HALO_EEVENTUNKNOWN : (!ev->open && (!p || p->id != ev->producer)) ? HALO_ENOTOWNER : 0;
  if (rc) {
    n->hooks.release(n, pl);
    return rc;
  }
  halo_pid_t from = halo_node_pid(n, p ? p->id : 1);
  ev->published++;
  n->counters.events_published++;
  ev->last_published_at = halo_clock_wall_ns();
  if (ev->buffer_size) {
    halo_payload_t keep = n->hooks.dup(n, &pl);
    if (ev->ring_len < ev->buffer_size) {
      ev->ring[(ev->ring_head + ev->ring_len++) % ev->buffer_size] = keep;
    } else {
      n->hooks.release(n, ev->ring[ev->ring_head]);
      ev->ring[ev->ring_head] = keep;
      ev->ring_head = (ev->ring_head + 1) % ev->buffer_size;
    }
  }
  for (uint32_t i = 0; i < ev->nsubs; i++) {
    if (ev->subs[i].node) {
      halo_payload_t copy = n->hooks.dup(n, &pl);
      halo_pid_t to = {ev->subs[i].node, ev->subs[i].pid};
      if (!n->route || n->route->send(n->route->ud, n, p, to, HALO_MSG_EVENT, HALO_Q_MAIN, 0, copy, size)) {
        n->hooks.release(n, copy);
        continue;
      }
      ev->remote_sent++;
      n->counters.events_remote_sent++;
      if (p) p->msgs_out++;
      continue;
    }
    halo_proc_t *w = halo_proc_find(n, ev->subs[i].pid);
    if (!alive(w)) continue;
    halo_payload_t copy = n->hooks.dup(n, &pl);
    if (halo__enqueue(n, from, w, HALO_MSG_EVENT, HALO_Q_MAIN, 0, copy, size)) {
      n->hooks.release(n, copy);
      continue;
    }
    ev->local_sent++;
    n->counters.events_local_sent++;
    if (p) p->msgs_out++;
  }
  n->hooks.release(n, pl);
  return 0;
}

int halo_event_subscribe(halo_node_t *n, halo_proc_t *p, const char *name, int type, halo_event_t **out) {
  halo_event_t *ev = halo_smap_get(&n->events, name);
  if (!ev) return HALO_EEVENTUNKNOWN;
  if (p->state == HALO_STATE_ZOMBEE) return HALO_ETERMINATED;
  if (ev->producer == p->id) return HALO_ENOTALLOWED;
  for (uint32_t i = 0; i < ev->nsubs; i++)
    if (ev->subs[i].pid == p->id && !ev->subs[i].node && ev->subs[i].type == type) return HALO_ETARGETEXIST;
  halo_proc_ext_t *x = halo__proc_ext(p);
  if (!x || vec_grow((void **)&x->evsubs, &x->capevsubs, x->nevsubs, sizeof *x->evsubs) ||
      vec_grow((void **)&ev->subs, &ev->capsubs, ev->nsubs, sizeof *ev->subs))
    return HALO_ENOMEM;
  x->evsubs[x->nevsubs].ev = ev;
  x->evsubs[x->nevsubs++].type = (uint8_t)type;
  ev->subs[ev->nsubs].pid = p->id;
  ev->subs[ev->nsubs].node = 0;
  ev->subs[ev->nsubs++].type = (uint8_t)type;
  if (ev->notify && ev->nsubs == 1) notice(n, ev, HALO_NOTICE_EVENT_START);
  if (out) *out = ev;
  return 0;
}

int halo_event_unsubscribe(halo_node_t *n, halo_proc_t *p, const char *name, int type) {
  halo_event_t *ev = halo_smap_get(&n->events, name);
  if (!ev) return HALO_EEVENTUNKNOWN;
  for (uint32_t i = 0; i < ev->nsubs; i++) {
    if (ev->subs[i].pid != p->id || ev->subs[i].node || ev->subs[i].type != type) continue;
    forget_sub(p, ev, type);
    drop_sub_at(n, ev, i);
    return 0;
  }
  return HALO_ETARGETUNKNOWN;
}

void halo__event_proc_ended(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason) {
  halo_proc_ext_t *x = p->ext;
  if (!x) return;
  while (x->nevsubs) {
    halo_event_t *ev = x->evsubs[x->nevsubs - 1].ev;
    int type = x->evsubs[x->nevsubs - 1].type;
    x->nevsubs--;
    for (uint32_t i = 0; i < ev->nsubs; i++) {
      if (ev->subs[i].pid == p->id && !ev->subs[i].node && ev->subs[i].type == type) {
        drop_sub_at(n, ev, i);
        break;
      }
    }
  }
  while (x->nowned) end_event(n, x->owned[--x->nowned], p, reason);
}

int halo_event_subscribe_remote(halo_node_t *n, const char *name, int type, halo_pid_t who, halo_event_t **out) {
  halo_event_t *ev = halo_smap_get(&n->events, name);
  if (!ev) return HALO_EEVENTUNKNOWN;
  if (!who.node || who.node == n->crc) return HALO_EINCORRECT;
  for (uint32_t i = 0; i < ev->nsubs; i++)
    if (ev->subs[i].pid == who.id && ev->subs[i].node == who.node && ev->subs[i].type == type)
      return HALO_ETARGETEXIST;
  if (vec_grow((void **)&ev->subs, &ev->capsubs, ev->nsubs, sizeof *ev->subs)) return HALO_ENOMEM;
  ev->subs[ev->nsubs++] = (halo_event_sub_t){who.id, who.node, (uint8_t)type};
  if (ev->notify && ev->nsubs == 1) notice(n, ev, HALO_NOTICE_EVENT_START);
  if (out) *out = ev;
  return 0;
}

int halo_event_unsubscribe_remote(halo_node_t *n, const char *name, int type, halo_pid_t who) {
  halo_event_t *ev = halo_smap_get(&n->events, name);
  if (!ev) return HALO_EEVENTUNKNOWN;
  for (uint32_t i = 0; i < ev->nsubs; i++)
    if (ev->subs[i].pid == who.id && ev->subs[i].node == who.node && ev->subs[i].type == type) {
      drop_sub_at(n, ev, i);
      return 0;
    }
  return HALO_ETARGETUNKNOWN;
}

void halo__event_node_down(halo_node_t *n, uint32_t crc) {
  for (size_t k = 0; k < n->events.cap; k++) {
    halo_event_t *ev = n->events.slots[k].val;
    for (uint32_t i = 0; ev && i < ev->nsubs;)
      if (ev->subs[i].node == crc) drop_sub_at(n, ev, i);
      else i++;
  }
}

void halo__event_destroy_all(halo_node_t *n) {
  for (size_t i = 0; i < n->events.cap; i++) {
    halo_event_t *ev = n->events.slots[i].val;
    if (!ev) continue;
    for (uint32_t k = 0; k < ev->ring_len; k++) n->hooks.release(n, halo_event_buffered(ev, k));
    free(ev->subs);
    free(ev->ring);
    free(ev->name);
    free(ev);
  }
  halo_smap_destroy(&n->events);
}

const char *halo_event_utilization(const halo_event_t *ev) {
  if (ev->published && ev->nsubs) return "active";
  if (ev->notify) return "on_demand";
  if (!ev->published && !ev->nsubs) return "idle";
  return ev->published ? "no_subscribers" : "no_publishing";
}
