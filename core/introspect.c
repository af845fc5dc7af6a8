#include "introspect.h"
#include "clock.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const key_names[HALO_NKEYS] = {
    "mailbox", "mailbox_latency", "running_time", "init_time", "wakeups",
    "uptime",  "messages_in",     "messages_out", "drain", "pid",
    "state",   "name",            "behavior",     "application"};

int halo_proc_state_parse(const char *name) {
  static const int states[] = {HALO_STATE_INIT, HALO_STATE_SLEEP, HALO_STATE_RUNNING,
                               HALO_STATE_WAIT, HALO_STATE_TERMINATED, HALO_STATE_ZOMBEE};
  for (int i = 0; i < 6; i++) {
    const char *a = name, *b = halo_state_name(states[i]);
    for (; *a && *b; a++, b++) {
      char c = *a == '_' ? ' ' : (char)tolower((unsigned char)*a);
      if (c != *b) break;
    }
    if (!*a && !*b) return states[i];
  }
  return 0;
}

int halo_proc_key_parse(const char *name) {
  for (int i = 0; i < HALO_NKEYS; i++)
    if (strcmp(name, key_names[i]) == 0) return i;
  return -1;
}

int halo_proc_key_is_text(int key) {
  return key == HALO_KEY_NAME || key == HALO_KEY_BEHAVIOR || key == HALO_KEY_APPLICATION;
}

const char *halo_proc_key_name(int key) {
  return key >= 0 && key < HALO_NKEYS ? key_names[key] : "unknown";
}

static uint64_t running_now(const halo_proc_t *p, uint64_t now) {
  /* A process suspended inside a callback is still inside it. */
  return p->running_ns + (p->t_suspend && now > p->t_suspend ? now - p->t_suspend : 0);
}

static inline double key_value(const halo_proc_t *p, int key, uint64_t now) {
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
  case HALO_KEY_PID: return (double)p->id;
  case HALO_KEY_STATE: return (double)p->state;
  default: return 0;
  }
}

double halo_proc_key_value(halo_node_t *n, halo_proc_t *p, int key, uint64_t now) {
  (void)n;
  return key_value(p, key, now);
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

static inline int matches(const halo_proc_t *p, const halo_proc_filter_t *f, uint64_t now) {
  if (f->application && strcmp(p->application, f->application) != 0) return 0;
  if (f->behavior && !strstr(p->behavior, f->behavior)) return 0;
  if (f->state && p->state != f->state) return 0;
  if (f->name && (!p->name || !strstr(p->name, f->name))) return 0;
  uint32_t bits = f->has_min | f->has_max;
  for (int k = 0; bits; k++, bits >>= 1) {
    if (!(bits & 1)) continue;
    double v = key_value(p, k, now);
    if ((f->has_min >> k & 1) && v < f->min[k]) return 0;
    if ((f->has_max >> k & 1) && v > f->max[k]) return 0;
  }
  return 1;
}

/* v is negated and dir is -1 for an ascending sort; s is the text of a text key. */
typedef struct { double v; const char *s; int dir; halo_proc_t *p; } keyed_t;

static const char *key_text(const halo_proc_t *p, int key) {
  if (key == HALO_KEY_NAME) return p->name ? p->name : "";
  return key == HALO_KEY_BEHAVIOR ? p->behavior : p->application;
}

/* a before b in the list: larger value first (ascending: smaller), then spawn order */
static int before(const keyed_t *a, const keyed_t *b) {
  if (a->s) {
    int c = strcmp(a->s, b->s) * a->dir;
    return c > 0 || (c == 0 && a->p->id < b->p->id);
  }
  return a->v > b->v || (a->v == b->v && a->p->id < b->p->id);
}

static int cmp_desc(const void *a, const void *b) {
  const keyed_t *x = a, *y = b;
  return before(x, y) ? -1 : before(y, x);
}

/* A heap of the best len rows so far, the last of them at the root. */
static void sift_down(keyed_t *h, size_t len, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < len && before(&h[m], &h[l])) m = l;
    if (r < len && before(&h[m], &h[r])) m = r;
    if (m == i) return;
    keyed_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static void sift_up(keyed_t *h, size_t i) {
  while (i) {
    size_t up = (i - 1) / 2;
    if (!before(&h[up], &h[i])) return;
    keyed_t t = h[i];
    h[i] = h[up];
    h[up] = t;
    i = up;
  }
}

halo_proc_t **halo_process_list(halo_node_t *n, const halo_proc_filter_t *f, size_t *count) {
  uint64_t now = halo_clock_ns();
  size_t cap = n->nprocs ? n->nprocs : 1, len = 0;
  *count = 0;
  if (f->limit && f->limit < cap) cap = f->limit;
  size_t nmatched = 0;
  if (f->sort_by < 0) {
    halo_proc_t **out = malloc(cap * sizeof *out);
    if (!out) return NULL;
    for (halo_proc_t *p = n->first; p && (len < cap || f->matched); p = p->next)
      if (matches(p, f, now)) {
        nmatched++;
        if (len < cap) out[len++] = p;
      }
    if (f->matched) *f->matched = nmatched;
    *count = len;
    return out;
  }
  keyed_t *k = malloc(cap * sizeof *k);
  if (!k) return NULL;
  int top = f->limit && f->limit < n->nprocs; /* keep the best cap rows only */
  int text = halo_proc_key_is_text(f->sort_by), dir = f->ascending ? -1 : 1;
  for (halo_proc_t *p = n->first; p; p = p->next) {
    if (!matches(p, f, now)) continue;
    nmatched++;
    keyed_t row = {text ? 0 : dir * key_value(p, f->sort_by, now), text ? key_text(p, f->sort_by) : NULL, dir, p};
    if (!top) k[len++] = row;
    else if (len < cap) {
      k[len] = row;
      sift_up(k, len++);
    } else if (before(&row, &k[0])) {
      k[0] = row;
      sift_down(k, len, 0);
    }
  }
  qsort(k, len, sizeof *k, cmp_desc);
  if (f->matched) *f->matched = nmatched;
  if (f->limit && len > f->limit) len = f->limit;
  halo_proc_t **out = malloc((len ? len : 1) * sizeof *out);
  if (out)
    for (size_t i = 0; i < len; i++) out[i] = k[i].p;
  free(k);
  *count = out ? len : 0;
  return out;
}

typedef struct { uint64_t parent; halo_proc_t *p; } edge_t;

static int cmp_edge(const void *a, const void *b) {
  const edge_t *x = a, *y = b;
  if (x->parent != y->parent) return x->parent < y->parent ? -1 : 1;
  return x->p->id < y->p->id ? -1 : x->p->id > y->p->id;
}

/* First edge of parent in the sorted edges e[0..len). */
static size_t first_edge(const edge_t *e, size_t len, uint64_t parent) {
  size_t lo = 0, hi = len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (e[mid].parent < parent) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

halo_proc_t **halo_process_children(halo_node_t *n, uint64_t parent_id, int recursive, size_t *count) {
  size_t cap = n->nprocs ? n->nprocs : 1, len = 0, ne = 0;
  *count = 0;
  halo_proc_t **out = malloc(cap * sizeof *out);
  if (!out) return NULL;
  if (!recursive) {
    for (halo_proc_t *p = n->first; p; p = p->next)
      if (p->parent.node == n->crc && p->parent.id == parent_id) out[len++] = p;
    *count = len;
    return out;
  }
  edge_t *e = malloc(cap * sizeof *e);
  if (!e) {
    free(out);
    return NULL;
  }
  for (halo_proc_t *p = n->first; p; p = p->next)
    if (p->parent.node == n->crc && p->parent.id && p->parent.id != p->id) e[ne++] = (edge_t){p->parent.id, p};
  qsort(e, ne, sizeof *e, cmp_edge);
  /* Breadth first: out[] is the queue. A child's id is above its parent's,
   * so no process is reached twice. */
  uint64_t id = parent_id;
  for (size_t next = 0;;) {
    for (size_t i = first_edge(e, ne, id); i < ne && e[i].parent == id && len < cap; i++) out[len++] = e[i].p;
    if (next == len) break;
    id = out[next++]->id;
  }
  free(e);
  *count = len;
  return out;
}
