/* core.pool: the C side of lua/halo/pool.lua. A pool's forwarding runs in
 * core/pool.c; these functions make a process a pool, swap its workers and
 * read its counters. */
#include "binding.h"
#include "pool.h"

#include <stdlib.h>

/* Parses a local PID string at idx into its process id, or raises. */
static uint64_t check_local_pid(lua_State *L, halo_binding_t *B, int idx) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  halo_pid_t pid;
  if (halo_pid_parse(s, len, &pid) || pid.node != B->node.crc)
    luaL_argerror(L, idx, "local PID expected");
  return pid.id;
}

/* core.pool.set_workers({pid...}): makes the calling process a pool. */
static int l_pool_set_workers(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.pool", 0);
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t n = lua_objlen(L, 1);
  uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
  if (!ids) return luaL_error(L, "out of memory");
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (int)i + 1);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    halo_pid_t pid;
    if (!s || halo_pid_parse(s, len, &pid) || pid.node != B->node.crc) {
      free(ids);
      return luaL_argerror(L, 1, "list of local PIDs expected");
    }
    ids[i] = pid.id;
    lua_pop(L, 1);
  }
  int rc = halo_pool_set_workers(&B->node, self, ids, (uint32_t)n);
  free(ids);
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.pool.replace_worker(old, new) */
static int l_pool_replace_worker(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.pool", 0);
  int rc = halo_pool_replace_worker(&B->node, self, check_local_pid(L, B, 1), check_local_pid(L, B, 2));
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.pool.prefer_idle(on): the calling pool first looks for an idle worker. */
static int l_pool_prefer_idle(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.pool", 0);
  int rc = halo_pool_prefer_idle(self, lua_toboolean(L, 1));
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.pool.forward(kind, from, ref, msg): hands a message that reached the
 * pool process itself to a worker, as if it had been routed on arrival. */
static int l_pool_forward(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.pool", 0);
  int kind = (int)luaL_checkinteger(L, 1);
  if (kind != HALO_MSG_REGULAR && kind != HALO_MSG_REQUEST && kind != HALO_MSG_EVENT)
    return luaL_argerror(L, 1, "message kind expected");
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  halo_pid_t from;
  if (halo_pid_parse(s, len, &from)) return luaL_argerror(L, 2, "PID expected");
  uint64_t ref = (uint64_t)luaL_optnumber(L, 3, 0);
  if (!halo_pool_of(self)) return hb_error(L, HALO_ENOTALLOWED);
  halo_payload_t pl = hb_anchor(B, L, 4);
  self->msgs_in--; /* counted once already, when it arrived */
  halo__pool_route(&B->node, self, from, kind, ref, pl, hb_size(L, 4));
  lua_pushboolean(L, 1);
  return 1;
}

/* core.pool.info(pid) -> { workers = {pid...}, forwarded, unhandled, restarts } | nil, err */
static int l_pool_info(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int err;
  halo_proc_t *p = hb_check_proc(L, B, 1, &err);
  if (!p) return hb_error(L, err);
  const halo_pool_t *pool = halo_pool_of(p);
  if (!pool) return hb_errorf(L, HALO_EINCORRECT, "%s is not a pool", lua_tostring(L, 1));
  lua_createtable(L, 0, 4);
  hb_new_array(L, (int)pool->nworkers);
  for (uint32_t i = 0; i < pool->nworkers; i++) {
    hb_push_pid(B, L, halo_node_pid(&B->node, pool->workers[i]));
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "workers");
  lua_pushnumber(L, (double)pool->forwarded);
  lua_setfield(L, -2, "forwarded");
  lua_pushnumber(L, (double)pool->unhandled);
  lua_setfield(L, -2, "unhandled");
  lua_pushnumber(L, (double)pool->restarts);
  lua_setfield(L, -2, "restarts");
  return 1;
}

void hb_open_pool(lua_State *L) {
  static const luaL_Reg fns[] = {{"set_workers", l_pool_set_workers},
                                 {"replace_worker", l_pool_replace_worker},
                                 {"info", l_pool_info},
                                 {"forward", l_pool_forward},
                                 {"prefer_idle", l_pool_prefer_idle},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
