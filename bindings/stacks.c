/*
 * core.stacks: the stack of every process as text, in the block format of
 * Go's goroutine dump (what the clients of MCP's pprof_goroutines parse). A
 * process is a Lua coroutine, so a sleeping or waiting process's stack is as
 * readable as a running one's.
 *
 *   core.stacks.dump{debug=, filter=, exclude=, limit=} -> text, total, matched, shown
 *   core.stacks.process(pid) -> block | nil, err, code
 *
 * debug=2 (default): one block per process, in spawn order:
 *   goroutine 1001 [wait response]:
 *   # labels: {"pid":"<35DBD1C6.0.1001>", "name":"w", "behavior":"b", "application":"a"}
 *   [C] halo_process_waitResponse(call <35DBD1C6.0.1002>, 12 ms)
 *   	core/process.c
 *   call
 *   	/path/lua/halo/init.lua:198
 *   ...
 *   halo.dispatch
 *   	/path/lua/halo/init.lua:49
 *   halo.ProcessRun
 *   	bindings/gate.c
 * The top frame names where the core parks the process (derived from its
 * wait and wait_for), the bottom one is the resume point every process runs
 * from. debug=1: processes with the same state, behavior, application and
 * frames (without the C frame's arguments) grouped into one block
 * "N @ [state]", largest group first. filter keeps the blocks containing it,
 * exclude then drops those containing it, limit (0: all) then cuts.
 */
#include "binding.h"
#include "clock.h"
#include "node.h"
#include "rel.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 100  /* as Go's dump: deeper frames are elided */
#define GROUP_PIDS 10   /* PIDs a debug=1 block lists */

typedef struct sbuf {
  char *p;
  size_t len, cap;
} sbuf_t;

typedef struct group {
  size_t key, klen; /* in the dump's keys buffer */
  uint32_t count, first;
  uint64_t ids[GROUP_PIDS];
  uint32_t hash;
} group_t;

/* Everything a dump allocates: a userdata on the Lua stack owns it, so an
 * error raised midway frees it through __gc. */
typedef struct dump {
  sbuf_t out, blk, keys;
  group_t *groups;
  uint32_t ngroups;
  uint32_t *slots; /* open addressing over groups: index + 1, 0 = empty */
  uint32_t nslots;
} dump_t;

static void oom(lua_State *L) { luaL_error(L, "not enough memory"); }

static void put(lua_State *L, sbuf_t *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t c = b->cap ? b->cap : 4096;
    while (c < b->len + n + 1) c *= 2;
    char *q = realloc(b->p, c);
    if (!q) oom(L);
    b->p = q;
    b->cap = c;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void puts_(lua_State *L, sbuf_t *b, const char *s) { put(L, b, s, strlen(s)); }

static void putu(lua_State *L, sbuf_t *b, uint64_t v) {
  char t[24], *e = t + sizeof t, *s = e;
  do *--s = (char)('0' + v % 10);
  while (v /= 10);
  put(L, b, s, (size_t)(e - s));
}

static void put_pid(lua_State *L, sbuf_t *b, halo_pid_t pid) {
  char t[HALO_PID_STRLEN];
  put(L, b, t, (size_t)halo_pid_format(t, sizeof t, pid));
}

/* A label value as a JSON string's contents (quotes and backslashes escaped, controls dropped). */
static void put_json(lua_State *L, sbuf_t *b, const char *s) {
  for (const char *r = s;; r++) {
    const char *q = r;
    while (*q && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
    put(L, b, r, (size_t)(q - r));
    if (!*q) return;
    if (*q == '"' || *q == '\\') put(L, b, (char[]){'\\', *q}, 2);
    r = q;
  }
}

/* Text of a frame (a function's or a chunk's name: any bytes) on one line: controls become '?'. */
static void put_line(lua_State *L, sbuf_t *b, const char *s) {
  for (const char *r = s;; r++) {
    const char *q = r;
    while (*q && (unsigned char)*q >= 0x20 && *q != 0x7f) q++;
    put(L, b, r, (size_t)(q - r));
    if (!*q) return;
    put(L, b, "?", 1);
    r = q;
  }
}

static void put_label(lua_State *L, sbuf_t *b, const char *k, const char *v, int *first) {
  if (!v || !*v) return;
  puts_(L, b, *first ? "{\"" : ", \"");
  *first = 0;
  puts_(L, b, k);
  puts_(L, b, "\":\"");
  put_json(L, b, v);
  put(L, b, "\"", 1);
}

/* The labels line; with_pid 0: the group's labels (behavior, application). */
static void put_labels(lua_State *L, halo_node_t *n, sbuf_t *b, halo_proc_t *p, int with_pid) {
  int first = 1;
  puts_(L, b, "# labels: ");
  if (with_pid) {
    char t[HALO_PID_STRLEN];
    halo_pid_format(t, sizeof t, (halo_pid_t){n->crc, p->id});
    put_label(L, b, "pid", t, &first);
    put_label(L, b, "name", p->name, &first);
  }
  put_label(L, b, "behavior", p->behavior, &first);
  put_label(L, b, "application", p->application, &first);
  puts_(L, b, first ? "{}\n" : "}\n");
}

static void put_ms(lua_State *L, sbuf_t *b, halo_proc_t *p, uint64_t now, int comma) {
  if (comma) put(L, b, ", ", 2);
  putu(L, b, p->t_suspend && now > p->t_suspend ? (now - p->t_suspend) / 1000000u : 0);
  put(L, b, " ms", 3);
}

/* The C frame where the core holds a suspended process, or nothing when it runs. */
static void put_wait(lua_State *L, halo_node_t *n, sbuf_t *b, halo_proc_t *p, uint64_t now, int args, int g) {
  const char *fn, *file, *what = NULL;
  int pid = 0, ms = 1;
  switch (p->wait) {
  case HALO_WAIT_RECEIVE: fn = "halo_process_receive", file = "core/mailbox.c", ms = 0; break;
  case HALO_WAIT_SLEEP:
    if (p->ext && p->ext->throttled == HALO_PARKED) fn = "halo_net_throttled", file = "core/net.c";
    else if (p->wait_timer) fn = "halo_process_sleep", file = "core/timer.c";
    else fn = "halo_process_yield", file = "core/scheduler.c", ms = 0;
    break;
  case HALO_WAIT_SPAWN: fn = "halo_process_waitSpawn", file = "core/process.c", pid = 1; break;
  case HALO_WAIT_REPLY:
    switch (p->wait_for) {
    case HALO_FOR_HTTP: fn = "halo_http_waitResponse", file = "bindings/http.c"; break;
    case HALO_FOR_RELATION: fn = "halo_rel_waitResponse", file = "core/rel.c"; break;
    default:
      fn = "halo_process_waitResponse", file = "core/process.c", pid = 1;
      what = p->wait_for == HALO_FOR_INSPECT ? "inspect" : "call";
    }
    break;
  default: return;
  }
  put(L, b, g ? "#\t[C] " : "[C] ", g ? 6 : 4);
  puts_(L, b, fn);
  put(L, b, "(", 1);
  if (args) {
    if (what) {
      puts_(L, b, what);
      put(L, b, " ", 1);
    }
    if (pid && p->wait == HALO_WAIT_SPAWN) put_pid(L, b, (halo_pid_t){n->crc, p->wait_ref});
    else if (pid && p->wait_pid.id) put_pid(L, b, p->wait_pid);
    else if (pid) put(L, b, "a name", 6);
    if (ms) put_ms(L, b, p, now, pid);
  }
  put(L, b, g ? ")\t" : ")\n\t", g ? 2 : 3);
  puts_(L, b, file);
  put(L, b, "\n", 1);
}

/* The Lua frames of co, innermost first; self: co is the caller (skip this C function);
 * behavior: its bottom frame is halo's dispatch loop (lua/halo/init.lua's body). */
static void put_frames(lua_State *L, sbuf_t *b, lua_State *co, int self, int behavior, int g) {
  lua_Debug ar;
  int lv = self ? 1 : 0, nf = 0;
  if (!self && lua_getstack(co, 0, &ar) && lua_getinfo(co, "Sn", &ar) && *ar.what == 'C' && ar.name &&
      strcmp(ar.name, "yield") == 0)
    lv = 1; /* suspended in coroutine.yield: the wait frame stands for it */
  for (; lua_getstack(co, lv, &ar); lv++) {
    if (++nf > MAX_FRAMES) {
      puts_(L, b, g ? "#\t...additional frames elided...\n" : "...additional frames elided...\n");
      return;
    }
    if (!lua_getinfo(co, "Sln", &ar)) break;
    if (g) put(L, b, "#\t", 2);
    if (*ar.what == 'C') put(L, b, "[C] ", 4);
    lua_Debug next;
    if (ar.name) put_line(L, b, ar.name);
    else if (*ar.what == 'm') put(L, b, "main chunk", 10);
    else if (behavior && *ar.what == 'L' && !lua_getstack(co, lv + 1, &next)) put(L, b, "halo.dispatch", 13);
    else if (*ar.what == 'C') put(L, b, "?", 1);
    else {
      put(L, b, "function <", 10);
      put_line(L, b, ar.source[0] == '@' ? ar.source + 1 : ar.short_src);
      put(L, b, ":", 1);
      putu(L, b, (uint64_t)(ar.linedefined > 0 ? ar.linedefined : 0));
      put(L, b, ">", 1);
    }
    put(L, b, g ? "\t" : "\n\t", g ? 1 : 2);
    if (*ar.what == 'C') put(L, b, "[C]", 3);
    else {
      put_line(L, b, ar.source[0] == '@' ? ar.source + 1 : ar.short_src);
      put(L, b, ":", 1);
      putu(L, b, (uint64_t)(ar.currentline > 0 ? ar.currentline : 0));
    }
    put(L, b, "\n", 1);
  }
}

/* The frames of p: its C wait, its Lua frames, the resume point (ProcessRun). */
static void put_stack(lua_State *L, halo_binding_t *B, sbuf_t *b, halo_proc_t *p, uint64_t now, int g) {
  put_wait(L, &B->node, b, p, now, !g, g);
  lua_State *co = p->host;
  if (co) put_frames(L, b, co, co == L, !(p->flags & HALO_PF_FUNC), g);
  puts_(L, b, g ? "#\thalo.ProcessRun\tbindings/gate.c\n" : "halo.ProcessRun\n\tbindings/gate.c\n");
}

/* One process's debug=2 block (without its trailing blank line). */
static void put_block(lua_State *L, halo_binding_t *B, sbuf_t *b, halo_proc_t *p, uint64_t now) {
  put(L, b, "goroutine ", 10);
  putu(L, b, p->id);
  put(L, b, " [", 2);
  puts_(L, b, halo_state_name(p->state));
  uint64_t since = p->t_state && now > p->t_state ? (now - p->t_state) / 60000000000u : 0;
  if (since) { /* as Go: a wait of a minute or more */
    put(L, b, ", ", 2);
    putu(L, b, since);
    puts_(L, b, since == 1 ? " minute" : " minutes");
  }
  put(L, b, "]:\n", 3);
  put_labels(L, &B->node, b, p, 1);
  put_stack(L, B, b, p, now, 0);
}

static int dump_gc(lua_State *L) {
  dump_t *d = lua_touserdata(L, 1);
  free(d->out.p);
  free(d->blk.p);
  free(d->keys.p);
  free(d->groups);
  free(d->slots);
  memset(d, 0, sizeof *d);
  return 0;
}

static uint32_t fnv(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

/* Adds p to the group of its key (the block without the count line). */
static void group_add(lua_State *L, halo_binding_t *B, dump_t *d, halo_proc_t *p, uint64_t now) {
  size_t start = d->keys.len;
  put(L, &d->keys, "[", 1);
  puts_(L, &d->keys, halo_state_name(p->state));
  put(L, &d->keys, "]\n", 2);
  put_labels(L, &B->node, &d->keys, p, 0);
  put_stack(L, B, &d->keys, p, now, 1);
  size_t klen = d->keys.len - start;
  uint32_t h = fnv(d->keys.p + start, klen), mask = d->nslots - 1;
  for (uint32_t i = h & mask;; i = (i + 1) & mask) {
    uint32_t s = d->slots[i];
    if (!s) {
      group_t *gr = &d->groups[d->ngroups];
      *gr = (group_t){start, klen, 1, d->ngroups, {p->id}, h};
      d->slots[i] = ++d->ngroups;
      return;
    }
    group_t *gr = &d->groups[s - 1];
    if (gr->hash == h && gr->klen == klen && memcmp(d->keys.p + gr->key, d->keys.p + start, klen) == 0) {
      if (gr->count < GROUP_PIDS) gr->ids[gr->count] = p->id;
      gr->count++;
      d->keys.len = start; /* a known key: drop the copy */
      return;
    }
  }
}

static int by_count(const void *a, const void *b) {
  const group_t *x = a, *y = b;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return x->first < y->first ? -1 : x->first > y->first;
}

static void put_group(lua_State *L, halo_node_t *n, dump_t *d, sbuf_t *b, const group_t *gr) {
  putu(L, b, gr->count);
  put(L, b, " @ ", 3);
  const char *k = d->keys.p + gr->key;
  const char *nl = memchr(k, '\n', gr->klen);
  put(L, b, k, (size_t)(nl - k) + 1); /* "[state]" */
  put(L, b, "# pids:", 7);
  uint32_t shown = gr->count < GROUP_PIDS ? gr->count : GROUP_PIDS;
  for (uint32_t i = 0; i < shown; i++) {
    put(L, b, " ", 1);
    put_pid(L, b, (halo_pid_t){n->crc, gr->ids[i]});
  }
  if (gr->count > shown) {
    put(L, b, " (", 2);
    putu(L, b, gr->count - shown);
    put(L, b, " more)", 6);
  }
  put(L, b, "\n", 1);
  put(L, b, nl + 1, gr->klen - (size_t)(nl + 1 - k));
}

static const char *opt_str(lua_State *L, const char *k) {
  lua_getfield(L, 1, k);
  const char *s = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1);
  return s && *s ? s : NULL; /* stays alive: the opts table holds it */
}

static lua_Integer opt_int(lua_State *L, const char *k, lua_Integer dflt) {
  lua_getfield(L, 1, k);
  lua_Integer v = lua_isnumber(L, -1) ? lua_tointeger(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}

/* Keeps the block in d->blk if it passes filter and exclude; counts it. */
static void offer(lua_State *L, dump_t *d, const char *filter, const char *exclude, uint64_t limit,
                  uint64_t *matched, uint64_t *shown) {
  if (filter && !strstr(d->blk.p, filter)) return;
  if (exclude && strstr(d->blk.p, exclude)) return;
  ++*matched;
  if (limit && *shown >= limit) return;
  if (*shown) put(L, &d->out, "\n", 1);
  put(L, &d->out, d->blk.p, d->blk.len);
  ++*shown;
}

/* core.stacks.dump(opts) -> text, total, matched, shown */
static int l_dump(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_node_t *n = &B->node;
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  int debug = (int)opt_int(L, "debug", 2);
  lua_Integer lim = opt_int(L, "limit", 0);
  uint64_t limit = lim > 0 ? (uint64_t)lim : 0;
  const char *filter = opt_str(L, "filter"), *exclude = opt_str(L, "exclude");
  dump_t *d = lua_newuserdata(L, sizeof *d);
  memset(d, 0, sizeof *d);
  lua_newtable(L);
  lua_pushcfunction(L, dump_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  uint64_t now = halo_clock_ns(), total = 0, matched = 0, shown = 0;
  put(L, &d->out, "", 0);
  if (debug >= 2) {
    for (halo_proc_t *p = n->first; p; p = p->next) {
      total++;
      d->blk.len = 0;
      put_block(L, B, &d->blk, p, now);
      offer(L, d, filter, exclude, limit, &matched, &shown);
    }
  } else {
    uint32_t np = n->nprocs ? n->nprocs : 1;
    d->nslots = 16;
    while (d->nslots < np * 2) d->nslots *= 2;
    d->slots = calloc(d->nslots, sizeof *d->slots);
    d->groups = malloc((size_t)np * sizeof *d->groups);
    if (!d->slots || !d->groups) oom(L);
    for (halo_proc_t *p = n->first; p && total < np; p = p->next) {
      total++;
      group_add(L, B, d, p, now);
    }
    qsort(d->groups, d->ngroups, sizeof *d->groups, by_count);
    for (uint32_t i = 0; i < d->ngroups; i++) {
      d->blk.len = 0;
      put_group(L, n, d, &d->blk, &d->groups[i]);
      offer(L, d, filter, exclude, limit, &matched, &shown);
    }
  }
  lua_pushlstring(L, d->out.p, d->out.len);
  lua_pushnumber(L, (double)total);
  lua_pushnumber(L, (double)matched);
  lua_pushnumber(L, (double)shown);
  return 4;
}

/* core.stacks.process(pid) -> the process's debug=2 block | nil, err, code */
static int l_process(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  int err;
  halo_proc_t *p = hb_check_proc(L, B, 1, &err);
  if (!p) return hb_error(L, err);
  dump_t *d = lua_newuserdata(L, sizeof *d);
  memset(d, 0, sizeof *d);
  lua_newtable(L);
  lua_pushcfunction(L, dump_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  put_block(L, B, &d->blk, p, halo_clock_ns());
  lua_pushlstring(L, d->blk.p, d->blk.len);
  return 1;
}

void hb_open_stacks(lua_State *L) {
  static const luaL_Reg fns[] = {{"dump", l_dump}, {"process", l_process}, {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
