#include "pool.h"
#include "errors.h"
#include "rel.h"

#include <stdlib.h>
#include <string.h>

const halo_pool_t *halo_pool_of(const halo_proc_t *p) { return p->ext ? p->ext->pool : NULL; }

int halo_pool_set_workers(halo_node_t *n, halo_proc_t *p, const uint64_t *ids, uint32_t count) {
  (void)n;
  for (uint32_t i = 0; i < count; i++)
    if (ids[i] == p->id) return HALO_ENOTALLOWED;
  halo_proc_ext_t *x = halo__proc_ext(p);
  if (!x) return HALO_ENOMEM;
  halo_pool_t *pool = x->pool;
  if (!pool && !(pool = x->pool = calloc(1, sizeof *pool))) return HALO_ENOMEM;
  if (count > pool->cap) {
    uint64_t *nw = realloc(pool->workers, count * sizeof *nw);
    if (!nw) return HALO_ENOMEM;
    pool->workers = nw;
    pool->cap = count;
  }
  if (count) memcpy(pool->workers, ids, count * sizeof *ids);
  pool->nworkers = count;
  pool->next = 0;
  return 0;
}

int halo_pool_prefer_idle(halo_proc_t *p, int on) {
  halo_pool_t *pool = p->ext ? p->ext->pool : NULL;
  if (!pool) return HALO_EUNKNOWN;
  pool->prefer_idle = on != 0;
  return 0;
}

int halo_pool_replace_worker(halo_node_t *n, halo_proc_t *p, uint64_t old_id, uint64_t new_id) {
  (void)n;
  halo_pool_t *pool = p->ext ? p->ext->pool : NULL;
  if (!pool) return HALO_EUNKNOWN;
  if (new_id == p->id) return HALO_ENOTALLOWED;
  for (uint32_t i = 0; i < pool->nworkers; i++) {
    if (pool->workers[i] != old_id) continue;
    pool->workers[i] = new_id;
    pool->restarts++;
    return 0;
  }
  return HALO_EUNKNOWN;
}

int halo__pool_route(halo_node_t *n, halo_proc_t *p, halo_pid_t from, int kind, uint64_t ref,
                     halo_payload_t pl, uint32_t size) {
  static unsigned depth; /* pools of pools: a cycle must not recurse forever */
  halo_pool_t *pool = p->ext->pool;
  p->msgs_in++;
  pool->last = 0;
  if (pool->prefer_idle && depth < 8) {
    for (uint32_t k = 0; k < pool->nworkers; k++) {
      uint32_t i = (pool->next + k) % pool->nworkers;
      halo_proc_t *w = halo_proc_find(n, pool->workers[i]);
      if (!w || w->wait != HALO_WAIT_RECEIVE || halo_mailbox_len(&w->mb) || (w->flags & HALO_PF_RUNQ)) continue;
      pool->next = i; /* the loop below tries it first */
      break;
    }
  }
  for (uint32_t k = 0; depth < 8 && k < pool->nworkers; k++) {
    uint32_t i = (pool->next + k) % pool->nworkers;
    halo_proc_t *w = halo_proc_find(n, pool->workers[i]);
    if (!w || w->state >= HALO_STATE_TERMINATED) continue; /* the pool replaces it */
    depth++;
    int rc = halo__enqueue(n, from, w, kind, HALO_Q_MAIN, ref, pl, size);
    depth--;
    if (rc) continue; /* full */
    pool->next = (i + 1) % pool->nworkers;
    pool->last = w->id;
    pool->forwarded++;
    p->msgs_out++;
    return 0;
  }
  pool->unhandled++;
  char pid[HALO_PID_STRLEN];
  halo_pid_format(pid, sizeof pid, from);
  halo_log_proc(n, p, HALO_LOG_ERROR, "no available worker process. ignored message from %s", pid);
  n->hooks.release(n, pl);
  return 0;
}

void halo__pool_free(halo_proc_t *p) {
  if (!p->ext || !p->ext->pool) return;
  free(p->ext->pool->workers);
  free(p->ext->pool);
  p->ext->pool = NULL;
}
