#include "introspect.h"
#include "clock.h"

#include <stdlib.h>
#include <string.h>

static const char *const key_names[HALO_NKEYS] = {
    "mailbox", "mailbox_latency", "running_time", "init_time", "wakeups",
    "uptime",  "messages_in",     "messages_out", "drain"};

int halo_proc_key_parse(const char *name) {
  for (int i = 0; i < HALO_NKEYS; i++)
    if (strcmp(name, key_names[i]) == 0) return i;
  return -1;
}

const char *halo_proc_key_name(int key) {
  return key >= 0 && key < HALO_NKEYS ? key_names[key] : "unknown";
}

static uint64_t running_now(const halo_proc_t *p, uint64_t now) {
  /* A process suspended inside a callback is still inside it. */
  return p->running_ns + (p->t_suspend && now > p->t_suspend ? now - p->t_suspend : 0);
}

double halo_proc_key_value(halo_node_t *n, halo_proc_t *p, int key, uint64_t now) {
  (void)n;
  switch (key) {
  case HALO_KEY_MAILBOX: return halo_mailbox_len(&p->mb);
  case HALO_KEY_MAILBOX_LATENCY: return (double)halo_mailbox_latency(&p->mb, now);
  case HALO_KEY_RUNNING_TIME: return (double)running_now(p, now);
  case HALO_KEY_INIT_TIME: return (double)p->init_ns;
  case HALO_KEY_WAKEUPS: return (double)p->wakeups;
  case HALO_KEY_UPTIME: return (double)((now - p->t_spawn) / 1000000000u);
  case HALO_KEY_MESSAGES_IN: return (double)p->msgs_in;
  case HALO_KEY_MESSAGES_OUT: return (double)p->msgs_out;
  case HALO_KEY_DRAIN: return p->wakeups ? (double)p->msgs_in / (double)p->wakeups : 0.0;
  default: return 0;
  }
}

void halo_proc_short_info(halo_node_t *n, halo_proc_t *p, uint64_t now, halo_proc_short_t *o) {
  o->pid = halo_node_pid(n, p->id);
  o->parent = p->parent;
  o->leader = p->leader;
  o->name = p->name ? p->name : "";
  o->application = p->application;
  o->behavior = p->behavior;
  o->kind = p->kind;
  o->messages_in = p->msgs_in;
  o->messages_out = p->msgs_out;
  o->mailbox = halo_mailbox_len(&p->mb);
  o->mailbox_latency = halo_mailbox_latency(&p->mb, now);
  o->running_time = running_now(p, now);
  o->init_time = p->init_ns;
  o->wakeups = p->wakeups;
  o->uptime = (int64_t)((now - p->t_spawn) / 1000000000u);
  o->state = p->state;
  o->state_time = now > p->t_state ? now - p->t_state : 0;
  o->log_level = p->log_level;
}

void halo_proc_filter_init(halo_proc_filter_t *f) {
  memset(f, 0, sizeof *f);
  f->sort_by = -1;
}

static int matches(halo_node_t *n, halo_proc_t *p, const halo_proc_filter_t *f, uint64_t now) {
  if (f->application && strcmp(p->application, f->application) != 0) return 0;
  if (f->behavior && !strstr(p->behavior, f->behavior)) return 0;
  if (f->name && (!p->name || !strstr(p->name, f->name))) return 0;
  if (f->state && p->state != f->state) return 0;
  uint32_t bits = f->has_min | f->has_max;
  for (int k = 0; bits; k++, bits >>= 1) {
    if (!(bits & 1)) continue;
    double v = halo_proc_key_value(n, p, k, now);
    if ((f->has_min >> k & 1) && v < f->min[k]) return 0;
    if ((f->has_max >> k & 1) && v > f->max[k]) return 0;
  }
  return 1;
}

typedef struct { double v; halo_proc_t *p; } keyed_t;

static int cmp_desc(const void *a, const void *b) {
  const keyed_t *x = a, *y = b;
  if (x->v != y->v) return x->v < y->v ? 1 : -1;
  return x->p->id < y->p->id ? -1 : x->p->id > y->p->id;
}

halo_proc_t **halo_process_list(halo_node_t *n, const halo_proc_filter_t *f, size_t *count) {
  uint64_t now = halo_clock_ns();
  size_t cap = n->nprocs ? n->nprocs : 1, len = 0;
  *count = 0;
  if (f->sort_by < 0) {
    if (f->limit && f->limit < cap) cap = f->limit;
    halo_proc_t **out = malloc(cap * sizeof *out);
    if (!out) return NULL;
    for (halo_proc_t *p = n->first; p && len < cap; p = p->next)
      if (matches(n, p, f, now)) out[len++] = p;
    *count = len;
    return out;
  }
  keyed_t *k = malloc(cap * sizeof *k);
  if (!k) return NULL;
  for (halo_proc_t *p = n->first; p; p = p->next)
    if (matches(n, p, f, now)) {
      k[len].v = halo_proc_key_value(n, p, f->sort_by, now);
      k[len++].p = p;
    }
  qsort(k, len, sizeof *k, cmp_desc);
  if (f->limit && len > f->limit) len = f->limit;
  halo_proc_t **out = malloc((len ? len : 1) * sizeof *out);
  if (out)
    for (size_t i = 0; i < len; i++) out[i] = k[i].p;
  free(k);
  *count = out ? len : 0;
  return out;
}
