/* core.log: the C side of lua/halo/log.lua over core/log.c (records,
 * loggers, process loggers and levels). */
#include "binding.h"

#include <string.h>

void hb_log(halo_binding_t *B, halo_proc_t *p, int level, const char *msg, size_t len) {
  halo_log_proc_msg(&B->node, p, level, msg, len);
}

/* core.log.write(level, message): logs with the current process as the source. */
static int l_log(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int lvl;
  if (halo_log_level_parse(luaL_checkstring(L, 1), &lvl) || lvl == HALO_LOG_DISABLED)
    return luaL_argerror(L, 1, "unknown log level");
  size_t len;
  const char *m = luaL_checklstring(L, 2, &len);
  hb_log(B, B->node.current, lvl, m, len);
  return 0;
}

/* core.log.enabled(level) -> bool: cheap check before formatting. */
static int l_log_enabled(lua_State *L) {
  halo_binding_t *B = halo__B;
  int lvl;
  if (halo_log_level_parse(luaL_checkstring(L, 1), &lvl)) return luaL_argerror(L, 1, "unknown log level");
  int active = B ? (B->node.current ? B->node.current->log_level : B->node.log.level) : HALO_LOG_INFO;
  lua_pushboolean(L, lvl >= active);
  return 1;
}

static const char *const formats[] = {"plain", "color", "json", "process"};

/* A level set from a list of level names ({} or nil: every level). */
static uint8_t check_levels(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return HALO_LOG_ALL_LEVELS;
  luaL_checktype(L, idx, LUA_TTABLE);
  uint8_t mask = 0;
  size_t n = lua_objlen(L, idx);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, (int)i);
    int lvl;
    const char *name = lua_tostring(L, -1);
    if (!name || halo_log_level_parse(name, &lvl) || halo_log_level_index(lvl) < 0)
      luaL_argerror(L, idx, "levels: trace, debug, info, warning, error or panic expected");
    mask |= (uint8_t)(1u << halo_log_level_index(lvl));
    lua_pop(L, 1);
  }
  return n ? mask : HALO_LOG_ALL_LEVELS;
}

static void push_levels(lua_State *L, uint8_t mask) {
  static const int levels[] = {HALO_LOG_TRACE, HALO_LOG_DEBUG, HALO_LOG_INFO, HALO_LOG_WARNING,
                               HALO_LOG_ERROR, HALO_LOG_PANIC};
  hb_new_array(L, 6);
  int k = 0;
  for (int i = 0; i < 6; i++) {
    if (!(mask & (1u << i))) continue;
    lua_pushstring(L, halo_log_level_name(levels[i]));
    lua_rawseti(L, -2, ++k);
  }
}

/* core.log.add(name, format, levels, output): output "stderr", "stdout" or a file path (appended). */
static int l_log_add(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *name = luaL_checkstring(L, 1);
  int format = luaL_checkoption(L, 2, "plain", formats);
  if (format == HALO_LOGGER_PROCESS) return luaL_argerror(L, 2, "plain, color or json expected");
  uint8_t levels = check_levels(L, 3);
  const char *output = luaL_optstring(L, 4, "stderr");
  for (uint32_t i = 0; i < B->node.log.nloggers; i++)
    if (!strcmp(B->node.log.loggers[i].name, name)) return hb_error(L, HALO_ETAKEN);
  FILE *out;
  int owns = 0;
  if (!strcmp(output, "stderr")) out = stderr;
  else if (!strcmp(output, "stdout")) out = stdout;
  else {
    out = fopen(output, "a");
    if (!out) return hb_errorf(L, HALO_EINCORRECT, "cannot open %s: %s", output, strerror(errno));
    owns = 1;
  }
  int rc = halo_log_add(&B->node.log, name, format, levels, out, owns);
  if (rc && owns) fclose(out);
  return hb_ok_or_error(L, rc);
}

static int l_log_remove(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  return hb_ok_or_error(L, halo_log_remove(&B->node.log, luaL_checkstring(L, 1)));
}

/* core.log.loggers() -> { {name, format, levels = {...}, pid?}... } */
static int l_log_loggers(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_log_t *log = &B->node.log;
  hb_new_array(L, (int)log->nloggers);
  for (uint32_t i = 0; i < log->nloggers; i++) {
    const halo_logger_t *lg = &log->loggers[i];
    lua_createtable(L, 0, 4);
    SET_STR("name", lg->name);
    SET_STR("format", formats[lg->format]);
    push_levels(L, lg->levels);
    lua_setfield(L, -2, "levels");
    if (lg->format == HALO_LOGGER_PROCESS) {
      hb_push_pid(B, L, halo_node_pid(&B->node, lg->pid));
      lua_setfield(L, -2, "pid");
    }
    lua_pushnumber(L, (double)lg->records);
    lua_setfield(L, -2, "records");
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* core.log.subscribe(name, levels, source): the calling process becomes a
 * logger; source: nil (all), "node", or a PID / registered name. */
static int l_log_subscribe(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.log.subscribe", 0);
  const char *name = luaL_checkstring(L, 1);
  uint8_t levels = check_levels(L, 2);
  halo_pid_t source = {0, 0};
  if (!lua_isnoneornil(L, 3)) {
    const char *s = luaL_checkstring(L, 3);
    if (!strcmp(s, "node")) {
      source = halo_node_pid(&B->node, 0);
    } else {
      hb_target_t t;
      int rc = hb_target(L, B, 3, &t);
      if (rc) return hb_error(L, rc);
      source = t.pid;
    }
  }
  if (self->state == HALO_STATE_ZOMBEE) return hb_error(L, HALO_ETERMINATED); /* its cleanup has run */
  return hb_ok_or_error(L, halo_log_add_process(&B->node.log, name, self->id, levels, source));
}

static int l_log_unsubscribe(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.log.unsubscribe", 0);
  if (!halo_log_find_process(&B->node.log, self->id)) return hb_error(L, HALO_EUNKNOWN);
  halo_log_remove_process(&B->node.log, self->id);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.log.level([target]) -> level of the node (no target) or of a process. */
static int l_log_level(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  if (lua_isnoneornil(L, 1)) {
    lua_pushstring(L, halo_log_level_name(B->node.log.level));
    return 1;
  }
  int err;
  halo_proc_t *p = hb_check_proc(L, B, 1, &err);
  if (!p) return hb_error(L, err);
  lua_pushstring(L, halo_log_level_name(p->log_level));
  return 1;
}

/* core.log.set_node_level(level) */
static int l_log_set_node_level(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int lvl;
  if (halo_log_level_parse(luaL_checkstring(L, 1), &lvl)) return luaL_argerror(L, 1, "unknown log level");
  B->node.log.level = lvl;
  lua_pushboolean(L, 1);
  return 1;
}

/* For the FFI: 1 when a record of level would pass the current source's level. */
int halo_log_enabled(int level) {
  halo_binding_t *B = halo__B;
  if (!B) return level >= HALO_LOG_INFO;
  int active = B->node.current ? B->node.current->log_level : B->node.log.level;
  return level >= active && level < HALO_LOG_DISABLED;
}

void hb_open_log(lua_State *L) {
  static const luaL_Reg fns[] = {{"write", l_log},
                                 {"enabled", l_log_enabled},
                                 {"add", l_log_add},
                                 {"remove", l_log_remove},
                                 {"loggers", l_log_loggers},
                                 {"subscribe", l_log_subscribe},
                                 {"unsubscribe", l_log_unsubscribe},
                                 {"level", l_log_level},
                                 {"set_node_level", l_log_set_node_level},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
  /* C entry point for LuaJIT's FFI: a compiled trace calls it directly. */
  lua_pushlightuserdata(L, (void *)(uintptr_t)halo_log_enabled);
  lua_setfield(L, -2, "FFI_ENABLED");
}
