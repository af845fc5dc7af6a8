/*
 * Module halo.core: node lifecycle (core.node.run) and the one gate through which
 * the core runs Lua code (the run and terminate hooks).
 */
#include "binding.h"
#include "clock.h"
#include "crypto.h"
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
  if (wake == HALO_WAKE_ENDED) return 1 + push_call_failure(B, co, res); /* the callee ended first */
  if (wake == HALO_WAKE_TIMEOUT) {
    lua_pushfstring(co, "%s: %s", halo_err_name(HALO_ETIMEDOUT), halo_strerror(HALO_ETIMEDOUT));
    lua_pushstring(co, halo_err_name(HALO_ETIMEDOUT));
  } else { /* a child's init failed: res is its reason */
    hb_push_payload(B, co, res, 1);
    lua_pushstring(co, halo_err_name(HALO_EINIT));
  }
  return 3;
}

/* What the run hook's gated parts share. */
typedef struct run_ctx {
  halo_binding_t *B;
  halo_proc_t *p;
  lua_State *co;
  halo_msg_t *msg;
  int nargs, st;
} run_ctx_t;

/* What a process ends with, or a payload hook delivers, when a gate failed (out of memory). */
static const halo_payload_t nomem_reason = {HB_REASON_NOMEM, PL_REASON};

/* The resume arguments of a message (a process waiting in receive). */
static int push_msg(halo_binding_t *B, lua_State *L, halo_msg_t *msg) {
  /* A bare exit or down reason arrives as kind + MSG_BARE; halo's Lua side
   * makes the {kind, pid, reason} table (a table template there beats
   * building it field by field through the C API). */
  lua_pushinteger(L, msg->kind + ((msg->flags & HALO_MF_REASON) ? HB_MSG_BARE : 0));
  hb_push_pid(B, L, msg->from);
  hb_push_payload(B, L, (halo_payload_t){msg->pval, msg->ptag}, 1);
  msg->ptag = 0; /* consumed */
  lua_pushnumber(L, (double)msg->ref);
  return 4;
}

/* Builds the resume arguments on L and moves them to the coroutine (which
 * has room: nothing is allocated on it outside the gate). */
static int prepare_body(lua_State *L, void *ud) {
  run_ctx_t *c = ud;
  c->nargs = c->msg ? push_msg(c->B, L, c->msg) : push_wake(c->B, L, c->p);
  lua_xmove(L, c->co, c->nargs);
  return 0;
}

/* An exit signal the process does not trap: its reason becomes p's. */
static int exit_reason_body(lua_State *L, void *ud) {
  run_ctx_t *c = ud;
  hb_push_payload(c->B, L, (halo_payload_t){c->msg->pval, c->msg->ptag}, 1);
  c->msg->ptag = 0; /* consumed */
  if (lua_istable(L, -1)) {
    lua_pushliteral(L, "reason");
    lua_rawget(L, -2);
  }
  c->p->result = hb_anchor(c->B, L, -1);
  return 0;
}

/* How a resume ended in the process's end: p->result gets the reason. */
static int finish_body(lua_State *L, void *ud) {
  run_ctx_t *c = ud;
  halo_binding_t *B = c->B;
  halo_proc_t *p = c->p;
  lua_State *co = c->co;
  if (c->st == LUA_YIELD) {
    lua_settop(co, 0);
    lua_pushliteral(L, "coroutine.yield called directly inside a process callback");
    hb_log(B, p, HALO_LOG_ERROR, lua_tostring(L, -1), lua_objlen(L, -1));
    p->result = hb_anchor(B, L, -1);
    return 0;
  }
  lua_pushvalue(co, c->st == 0 ? 1 : -1);
  lua_xmove(co, L, 1);
  if (c->st) { /* an error: log it with the coroutine's traceback, end with the error value */
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
  }
  p->result = hb_anchor(B, L, -1);
  lua_settop(co, 0);
  return 0;
}

/* Ends p with "out of memory" when a gated part of its run failed. */
static int run_failed(halo_proc_t *p, lua_State *co) {
  lua_settop(co, 0);
  p->result = nomem_reason;
  return HALO_RUN_EXITED;
}

static int hook_run(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg) {
  halo_binding_t *B = n->host;
  lua_State *co = p->host;
  run_ctx_t c = {B, p, co, msg, 0, 0};
  if (msg && msg->kind == HALO_MSG_EXIT &&
      (!(p->flags & HALO_PF_TRAP) || (msg->from.id == p->parent.id && msg->from.node == p->parent.node))) {
    /* An exit signal the process does not trap ends it with the signal's reason. */
    if (msg->flags & HALO_MF_REASON) {
      p->result = (halo_payload_t){msg->pval, msg->ptag}; /* the bare reason: ownership moves */
      return HALO_RUN_EXITED;
    }
    if (hb_gate(B, p, "an exit signal", exit_reason_body, &c)) {
      if (msg->ptag) hb_release(B, (halo_payload_t){msg->pval, msg->ptag});
      return run_failed(p, co);
    }
    return HALO_RUN_EXITED;
  }
  if (!lua_checkstack(co, 6)) return run_failed(p, co); /* protected in LuaJIT */
  if (msg) {
    p->wait = HALO_WAIT_NONE;
    if (hb_push_pid_cached(B, co, msg->from)) { /* the usual case: nothing to allocate */
      lua_pushinteger(co, msg->kind + ((msg->flags & HALO_MF_REASON) ? HB_MSG_BARE : 0));
      lua_insert(co, -2);
      hb_push_payload(B, co, (halo_payload_t){msg->pval, msg->ptag}, 1);
      lua_pushnumber(co, (double)msg->ref);
      c.nargs = 4;
    } else if (hb_gate(B, p, "a message", prepare_body, &c)) {
      if (msg->ptag) hb_release(B, (halo_payload_t){msg->pval, msg->ptag});
      return run_failed(p, co);
    }
  } else if (p->wake) {
    if (hb_gate(B, p, "a wake-up", prepare_body, &c)) return run_failed(p, co);
  } else {
    c.nargs = lua_gettop(co) - 1; /* first run: function and arguments are in place */
  }
  lua_State *saved = B->cur;
  B->cur = co;
  c.st = lua_resume(co, c.nargs);
  B->cur = saved;
  if (c.st == LUA_YIELD) {
    if (p->wait != HALO_WAIT_NONE) {
      lua_settop(co, 0);
      return HALO_RUN_SUSPENDED;
    }
    if (lua_gettop(co) >= 1 && lua_touserdata(co, 1) == &ready_token) {
      lua_settop(co, 0);
      return HALO_RUN_IDLE;
    }
  } else if (c.st == 0 && (lua_gettop(co) < 1 || lua_isnil(co, 1))) {
    /* The body returned nothing: a function process ended, or a callback stopped normally. */
    lua_settop(co, 0);
    p->result.tag = PL_REASON;
    p->result.val = HB_REASON_NORMAL;
    return HALO_RUN_EXITED;
  }
  if (hb_gate(B, p, "the end of a process", finish_body, &c)) return run_failed(p, co);
  return HALO_RUN_EXITED;
}

static int traceback_handler(lua_State *L) {
  const char *m = lua_tostring(L, 1);
  luaL_traceback(L, L, m ? m : "(error object is not a string)", 1);
  return 1;
}

/* -- The gate ------------------------------------------------------------------ */

typedef struct gate_call {
  hb_gate_fn fn;
  void *ud;
} gate_call_t;

static int gate_trampoline(lua_State *L) {
  gate_call_t *g = lua_touserdata(L, 1);
  lua_settop(L, 0);
  g->fn(L, g->ud);
  return 0;
}

static void on_doom(uv_timer_t *h) {
  halo_binding_t *B = h->data;
  halo_node_t *n = &B->node;
  while (B->ndoomed) {
    uint64_t id = B->doomed[--B->ndoomed];
    halo_proc_t *p = halo_proc_find(n, id);
    if (p && p->state < HALO_STATE_TERMINATED)
      halo_proc_end(n, p, (halo_payload_t){HB_REASON_NOMEM, PL_REASON});
  }
}

void hb_end_later(halo_binding_t *B, halo_proc_t *p) {
  if (!p || p->state >= HALO_STATE_TERMINATED || B->node.stopped || !B->doom.data) return;
  for (uint32_t i = 0; i < B->ndoomed; i++)
    if (B->doomed[i] == p->id) return;
  if (B->ndoomed == B->capdoomed) {
    uint32_t nc = B->capdoomed ? B->capdoomed * 2 : 8;
    uint64_t *nd = realloc(B->doomed, nc * sizeof *nd);
    if (!nd) return;
    B->doomed = nd;
    B->capdoomed = nc;
  }
  B->doomed[B->ndoomed++] = p->id;
  uv_timer_start(&B->doom, on_doom, 0, 0);
}

int hb_gate(halo_binding_t *B, halo_proc_t *p, const char *what, hb_gate_fn fn, void *ud) {
  lua_State *L = hb_L(B), *saved = B->cur;
  int top = lua_gettop(L), st = LUA_ERRMEM, was = B->alloc.test_fail;
  gate_call_t g = {fn, ud};
  int fail = B->test_fail_hooks > 0 && (!B->test_fail_what[0] || !strcmp(B->test_fail_what, what));
  if (fail) B->test_fail_hooks--;
  if (lua_checkstack(L, 3)) { /* protected in LuaJIT: 0 when out of memory */
    lua_rawgeti(L, LUA_REGISTRYINDEX, B->gate_ref[0]);
    lua_rawgeti(L, LUA_REGISTRYINDEX, B->gate_ref[1]);
    lua_pushlightuserdata(L, &g);
    if (fail) B->alloc.test_fail = 1;
    st = lua_pcall(L, 1, 0, top + 1);
    B->alloc.test_fail = was;
    B->cur = saved;
  }
  if (st == LUA_ERRMEM) {
    halo_log_proc(&B->node, p, HALO_LOG_ERROR, "out of memory in %s%s", what,
                  p && p->state < HALO_STATE_TERMINATED ? ": the process ends" : "");
    hb_end_later(B, p);
  } else if (st) {
    size_t len;
    const char *m = lua_tolstring(L, -1, &len);
    if (!m) m = "(error object is not a string)", len = strlen(m);
    hb_log(B, p, HALO_LOG_ERROR, m, len);
  }
  lua_settop(L, top);
  return st;
}

/* -- Hooks that build or copy values ------------------------------------------------ */

/* What a hook body gets and gives back. */
typedef struct hook_ctx {
  halo_binding_t *B;
  halo_proc_t *p;
  const halo_payload_t *in;
  const void *arg;
  halo_payload_t out;
  int normal;
} hook_ctx_t;


static int terminate_body(lua_State *L, void *ud) {
  hook_ctx_t *c = ud;
  halo_binding_t *B = c->B;
  halo_proc_t *p = c->p;
  hb_push_payload(B, L, *c->in, 0);
  int ridx = lua_gettop(L);
  c->normal = is_normal_reason(L, ridx);
  if ((p->flags & HALO_PF_ENTRY) && !c->normal && !B->entry_error) {
    const char *s = lua_type(L, ridx) == LUA_TSTRING ? lua_tostring(L, ridx) : luaL_typename(L, ridx);
    B->entry_error = strdup(s);
  }
  if ((p->flags & HALO_PF_FUNC) || !p->href[HREF_INST]) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->href[HREF_INST]);
  lua_getfield(L, -1, "terminate");
  if (!lua_isfunction(L, -1)) return 0;
  lua_insert(L, -2); /* terminate, inst */
  lua_pushvalue(L, ridx);
  lua_call(L, 2, 0);
  return 0;
}

static void hook_terminate(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason) {
  halo_binding_t *B = n->host;
  if (!(p->flags & HALO_PF_ENTRY) && ((p->flags & HALO_PF_FUNC) || !p->href[HREF_INST])) return; /* no Lua to run */
  hook_ctx_t c = {B, p, reason, NULL, {0, 0}, -1};
  uint64_t *prev = n->alloc ? halo_alloc_attribute(n->alloc, &p->alloc_bytes) : NULL;
  hb_gate(B, p, "terminate", terminate_body, &c);
  if (n->alloc) halo_alloc_attribute(n->alloc, prev);
  if ((p->flags & HALO_PF_ENTRY) && c.normal != 1) {
    if (!B->entry_error) B->entry_error = strdup("out of memory");
    halo_node_stop(n, 1);
  }
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

static int dup_body(lua_State *L, void *ud) {
  hook_ctx_t *c = ud;
  hb_push_payload(c->B, L, *c->in, 0);
  c->out = hb_anchor(c->B, L, -1);
  return 0;
}

static halo_payload_t hook_dup(halo_node_t *n, const halo_payload_t *pl) {
  if (pl->tag != PL_ANCHOR) return *pl; /* values, not references */
  halo_binding_t *B = n->host;
  lua_State *L = hb_L(B);
  if (B->nfree && !B->test_fail_hooks && lua_checkstack(L, 2)) { /* a free key: nothing to allocate */
    hb_push_payload(B, L, *pl, 0);
    halo_payload_t r = hb_anchor(B, L, -1);
    lua_pop(L, 1);
    return r;
  }
  hook_ctx_t c = {B, NULL, pl, NULL, {0, 0}, 0};
  return hb_gate(n->host, n->current, "copying a value", dup_body, &c) ? nomem_reason : c.out;
}

static int signal_body(lua_State *L, void *ud) {
  hook_ctx_t *c = ud;
  halo_binding_t *B = c->B;
  const halo_signal_info_t *info = c->arg;
  if (info->notice) { /* to an event's producer: first subscriber came, last one left */
    lua_createtable(L, 0, 2);
    lua_pushstring(L, info->notice == HALO_NOTICE_EVENT_START ? "event_start" : "event_stop");
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, info->name);
    lua_setfield(L, -2, "event");
    c->out = hb_anchor(B, L, -1);
    return 0;
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
    halo_ref_format(buf, sizeof buf, "Alias", B->node.crc, info->alias);
    lua_pushstring(L, buf);
    lua_setfield(L, -2, "alias");
  }
  hb_push_payload(B, L, *c->in, 0);
  lua_setfield(L, -2, "reason");
  c->out = hb_anchor(B, L, -1);
  return 0;
}

/* The watcher whose exit or down message cannot be built ends ("out of memory"). */
static halo_payload_t hook_signal(halo_node_t *n, const halo_signal_info_t *info,
                                  const halo_payload_t *reason) {
  hook_ctx_t c = {n->host, NULL, reason, info, {0, 0}, 0};
  halo_proc_t *to = info->to ? halo_proc_find(n, info->to) : NULL;
  return hb_gate(n->host, to, "an exit or down message", signal_body, &c) ? nomem_reason : c.out;
}

/* A log record as a process logger receives it. */
static int log_record_body(lua_State *L, void *ud) {
  hook_ctx_t *c = ud;
  halo_binding_t *B = c->B;
  halo_node_t *n = &B->node;
  const halo_log_record_t *rec = c->arg;
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
  c->out = hb_anchor(B, L, -1);
  return 0;
}

/* A record that cannot be built is not delivered (tag 0), nor is the
 * gate's report of that failure (it would fail the same way). */
static halo_payload_t hook_log_record(halo_node_t *n, const halo_log_record_t *rec) {
  halo_binding_t *B = n->host;
  hook_ctx_t c = {B, NULL, NULL, rec, {0, 0}, 0};
  if (B->in_log_record) return c.out;
  B->in_log_record = 1;
  if (hb_gate(B, NULL, "a log record", log_record_body, &c)) c.out.tag = 0;
  B->in_log_record = 0;
  return c.out;
}

static int reason_body(lua_State *L, void *ud) {
  hook_ctx_t *c = ud;
  lua_pushstring(L, c->arg);
  c->out = hb_anchor(c->B, L, -1);
  return 0;
}

static halo_payload_t hook_reason(halo_node_t *n, const char *text) {
  for (int i = 0; i < HB_NREASONS; i++)
    if (!strcmp(text, hb_reasons[i])) {
      halo_payload_t c = {(uint64_t)i, PL_REASON};
      return c;
    }
  hook_ctx_t c = {n->host, NULL, NULL, text, {0, 0}, 0};
  return hb_gate(n->host, n->current, "a reason", reason_body, &c) ? nomem_reason : c.out;
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
  uv_close((uv_handle_t *)&B->doom, close_cb);
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

/* core.node.run(entry, args, options, body) -> exit_code, entry_error, stats
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
  halo_remote_init(&B->remote);
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
  lua_pushcfunction(L, traceback_handler);
  B->gate_ref[0] = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, gate_trampoline);
  B->gate_ref[1] = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_init(&B->loop, &B->doom);
  B->doom.data = B;

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
        if (halo_random(r, sizeof r)) {
          cookie = NULL; /* never a guessable one: the transport does not start */
          lua_pushnil(L);
          lua_pushliteral(L, "no cookie given and no randomness to make one");
        } else {
          for (int i = 0; i < 16; i++) random_cookie[i] = abc[r[i] % (sizeof abc - 1)];
          random_cookie[16] = 0;
          cookie = random_cookie;
          halo_log_node(&n->log, HALO_LOG_WARNING,
                        "no cookie given (--cookie or HALO_COOKIE): using a random one, no other node can connect");
        }
      }
      if (cookie) hb_net_start(L, B, cookie, listen, registrar);
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
  luaL_unref(L, LUA_REGISTRYINDEX, B->gate_ref[0]);
  luaL_unref(L, LUA_REGISTRYINDEX, B->gate_ref[1]);
  free(B->doomed);
  hb_net_free(B, L);
  halo_remote_destroy(&B->remote);
  halo_node_destroy(n); /* may release payloads (events): before the keys go */
  hb_keys_close(B, L);
  free(B->entry_error);
  free(B);
  lua_pushinteger(L, closed == 0);
  lua_setfield(L, -2, "loop_closed");
  return 3;
}

/* core.node.stop([code]): stops the node once the current callback returns. */
static int l_stop(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_node_stop(&B->node, (int)luaL_optinteger(L, 1, 0));
  return 0;
}

/* Monotonic milliseconds for the FFI path of halo.now (the halo binary exports it). */
double halo_now_ms(void) { return (double)halo_clock_ns() * 1e-6; }

/* core.node.now(): monotonic milliseconds (fractional). */
static int l_now(lua_State *L) {
  halo_clock_init();
  lua_pushnumber(L, halo_now_ms());
  return 1;
}

/* core.node.serial() -> number of the node run in this Lua state (1, 2, ...):
 * Lua modules keep per-node state keyed by it. */
static int l_node_serial(lua_State *L) {
  lua_pushinteger(L, node_serial);
  return 1;
}

/* core.gate.test_fail_hook_allocs(n[, what]): test knob, the next n calls through
 * the gate (only those for what, e.g. "a wake-up", when given) run with
 * every Lua allocation failing (out-of-memory specs). */
static int l_test_fail_hook_allocs(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  B->test_fail_hooks = (int)luaL_checkinteger(L, 1);
  snprintf(B->test_fail_what, sizeof B->test_fail_what, "%s", luaL_optstring(L, 2, ""));
  return 0;
}

/* core.node.running() -> bool */
static int l_running(lua_State *L) {
  lua_pushboolean(L, halo__B != NULL);
  return 1;
}

/* core.node.time_ns() -> wall-clock unix ns (a double: ~256 ns resolution today) */
static int l_time_ns(lua_State *L) {
  lua_pushnumber(L, (double)halo_clock_wall_ns());
  return 1;
}

/* core.node.error(code[, detail]) -> nil, "ECODE: text[: detail]", "ECODE": the
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

/* Makes a sub-table core.<name> filled by open. */
static void open_sub(lua_State *L, const char *name, void (*open)(lua_State *)) {
  lua_newtable(L);
  open(L);
  lua_setfield(L, -2, name);
}

/* core.gate: test knobs of the gate. */
static void open_gate(lua_State *L) {
  static const luaL_Reg fns[] = {{"test_fail_hook_allocs", l_test_fail_hook_allocs}, {NULL, NULL}};
  luaL_register(L, NULL, fns);
}

/* core.node: node lifecycle, clock, error triples. */
static void open_node(lua_State *L) {
  static const luaL_Reg fns[] = {{"run", l_run},         {"stop", l_stop},       {"now", l_now},
                                 {"running", l_running}, {"serial", l_node_serial},
                                 {"time_ns", l_time_ns}, {"error", l_error},     {NULL, NULL}};
  luaL_register(L, NULL, fns);
  lua_pushlightuserdata(L, &ready_token);
  lua_setfield(L, -2, "READY");
  /* C entry point for LuaJIT's FFI: a compiled trace calls it directly. */
  lua_pushlightuserdata(L, (void *)(uintptr_t)halo_now_ms);
  lua_setfield(L, -2, "FFI_NOW");
}

int luaopen_halo_core(lua_State *L) {
  lua_newtable(L);
  open_sub(L, "node", open_node);
  open_sub(L, "gate", open_gate);
  open_sub(L, "process", hb_open_process);
  open_sub(L, "introspect", hb_open_introspect);
  open_sub(L, "pool", hb_open_pool);
  open_sub(L, "event", hb_open_event);
  open_sub(L, "log", hb_open_log);
  open_sub(L, "codec", hb_open_codec);
  open_sub(L, "net", hb_open_net);
  open_sub(L, "remote", hb_open_remote);
  open_sub(L, "http", hb_open_http);
  return 1;
}
