/*
 * The halo executable: `halo run FILE.lua [args]`, `halo run -e CODE`, and
 * the commands built on run: slowweb, demo, call.
 * It makes a LuaJIT state, puts halo.core in package.preload, sets the
 * module search path and runs the entry as the node's first process.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "watchdog.h"

int luaopen_halo_core(lua_State *L);

/* The watchdog found the loop stuck past --watchdog-hard-ms: nothing on the
 * loop thread can run any more, so the executable ends here. */
static void on_stuck(halo_node_t *n) {
  (void)n;
  _exit(70);
}

static const char *usage =
    "usage: halo <command> [options]\n"
    "\n"
    "commands:\n"
    "  run [options] FILE.lua [args...]   start a node running FILE.lua as its first process\n"
    "  run [options] -e CODE [args...]    the same with CODE as the entry\n"
    "  slowweb [options] [[HOST:]PORT]    serve the demo's slow HTTP service (GET /slow,\n"
    "                                     3..14 ms; default 127.0.0.1:8080); run's options\n"
    "  demo [options]                     a cluster of scenario nodes and slowweb on loopback\n"
    "                                     (`halo demo --help`)\n"
    "  call [options] NODE OP [ARGS...]   ask a running node for an operation over the cluster\n"
    "                                     protocol (`halo call --help`)\n"
    "  observer [options]                 a node that serves the Observer, the cluster's web UI\n"
    "                                     (`halo observer --help`)\n"
    "  help                               this text\n"
    "\n"
    "`halo run --help` lists the options of run.\n";

static const char *run_usage =
    "usage: halo run [options] (FILE.lua | -e CODE) [args...]\n"
    "\n"
    "Starts a node and runs the entry as its first process (a function process:\n"
    "it may spawn, send, call, sleep and receive). The node stops when the entry\n"
    "calls halo.shutdown([code]), when every process has ended, on SIGINT or\n"
    "SIGTERM (processes are terminated children first, exit status 0), or when\n"
    "the entry fails with an error (exit status 1).\n"
    "\n"
    "options:\n"
    "  --name NAME           node name, name@host (default halo@localhost)\n"
    "  --log-level LEVEL     trace, debug, info, warning, error, panic, disabled (default info)\n"
    "  --lua-path DIR        add DIR to the module search path (repeatable; DIR/?.lua and\n"
    "                        DIR/?/init.lua); the checkout's lua/, scenarios/ and mcp_tools/\n"
    "                        are searched by default\n"
    "  --watchdog-ms MS      log a callback running longer than MS (default 1000, 0 = off)\n"
    "  --watchdog-hard-ms MS exit with status 70 when the loop is stuck for MS (default 30000)\n"
    "  --cookie SECRET       the cluster's shared secret (or HALO_COOKIE); starts the network\n"
    "  --listen HOST:PORT    accept other nodes here (default 127.0.0.1:11144, or the next\n"
    "                        free port); starts the network\n"
    "  --registrar KIND      how nodes find each other: embedded (default; the first node of\n"
    "                        the host serves on 127.0.0.1:4499), embedded:PORT, none, or\n"
    "                        etcd://HOST:PORT (etcd's v3 JSON API)\n"
    "  --cluster NAME        the cluster the etcd registrar registers in (default \"default\")\n"
    "  --join NAME@HOST[:P]  also join this node of another host, found through that host's\n"
    "                        embedded registrar (UDP port P, default this node's registrar\n"
    "                        port, 4499); repeatable\n"
    "  --metrics [HOST:]PORT start the radar application: Prometheus metrics on\n"
    "                        http://HOST:PORT/metrics and /health/{live,ready,startup}\n"
    "                        (default host 127.0.0.1, port 9090; port 0 picks a free one)\n"
    "  --admin               let nodes holding the cookie start, stop and reload this\n"
    "                        node's applications (`halo call`; halo.admin)\n"
    "  --mcp [HOST:]PORT     serve MCP (Streamable HTTP) on http://HOST:PORT/mcp (default host\n"
    "                        127.0.0.1); without it a node with the network on runs the mcp\n"
    "                        application in agent mode (answers other nodes' proxied calls)\n"
    "  --mcp-token TOKEN     require Authorization: Bearer TOKEN (or HALO_MCP_TOKEN)\n"
    "  --mcp-origin ORIGIN   also accept this Origin (repeatable; loopback origins and requests\n"
    "                        without Origin are accepted, others get 403)\n"
    "  --mcp-read-only       leave out the 6 action tools (send_message, process_kill, ...)\n"
    "  --mcp-allow T1,T2     only these tools (also binds calls proxied from this node)\n"
    "  --mcp-tools DIR       the tool files (default: the checkout's mcp_tools/)\n"
    "  --mcp-expose-env      node_env shows the OS environment (secret-looking values redacted)\n"
    "  --no-mcp              no mcp application, not even in agent mode\n"
    "  --observer [HOST:]PORT serve the Observer on http://HOST:PORT/ (default host 127.0.0.1,\n"
    "                        port 9911; prints `observer: URL` when it listens)\n"
    "  --observer-token T    enable the Observer's actions, given this token (or\n"
    "                        HALO_OBSERVER_TOKEN)\n"
    "  -e CODE               run CODE instead of a file\n"
    "  -h, --help            this text\n"
    "\n"
    "The entry receives its arguments as `...` and in the global table `arg`.\n";

static int fail(const char *msg, const char *extra) {
  fprintf(stderr, "halo: %s%s\n", msg, extra ? extra : "");
  return 2;
}

static void add_path(lua_State *L, const char *dir) {
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
}

/* The checkout this binary was built from, when it is still there. */
static const char *source_dir(void) {
#ifdef HALO_SOURCE_DIR
  static char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/lua/halo/init.lua", HALO_SOURCE_DIR);
  if (access(path, R_OK) == 0) return HALO_SOURCE_DIR;
#endif
  return NULL;
}

static int cmd_run(int argc, char **argv) {
  const char *name = "halo@localhost", *level = "info", *code = NULL, *file = NULL;
  const char *cookie = getenv("HALO_COOKIE"), *listen = NULL, *registrar = NULL, *cluster = NULL;
  const char *metrics = NULL, *mcp = NULL, *mcp_token = getenv("HALO_MCP_TOKEN"), *mcp_allow = NULL;
  const char *mcp_tools = NULL, *origins[64], *observer = NULL, *observer_token = getenv("HALO_OBSERVER_TOKEN");
  int norigins = 0, mcp_read_only = 0, mcp_off = 0, mcp_env = 0;
  const char *paths[64], *joins[64];
  int njoins = 0, npaths = 0, wd = 1000, wd_hard = 30000, admin = 0, i;
  for (i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(run_usage, stdout);
      return 0;
    } else if (!strcmp(a, "--name") && i + 1 < argc) {
      name = argv[++i];
    } else if (!strcmp(a, "--log-level") && i + 1 < argc) {
      level = argv[++i];
    } else if (!strcmp(a, "--lua-path") && i + 1 < argc) {
      if (npaths < 64) paths[npaths++] = argv[++i];
    } else if (!strcmp(a, "--watchdog-ms") && i + 1 < argc) {
      wd = atoi(argv[++i]);
    } else if (!strcmp(a, "--watchdog-hard-ms") && i + 1 < argc) {
      wd_hard = atoi(argv[++i]);
    } else if (!strcmp(a, "--cookie") && i + 1 < argc) {
      cookie = argv[++i];
    } else if (!strcmp(a, "--listen") && i + 1 < argc) {
      listen = argv[++i];
    } else if (!strcmp(a, "--registrar") && i + 1 < argc) {
      registrar = argv[++i];
    } else if (!strcmp(a, "--join") && i + 1 < argc) {
      if (njoins < 64) joins[njoins++] = argv[++i];
    } else if (!strcmp(a, "--cluster") && i + 1 < argc) {
      cluster = argv[++i];
    } else if (!strcmp(a, "--metrics") && i + 1 < argc) {
      metrics = argv[++i];
    } else if (!strcmp(a, "--admin")) {
      admin = 1;
    } else if (!strcmp(a, "--mcp") && i + 1 < argc) {
      mcp = argv[++i];
    } else if (!strcmp(a, "--mcp-token") && i + 1 < argc) {
      mcp_token = argv[++i];
    } else if (!strcmp(a, "--mcp-origin") && i + 1 < argc) {
      if (norigins < 64) origins[norigins++] = argv[++i];
    } else if (!strcmp(a, "--mcp-allow") && i + 1 < argc) {
      mcp_allow = argv[++i];
    } else if (!strcmp(a, "--mcp-tools") && i + 1 < argc) {
      mcp_tools = argv[++i];
    } else if (!strcmp(a, "--mcp-read-only")) {
      mcp_read_only = 1;
    } else if (!strcmp(a, "--mcp-expose-env")) {
      mcp_env = 1;
    } else if (!strcmp(a, "--no-mcp")) {
      mcp_off = 1;
    } else if (!strcmp(a, "--observer") && i + 1 < argc) {
      observer = argv[++i];
    } else if (!strcmp(a, "--observer-token") && i + 1 < argc) {
      observer_token = argv[++i];
    } else if (!strcmp(a, "-e") && i + 1 < argc) {
      code = argv[++i];
      i++;
      break;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "halo run: unknown or incomplete option '%s'\n\n%s", a, run_usage);
      return 2;
    } else {
      file = a;
      i++;
      break;
    }
  }
  if (!code && !file) {
    fprintf(stderr, "halo run: a FILE.lua or -e CODE is required\n\n%s", run_usage);
    return 2;
  }

  lua_State *L = luaL_newstate();
  if (!L) return fail("cannot create a Lua state", NULL);
  luaL_openlibs(L);

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_halo_core);
  lua_setfield(L, -2, "halo.core");
  lua_pop(L, 1);
  int base = lua_gettop(L);
  for (int k = 0; k < npaths; k++) add_path(L, paths[k]);
  const char *src = source_dir();
  if (src) {
    static const char *const sub[] = {"lua", "scenarios", "mcp_tools", "."};
    for (int k = 0; k < 4; k++) {
      char dir[PATH_MAX];
      snprintf(dir, sizeof dir, "%s/%s", src, sub[k]);
      add_path(L, dir);
    }
  }
  lua_getfield(L, base, "path");
  lua_concat(L, lua_gettop(L) - base);
  lua_setfield(L, base, "path");
  lua_pop(L, 1);

  /* arg table: arg[0] = script, arg[1..] = arguments */
  lua_createtable(L, argc - i, 1);
  lua_pushstring(L, file ? file : "-e");
  lua_rawseti(L, -2, 0);
  for (int k = i; k < argc; k++) {
    lua_pushstring(L, argv[k]);
    lua_rawseti(L, -2, k - i + 1);
  }
  lua_setglobal(L, "arg");

  lua_getglobal(L, "require");
  lua_pushliteral(L, "halo");
  if (lua_pcall(L, 1, 1, 0)) {
    fprintf(stderr, "halo: cannot load the halo module: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_getfield(L, -1, "run");
  int st = code ? luaL_loadbuffer(L, code, strlen(code), "=(command line)") : luaL_loadfile(L, file);
  if (st) {
    fprintf(stderr, "halo: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  /* The entry gets the arguments as `...`. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "halo.entry");
  int has_wrapper = lua_pcall(L, 1, 1, 0) == 0;
  if (!has_wrapper) {
    fprintf(stderr, "halo: cannot load halo.entry: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_insert(L, -2);
  lua_call(L, 1, 1); /* halo.entry(chunk) -> function(args) */
  lua_createtable(L, 0, 8);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, level);
  lua_setfield(L, -2, "log_level");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "signals");
  lua_pushinteger(L, wd);
  lua_setfield(L, -2, "watchdog_ms");
  lua_pushinteger(L, wd_hard);
  lua_setfield(L, -2, "watchdog_hard_ms");
  if (cookie) {
    lua_pushstring(L, cookie);
    lua_setfield(L, -2, "cookie");
  }
  if (listen) {
    lua_pushstring(L, listen);
    lua_setfield(L, -2, "listen");
  }
  if (registrar) {
    lua_pushstring(L, registrar);
    lua_setfield(L, -2, "registrar");
  }
  if (cluster) {
    lua_pushstring(L, cluster);
    lua_setfield(L, -2, "cluster");
  }
  if (metrics) {
    lua_pushstring(L, metrics);
    lua_setfield(L, -2, "metrics");
  }
  if (admin) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "admin");
  }
  if (!mcp_off) { /* halo.run starts it when it has a port or the network is on */
    lua_createtable(L, 0, 6);
    if (mcp) {
      lua_pushstring(L, mcp);
      lua_setfield(L, -2, "address");
    }
    if (mcp_token && *mcp_token) {
      lua_pushstring(L, mcp_token);
      lua_setfield(L, -2, "token");
    }
    if (mcp_allow) {
      lua_pushstring(L, mcp_allow);
      lua_setfield(L, -2, "allowed");
    }
    if (mcp_tools) {
      lua_pushstring(L, mcp_tools);
      lua_setfield(L, -2, "dir");
    }
    lua_pushboolean(L, mcp_read_only);
    lua_setfield(L, -2, "read_only");
    lua_pushboolean(L, mcp_env);
    lua_setfield(L, -2, "expose_env");
    lua_createtable(L, norigins, 0);
    for (int k = 0; k < norigins; k++) {
      lua_pushstring(L, origins[k]);
      lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "origins");
    lua_setfield(L, -2, "mcp");
  }
  if (observer) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, observer);
    lua_setfield(L, -2, "address");
    if (observer_token && *observer_token) {
      lua_pushstring(L, observer_token);
      lua_setfield(L, -2, "token");
    }
    lua_setfield(L, -2, "observer");
  }
  if (njoins) {
    lua_createtable(L, njoins, 0);
    for (int k = 0; k < njoins; k++) {
      lua_pushstring(L, joins[k]);
      lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "join");
  }
  lua_getglobal(L, "arg");
  lua_setfield(L, -2, "args");
  if (lua_pcall(L, 2, 2, 0)) {
    fprintf(stderr, "halo: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  int exit_code = (int)lua_tointeger(L, -2);
  if (!lua_isnil(L, -1)) fprintf(stderr, "halo: entry failed: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return exit_code;
}

/* Servers hold a descriptor per connection: the soft limit goes up to the hard one. */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static const char *slowweb_usage =
    "usage: halo slowweb [options] [[HOST:]PORT]\n"
    "\n"
    "Serves the demo's slow HTTP service on HOST:PORT (default 127.0.0.1:8080): /slow\n"
    "(any method) waits a uniformly random 3..14 ms, then answers 200 \"ok <ms>ms\";\n"
    "other paths are 404. The options are run's (`halo run --help`).\n";

/* `halo slowweb [options] [[HOST:]PORT]`: run's options, then
 * scenarios/slowweb.lua from the module search path as the entry. */
static int cmd_slowweb(int argc, char **argv) {
  static const char *entry =
      "local f = package.searchpath('slowweb', package.path)\n"
      "if not f then error('slowweb.lua is not on the module search path (--lua-path DIR)', 0) end\n"
      "return assert(loadfile(f))(...)";
  char **args = calloc((size_t)argc + 3, sizeof *args);
  if (!args) return fail("out of memory", NULL);
  int k = 0, i = 0;
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      free(args);
      fputs(slowweb_usage, stdout);
      return 0;
    }
    /* the flags without a value */
    if (!strcmp(argv[i], "--mcp-read-only") || !strcmp(argv[i], "--mcp-expose-env") || !strcmp(argv[i], "--no-mcp")) {
      args[k++] = argv[i];
      continue;
    }
    if (i + 1 >= argc) { /* every other option of run but help takes a value */
      free(args);
      fprintf(stderr, "halo slowweb: unknown or incomplete option '%s'\n\n%s", argv[i], slowweb_usage);
      return 2;
    }
    args[k++] = argv[i];
    args[k++] = argv[++i];
  }
  args[k++] = "-e";
  args[k++] = (char *)entry;
  for (; i < argc; i++) args[k++] = argv[i];
  int rc = cmd_run(k, args);
  free(args);
  return rc;
}

/* `halo demo [options]`: halo.demo as the entry of a node of its own (no
 * network), given this executable's path to start the other nodes with. */
static int cmd_demo(int argc, char **argv) {
  static const char *entry = "return require('halo.demo').main(...)";
  static char self[PATH_MAX];
  if (!realpath("/proc/self/exe", self)) return fail("cannot find the halo executable", NULL);
  char **args = calloc((size_t)argc + 8, sizeof *args);
  if (!args) return fail("out of memory", NULL);
  int k = 0;
  args[k++] = "--name";
  args[k++] = "demo@localhost";
  args[k++] = "--log-level";
  args[k++] = "warning";
  args[k++] = "-e";
  args[k++] = (char *)entry;
  args[k++] = self;
  for (int i = 0; i < argc; i++) args[k++] = argv[i];
  int rc = cmd_run(k, args);
  free(args);
  return rc;
}

/* `halo call [options] NODE OP [ARGS...]`: halo.admin's client as the entry
 * of a node that listens on a free loopback port and registers nowhere;
 * --cookie goes to that node, the rest to the entry. */
static int cmd_call(int argc, char **argv) {
  static const char *entry = "return require('halo.admin').main(...)";
  static char name[64];
  const char *cookie = getenv("HALO_COOKIE");
  char **args = calloc((size_t)argc + 12, sizeof *args);
  if (!args) return fail("out of memory", NULL);
  snprintf(name, sizeof name, "halo-call-%ld@localhost", (long)getpid());
  int k = 0, n = 0;
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (!rest) {
    free(args);
    return fail("out of memory", NULL);
  }
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--cookie") && i + 1 < argc) cookie = argv[++i];
    else rest[n++] = argv[i];
  }
  if (!cookie || !*cookie) unsetenv("HALO_COOKIE"); /* run would make a random one; the entry says it is missing */
  args[k++] = "--name";
  args[k++] = name;
  args[k++] = "--log-level";
  args[k++] = "error";
  args[k++] = "--registrar";
  args[k++] = "none";
  if (cookie && *cookie) {
    args[k++] = "--cookie";
    args[k++] = (char *)cookie;
    args[k++] = "--listen";
    args[k++] = "127.0.0.1:0";
  }
  args[k++] = "-e";
  args[k++] = (char *)entry;
  for (int i = 0; i < n; i++) args[k++] = rest[i];
  int rc = cmd_run(k, args);
  free(rest);
  free(args);
  return rc;
}

static const char *observer_usage =
    "usage: halo observer [options]\n"
    "\n"
    "Starts a node (default name observer@localhost) that runs only the Observer and the\n"
    "mcp agent, joins the cluster through the registrar with the cookie, and serves the\n"
    "web UI on http://HOST:PORT/. Prints `observer: URL` on stdout when it listens.\n"
    "\n"
    "options:\n"
    "  --host H              listen address (default 127.0.0.1)\n"
    "  --port P              port (default 9911; 0 picks a free one)\n"
    "  --token T             enable actions (kill, send, application stop, ...) for holders of\n"
    "                        T (or HALO_OBSERVER_TOKEN); without it they are off\n"
    "  --name, --registrar, --cluster, --cookie (or HALO_COOKIE), --listen, --log-level,\n"
    "  --no-mcp ...          as for run (`halo run --help`)\n";

/* `halo observer [options]`: run's options plus --host/--port/--token,
 * the observer node's defaults, and an entry that waits for the stop. */
static int cmd_observer(int argc, char **argv) {
  static const char *entry = "local halo = require('halo') while true do halo.receive() end";
  static char addr[300];
  const char *host = "127.0.0.1", *port = "9911", *token = NULL, *name = "observer@localhost";
  int has_listen = 0;
  char **args = calloc((size_t)argc + 12, sizeof *args);
  if (!args) return fail("out of memory", NULL);
  int k = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      free(args);
      fputs(observer_usage, stdout);
      return 0;
    }
    if (!strcmp(a, "--no-mcp")) {
      args[k++] = argv[i];
      continue;
    }
    if (i + 1 >= argc || a[0] != '-') {
      free(args);
      fprintf(stderr, "halo observer: unknown or incomplete option '%s'\n\n%s", a, observer_usage);
      return 2;
    }
    if (!strcmp(a, "--host")) host = argv[++i];
    else if (!strcmp(a, "--port")) port = argv[++i];
    else if (!strcmp(a, "--token")) token = argv[++i];
    else if (!strcmp(a, "--name")) name = argv[++i];
    else {
      if (!strcmp(a, "--listen")) has_listen = 1;
      args[k++] = argv[i];
      args[k++] = argv[++i];
    }
  }
  snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
  args[k++] = "--name";
  args[k++] = (char *)name;
  if (!has_listen) { /* the network is what it observes */
    args[k++] = "--listen";
    args[k++] = "127.0.0.1:0";
  }
  args[k++] = "--observer";
  args[k++] = addr;
  if (token) {
    args[k++] = "--observer-token";
    args[k++] = (char *)token;
  }
  args[k++] = "-e";
  args[k++] = (char *)entry;
  int rc = cmd_run(k, args);
  free(args);
  return rc;
}

int main(int argc, char **argv) {
  halo_watchdog_on_stuck(on_stuck);
  raise_nofile();
  if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "run")) return cmd_run(argc - 2, argv + 2);
  if (!strcmp(argv[1], "slowweb")) return cmd_slowweb(argc - 2, argv + 2);
  if (!strcmp(argv[1], "demo")) return cmd_demo(argc - 2, argv + 2);
  if (!strcmp(argv[1], "call")) return cmd_call(argc - 2, argv + 2);
  if (!strcmp(argv[1], "observer")) return cmd_observer(argc - 2, argv + 2);
  fprintf(stderr, "halo: unknown command '%s'\n\n%s", argv[1], usage);
  return 2;
}
