/* The metric registry, the top-N heap and the exposition writer; the
 * catalogue of built-in families. */
#include "check.h"
#include "clock.h"
#include "collect.h"
#include "errors.h"
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static halo_metric_family_t *reg(halo_metrics_t *m, int type, const char *name, const char *const *labels, uint32_t n,
                                 uint64_t owner) {
  halo_metric_def_t d = {name, "help", type, labels, n, NULL, 0, 3, HALO_TOP_MAX, owner};
  halo_metric_family_t *f = NULL;
  int rc = halo_metrics_register(m, &d, &f);
  if (rc) fprintf(stderr, "register %s: %s\n", name, m->err);
  return f;
}

static int def_fails(halo_metrics_t *m, halo_metric_def_t d, int code, const char *text) {
  halo_metric_family_t *f;
  int rc = halo_metrics_register(m, &d, &f);
  if (rc != code || !strstr(m->err, text)) {
    fprintf(stderr, "want %d \"%s\", got %d \"%s\"\n", code, text, rc, m->err);
    return 0;
  }
  return 1;
}

static void test_validation(void) {
  halo_metrics_t m;
  halo_metrics_init(&m);
  const char *dup[] = {"a", "a"}, *node[] = {"node"}, *le[] = {"le"}, *under[] = {"__x"}, *bad[] = {"1x"};
  double dec[] = {1, 0.5}, eq[] = {1, 1}, inf[] = {1, INFINITY};
  halo_metric_def_t base = {"ok_total", "help", HALO_METRIC_COUNTER, NULL, 0, NULL, 0, 0, 0, 1};
  halo_metric_def_t d = base;
  d.name = "9bad";
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "invalid metric name \"9bad\""));
  d.name = "bad-name";
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "invalid metric name"));
  d.name = "halo_mine";
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "metric \"halo_mine\" is reserved for internal use"));
  d = base;
  d.labels = dup, d.nlabels = 2;
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "duplicate label name \"a\""));
  d.labels = node, d.nlabels = 1;
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "label name \"node\" is reserved"));
  d.labels = under;
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "label name \"__x\" is reserved"));
  d.labels = bad;
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "invalid label name \"1x\""));
  d.labels = le;
  d.type = HALO_METRIC_HISTOGRAM;
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "label name \"le\" is reserved for histogram"));
  d = base;
  d.type = HALO_METRIC_HISTOGRAM;
  d.buckets = dec, d.nbuckets = 2;
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "strictly increasing"));
  d.buckets = eq;
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "strictly increasing"));
  d.buckets = inf;
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "finite"));
  d = base;
  d.help = "";
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "help text is required"));
  d = base;
  d.type = HALO_METRIC_TOP, d.top_n = 0;
  CHECK(def_fails(&m, d, HALO_EINCORRECT, "n must be"));
  CHECK(reg(&m, HALO_METRIC_COUNTER, "ok_total", NULL, 0, 1) != NULL);
  CHECK(def_fails(&m, base, HALO_ETAKEN, "metric \"ok_total\" is already registered"));
  /* le is an ordinary label outside histograms; colons are allowed in names */
  CHECK(reg(&m, HALO_METRIC_GAUGE, "ns:le_gauge", le, 1, 1) != NULL);
  halo_metric_def_t h = base;
  h.name = "h_default", h.type = HALO_METRIC_HISTOGRAM;
  halo_metric_family_t *f;
  CHECK_EQ(halo_metrics_register(&m, &h, &f), 0);
  CHECK_EQ(f->nbuckets, 11);
  CHECK(f->buckets[0] == .005 && f->buckets[10] == 10);
  /* a histogram's series names (_bucket, _sum, _count) are not free for other
   * families, either way round: the text format could not tell them apart */
  d = base;
  d.name = "h_default_count", d.type = HALO_METRIC_GAUGE;
  CHECK(def_fails(&m, d, HALO_ETAKEN, "metric \"h_default_count\" collides with histogram \"h_default\""));
  d.name = "h_default_bucket";
  CHECK(def_fails(&m, d, HALO_ETAKEN, "collides with histogram \"h_default\""));
  d.name = "h_default_sum", d.type = HALO_METRIC_HISTOGRAM;
  CHECK(def_fails(&m, d, HALO_ETAKEN, "collides with histogram \"h_default\""));
  CHECK(reg(&m, HALO_METRIC_GAUGE, "later_sum", NULL, 0, 1) != NULL);
  d.name = "later";
  CHECK(def_fails(&m, d, HALO_ETAKEN, "histogram \"later\" collides with metric \"later_sum\""));
  d.type = HALO_METRIC_GAUGE; /* a gauge may take the name */
  CHECK(reg(&m, HALO_METRIC_GAUGE, "later", NULL, 0, 1) != NULL);
  CHECK(reg(&m, HALO_METRIC_GAUGE, "_count", NULL, 0, 1) != NULL);
  halo_metrics_destroy(&m);
}

static char *expose(halo_metrics_t *m, const char *node) {
  halo_mview_t *views;
  halo_mview_series_t *series;
  int n = halo_metrics_views(m, &views, &series);
  halo_mbuf_t b = {0};
  for (int i = 0; i < n; i++) halo_metrics_write(&b, node, &views[i]);
  halo_mbuf_put(&b, "", 1);
  free(views);
  free(series);
  return b.p;
}

static void test_exposition(void) {
  halo_metrics_t m;
  halo_metrics_init(&m);
  const char *st[] = {"status"}, *zb[] = {"z", "b"};
  halo_metric_family_t *c = reg(&m, HALO_METRIC_COUNTER, "req_total", st, 1, 1);
  const char *ok[] = {"ok"}, *err[] = {"e\"r\\r\n"};
  size_t okl[] = {2}, errl[] = {6};
  CHECK_EQ(halo_metrics_add(&m, c, 2, ok, okl, 1), 0);
  CHECK_EQ(halo_metrics_add(&m, c, 1.5, err, errl, 1), 0);
  CHECK_EQ(halo_metrics_add(&m, c, -1, ok, okl, 1), HALO_EINCORRECT);
  CHECK_EQ(halo_metrics_add(&m, c, 1, NULL, NULL, 0), HALO_EINCORRECT);
  CHECK(strstr(m.err, "has 1 label, got 0 values") != NULL);
  CHECK_EQ(halo_metrics_set(&m, c, 1, ok, okl, 1), HALO_EINCORRECT);
  halo_metric_family_t *g = reg(&m, HALO_METRIC_GAUGE, "g", zb, 2, 1);
  const char *v1[] = {"1", "x"}, *v2[] = {"0", "y"};
  size_t l1[] = {1, 1};
  CHECK_EQ(halo_metrics_set(&m, g, 1e20, v1, l1, 2), 0);
  CHECK_EQ(halo_metrics_set(&m, g, -0.25, v2, l1, 2), 0);
  halo_metric_def_t hd = {"lat", "Latency\\ in\nseconds", HALO_METRIC_HISTOGRAM, NULL, 0, (double[]){0.1, 1}, 2, 0, 0, 1};
  halo_metric_family_t *h;
  CHECK_EQ(halo_metrics_register(&m, &hd, &h), 0);
  for (double v = 0.05; v < 3; v += 0.5) CHECK_EQ(halo_metrics_observe(&m, h, v, NULL, NULL, 0), 0);
  reg(&m, HALO_METRIC_GAUGE, "empty", NULL, 0, 1);
  halo_metric_family_t *sp = reg(&m, HALO_METRIC_GAUGE, "special", st, 1, 1);
  const char *a[] = {"a"}, *bb[] = {"b"}, *cc[] = {"c"};
  size_t one[] = {1};
  halo_metrics_set(&m, sp, INFINITY, a, one, 1);
  halo_metrics_set(&m, sp, -INFINITY, bb, one, 1);
  halo_metrics_set(&m, sp, NAN, cc, one, 1);
  char *text = expose(&m, "n@h");
  /* views come in registry order; the writer sorts series and label pairs */
  CHECK(strstr(text, "# HELP req_total help\n# TYPE req_total counter\n"
                     "req_total{node=\"n@h\",status=\"e\\\"r\\\\r\\n\"} 1.5\n"
                     "req_total{node=\"n@h\",status=\"ok\"} 2\n") != NULL);
  CHECK(strstr(text, "# TYPE g gauge\ng{b=\"x\",node=\"n@h\",z=\"1\"} 1e+20\ng{b=\"y\",node=\"n@h\",z=\"0\"} -0.25\n") != NULL);
  CHECK(strstr(text, "# HELP lat Latency\\\\ in\\nseconds\n# TYPE lat histogram\n"
                     "lat_bucket{node=\"n@h\",le=\"0.1\"} 1\n"
                     "lat_bucket{node=\"n@h\",le=\"1\"} 2\n"
                     "lat_bucket{node=\"n@h\",le=\"+Inf\"} 6\n"
                     "lat_sum{node=\"n@h\"} 7.8\n"
                     "lat_count{node=\"n@h\"} 6\n") != NULL);
  CHECK(strstr(text, "empty") == NULL);
  if (check_failures) fputs(text, stderr);
  CHECK(strstr(text, "special{node=\"n@h\",status=\"a\"} +Inf\nspecial{node=\"n@h\",status=\"b\"} -Inf\n"
                     "special{node=\"n@h\",status=\"c\"} NaN\n") != NULL);
  free(text);
  char buf[32];
  halo_metrics_format_double(buf, 0.1);
  CHECK_STR_EQ(buf, "0.1");
  halo_metrics_format_double(buf, 1.0 / 3);
  CHECK_STR_EQ(buf, "0.3333333333333333");
  halo_metrics_format_double(buf, 123456789012);
  CHECK_STR_EQ(buf, "123456789012");
  halo_metrics_format_double(buf, -7);
  CHECK_STR_EQ(buf, "-7");
  halo_metrics_destroy(&m);
}

/* Label values and HELP text come from process, behavior and event names:
 * bytes that are not UTF-8 would make Prometheus refuse the whole scrape,
 * so each such byte is written as U+FFFD; valid sequences stay. */
static void test_utf8(void) {
  halo_metrics_t m;
  halo_metrics_init(&m);
  const char *k[] = {"k"};
  halo_metric_def_t d = {"u", "h\xff\xc3\xa9", HALO_METRIC_GAUGE, k, 1, NULL, 0, 0, 0, 1};
  halo_metric_family_t *f;
  CHECK_EQ(halo_metrics_register(&m, &d, &f), 0);
  static const char *const in[] = {"a\xff" "b", "\xe2\x82", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                   "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e", "z\x80\""};
  for (int i = 0; i < 7; i++) {
    size_t len = strlen(in[i]);
    CHECK_EQ(halo_metrics_set(&m, f, i, &in[i], &len, 1), 0);
  }
  char *text = expose(&m, "n");
#define R "\xef\xbf\xbd"
  CHECK(strstr(text, "# HELP u h" R "\xc3\xa9\n") != NULL);
  CHECK(strstr(text, "u{k=\"a" R "b\",node=\"n\"} 0\n") != NULL);
  CHECK(strstr(text, "u{k=\"" R R "\",node=\"n\"} 1\n") != NULL);
  CHECK(strstr(text, "u{k=\"" R R "\",node=\"n\"} 2\n") != NULL);
  CHECK(strstr(text, "u{k=\"" R R R "\",node=\"n\"} 3\n") != NULL);
  CHECK(strstr(text, "u{k=\"" R R R R "\",node=\"n\"} 4\n") != NULL);
  CHECK(strstr(text, "u{k=\"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\",node=\"n\"} 5\n") != NULL);
  CHECK(strstr(text, "u{k=\"z" R "\\\"\",node=\"n\"} 6\n") != NULL);
#undef R
  if (check_failures) fputs(text, stderr);
  free(text);
  halo_metrics_destroy(&m);
}

static void test_top(void) {
  halo_metrics_t m;
  halo_metrics_init(&m);
  const char *k[] = {"k"};
  halo_metric_family_t *t = reg(&m, HALO_METRIC_TOP, "top", k, 1, 7); /* n = 3, max */
  static const char *names[] = {"a", "b", "c", "d", "e", "f"};
  double vals[] = {5, 1, 5, 3, 1, 5};
  size_t one[] = {1};
  for (int i = 0; i < 6; i++) CHECK_EQ(halo_metrics_observe(&m, t, vals[i], &names[i], one, 1), 0);
  char *text = expose(&m, "n");
  CHECK(strstr(text, "top") == NULL); /* nothing shown before the first flush */
  free(text);
  halo_metrics_flush_top(&m, NULL);
  text = expose(&m, "n");
  /* a, b, c fill the heap; d (3) replaces the minimum b (1), e (1) does not
   * enter, f (5) replaces d */
  CHECK(strstr(text, "top{k=\"a\",node=\"n\"} 5\ntop{k=\"c\",node=\"n\"} 5\ntop{k=\"f\",node=\"n\"} 5\n") != NULL);
  CHECK(strstr(text, "k=\"d\"") == NULL);
  free(text);
  /* ties at the boundary keep the earlier entry; the same label set shows once, its best value */
  const char *x[] = {"x"}, *y[] = {"y"}, *z[] = {"z"}, *w[] = {"w"};
  halo_metrics_observe(&m, t, 2, x, one, 1);
  halo_metrics_observe(&m, t, 4, x, one, 1);
  halo_metrics_observe(&m, t, 2, y, one, 1);
  halo_metrics_observe(&m, t, 2, z, one, 1);
  halo_metrics_observe(&m, t, 2, w, one, 1);
  halo_metrics_flush_top(&m, t);
  text = expose(&m, "n");
  CHECK(strstr(text, "top{k=\"x\",node=\"n\"} 4\ntop{k=\"y\",node=\"n\"} 2\n") != NULL);
  CHECK(strstr(text, "k=\"z\"") == NULL && strstr(text, "k=\"w\"") == NULL && strstr(text, "k=\"a\"") == NULL);
  free(text);
  /* min order keeps the lowest */
  halo_metric_def_t d = {"bottom", "help", HALO_METRIC_TOP, k, 1, NULL, 0, 2, HALO_TOP_MIN, 7};
  halo_metric_family_t *b;
  CHECK_EQ(halo_metrics_register(&m, &d, &b), 0);
  for (int i = 0; i < 6; i++) halo_metrics_observe(&m, b, vals[i], &names[i], one, 1);
  CHECK_EQ(halo_metrics_observe(&m, b, NAN, names, one, 1), HALO_EINCORRECT);
  halo_metrics_flush_top(&m, b);
  text = expose(&m, "n");
  CHECK(strstr(text, "bottom{k=\"b\",node=\"n\"} 1\nbottom{k=\"e\",node=\"n\"} 1\n") != NULL);
  free(text);
  /* an empty interval shows nothing after its flush */
  halo_metrics_flush_top(&m, NULL);
  text = expose(&m, "n");
  CHECK(strstr(text, "top") == NULL && strstr(text, "bottom") == NULL);
  free(text);
  halo_metrics_destroy(&m);
}

static void test_owner(void) {
  halo_metrics_t m;
  halo_metrics_init(&m);
  for (int i = 0; i < 50; i++) {
    char name[16];
    snprintf(name, sizeof name, "m%d", i);
    reg(&m, HALO_METRIC_GAUGE, name, NULL, 0, (uint64_t)(i % 3 + 1));
  }
  uint64_t id = halo_metrics_find(&m, "m1")->id;
  CHECK_EQ(halo_metrics_remove_owner(&m, 2), 17);
  CHECK(halo_metrics_find(&m, "m1") == NULL);
  CHECK(halo_metrics_get(&m, id) == NULL);
  CHECK(halo_metrics_find(&m, "m0") != NULL);
  CHECK_EQ(m.by_id.len, 33);
  CHECK_EQ(m.by_name.len, 33);
  CHECK(reg(&m, HALO_METRIC_GAUGE, "m1", NULL, 0, 9) != NULL); /* the name is free again */
  CHECK(halo_metrics_find(&m, "m1")->id != id);
  halo_metrics_destroy(&m);
}

static void test_catalogue(void) {
  CHECK_EQ(halo_collect_nfamilies, 73);
  for (int i = 1; i < halo_collect_nfamilies; i++)
    CHECK(strcmp(halo_collect_families[i - 1].name, halo_collect_families[i].name) < 0);
  CHECK(halo_collect_absent[0] == NULL);
}

/* A node record built by hand (no loop): the pass reads only the records,
 * so times are set relative to the clock instead of waited for. */
typedef struct fake {
  halo_proc_t p;
  halo_msg_t msg;
} fake_t;

static void fake_add(halo_node_t *n, fake_t *f, uint64_t id, const char *name, uint64_t up_s, uint64_t in,
                     uint64_t run_ns, uint64_t latency_ns, int state, uint64_t now) {
  memset(f, 0, sizeof *f);
  f->p.id = id;
  f->p.name = (char *)name;
  f->p.behavior = "fake.behavior";
  f->p.application = "app";
  f->p.state = (uint8_t)state;
  f->p.t_spawn = now - up_s * 1000000000u - 1000;
  f->p.msgs_in = in;
  f->p.wakeups = in ? 2 : 0;
  f->p.running_ns = run_ns;
  f->p.init_ns = id == 1 ? 5000000 : 0;
  if (latency_ns) {
    f->msg.t_enq = now - latency_ns;
    f->p.mb.main.head = f->p.mb.main.tail = &f->msg;
    f->p.mb.main.len = 1;
  }
  if (n->last) n->last->next = &f->p;
  else n->first = &f->p;
  f->p.prev = n->last;
  n->last = &f->p;
  n->nprocs++;
  n->state_count[halo_state_index(state)]++;
  halo_imap_put(&n->procs, id, &f->p);
}

static double sample(const char *text, const char *prefix) {
  const char *at = strstr(text, prefix);
  return at ? strtod(at + strlen(prefix), NULL) : -1;
}

static void test_collect(void) {
  static halo_node_t n;
  memset(&n, 0, sizeof n);
  n.name = "t@h";
  n.crc = 0xABCDEF01;
  uint64_t now = halo_clock_ns();
  n.t_start = now - 200000000000ull;
  static fake_t f[7];
  fake_add(&n, &f[0], 1, "stuck", 120, 10, 1000000000, 1500000000, HALO_STATE_SLEEP, now);   /* score 1e9 / (120 x 1.5e9) */
  fake_add(&n, &f[1], 2, "young", 30, 10, 1000000, 1500000000, HALO_STATE_SLEEP, now);       /* uptime < 60 s */
  fake_add(&n, &f[2], 3, "idle_in", 120, 0, 1000000, 1500000000, HALO_STATE_SLEEP, now);     /* no messages in */
  fake_add(&n, &f[3], 4, "empty", 120, 5, 1000000, 0, HALO_STATE_SLEEP, now);                /* no latency */
  fake_add(&n, &f[4], 5, "zombee", 120, 10, 1000000, 1500000000, HALO_STATE_ZOMBEE, now);    /* a zombee */
  fake_add(&n, &f[5], 6, "worst", 120, 10, 1000000, 9500000000ull, HALO_STATE_SLEEP, now);  /* lowest score */
  fake_add(&n, &f[6], 7, "newborn", 0, 0, 0, 0, HALO_STATE_RUNNING, now);                    /* uptime 0 */
  n.log.counts[2] = 7;
  halo_collect_opts_t o = {.top_n = 2, .lua_heap = 1000, .apps_total = 3, .apps_running = 2};
  halo_mbuf_t b = {0};
  CHECK_EQ(halo_collect_expose(&n, NULL, &o, &b), 0);
  halo_mbuf_put(&b, "", 1);
  const char *t = b.p;
#define PL(family, name, id) \
  "halo_" family "{application=\"app\",behavior=\"fake.behavior\",name=\"" name "\",node=\"t@h\",pid=\"<ABCDEF01.0." #id ">\"} "
  /* liveness: bottom 2 of the eligible (stuck 1/180, worst 1e6 / (120 x 9.5e9)), young, idle_in, empty, zombee out */
  double stuck = sample(t, PL("process_liveness_bottom", "stuck", 1));
  double worst = sample(t, PL("process_liveness_bottom", "worst", 6));
  CHECK(fabs(stuck * 180 - 1) < 1e-4); /* the clock moves on between setup and pass */
  CHECK(fabs(worst * 120 * 9.5e9 / 1e6 - 1) < 1e-4);
  CHECK(strstr(t, "halo_process_liveness_bottom{application=\"app\",behavior=\"fake.behavior\",name=\"young") == NULL);
  /* top 2 by latency: worst (9.5 s), then of the four at 1.5 s the earliest (stuck): ties keep it */
  CHECK(fabs(sample(t, PL("mailbox_latency_top_seconds", "worst", 6)) - 9.5) < 1e-3);
  CHECK(fabs(sample(t, PL("mailbox_latency_top_seconds", "stuck", 1)) - 1.5) < 1e-3);
  CHECK(strstr(t, "halo_mailbox_latency_top_seconds{application=\"app\",behavior=\"fake.behavior\",name=\"young") == NULL);
  CHECK_EQ(sample(t, "halo_mailbox_latency_processes{node=\"t@h\"} "), 5);
  CHECK_EQ(sample(t, "halo_mailbox_latency_distribution{node=\"t@h\",range=\"5s\"} "), 4);
  CHECK_EQ(sample(t, "halo_mailbox_latency_distribution{node=\"t@h\",range=\"10s\"} "), 1);
  CHECK_EQ(sample(t, "halo_mailbox_latency_distribution{node=\"t@h\",range=\"60s+\"} "), 0);
  CHECK(fabs(sample(t, "halo_mailbox_latency_max_seconds{node=\"t@h\"} ") - 9.5) < 1e-3);
  /* depth: empty mailboxes are not counted */
  CHECK_EQ(sample(t, "halo_mailbox_depth_distribution{node=\"t@h\",range=\"1\"} "), 5);
  CHECK_EQ(sample(t, "halo_mailbox_depth_distribution{node=\"t@h\",range=\"10K+\"} "), 0);
  CHECK(strstr(t, "halo_mailbox_depth_top{application=\"app\",behavior=\"fake.behavior\",name=\"empty\"") == NULL);
  /* messages in: zero is no candidate; drains skip wakeups 0 */
  CHECK(strstr(t, "halo_process_messages_in_top{application=\"app\",behavior=\"fake.behavior\",name=\"idle_in\"") == NULL);
  CHECK(strstr(t, "halo_process_drains_top{application=\"app\",behavior=\"fake.behavior\",name=\"idle_in\"") == NULL);
  /* init time: only the process with one */
  CHECK_EQ(sample(t, PL("process_init_time_top_seconds", "stuck", 1)) * 1000, 5);
  CHECK_EQ(sample(t, "halo_process_init_time_max_seconds{node=\"t@h\"} "), 0.005);
  /* utilization: uptime 0 skipped; stuck runs 1 s in 120 s (<= 1%), the others less */
  CHECK_EQ(sample(t, "halo_process_utilization_distribution{node=\"t@h\",range=\"1%\"} "), 6);
  CHECK_EQ(sample(t, "halo_process_utilization_distribution{node=\"t@h\",range=\"90%+\"} "), 0);
  CHECK(strstr(t, "name=\"newborn\"") == NULL);
  /* node-level rows */
  CHECK_EQ(sample(t, "halo_processes_total{node=\"t@h\"} "), 7);
  CHECK_EQ(sample(t, "halo_processes_zombie{node=\"t@h\"} "), 1);
  CHECK_EQ(sample(t, "halo_processes_running{node=\"t@h\"} "), 1);
  CHECK_EQ(sample(t, "halo_process_messages_in{node=\"t@h\"} "), 45);
  CHECK_EQ(sample(t, "halo_node_uptime_seconds{node=\"t@h\"} "), 200);
  CHECK_EQ(sample(t, "halo_applications_total{node=\"t@h\"} "), 3);
  CHECK_EQ(sample(t, "halo_applications_running{node=\"t@h\"} "), 2);
  CHECK_EQ(sample(t, "halo_log_messages_total{level=\"info\",node=\"t@h\"} "), 7);
  CHECK_EQ(sample(t, "halo_log_messages_total{level=\"panic\",node=\"t@h\"} "), 0);
  CHECK(sample(t, "halo_memory_alloc_bytes{node=\"t@h\"} ") >= 1000);
  CHECK(sample(t, "halo_cpu_cores{node=\"t@h\"} ") >= 1);
  /* every event state and no network rows without a network */
  CHECK_EQ(sample(t, "halo_event_utilization{node=\"t@h\",state=\"no_publishing\"} "), 0);
  CHECK(strstr(t, "halo_connections_established_total") == NULL && strstr(t, "halo_acceptor_handshake_errors_total") == NULL);
  CHECK_EQ(sample(t, "halo_connected_nodes_total{node=\"t@h\"} "), 0);
  if (check_failures) fputs(t, stderr);
  free(b.p);
  halo_imap_destroy(&n.procs);
}

/* Unlinks a fake record as free_record does, telling the pass first. */
static void fake_free(halo_node_t *n, fake_t *f, halo_collect_t *c) {
  halo_proc_t *p = &f->p;
  halo_imap_del(&n->procs, p->id);
  if (p->prev) p->prev->next = p->next;
  else n->first = p->next;
  if (p->next) p->next->prev = p->prev;
  else n->last = p->prev;
  n->nprocs--;
  n->state_count[halo_state_index(p->state)]--;
  halo_collect_forget(c, p);
  p->id = 0;
}

/* A pass in steps: records freed between steps are skipped, and one that
 * had made a top family leaves it. */
static void test_collect_steps(void) {
  static halo_node_t n;
  memset(&n, 0, sizeof n);
  n.name = "t@h";
  n.crc = 1;
  uint64_t now = halo_clock_ns();
  n.t_start = now;
  static fake_t f[5];
  for (int i = 0; i < 5; i++) fake_add(&n, &f[i], (uint64_t)i + 1, "p", 10, (uint64_t)(10 - i), 1000, 0, HALO_STATE_SLEEP, now);
  halo_collect_opts_t o = {.top_n = 50};
  halo_collect_t *c = halo_collect_new(&n, &o);
  CHECK_EQ(halo_collect_step(c, 2), 0); /* read 1 and 2; the cursor is at 3 */
  fake_free(&n, &f[0], c);              /* in the tops already */
  fake_free(&n, &f[2], c);              /* the cursor */
  CHECK_EQ(halo_collect_step(c, 1), 0); /* reads 4 */
  fake_free(&n, &f[4], c);              /* the last one, the cursor */
  CHECK_EQ(halo_collect_step(c, 10), 1);
  halo_mbuf_t b = {0};
  CHECK_EQ(halo_collect_finish(c, NULL, &b), 0);
  halo_collect_delete(c);
  halo_mbuf_put(&b, "", 1);
  const char *t = b.p;
  CHECK(strstr(t, "pid=\"<00000001.0.1>\"") == NULL);
  CHECK(strstr(t, "halo_process_messages_in_top{application=\"app\",behavior=\"fake.behavior\",name=\"p\",node=\"t@h\",pid=\"<00000001.0.2>\"} 9\n") != NULL);
  CHECK(strstr(t, "halo_process_messages_in_top{application=\"app\",behavior=\"fake.behavior\",name=\"p\",node=\"t@h\",pid=\"<00000001.0.4>\"} 7\n") != NULL);
  CHECK(strstr(t, "pid=\"<00000001.0.3>\"") == NULL && strstr(t, "pid=\"<00000001.0.5>\"") == NULL);
  CHECK_EQ(sample(t, "halo_process_messages_in{node=\"t@h\"} "), 10 + 9 + 7); /* what was read */
  CHECK_EQ(sample(t, "halo_processes_total{node=\"t@h\"} "), 2);
  if (check_failures) fputs(t, stderr);
  free(b.p);
  halo_imap_destroy(&n.procs);
}

int main(void) {
  test_validation();
  test_exposition();
  test_utf8();
  test_top();
  test_owner();
  test_catalogue();
  test_collect();
  test_collect_steps();
  return check_exit_code();
}
