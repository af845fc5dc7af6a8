/* core.process: process operations over core/process.c, core/rel.c and
 * core/timer.c: spawn, send, call, reply, waits, links and monitors, names,
 * aliases, exits, timers, environment. The target strings they take are
 * parsed in target.c. */
#include "binding.h"
#include "clock.h"
#include "process.h"
#include "rel.h"
#include "scheduler.h"
#include "timer.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SPAWN_DEPTH 64

/* -- Spawn -------------------------------------------------------------------- */

/* Spawn options, read in one pass over the options table. */
typedef struct spawn_args {
  const char *name, *kind, *application, *behavior, *log_level, *leader;
  double mailbox_size, init_timeout;
  int link, link_parent, link_child, monitor, trap_exit, env, compress;
} spawn_args_t;

/* A registered name may not parse as a PID or an alias (it could never be addressed). */
static int is_bad_name(const char *name) { return name[0] == '<' || strncmp(name, "Alias#", 6) == 0; }

static const char *opt_string(lua_State *L, const char *k) {
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "spawn option '%s' must be a string", k);
  return lua_tostring(L, -1); /* the options table keeps it alive */
}

static double opt_number(lua_State *L, const char *k) {
  if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) < 0)
    luaL_error(L, "spawn option '%s' must be a number >= 0", k);
  return lua_tonumber(L, -1);
}

static void read_spawn_args(lua_State *L, int opts, spawn_args_t *a) {
  memset(a, 0, sizeof *a);
  a->init_timeout = 5000;
  if (!opts) return;
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (!strcmp(k, "name")) {
      a->name = opt_string(L, k);
      if (is_bad_name(a->name)) luaL_error(L, "spawn option 'name' may not look like a PID or an alias");
    } else if (!strcmp(k, "link")) a->link = lua_toboolean(L, -1);
    else if (!strcmp(k, "monitor")) a->monitor = lua_toboolean(L, -1);
    else if (!strcmp(k, "link_parent")) a->link_parent = lua_toboolean(L, -1);
    else if (!strcmp(k, "link_child")) a->link_child = lua_toboolean(L, -1);
    else if (!strcmp(k, "trap_exit")) a->trap_exit = lua_toboolean(L, -1);
    else if (!strcmp(k, "compress")) a->compress = lua_toboolean(L, -1);
    else if (!strcmp(k, "mailbox_size")) a->mailbox_size = opt_number(L, k);
    else if (!strcmp(k, "init_timeout")) a->init_timeout = opt_number(L, k);
    else if (!strcmp(k, "kind")) a->kind = opt_string(L, k);
    else if (!strcmp(k, "application")) a->application = opt_string(L, k);
    else if (!strcmp(k, "behavior")) a->behavior = opt_string(L, k);
    else if (!strcmp(k, "log_level")) a->log_level = opt_string(L, k);
    else if (!strcmp(k, "leader")) a->leader = opt_string(L, k);
    else if (!strcmp(k, "env")) {
      if (!lua_istable(L, -1)) luaL_error(L, "spawn option 'env' must be a table");
      a->env = 1;
    } else luaL_error(L, "unknown spawn option '%s'", lua_type(L, -2) == LUA_TSTRING ? k : luaL_typename(L, -2));
    lua_pop(L, 1);
  }
}

/* Pushes the instance metatable of a behavior ({__index = behavior}), cached. */
static void push_instance_mt(lua_State *L, halo_binding_t *B, int beh) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, B->mt_cache_ref);
  lua_pushvalue(L, beh);
  lua_rawget(L, -2);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, beh);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, beh);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_remove(L, -2);
}

/* Pushes the child's environment: the parent's copy, then opts.env (keys
 * upper-cased), or nil when there is none. */
static void push_env(lua_State *L, halo_proc_t *parent, int opts) {
  int has_parent = parent && parent->href[HREF_ENV];
  lua_getfield(L, opts, "env");
  int has_opts = lua_istable(L, -1);
  if (!has_parent && !has_opts) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  int oenv = lua_gettop(L);
  lua_newtable(L);
  if (has_parent) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, parent->href[HREF_ENV]);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -5);
    }
    lua_pop(L, 1);
  }
  if (has_opts) {
    lua_pushnil(L);
    while (lua_next(L, oenv)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "env keys must be strings");
      size_t kl;
      const char *k = lua_tolstring(L, -2, &kl);
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (size_t i = 0; i < kl; i++) luaL_addchar(&b, (char)toupper((unsigned char)k[i]));
      luaL_pushresult(&b);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
  }
  lua_remove(L, oenv);
}

/* Stores the value on top under one of p's host references. */
static void set_href(lua_State *L, halo_binding_t *B, halo_proc_t *p, int i) {
  p->href[i] = hb_key(B, L);
  B->refs++;
}

/* Creates the record and coroutine; pushes nothing. Returns 0 or an error.
 * Everything that can raise (bad options, out of memory) happens before the
 * record exists, so a spawn either completes or leaves nothing behind. */
static int spawn_proc(lua_State *L, halo_binding_t *B, int beh, int args, const spawn_args_t *a,
                      int opts, int entry, halo_proc_t **out) {
  halo_node_t *n = &B->node;
  halo_proc_t *parent = n->current;
  int func = lua_isfunction(L, beh);
  halo_spawn_opts_t o = {0};
  o.name = a->name;
  o.parent = parent;
  o.mailbox_limit = (uint32_t)a->mailbox_size;
  o.link_parent = a->link_parent || a->link;
  o.link_child = a->link_child || a->link;
  o.func = func;
  o.monitor = a->monitor;
  o.kind = a->kind;
  o.application = a->application;
  o.behavior = a->behavior;
  if (a->log_level && halo_log_level_parse(a->log_level, &o.log_level))
    luaL_error(L, "unknown log level '%s'", a->log_level);
  if (a->leader && halo_pid_parse(a->leader, strlen(a->leader), &o.leader))
    luaL_error(L, "incorrect leader PID '%s'", a->leader);
  /* Name and kind stay on the stack until interned: __index may make them
   * up, and what follows allocates (a collection could free them). */
  int top = lua_gettop(L);
  if (!o.behavior && !func) {
    lua_getfield(L, beh, "name");
    if (lua_type(L, -1) == LUA_TSTRING) o.behavior = lua_tostring(L, -1);
  }
  if (!o.behavior) o.behavior = func ? "function" : "behavior";
  if (!o.kind && !func) {
    lua_getfield(L, beh, "kind");
    if (lua_type(L, -1) == LUA_TSTRING) o.kind = lua_tostring(L, -1);
  }
  /* The Lua side first, on the stack: coroutine, PID string, environment, instance. */
  luaL_checkstack(L, 8, "spawn");
  int base = lua_gettop(L), pooled;
  lua_State *co;
  for (;;) {
    int npool = B->nco_pool, top_co = npool ? B->co_pool[npool - 1] : 0;
    uint64_t id = halo_proc_next_id(n);
    pooled = npool > 0;
    if (pooled) lua_rawgeti(L, LUA_REGISTRYINDEX, top_co);
    else lua_newthread(L);
    co = lua_tothread(L, base + 1);
    char buf[HALO_PID_STRLEN];
    lua_pushlstring(L, buf, hb_format_local_pid(B, buf, id));
    if (a->env) push_env(L, parent, opts);
    else lua_pushnil(L);
    if (!func) {
      lua_createtable(L, 0, 0);
      push_instance_mt(L, B, beh);
      lua_setmetatable(L, -2);
    }
    if (!lua_checkstack(co, 4)) luaL_error(L, "not enough memory");
    hb_key_reserve(B, L, 4);
    /* A GC finalizer run by these allocations may have spawned (taking this
     * id or this coroutine) or used the keys: then all of it again. */
    if (id == halo_proc_next_id(n) && npool == B->nco_pool && (!npool || top_co == B->co_pool[npool - 1]) &&
        B->nfree >= 4)
      break;
    lua_settop(L, base);
  }
  halo_proc_t *p;
  int rc = halo_proc_spawn(n, &o, &p);
  if (rc) {
    lua_settop(L, top);
    return rc;
  }
  /* From here on nothing raises: the keys are reserved, the stacks have room. */
  if (entry) p->flags |= HALO_PF_ENTRY;
  if (a->trap_exit) p->flags |= HALO_PF_TRAP;
  if (a->compress) { /* its messages to other nodes are compressed (halo.net.compress) */
    halo_proc_ext_t *x = halo__proc_ext(p);
    if (x) x->compress = 1;
  }
  if (pooled) {
    p->href[HREF_CO] = B->co_pool[--B->nco_pool];
    B->refs++;
  } else {
    lua_pushvalue(L, base + 1);
    set_href(L, B, p, HREF_CO);
  }
  p->host = co;
  lua_pushvalue(L, base + 2);
  set_href(L, B, p, HREF_PID);
  if (!lua_isnil(L, base + 3)) {
    lua_pushvalue(L, base + 3);
    set_href(L, B, p, HREF_ENV);
  } else if (!a->env && parent && parent->href[HREF_ENV]) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, parent->href[HREF_ENV]);
    set_href(L, B, p, HREF_ENV); /* shared until someone sets */
  }
  if (func) {
    /* The coroutine holds the function; only behaviors need an instance ref. */
    lua_pushvalue(L, beh);
    lua_pushvalue(L, args);
    lua_xmove(L, co, 2);
  } else {
    lua_pushvalue(L, base + 4);
    set_href(L, B, p, HREF_INST);
    lua_rawgeti(L, LUA_REGISTRYINDEX, B->body_ref);
    lua_pushvalue(L, base + 4);
    lua_pushvalue(L, args);
    lua_xmove(L, co, 3);
  }
  lua_settop(L, top);
  *out = p;
  return 0;
}

int hb_spawn_entry(lua_State *L, halo_binding_t *B, int fn_idx, int args_idx) {
  halo_proc_t *p;
  spawn_args_t a;
  read_spawn_args(L, 0, &a);
  a.behavior = "entry";
  int rc = spawn_proc(L, B, fn_idx, args_idx, &a, 0, 1, &p);
  if (rc) return rc;
  B->entry_id = p->id;
  halo_proc_start(&B->node, p, NULL);
  return 0;
}

/* core.process.spawn(behavior, args, opts) -> pid | pid, true (the caller must
 * yield until the child's init is done) | nil, err, code */
static int l_spawn(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_node_t *n = &B->node;
  if (!lua_istable(L, 1) && !lua_isfunction(L, 1))
    return luaL_argerror(L, 1, "behavior table or function expected");
  int opts = lua_istable(L, 3) ? 3 : 0;
  if (!opts && !lua_isnoneornil(L, 3)) return luaL_argerror(L, 3, "options table expected");
  lua_settop(L, 3);
  halo_proc_t *parent = n->current;
  if (parent && parent->depth >= MAX_SPAWN_DEPTH)
    return hb_errorf(L, HALO_ENOTALLOWED, "spawns nested more than %d deep", MAX_SPAWN_DEPTH);
  spawn_args_t a;
  read_spawn_args(L, opts, &a);
  halo_proc_t *p;
  int rc = spawn_proc(L, B, 1, 2, &a, opts, 0, &p);
  if (rc) return hb_error(L, rc);
  uint64_t id = p->id;
  hb_push_proc_pid(B, L, p); /* pushed now: the record may be gone after start */
  halo_payload_t reason = {0, 0};
  rc = halo_proc_start(n, p, &reason);
  B->cur = L;
  if (rc == HALO_RUN_EXITED && !lua_isfunction(L, 1)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    hb_push_payload(B, L, reason, 1);
    const char *m = lua_tostring(L, -1);
    lua_pushfstring(L, "%s: %s: %s", halo_err_name(HALO_EINIT), halo_strerror(HALO_EINIT),
                    m ? m : luaL_typename(L, -1));
    lua_remove(L, -2);
    lua_pushstring(L, halo_err_name(HALO_EINIT));
    return 3;
  }
  hb_release(B, reason);
  if (rc == HALO_RUN_SUSPENDED && !lua_isfunction(L, 1) && parent && parent->host == L &&
      halo_proc_find(n, id) == p && !(p->flags & HALO_PF_STARTED)) {
    uint64_t timeout = (uint64_t)a.init_timeout;
    rc = halo_proc_wait_spawn(n, parent, p, timeout);
    if (rc) return hb_error(L, rc);
    lua_pushboolean(L, 1);
    return 2;
  }
  return 1;
}

/* -- Messages ------------------------------------------------------------------ */

/* An error of a send: with the codec's reason when the value could not be
 * encoded for another node. */
static int hb_remote_error(lua_State *L, halo_binding_t *B, int rc) {
  if (B->codec_err[0]) {
    int r = hb_errorf(L, rc, "cannot send to another node: %s", B->codec_err);
    B->codec_err[0] = 0;
    return r;
  }
  return hb_error(L, rc);
}

/* core.process.send(to, msg) -> true | nil, err, code */
static int l_send(lua_State *L) {
  halo_binding_t *B = halo__B;
  if (!B) return luaL_error(L, "no halo node is running (use halo.run)");
  B->cur = L;
  halo_node_t *n = &B->node;
  hb_target_t t;
  int rc = hb_target(L, B, 1, &t);
  if (rc) {
    if (rc == HALO_ENOCONN) n->counters.send_errors_remote++;
    else n->counters.send_errors_local++;
    return hb_error(L, rc);
  }
  halo_payload_t pl = hb_anchor(B, L, 2);
  B->codec_err[0] = 0;
  if (t.proc) rc = halo_send_proc(n, n->current, t.proc, HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl, hb_size(L, 2));
  else if (t.kind == HALO_TARGET_NAME)
    rc = halo_send_name(n, n->current, t.pid.node, t.name, HALO_MSG_REGULAR, HALO_Q_MAIN, pl, hb_size(L, 2));
  else rc = halo_send(n, n->current, t.pid, HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl, hb_size(L, 2));
  if (rc) {
    hb_release(B, pl);
    return hb_remote_error(L, B, rc);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* A duration in ms from argument idx (default def when absent): NaN and
 * negatives raise; anything past ~31 years (math.huge included) is clamped
 * there, so the conversion to an integer is always defined. */
static uint64_t check_ms(lua_State *L, int idx, double def) {
  double ms = luaL_optnumber(L, idx, def);
  if (!(ms >= 0)) luaL_argerror(L, idx, "must be a number of ms >= 0");
  return ms > 1e12 ? (uint64_t)1e12 : (uint64_t)ms;
}

static int call_kind(lua_State *L, int kind, int queue, const char *fn) {
  halo_binding_t *B = hb_node(L);
  halo_node_t *n = &B->node;
  halo_proc_t *self = hb_self(L, B, fn, 1);
  hb_target_t t;
  int rc = hb_target(L, B, 1, &t);
  if (rc) {
    n->counters.call_errors_local++;
    return hb_error(L, rc);
  }

  uint64_t timeout = check_ms(L, 3, 5000);
  halo_payload_t pl = hb_anchor(B, L, 2);
  B->codec_err[0] = 0;
  int64_t ref = t.kind == HALO_TARGET_NAME && !t.proc  /* a name on another node */
                    ? halo_call_name(n, self, t.pid.node, t.name, kind, queue, pl, hb_size(L, 2), timeout)
                    : halo_call(n, self, t.pid, kind, queue, pl, hb_size(L, 2), timeout);
  if (ref < 0) {
    hb_release(B, pl);
    return hb_remote_error(L, B, (int)ref);
  }
  lua_pushnumber(L, (double)ref);
  return 1;
}

/* core.process.call(to, request, timeout_ms) -> ref (then yield) | nil, err, code */
static int l_call(lua_State *L) { return call_kind(L, HALO_MSG_REQUEST, HALO_Q_MAIN, "halo.call"); }

/* core.process.inspect(to, items, timeout_ms) -> ref (then yield) | nil, err, code */
static int l_inspect(lua_State *L) { return call_kind(L, HALO_MSG_INSPECT, HALO_Q_URGENT, "halo.inspect"); }

/* core.process.reply(to, ref, value) -> true | nil, err, code */
static int l_reply(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  halo_pid_t to;
  if (halo_pid_parse(s, len, &to)) return luaL_argerror(L, 1, "incorrect PID format, expected <crc.high.low>");
  double ref = luaL_checknumber(L, 2);
  halo_payload_t pl = hb_anchor(B, L, 3);
  int rc = halo_reply(&B->node, B->node.current, to, (uint64_t)ref, pl);
  if (rc) {
    hb_release(B, pl);
    return hb_error(L, rc);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.process.sleep(ms): the caller then yields. */
static int l_sleep(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.sleep", 1);
  luaL_checknumber(L, 1);
  int rc = halo_proc_sleep(&B->node, self, check_ms(L, 1, 0));
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.process.yield(): the caller then yields; it runs again after the other ready processes. */
static int l_yield(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_yield(&B->node, hb_self(L, B, "halo.yield", 1));
  return 0;
}

/* core.process.receive([timeout_ms]): function processes only; the caller then yields. */
static int l_receive(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.receive", 1);
  if (!(self->flags & HALO_PF_FUNC))
    return luaL_error(L, "halo.receive is for function processes; behaviors get messages in handle_message");
  uint64_t ms = UINT64_MAX;
  if (!lua_isnoneornil(L, 1)) {
    double d = luaL_checknumber(L, 1);
    if (d < 0) return luaL_argerror(L, 1, "must be >= 0");
    ms = (uint64_t)d;
  }
  int rc = halo_proc_receive(&B->node, self, ms);
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.process.self() -> pid | nil outside processes */
static int l_self(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  if (!B->node.current) return 0;
  hb_push_proc_pid(B, L, B->node.current);
  return 1;
}

/* -- Links, monitors, exits ------------------------------------------------ */

static int rel_op(lua_State *L, int type, int add, const char *fn) {
  halo_binding_t *B = hb_node(L);
  halo_node_t *n = &B->node;
  halo_proc_t *self = hb_self(L, B, fn, 0);
  hb_target_t t;
  int rc = hb_target(L, B, 1, &t);
  if (add && self->state >= HALO_STATE_TERMINATED) return hb_error(L, HALO_ETERMINATED); /* cleanup has run */
  /* another node's PID, or a name registered there ("<CRC.name>"; its aliases are not watched) */
  const char *rname = t.kind == HALO_TARGET_NAME && strncmp(t.name, "Alias#", 6) ? t.name : NULL;
  int remote = t.pid.node && t.pid.node != n->crc && (t.kind == HALO_TARGET_PID || (rname && !t.proc));
  if (remote && (rc == 0 || rc == HALO_ENOCONN)) {
    if (add && self->host != L) return luaL_error(L, "%s must be called from the process's own coroutine", fn);
    rc = add ? halo_rel_add_remote(n, self, type, t.pid, rname) : halo_rel_remove_remote(n, self, type, t.pid, rname);
    if (rc) return hb_error(L, rc);
    if (add) { /* the caller yields until the other node confirms */
      lua_pushliteral(L, "wait");
      return 1;
    }
    lua_pushboolean(L, 1);
    return 1;
  }
  if (add) {
    if (rc) return hb_error(L, rc);
    if (!t.proc) return hb_error(L, HALO_ENOCONN);
    if (t.proc->state >= HALO_STATE_TERMINATED) return hb_error(L, HALO_ETERMINATED);
    rc = halo_rel_add(n, self, type, t.proc, t.kind, t.name, t.alias);
  } else {
    uint64_t target = t.kind == HALO_TARGET_PID ? t.pid.id : 0;
    rc = halo_rel_remove(n, self, type, t.kind, target, t.name, t.alias);
  }
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_link(lua_State *L) { return rel_op(L, HALO_REL_LINK, 1, "halo.link"); }
static int l_unlink(lua_State *L) { return rel_op(L, HALO_REL_LINK, 0, "halo.unlink"); }
static int l_monitor(lua_State *L) { return rel_op(L, HALO_REL_MONITOR, 1, "halo.monitor"); }
static int l_demonitor(lua_State *L) { return rel_op(L, HALO_REL_MONITOR, 0, "halo.demonitor"); }

/* core.process.exit(to, reason): sends an exit signal. */
static int l_exit(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_node_t *n = &B->node;
  if (lua_isnoneornil(L, 2)) return luaL_argerror(L, 2, "reason expected");
  halo_proc_t *self = n->current;
  hb_target_t t;
  int rc = hb_target(L, B, 1, &t);
  if (rc) return hb_error(L, rc);
  if (self && t.proc &&
      (t.proc == self || (t.pid.node == self->parent.node && t.pid.id == self->parent.id) ||
       (t.pid.node == self->leader.node && t.pid.id == self->leader.id)))
    return hb_errorf(L, HALO_ENOTALLOWED, "an exit signal may not go to the sender itself, its parent or its leader");
  /* The signal carries the bare reason; the receiver sees {kind = "exit", pid = sender, reason}. */
  halo_payload_t pl = hb_anchor(B, L, 2);
  int kind = HALO_MSG_EXIT | HALO_KIND_REASON;
  if (t.proc) {
    halo_pid_t from = halo_node_pid(n, self ? self->id : 1);
    rc = halo__enqueue(n, from, t.proc, kind, HALO_Q_URGENT, 0, pl, 0);
    if (!rc && self) self->msgs_out++;
  } else if (t.kind == HALO_TARGET_NAME) { /* a name (or an alias) on another node */
    rc = halo_send_name(n, self, t.pid.node, t.name, kind, HALO_Q_URGENT, pl, 0);
  } else {
    rc = halo_send(n, self, t.pid, kind, HALO_Q_URGENT, 0, pl, 0);
  }
  if (rc) {
    hb_release(B, pl);
    return hb_error(L, rc);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.process.kill(to) */
static int l_kill(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  hb_target_t t;
  int rc = hb_target(L, B, 1, &t);
  if (rc) return hb_error(L, rc);
  if (!t.proc) return hb_error(L, HALO_ENOTALLOWED);
  rc = halo_proc_kill(&B->node, t.proc);
  B->cur = L;
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.process.trap_exit([flag]) -> previous flag */
static int l_trap_exit(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.trap_exit", 0);
  lua_pushboolean(L, (self->flags & HALO_PF_TRAP) != 0);
  if (!lua_isnoneornil(L, 1)) {
    if (lua_toboolean(L, 1)) self->flags |= HALO_PF_TRAP;
    else self->flags &= (uint8_t)~HALO_PF_TRAP;
  }
  return 1;
}

/* -- Names and aliases ------------------------------------------------------- */

static int l_register(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.register", 0);
  const char *name = luaL_checkstring(L, 1);
  if (is_bad_name(name))
    return luaL_argerror(L, 1, "a name may not look like a PID or an alias");
  int rc = halo_name_register(&B->node, self, name);
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_unregister(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int rc = halo_name_unregister(&B->node, luaL_checkstring(L, 1));
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.process.whereis(name) -> pid | nil, err, code */
static int l_whereis(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *p = halo_name_lookup(&B->node, luaL_checkstring(L, 1));
  if (!p) return hb_error(L, HALO_ENOPROC);
  hb_push_proc_pid(B, L, p);
  return 1;
}

static int l_alias(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.alias", 0);
  int64_t id = halo_alias_new(&B->node, self);
  if (id < 0) return hb_error(L, (int)id);
  char buf[HALO_REF_STRLEN];
  lua_pushlstring(L, buf, (size_t)halo_ref_format(buf, sizeof buf, "Alias", B->node.crc, (uint64_t)id));
  return 1;
}

static int l_unalias(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.unalias", 0);
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  uint32_t crc;
  uint64_t id;
  if (halo_ref_parse(s, len, "Alias", &crc, &id))
    return luaL_argerror(L, 1, "incorrect Alias format, expected Alias#<crc.id0.id1.id2>");
  int rc = halo_alias_delete(&B->node, self, id);
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* -- Timers ------------------------------------------------------------------- */

/* core.process.send_after(to, msg, ms) -> timer id | nil, err, code */
static int l_send_after(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.send_after", 0);
  hb_target_t t;
  int rc = hb_target(L, B, 1, &t);
  if (rc) return hb_error(L, rc);
  luaL_checknumber(L, 3);
  uint64_t ms = check_ms(L, 3, 0);
  halo_payload_t pl = hb_anchor(B, L, 2);
  int64_t id = halo_timer_send_after(&B->node, self, t.pid, pl, hb_size(L, 2), ms);
  if (id < 0) {
    hb_release(B, pl);
    return hb_error(L, (int)id);
  }
  lua_pushnumber(L, (double)id);
  return 1;
}

static int l_cancel_timer(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.cancel_timer", 0);
  int rc = halo_timer_cancel(&B->node, self, (uint64_t)luaL_checknumber(L, 1));
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* -- Environment ---------------------------------------------------------------- */

static void push_upper(lua_State *L, int idx) {
  size_t kl;
  const char *k = luaL_checklstring(L, idx, &kl);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < kl; i++) luaL_addchar(&b, (char)toupper((unsigned char)k[i]));
  luaL_pushresult(&b);
}

static int l_getenv(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.getenv", 0);
  lua_settop(L, 1); /* the key, or nil for all: the environment goes above it */
  if (!self->href[HREF_ENV]) {
    if (!lua_isnil(L, 1)) return 0;
    lua_newtable(L);
    return 1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, self->href[HREF_ENV]);
  if (lua_isnil(L, 1)) { /* a copy of the whole environment */
    hb_copy_table(L);
    return 1;
  }
  push_upper(L, 1);
  lua_rawget(L, -2);
  return 1;
}

static int l_setenv(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.setenv", 0);
  /* Everything that can raise comes before the old key is given back. */
  push_upper(L, 1);
  int k = lua_gettop(L);
  /* Copy on write: a table shared with the parent is copied first. */
  lua_newtable(L);
  int t = lua_gettop(L);
  if (self->href[HREF_ENV]) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, self->href[HREF_ENV]);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, t);
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, k);
  lua_pushvalue(L, 2);
  lua_rawset(L, t);
  hb_key_reserve(B, L, 1);
  if (self->href[HREF_ENV]) {
    hb_key_free(B, L, self->href[HREF_ENV]);
    B->refs--;
  }
  lua_pushvalue(L, t);
  self->href[HREF_ENV] = hb_key(B, L);
  B->refs++;
  return 0;
}

/* core.process.set_log_level(level[, pid]) */
static int l_set_log_level(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int lvl;
  if (halo_log_level_parse(luaL_checkstring(L, 1), &lvl)) return luaL_argerror(L, 1, "unknown log level");
  halo_proc_t *p;
  if (lua_isnoneornil(L, 2)) {
    p = hb_self(L, B, "halo.set_log_level", 0);
  } else {
    hb_target_t t;
    int rc = hb_target(L, B, 2, &t);
    if (rc) return hb_error(L, rc);
    if (!t.proc) return hb_error(L, HALO_ENOTALLOWED);
    p = t.proc;
  }
  p->log_level = (int8_t)lvl;
  lua_pushboolean(L, 1);
  return 1;
}

void hb_open_process(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"spawn", l_spawn},         {"send", l_send},           {"call", l_call},
      {"inspect", l_inspect},     {"reply", l_reply},         {"sleep", l_sleep},
      {"receive", l_receive},     {"yield", l_yield},     {"self", l_self},           {"link", l_link},
      {"unlink", l_unlink},       {"monitor", l_monitor},     {"demonitor", l_demonitor},
      {"exit", l_exit},           {"kill", l_kill},           {"trap_exit", l_trap_exit},
      {"register", l_register},   {"unregister", l_unregister}, {"whereis", l_whereis},
      {"alias", l_alias},         {"unalias", l_unalias},     {"send_after", l_send_after},
      {"cancel_timer", l_cancel_timer}, {"getenv", l_getenv}, {"setenv", l_setenv},
      {"set_log_level", l_set_log_level}, {NULL, NULL}};
  luaL_register(L, NULL, fns);
  /* C entry point for LuaJIT's FFI: a compiled trace calls it directly. */
  lua_pushlightuserdata(L, (void *)(uintptr_t)halo_send_number);
  lua_setfield(L, -2, "FFI_SEND_NUMBER");
#define K(name, v) lua_pushinteger(L, v), lua_setfield(L, -2, name)
  K("MSG_REGULAR", HALO_MSG_REGULAR);
  K("MSG_REQUEST", HALO_MSG_REQUEST);
  K("MSG_EVENT", HALO_MSG_EVENT);
  K("MSG_EXIT", HALO_MSG_EXIT);
  K("MSG_DOWN", HALO_MSG_DOWN);
  K("MSG_BARE", HB_MSG_BARE);
  K("MSG_INSPECT", HALO_MSG_INSPECT);
  K("MSG_LOG", HALO_MSG_LOG);
  K("MSG_TIMEOUT", HALO_MSG_TIMEOUT);
#undef K
}
