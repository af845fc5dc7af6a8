/*
 * Module halo.core: node lifecycle (core.run) and the one gate through which
 * the core runs Lua code (the run and terminate hooks).
 */
#include "binding.h"
#include "clock.h"
#include "process.h"
#include "rel.h"
#include "scheduler.h"
#include "timer.h"
#include "watchdog.h"

#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static char ready_token;

/* -- Helpers ----------------------------------------------------------------- */

halo_binding_t *hb_node(lua_State *L) {
  halo_binding_t *B = halo__B;
  if (!B) luaL_error(L, "no halo node is running (use halo.run)");
  B->cur = L;
  return B;
}

halo_proc_t *hb_self(lua_State *L, halo_binding_t *B, const char *fn, int own) {
  halo_proc_t *p = B->node.current;
  if (!p) luaL_error(L, "%s must be called from a process", fn);
  if (own && p->host != L)
    luaL_error(L, "%s must be called from the process's own coroutine, not from a nested one", fn);
  return p;
}

void hb_log(halo_binding_t *B, halo_proc_t *p, int level, const char *msg, size_t len) {
  halo_log_proc_msg(&B->node, p, level, msg, len);
}

static int is_normal_reason(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TSTRING) return 0;
  const char *s = lua_tostring(L, idx);
  return strcmp(s, "normal") == 0 || strcmp(s, "shutdown") == 0;
}

/* -- Hooks: the gate ------------------------------------------------------------ */

/* Pushes what a call that failed because its callee ended (or never was,
 * or its node went away) before replying returns after false: a reason
 * that is an error's text ("unknown process", "no connection") as that
 * error; any other reason as "ETERMINATED: process terminated: <reason>",
 * "ETERMINATED", reason. Returns how many values it pushed. */
static int push_call_failure(halo_binding_t *B, lua_State *co, halo_payload_t res) {
  hb_push_payload(B, co, res, 1);
  int t = lua_type(co, -1);
  if (t == LUA_TSTRING)
    for (int c = HALO__ERR_FIRST + 1; c < HALO__ERR_LAST; c++)
      if (strcmp(lua_tostring(co, -1), halo_strerror(c)) == 0) {
        lua_pop(co, 1);
        lua_pushfstring(co, "%s: %s", halo_err_name(c), halo_strerror(c));
        lua_pushstring(co, halo_err_name(c));
        return 2;
      }
  const char *m = t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tostring(co, -1) : luaL_typename(co, -1);
  lua_pushfstring(co, "%s: %s: %s", halo_err_name(HALO_ETERMINATED), halo_strerror(HALO_ETERMINATED), m);
  lua_insert(co, -2);
  lua_pushstring(co, halo_err_name(HALO_ETERMINATED));
  lua_insert(co, -2);
  return 3;
}

/* Pushes what a woken process's pending yield returns. */
static int push_wake(halo_binding_t *B, lua_State *co, halo_proc_t *p) {
  int wake = p->wake, wait = p->wait;
  halo_payload_t res = p->result;
  p->wake = HALO_WAKE_NONE;
  p->wait = HALO_WAIT_NONE;
  p->result.tag = 0;
  if (wait == HALO_WAIT_RECEIVE) { /* receive timed out */
    lua_pushinteger(co, HALO_MSG_TIMEOUT);
    return 1;
  }
  if (wait == HALO_WAIT_SLEEP) return 0;
  if (wake == HALO_WAKE_REPLY) {
    lua_pushboolean(co, 1);
    hb_push_payload(B, co, res, 1);
    return 2;
  }
  lua_pushboolean(co, 0);
  if (wake == HALO_WAKE_TIMEOUT) {
    lua_pushfstring(co, "%s: %s", halo_err_name(HALO_ETIMEDOUT), halo_strerror(HALO_ETIMEDOUT));
    lua_pushstring(co, halo_err_name(HALO_ETIMEDOUT));
  } else if (wait == HALO_WAIT_REPLY) { /* halo_proc_call_fail: res is why */
    return 1 + push_call_failure(B, co, res);
  } else { /* a child's init failed: res is its reason */
    hb_push_payload(B, co, res, 1);
    lua_pushstring(co, halo_err_name(HALO_EINIT));
  }
  return 3;
}

static int hook_run(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg) {
  halo_binding_t *B = n->host;
  lua_State *co = p->host;
  int nargs;
  if (msg) {
    halo_payload_t pl = {msg->pval, msg->ptag};
    if (msg->kind == HALO_MSG_EXIT &&
        (!(p->flags & HALO_PF_TRAP) || (msg->from.id == p->parent.id && msg->from.node == p->parent.node))) {
      /* An exit signal the process does not trap ends it with the signal's reason. */
      if (msg->flags & HALO_MF_REASON) {
        p->result = pl; /* the bare reason: ownership moves */
        return HALO_RUN_EXITED;
      }
      lua_State *L = hb_L(B);
      hb_push_payload(B, L, pl, 1);
      if (lua_istable(L, -1)) { /* rawget: this runs outside any pcall */
        lua_pushliteral(L, "reason");
        lua_rawget(L, -2);
      } else {
        lua_pushvalue(L, -1);
      }
      p->result = hb_anchor(B, L, -1);
      lua_pop(L, 2);
      return HALO_RUN_EXITED;
    }
    p->wait = HALO_WAIT_NONE;
    /* A bare exit or down reason arrives as kind + MSG_BARE; halo's Lua side
     * makes the {kind, pid, reason} table (a table template there beats
     * building it field by field through the C API). */
    lua_pushinteger(co, msg->kind + ((msg->flags & HALO_MF_REASON) ? HB_MSG_BARE : 0));
    hb_push_pid(B, co, msg->from);
    hb_push_payload(B, co, pl, 1);
    lua_pushnumber(co, (double)msg->ref);
    nargs = 4;
  } else if (p->wake) {
    nargs = push_wake(B, co, p);
  } else {
    nargs = lua_gettop(co) - 1; /* first run: function and arguments are in place */
  }
  lua_State *saved = B->cur;
  B->cur = co;
  int st = lua_resume(co, nargs);
  B->cur = saved;
  if (st == LUA_YIELD) {
    if (p->wait != HALO_WAIT_NONE) {
      lua_settop(co, 0);
      return HALO_RUN_SUSPENDED;
    }
    if (lua_gettop(co) >= 1 && lua_touserdata(co, 1) == &ready_token) {
      lua_settop(co, 0);
      return HALO_RUN_IDLE;
    }
    lua_settop(co, 0);
    lua_State *L = hb_L(B);
    lua_pushliteral(L, "coroutine.yield called directly inside a process callback");
    hb_log(B, p, HALO_LOG_ERROR, lua_tostring(L, -1), lua_objlen(L, -1));
    p->result = hb_anchor(B, L, -1);
    lua_pop(L, 1);
    return HALO_RUN_EXITED;
  }
  lua_State *L = hb_L(B);
  if (st == 0) {
    /* The body returned: a function process ended, or a callback returned a reason. */
    if (lua_gettop(co) >= 1 && !lua_isnil(co, 1)) {
      lua_pushvalue(co, 1);
      lua_xmove(co, L, 1);
    } else {
      lua_settop(co, 0);
      p->result.tag = PL_REASON;
      p->result.val = HB_REASON_NORMAL;
      return HALO_RUN_EXITED;
    }
    p->result = hb_anchor(B, L, -1);
    lua_pop(L, 1);
    lua_settop(co, 0);
    return HALO_RUN_EXITED;
  }
  /* An error: log it with the coroutine's traceback, end with the error value. */
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);
  const char *m = lua_tostring(L, -1);
  luaL_traceback(L, co, m ? m : "(error object is not a string)", 0);
  size_t tlen;
  const char *tb = lua_tolstring(L, -1, &tlen);
  if (p->flags & HALO_PF_ENTRY) {
    free(B->entry_error);
    B->entry_error = strdup(tb);
  }
  hb_log(B, p, HALO_LOG_ERROR, tb, tlen);
  lua_pop(L, 1);
  p->result = hb_anchor(B, L, -1);
  lua_pop(L, 1);
  return HALO_RUN_EXITED;
}

static int traceback_handler(lua_State *L) {
  const char *m = lua_tostring(L, 1);
  luaL_traceback(L, L, m ? m : "(error object is not a string)", 1);
  return 1;
}

static void hook_terminate(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason) {
  halo_binding_t *B = n->host;
  lua_State *L = hb_L(B);
  int top = lua_gettop(L);
  hb_push_payload(B, L, *reason, 0);
  int ridx = lua_gettop(L);
  int normal = is_normal_reason(L, ridx);
  if (p->flags & HALO_PF_ENTRY) {
    if (!normal) {
      if (!B->entry_error) {
        const char *s = luaL_typename(L, ridx);
        if (lua_type(L, ridx) == LUA_TSTRING) s = lua_tostring(L, ridx);
        B->entry_error = strdup(s);
      }
      halo_node_stop(n, 1);
    }
  }
  if (!(p->flags & HALO_PF_FUNC) && p->href[HREF_INST]) {
    lua_pushcfunction(L, traceback_handler);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->href[HREF_INST]);
    lua_getfield(L, -1, "terminate");
    if (lua_isfunction(L, -1)) {
      lua_insert(L, -2); /* terminate, inst */
      lua_pushvalue(L, ridx);
      uint64_t *prev = n->alloc ? halo_alloc_attribute(n->alloc, &p->alloc_bytes) : NULL;
      if (lua_pcall(L, 2, 0, top + 2)) {
        size_t len;
        const char *m = lua_tolstring(L, -1, &len);
        hb_log(B, p, HALO_LOG_ERROR, m ? m : "error in terminate", m ? len : 18);
      }
      if (n->alloc) halo_alloc_attribute(n->alloc, prev);
    }
  }
  lua_settop(L, top);
}

static void hook_free(halo_node_t *n, halo_proc_t *p) {
  halo_binding_t *B = n->host;
  lua_State *L = hb_L(B);
  lua_State *co = p->host;
  /* A coroutine whose body returned is as good as new: keep it for the next spawn. */
  if (co && p->href[HREF_CO] && lua_status(co) == 0 && lua_gettop(co) == 0 &&
      B->nco_pool < (int)(sizeof B->co_pool / sizeof B->co_pool[0])) {
    B->co_pool[B->nco_pool++] = p->href[HREF_CO];
    p->href[HREF_CO] = 0;
    B->refs--;
  }
  /* The PID string moves into the cache of ended processes' PIDs (a key
   * swap): down messages and late replies name this process next. */
  if (p->href[HREF_PID]) {
    int slot = (int)(p->id & 255), old = B->pid_cache_key[slot];
    B->pid_cache_key[slot] = p->href[HREF_PID];
    B->pid_cache[slot] = p->id;
    p->href[HREF_PID] = old;
  }
  for (int i = 0; i < 4; i++) {
    if (p->href[i]) {
      hb_key_free(B, L, p->href[i]);
      p->href[i] = 0;
      B->refs--;
    }
  }
  p->host = NULL;
}

static void hook_release(halo_node_t *n, halo_payload_t pl) { hb_release(n->host, pl); }

static halo_payload_t hook_dup(halo_node_t *n, const halo_payload_t *pl) {
  if (pl->tag != PL_ANCHOR) return *pl; /* values, not references */
  halo_binding_t *B = n->host;
  lua_State *L = hb_L(B);
  hb_push_payload(B, L, *pl, 0);
  halo_payload_t r = hb_anchor(B, L, -1);
  lua_pop(L, 1);
  return r;
}

static halo_payload_t hook_signal(halo_node_t *n, const halo_signal_info_t *info,
                                  const halo_payload_t *reason) {
  halo_binding_t *B = n->host;
  lua_State *L = hb_L(B);
  if (info->notice) { /* to an event's producer: first subscriber came, last one left */
    lua_createtable(L, 0, 2);
    lua_pushstring(L, info->notice == HALO_NOTICE_EVENT_START ? "event_start" : "event_stop");
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, info->name);
    lua_setfield(L, -2, "event");
    halo_payload_t r = hb_anchor(B, L, -1);
    lua_pop(L, 1);
    return r;
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, info->kind == HALO_MSG_EXIT ? "exit" : "down");
  lua_setfield(L, -2, "kind");
  if (info->pid.id) { /* none: another node's name whose node went away */
    hb_push_pid(B, L, info->pid);
    lua_setfield(L, -2, "pid");
  }
  if (info->target_kind == HALO_TARGET_EVENT) {
    lua_pushstring(L, info->name);
    lua_setfield(L, -2, "event");
  } else if (info->target_kind == HALO_TARGET_NAME) {
    lua_pushstring(L, info->name);
    lua_setfield(L, -2, "name");
  } else if (info->target_kind == HALO_TARGET_ALIAS) {
    char buf[HALO_REF_STRLEN];
    halo_ref_format(buf, sizeof buf, "Alias", n->crc, info->alias);
    lua_pushstring(L, buf);
    lua_setfield(L, -2, "alias");
  }
  hb_push_payload(B, L, *reason, 0);
  lua_setfield(L, -2, "reason");
  halo_payload_t r = hb_anchor(B, L, -1);
  lua_pop(L, 1);
  return r;
}

/* A log record as a process logger receives it. */
static halo_payload_t hook_log_record(halo_node_t *n, const halo_log_record_t *rec) {
  halo_binding_t *B = n->host;
  lua_State *L = hb_L(B);
  lua_createtable(L, 0, 5);
  lua_pushliteral(L, "log");
  lua_setfield(L, -2, "kind");
  lua_pushnumber(L, (double)rec->time);
  lua_setfield(L, -2, "time");
  lua_pushstring(L, halo_log_level_name(rec->level));
  lua_setfield(L, -2, "level");
  lua_createtable(L, 0, 5);
  lua_pushstring(L, rec->pid.id ? "process" : "node");
  lua_setfield(L, -2, "type");
  lua_pushstring(L, n->name);
  lua_setfield(L, -2, "node");
  if (rec->pid.id) {
    hb_push_pid(B, L, rec->pid);
    lua_setfield(L, -2, "pid");
  }
  if (rec->name) {
    lua_pushstring(L, rec->name);
    lua_setfield(L, -2, "name");
  }
  if (rec->behavior) {
    lua_pushstring(L, rec->behavior);
    lua_setfield(L, -2, "behavior");
  }
  lua_setfield(L, -2, "source");
  lua_pushlstring(L, rec->msg, rec->len);
  lua_setfield(L, -2, "message");
  halo_payload_t r = hb_anchor(B, L, -1);
  lua_pop(L, 1);
  return r;
}

static halo_payload_t hook_reason(halo_node_t *n, const char *text) {
  halo_binding_t *B = n->host;
  lua_State *L = hb_L(B);
  for (int i = 0; i < HB_NREASONS; i++)
    if (!strcmp(text, hb_reasons[i])) {
      halo_payload_t c = {(uint64_t)i, PL_REASON};
      return c;
    }
  lua_pushstring(L, text);
  halo_payload_t r = hb_anchor(B, L, -1);
  lua_pop(L, 1);
  return r;
}

static void close_cb(uv_handle_t *h) { (void)h; }

static void hook_stopped(halo_node_t *n) {
  halo_binding_t *B = n->host;
  hb_net_stop(B);
  halo_node_close(n);
  if (B->use_signals) {
    uv_close((uv_handle_t *)&B->sigint, close_cb);
    uv_close((uv_handle_t *)&B->sigterm, close_cb);
  }
  if (B->use_deadline) uv_close((uv_handle_t *)&B->deadline, close_cb);
}

/* -- Node lifecycle ---------------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum) {
  halo_binding_t *B = h->data;
  halo_log_node(&B->node.log, HALO_LOG_INFO, "received signal %d, stopping", signum);
  halo_node_stop(&B->node, 0);
}

static void on_deadline(uv_timer_t *h) {
  halo_binding_t *B = h->data;
  B->timed_out = 1;
  halo_log_node(&B->node.log, HALO_LOG_ERROR, "node deadline passed, stopping");
  halo_node_stop(&B->node, 124);
}

static int opt_int(lua_State *L, int t, const char *k, int def) {
  lua_getfield(L, t, k);
  int v = lua_isnil(L, -1) ? def : (int)luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static const char *opt_str(lua_State *L, int t, const char *k, const char *def) {
  lua_getfield(L, t, k);
  const char *v = lua_isnil(L, -1) ? def : luaL_checkstring(L, -1);
  lua_pop(L, 1);
  return v; /* the options table keeps the string alive */
}

int hb_spawn_entry(lua_State *L, halo_binding_t *B, int fn_idx, int args_idx);

/* core.run(entry, args, options, body) -> exit_code, entry_error, stats
 * Runs a node until it stops. options: name, log_level, signals (bool),
 * timeout (ms), watchdog_ms, watchdog_hard_ms. */
static int node_serial;

static int l_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  if (halo__B) return luaL_error(L, "a halo node is already running in this Lua state");
  const char *name = opt_str(L, 3, "name", "halo@localhost");
  const char *level = opt_str(L, 3, "log_level", "info");
  int lvl;
  if (halo_log_level_parse(level, &lvl)) return luaL_error(L, "unknown log level '%s'", level);
  /* every option that can raise is read before any state exists */
  const char *cookie = opt_str(L, 3, "cookie", NULL), *listen = opt_str(L, 3, "listen", NULL);
  if (listen && hb_net_check_addr(listen)) return luaL_error(L, "listen address must be host:port, got '%s'", listen);
  const char *registrar = opt_str(L, 3, "registrar", NULL), *why;
  int reg_port;
  if (hb_registrar_check(registrar, &reg_port, &why)) return luaL_error(L, "registrar: %s", why);
  int timeout = opt_int(L, 3, "timeout", 0);
  int wd_soft = opt_int(L, 3, "watchdog_ms", 1000), wd_hard = opt_int(L, 3, "watchdog_hard_ms", 30000);

  halo_binding_t *B = calloc(1, sizeof *B);
  if (!B) return luaL_error(L, "out of memory");
  node_serial++;
  int rc = uv_loop_init(&B->loop);
  if (rc) {
    free(B);
    return luaL_error(L, "uv_loop_init: %s", uv_strerror(rc));
  }
  if ((rc = halo_node_init(&B->node, &B->loop, name))) {
    uv_loop_close(&B->loop);
    free(B);
    return luaL_error(L, "incorrect node name '%s': expected name@host", name);
  }
  halo_node_t *n = &B->node;
  n->log.level = lvl;
  n->host = B;
  n->hooks.run = hook_run;
  n->hooks.terminate = hook_terminate;
  n->hooks.free = hook_free;
  n->hooks.release = hook_release;
  n->hooks.dup = hook_dup;
  n->hooks.signal = hook_signal;
  n->hooks.reason = hook_reason;
  n->hooks.log_record = hook_log_record;
  n->hooks.stopped = hook_stopped;
  B->L = B->cur = L;
  hb_keys_init(B, L);
  snprintf(B->pid_prefix, sizeof B->pid_prefix, "<%08X.0.", B->node.crc);
  lua_pushvalue(L, 4);
  B->body_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  B->mt_cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error return, not the end of the node */
  B->old_allocf = lua_getallocf(L, &B->old_allocud);
  halo_alloc_init(&B->alloc, (halo_alloc_fn)B->old_allocf, B->old_allocud);
  lua_setallocf(L, (lua_Alloc)halo_alloc_lua, &B->alloc);
  n->alloc = &B->alloc;
  halo__B = B;

  lua_getfield(L, 3, "signals");
  B->use_signals = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (B->use_signals) {
    uv_signal_init(&B->loop, &B->sigint);
    uv_signal_init(&B->loop, &B->sigterm);
    B->sigint.data = B->sigterm.data = B;
    uv_signal_start(&B->sigint, on_signal, SIGINT);
    uv_signal_start(&B->sigterm, on_signal, SIGTERM);
  }
  if (timeout > 0) {
    B->use_deadline = 1;
    uv_timer_init(&B->loop, &B->deadline);
    B->deadline.data = B;
    uv_timer_start(&B->deadline, on_deadline, (uint64_t)timeout, 0);
    uv_unref((uv_handle_t *)&B->deadline);
  }
  if (wd_soft > 0) halo_watchdog_start(n, (uint64_t)wd_soft, (uint64_t)wd_hard);

  halo_node_start(n);
  {
    /* the transport, when asked for: opts.cookie, opts.listen ("host:port") */
    if (cookie || listen) {
      int top = lua_gettop(L);
      char random_cookie[17];
      if (!cookie || !*cookie) {
        static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        unsigned char r[16];
        if (uv_random(NULL, NULL, r, sizeof r, 0, NULL)) memset(r, 7, sizeof r);
        for (int i = 0; i < 16; i++) random_cookie[i] = abc[r[i] % (sizeof abc - 1)];
        random_cookie[16] = 0;
        cookie = random_cookie;
        halo_log_node(&n->log, HALO_LOG_WARNING,
                      "no cookie given (--cookie or HALO_COOKIE): using a random one, no other node can connect");
      }
      hb_net_start(L, B, cookie, listen, registrar);
      lua_getfield(L, 3, "join"); /* opts.join: "name@host[:port]" or a list of them */
      for (int k = 1, list = lua_istable(L, -1); B->net; k++) {
        if (list) lua_rawgeti(L, -1, k);
        else lua_pushvalue(L, -1);
        const char *spec = lua_tostring(L, -1);
        if (spec && hb_net_join(B, spec))
          halo_log_node(&n->log, HALO_LOG_ERROR, "cannot join '%s': name@host or name@host:port expected", spec);
        lua_pop(L, 1);
        if (!list || !spec) break;
      }
      lua_pop(L, 1);
      if (lua_isnil(L, top + 1)) {
        halo_log_node(&n->log, HALO_LOG_ERROR, "network: %s", lua_tostring(L, top + 2));
        halo_node_stop(n, 1);
      }
      lua_settop(L, top);
    }
  }
  hb_spawn_entry(L, B, 1, 2);
  uv_run(&B->loop, UV_RUN_DEFAULT);
  halo_watchdog_stop(n);
  /* Anything still open (a stop that never came) is closed here. */
  if (!n->stopped) {
    halo_node_stop(n, n->exit_code);
    while (!n->stopped && uv_run(&B->loop, UV_RUN_ONCE)) {}
  }
  uv_run(&B->loop, UV_RUN_DEFAULT);

  lua_pushinteger(L, B->timed_out ? 124 : n->exit_code);
  if (B->entry_error) lua_pushstring(L, B->entry_error);
  else lua_pushnil(L);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, n->nprocs);
  lua_setfield(L, -2, "processes");
  lua_pushinteger(L, n->ntimers);
  lua_setfield(L, -2, "timers");
  lua_pushinteger(L, (lua_Integer)(B->anchored + B->refs));
  lua_setfield(L, -2, "refs");
  lua_pushinteger(L, (lua_Integer)(n->msgs.total - n->msgs.nfree));
  lua_setfield(L, -2, "messages");
  lua_pushboolean(L, B->timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushinteger(L, (lua_Integer)n->counters.spawned);
  lua_setfield(L, -2, "spawned");

  lua_setallocf(L, B->old_allocf, B->old_allocud);
  halo_alloc_release(&B->alloc);
  halo__B = NULL;
  int closed = uv_loop_close(&B->loop);
  while (B->nco_pool) hb_key_free(B, L, B->co_pool[--B->nco_pool]);
  luaL_unref(L, LUA_REGISTRYINDEX, B->body_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, B->mt_cache_ref);
  hb_net_free(B);
  halo_node_destroy(n); /* may release payloads (events): before the keys go */
  hb_keys_close(B, L);
  free(B->entry_error);
  free(B);
  lua_pushinteger(L, closed == 0);
  lua_setfield(L, -2, "loop_closed");
  return 3;
}

/* core.stop([code]): stops the node once the current callback returns. */
static int l_stop(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_node_stop(&B->node, (int)luaL_optinteger(L, 1, 0));
  return 0;
}

/* Monotonic milliseconds for the FFI path of halo.now (the halo binary exports it). */
double halo_now_ms(void) { return (double)halo_clock_ns() * 1e-6; }

/* core.now(): monotonic milliseconds (fractional). */
static int l_now(lua_State *L) {
  halo_clock_init();
  lua_pushnumber(L, halo_now_ms());
  return 1;
}

/* core.log(level, message): logs with the current process as the source. */
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

/* core.log_enabled(level) -> bool: cheap check before formatting. */
static int l_log_enabled(lua_State *L) {
  halo_binding_t *B = halo__B;
  int lvl;
  if (halo_log_level_parse(luaL_checkstring(L, 1), &lvl)) return luaL_argerror(L, 1, "unknown log level");
  int active = B ? (B->node.current ? B->node.current->log_level : B->node.log.level) : HALO_LOG_INFO;
  lua_pushboolean(L, lvl >= active);
  return 1;
}

/* core.node_serial() -> number of the node run in this Lua state (1, 2, ...):
 * Lua modules keep per-node state keyed by it. */
static int l_node_serial(lua_State *L) {
  lua_pushinteger(L, node_serial);
  return 1;
}

/* core.running() -> bool */
static int l_running(lua_State *L) {
  lua_pushboolean(L, halo__B != NULL);
  return 1;
}

int luaopen_halo_core(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"run", l_run},         {"stop", l_stop},       {"now", l_now},
      {"log", l_log},         {"log_enabled", l_log_enabled}, {"running", l_running},
      {"node_serial", l_node_serial},
      {NULL, NULL}};
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  lua_pushlightuserdata(L, &ready_token);
  lua_setfield(L, -2, "READY");
  /* C entry points for LuaJIT's FFI: a compiled trace calls them directly. */
  lua_pushlightuserdata(L, (void *)(uintptr_t)halo_now_ms);
  lua_setfield(L, -2, "FFI_NOW");
  lua_pushlightuserdata(L, (void *)(uintptr_t)halo_send_number);
  lua_setfield(L, -2, "FFI_SEND_NUMBER");
  lua_pushlightuserdata(L, (void *)(uintptr_t)halo_log_enabled);
  lua_setfield(L, -2, "FFI_LOG_ENABLED");
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
  hb_open_process(L);
  hb_open_introspect(L);
  hb_open_platform(L);
  hb_open_codec(L);
  hb_open_net(L);
  hb_open_http(L);
  return 1;
}
