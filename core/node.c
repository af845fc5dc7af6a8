#include "node.h"
#include "event.h"
#include "clock.h"
#include "errors.h"
#include "rel.h"
#include "process.h"
#include "scheduler.h"
#include "timer.h"
#include "prof.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int halo_state_index(int state) {
  switch (state) {
  case HALO_STATE_INIT: return 0;
  case HALO_STATE_SLEEP: return 1;
  case HALO_STATE_RUNNING: return 2;
  case HALO_STATE_WAIT: return 3;
  case HALO_STATE_TERMINATED: return 4;
  default: return 5;
  }
}

static void on_idle(uv_idle_t *h) { halo_sched_slice(h->data); }

/* The watchdog tells a loop stuck in code from a loop waiting in poll. */
static void on_prepare(uv_prepare_t *h) {
  halo_node_t *n = h->data;
  __atomic_store_n(&n->wd_in_poll, 1, __ATOMIC_RELAXED);
  halo_prof_enter(HALO_PROF_POLL);
}

static void on_check(uv_check_t *h) {
  halo_node_t *n = h->data;
  __atomic_store_n(&n->wd_busy_since, halo_clock_ns(), __ATOMIC_RELAXED);
  __atomic_store_n(&n->wd_in_poll, 0, __ATOMIC_RELAXED);
  halo_prof_enter(HALO_PROF_LOOP);
}

/* A record for a process logger: into its log queue, from the record's source. */
static void log_to_process(void *ud, const halo_logger_t *lg, const halo_log_record_t *rec) {
  halo_node_t *n = ud;
  halo_proc_t *p = halo_proc_find(n, lg->pid);
  if (!p || p->state >= HALO_STATE_TERMINATED || !n->hooks.log_record) return;
  halo_payload_t pl = n->hooks.log_record(n, rec);
  if (!pl.tag) return; /* the host could not build it (out of memory) */
  halo_pid_t from = rec->pid.id ? rec->pid : halo_node_pid(n, 1);
  if (halo__enqueue(n, from, p, HALO_MSG_LOG, HALO_Q_LOG, 0, pl, (uint32_t)rec->len))
    n->hooks.release(n, pl);
}

int halo_node_init(halo_node_t *n, uv_loop_t *loop, const char *name) {
  const char *at = strchr(name, '@');
  if (!at || at == name || !at[1] || strchr(at + 1, '@') || strlen(name) > 255)
    return HALO_EINCORRECT;
  halo_clock_init();
  memset(n, 0, sizeof *n);
  n->loop = loop;
  n->name = strdup(name);
  if (!n->name) return HALO_ENOMEM;
  n->crc = halo_crc32(name, strlen(name));
  if (!n->crc) { /* 0 marks "this node" in relations: such a name cannot join a cluster */
    free(n->name);
    return HALO_EINCORRECT;
  }
  n->creation = (int64_t)time(NULL);
  n->t_start = n->now = halo_clock_ns();
  n->next_id = 1000;
  n->batch = 64;
  n->slice_ns = 2000000;
  n->auto_stop = 1;
  halo_imap_init(&n->procs);
  halo_smap_init(&n->names);
  halo_smap_init(&n->events);
  halo_imap_init(&n->aliases);
  halo_imap_init(&n->timers);
  halo_smap_init(&n->strings);
  /* The default names stay interned for the node's life: spawn churn with
   * them does not free and copy them again each time. */
  for (size_t i = 0; i < sizeof halo_node_default_names / sizeof *halo_node_default_names; i++)
    halo_node_intern(n, halo_node_default_names[i]);
  halo_msgpool_init(&n->msgs);
  uv_mutex_init(&n->wd_mu);
  halo_log_init(&n->log, n->crc);
  n->log.node_name = n->name;
  n->log.proc_sink = log_to_process;
  n->log.proc_ud = n;
  return 0;
}

int halo_node_start(halo_node_t *n) {
  uv_idle_init(n->loop, &n->idle);
  uv_prepare_init(n->loop, &n->prepare);
  uv_check_init(n->loop, &n->check);
  n->idle.data = n->prepare.data = n->check.data = n;
  __atomic_store_n(&n->wd_busy_since, halo_clock_ns(), __ATOMIC_RELAXED); /* the watchdog may run already */
  uv_prepare_start(&n->prepare, on_prepare);
  uv_check_start(&n->check, on_check);
  if (n->rq_head || n->stopping) uv_idle_start(&n->idle, on_idle);
  return 0;
}

void halo__node_kick(halo_node_t *n) {
  if (n->idle.data && !uv_is_active((uv_handle_t *)&n->idle)) uv_idle_start(&n->idle, on_idle);
}

void halo_node_stop(halo_node_t *n, int exit_code) {
  if (!n->stopping) n->exit_code = exit_code;
  n->stopping = 1;
  halo__node_kick(n);
}

void halo_node_close(halo_node_t *n) {
  if (!n->idle.data) return;
  uv_close((uv_handle_t *)&n->idle, NULL);
  uv_close((uv_handle_t *)&n->prepare, NULL);
  uv_close((uv_handle_t *)&n->check, NULL);
  halo_timer_close_all(n);
}

const char *const halo_node_default_names[5] = {"function", "behavior", "entry", "actor", ""};

void halo__node_wd_lock(halo_node_t *n) {
  if (n->watchdog) uv_mutex_lock(&n->wd_mu);
}

void halo__node_wd_unlock(halo_node_t *n) {
  if (n->watchdog) uv_mutex_unlock(&n->wd_mu);
}

/* An interned string: the map's key is s, its value the whole entry. */
typedef struct istr {
  uint64_t refs;
  char s[];
} istr_t;

static istr_t *istr_of(const char *s) { return (istr_t *)(void *)(s - offsetof(istr_t, s)); }

const char *halo_node_intern(halo_node_t *n, const char *s) {
  /* Spawns repeat the same few names: check the last ones before hashing. */
  for (int i = 0; i < 4; i++) {
    const char *c = n->intern_recent[i];
    if (c && c[0] == s[0] && strcmp(c, s) == 0) {
      istr_of(c)->refs++;
      return c;
    }
  }
  istr_t *e = halo_smap_get(&n->strings, s);
  if (e) {
    e->refs++;
    n->intern_recent[n->intern_next++ & 3] = e->s;
    return e->s;
  }
  size_t len = strlen(s);
  e = malloc(sizeof *e + len + 1);
  if (!e) return NULL;
  e->refs = 1;
  memcpy(e->s, s, len + 1);
  if (halo_smap_put(&n->strings, e->s, e)) {
    free(e);
    return NULL;
  }
  return e->s;
}

const char *halo_node_intern_ref(const char *s) {
  if (s) istr_of(s)->refs++;
  return s;
}

void halo_node_unintern(halo_node_t *n, const char *s) {
  if (!s) return;
  istr_t *e = istr_of(s);
  if (--e->refs) return;
  for (int i = 0; i < 4; i++)
    if (n->intern_recent[i] == s) n->intern_recent[i] = NULL;
  halo_smap_del(&n->strings, s);
  free(e);
}

void halo_node_destroy(halo_node_t *n) {
  /* records freed while they sat in the run queue wait there to be recycled */
  for (halo_proc_t *p = n->rq_head, *next; p; p = next) {
    next = p->runq_next;
    if (!p->id) free(p);
  }
  n->rq_head = n->rq_tail = NULL;
  while (n->free_procs) {
    halo_proc_t *p = n->free_procs;
    n->free_procs = p->next;
    free(p);
  }
  for (size_t i = 0; i < n->strings.cap; i++)
    if (n->strings.slots[i].val) free(n->strings.slots[i].val);
  halo_smap_destroy(&n->strings);
  halo_imap_destroy(&n->procs);
  halo_smap_destroy(&n->names);
  halo__event_destroy_all(n);
  halo_imap_destroy(&n->aliases);
  halo_imap_destroy(&n->timers);
  halo_msgpool_destroy(&n->msgs);
  halo_log_destroy(&n->log);
  uv_mutex_destroy(&n->wd_mu);
  free(n->name);
  n->name = NULL;
}
