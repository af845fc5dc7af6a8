/* core.child: child OS processes (core/child.c) owned by halo processes.
 *
 *   core.child.spawn(opts) -> os_pid, ref | nil, err, code
 *       opts: file (the program; PATH is searched when it has no slash),
 *       args (list of strings after the program's name), cwd, output (a
 *       file for the child's stdout and stderr, appended to; default the
 *       node's own), env (a table of strings NAME = VALUE added to the
 *       node's OS environment (environ) for the child, replacing those of that name;
 *       no '=' in a name, no NUL in either; its PATH, if any, is searched)
 *   core.child.kill(ref, signal) -> true | nil, err, code
 *       signal: a number or "TERM", "KILL", "INT", "HUP", "USR1", "USR2", "STOP", "CONT"
 *   core.child.list() -> { {ref, os_pid, owner}... }   this node's children
 *
 * When a child exits, its owner (the process that spawned it) receives
 * {kind = "child_exit", ref, os_pid, status, signal} from the node (status
 * the exit status, signal the signal that ended it or 0) on its system
 * queue, as a down message, so a full main queue does not lose it.
 *
 * A child belongs to its owner: when the owner ends (a zombee too: its
 * record may outlive it as long as the node does), and for every child
 * still running when the node stops, the child's process group gets
 * SIGTERM and, GRACE_MS later, SIGKILL; the node's loop runs until each has exited and been
 * reaped, so a stopped node leaves no OS process behind. This file learns
 * of a process's end and the node's stop through its hb_watch, put on at
 * first use.
 */
#include "binding.h"
#include "child.h"
#include "process.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define GRACE_MS 5000
#define MAX_ARGS 256
#define MAX_ENV 256

typedef struct kid {
  struct kid *next;
  halo_child_t *c;
  uint64_t owner, ref;
  int os_pid;
} kid_t;

typedef struct state {
  halo_binding_t *B;
  kid_t *kids;
} state_t;

static state_t *S; /* the running node's */

static void hook_stopped(halo_node_t *n);
static void hook_ended(halo_node_t *n, halo_proc_t *p);
static hb_watch_t watch = {NULL, NULL, hook_stopped, hook_ended};

static state_t *state_get(halo_binding_t *B) {
  if (S && S->B == B) return S;
  if (S) return NULL;
  S = calloc(1, sizeof *S);
  if (!S) return NULL;
  S->B = B;
  hb_watch(B, &watch);
  return S;
}

static void kid_unlink(kid_t *k) {
  for (kid_t **pp = &S->kids; *pp; pp = &(*pp)->next)
    if (*pp == k) {
      *pp = k->next;
      return;
    }
}

/* The owner's end, a zombee's included: a zombee's record (and its wait)
 * may last as long as the node, its children must not. */
static void hook_ended(halo_node_t *n, halo_proc_t *p) {
  (void)n;
  for (kid_t **pp = &S->kids; *pp;) {
    kid_t *k = *pp;
    if (k->owner == p->id) {
      *pp = k->next;
      halo_child_release(k->c, SIGTERM, GRACE_MS);
      free(k);
    } else {
      pp = &k->next;
    }
  }
}

static void hook_stopped(halo_node_t *n) {
  (void)n;
  state_t *s = S;
  while (s->kids) {
    kid_t *k = s->kids;
    s->kids = k->next;
    halo_child_release(k->c, SIGTERM, GRACE_MS);
    free(k);
  }
  free(s);
  S = NULL;
}

/* -- delivery ------------------------------------------------------------------ */

typedef struct build {
  halo_binding_t *B;
  kid_t *k;
  int64_t status;
  int signal;
  halo_payload_t pl;
} build_t;

static int build_exit(lua_State *L, void *ud) {
  build_t *b = ud;
  lua_createtable(L, 0, 5);
  lua_pushliteral(L, "child_exit");
  lua_setfield(L, -2, "kind");
  SET_INT("ref", b->k->ref);
  SET_INT("os_pid", b->k->os_pid);
  SET_INT("status", b->status);
  SET_INT("signal", b->signal);
  b->pl = hb_anchor(b->B, L, -1);
  return 0;
}

static void on_exit_cb(halo_child_t *c, void *ud, int64_t status, int signal) {
  kid_t *k = ud;
  (void)c;
  kid_unlink(k);
  halo_binding_t *B = S->B;
  halo_node_t *n = &B->node;
  build_t b = {B, k, status, signal, {0, 0}};
  if (!hb_gate(B, halo_proc_find(n, k->owner), "a child's exit", build_exit, &b) &&
      halo_send(n, NULL, halo_node_pid(n, k->owner), HALO_MSG_REGULAR, HALO_Q_SYSTEM, 0, b.pl, 64))
    hb_release(B, b.pl);
  free(k);
}

/* -- the functions ----------------------------------------------------------------- */

static const char *opt_string(lua_State *L, const char *k) {
  lua_getfield(L, 1, k);
  const char *v = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "child: %s must be a string", k);
    v = lua_tostring(L, -1);
  }
  lua_pop(L, 1); /* opts keeps the string alive */
  return v;
}

static int l_child_spawn(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *file = opt_string(L, "file"), *cwd = opt_string(L, "cwd"), *output = opt_string(L, "output");
  if (!file || !*file) return luaL_error(L, "child: file is required");
  char *args[MAX_ARGS + 2];
  args[0] = (char *)file;
  int nargs = 1;
  lua_getfield(L, 1, "args");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) return luaL_error(L, "child: args must be a list of strings");
    int len = (int)lua_objlen(L, -1);
    if (len > MAX_ARGS) return luaL_error(L, "child: at most %d args", MAX_ARGS);
    for (int i = 1; i <= len; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "child: args must be a list of strings");
      args[nargs++] = (char *)lua_tostring(L, -1);
      lua_pop(L, 1); /* the args table keeps it alive */
    }
  }
  args[nargs] = NULL;
  /* env: "NAME=VALUE" strings, anchored in a table on the stack until the spawn */
  char *env[MAX_ENV + 1];
  int nenv = 0;
  lua_getfield(L, 1, "env");
  int has_env = !lua_isnil(L, -1);
  if (has_env) {
    if (!lua_istable(L, -1)) return luaL_error(L, "child: env must be a table of strings NAME = VALUE");
    int t = lua_gettop(L);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "child: env must be a table of strings NAME = VALUE");
      size_t klen, vlen;
      const char *k = lua_tolstring(L, -2, &klen), *v = lua_tolstring(L, -1, &vlen);
      if (!*k || strchr(k, '=')) return luaL_error(L, "child: env name '%s' is empty or holds '='", k);
      /* "NAME=VALUE" is a C string: a NUL would cut it short, into another name or value */
      if (strlen(k) != klen) return luaL_error(L, "child: env name '%s' holds a NUL", k);
      if (strlen(v) != vlen) return luaL_error(L, "child: env value of '%s' holds a NUL", k);
      if (nenv == MAX_ENV) return luaL_error(L, "child: at most %d env entries", MAX_ENV);
      lua_pushfstring(L, "%s=%s", k, v);
      env[nenv++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, t + 1, nenv); /* the anchor table keeps it alive */
      lua_pop(L, 1);
    }
  }
  env[nenv] = NULL;
  halo_proc_t *self = hb_self(L, B, "core.child.spawn", 0);
  if (self->state >= HALO_STATE_TERMINATED) return hb_error(L, HALO_ETERMINATED);
  state_t *s = state_get(B);
  if (!s) return hb_errorf(L, HALO_ENODESTOP, "%s", halo_strerror(HALO_ENODESTOP));
  kid_t *k = calloc(1, sizeof *k);
  if (!k) return hb_error(L, HALO_ENOMEM);
  halo_child_opts_t o = {file, args, cwd, output, has_env ? env : NULL};
  int rc = halo_child_spawn(&B->loop, &o, on_exit_cb, k, &k->c);
  if (rc) {
    free(k);
    if (output) return hb_errorf(L, rc, "cannot run %s (output %s): %s", file, output, halo_strerror(rc));
    return hb_errorf(L, rc, "cannot run %s: %s", file, halo_strerror(rc));
  }
  k->owner = self->id;
  k->ref = ++B->node.next_ref;
  k->os_pid = halo_child_pid(k->c);
  k->next = s->kids;
  s->kids = k;
  lua_pushinteger(L, k->os_pid);
  lua_pushnumber(L, (double)k->ref);
  return 2;
}

static int check_signal(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) return (int)lua_tointeger(L, idx);
  static const char *const names[] = {"TERM", "KILL", "INT", "HUP", "USR1", "USR2", "STOP", "CONT", NULL};
  static const int sigs[] = {SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT};
  return sigs[luaL_checkoption(L, idx, NULL, names)];
}

static int l_child_kill(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  uint64_t ref = (uint64_t)luaL_checknumber(L, 1);
  int sig = check_signal(L, 2);
  if (S && S->B == B)
    for (kid_t *k = S->kids; k; k = k->next)
      if (k->ref == ref) return hb_ok_or_error(L, halo_child_kill(k->c, sig));
  return hb_error(L, HALO_ETARGETUNKNOWN);
}

static int l_child_list(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  lua_newtable(L);
  int i = 0;
  if (S && S->B == B)
    for (kid_t *k = S->kids; k; k = k->next) {
      lua_createtable(L, 0, 3);
      SET_INT("ref", k->ref);
      SET_INT("os_pid", k->os_pid);
      hb_push_pid(B, L, halo_node_pid(&B->node, k->owner));
      lua_setfield(L, -2, "owner");
      lua_rawseti(L, -2, ++i);
    }
  return 1;
}

void hb_open_child(lua_State *L) {
  static const luaL_Reg fns[] = {{"spawn", l_child_spawn}, {"kill", l_child_kill}, {"list", l_child_list},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
