/*
 * core.gate: the one gate through which the core runs Lua code (hb_gate:
 * pcall with a traceback, out-of-memory ends the process, never the node)
 * and the node hooks that go through it: resuming a process coroutine
 * (hook_run), terminate callbacks, and building or copying Lua values for
 * the core (payload dup/release, signals, log records, reasons).
 */
#include "binding.h"
#include "process.h"
#include "rel.h"
#include "scheduler.h"
#include "prof.h"

#include <stdlib.h>
#include <string.h>

char hb_ready_token;

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

static int run_slice(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg) {
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
  int mark = halo_prof_enter(HALO_PROF_LUA);
  c.st = lua_resume(co, c.nargs);
  halo_prof_leave(mark);
  B->cur = saved;
  if (c.st == LUA_YIELD) {
    if (p->wait != HALO_WAIT_NONE) {
      lua_settop(co, 0);
      return HALO_RUN_SUSPENDED;
    }
    if (lua_gettop(co) >= 1 && lua_touserdata(co, 1) == &hb_ready_token) {
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

/* A slice, then the collector's step when one is due (bindings/gc.c), on
 * the node's account: no current process (a finalizer's halo.self() is
 * nil, its allocations unowned), its time taken off the slice's; never
 * inside another process's slice (a child's init run in its spawner's). */
static int hook_run(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg) {
  halo_binding_t *B = n->host;
  int rc = run_slice(n, p, msg);
  if (B->cur == B->L) hb_gc_slice(B, p);
  return rc;
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
    int mark = halo_prof_enter(HALO_PROF_LUA);
    st = lua_pcall(L, 1, 0, top + 1);
    halo_prof_leave(mark);
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

void hb_watch(halo_binding_t *B, hb_watch_t *w) {
  for (hb_watch_t *x = B->watches; x; x = x->next)
    if (x == w) return;
  w->next = B->watches;
  B->watches = w;
}

static void hook_ended(halo_node_t *n, halo_proc_t *p) {
  halo_binding_t *B = n->host;
  for (hb_watch_t *w = B->watches; w; w = w->next)
    if (w->ended) w->ended(n, p);
}

static void hook_free(halo_node_t *n, halo_proc_t *p) {
  halo_binding_t *B = n->host;
  for (hb_watch_t *w = B->watches; w; w = w->next)
    if (w->free) w->free(n, p);
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

void hb_gate_start(halo_binding_t *B, lua_State *L) {
  halo_node_t *n = &B->node;
  n->hooks.run = hook_run;
  n->hooks.terminate = hook_terminate;
  n->hooks.ended = hook_ended;
  n->hooks.free = hook_free;
  n->hooks.release = hook_release;
  n->hooks.dup = hook_dup;
  n->hooks.signal = hook_signal;
  n->hooks.reason = hook_reason;
  n->hooks.log_record = hook_log_record;
  lua_pushcfunction(L, traceback_handler);
  B->gate_ref[0] = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, gate_trampoline);
  B->gate_ref[1] = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_init(&B->loop, &B->doom);
  B->doom.data = B;
}

void hb_gate_stop(halo_binding_t *B) { uv_close((uv_handle_t *)&B->doom, close_cb); }

void hb_gate_free(halo_binding_t *B, lua_State *L) {
  luaL_unref(L, LUA_REGISTRYINDEX, B->gate_ref[0]);
  luaL_unref(L, LUA_REGISTRYINDEX, B->gate_ref[1]);
  free(B->doomed);
  B->doomed = NULL;
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

void hb_open_gate(lua_State *L) {
  static const luaL_Reg fns[] = {{"test_fail_hook_allocs", l_test_fail_hook_allocs}, {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
