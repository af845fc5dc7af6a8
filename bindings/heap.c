/*
 * core.heap: the heap profile over core/alloc.c's sampling, and the figures
 * runtime_stats reads (allocator, collector cycles, RSS).
 *
 * Naming a sample's site. The allocator runs in the middle of the VM's
 * work: inside a bytecode, a C function, the trace recorder or a compiled
 * trace, whose frames live in registers and are written back to the Lua
 * stack only at trace exits. lua_getstack/lua_getinfo there would walk a
 * stack LuaJIT has not synced (L->base of an older frame, slots a trace
 * has overwritten since): wrong frames at best, a wild read at worst. So
 * the allocator only takes the record (block, size, weight, process) and
 * arms a one-shot count hook (lua_sethook with LUA_MASKCOUNT, count 1:
 * it only sets the hook mask and rewrites the dispatch table, which LuaJIT
 * allows from a signal handler, hence from anywhere). LuaJIT calls hooks
 * only from the interpreter at an instruction boundary, with the stack
 * synced: the hook reads the stack there (lua_getinfo "Sln" allocates
 * nothing) and names every pending record. That instruction is the one
 * after the allocation: the same line, or the caller's after a C function
 * allocated; a sample taken inside a compiled trace is named when the trace
 * exits (the same function for a loop, a later line at worst). A record
 * whose process is not the one running at the hook (the allocation came
 * from the core between two processes) is named "(outside Lua)". While a
 * foreign hook (debug.sethook) holds the slot, the hook is not replaced and
 * a sample taken meanwhile is named "(unknown)" at once: waiting would have
 * the next hook, after the foreign one is gone, name it with an unrelated
 * stack. Records still pending at a read of the profile are "(unknown)" too.
 *
 * Collector cycles: a finalizer sentinel, a userdata that, when collected,
 * counts one completed cycle and makes its successor. LuaJIT steps its
 * collector only inside allocating operations of the VM and has no hook
 * around those steps, so their duration is not measured (README, runtime_stats).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "binding.h"
#include "map.h"

#define HEAP_DEFAULT_RATE (512u * 1024u)
#define HEAP_FRAMES 8
#define HEAP_PENDING (1u << 20) /* records waiting for their hook, at most */

typedef struct heap_frame {
  char *name, *file;
  int line;
} heap_frame_t;

typedef struct heap_site {
  char *key;
  heap_frame_t frames[HEAP_FRAMES]; /* innermost first */
  int nframes;
  double alloc_objects, alloc_bytes;  /* cumulative, unsampled */
} heap_site_t;

static struct {
  heap_site_t *sites;        /* by id - 1 */
  uint32_t nsites, capsites;
  halo_smap_t by_key;
  uint32_t *pending;         /* records waiting for the hook: a compiled loop */
  uint32_t npending, cappending; /* runs to its exit before the hook can fire */
  uint64_t dropped;          /* samples not named: no room to wait */
  uint64_t gc_cycles;
  int sentinel_mt;           /* registry ref of the sentinel's metatable */
} H;

/* Which node's sentinel chain is current: a sentinel of an earlier node
 * (collected after its node ended) neither counts nor makes a successor. */
static uint32_t sentinel_gen;

static void heap_hook(lua_State *L, lua_Debug *ar);

/* The site of this stack (or of a fixed label), found or added; 0 when out of memory. */
static uint32_t site_id(const heap_frame_t *fr, int n) {
  char key[1024];
  size_t k = 0;
  for (int i = 0; i < n && k < sizeof key; i++)
    k += (size_t)snprintf(key + k, sizeof key - k, "%s\x01%s\x01%d\x02", fr[i].name, fr[i].file, fr[i].line);
  uint32_t id = (uint32_t)(uintptr_t)halo_smap_get(&H.by_key, key);
  if (id) return id;
  if (H.nsites == H.capsites) {
    uint32_t cap = H.capsites ? 2 * H.capsites : 64;
    heap_site_t *ns = realloc(H.sites, cap * sizeof *ns);
    if (!ns) return 0;
    H.sites = ns;
    H.capsites = cap;
  }
  heap_site_t *s = &H.sites[H.nsites];
  memset(s, 0, sizeof *s);
  if (!(s->key = strdup(key))) return 0;
  for (int i = 0; i < n; i++) {
    s->frames[i].name = strdup(fr[i].name);
    s->frames[i].file = strdup(fr[i].file);
    s->frames[i].line = fr[i].line;
    s->nframes++;
    if (!s->frames[i].name || !s->frames[i].file) break;
  }
  id = H.nsites + 1;
  if (halo_smap_put(&H.by_key, s->key, (void *)(uintptr_t)id)) {
    for (int i = 0; i < s->nframes; i++) free(s->frames[i].name), free(s->frames[i].file);
    free(s->key);
    return 0;
  }
  H.nsites++;
  return id;
}

static uint32_t label_site(const char *label) {
  heap_frame_t f = {(char *)label, "", 0};
  return site_id(&f, 1);
}

/* Names record idx with site s (0: "(unknown)"; out of memory: counted as dropped). */
static void name_record(halo_alloc_t *a, uint32_t idx, uint32_t s) {
  halo_alloc_sample_t *r = halo_alloc_sample(a, idx);
  if (!r) return;
  if (!s) s = label_site("(unknown)");
  if (!s) { /* out of memory: the record is forgotten */
    r->site = UINT32_MAX;
    halo_alloc_sample_done(a, idx);
    H.dropped++;
    return;
  }
  r->site = s;
  H.sites[s - 1].alloc_objects += r->weight;
  H.sites[s - 1].alloc_bytes += r->weight * (double)r->size;
  halo_alloc_sample_done(a, idx);
}

/* Names the pending records: site for those of owner, other for the rest. */
static void name_pending(halo_alloc_t *a, uint32_t site, uint32_t other, uint64_t owner) {
  for (uint32_t i = 0; i < H.npending; i++) {
    halo_alloc_sample_t *r = halo_alloc_sample(a, H.pending[i]);
    if (r) name_record(a, H.pending[i], r->owner == owner ? site : other);
  }
  H.npending = 0;
}

static void on_sample(void *ud, halo_alloc_t *a, uint32_t idx) {
  halo_binding_t *B = ud;
  halo_alloc_sample_t *r = halo_alloc_sample(a, idx);
  r->owner = B->node.current ? B->node.current->id : 0;
  lua_Hook h = lua_gethook(B->L);
  if (h && h != heap_hook) { /* a foreign hook holds the slot (it may have replaced an armed one) */
    name_pending(a, 0, 0, 0);
    name_record(a, idx, 0);
    return;
  }
  if (H.npending == H.cappending) { /* malloc: not the Lua allocator */
    uint32_t cap = H.cappending ? 2 * H.cappending : 256;
    uint32_t *np = cap <= HEAP_PENDING ? realloc(H.pending, cap * sizeof *np) : NULL;
    if (!np) {
      r->site = UINT32_MAX; /* no room to wait for a name: dropped */
      H.dropped++;
      return;
    }
    H.pending = np;
    H.cappending = cap;
  }
  H.pending[H.npending++] = idx;
  if (!h) lua_sethook(B->L, heap_hook, LUA_MASKCOUNT, 1);
}

/* A frame's function as the CPU profile names it (halo.cpuprof). */
static void frame_name(lua_Debug *d, char *buf, size_t size) {
  if (*d->what == 'C') snprintf(buf, size, "[C] %s", d->name ? d->name : "?");
  else if (*d->what == 'm') snprintf(buf, size, "main chunk <%s>", d->short_src);
  else if (d->name) snprintf(buf, size, "%s", d->name);
  else snprintf(buf, size, "function <%s:%d>", d->short_src, d->linedefined);
}

static void heap_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  halo_binding_t *B = halo__B;
  if (!B || !H.npending) return;
  heap_frame_t fr[HEAP_FRAMES];
  char anon[HEAP_FRAMES][LUA_IDSIZE + 24], src[HEAP_FRAMES][LUA_IDSIZE];
  int n = 0;
  lua_Debug d;
  for (int level = 0; n < HEAP_FRAMES && lua_getstack(L, level, &d); level++) {
    if (!lua_getinfo(L, "Sln", &d)) break;
    frame_name(&d, anon[n], sizeof anon[n]);
    fr[n].name = anon[n];
    snprintf(src[n], sizeof src[n], "%s", *d.what == 'C' ? "[C]" : d.short_src);
    fr[n].file = src[n];
    fr[n].line = d.currentline > 0 ? d.currentline : 0;
    n++;
  }
  uint32_t site = n ? site_id(fr, n) : 0, outside = 0;
  uint64_t owner = B->node.current ? B->node.current->id : 0;
  for (uint32_t i = 0; i < H.npending && !outside; i++) {
    halo_alloc_sample_t *r = halo_alloc_sample(&B->alloc, H.pending[i]);
    if (r && r->owner != owner) outside = label_site("(outside Lua)");
  }
  name_pending(&B->alloc, site, outside, owner);
}

/* The sentinel's finalizer: one more cycle done; the successor waits for the next. */
static void sentinel_new(lua_State *L) {
  uint32_t *g = lua_newuserdata(L, sizeof *g);
  *g = sentinel_gen;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H.sentinel_mt);
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

static int sentinel_gc(lua_State *L) {
  const uint32_t *g = lua_touserdata(L, 1);
  if (!g || *g != sentinel_gen || !H.sentinel_mt) return 0;
  H.gc_cycles++;
  if (halo__B) hb_gc_swept(halo__B);
  sentinel_new(L);
  return 0;
}

void hb_heap_start(halo_binding_t *B, lua_State *L, int opts) {
  halo_smap_init(&H.by_key);
  B->alloc.on_sample = on_sample;
  B->alloc.sample_ud = B;
  lua_getfield(L, opts, "heap_rate");
  lua_Number rate = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : HEAP_DEFAULT_RATE;
  lua_pop(L, 1);
  halo_alloc_sampling(&B->alloc, rate >= 0 && rate <= 1e15 ? (uint64_t)rate : HEAP_DEFAULT_RATE);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sentinel_gc);
  lua_setfield(L, -2, "__gc");
  H.sentinel_mt = luaL_ref(L, LUA_REGISTRYINDEX);
  sentinel_gen++;
  sentinel_new(L);
}

void hb_heap_free(halo_binding_t *B, lua_State *L) {
  (void)B;
  if (lua_gethook(L) == heap_hook) lua_sethook(L, NULL, 0, 0);
  luaL_unref(L, LUA_REGISTRYINDEX, H.sentinel_mt);
  for (uint32_t i = 0; i < H.nsites; i++) {
    for (int f = 0; f < H.sites[i].nframes; f++) free(H.sites[i].frames[f].name), free(H.sites[i].frames[f].file);
    free(H.sites[i].key);
  }
  free(H.sites);
  free(H.pending);
  halo_smap_destroy(&H.by_key);
  memset(&H, 0, sizeof H);
  sentinel_gen++;
}

static halo_binding_t *running(lua_State *L) {
  if (!halo__B) luaL_error(L, "halo: no node is running");
  return halo__B;
}

/* core.heap.rate([bytes]) -> the rate in force (before the change). */
static int l_rate(lua_State *L) {
  halo_binding_t *B = running(L);
  lua_pushnumber(L, (double)B->alloc.sample_rate);
  if (lua_isnoneornil(L, 1)) return 1;
  lua_Number r = luaL_checknumber(L, 1);
  if (r < 0 || r != floor(r) || r > 1e15) return luaL_argerror(L, 1, "expected a byte count >= 0");
  if (halo_alloc_sampling(&B->alloc, (uint64_t)r)) return hb_error(L, HALO_ENOMEM);
  return 1;
}

/* Records still waiting for their hook get "(unknown)" before a read. */
static void flush_pending(halo_binding_t *B) {
  if (!H.npending) return;
  uint32_t u = label_site("(unknown)");
  name_pending(&B->alloc, u, u, 0);
}

typedef struct heap_use { double objects, bytes; } heap_use_t;

/* Live figures per site (by id - 1) and per owner, from the records. */
static heap_use_t *inuse_by_site(halo_alloc_t *a) {
  heap_use_t *u = calloc(H.nsites + 1, sizeof *u);
  if (!u) return NULL;
  for (uint32_t i = 1; i < a->nsamples; i++) {
    halo_alloc_sample_t *r = &a->samples[i];
    if (!r->ptr || !r->site || r->site > H.nsites) continue;
    u[r->site - 1].objects += r->weight;
    u[r->site - 1].bytes += r->weight * (double)r->size;
  }
  return u;
}

static void push_frames(lua_State *L, const heap_site_t *s) {
  lua_createtable(L, s->nframes, 0);
  for (int f = 0; f < s->nframes; f++) {
    lua_createtable(L, 0, 3);
    SET_STR("name", s->frames[f].name);
    SET_STR("file", s->frames[f].file);
    SET_INT("line", s->frames[f].line);
    lua_rawseti(L, -2, f + 1);
  }
}

/* core.heap.profile() -> { rate, samples, dropped, sites = {...}, owners = {...} } */
static int l_profile(lua_State *L) {
  halo_binding_t *B = running(L);
  halo_alloc_t *a = &B->alloc;
  flush_pending(B);
  heap_use_t *u = inuse_by_site(a);
  if (!u) return hb_error(L, HALO_ENOMEM);
  lua_createtable(L, 0, 5);
  SET_INT("rate", a->sample_rate);
  SET_INT("samples", a->sampled);
  SET_INT("dropped", H.dropped);
  lua_createtable(L, (int)H.nsites, 0);
  int k = 0;
  for (uint32_t i = 0; i < H.nsites; i++) {
    heap_site_t *s = &H.sites[i];
    lua_createtable(L, 0, 8);
    SET_STR("name", s->frames[0].name);
    SET_STR("file", s->frames[0].file);
    SET_INT("line", s->frames[0].line);
    SET_INT("alloc_objects", llround(s->alloc_objects));
    SET_INT("alloc_bytes", llround(s->alloc_bytes));
    SET_INT("inuse_objects", llround(u[i].objects));
    SET_INT("inuse_bytes", llround(u[i].bytes));
    push_frames(L, s);
    lua_setfield(L, -2, "frames");
    lua_rawseti(L, -2, ++k);
  }
  lua_setfield(L, -2, "sites");
  free(u);
  /* per owner: live sampled bytes (unsampled), keyed by the owner's PID */
  lua_newtable(L);
  halo_imap_t by_owner;
  halo_imap_init(&by_owner);
  heap_use_t *ou = calloc(a->nsamples + 1, sizeof *ou);
  uint32_t nown = 0;
  uint64_t *ids = calloc(a->nsamples + 1, sizeof *ids);
  for (uint32_t i = 1; ou && ids && i < a->nsamples; i++) {
    halo_alloc_sample_t *r = &a->samples[i];
    if (!r->ptr || !r->site) continue;
    uint32_t o = (uint32_t)(uintptr_t)halo_imap_get(&by_owner, r->owner + 1);
    if (!o) {
      if (halo_imap_put(&by_owner, r->owner + 1, (void *)(uintptr_t)(nown + 1))) continue;
      ids[nown] = r->owner;
      o = ++nown;
    }
    ou[o - 1].objects += r->weight;
    ou[o - 1].bytes += r->weight * (double)r->size;
  }
  for (uint32_t o = 0; o < nown; o++) {
    lua_createtable(L, 0, 3);
    if (ids[o]) hb_push_pid(B, L, halo_node_pid(&B->node, ids[o]));
    else lua_pushliteral(L, "");
    lua_setfield(L, -2, "pid");
    SET_INT("inuse_objects", llround(ou[o].objects));
    SET_INT("inuse_bytes", llround(ou[o].bytes));
    lua_rawseti(L, -2, (int)o + 1);
  }
  halo_imap_destroy(&by_owner);
  free(ou);
  free(ids);
  lua_setfield(L, -2, "owners");
  return 1;
}

uint64_t hb_heap_cycles(void) { return H.gc_cycles; }

/* core.heap.stats() -> allocator and collector figures for runtime_stats. */
static int l_stats(lua_State *L) {
  halo_binding_t *B = running(L);
  halo_alloc_t *a = &B->alloc;
  size_t rss = 0;
  uv_resident_set_memory(&rss);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  lua_createtable(L, 0, 12);
  SET_INT("processes", halo_node_alive(&B->node));
  SET_INT("cpus", cpus > 0 ? cpus : 1);
  SET_INT("lua_heap", (double)lua_gc(L, LUA_GCCOUNT, 0) * 1024.0 + (double)lua_gc(L, LUA_GCCOUNTB, 0));
  SET_INT("kept", a->kept_bytes);
  SET_INT("allocated", a->allocated);
  SET_INT("freed", a->freed);
  SET_INT("gc_cycles", H.gc_cycles);
  SET_INT("rss", rss);
  SET_INT("heap_rate", a->sample_rate);
  hb_gc_push_stats(B, L);
  lua_setfield(L, -2, "gc");
  return 1;
}

void hb_open_heap(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"rate", l_rate}, {"profile", l_profile}, {"stats", l_stats}, {"pacing", hb_gc_pacing}, {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
