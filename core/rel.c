#include "rel.h"
#include "pool.h"
#include "errors.h"
#include "process.h"
#include "scheduler.h"
#include "timer.h"

#include <stdio.h>
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

/* "<CCCCCCCC.name>" -> "name" in buf (at least 256 bytes). */
static const char *bare_name(const char *full, char *buf) {
  size_t len = strlen(full);
  if (len < 12 || len - 11 > 255) return "";
  memcpy(buf, full + 10, len - 11);
  buf[len - 11] = 0;
  return buf;
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
  halo_rel_t r = {watcher->id, target->id, alias, NULL, (uint8_t)type, (uint8_t)tkind, 0, 0, 0};
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

/* What a watcher on another node is told of target p's end: the bare
 * reason, or for a name the whole message (named "<CRC.name>", as it was
 * addressed). */
static halo_payload_t notice_payload(halo_node_t *n, halo_proc_t *p, const halo_rel_t *r, int kind,
                                     const halo_payload_t *reason) {
  if (r->tkind != HALO_TARGET_NAME) return n->hooks.dup(n, reason);
  char name[300];
  snprintf(name, sizeof name, "<%08X.%s>", n->crc, r->name);
  halo_signal_info_t info = {kind, HALO_TARGET_NAME, halo_node_pid(n, p->id), name, 0, 0, 0};
  return n->hooks.signal(n, &info, reason);
}

/* Tells a watcher on another node that target p ended (a caller: its call
 * fails). Names and calls carry the watcher's token. */
static void notify_remote(halo_node_t *n, halo_proc_t *p, const halo_rel_t *r, const halo_payload_t *reason) {
  int base = r->type == HALO_REL_LINK ? HALO_MSG_EXIT : HALO_MSG_DOWN;
  int kind = base | HALO_KIND_NOTICE | (r->tkind == HALO_TARGET_NAME ? 0 : HALO_KIND_REASON);
  int q = r->type == HALO_REL_LINK ? HALO_Q_URGENT : HALO_Q_SYSTEM;
  if (r->tkind == HALO_TARGET_CALL) kind = HALO_MSG_REPLY | HALO_KIND_FAILED, q = HALO_Q_URGENT;
  uint64_t token = r->tkind == HALO_TARGET_PID ? 0 : r->token;
  halo_pid_t to = {r->wnode, r->watcher};
  if (!n->route) return;
  halo_payload_t pl = notice_payload(n, p, r, base, reason);
  int rc = n->route->send(n->route->ud, n, p, to, kind, q, token, pl, 0);
  if (rc) n->hooks.release(n, pl);
  if (rc && rc != HALO_ENOCONN && rc != HALO_ENOPROC) {
    /* the reason cannot travel (a function, too big, ...): the watcher is
     * told anyway, with a stand-in (no connection: its node cleans up) */
    halo_payload_t text = n->hooks.reason(n, "unsendable reason");
    pl = notice_payload(n, p, r, base, &text);
    n->hooks.release(n, text);
    if (n->route->send(n->route->ud, n, p, to, kind, q, token, pl, 0)) n->hooks.release(n, pl);
  }
}

/* Tells one watcher that target p (in the form r names) ended, and drops
 * the watcher's side of the relation. */
static void notify(halo_node_t *n, halo_proc_t *p, const halo_rel_t *r, const halo_payload_t *reason) {
  if (r->wnode) return notify_remote(n, p, r, reason);
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
    if (r->tnode) { /* an event's node watches its subscribers itself */
      char bare[256];
      if (r->tkind != HALO_TARGET_EVENT && n->route && n->route->rel)
        n->route->rel(n->route->ud, n, 0, r->type, p->id, (halo_pid_t){r->tnode, r->target}, 0,
                      r->tkind == HALO_TARGET_NAME ? bare_name(r->name, bare) : NULL);
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

/* A relation across nodes: watcher (of node wnode, 0: here), type, and a
 * target of node tnode (0: here) of kind tkind: by id, or by name when
 * name is not NULL. */
static int find_remote(const halo_relvec_t *v, uint64_t watcher, uint32_t wnode, int type, int tkind,
                       uint64_t target, uint32_t tnode, const char *name) {
  for (uint32_t i = 0; i < v->len; i++) {
    const halo_rel_t *r = &v->v[i];
    if (r->watcher == watcher && r->wnode == wnode && r->type == type && r->tnode == tnode && r->tkind == tkind &&
        (name ? r->name && strcmp(r->name, name) == 0 : r->target == target))
      return (int)i;
  }
  return -1;
}

/* The watcher's side of a remote name target: "<CCCCCCCC.name>". */
static char *full_name(uint32_t node, const char *name) {
  size_t len = strlen(name) + 12;
  char *s = malloc(len);
  if (s) snprintf(s, len, "<%08X.%s>", node, name);
  return s;
}

int halo_rel_add_remote(halo_node_t *n, halo_proc_t *watcher, int type, halo_pid_t target, const char *name) {
  halo_proc_ext_t *x = halo__proc_ext(watcher);
  if (!x) return HALO_ENOMEM;
  int tkind = name ? HALO_TARGET_NAME : HALO_TARGET_PID;
  char *full = name ? full_name(target.node, name) : NULL;
  if (name && !full) return HALO_ENOMEM;
  if (find_remote(&x->watching, watcher->id, 0, type, tkind, target.id, target.node, full) >= 0) {
    free(full);
    return HALO_ETARGETEXIST;
  }
  if (!n->route || !n->route->rel) {
    free(full);
    return HALO_ENOCONN;
  }
  uint64_t ref = ++n->next_ref;
  halo_rel_t r = {watcher->id, name ? 0 : target.id, 0, full, (uint8_t)type, (uint8_t)tkind, 0, target.node, ref};
  if (vec_push(&x->watching, &r)) {
    free(full);
    return HALO_ENOMEM;
  }
  int rc = halo_timer_wait_start(n, watcher, HALO_REL_ACK_MS);
  if (!rc && (rc = n->route->rel(n->route->ud, n, 1, type, watcher->id, target, ref, name)))
    halo_timer_wait_stop(n, watcher);
  if (rc) { /* a failed write may have run node_down already: remove by its token */
    for (uint32_t i = 0; i < x->watching.len; i++)
      if (x->watching.v[i].token == ref && x->watching.v[i].tnode == target.node) {
        vec_remove_at(&x->watching, i);
        break;
      }
    return rc;
  }
  /* the watcher waits for the other node's word, like a call */
  x->ack_node = target.node;
  x->ack_ref = ref;
  watcher->wait = HALO_WAIT_REPLY;
  watcher->wait_for = HALO_FOR_RELATION;
  watcher->wait_ref = ref;
  watcher->wait_state = watcher->state;
  halo__proc_set_state(n, watcher, HALO_STATE_WAIT);
  return 0;
}

int halo_rel_remove_remote(halo_node_t *n, halo_proc_t *watcher, int type, halo_pid_t target, const char *name) {
  if (!watcher->ext) return HALO_ETARGETUNKNOWN;
  char *full = name ? full_name(target.node, name) : NULL;
  if (name && !full) return HALO_ENOMEM;
  int i = find_remote(&watcher->ext->watching, watcher->id, 0, type, name ? HALO_TARGET_NAME : HALO_TARGET_PID,
                      target.id, target.node, full);
  free(full);
  if (i < 0) return HALO_ETARGETUNKNOWN;
  vec_remove_at(&watcher->ext->watching, (uint32_t)i);
  if (n->route && n->route->rel) n->route->rel(n->route->ud, n, 0, type, watcher->id, target, 0, name);
  return 0;
}

/* Tells a remote watcher its relation is in place (ref: what it waits on). */
static void ack(halo_node_t *n, halo_pid_t watcher, uint64_t ref) {
  if (!ref) return;
  halo_payload_t ok = n->hooks.reason(n, "ok");
  if (halo_reply(n, NULL, watcher, ref, ok)) n->hooks.release(n, ok);
}

void halo__rel_remote_request(halo_node_t *n, int add, int type, halo_pid_t watcher, uint64_t target, uint64_t ref,
                              const char *name, int stale) {
  halo_proc_t *t = stale ? NULL : name ? halo_name_lookup(n, name) : halo_proc_find(n, target);
  int tkind = name ? HALO_TARGET_NAME : HALO_TARGET_PID;
  if (!add) {
    if (t && t->ext) {
      int i = find_remote(&t->ext->watchers, watcher.id, watcher.node, type, tkind, target, 0, name);
      if (i >= 0) vec_remove_at(&t->ext->watchers, (uint32_t)i);
    }
    return;
  }
  halo_proc_ext_t *x = t && t->state < HALO_STATE_TERMINATED ? halo__proc_ext(t) : NULL;
  halo_rel_t r = {watcher.id, t ? t->id : target, 0, NULL, (uint8_t)type, (uint8_t)tkind, watcher.node, 0, ref};
  if (x && find_remote(&x->watchers, watcher.id, watcher.node, type, tkind, r.target, 0, name) >= 0)
    return ack(n, watcher, ref);
  if (x && (!name || (r.name = strdup(name)))) {
    if (!vec_push(&x->watchers, &r)) return ack(n, watcher, ref);
    free(r.name);
    r.name = NULL;
  }
  /* no such process (or out of memory): the watcher hears of it at once */
  halo_payload_t reason = n->hooks.reason(n, "unknown process");
  halo_proc_t stand = {0};
  stand.id = r.target;
  r.name = (char *)name;
  notify(n, &stand, &r, &reason);
  n->hooks.release(n, reason);
  ack(n, watcher, ref);
}

void halo__rel_remote_fired(halo_node_t *n, halo_proc_t *watcher, int type, halo_pid_t target, uint64_t token) {
  (void)n;
  halo_relvec_t *v = watcher->ext ? &watcher->ext->watching : NULL;
  for (uint32_t i = 0; v && i < v->len; i++) {
    const halo_rel_t *r = &v->v[i];
    if (r->type == type && r->tnode == target.node &&
        (token ? r->tkind != HALO_TARGET_PID && r->token == token &&
                     (r->tkind != HALO_TARGET_EVENT || r->target == target.id)
               : r->tkind == HALO_TARGET_PID && r->target == target.id)) {
      vec_remove_at(v, i);
      return;
    }
  }
}

/* The message a watcher of a target on a lost node gets: the bare reason
 * for a PID, the whole message for a name or an event. */
static void node_lost(halo_node_t *n, halo_proc_t *p, uint32_t crc, const halo_rel_t *r, const halo_payload_t *reason) {
  int kind = r->type == HALO_REL_LINK ? HALO_MSG_EXIT : HALO_MSG_DOWN;
  int q = r->type == HALO_REL_LINK ? HALO_Q_URGENT : HALO_Q_SYSTEM;
  halo_pid_t from = {crc, r->target};
  halo_payload_t pl;
  if (r->tkind == HALO_TARGET_PID) {
    pl = n->hooks.dup(n, reason);
    kind |= HALO_KIND_REASON;
  } else {
    halo_signal_info_t info = {kind, r->tkind, from, r->name, 0, 0, p->id};
    pl = n->hooks.signal(n, &info, reason);
  }
  if (halo__enqueue(n, from, p, kind, q, 0, pl, 0)) n->hooks.release(n, pl);
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
    if (x->call_node == crc && p->wait == HALO_WAIT_REPLY && p->wait_ref == x->call_ref) {
      halo_payload_t pl = n->hooks.dup(n, reason);
      if (halo_proc_call_fail(n, p->id, x->call_ref, pl)) n->hooks.release(n, pl);
    }
    for (uint32_t i = 0; i < x->watchers.len;) {
      if (x->watchers.v[i].wnode == crc) vec_remove_at(&x->watchers, i);
      else i++;
    }
    for (uint32_t i = 0; i < x->watching.len;) {
      if (x->watching.v[i].tnode != crc) {
        i++;
        continue;
      }
      halo_rel_t r = x->watching.v[i];
      r.name = r.name ? strdup(r.name) : NULL;
      vec_remove_at(&x->watching, i);
      node_lost(n, p, crc, &r, reason);
      free(r.name);
    }
  }
}

int halo_rel_watch_event(halo_node_t *n, halo_proc_t *watcher, int type, uint32_t crc, uint64_t producer,
                         const char *name, uint64_t token) {
  (void)n;
  halo_proc_ext_t *x = halo__proc_ext(watcher);
  if (!x) return HALO_ENOMEM;
  int i = find_remote(&x->watching, watcher->id, 0, type, HALO_TARGET_EVENT, 0, crc, name);
  if (i >= 0) vec_remove_at(&x->watching, (uint32_t)i); /* subscribed again: the newer record counts */
  halo_rel_t r = {watcher->id, producer, 0, strdup(name), (uint8_t)type, HALO_TARGET_EVENT, 0, crc, token};
  if (!r.name || vec_push(&x->watching, &r)) {
    free(r.name);
    return HALO_ENOMEM;
  }
  return 0;
}

int halo_rel_unwatch_event(halo_node_t *n, halo_proc_t *watcher, int type, uint32_t crc, const char *name) {
  (void)n;
  if (!watcher->ext) return HALO_ETARGETUNKNOWN;
  int i = find_remote(&watcher->ext->watching, watcher->id, 0, type, HALO_TARGET_EVENT, 0, crc, name);
  if (i < 0) return HALO_ETARGETUNKNOWN;
  vec_remove_at(&watcher->ext->watching, (uint32_t)i);
  return 0;
}

/* -- calls across nodes ---------------------------------------------------------- */

void halo__rel_call_sent(halo_node_t *n, halo_proc_t *caller, uint32_t node, uint64_t ref) {
  (void)n;
  halo_proc_ext_t *x = halo__proc_ext(caller);
  if (!x) return; /* out of memory: only the timeout ends the call */
  x->call_node = node;
  x->call_ref = ref;
}

/* A callee that takes more than this many calls it has not answered itself
 * (its replies come from elsewhere) watches no more of them. */
#define CALLS_WATCHED_MAX 4096

int halo__rel_call_taken(halo_node_t *n, halo_proc_t *callee, halo_pid_t caller, uint64_t ref) {
  (void)n;
  halo_proc_ext_t *x = halo__proc_ext(callee);
  if (!x) return HALO_ENOMEM;
  if (x->pool || x->watchers.len >= CALLS_WATCHED_MAX) return 0; /* a pool's workers answer for it */
  halo_rel_t r = {caller.id, callee->id, 0, NULL, HALO_REL_MONITOR, HALO_TARGET_CALL, caller.node, 0, ref};
  return vec_push(&x->watchers, &r);
}

void halo__rel_call_done(halo_node_t *n, halo_proc_t *callee, halo_pid_t caller, uint64_t ref) {
  (void)n;
  halo_relvec_t *v = callee->ext ? &callee->ext->watchers : NULL;
  /* newest first: the call answered is most often the last one taken */
  for (uint32_t i = v ? v->len : 0; i-- > 0;) {
    const halo_rel_t *r = &v->v[i];
    if (r->tkind == HALO_TARGET_CALL && r->token == ref && r->watcher == caller.id && r->wnode == caller.node) {
      vec_remove_at(v, i);
      return;
    }
  }
}

int halo_proc_call_fail(halo_node_t *n, uint64_t caller, uint64_t ref, halo_payload_t reason) {
  halo_proc_t *p = halo_proc_find(n, caller);
  if (!p || p->wait != HALO_WAIT_REPLY || p->wait_ref != ref || p->wake) return HALO_EIGNORED;
  if (p->ext && p->ext->call_ref == ref) p->ext->call_node = 0;
  halo_call_abort(n, p, ref, &reason); /* may free a zombee p */
  n->hooks.release(n, reason);
  return 0;
}
