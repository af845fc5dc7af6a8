/* core.remote: the allow-lists of remote spawn and application start
 * (core/remote.c) that lua/halo/remote.lua changes and asks before it
 * serves another node's request; core.net.info() reads them through
 * hb_remote_push_info. */
#include "binding.h"
#include "remote.h"

#include <stdlib.h>
#include <string.h>

static const char *const kinds[] = {"spawn", "application_start", NULL};
static const char *const what[] = {"spawn name", "application"};

/* The node names from idx on (each "name@host"), at most max of them. */
static size_t check_nodes(lua_State *L, int idx, const char **nodes, size_t max) {
  size_t n = 0;
  for (int i = idx; i <= lua_gettop(L); i++) {
    const char *s = luaL_checkstring(L, i);
    if (!strchr(s, '@')) luaL_argerror(L, i, "node names name@host expected");
    if (n == max) luaL_argerror(L, i, "too many node names");
    nodes[n++] = s;
  }
  return n;
}

#define MAX_NODES 64

/* core.remote.enable(kind, name, behavior, node...) -> true | nil, err:
 * behavior is the display name (spawn; nil for application_start), no
 * node: any node. */
static int l_enable(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  const char *name = luaL_checkstring(L, 2);
  const char *behavior = luaL_optstring(L, 3, NULL);
  const char *nodes[MAX_NODES];
  size_t n = check_nodes(L, 4, nodes, MAX_NODES);
  int rc = halo_remote_enable(&B->remote, kind, name, behavior, nodes, n);
  if (rc) return hb_errorf(L, rc, "%s: %s %s", halo_strerror(rc), what[kind], name);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.remote.disable(kind, name, node...) -> true | nil, "EUNKNOWN: ..." */
static int l_disable(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  const char *name = luaL_checkstring(L, 2);
  const char *nodes[MAX_NODES];
  size_t n = check_nodes(L, 3, nodes, MAX_NODES);
  int rc = halo_remote_disable(&B->remote, kind, name, nodes, n);
  if (rc) return hb_errorf(L, rc, "%s: %s %s", halo_strerror(rc), what[kind], name);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.remote.check(kind, name, from) -> true | nil, err, code: may the node
 * of PID from ask for name? */
static int l_check(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  const char *name = luaL_checkstring(L, 2);
  size_t len;
  const char *from = luaL_checklstring(L, 3, &len);
  halo_pid_t pid;
  if (halo_pid_parse(from, len, &pid)) return luaL_argerror(L, 3, "PID expected");
  return hb_ok_or_error(L, halo_remote_check(&B->remote, kind, name, pid.node));
}

/* core.remote.set_flags({spawn = bool, application_start = bool}) -> true */
static int l_set_flags(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  int set[HALO_REMOTE_NKINDS];
  memcpy(set, B->remote.enabled, sizeof set);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    int i = 0;
    while (k && kinds[i] && strcmp(kinds[i], k)) i++;
    if (!k || !kinds[i]) return luaL_error(L, "unknown flag %s", k ? k : "(not a string)");
    set[i] = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  memcpy(B->remote.enabled, set, sizeof set);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.remote.flags() -> {spawn, application_start} */
static int l_flags(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  lua_createtable(L, 0, 2);
  SET_BOOL("spawn", B->remote.enabled[HALO_REMOTE_SPAWN]);
  SET_BOOL("application_start", B->remote.enabled[HALO_REMOTE_APPLICATION_START]);
  return 1;
}

static int by_string(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Pushes the entries of kind as a list sorted by Name of {Name, Behavior
 * (spawn), Nodes (sorted names; empty: any node)}. The sort buffers are
 * userdata, so an allocation failure raising here leaks nothing. */
static void push_entries(lua_State *L, const halo_remote_t *r, int kind) {
  uint32_t n = r->n[kind];
  const char **names = lua_newuserdata(L, (n ? n : 1) * sizeof *names);
  for (uint32_t i = 0; i < n; i++) names[i] = r->entries[kind][i].name;
  qsort(names, n, sizeof *names, by_string);
  hb_new_array(L, (int)n);
  for (uint32_t i = 0; i < n; i++) {
    const halo_remote_entry_t *e = halo_remote_find(r, kind, names[i]);
    lua_createtable(L, 0, 3);
    SET_STR("Name", e->name);
    if (kind == HALO_REMOTE_SPAWN) SET_STR("Behavior", e->behavior ? e->behavior : "");
    char **nodes = lua_newuserdata(L, (e->nnodes ? e->nnodes : 1) * sizeof *nodes);
    if (e->nnodes) memcpy(nodes, e->nodes, e->nnodes * sizeof *nodes);
    qsort(nodes, e->nnodes, sizeof *nodes, by_string);
    hb_new_array(L, (int)e->nnodes);
    for (uint32_t j = 0; j < e->nnodes; j++) {
      lua_pushstring(L, nodes[j]);
      lua_rawseti(L, -2, (int)j + 1);
    }
    lua_setfield(L, -3, "Nodes");
    lua_pop(L, 1); /* nodes */
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_remove(L, -2); /* names */
}

void hb_remote_push_flags(lua_State *L, halo_binding_t *B) {
  SET_BOOL("EnableRemoteSpawn", B->remote.enabled[HALO_REMOTE_SPAWN]);
  SET_BOOL("EnableRemoteApplicationStart", B->remote.enabled[HALO_REMOTE_APPLICATION_START]);
}

void hb_remote_push_enabled(lua_State *L, halo_binding_t *B) {
  push_entries(L, &B->remote, HALO_REMOTE_SPAWN);
  lua_setfield(L, -2, "EnabledSpawn");
  push_entries(L, &B->remote, HALO_REMOTE_APPLICATION_START);
  lua_setfield(L, -2, "EnabledApplicationStart");
}

void hb_open_remote(lua_State *L) {
  static const luaL_Reg fns[] = {{"enable", l_enable},       {"disable", l_disable}, {"check", l_check},
                                 {"set_flags", l_set_flags}, {"flags", l_flags},     {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
