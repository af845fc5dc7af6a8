/* core.pprof: the pprof profile writer (core/pprof.c) and the CPU
 * profiler's C side (core/prof.c): the SIGPROF chain, the ticks counted per
 * core phase, and the process whose code runs now. */
#include "binding.h"

#include <stdlib.h>
#include <string.h>

#include "pprof.h"
#include "prof.h"

/* t[i] when it is a string (alive as long as the table holds it), else NULL. */
static const char *opt_string(lua_State *L, int t, int i) {
  lua_rawgeti(L, t, i);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1);
  return s;
}

/* The locations of the stack at the top of the stack: { {name, file, line}, ... } innermost first. */
static int read_stack(lua_State *L, halo_pprof_t *p, uint64_t **locs, size_t *cap) {
  int st = lua_gettop(L), n = (int)lua_objlen(L, st);
  if ((size_t)n > *cap) {
    uint64_t *nl = realloc(*locs, (size_t)n * sizeof *nl);
    if (!nl) return -1;
    *locs = nl;
    *cap = (size_t)n;
  }
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, st, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    int f = lua_gettop(L);
    lua_rawgeti(L, f, 3);
    int64_t line = (int64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    uint64_t id = halo_pprof_location(p, opt_string(L, f, 1), opt_string(L, f, 2), line);
    lua_pop(L, 1);
    if (!id) return -1;
    (*locs)[i - 1] = id;
  }
  return n;
}

typedef struct encode_state {
  halo_pprof_t *p;
  uint64_t *locs;
  int64_t *values;
  halo_pprof_label_t *labels;
} encode_state_t;

static void encode_free(encode_state_t *e) {
  halo_pprof_free(e->p);
  free(e->locs);
  free(e->values);
  free(e->labels);
}

/* The body of encode; raises on malformed input, returns 0 or a halo code. */
static int encode_body(lua_State *L, encode_state_t *e) {
  halo_pprof_t *p = e->p;
  lua_getfield(L, 1, "sample_types");
  luaL_checktype(L, -1, LUA_TTABLE);
  size_t ntypes = lua_objlen(L, -1);
  for (size_t i = 1; i <= ntypes; i++) {
    lua_rawgeti(L, -1, (int)i);
    luaL_checktype(L, -1, LUA_TTABLE);
    if (halo_pprof_sample_type(p, opt_string(L, -1, 1), opt_string(L, -1, 2)) < 0) return HALO_ENOMEM;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "period_type");
  lua_getfield(L, 1, "period");
  if (lua_istable(L, -2) &&
      halo_pprof_period(p, opt_string(L, -2, 1), opt_string(L, -2, 2), (int64_t)lua_tonumber(L, -1)) < 0)
    return HALO_ENOMEM;
  lua_pop(L, 2);
  lua_getfield(L, 1, "time_nanos");
  lua_getfield(L, 1, "duration_nanos");
  halo_pprof_times(p, (int64_t)lua_tonumber(L, -2), (int64_t)lua_tonumber(L, -1));
  lua_pop(L, 2);
  e->values = calloc(ntypes ? ntypes : 1, sizeof *e->values);
  if (!e->values) return HALO_ENOMEM;
  size_t cap = 0, lcap = 0;
  lua_getfield(L, 1, "samples");
  luaL_checktype(L, -1, LUA_TTABLE);
  int samples = lua_gettop(L);
  size_t ns = lua_objlen(L, samples);
  for (size_t i = 1; i <= ns; i++) {
    lua_rawgeti(L, samples, (int)i);
    int s = lua_gettop(L);
    luaL_checktype(L, s, LUA_TTABLE);
    lua_getfield(L, s, "stack");
    luaL_checktype(L, -1, LUA_TTABLE);
    int nlocs = read_stack(L, p, &e->locs, &cap);
    if (nlocs < 0) return HALO_ENOMEM;
    lua_pop(L, 1);
    lua_getfield(L, s, "values");
    luaL_checktype(L, -1, LUA_TTABLE);
    size_t nv = lua_objlen(L, -1);
    if (nv != ntypes) luaL_error(L, "sample %d has %d values, the profile %d sample types", (int)i, (int)nv, (int)ntypes);
    for (size_t k = 1; k <= nv; k++) {
      lua_rawgeti(L, -1, (int)k);
      e->values[k - 1] = (int64_t)lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    size_t nl = 0;
    lua_getfield(L, s, "labels"); /* { key = "string" | number } */
    if (lua_istable(L, -1)) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        if (nl == lcap) {
          size_t nc = lcap ? lcap * 2 : 4;
          halo_pprof_label_t *nlb = realloc(e->labels, nc * sizeof *nlb);
          if (!nlb) return HALO_ENOMEM;
          e->labels = nlb;
          lcap = nc;
        }
        int vt = lua_type(L, -1);
        if (lua_type(L, -2) != LUA_TSTRING || (vt != LUA_TSTRING && vt != LUA_TNUMBER))
          luaL_error(L, "labels are string keys to strings or numbers");
        halo_pprof_label_t *lb = &e->labels[nl++];
        memset(lb, 0, sizeof *lb);
        lb->key = lua_tostring(L, -2);
        if (vt == LUA_TNUMBER) lb->num = (int64_t)lua_tonumber(L, -1);
        else lb->str = lua_tostring(L, -1);
        lua_pop(L, 1);
      }
    }
    int rc = halo_pprof_sample(p, e->locs, (size_t)nlocs, e->values, ntypes, e->labels, nl);
    if (rc) return rc;
    lua_settop(L, samples);
  }
  return 0;
}

static int encode_protected(lua_State *L) {
  encode_state_t *e = lua_touserdata(L, 2);
  lua_pushinteger(L, encode_body(L, e));
  return 1;
}

/* core.pprof.encode{ sample_types = {{type, unit}...}, period_type = {type, unit}, period,
 *   time_nanos, duration_nanos, samples = {{ stack = {{function, file, line}...} innermost
 *   first, values = {...}, labels = { key = "str" | num } }...} }
 * -> the gzipped profile.proto bytes | nil, err, code */
static int l_encode(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  encode_state_t e = {0};
  e.p = halo_pprof_new();
  if (!e.p) return hb_error(L, HALO_ENOMEM);
  /* the builder's memory is freed whatever happens: run the reading protected */
  lua_pushcfunction(L, encode_protected);
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, &e);
  int st = lua_pcall(L, 2, 1, 0);
  int rc = st ? 0 : (int)lua_tointeger(L, -1);
  unsigned char *out = NULL;
  size_t len = 0;
  if (!st && !rc) rc = halo_pprof_write(e.p, &out, &len);
  encode_free(&e);
  if (st) return lua_error(L);
  if (rc) return hb_error(L, rc);
  lua_pushlstring(L, (const char *)out, len);
  free(out);
  return 1;
}

/* core.pprof.hook() -> true | nil, err, code: chains the tick counter in front of LuaJIT's SIGPROF handler */
static int l_hook(lua_State *L) {
  int rc = halo_prof_hook();
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.pprof.unhook() -> true | false when not hooked */
static int l_unhook(lua_State *L) {
  lua_pushboolean(L, halo_prof_unhook() == 0);
  return 1;
}

/* core.pprof.ticks() -> { { name = "halo_sched_slice", file = "core/scheduler.c", ticks = n }, ... } (non-zero only) */
static int l_ticks(lua_State *L) {
  uint64_t t[HALO_PROF_NMARKS];
  halo_prof_ticks(t);
  lua_createtable(L, HALO_PROF_NMARKS, 0);
  int k = 0;
  for (int i = 0; i < HALO_PROF_NMARKS; i++) {
    if (!t[i]) continue;
    lua_createtable(L, 0, 3);
    lua_pushstring(L, halo_prof_mark_name(i));
    lua_setfield(L, -2, "name");
    lua_pushstring(L, halo_prof_mark_file(i));
    lua_setfield(L, -2, "file");
    lua_pushnumber(L, (double)t[i]);
    lua_setfield(L, -2, "ticks");
    lua_rawseti(L, -2, ++k);
  }
  return 1;
}

/* core.pprof.running() -> pid, registered name or nil | nil: the process whose code runs now.
 * The profiler's callback calls it on its own thread, at any instruction (after its node
 * ended too): it neither raises (LuaJIT would end the OS process) nor sets B->cur. */
static int l_running(lua_State *L) {
  halo_binding_t *B = halo__B;
  halo_proc_t *p = B ? B->node.current : NULL;
  if (!p) {
    lua_pushnil(L);
    return 1;
  }
  hb_push_pid(B, L, halo_node_pid(&B->node, p->id));
  if (p->name) lua_pushstring(L, p->name);
  else lua_pushnil(L);
  return 2;
}

void hb_open_pprof(lua_State *L) {
  static const luaL_Reg fns[] = {{"encode", l_encode}, {"hook", l_hook}, {"unhook", l_unhook},
                                 {"ticks", l_ticks}, {"running", l_running}, {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
