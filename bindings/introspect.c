/* core.introspect: the introspection API of module halo.core, C structs from core/introspect.h
 * and the node turned into plain Lua tables with the reference's field names. */
#include "binding.h"
#include "clock.h"
#include "event.h"
#include "introspect.h"
#include "rel.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>


static void set_pid(halo_binding_t *B, lua_State *L, const char *k, halo_pid_t pid) {
  hb_push_pid(B, L, pid);
  lua_setfield(L, -2, k);
}

static void push_short(halo_binding_t *B, lua_State *L, halo_proc_t *p, uint64_t now) {
  halo_proc_short_t s;
  halo_proc_short_info(&B->node, p, now, &s);
  lua_createtable(L, 0, 20);
  set_pid(B, L, "PID", s.pid);
  SET_STR("Name", s.name);
  SET_STR("Application", s.application);
  SET_STR("Behavior", s.behavior);
  SET_STR("Kind", s.kind);
  SET_INT("MessagesIn", s.messages_in);
  SET_INT("MessagesOut", s.messages_out);
  SET_INT("MessagesMailbox", s.mailbox);
  SET_INT("MailboxLatency", s.mailbox_latency);
  SET_INT("RunningTime", s.running_time);
  SET_INT("InitTime", s.init_time);
  SET_INT("Wakeups", s.wakeups);
  SET_INT("Uptime", s.uptime);
  SET_STR("State", halo_state_name(s.state));
  SET_INT("StateTime", s.state_time);
  set_pid(B, L, "Parent", s.parent);
  set_pid(B, L, "Leader", s.leader);
  SET_STR("LogLevel", halo_log_level_name(s.log_level));
  SET_INT("Drain", s.wakeups ? (double)s.messages_in / (double)s.wakeups : 0.0);
  SET_INT("MemoryAllocated", p->alloc_bytes);
}

static void push_rows(halo_binding_t *B, lua_State *L, halo_proc_t **ps, size_t count) {
  uint64_t now = halo_clock_ns();
  hb_new_array(L, (int)count);
  for (size_t i = 0; i < count; i++) {
    push_short(B, L, ps[i], now);
    lua_rawseti(L, -2, (int)i + 1);
  }
  free(ps);
}

halo_proc_t *hb_check_proc(lua_State *L, halo_binding_t *B, int idx, int *err) {
  hb_target_t t;
  *err = hb_target(L, B, idx, &t);
  if (!*err && !t.proc) *err = HALO_ENOTALLOWED; /* remote: not through this API */
  return *err ? NULL : t.proc;
}

/* An empty Lua table that JSON encoders should emit as [] (cjson's array mt). */
void hb_new_array(lua_State *L, int n) {
  lua_createtable(L, n, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, "halo.array_mt");
  if (lua_istable(L, -1)) lua_setmetatable(L, -2);
  else lua_pop(L, 1);
}

/* core.introspect.process_list(filter) -> { ShortInfo... }, matched, total
 * filter: application, behavior, name, state (any case, "wait_response" too), min/max tables keyed by sort
 * key names ({mailbox = 10, ...}; not the text keys), sort_by, order ("desc" default or "asc"),
 * limit (0 = unlimited). matched counts the matches before the limit, total the node's processes. */
static int l_process_list(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_filter_t f;
  halo_proc_filter_init(&f);
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, "application");
    f.application = lua_tostring(L, -1);
    lua_getfield(L, 1, "behavior");
    f.behavior = lua_tostring(L, -1);
    lua_getfield(L, 1, "name");
    f.name = lua_tostring(L, -1);
    lua_getfield(L, 1, "state");
    if (!lua_isnil(L, -1)) {
      const char *st = luaL_checkstring(L, -1);
      f.state = halo_proc_state_parse(st);
      if (!f.state)
        return luaL_error(L, "unknown process state '%s' (init, sleep, running, wait response, terminated, zombee)",
                          st);
    }
    lua_getfield(L, 1, "sort_by");
    if (!lua_isnil(L, -1)) {
      const char *k = luaL_checkstring(L, -1);
      f.sort_by = halo_proc_key_parse(k);
      if (f.sort_by < 0) return luaL_error(L, "unknown sort key '%s'", k);
    }
    lua_getfield(L, 1, "order");
    if (!lua_isnil(L, -1)) {
      const char *o = luaL_checkstring(L, -1);
      if (strcmp(o, "asc") != 0 && strcmp(o, "desc") != 0) return luaL_error(L, "order must be asc or desc");
      f.ascending = o[0] == 'a';
    }
    lua_getfield(L, 1, "limit");
    if (!lua_isnil(L, -1)) {
      double lim = luaL_checknumber(L, -1);
      f.limit = lim >= 1 && lim < (double)SIZE_MAX ? (size_t)lim : 0; /* past size_t: no limit either */
    }
    for (int which = 0; which < 2; which++) {
      lua_getfield(L, 1, which ? "max" : "min");
      if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
          const char *k = lua_tostring(L, -2);
          int key = k ? halo_proc_key_parse(k) : -1;
          if (key < 0 || halo_proc_key_is_text(key)) return luaL_error(L, "unknown threshold key '%s'", k ? k : "?");
          double v = luaL_checknumber(L, -1);
          if (which) { f.max[key] = v; f.has_max |= 1u << key; }
          else { f.min[key] = v; f.has_min |= 1u << key; }
          lua_pop(L, 1);
        }
      }
    }
  }
  size_t count, matched = 0;
  f.matched = &matched;
  halo_proc_t **ps = halo_process_list(&B->node, &f, &count);
  push_rows(B, L, ps, count);
  lua_pushinteger(L, (lua_Integer)matched);
  lua_pushinteger(L, (lua_Integer)B->node.nprocs);
  return 3;
}

/* core.introspect.process_children(pid_or_name, recursive) -> { ShortInfo... } (spawn order; recursive:
 * level by level) | nil, err, code. A local PID need not be alive: an ended parent's children remain. */
static int l_process_children(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  hb_target_t t;
  int err = hb_target(L, B, 1, &t);
  if (err && !(err == HALO_ENOPROC && t.kind == HALO_TARGET_PID)) return hb_error(L, err);
  if (t.pid.node != B->node.crc) return hb_error(L, HALO_ENOTALLOWED);
  size_t count;
  halo_proc_t **ps = halo_process_children(&B->node, t.pid.id, lua_toboolean(L, 2), &count);
  push_rows(B, L, ps, count);
  return 1;
}

static void push_rels(halo_binding_t *B, lua_State *L, halo_proc_t *p, int type, int tkind,
                      const char *field) {
  hb_new_array(L, 0);
  int k = 0;
  if (p->ext) {
    for (uint32_t i = 0; i < p->ext->watching.len; i++) {
      halo_rel_t *r = &p->ext->watching.v[i];
      if (r->type != type || r->tkind != tkind) continue;
      if (tkind == HALO_TARGET_PID)
        hb_push_pid(B, L, r->tnode ? (halo_pid_t){r->tnode, r->target} : halo_node_pid(&B->node, r->target));
      else if (tkind == HALO_TARGET_NAME) lua_pushstring(L, r->name);
      else {
        char buf[HALO_REF_STRLEN];
        lua_pushlstring(L, buf, (size_t)halo_ref_format(buf, sizeof buf, "Alias", B->node.crc, r->alias));
      }
      lua_rawseti(L, -2, ++k);
    }
  }
  lua_setfield(L, -2, field);
}

typedef struct { lua_State *L; uint64_t producer; int n; } owned_t;

/* Appends the name of an event the process produces to the list on top. */
static void push_owned(void *ud, const halo_event_t *ev) {
  owned_t *o = ud;
  if (ev->producer != o->producer) return;
  lua_pushstring(o->L, ev->name);
  lua_rawseti(o->L, -2, ++o->n);
}

/* core.introspect.process_info(pid) -> ProcessInfo | nil, err, code */
static int l_process_info(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int err;
  halo_proc_t *p = hb_check_proc(L, B, 1, &err);
  if (!p) return hb_error(L, err);
  uint64_t now = halo_clock_ns();
  push_short(B, L, p, now);
  lua_pushnil(L);
  lua_setfield(L, -2, "MessagesMailbox");
  SET_INT("MailboxSize", p->mb.limit);
  lua_createtable(L, 0, 8);
  static const char *const qn[] = {"Urgent", "System", "Main", "Log"};
  for (int q = 0; q < HALO_NQUEUES; q++) {
    char key[32];
    SET_INT(qn[q], halo_mailbox_depth(&p->mb, q));
    uint64_t t = halo_mailbox_oldest(&p->mb, q);
    snprintf(key, sizeof key, "Latency%s", qn[q]);
    SET_INT(key, t && now > t ? now - t : 0);
  }
  lua_setfield(L, -2, "MailboxQueues");
  SET_STR("MessagePriority", "normal");
  SET_BOOL("TrapExit", (p->flags & HALO_PF_TRAP) != 0);
  lua_newtable(L);
  if (p->href[HREF_ENV]) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->href[HREF_ENV]);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -5);
    }
    lua_pop(L, 1);
  }
  lua_setfield(L, -2, "Env");
  hb_new_array(L, 0);
  if (p->ext)
    for (uint32_t i = 0; i < p->ext->naliases; i++) {
      char buf[HALO_REF_STRLEN];
      lua_pushlstring(L, buf, (size_t)halo_ref_format(buf, sizeof buf, "Alias", B->node.crc, p->ext->aliases[i]));
      lua_rawseti(L, -2, (int)i + 1);
    }
  lua_setfield(L, -2, "Aliases");
  hb_new_array(L, 0);
  owned_t o = {L, p->id, 0};
  halo_event_each(&B->node, push_owned, &o);
  lua_setfield(L, -2, "Events");
  hb_new_array(L, 0);
  lua_setfield(L, -2, "Metas");
  push_rels(B, L, p, HALO_REL_LINK, HALO_TARGET_PID, "LinksPID");
  push_rels(B, L, p, HALO_REL_LINK, HALO_TARGET_NAME, "LinksProcessID");
  push_rels(B, L, p, HALO_REL_LINK, HALO_TARGET_ALIAS, "LinksAlias");
  push_rels(B, L, p, HALO_REL_MONITOR, HALO_TARGET_PID, "MonitorsPID");
  push_rels(B, L, p, HALO_REL_MONITOR, HALO_TARGET_NAME, "MonitorsProcessID");
  push_rels(B, L, p, HALO_REL_MONITOR, HALO_TARGET_ALIAS, "MonitorsAlias");
  static const char *const empty[] = {"LinksEvent", "LinksNode", "MonitorsEvent", "MonitorsNode"};
  for (int i = 0; i < 4; i++) {
    hb_new_array(L, 0);
    lua_setfield(L, -2, empty[i]);
  }
  SET_BOOL("KeepNetworkOrder", 1);
  SET_BOOL("ImportantDelivery", 0);
  return 1;
}

/* core.introspect.process_state(pid) -> "sleep" | nil, err, code */
static int l_process_state(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int err;
  halo_proc_t *p = hb_check_proc(L, B, 1, &err);
  if (!p) return hb_error(L, err);
  lua_pushstring(L, halo_state_name(p->state));
  return 1;
}

/* core.introspect.process_name(pid) -> registered name or "" */
static int l_process_name(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int err;
  halo_proc_t *p = hb_check_proc(L, B, 1, &err);
  if (!p) return hb_error(L, err);
  lua_pushstring(L, p->name ? p->name : "");
  return 1;
}

/* core.introspect.process_stack(pid) -> the traceback of the process's coroutine: where it runs or is
 * suspended (a zombee: where it was when killed) | nil, err, code */
static int l_process_stack(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int err;
  halo_proc_t *p = hb_check_proc(L, B, 1, &err);
  if (!p) return hb_error(L, err);
  lua_State *co = p->host;
  if (!co) {
    lua_pushliteral(L, "");
    return 1;
  }
  luaL_traceback(L, co, NULL, co == L); /* the caller's own stack starts above this function */
  return 1;
}

static double tv_ns(struct timeval tv) { return (double)tv.tv_sec * 1e9 + (double)tv.tv_usec * 1e3; }

/* core.introspect.node_info() -> NodeInfo */
static int l_node_info(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_node_t *n = &B->node;
  uint64_t now = halo_clock_ns();
  lua_createtable(L, 0, 40);
  SET_STR("Name", n->name);
  SET_INT("Creation", n->creation);
  SET_INT("Uptime", (now - n->t_start) / 1000000000u);
  lua_createtable(L, 0, 4);
  SET_STR("Name", "halo");
  SET_STR("Release", "0.1.0");
  SET_STR("Commit", "");
  SET_STR("License", "MIT");
  lua_setfield(L, -2, "Framework");
  SET_STR("LogLevel", halo_log_level_name(n->log.level));
  hb_new_array(L, 6);
  for (int i = 0; i < 6; i++) {
    lua_pushnumber(L, (double)n->log.counts[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "LogMessages");
  {
    static const char *const kinds[] = {"plain", "color", "json", "process"};
    static const int levels[] = {HALO_LOG_TRACE, HALO_LOG_DEBUG, HALO_LOG_INFO, HALO_LOG_WARNING,
                                 HALO_LOG_ERROR, HALO_LOG_PANIC};
    hb_new_array(L, (int)n->log.nloggers);
    for (uint32_t i = 0; i < n->log.nloggers; i++) {
      const halo_logger_t *lg = &n->log.loggers[i];
      lua_createtable(L, 0, 3);
      SET_STR("Name", lg->name);
      SET_STR("Behavior", kinds[lg->format]);
      hb_new_array(L, 6);
      for (int k = 0, j = 0; k < 6; k++)
        if (lg->levels & (1u << k)) {
          lua_pushstring(L, halo_log_level_name(levels[k]));
          lua_rawseti(L, -2, ++j);
        }
      lua_setfield(L, -2, "Levels");
      lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "Loggers");
  }
  SET_INT("ProcessesTotal", n->nprocs);
  SET_INT("ProcessesInit", n->state_count[0]);
  SET_INT("ProcessesSleep", n->state_count[1]);
  SET_INT("ProcessesRunning", n->state_count[2]);
  SET_INT("ProcessesWaitResponse", n->state_count[3]);
  SET_INT("ProcessesZombee", n->state_count[5]);
  SET_INT("ProcessesSpawned", n->counters.spawned);
  SET_INT("ProcessesSpawnFailed", n->counters.spawn_failed);
  SET_INT("ProcessesTerminated", n->counters.terminated);
  SET_INT("SendErrorsLocal", n->counters.send_errors_local);
  SET_INT("SendErrorsRemote", n->counters.send_errors_remote);
  SET_INT("CallErrorsLocal", n->counters.call_errors_local);
  SET_INT("CallErrorsRemote", n->counters.call_errors_remote);
  SET_INT("LateReplies", n->counters.late_replies);
  SET_INT("RegisteredNames", n->names.len);
  SET_INT("RegisteredAliases", n->aliases.len);
  SET_INT("RegisteredEvents", n->events.len);
  SET_INT("EventsPublished", n->counters.events_published);
  SET_INT("EventsReceived", n->counters.events_received);
  SET_INT("EventsLocalSent", n->counters.events_local_sent);
  SET_INT("EventsRemoteSent", n->counters.events_remote_sent);
  SET_INT("Timers", n->ntimers);
  SET_INT("MemoryAlloc", (double)lua_gc(L, LUA_GCCOUNT, 0) * 1024.0 + (double)lua_gc(L, LUA_GCCOUNTB, 0));
  SET_INT("MemoryAllocated", n->alloc ? n->alloc->allocated : 0);
  {
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
      long size;
      if (fscanf(f, "%ld %ld", &size, &pages) != 2) pages = 0;
      fclose(f);
    }
    SET_INT("MemoryUsed", (double)pages * (double)sysconf(_SC_PAGESIZE));
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  SET_INT("UserTime", tv_ns(ru.ru_utime));
  SET_INT("SystemTime", tv_ns(ru.ru_stime));
  SET_INT("ServerTime", halo_clock_wall_ns());
  return 1;
}

/* core.introspect.memory() -> {lua = heap bytes, c_heap = malloc'ed bytes in use, rss = bytes} */
static int l_memory(lua_State *L) {
  struct mallinfo2 mi = mallinfo2();
  long pages = 0, size;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &pages) != 2) pages = 0;
    fclose(f);
  }
  lua_createtable(L, 0, 3);
  SET_INT("lua", (double)lua_gc(L, LUA_GCCOUNT, 0) * 1024.0 + (double)lua_gc(L, LUA_GCCOUNTB, 0));
  SET_INT("c_heap", mi.uordblks);
  SET_INT("rss", (double)pages * (double)sysconf(_SC_PAGESIZE));
  return 1;
}

/* core.introspect.stats() -> counts for leak checks and benchmarks */
static int l_stats(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_node_t *n = &B->node;
  lua_createtable(L, 0, 8);
  SET_INT("processes", n->nprocs);
  SET_INT("timers", n->ntimers);
  SET_INT("refs", B->anchored + B->refs);
  SET_INT("anchored", B->anchored);
  SET_INT("messages", n->msgs.total - n->msgs.nfree);
  SET_INT("allocated", n->alloc ? n->alloc->allocated : 0);
  SET_INT("alloc_live", n->alloc ? (double)halo_alloc_live(n->alloc) : 0);
  SET_INT("late_replies", n->counters.late_replies);
  return 1;
}

void hb_open_introspect(lua_State *L) {
  static const luaL_Reg fns[] = {{"process_list", l_process_list},
                                 {"process_children", l_process_children},
                                 {"process_info", l_process_info},
                                 {"process_state", l_process_state},
                                 {"process_name", l_process_name},
                                 {"process_stack", l_process_stack},
                                 {"node_info", l_node_info},
                                 {"stats", l_stats},
                                 {"memory", l_memory},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
