#include "rel.h"
#include "pool.h"
#include "errors.h"
#include "process.h"
#include "timer.h"

#include <stdlib.h>
#include <string.h>

halo_proc_ext_t *halo__proc_ext(halo_proc_t *p) {
  if (!p->ext) p->ext = calloc(1, sizeof *p->ext);
  return p->ext;
}

void halo__proc_ext_free(halo_proc_t *p) {
  halo_proc_ext_t *x = p->ext;
  if (!x) return;
  for (uint32_t i = 0; i < x->watchers.len; i++) free(x->watchers.v[i].name);
  for (uint32_t i = 0; i < x->watching.len; i++) free(x->watching.v[i].name);
  free(x->watchers.v);
  free(x->watching.v);
  free(x->aliases);
  free(x->callers);
  halo__pool_free(p);
  free(x->owned);
  free(x->evsubs);
  free(x);
  p->ext = NULL;
}

static int vec_push(halo_relvec_t *v, const halo_rel_t *r) {
  if (v->len == v->cap) {
    uint32_t nc = v->cap ? v->cap * 2 : 2;
    halo_rel_t *nv = realloc(v->v, nc * sizeof *nv);
    if (!nv) return HALO_ENOMEM;
    v->v = nv;
    v->cap = nc;
  }
  v->v[v->len++] = *r;
  return 0;
}

static void vec_remove_at(halo_relvec_t *v, uint32_t i) {
  free(v->v[i].name);
  memmove(&v->v[i], &v->v[i + 1], (v->len - i - 1) * sizeof *v->v);
  v->len--;
}

static int same(const halo_rel_t *r, uint64_t watcher, int type, int tkind, uint64_t target,
                const char *name, uint64_t alias) {
  if (r->watcher != watcher || r->type != type || r->tkind != tkind || r->wnode || r->tnode) return 0;
  switch (tkind) {
  case HALO_TARGET_NAME: return strcmp(r->name, name) == 0;
  case HALO_TARGET_ALIAS: return r->alias == alias;
  default: return r->target == target;
  }
}

static int vec_find(const halo_relvec_t *v, uint64_t watcher, int type, int tkind,
                    uint64_t target, const char *name, uint64_t alias) {
  for (uint32_t i = 0; i < v->len; i++)
    if (same(&v->v[i], watcher, type, tkind, target, name, alias)) return (int)i;
  return -1;
}

int halo_rel_add(halo_node_t *n, halo_proc_t *watcher, int type, halo_proc_t *target,
                 int tkind, const char *name, uint64_t alias) {
  (void)n;
  if (watcher == target) return HALO_ENOTALLOWED;
  halo_proc_ext_t *wx = halo__proc_ext(watcher), *tx = halo__proc_ext(target);
  if (!wx || !tx) return HALO_ENOMEM;
  if (vec_find(&wx->watching, watcher->id, type, tkind, target->id, name, alias) >= 0)
    return HALO_ETARGETEXIST;
  halo_rel_t r = {watcher->id, target->id, alias, NULL, (uint8_t)type, (uint8_t)tkind, 0, 0};
  halo_rel_t r2 = r;
  if (tkind == HALO_TARGET_NAME) {
    r.name = strdup(name);
    r2.name = strdup(name);
    if (!r.name || !r2.name) goto nomem;
  }
  if (vec_push(&wx->watching, &r)) goto nomem;
  if (vec_push(&tx->watchers, &r2)) {
    wx->watching.len--;
    goto nomem;
  }
  return 0;
nomem:
  free(r.name);
  free(r2.name);
  return HALO_ENOMEM;
}

int halo_rel_remove(halo_node_t *n, halo_proc_t *watcher, int type, int tkind,
                    uint64_t target, const char *name, uint64_t alias) {
  if (!watcher->ext) return HALO_ETARGETUNKNOWN;
  int i = vec_find(&watcher->ext->watching, watcher->id, type, tkind, target, name, alias);
  if (i < 0) return HALO_ETARGETUNKNOWN;
  uint64_t tid = watcher->ext->watching.v[i].target;
  vec_remove_at(&watcher->ext->watching, (uint32_t)i);
  halo_proc_t *t = halo_proc_find(n, tid);
  if (t && t->ext) {
    int j = vec_find(&t->ext->watchers, watcher->id, type, tkind, tid, name, alias);
    if (j >= 0) vec_remove_at(&t->ext->watchers, (uint32_t)j);
  }
  return 0;
}

/* Tells one watcher that target p (in the form r names) ended, and drops
 * the watcher's side of the relation. */
static void notify(halo_node_t *n, halo_proc_t *p, const halo_rel_t *r, const halo_payload_t *reason) {
  if (r->wnode) { /* a watcher on another node: the bare reason travels */
    int kind = (r->type == HALO_REL_LINK ? HALO_MSG_EXIT : HALO_MSG_DOWN) | HALO_KIND_REASON | HALO_KIND_NOTICE;
    int q = r->type == HALO_REL_LINK ? HALO_Q_URGENT : HALO_Q_SYSTEM;
    halo_pid_t to = {r->wnode, r->watcher};
    if (!n->route) return;
    halo_payload_t pl = n->hooks.dup(n, reason);
    int rc = n->route->send(n->route->ud, n, p, to, kind, q, 0, pl, 0);
    if (rc) n->hooks.release(n, pl);
    if (rc && rc != HALO_ENOCONN) {
      /* the reason cannot travel (a function, too big, ...): the watcher is
       * told anyway, with a stand-in (no connection: its node cleans up) */
      pl = n->hooks.reason(n, "unsendable reason");
      if (n->route->send(n->route->ud, n, p, to, kind, q, 0, pl, 0)) n->hooks.release(n, pl);
    }
    return;
  }
  halo_proc_t *w = halo_proc_find(n, r->watcher);
  if (!w) return;
  if (w->ext) {
    int j = vec_find(&w->ext->watching, r->watcher, r->type, r->tkind, r->target, r->name, r->alias);
    if (j >= 0) vec_remove_at(&w->ext->watching, (uint32_t)j);
  }
  if (w->state >= HALO_STATE_TERMINATED) return;
  halo_signal_info_t info = {r->type == HALO_REL_LINK ? HALO_MSG_EXIT : HALO_MSG_DOWN, r->tkind,
                             halo_node_pid(n, p->id), r->name, r->alias, 0, w->id};
  /* A PID target needs nothing beyond sender and reason: the message carries
   * the bare reason and the host shapes it on delivery. Names and aliases
   * travel in a payload the host builds now. */
  int kind = info.kind;
  halo_payload_t pl;
  if (r->tkind == HALO_TARGET_PID) {
    pl = n->hooks.dup(n, reason);
    kind |= HALO_KIND_REASON;
  } else {
    pl = n->hooks.signal(n, &info, reason);
  }
  int q = r->type == HALO_REL_LINK ? HALO_Q_URGENT : HALO_Q_SYSTEM;
  if (halo__enqueue(n, info.pid, w, kind, q, 0, pl, 0)) n->hooks.release(n, pl);
}

void halo__rel_fire_all(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason) {
  halo_proc_ext_t *x = p->ext;
  if (!x) return;
  /* Take the list first: notifying may run code that adds relations. */
  halo_relvec_t watchers = x->watchers;
  memset(&x->watchers, 0, sizeof x->watchers);
  for (uint32_t i = 0; i < watchers.len; i++) {
    notify(n, p, &watchers.v[i], reason);
    free(watchers.v[i].name);
  }
  free(watchers.v);
  while (x->watching.len) {
    halo_rel_t *r = &x->watching.v[x->watching.len - 1];
    if (r->tnode) {
      if (n->route && n->route->rel)
        n->route->rel(n->route->ud, n, 0, r->type, p->id, (halo_pid_t){r->tnode, r->target}, 0);
      vec_remove_at(&x->watching, x->watching.len - 1);
      continue;
    }
    halo_proc_t *t = halo_proc_find(n, r->target);
    if (t && t->ext) {
      int j = vec_find(&t->ext->watchers, p->id, r->type, r->tkind, r->target, r->name, r->alias);
      if (j >= 0) vec_remove_at(&t->ext->watchers, (uint32_t)j);
    }
    vec_remove_at(&x->watching, x->watching.len - 1);
  }
}

void halo__rel_fire_target(halo_node_t *n, halo_proc_t *p, int tkind, const char *name,
                           uint64_t alias, const halo_payload_t *reason) {
  halo_proc_ext_t *x = p->ext;
  if (!x) return;
  for (uint32_t i = 0; i < x->watchers.len;) {
    halo_rel_t *r = &x->watchers.v[i];
    int match = r->tkind == tkind &&
                (tkind == HALO_TARGET_NAME ? strcmp(r->name, name) == 0 : r->alias == alias);
    if (!match) {
      i++;
      continue;
    }
    halo_rel_t copy = *r;
    copy.name = r->name ? strdup(r->name) : NULL;
    vec_remove_at(&x->watchers, i);
    notify(n, p, &copy, reason);
    free(copy.name);
  }
}

/* -- across nodes ------------------------------------------------------------ */

static int find_remote(const halo_relvec_t *v, uint64_t watcher, uint32_t wnode, int type, halo_pid_t target,
                       uint32_t tnode) {
  for (uint32_t i = 0; i < v->len; i++) {
    const halo_rel_t *r = &v->v[i];
    if (r->watcher == watcher && r->wnode == wnode && r->type == type && r->target == target.id &&
        r->tnode == tnode && r->tkind == HALO_TARGET_PID)
      return (int)i;
  }
  return -1;
}

int halo_rel_add_remote(halo_node_t *n, halo_proc_t *watcher, int type, halo_pid_t target) {
  halo_proc_ext_t *x = halo__proc_ext(watcher);
  if (!x) return HALO_ENOMEM;
  if (find_remote(&x->watching, watcher->id, 0, type, target, target.node) >= 0) return HALO_ETARGETEXIST;
  if (!n->route || !n->route->rel) return HALO_ENOCONN;
  halo_rel_t r = {watcher->id, target.id, 0, NULL, (uint8_t)type, HALO_TARGET_PID, 0, target.node};
  if (vec_push(&x->watching, &r)) return HALO_ENOMEM;
  uint64_t ref = ++n->next_ref;
  int rc = halo_timer_wait_start(n, watcher, HALO_REL_ACK_MS);
  if (!rc && (rc = n->route->rel(n->route->ud, n, 1, type, watcher->id, target, ref))) halo_timer_wait_stop(n, watcher);
  if (rc) { /* a failed write may have run node_down already: remove by identity */
    int i = find_remote(&x->watching, watcher->id, 0, type, target, target.node);
    if (i >= 0) vec_remove_at(&x->watching, (uint32_t)i);
    return rc;
  }
  /* the watcher waits for the other node's word, like a call */
  x->ack_node = target.node;
  x->ack_ref = ref;
  watcher->wait = HALO_WAIT_REPLY;
  watcher->wait_ref = ref;
  watcher->wait_state = watcher->state;
  halo__proc_set_state(n, watcher, HALO_STATE_WAIT);
  return 0;
}

int halo_rel_remove_remote(halo_node_t *n, halo_proc_t *watcher, int type, halo_pid_t target) {
  if (!watcher->ext) return HALO_ETARGETUNKNOWN;
  int i = find_remote(&watcher->ext->watching, watcher->id, 0, type, target, target.node);
  if (i < 0) return HALO_ETARGETUNKNOWN;
  vec_remove_at(&watcher->ext->watching, (uint32_t)i);
  if (n->route && n->route->rel) n->route->rel(n->route->ud, n, 0, type, watcher->id, target, 0);
  return 0;
}

/* Tells a remote watcher its relation is in place (ref: what it waits on). */
static void ack(halo_node_t *n, halo_pid_t watcher, uint64_t ref) {
  if (!ref) return;
  halo_payload_t ok = n->hooks.reason(n, "ok");
  if (halo_reply(n, NULL, watcher, ref, ok)) n->hooks.release(n, ok);
}

void halo__rel_remote_request(halo_node_t *n, int add, int type, halo_pid_t watcher, uint64_t target, uint64_t ref) {
  halo_proc_t *t = halo_proc_find(n, target);
  if (!add) {
    if (t && t->ext) {
      int i = find_remote(&t->ext->watchers, watcher.id, watcher.node, type, (halo_pid_t){0, target}, 0);
      if (i >= 0) vec_remove_at(&t->ext->watchers, (uint32_t)i);
    }
    return;
  }
  halo_proc_ext_t *x = t && t->state < HALO_STATE_TERMINATED ? halo__proc_ext(t) : NULL;
  halo_rel_t r = {watcher.id, target, 0, NULL, (uint8_t)type, HALO_TARGET_PID, watcher.node, 0};
  if (x && find_remote(&x->watchers, watcher.id, watcher.node, type, (halo_pid_t){0, target}, 0) >= 0)
    return ack(n, watcher, ref);
  if (x && !vec_push(&x->watchers, &r)) return ack(n, watcher, ref);
  /* no such process (or out of memory): the watcher hears of it at once */
  halo_payload_t reason = n->hooks.reason(n, "unknown process");
  halo_proc_t stand = {0};
  stand.id = target;
  notify(n, &stand, &r, &reason);
  n->hooks.release(n, reason);
  ack(n, watcher, ref);
}

void halo__rel_remote_fired(halo_node_t *n, halo_proc_t *watcher, int type, halo_pid_t target) {
  (void)n;
  if (!watcher->ext) return;
  int i = find_remote(&watcher->ext->watching, watcher->id, 0, type, target, target.node);
  if (i >= 0) vec_remove_at(&watcher->ext->watching, (uint32_t)i);
}

void halo__rel_node_down(halo_node_t *n, uint32_t crc, const halo_payload_t *reason) {
  for (halo_proc_t *p = n->first; p; p = p->next) {
    halo_proc_ext_t *x = p->ext;
    if (!x || p->state >= HALO_STATE_TERMINATED) continue;
    if (x->ack_node == crc && p->wait == HALO_WAIT_REPLY && p->wait_ref == x->ack_ref) {
      /* no confirmation will come: the relation is in place and ends below */
      x->ack_node = 0;
      ack(n, halo_node_pid(n, p->id), x->ack_ref);
    }
    for (uint32_t i = 0; i < x->watchers.len;) {
      if (x->watchers.v[i].wnode == crc) vec_remove_at(&x->watchers, i);
      else i++;
    }
    for (uint32_t i = 0; i < x->watching.len;) {
      halo_rel_t r = x->watching.v[i];
      if (r.tnode != crc) {
        i++;
        continue;
      }
      vec_remove_at(&x->watching, i);
      int kind = (r.type == HALO_REL_LINK ? HALO_MSG_EXIT : HALO_MSG_DOWN) | HALO_KIND_REASON;
      int q = r.type == HALO_REL_LINK ? HALO_Q_URGENT : HALO_Q_SYSTEM;
      halo_payload_t pl = n->hooks.dup(n, reason);
      if (halo__enqueue(n, (halo_pid_t){crc, r.target}, p, kind, q, 0, pl, 0)) n->hooks.release(n, pl);
    }
  }
}
