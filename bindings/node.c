/*
 * core.node: node lifecycle (core.node.run runs a node on its own loop until
 * it stops, core.node.stop), the clock, error triples, and module halo.core
 * itself (luaopen_halo_core gathers every file's sub-table).
 */
#include "binding.h"
#include "clock.h"
#include "crypto.h"
#include "watchdog.h"

#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

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

static void close_cb(uv_handle_t *h) { (void)h; }

static void hook_stopped(halo_node_t *n) {
  halo_binding_t *B = n->host;
  for (hb_watch_t *w = B->watches, *next; w; w = next) { /* the latest first, as they were put on */
    next = w->next;
    B->watches = next;
    w->next = NULL;
    if (w->stopped) w->stopped(n);
  }
  hb_net_stop(B);
  halo_node_close(n);
  if (B->use_signals) {
    uv_close((uv_handle_t *)&B->sigint, close_cb);
    uv_close((uv_handle_t *)&B->sigterm, close_cb);
  }
  if (B->use_deadline) uv_close((uv_handle_t *)&B->deadline, close_cb);
  hb_gate_stop(B);
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
  uv_loop_configure(&B->loop, UV_METRICS_IDLE_TIME); /* the loop's busy time: gc_cpu_percent's base */
  if ((rc = halo_node_init(&B->node, &B->loop, name))) {
    uv_loop_close(&B->loop);
    free(B);
    return luaL_error(L, "incorrect node name '%s': expected name@host", name);
  }
  halo_remote_init(&B->remote);
  halo_node_t *n = &B->node;
  n->log.level = lvl;
  n->host = B;
  n->hooks.stopped = hook_stopped;
  B->L = B->cur = L;
  hb_keys_init(B, L);
  hb_gate_start(B, L);
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
  hb_heap_start(B, L, 3);
  hb_gc_start(B, L, 3);

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

  hb_gc_stop(B, L);
  lua_setallocf(L, B->old_allocf, B->old_allocud);
  halo_alloc_release(&B->alloc);
  hb_heap_free(B, L);
  halo__B = NULL;
  int closed = uv_loop_close(&B->loop);
  while (B->nco_pool) hb_key_free(B, L, B->co_pool[--B->nco_pool]);
  luaL_unref(L, LUA_REGISTRYINDEX, B->body_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, B->mt_cache_ref);
  hb_gate_free(B, L);
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

/* core.node.random_hex(n) -> 2n lower-case hex digits of n random bytes
 * (1..64) from the OS (session ids, sampler ids, the demo's cookie), or
 * nil, "EIO: ..." when the OS gives none. */
static int l_random_hex(lua_State *L) {
  int n = (int)luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 64, 1, "1..64 bytes");
  unsigned char r[64];
  char hex[129];
  if (halo_random(r, (size_t)n)) return hb_errorf(L, UV_EIO, "no randomness from the OS");
  for (int i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", r[i]);
  lua_pushlstring(L, hex, (size_t)n * 2);
  return 1;
}

/* core.node.serial() -> number of the node run in this Lua state (1, 2, ...):
 * Lua modules keep per-node state keyed by it. */
static int l_node_serial(lua_State *L) {
  lua_pushinteger(L, node_serial);
  return 1;
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

/* core.node: node lifecycle, clock, error triples. */
void hb_open_node(lua_State *L) {
  static const luaL_Reg fns[] = {{"run", l_run},         {"stop", l_stop},       {"now", l_now},
                                 {"running", l_running}, {"serial", l_node_serial},
                                 {"time_ns", l_time_ns}, {"error", l_error},     {"random_hex", l_random_hex},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
  lua_pushlightuserdata(L, &hb_ready_token);
  lua_setfield(L, -2, "READY");
  /* C entry point for LuaJIT's FFI: a compiled trace calls it directly. */
  lua_pushlightuserdata(L, (void *)(uintptr_t)halo_now_ms);
  lua_setfield(L, -2, "FFI_NOW");
}

int luaopen_halo_core(lua_State *L) {
  lua_newtable(L);
  open_sub(L, "node", hb_open_node);
  open_sub(L, "gate", hb_open_gate);
  open_sub(L, "process", hb_open_process);
  open_sub(L, "introspect", hb_open_introspect);
  open_sub(L, "pool", hb_open_pool);
  open_sub(L, "event", hb_open_event);
  open_sub(L, "log", hb_open_log);
  open_sub(L, "codec", hb_open_codec);
  open_sub(L, "net", hb_open_net);
  open_sub(L, "remote", hb_open_remote);
  open_sub(L, "http", hb_open_http);
  open_sub(L, "httpd", hb_open_httpd);
  open_sub(L, "metrics", hb_open_metrics);
  open_sub(L, "child", hb_open_child);
  open_sub(L, "fs", hb_open_fs);
  open_sub(L, "stacks", hb_open_stacks);
  open_sub(L, "heap", hb_open_heap);
  open_sub(L, "pprof", hb_open_pprof);
  open_sub(L, "json", hb_open_json);
  return 1;
}
