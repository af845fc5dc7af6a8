/* core.metrics: custom metric families (core/metrics.h) owned by processes,
 * and the node's exposition (core/collect.h).
 *
 *   core.metrics.register(def) -> id | nil, err, code
 *       def: type ("counter", "gauge", "histogram", "top"), name, help,
 *       labels (list), buckets (histogram), n and order ("max"/"min": top).
 *       The calling process owns the family: it goes when that process ends.
 *   core.metrics.add(id, v, label values...)      counter, gauge
 *   core.metrics.set(id, v, label values...)      gauge
 *   core.metrics.observe(id, v, label values...)  histogram, top
 *       -> true | nil, err, code (EUNKNOWN: the family is gone; EINCORRECT:
 *       a bad value); a wrong number of label values raises
 *   core.metrics.unregister(name) -> true | nil, err, code
 *   core.metrics.flush_top([name]) -> true | nil, err, code
 *   core.metrics.expose([{top_n = n}]) -> text, in one go
 *   core.metrics.pass_start([{top_n = n}]) -> pass; pass_step(pass, budget)
 *       -> true once every process record has been read (halo.metrics.expose
 *       yields between steps); pass_finish(pass) -> text
 *   core.metrics.families() -> the catalogue of built-in families
 *   core.metrics.configure({top_n = n})   the default N of built-in tops (50)
 *   core.metrics.set_applications(total, running)  (halo.application)
 *   core.metrics.stats() -> {families, update_errors}
 *   core.metrics.FFI_UPDATE, core.metrics.last_error(): the FFI path of
 *       add/set/observe with up to two label values (hb_metrics_update)
 *
 * State lives per node; this file learns of a process's end and of the
 * node's stop through its hb_watch.
 */
#include "binding.h"
#include "collect.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

/* A pass of expose in steps (core.metrics.pass_*): a userdata. */
typedef struct pass {
  halo_collect_t *c;   /* NULL once finished, or when the node stopped */
  struct pass *prev, *next;
} pass_t;

typedef struct mstate {
  halo_binding_t *B;
  pass_t *passes;      /* passes under way: told of every record freed */
  halo_metrics_t reg;
  uint32_t top_n;
  uint32_t apps_total, apps_running;
} mstate_t;

static mstate_t *S; /* the running node's, NULL until first used */
/* Family ids go on from one node's registry to the next: a handle kept from
 * an earlier node of this Lua state must not address a family of the next. */
static uint64_t last_id;

static void pass_end(pass_t *ps) {
  if (!ps->c) return;
  halo_collect_delete(ps->c);
  ps->c = NULL;
  if (ps->prev) ps->prev->next = ps->next;
  else if (S) S->passes = ps->next;
  if (ps->next) ps->next->prev = ps->prev;
  ps->prev = ps->next = NULL;
}

static void hook_free(halo_node_t *n, halo_proc_t *p) {
  (void)n;
  if (S->reg.by_id.len) halo_metrics_remove_owner(&S->reg, p->id);
  for (pass_t *ps = S->passes; ps; ps = ps->next) halo_collect_forget(ps->c, p);
}

static void hook_stopped(halo_node_t *n) {
  (void)n;
  mstate_t *s = S;
  while (s->passes) pass_end(s->passes);
  last_id = s->reg.next_id;
  halo_metrics_destroy(&s->reg);
  free(s);
  S = NULL;
}

static hb_watch_t watch = {NULL, hook_free, hook_stopped, NULL};

/* The node's state, created on first use; NULL (no watch put on) once the node is stopping. */
static mstate_t *state_get(lua_State *L, halo_binding_t *B) {
  if (S && S->B == B) return S;
  if (B->node.stopped || B->node.stopping) return NULL;
  if (S) { /* left by a node of this Lua state that never stopped */
    last_id = S->reg.next_id;
    halo_metrics_destroy(&S->reg);
    free(S);
  }
  S = calloc(1, sizeof *S);
  if (!S) luaL_error(L, "out of memory");
  S->B = B;
  halo_metrics_init(&S->reg);
  S->reg.next_id = last_id;
  hb_watch(B, &watch);
  return S;
}

/* -- Registration --------------------------------------------------------------- */

static const char *const type_names[] = {"counter", "gauge", "histogram", "top", NULL};

static int l_register(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  halo_proc_t *self = hb_self(L, B, "halo.metrics", 0);
  halo_metric_def_t d;
  memset(&d, 0, sizeof d);
  lua_getfield(L, 1, "type");
  d.type = luaL_checkoption(L, -1, NULL, type_names);
  lua_getfield(L, 1, "name");
  size_t len;
  d.name = lua_tolstring(L, -1, &len);
  if (d.name && strlen(d.name) != len) /* Prometheus' rules have no NUL: refused, not cut short */
    return hb_errorf(L, HALO_EINCORRECT, "invalid metric name \"%s\\0%s\"", d.name, d.name + strlen(d.name) + 1);
  lua_getfield(L, 1, "help");
  d.help = lua_tostring(L, -1);
  lua_pop(L, 3);
  if (!d.name) return hb_errorf(L, HALO_EINCORRECT, "metric name (a string) is required");
  if (!d.help) d.help = "";
  const char *labels[HALO_METRICS_MAX_LABELS + 1];
  double buckets[HALO_METRICS_MAX_BUCKETS + 1];
  lua_getfield(L, 1, "labels");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) return hb_errorf(L, HALO_EINCORRECT, "metric \"%s\": labels must be a list of names", d.name);
    size_t n = lua_objlen(L, -1);
    if (n > HALO_METRICS_MAX_LABELS)
      return hb_errorf(L, HALO_EINCORRECT, "metric \"%s\": more than %d labels", d.name, HALO_METRICS_MAX_LABELS);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, -1, (int)i + 1);
      if (lua_type(L, -1) != LUA_TSTRING)
        return hb_errorf(L, HALO_EINCORRECT, "metric \"%s\": labels must be a list of names", d.name);
      const char *l = lua_tolstring(L, -1, &len);
      if (strlen(l) != len)
        return hb_errorf(L, HALO_EINCORRECT, "metric \"%s\": invalid label name \"%s\\0%s\"", d.name, l, l + strlen(l) + 1);
      labels[d.nlabels++] = l;
      lua_pop(L, 1); /* the string stays alive in the table */
    }
  }
  d.labels = labels;
  lua_getfield(L, 1, "buckets");
  if (!lua_isnil(L, -1)) {
    if (d.type != HALO_METRIC_HISTOGRAM || !lua_istable(L, -1))
      return hb_errorf(L, HALO_EINCORRECT, "metric \"%s\": buckets are a list of numbers, for a histogram", d.name);
    size_t n = lua_objlen(L, -1);
    if (n > HALO_METRICS_MAX_BUCKETS)
      return hb_errorf(L, HALO_EINCORRECT, "metric \"%s\": more than %d buckets", d.name, HALO_METRICS_MAX_BUCKETS);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, -1, (int)i + 1);
      if (lua_type(L, -1) != LUA_TNUMBER)
        return hb_errorf(L, HALO_EINCORRECT, "metric \"%s\": buckets are a list of numbers", d.name);
      buckets[d.nbuckets++] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
  }
  d.buckets = buckets;
  lua_getfield(L, 1, "n");
  lua_getfield(L, 1, "order");
  if (d.type == HALO_METRIC_TOP) {
    double n = lua_isnil(L, -2) ? 10 : lua_tonumber(L, -2);
    d.top_n = n >= 1 && n <= HALO_METRICS_MAX_TOP ? (uint32_t)n : 0;
    const char *order = lua_isnil(L, -1) ? "max" : lua_tostring(L, -1);
    d.order = order && !strcmp(order, "max") ? HALO_TOP_MAX : order && !strcmp(order, "min") ? HALO_TOP_MIN : -1;
  }
  d.owner = self->id;
  mstate_t *s = state_get(L, B);
  if (!s) return hb_error(L, HALO_ENODESTOP);
  halo_metric_family_t *f;
  int rc = halo_metrics_register(&s->reg, &d, &f);
  if (rc) return hb_errorf(L, rc, "%s", s->reg.err);
  lua_pushnumber(L, (double)f->id);
  lua_pushinteger(L, (lua_Integer)f->nlabels);
  return 2;
}

static int l_unregister(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *name = luaL_checkstring(L, 1);
  mstate_t *s = state_get(L, B);
  halo_metric_family_t *f = s ? halo_metrics_find(&s->reg, name) : NULL;
  if (!f) {
    if (!strncmp(name, "halo_", 5)) return hb_errorf(L, HALO_ENOTALLOWED, "metric \"%s\" is reserved for internal use", name);
    return hb_errorf(L, HALO_EUNKNOWN, "no metric \"%s\"", name);
  }
  halo_metrics_remove(&s->reg, f);
  lua_pushboolean(L, 1);
  return 1;
}

/* -- Updates --------------------------------------------------------------------- */

typedef int (*update_fn)(halo_metrics_t *, halo_metric_family_t *, double, const char *const *, const size_t *, uint32_t);

static int update(lua_State *L, update_fn fn) {
  double id = luaL_checknumber(L, 1);
  double v = luaL_checknumber(L, 2);
  mstate_t *s = S;
  halo_metric_family_t *f = s && s->B == halo__B ? halo_metrics_get(&s->reg, (uint64_t)id) : NULL;
  if (!f) {
    if (s) s->reg.update_errors++;
    return hb_errorf(L, HALO_EUNKNOWN, "the metric is not registered (its owner ended, or it was unregistered)");
  }
  int n = lua_gettop(L) - 2;
  if ((uint32_t)n != f->nlabels)
    return luaL_error(L, "metric \"%s\" has %d label value%s, got %d", f->name, (int)f->nlabels,
                      f->nlabels == 1 ? "" : "s", n);
  const char *vals[HALO_METRICS_MAX_LABELS];
  size_t lens[HALO_METRICS_MAX_LABELS];
  for (int i = 0; i < n; i++) {
    int t = lua_type(L, 3 + i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) luaL_argerror(L, 3 + i, "label value must be a string");
    vals[i] = lua_tolstring(L, 3 + i, &lens[i]);
  }
  int rc = fn(&s->reg, f, v, vals, lens, (uint32_t)n);
  if (rc) return hb_errorf(L, rc, "%s", s->reg.err);
  lua_pushboolean(L, 1);
  return 1;
}

/* The FFI path of updates with at most two label values (op 0 add, 1 set,
 * 2 observe): plain C, never raises. 0 done; -1 nothing done (no such
 * family, another label count: the Lua C API path says why); else the
 * update's error code, with the text for core.metrics.last_error(). */
static int last_rc;

int hb_metrics_update(int op, double id, double v, int n, const char *a, size_t al, const char *b, size_t bl) {
  static const update_fn fns[] = {halo_metrics_add, halo_metrics_set, halo_metrics_observe};
  mstate_t *s = S;
  halo_metric_family_t *f = s && s->B == halo__B && op >= 0 && op <= 2 ? halo_metrics_get(&s->reg, (uint64_t)id) : NULL;
  if (!f || n < 0 || n > 2 || (uint32_t)n != f->nlabels) return -1;
  const char *vals[2] = {a, b};
  size_t lens[2] = {al, bl};
  last_rc = fns[op](&s->reg, f, v, vals, lens, (uint32_t)n);
  return last_rc;
}

/* core.metrics.last_error() -> nil, err, code of the last failed FFI update */
static int l_last_error(lua_State *L) {
  return hb_errorf(L, last_rc ? last_rc : HALO_EUNKNOWN, "%s", S ? S->reg.err : "");
}

static int l_add(lua_State *L) { return update(L, halo_metrics_add); }
static int l_set(lua_State *L) { return update(L, halo_metrics_set); }
static int l_observe(lua_State *L) { return update(L, halo_metrics_observe); }

static int l_flush_top(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  mstate_t *s = state_get(L, B);
  if (!s) return hb_error(L, HALO_ENODESTOP);
  halo_metric_family_t *f = NULL;
  if (!lua_isnoneornil(L, 1)) {
    const char *name = luaL_checkstring(L, 1);
    f = halo_metrics_find(&s->reg, name);
    if (!f || f->type != HALO_METRIC_TOP) return hb_errorf(L, HALO_EUNKNOWN, "no top metric \"%s\"", name);
  }
  halo_metrics_flush_top(&s->reg, f);
  lua_pushboolean(L, 1);
  return 1;
}

/* -- Exposition -------------------------------------------------------------------- */

static halo_collect_opts_t expose_opts(halo_binding_t *B, uint32_t top_n) {
  mstate_t *s = S && S->B == B ? S : NULL;
  lua_State *L = B->L;
  halo_collect_opts_t o = {
      .top_n = top_n ? top_n : s && s->top_n ? s->top_n : HALO_COLLECT_TOP_N,
      .lua_heap = (double)lua_gc(L, LUA_GCCOUNT, 0) * 1024.0 + (double)lua_gc(L, LUA_GCCOUNTB, 0),
      .apps_total = s ? s->apps_total : 0,
      .apps_running = s ? s->apps_running : 0,
      .net = B->net,
  };
  return o;
}

static int expose(halo_binding_t *B, uint32_t top_n, halo_mbuf_t *b) {
  halo_collect_opts_t o = expose_opts(B, top_n);
  return halo_collect_expose(&B->node, S && S->B == B ? &S->reg : NULL, &o, b);
}

int hb_metrics_expose(halo_binding_t *B, char **body, size_t *len) {
  halo_mbuf_t b = {0};
  int rc = expose(B, 0, &b);
  if (rc) {
    free(b.p);
    return rc;
  }
  *body = b.p;
  *len = b.len;
  return 0;
}

static uint32_t opt_top_n(lua_State *L, int idx) {
  if (!lua_istable(L, idx)) return 0;
  lua_getfield(L, idx, "top_n");
  double n = luaL_optnumber(L, -1, 0);
  lua_pop(L, 1);
  if (!(n >= 0 && n <= HALO_METRICS_MAX_TOP)) luaL_argerror(L, idx, "top_n must be 1..10000"); /* NaN too */
  return (uint32_t)n;
}

static int push_text(lua_State *L, int rc, halo_mbuf_t *b) {
  if (rc) {
    free(b->p);
    return hb_error(L, rc);
  }
  lua_pushlstring(L, b->p ? b->p : "", b->len);
  free(b->p);
  return 1;
}

/* core.metrics.expose([opts]) -> text: in one go */
static int l_expose(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_mbuf_t b = {0};
  int rc = expose(B, opt_top_n(L, 1), &b);
  return push_text(L, rc, &b);
}

#define PASS_MT "halo.metrics.pass"

/* core.metrics.pass_start([opts]) -> pass: expose in steps */
static int l_pass_start(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  uint32_t top_n = opt_top_n(L, 1);
  mstate_t *s = state_get(L, B);
  if (!s) return hb_error(L, HALO_ENODESTOP);
  pass_t *ps = lua_newuserdata(L, sizeof *ps);
  memset(ps, 0, sizeof *ps);
  luaL_getmetatable(L, PASS_MT);
  lua_setmetatable(L, -2);
  halo_collect_opts_t o = expose_opts(B, top_n);
  if (!(ps->c = halo_collect_new(&B->node, &o))) return hb_error(L, HALO_ENOMEM);
  ps->next = s->passes;
  if (s->passes) s->passes->prev = ps;
  s->passes = ps;
  return 1;
}

/* core.metrics.pass_step(pass, budget) -> true when every record has been
 * read; outside the process's own coroutine (no yield possible) it reads them all */
static int l_pass_step(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  pass_t *ps = luaL_checkudata(L, 1, PASS_MT);
  double budget = luaL_checknumber(L, 2);
  if (!ps->c) return luaL_error(L, "metrics pass is over");
  halo_proc_t *cur = B->node.current;
  if (!cur || cur->host != L || budget < 1 || budget > UINT32_MAX) budget = UINT32_MAX;
  lua_pushboolean(L, halo_collect_step(ps->c, (uint32_t)budget));
  return 1;
}

/* core.metrics.pass_finish(pass) -> text */
static int l_pass_finish(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  pass_t *ps = luaL_checkudata(L, 1, PASS_MT);
  if (!ps->c) return luaL_error(L, "metrics pass is over");
  halo_mbuf_t b = {0};
  int rc = halo_collect_finish(ps->c, S && S->B == B ? &S->reg : NULL, &b);
  pass_end(ps);
  return push_text(L, rc, &b);
}

static int l_pass_gc(lua_State *L) {
  pass_t *ps = luaL_checkudata(L, 1, PASS_MT);
  pass_end(ps);
  return 0;
}

static int l_configure(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "top_n");
  double n = luaL_checknumber(L, -1);
  if (!(n >= 1 && n <= HALO_METRICS_MAX_TOP)) return luaL_argerror(L, 1, "top_n must be 1..10000"); /* NaN too */
  mstate_t *s = state_get(L, B);
  if (!s) return hb_error(L, HALO_ENODESTOP);
  s->top_n = (uint32_t)n;
  lua_pushboolean(L, 1);
  return 1;
}

static int l_set_applications(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  uint32_t total = (uint32_t)luaL_checknumber(L, 1), running = (uint32_t)luaL_checknumber(L, 2);
  mstate_t *s = state_get(L, B);
  if (!s) return 0;
  s->apps_total = total;
  s->apps_running = running;
  return 0;
}

static int l_families(lua_State *L) {
  hb_new_array(L, halo_collect_nfamilies);
  for (int i = 0; i < halo_collect_nfamilies; i++) {
    const halo_collect_family_t *f = &halo_collect_families[i];
    lua_createtable(L, 0, 5);
    SET_STR("name", f->name);
    static const char *const types[] = {"counter", "gauge", "histogram", "top", "untyped"};
    SET_STR("type", types[halo_collect_family_type(f)]);
    SET_STR("help", f->help);
    if (f->note) SET_STR("note", f->note);
    hb_new_array(L, 4);
    int k = 0;
    for (const char *l = f->labels; *l;) {
      const char *end = strchr(l, ',');
      size_t len = end ? (size_t)(end - l) : strlen(l);
      lua_pushlstring(L, l, len);
      lua_rawseti(L, -2, ++k);
      l += len + (end ? 1 : 0);
    }
    lua_setfield(L, -2, "labels");
    lua_rawseti(L, -2, i + 1);
  }
  for (int i = 0, k = halo_collect_nfamilies; halo_collect_absent[i]; i += 2) {
    lua_createtable(L, 0, 2);
    SET_STR("name", halo_collect_absent[i]);
    SET_STR("absent", halo_collect_absent[i + 1]);
    lua_rawseti(L, -2, ++k);
  }
  return 1;
}

static int l_stats(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  mstate_t *s = S && S->B == B ? S : NULL;
  lua_createtable(L, 0, 2);
  SET_INT("families", s ? s->reg.by_id.len : 0);
  SET_INT("update_errors", s ? s->reg.update_errors : 0);
  return 1;
}

void hb_open_metrics(lua_State *L) {
  if (luaL_newmetatable(L, PASS_MT)) {
    lua_pushcfunction(L, l_pass_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"register", l_register},
                                 {"unregister", l_unregister},
                                 {"add", l_add},
                                 {"set", l_set},
                                 {"observe", l_observe},
                                 {"flush_top", l_flush_top},
                                 {"expose", l_expose},
                                 {"pass_start", l_pass_start},
                                 {"pass_step", l_pass_step},
                                 {"pass_finish", l_pass_finish},
                                 {"configure", l_configure},
                                 {"set_applications", l_set_applications},
                                 {"families", l_families},
                                 {"stats", l_stats},
                                 {"last_error", l_last_error},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
  /* C entry point for LuaJIT's FFI: compiled traces call it directly. */
  lua_pushlightuserdata(L, (void *)(uintptr_t)hb_metrics_update);
  lua_setfield(L, -2, "FFI_UPDATE");
}
