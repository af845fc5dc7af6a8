/* The C side of the platform modules written in Lua (lua/halo/pool.lua, ...):
 * the per-message work they need lives in core/, these functions set it up
 * and read it back. */
#include "binding.h"
#include "clock.h"
#include "event.h"
#include "pool.h"
#include "rel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Parses a local PID string at idx into its process id, or raises. */
static uint64_t check_local_pid(lua_State *L, halo_binding_t *B, int idx) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  halo_pid_t pid;
  if (halo_pid_parse(s, len, &pid) || pid.node != B->node.crc)
    luaL_argerror(L, idx, "local PID expected");
  return pid.id;
}

/* core.pool_set_workers({pid...}): makes the calling process a pool. */
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

/* core.pool_replace_worker(old, new) */
static int l_pool_replace_worker(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.pool", 0);
  int rc = halo_pool_replace_worker(&B->node, self, check_local_pid(L, B, 1), check_local_pid(L, B, 2));
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.pool_forward(kind, from, ref, msg): hands a message that reached the
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

/* core.pool_info(pid) -> { workers = {pid...}, forwarded, unhandled, restarts } | nil, err */
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

/* -- Events ---------------------------------------------------------------------- */

static int rel_type(lua_State *L, int idx) {
  const char *t = luaL_checkstring(L, idx);
  if (!strcmp(t, "link")) return HALO_REL_LINK;
  if (!strcmp(t, "monitor")) return HALO_REL_MONITOR;
  return luaL_argerror(L, idx, "'link' or 'monitor' expected");
}

static const char *check_event_name(lua_State *L, int idx) {
  size_t len;
  const char *name = luaL_checklstring(L, idx, &len);
  if (!len || strlen(name) != len) luaL_argerror(L, idx, "event name must be a non-empty string without NUL");
  return name;
}

static int ok_or_error(lua_State *L, int rc) {
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.event_register(name, buffer, notify, open) */
static int l_event_register(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.register", 0);
  const char *name = check_event_name(L, 1);
  lua_Number buffer = luaL_optnumber(L, 2, 0);
  if (buffer < 0 || buffer > 1e6 || buffer != (lua_Number)(uint32_t)buffer)
    return luaL_argerror(L, 2, "buffer must be a whole number from 0 to 1000000");
  halo_event_opts_t o = {(uint32_t)buffer, lua_toboolean(L, 3), lua_toboolean(L, 4)};
  return ok_or_error(L, halo_event_register(&B->node, self, name, &o));
}

static int l_event_unregister(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.unregister", 0);
  return ok_or_error(L, halo_event_unregister(&B->node, self, check_event_name(L, 1)));
}

/* core.event_publish(name, value) */
static int l_event_publish(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *name = check_event_name(L, 1);
  if (lua_isnoneornil(L, 2)) return luaL_argerror(L, 2, "a message expected");
  halo_payload_t pl = hb_anchor(B, L, 2);
  return ok_or_error(L, halo_event_publish(&B->node, B->node.current, name, pl, hb_size(L, 2)));
}

/* A subscription's answer: the event's buffered payloads, oldest first. */
static int push_buffered(lua_State *L, halo_binding_t *B, int rc, const halo_event_t *ev) {
  if (rc) return hb_error(L, rc);
  hb_new_array(L, (int)ev->ring_len);
  for (uint32_t i = 0; i < ev->ring_len; i++) {
    hb_push_payload(B, L, halo_event_buffered(ev, i), 0);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* core.event_subscribe(name, "link"|"monitor") -> { buffered... } */
static int l_event_subscribe(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.link/monitor", 0);
  const char *name = check_event_name(L, 1);
  halo_event_t *ev = NULL;
  int rc = halo_event_subscribe(&B->node, self, name, rel_type(L, 2), &ev);
  return push_buffered(L, B, rc, ev);
}

static int l_event_unsubscribe(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.unlink/demonitor", 0);
  return ok_or_error(L, halo_event_unsubscribe(&B->node, self, check_event_name(L, 1), rel_type(L, 2)));
}

/* A remote subscriber's PID string (another node's process). */
static halo_pid_t check_remote_pid(lua_State *L, halo_binding_t *B, int idx) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  halo_pid_t pid;
  if (halo_pid_parse(s, len, &pid) || !pid.node || pid.node == B->node.crc)
    luaL_argerror(L, idx, "another node's PID expected");
  return pid;
}

/* core.event_subscribe_remote(name, "link"|"monitor", pid) -> { buffered... },
 * producer, token: for the service that answers other nodes (halo.remote);
 * the subscriber's node keeps producer and token (core.event_watch_remote) */
static int l_event_subscribe_remote(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *name = check_event_name(L, 1);
  halo_event_t *ev = NULL;
  int rc = halo_event_subscribe_remote(&B->node, name, rel_type(L, 2), check_remote_pid(L, B, 3), &ev);
  if (push_buffered(L, B, rc, ev) != 1) return 3;
  hb_push_pid(B, L, halo_node_pid(&B->node, ev->producer));
  lua_pushnumber(L, (double)ev->token);
  return 3;
}

/* core.event_watch_remote(node, name, "link"|"monitor", producer, token): the
 * caller subscribed to event name of node; its end or the node's loss then
 * reaches it (as an exit or a down). */
static int l_event_watch_remote(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.link/monitor", 0);
  size_t nl;
  const char *node = luaL_checklstring(L, 1, &nl);
  const char *name = check_event_name(L, 2);
  halo_pid_t producer = check_remote_pid(L, B, 4);
  double token = luaL_checknumber(L, 5);
  return ok_or_error(L, halo_rel_watch_event(&B->node, self, rel_type(L, 3), halo_crc32(node, nl), producer.id,
                                             name, (uint64_t)token));
}

/* core.event_unwatch_remote(node, name, "link"|"monitor") */
static int l_event_unwatch_remote(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.unlink/demonitor", 0);
  size_t nl;
  const char *node = luaL_checklstring(L, 1, &nl);
  return ok_or_error(L, halo_rel_unwatch_event(&B->node, self, rel_type(L, 3), halo_crc32(node, nl),
                                               check_event_name(L, 2)));
}

static int l_event_unsubscribe_remote(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  return ok_or_error(L, halo_event_unsubscribe_remote(&B->node, check_event_name(L, 1), rel_type(L, 2),
                                                      check_remote_pid(L, B, 3)));
}

static void push_event_info(lua_State *L, halo_binding_t *B, const halo_event_t *ev) {
  lua_createtable(L, 0, 15);
  SET_STR("Name", ev->name);
  char crc[9]; /* pid_prefix is "<CCCCCCCC.0.": the 8 hex digits */
  memcpy(crc, B->pid_prefix + 1, 8);
  crc[8] = 0;
  lua_pushfstring(L, "Event#<%s:%s>", crc, ev->name);
  lua_setfield(L, -2, "Event");
  hb_push_pid(B, L, halo_node_pid(&B->node, ev->producer));
  lua_setfield(L, -2, "Producer");
  SET_INT("BufferSize", ev->buffer_size);
  SET_INT("CurrentBuffer", ev->ring_len);
  SET_BOOL("Notify", ev->notify);
  SET_BOOL("Open", ev->open);
  SET_INT("Subscribers", ev->nsubs);
  SET_INT("CreatedAt", ev->created_at);
  SET_INT("MessagesPublished", ev->published);
  SET_INT("MessagesLocalSent", ev->local_sent);
  SET_INT("MessagesRemoteSent", ev->remote_sent);
  SET_INT("LastPublishedAt", ev->last_published_at);
  SET_STR("UtilizationState", halo_event_utilization(ev));
}

/* core.event_info(name) -> EventInfo | nil, err */
static int l_event_info(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_event_t *ev = halo_event_find(&B->node, check_event_name(L, 1));
  if (!ev) return hb_error(L, HALO_EEVENTUNKNOWN);
  push_event_info(L, B, ev);
  return 1;
}

typedef struct list_ctx {
  lua_State *L;
  halo_binding_t *B;
  int i;
} list_ctx_t;

static void list_one(void *ud, const halo_event_t *ev) {
  list_ctx_t *c = ud;
  push_event_info(c->L, c->B, ev);
  lua_rawseti(c->L, -2, ++c->i);
}

/* core.event_list() -> { EventInfo... } (unfiltered, unsorted) */
static int l_event_list(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  hb_new_array(L, (int)B->node.events.len);
  list_ctx_t c = {L, B, 0};
  halo_event_each(&B->node, list_one, &c);
  return 1;
}

/* core.time_ns() -> wall-clock unix ns (a double: ~256 ns resolution today) */
static int l_time_ns(lua_State *L) {
  lua_pushnumber(L, (double)halo_clock_wall_ns());
  return 1;
}

/* -- Logging ---------------------------------------------------------------------- */

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

/* core.log_add(name, format, levels, output): output "stderr", "stdout" or a file path (appended). */
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
  return ok_or_error(L, rc);
}

static int l_log_remove(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  return ok_or_error(L, halo_log_remove(&B->node.log, luaL_checkstring(L, 1)));
}

/* core.log_loggers() -> { {name, format, levels = {...}, pid?}... } */
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

/* core.log_subscribe(name, levels, source): the calling process becomes a
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
  return ok_or_error(L, halo_log_add_process(&B->node.log, name, self->id, levels, source));
}

static int l_log_unsubscribe(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.log.unsubscribe", 0);
  if (!halo_log_find_process(&B->node.log, self->id)) return hb_error(L, HALO_EUNKNOWN);
  halo_log_remove_process(&B->node.log, self->id);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.log_level([target]) -> level of the node (no target) or of a process. */
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

/* core.log_set_node_level(level) */
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

/* core.error(code[, detail]) -> nil, "ECODE: text[: detail]", "ECODE": the
 * error triple of a halo code name, for Lua modules. */
static int l_error(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  for (int code = HALO__ERR_FIRST + 1; code < HALO__ERR_LAST; code++) {
    if (strcmp(halo_err_name(code), name)) continue;
    if (lua_isnoneornil(L, 2)) return hb_error(L, code);
    return hb_errorf(L, code, "%s: %s", halo_strerror(code), luaL_checkstring(L, 2));
  }
  return luaL_argerror(L, 1, "unknown error code");
}

void hb_open_platform(lua_State *L) {
  static const luaL_Reg fns[] = {{"pool_set_workers", l_pool_set_workers},
                                 {"pool_replace_worker", l_pool_replace_worker},
                                 {"pool_info", l_pool_info},
                                 {"pool_forward", l_pool_forward},
                                 {"event_register", l_event_register},
                                 {"event_unregister", l_event_unregister},
                                 {"event_publish", l_event_publish},
                                 {"event_subscribe", l_event_subscribe},
                                 {"event_unsubscribe", l_event_unsubscribe},
                                 {"event_subscribe_remote", l_event_subscribe_remote},
                                 {"event_unsubscribe_remote", l_event_unsubscribe_remote},
                                 {"event_watch_remote", l_event_watch_remote},
                                 {"event_unwatch_remote", l_event_unwatch_remote},
                                 {"event_info", l_event_info},
                                 {"event_list", l_event_list},
                                 {"time_ns", l_time_ns},
                                 {"error", l_error},
                                 {"log_add", l_log_add},
                                 {"log_remove", l_log_remove},
                                 {"log_loggers", l_log_loggers},
                                 {"log_subscribe", l_log_subscribe},
                                 {"log_unsubscribe", l_log_unsubscribe},
                                 {"log_level", l_log_level},
                                 {"log_set_node_level", l_log_set_node_level},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
