#define _GNU_SOURCE /* qsort_r */
#include "metrics.h"
#include "errors.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double halo_metrics_default_buckets[11] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

/* -- Text buffer ------------------------------------------------------------ */

static int mbuf_grow(halo_mbuf_t *b, size_t n) {
  if (b->oom) return -1;
  if (b->len + n <= b->cap) return 0;
  size_t nc = b->cap ? b->cap : 65536; /* a node's exposition is some 40-70 KB */
  while (nc < b->len + n) nc *= 2;
  char *np = realloc(b->p, nc);
  if (!np) {
    b->oom = 1;
    return -1;
  }
  b->p = np;
  b->cap = nc;
  return 0;
}

static inline void put(halo_mbuf_t *b, const char *s, size_t n) {
  if (b->len + n > b->cap && mbuf_grow(b, n)) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

void halo_mbuf_put(halo_mbuf_t *b, const char *s, size_t n) { put(b, s, n); }

void halo_mbuf_puts(halo_mbuf_t *b, const char *s) { put(b, s, strlen(s)); }

size_t halo_metrics_format_u64(char *buf, uint64_t v) {
  char d[24];
  size_t n = 0, i = 0;
  do {
    d[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) buf[i++] = d[--n];
  buf[i] = 0;
  return i;
}

size_t halo_metrics_format_double(char *buf, double v) {
  if (isnan(v)) return (size_t)sprintf(buf, "NaN");
  if (isinf(v)) return (size_t)sprintf(buf, v > 0 ? "+Inf" : "-Inf");
  if (v == floor(v) && fabs(v) < 1e15) {
    if (v < 0) {
      buf[0] = '-';
      return 1 + halo_metrics_format_u64(buf + 1, (uint64_t)-v);
    }
    return halo_metrics_format_u64(buf, (uint64_t)v);
  }
  int n = 0;
  for (int prec = 15; prec <= 17; prec++) {
    n = snprintf(buf, 32, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  return (size_t)n;
}

void halo_mbuf_double(halo_mbuf_t *b, double v) {
  char buf[32];
  put(b, buf, halo_metrics_format_double(buf, v));
}

/* The length of the well-formed UTF-8 sequence at s (s[0] >= 0x80), 0 when
 * it is not one (overlong, surrogate, past U+10FFFF, cut short). */
static int utf8_len(const unsigned char *s) {
  unsigned char lo = 0x80, hi = 0xBF;
  int n;
  if (s[0] >= 0xC2 && s[0] <= 0xDF) n = 2;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF) n = 3, lo = s[0] == 0xE0 ? 0xA0 : 0x80, hi = s[0] == 0xED ? 0x9F : 0xBF;
  else if (s[0] >= 0xF0 && s[0] <= 0xF4) n = 4, lo = s[0] == 0xF0 ? 0x90 : 0x80, hi = s[0] == 0xF4 ? 0x8F : 0xBF;
  else return 0;
  if (s[1] < lo || s[1] > hi) return 0; /* a NUL ends the check here */
  for (int i = 2; i < n; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return n;
}

/* Label values escape \\, " and newline; HELP text \\ and newline. A byte
 * that is not UTF-8 (names of processes and events may hold any) becomes
 * U+FFFD: Prometheus refuses a scrape with a label value that is not UTF-8. */
static void put_escaped(halo_mbuf_t *b, const char *s, int quote) {
  const char *run = s;
  for (;; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x80) {
      int n = utf8_len((const unsigned char *)s);
      if (n) {
        s += n - 1;
        continue;
      }
      put(b, run, (size_t)(s - run));
      put(b, "\xef\xbf\xbd", 3);
      run = s + 1;
      continue;
    }
    if (c > '\\' || (c != 0 && c != '\\' && c != '\n' && c != '"')) continue;
    if (!c) break;
    const char *rep = c == '\\' ? "\\\\" : c == '\n' ? "\\n" : quote ? "\\\"" : NULL;
    if (!rep) continue;
    put(b, run, (size_t)(s - run));
    put(b, rep, 2);
    run = s + 1;
  }
  put(b, run, (size_t)(s - run));
}

/* -- Writer -------------------------------------------------------------------- */

typedef struct order {
  uint32_t n;
  int idx[HALO_METRICS_MAX_LABELS + 1]; /* label indexes sorted by name; -1 = node */
} order_t;

static void label_order(const halo_mview_t *v, order_t *o) {
  o->n = 0;
  for (uint32_t k = 0; k < v->nlabels; k++) { /* insertion sort: a handful of labels */
    uint32_t j = o->n++;
    while (j > 0 && strcmp(v->labels[o->idx[j - 1]], v->labels[k]) > 0) {
      o->idx[j] = o->idx[j - 1];
      j--;
    }
    o->idx[j] = (int)k;
  }
  /* node goes before the first name greater than "node" */
  uint32_t at = 0;
  while (at < o->n && strcmp(v->labels[o->idx[at]], "node") < 0) at++;
  memmove(&o->idx[at + 1], &o->idx[at], (o->n - at) * sizeof o->idx[0]);
  o->idx[at] = -1;
  o->n++;
}

static int cmp_series(const void *a, const void *b, void *ud) {
  const halo_mview_series_t *x = a, *y = b;
  const order_t *o = ud;
  for (uint32_t i = 0; i < o->n; i++) {
    int k = o->idx[i];
    if (k < 0) continue;
    int c = strcmp(x->values[k], y->values[k]);
    if (c) return c;
  }
  return 0;
}

static void put_labels(halo_mbuf_t *b, const halo_mview_t *v, const order_t *o, const char *node,
                       const halo_mview_series_t *s, const char *le) {
  put(b, "{", 1);
  for (uint32_t i = 0; i < o->n; i++) {
    int k = o->idx[i];
    if (i) put(b, ",", 1);
    halo_mbuf_puts(b, k < 0 ? "node" : v->labels[k]);
    put(b, "=\"", 2);
    put_escaped(b, k < 0 ? node : s->values[k], 1);
    put(b, "\"", 1);
  }
  if (le) {
    put(b, ",le=\"", 5);
    halo_mbuf_puts(b, le);
    put(b, "\"", 1);
  }
  put(b, "} ", 2);
}

static void put_sample(halo_mbuf_t *b, const char *name, const char *suffix, const halo_mview_t *v,
                       const order_t *o, const char *node, const halo_mview_series_t *s, const char *le,
                       double value) {
  halo_mbuf_puts(b, name);
  if (suffix) halo_mbuf_puts(b, suffix);
  put_labels(b, v, o, node, s, le);
  halo_mbuf_double(b, value);
  put(b, "\n", 1);
}

void halo_metrics_write(halo_mbuf_t *b, const char *node, halo_mview_t *v) {
  static const char *const types[] = {"counter", "gauge", "histogram", "gauge", "untyped"};
  if (!v->nseries) return;
  order_t o;
  label_order(v, &o);
  if (v->nseries > 1) qsort_r(v->series, v->nseries, sizeof *v->series, cmp_series, &o);
  put(b, "# HELP ", 7);
  halo_mbuf_puts(b, v->name);
  put(b, " ", 1);
  put_escaped(b, v->help ? v->help : "", 0);
  put(b, "\n# TYPE ", 8);
  halo_mbuf_puts(b, v->name);
  put(b, " ", 1);
  halo_mbuf_puts(b, types[v->type]);
  put(b, "\n", 1);
  for (uint32_t i = 0; i < v->nseries; i++) {
    const halo_mview_series_t *s = &v->series[i];
    if (v->type != HALO_METRIC_HISTOGRAM) {
      put_sample(b, v->name, NULL, v, &o, node, s, NULL, s->value);
      continue;
    }
    uint64_t cum = 0;
    char le[32];
    for (uint32_t k = 0; k <= v->nbuckets; k++) {
      cum += s->counts[k];
      if (k < v->nbuckets) halo_metrics_format_double(le, v->buckets[k]);
      else strcpy(le, "+Inf");
      put_sample(b, v->name, "_bucket", v, &o, node, s, le, (double)cum);
    }
    put_sample(b, v->name, "_sum", v, &o, node, s, NULL, s->value);
    put_sample(b, v->name, "_count", v, &o, node, s, NULL, (double)s->count);
  }
}

/* -- Registry: validation ------------------------------------------------------ */

struct halo_metric_series {
  char *key;
  char **values;
  double value; /* counter and gauge value, histogram sum */
  uint64_t count;
  uint64_t *counts;
};

struct halo_top_entry {
  double k;      /* the value, negated for min order: the heap keeps the smallest k at its root */
  double v;
  uint64_t seq;
  char *key;
  char **values;
};

static int fail(halo_metrics_t *m, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(halo_metrics_t *m, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->err, sizeof m->err, fmt, ap);
  va_end(ap);
  return code;
}

static int name_ok(const char *s, int colon) {
  if (!*s) return 0;
  for (const char *c = s; *c; c++) {
    int alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || (colon && *c == ':');
    if (!alpha && !(c > s && *c >= '0' && *c <= '9')) return 0;
  }
  return 1;
}

int halo_metrics_check_name(halo_metrics_t *m, const char *name) {
  if (!name_ok(name, 1)) return fail(m, HALO_EINCORRECT, "invalid metric name \"%s\" (want [a-zA-Z_:][a-zA-Z0-9_:]*)", name);
  if (!strncmp(name, "halo_", 5)) return fail(m, HALO_EINCORRECT, "metric \"%s\" is reserved for internal use", name);
  return 0;
}

/* A histogram writes series name_bucket, name_sum and name_count: a family
 * of such a name next to it would read as a second HELP of the histogram. */
static int check_suffixes(halo_metrics_t *m, const halo_metric_def_t *d) {
  static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
  size_t len = strlen(d->name);
  char *other = malloc(len + 8);
  if (!other) return fail(m, HALO_ENOMEM, "out of memory");
  int rc = 0;
  for (int i = 0; !rc && i < 3; i++) {
    size_t sl = strlen(suffixes[i]);
    halo_metric_family_t *f;
    if (len > sl && !strcmp(d->name + len - sl, suffixes[i])) {
      memcpy(other, d->name, len - sl);
      other[len - sl] = 0;
      if ((f = halo_smap_get(&m->by_name, other)) && f->type == HALO_METRIC_HISTOGRAM)
        rc = fail(m, HALO_ETAKEN, "metric \"%s\" collides with histogram \"%s\"", d->name, other);
    }
    if (!rc && d->type == HALO_METRIC_HISTOGRAM) {
      memcpy(other, d->name, len);
      memcpy(other + len, suffixes[i], sl + 1);
      if (halo_smap_get(&m->by_name, other))
        rc = fail(m, HALO_ETAKEN, "histogram \"%s\" collides with metric \"%s\"", d->name, other);
    }
  }
  free(other);
  return rc;
}

static int check_def(halo_metrics_t *m, const halo_metric_def_t *d) {
  int rc = halo_metrics_check_name(m, d->name);
  if (rc) return rc;
  if (d->type < HALO_METRIC_COUNTER || d->type > HALO_METRIC_TOP)
    return fail(m, HALO_EINCORRECT, "metric \"%s\": unknown type", d->name);
  if (!d->help || !*d->help) return fail(m, HALO_EINCORRECT, "metric \"%s\": help text is required", d->name);
  if (d->nlabels > HALO_METRICS_MAX_LABELS)
    return fail(m, HALO_EINCORRECT, "metric \"%s\": more than %d labels", d->name, HALO_METRICS_MAX_LABELS);
  for (uint32_t i = 0; i < d->nlabels; i++) {
    const char *l = d->labels[i];
    if (!name_ok(l, 0)) return fail(m, HALO_EINCORRECT, "metric \"%s\": invalid label name \"%s\" (want [a-zA-Z_][a-zA-Z0-9_]*)", d->name, l);
    if (!strncmp(l, "__", 2))
      return fail(m, HALO_EINCORRECT, "metric \"%s\": label name \"%s\" is reserved (names starting with __ are Prometheus')", d->name, l);
    if (!strcmp(l, "node"))
      return fail(m, HALO_EINCORRECT, "metric \"%s\": label name \"node\" is reserved (the node label of every series)", d->name);
    if (!strcmp(l, "le") && d->type == HALO_METRIC_HISTOGRAM)
      return fail(m, HALO_EINCORRECT, "metric \"%s\": label name \"le\" is reserved for histogram buckets", d->name);
    for (uint32_t j = 0; j < i; j++)
      if (!strcmp(d->labels[j], l)) return fail(m, HALO_EINCORRECT, "metric \"%s\": duplicate label name \"%s\"", d->name, l);
  }
  if (d->type == HALO_METRIC_HISTOGRAM) {
    if (d->nbuckets > HALO_METRICS_MAX_BUCKETS)
      return fail(m, HALO_EINCORRECT, "metric \"%s\": more than %d buckets", d->name, HALO_METRICS_MAX_BUCKETS);
    for (uint32_t i = 0; i < d->nbuckets; i++) {
      if (!isfinite(d->buckets[i])) return fail(m, HALO_EINCORRECT, "metric \"%s\": buckets must be finite numbers", d->name);
      if (i && d->buckets[i] <= d->buckets[i - 1])
        return fail(m, HALO_EINCORRECT, "metric \"%s\": buckets must be strictly increasing", d->name);
    }
  }
  if (d->type == HALO_METRIC_TOP) {
    if (d->top_n < 1 || d->top_n > HALO_METRICS_MAX_TOP)
      return fail(m, HALO_EINCORRECT, "metric \"%s\": n must be 1..%d", d->name, HALO_METRICS_MAX_TOP);
    if (d->order != HALO_TOP_MAX && d->order != HALO_TOP_MIN)
      return fail(m, HALO_EINCORRECT, "metric \"%s\": order must be max or min", d->name);
  }
  if (halo_smap_get(&m->by_name, d->name)) return fail(m, HALO_ETAKEN, "metric \"%s\" is already registered", d->name);
  return check_suffixes(m, d);
}

/* -- Registry: families -------------------------------------------------------- */

void halo_metrics_init(halo_metrics_t *m) {
  memset(m, 0, sizeof *m);
  halo_smap_init(&m->by_name);
  halo_imap_init(&m->by_id);
}

static void family_free(halo_metric_family_t *f) {
  if (!f) return;
  for (uint32_t i = 0; i < f->nseries; i++) free(f->series[i]);
  for (uint32_t i = 0; i < f->heap_len; i++) free(f->heap[i].values);
  for (uint32_t i = 0; i < f->shown_len; i++) free(f->shown[i].values);
  free(f->series);
  free(f->heap);
  free(f->shown);
  halo_smap_destroy(&f->index);
  for (uint32_t i = 0; i < f->nlabels; i++) free(f->labels[i]);
  free(f->labels);
  free(f->buckets);
  free(f->name);
  free(f->help);
  free(f);
}

void halo_metrics_destroy(halo_metrics_t *m) {
  for (size_t i = 0; i < m->by_id.cap; i++)
    if (m->by_id.slots[i].val) family_free(m->by_id.slots[i].val);
  halo_smap_destroy(&m->by_name);
  halo_imap_destroy(&m->by_id);
}

int halo_metrics_register(halo_metrics_t *m, const halo_metric_def_t *d, halo_metric_family_t **out) {
  int rc = check_def(m, d);
  if (rc) return rc;
  halo_metric_family_t *f = calloc(1, sizeof *f);
  if (!f) return fail(m, HALO_ENOMEM, "out of memory");
  halo_smap_init(&f->index);
  f->type = d->type;
  f->order = d->order;
  f->owner = d->owner;
  f->name = strdup(d->name);
  f->help = strdup(d->help);
  f->labels = calloc(d->nlabels + 1, sizeof *f->labels);
  int bad = !f->name || !f->help || !f->labels;
  for (uint32_t i = 0; !bad && i < d->nlabels; i++, f->nlabels++) bad = !(f->labels[i] = strdup(d->labels[i]));
  if (!bad && d->type == HALO_METRIC_HISTOGRAM) {
    const double *bk = d->nbuckets ? d->buckets : halo_metrics_default_buckets;
    f->nbuckets = d->nbuckets ? d->nbuckets : 11;
    bad = !(f->buckets = malloc(f->nbuckets * sizeof *f->buckets));
    if (!bad) memcpy(f->buckets, bk, f->nbuckets * sizeof *f->buckets);
  }
  if (!bad && d->type == HALO_METRIC_TOP) {
    f->top_n = d->top_n;
    f->heap = calloc(f->top_n, sizeof *f->heap);
    f->shown = calloc(f->top_n, sizeof *f->shown);
    bad = !f->heap || !f->shown;
  }
  f->id = ++m->next_id;
  if (bad || halo_smap_put(&m->by_name, f->name, f)) {
    family_free(f);
    return fail(m, HALO_ENOMEM, "out of memory");
  }
  if (halo_imap_put(&m->by_id, f->id, f)) {
    halo_smap_del(&m->by_name, f->name);
    family_free(f);
    return fail(m, HALO_ENOMEM, "out of memory");
  }
  *out = f;
  return 0;
}

halo_metric_family_t *halo_metrics_find(halo_metrics_t *m, const char *name) { return halo_smap_get(&m->by_name, name); }

halo_metric_family_t *halo_metrics_get(halo_metrics_t *m, uint64_t id) { return halo_imap_get(&m->by_id, id); }

void halo_metrics_remove(halo_metrics_t *m, halo_metric_family_t *f) {
  halo_smap_del(&m->by_name, f->name);
  halo_imap_del(&m->by_id, f->id);
  family_free(f);
}

int halo_metrics_remove_owner(halo_metrics_t *m, uint64_t owner) {
  int n = 0;
  for (size_t i = 0; i < m->by_id.cap;) {
    halo_metric_family_t *f = m->by_id.slots[i].val;
    if (f && f->owner == owner) {
      halo_metrics_remove(m, f); /* backward-shift deletion may move another family into slot i */
      n++;
      continue;
    }
    i++;
  }
  return n;
}

/* -- Registry: series ------------------------------------------------------------ */

/* The key of a label set: "<len>:<bytes>" per value. */
static size_t key_len(const size_t *lens, uint32_t n) {
  size_t k = 1;
  for (uint32_t i = 0; i < n; i++) k += 21 + lens[i];
  return k;
}

static size_t key_make(char *out, const char *const *values, const size_t *lens, uint32_t n) {
  size_t at = 0;
  for (uint32_t i = 0; i < n; i++) {
    at += halo_metrics_format_u64(out + at, lens[i]);
    out[at++] = ':';
    memcpy(out + at, values[i], lens[i]);
    at += lens[i];
  }
  out[at] = 0;
  return at;
}

/* One block: the values array, the key, then each value NUL-terminated. */
static char **labels_copy(const char *key, size_t klen, const char *const *values, const size_t *lens, uint32_t n,
                          size_t head, void **block, char **key_out) {
  size_t size = head + (n + 1) * sizeof(char *) + klen + 1;
  for (uint32_t i = 0; i < n; i++) size += lens[i] + 1;
  char *b = malloc(size);
  if (!b) return NULL;
  char **vals = (char **)(b + head);
  char *at = (char *)(vals + n + 1);
  memcpy(at, key, klen + 1);
  *key_out = at;
  at += klen + 1;
  for (uint32_t i = 0; i < n; i++) {
    memcpy(at, values[i], lens[i]);
    at[lens[i]] = 0;
    vals[i] = at;
    at += lens[i] + 1;
  }
  vals[n] = NULL;
  *block = b;
  return vals;
}

static int check_values(halo_metrics_t *m, halo_metric_family_t *f, const char *const *values, const size_t *lens,
                        uint32_t n) {
  if (n != f->nlabels)
    return fail(m, HALO_EINCORRECT, "metric \"%s\" has %u label%s, got %u value%s", f->name, f->nlabels,
                f->nlabels == 1 ? "" : "s", n, n == 1 ? "" : "s");
  for (uint32_t i = 0; i < n; i++)
    if (memchr(values[i], 0, lens[i])) return fail(m, HALO_EINCORRECT, "metric \"%s\": a label value holds a NUL byte", f->name);
  return 0;
}

/* The series of a label set, created on first use; NULL with m->err set. */
static halo_metric_series_t *series_get(halo_metrics_t *m, halo_metric_family_t *f, const char *const *values,
                                        const size_t *lens, uint32_t n, int *rc) {
  if ((*rc = check_values(m, f, values, lens, n))) return NULL;
  char stack[512], *key = stack;
  size_t need = key_len(lens, n);
  if (need > sizeof stack && !(key = malloc(need))) {
    *rc = fail(m, HALO_ENOMEM, "out of memory");
    return NULL;
  }
  size_t klen = key_make(key, values, lens, n);
  halo_metric_series_t *s = f->last;
  if (!s || strcmp(s->key, key)) s = halo_smap_get(&f->index, key);
  if (!s) {
    size_t nc = f->type == HALO_METRIC_HISTOGRAM ? f->nbuckets + 1 : 0;
    void *block;
    char *skey;
    size_t head = sizeof *s + nc * sizeof(uint64_t);
    char **vals = labels_copy(key, klen, values, lens, n, head, &block, &skey);
    if (vals && f->nseries == f->capseries) {
      uint32_t cap = f->capseries ? f->capseries * 2 : 8;
      halo_metric_series_t **ns = realloc(f->series, cap * sizeof *ns);
      if (ns) {
        f->series = ns;
        f->capseries = cap;
      }
    }
    if (!vals || f->nseries == f->capseries || halo_smap_put(&f->index, skey, block)) {
      free(vals ? block : NULL);
      if (key != stack) free(key);
      *rc = fail(m, HALO_ENOMEM, "out of memory");
      return NULL;
    }
    s = block;
    memset(s, 0, head);
    s->key = skey;
    s->values = vals;
    s->counts = nc ? (uint64_t *)(s + 1) : NULL;
    f->series[f->nseries++] = s;
  }
  if (key != stack) free(key);
  f->last = s;
  return s;
}

static int wrong_type(halo_metrics_t *m, halo_metric_family_t *f, const char *what) {
  static const char *const names[] = {"counter", "gauge", "histogram", "top"};
  m->update_errors++;
  return fail(m, HALO_EINCORRECT, "metric \"%s\" is a %s: no %s", f->name, names[f->type], what);
}

int halo_metrics_add(halo_metrics_t *m, halo_metric_family_t *f, double v, const char *const *values,
                     const size_t *lens, uint32_t nvalues) {
  if (f->type != HALO_METRIC_COUNTER && f->type != HALO_METRIC_GAUGE) return wrong_type(m, f, "add");
  if (f->type == HALO_METRIC_COUNTER && !(v >= 0)) {
    m->update_errors++;
    return fail(m, HALO_EINCORRECT, "counter \"%s\" cannot decrease", f->name);
  }
  int rc;
  halo_metric_series_t *s = series_get(m, f, values, lens, nvalues, &rc);
  if (!s) return rc;
  s->value += v;
  return 0;
}

int halo_metrics_set(halo_metrics_t *m, halo_metric_family_t *f, double v, const char *const *values,
                     const size_t *lens, uint32_t nvalues) {
  if (f->type != HALO_METRIC_GAUGE) return wrong_type(m, f, "set");
  int rc;
  halo_metric_series_t *s = series_get(m, f, values, lens, nvalues, &rc);
  if (!s) return rc;
  s->value = v;
  return 0;
}

/* -- Top-N heap ------------------------------------------------------------------ */

/* The root is the worst entry: the smallest k, of equal ones the latest. */
static int worse(const halo_top_entry_t *a, const halo_top_entry_t *b) {
  return a->k < b->k || (a->k == b->k && a->seq > b->seq);
}

static void heap_down(halo_top_entry_t *h, uint32_t len, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, min = i;
    if (l < len && worse(&h[l], &h[min])) min = l;
    if (r < len && worse(&h[r], &h[min])) min = r;
    if (min == i) return;
    halo_top_entry_t t = h[i];
    h[i] = h[min];
    h[min] = t;
    i = min;
  }
}

static void heap_up(halo_top_entry_t *h, uint32_t i) {
  while (i) {
    uint32_t p = (i - 1) / 2;
    if (!worse(&h[i], &h[p])) return;
    halo_top_entry_t t = h[i];
    h[i] = h[p];
    h[p] = t;
    i = p;
  }
}

static int top_observe(halo_metrics_t *m, halo_metric_family_t *f, double v, const char *const *values,
                       const size_t *lens, uint32_t n) {
  int rc = check_values(m, f, values, lens, n);
  if (rc) return rc;
  if (isnan(v)) {
    m->update_errors++;
    return fail(m, HALO_EINCORRECT, "top \"%s\": NaN cannot be ranked", f->name);
  }
  double k = f->order == HALO_TOP_MAX ? v : -v;
  uint64_t seq = ++f->seq;
  int full = f->heap_len == f->top_n;
  if (full && !(k > f->heap[0].k)) return 0; /* ties keep the earlier entry */
  char stack[512], *key = stack;
  size_t need = key_len(lens, n);
  if (need > sizeof stack && !(key = malloc(need))) return fail(m, HALO_ENOMEM, "out of memory");
  size_t klen = key_make(key, values, lens, n);
  void *block;
  halo_top_entry_t e = {k, v, seq, NULL, NULL};
  e.values = labels_copy(key, klen, values, lens, n, 0, &block, &e.key);
  if (key != stack) free(key);
  if (!e.values) return fail(m, HALO_ENOMEM, "out of memory");
  if (full) {
    free(f->heap[0].values);
    f->heap[0] = e;
    heap_down(f->heap, f->heap_len, 0);
  } else {
    f->heap[f->heap_len] = e;
    heap_up(f->heap, f->heap_len++);
  }
  return 0;
}

int halo_metrics_observe(halo_metrics_t *m, halo_metric_family_t *f, double v, const char *const *values,
                         const size_t *lens, uint32_t nvalues) {
  if (f->type == HALO_METRIC_TOP) return top_observe(m, f, v, values, lens, nvalues);
  if (f->type != HALO_METRIC_HISTOGRAM) return wrong_type(m, f, "observe");
  if (isnan(v)) {
    m->update_errors++;
    return fail(m, HALO_EINCORRECT, "histogram \"%s\": NaN cannot be observed", f->name);
  }
  int rc;
  halo_metric_series_t *s = series_get(m, f, values, lens, nvalues, &rc);
  if (!s) return rc;
  uint32_t lo = 0, hi = f->nbuckets; /* the first bucket with v <= bound, nbuckets: +Inf */
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (v <= f->buckets[mid]) hi = mid;
    else lo = mid + 1;
  }
  s->counts[lo]++;
  s->count++;
  s->value += v;
  return 0;
}

/* Shown entries: by key, the best first, so duplicates of a label set follow their best. */
static int cmp_entry(const void *a, const void *b) {
  const halo_top_entry_t *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c) return c;
  if (x->k != y->k) return x->k > y->k ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void flush_one(halo_metric_family_t *f) {
  for (uint32_t i = 0; i < f->shown_len; i++) free(f->shown[i].values);
  halo_top_entry_t *t = f->shown;
  f->shown = f->heap;
  f->shown_len = f->heap_len;
  f->heap = t;
  f->heap_len = 0;
  qsort(f->shown, f->shown_len, sizeof *f->shown, cmp_entry);
  uint32_t out = 0;
  for (uint32_t i = 0; i < f->shown_len; i++) {
    if (out && !strcmp(f->shown[out - 1].key, f->shown[i].key)) {
      free(f->shown[i].values);
      continue;
    }
    f->shown[out++] = f->shown[i];
  }
  f->shown_len = out;
}

void halo_metrics_flush_top(halo_metrics_t *m, halo_metric_family_t *f) {
  if (f) {
    if (f->type == HALO_METRIC_TOP) flush_one(f);
    return;
  }
  for (size_t i = 0; i < m->by_id.cap; i++) {
    halo_metric_family_t *g = m->by_id.slots[i].val;
    if (g && g->type == HALO_METRIC_TOP) flush_one(g);
  }
}

/* -- Views ------------------------------------------------------------------------- */

int halo_metrics_views(halo_metrics_t *m, halo_mview_t **views, halo_mview_series_t **series) {
  size_t nf = m->by_id.len, ns = 0;
  for (size_t i = 0; i < m->by_id.cap; i++) {
    halo_metric_family_t *f = m->by_id.slots[i].val;
    if (f) ns += f->type == HALO_METRIC_TOP ? f->shown_len : f->nseries;
  }
  *views = malloc((nf ? nf : 1) * sizeof **views);
  *series = malloc((ns ? ns : 1) * sizeof **series);
  if (!*views || !*series) {
    free(*views);
    free(*series);
    *views = NULL;
    *series = NULL;
    return -1;
  }
  int nv = 0;
  halo_mview_series_t *at = *series;
  for (size_t i = 0; i < m->by_id.cap; i++) {
    halo_metric_family_t *f = m->by_id.slots[i].val;
    if (!f) continue;
    halo_mview_t *v = &(*views)[nv++];
    *v = (halo_mview_t){f->name, f->help, f->type, f->nlabels, (const char *const *)f->labels,
                        f->nbuckets, f->buckets, at, 0};
    if (f->type == HALO_METRIC_TOP) {
      for (uint32_t k = 0; k < f->shown_len; k++)
        at[v->nseries++] = (halo_mview_series_t){(const char *const *)f->shown[k].values, f->shown[k].v, NULL, 0};
    } else {
      for (uint32_t k = 0; k < f->nseries; k++) {
        halo_metric_series_t *s = f->series[k];
        at[v->nseries++] = (halo_mview_series_t){(const char *const *)s->values, s->value, s->counts, s->count};
      }
    }
    at += v->nseries;
  }
  return nv;
}
