/*
 * Metrics: a registry of custom metric families (counter, gauge, histogram,
 * top-N) and the Prometheus text exposition (format 0.0.4).
 *
 * A family has a name, help text, label names, an owner (a process id, 0 =
 * none) and series keyed by label values. Every series also carries the
 * const label `node`, added when the text is written. Top-N families keep a
 * bounded heap per interval (a candidate enters while the heap has room,
 * then only when strictly better than the worst entry, which it replaces:
 * ties keep the earlier entry); halo_metrics_flush_top() makes the heap the
 * shown series and starts a new one.
 *
 * The writer works on views (halo_mview_t): plain arrays of series that the
 * registry's families and the built-in collector (collect.h) both produce,
 * so one function writes every family. Families are written sorted by name,
 * series by label values, label pairs by label name; a family without
 * series writes nothing.
 */
#ifndef HALO_METRICS_H
#define HALO_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"

enum halo_metric_type { HALO_METRIC_COUNTER, HALO_METRIC_GAUGE, HALO_METRIC_HISTOGRAM, HALO_METRIC_TOP,
                        HALO_METRIC_UNTYPED /* views only: a built-in count that can fall, named _total */ };
enum halo_metric_order { HALO_TOP_MAX, HALO_TOP_MIN };

#define HALO_METRICS_MAX_LABELS 16
#define HALO_METRICS_MAX_BUCKETS 64
#define HALO_METRICS_MAX_TOP 10000

/* -- Text buffer ------------------------------------------------------------ */

/** A growing byte buffer; oom is set (and further appends dropped) when
 *  memory runs out. */
typedef struct halo_mbuf {
  char *p;
  size_t len, cap;
  int oom;
} halo_mbuf_t;

void halo_mbuf_put(halo_mbuf_t *b, const char *s, size_t n);
void halo_mbuf_puts(halo_mbuf_t *b, const char *s);
/** Appends v in Prometheus' form: integers plain, otherwise the shortest
 *  form that reads back as v; "+Inf", "-Inf", "NaN". */
void halo_mbuf_double(halo_mbuf_t *b, double v);
/** Writes v in decimal into buf (at least 21 bytes, NUL added); returns the length. */
size_t halo_metrics_format_u64(char *buf, uint64_t v);
/** Writes v as halo_mbuf_double does into buf (at least 32 bytes); returns the length. */
size_t halo_metrics_format_double(char *buf, double v);

/* -- Views and the writer --------------------------------------------------- */

typedef struct halo_mview_series {
  const char *const *values; /* one per label name, in the family's label order */
  double value;              /* counter, gauge, top */
  const uint64_t *counts;    /* histogram: per bucket (not cumulative), then +Inf */
  uint64_t count;            /* histogram */
} halo_mview_series_t;

typedef struct halo_mview {
  const char *name, *help;
  int type;                  /* enum halo_metric_type; TOP is written as a gauge */
  uint32_t nlabels;
  const char *const *labels;
  uint32_t nbuckets;
  const double *buckets;     /* upper bounds, +Inf implied */
  halo_mview_series_t *series; /* sorted in place by the writer */
  uint32_t nseries;
} halo_mview_t;

/** Writes one family (nothing when it has no series), with label node="node". */
void halo_metrics_write(halo_mbuf_t *b, const char *node, halo_mview_t *v);

/* -- Registry ---------------------------------------------------------------- */

typedef struct halo_metric_series halo_metric_series_t;
typedef struct halo_top_entry halo_top_entry_t;

typedef struct halo_metric_family {
  uint64_t id;               /* unique in its registry, never reused */
  char *name, *help;
  int type, order;
  uint64_t owner;
  uint32_t nlabels;
  char **labels;
  uint32_t nbuckets;
  double *buckets;
  halo_smap_t index;         /* series key -> series */
  halo_metric_series_t **series;
  uint32_t nseries, capseries;
  halo_metric_series_t *last;/* the series the last update used */
  uint32_t top_n;
  halo_top_entry_t *heap, *shown; /* top_n slots each */
  uint32_t heap_len, shown_len;
  uint64_t seq;              /* observations so far (orders ties) */
} halo_metric_family_t;

typedef struct halo_metrics {
  halo_smap_t by_name;
  halo_imap_t by_id;
  uint64_t next_id;
  uint64_t update_errors;    /* updates refused at run time (unknown family, bad value) */
  char err[256];             /* why the last call failed */
} halo_metrics_t;

typedef struct halo_metric_def {
  const char *name, *help;
  int type;
  const char *const *labels;
  uint32_t nlabels;
  const double *buckets;     /* histogram; NULL or 0 buckets: Prometheus' defaults */
  uint32_t nbuckets;
  uint32_t top_n;            /* top: 1..HALO_METRICS_MAX_TOP */
  int order;                 /* top: enum halo_metric_order */
  uint64_t owner;
} halo_metric_def_t;

void halo_metrics_init(halo_metrics_t *m);
void halo_metrics_destroy(halo_metrics_t *m);

/** Checks a definition and registers it. 0 with *out set, or HALO_EINCORRECT
 *  (bad name, labels, buckets, a reserved name: m->err says which),
 *  HALO_ETAKEN (the name is registered) or HALO_ENOMEM. */
int halo_metrics_register(halo_metrics_t *m, const halo_metric_def_t *d, halo_metric_family_t **out);
/** 0 when name may be a metric name, else HALO_EINCORRECT with m->err set. */
int halo_metrics_check_name(halo_metrics_t *m, const char *name);
halo_metric_family_t *halo_metrics_find(halo_metrics_t *m, const char *name);
halo_metric_family_t *halo_metrics_get(halo_metrics_t *m, uint64_t id);
/** Removes a family and its series. */
void halo_metrics_remove(halo_metrics_t *m, halo_metric_family_t *f);
/** Removes every family of owner; returns how many went. */
int halo_metrics_remove_owner(halo_metrics_t *m, uint64_t owner);

/** Updates with the label values of one series (nvalues must equal the
 *  family's label count; values contain no NUL). add: counter (v >= 0) and
 *  gauge; set: gauge; observe: histogram and top. 0, HALO_EINCORRECT (wrong
 *  type, count or value: m->err) or HALO_ENOMEM. */
int halo_metrics_add(halo_metrics_t *m, halo_metric_family_t *f, double v, const char *const *values,
                     const size_t *lens, uint32_t nvalues);
int halo_metrics_set(halo_metrics_t *m, halo_metric_family_t *f, double v, const char *const *values,
                     const size_t *lens, uint32_t nvalues);
int halo_metrics_observe(halo_metrics_t *m, halo_metric_family_t *f, double v, const char *const *values,
                         const size_t *lens, uint32_t nvalues);

/** Top families: the heap of the interval becomes the shown series (one per
 *  label set, the best value) and a new interval starts. f NULL: every top family. */
void halo_metrics_flush_top(halo_metrics_t *m, halo_metric_family_t *f);

/** Views of every family (malloc'ed into *views, their series into
 *  *series: the caller frees both once written); returns how many, or -1
 *  when out of memory. Valid until the registry next changes. */
int halo_metrics_views(halo_metrics_t *m, halo_mview_t **views, halo_mview_series_t **series);

/** Prometheus' default histogram buckets (.005 .. 10). */
extern const double halo_metrics_default_buckets[11];

#endif
