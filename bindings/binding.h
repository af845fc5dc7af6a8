/*
 * Shared by the files of bindings/: the per-node binding state, payload
 * anchoring and the helpers that turn core results into Lua values.
 * Internal to bindings/.
 */
#ifndef HALO_BINDING_H
#define HALO_BINDING_H

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "alloc.h"
#include "errors.h"
#include "node.h"
#include "remote.h"

/* Payload tags. */
enum { PL_NONE, PL_NIL, PL_FALSE, PL_TRUE, PL_NUMBER, PL_ANCHOR, PL_REASON };

/* Reasons common enough to travel as constants (tag PL_REASON, val = index)
 * instead of an anchored string per termination. */
extern const char *const hb_reasons[];
enum { HB_REASON_NORMAL, HB_REASON_SHUTDOWN, HB_REASON_KILL, HB_REASON_UNREGISTERED,
       HB_REASON_NOCONN, HB_REASON_NOMEM, HB_NREASONS };

/* Added to the kind of an exit or down message that carries the bare reason
 * (HALO_MF_REASON) when it is handed to Lua. */
#define HB_MSG_BARE 16

/* Host references each process record owns (halo_proc_t.href). */
enum { HREF_CO, HREF_INST, HREF_PID, HREF_ENV };

/** A binding file's interest in the ends of processes and of the node, one
 *  static hb_watch_t per file: free runs when a process record is freed
 *  (before its Lua side is released), stopped when the node stops, after
 *  which the watch is dropped (hb_watch adds it again for the next node);
 *  ended when a process ends, a zombee included (whose record is freed only
 *  when its wait ends). Any may be NULL. */
typedef struct hb_watch {
  struct hb_watch *next;
  void (*free)(halo_node_t *n, halo_proc_t *p);
  void (*stopped)(halo_node_t *n);
  void (*ended)(halo_node_t *n, halo_proc_t *p);
} hb_watch_t;

/* The collector's pacing at slice boundaries (bindings/gc.c). */
typedef struct hb_gc {
  int on;                 /* halo paces the collector (node option gc_pacing, default on) */
  int active;             /* a cycle is under way */
  uint64_t total0;        /* LuaJIT's heap bytes when the allocator was installed */
  uint64_t next_total;    /* heap bytes at which the next cycle is due */
  uint64_t last_alloc;    /* alloc.allocated at the last step */
  uint64_t headroom;      /* bytes from the heap to LuaJIT's trigger after the last step */
  uint64_t live;          /* what the last cycle left: the heap it starts the next one from */
  uint64_t low;           /* the least heap after a step of the running cycle (0: none yet) */
  uint64_t swept;         /* the heap when the last cycle had swept (0: none since the last cycle ended) */
  uint64_t steps, cycles; /* paced steps, cycles they ended */
  uint64_t sentinel;      /* hb_heap_cycles() after the last paced step: a change
                             between steps is a cycle ended by someone else */
  uint64_t wall_total;    /* time in paced steps */
  uint64_t last_pause_ns, max_pause_ns; /* wall time of a step */
  uint64_t wall0, idle0;  /* uv_hrtime and the loop's idle time at node start */
} hb_gc_t;

typedef struct halo_binding {
  halo_node_t node;
  uv_loop_t loop;
  lua_State *L;         /* thread that runs the node (inside core.node.run) */
  lua_State *cur;       /* thread whose C code runs right now; only the gate and
                           hook_run change it for longer than a binding call, and
                           both restore it (so it never outlives its thread) */
  int gate_ref[2];      /* registry: the gate's traceback handler and trampoline */
  int test_fail_hooks;  /* test knob: gate calls still to run with allocations failing ... */
  char test_fail_what[48]; /* ... those named so, or all when empty */
  int in_log_record;    /* building a log record for a process logger */
  uint64_t *doomed;     /* processes to end with "out of memory" (a hook failed for them) */
  uint32_t ndoomed, capdoomed;
  uv_timer_t doom;
  int body_ref;         /* registry: the behavior body function */
  int mt_cache_ref;     /* registry: behavior -> instance metatable (weak keys) */
  int *free_keys;       /* registry keys this node reserved and is not using */
  uint32_t nfree, capfree;
  uint32_t nkeys;       /* registry keys reserved (in use + free) */
  int64_t anchored;     /* payload anchors held */
  int64_t refs;         /* process refs held */
  halo_alloc_t alloc;
  hb_gc_t gc;
  lua_Alloc old_allocf;
  void *old_allocud;
  uv_signal_t sigint, sigterm;
  uv_timer_t deadline;
  int use_signals, use_deadline, timed_out;
  char *entry_error;    /* failure of the entry process (with traceback) */
  char pid_prefix[16];  /* "<CCCCCCCC.0." of this node, for the fast PID parse */
  int co_pool[256];     /* registry refs of finished coroutines, ready for reuse */
  int nco_pool;
  hb_watch_t *watches;  /* the binding files' watches, the latest first */
  int reason_key[8];    /* registry keys of the hb_reasons strings */
  int pid_cache_key[256]; /* registry keys of recently seen PID strings of ended processes */
  uint64_t pid_cache[256];
  uint64_t entry_id;
  struct halo_net *net; /* the transport, once started */
  struct halo_registrar *registrar; /* how it finds other nodes, when it does */
  struct halo_joiner *joiner;       /* nodes of other hosts to join (--join) */
  char codec_err[160];  /* why the last payload could not be encoded for the wire */
  int registrar_info;   /* registry key: a Lua registrar's RegistrarInfo (etcd), or 0 */
  halo_remote_t remote; /* what other nodes may spawn and start here */
} halo_binding_t;

/** The node running in this Lua state, or NULL. */
extern halo_binding_t *halo__B;

/** A body run through the gate on thread L; ud is the caller's context. It
 *  returns 0 and hands results back through ud (what it pushes is dropped). */
typedef int (*hb_gate_fn)(lua_State *L, void *ud);

/** The one gate from C into Lua (Tarantool's luaT_call): runs fn(L, ud) with
 *  lua_pcall and a traceback handler on hb_L(B), with B->cur restored after
 *  it, so no error or out-of-memory longjmps through core/ or libuv and no
 *  thread pointer set inside outlives the call. On failure the error is
 *  logged against p (NULL: the node) naming what; when it was out of memory
 *  p, if alive, is ended with "out of memory" once the loop is back at the
 *  top (hb_end_later). Returns 0 or the Lua status. */
int hb_gate(halo_binding_t *B, halo_proc_t *p, const char *what, hb_gate_fn fn, void *ud);
/** Installs the node hooks that go through the gate and the gate's
 *  registry refs (node start) ... */
void hb_gate_start(halo_binding_t *B, lua_State *L);
/** ... closes its timer handle (node stopped) ... */
void hb_gate_stop(halo_binding_t *B);
/** ... and drops its refs once the loop has ended. */
void hb_gate_free(halo_binding_t *B, lua_State *L);
/** What a process coroutine yields once its init is done (core.node.READY). */
extern char hb_ready_token;
/** Ends p with reason "out of memory" from a fresh loop turn (safe to call
 *  from inside any core operation; nothing Lua is allocated). */
void hb_end_later(halo_binding_t *B, halo_proc_t *p);

/** The thread to push on when the core calls up. */
static inline lua_State *hb_L(halo_binding_t *B) { return B->cur ? B->cur : B->L; }

/** Registry keys: the value on top is popped and stored in the registry at a
 *  key this node owns; the key is returned. Keys are reserved once through
 *  luaL_ref and then recycled by a C free list, so storing or reading a value
 *  is one rawseti or rawgeti. */
int hb_key(halo_binding_t *B, lua_State *L);
/** Makes sure the next n hb_key calls take free keys: they then never raise. */
void hb_key_reserve(halo_binding_t *B, lua_State *L, uint32_t n);
/** Gives a key back (its value is dropped). */
void hb_key_free(halo_binding_t *B, lua_State *L, int key);
/** Reserves the node's fixed keys (reasons, PID cache). */
void hb_keys_init(halo_binding_t *B, lua_State *L);
/** Returns the fixed keys and every free key to the registry (node close). */
void hb_keys_close(halo_binding_t *B, lua_State *L);

/* Field setters for the table on top of L (introspection tables). */
#define SET_INT(k, v) (lua_pushnumber(L, (double)(v)), lua_setfield(L, -2, k))
#define SET_STR(k, v) (lua_pushstring(L, v), lua_setfield(L, -2, k))
#define SET_BOOL(k, v) (lua_pushboolean(L, v), lua_setfield(L, -2, k))

/** Anchors the value at idx and returns its payload. */
halo_payload_t hb_anchor(halo_binding_t *B, lua_State *L, int idx);
/** Pushes a payload's value; consume releases its anchor. */
void hb_push_payload(halo_binding_t *B, lua_State *L, halo_payload_t pl, int consume);
/** Releases a payload without pushing it. */
void hb_release(halo_binding_t *B, halo_payload_t pl);
/** Size estimate of the value at idx in bytes. */
uint32_t hb_size(lua_State *L, int idx);

/** Pushes the PID string of pid when it is at hand (a live local process or
 *  a recently ended one: nothing is allocated) and returns 1, else 0. */
int hb_push_pid_cached(halo_binding_t *B, lua_State *L, halo_pid_t pid);
/** Pushes the PID string of pid (cached for live local processes). */
void hb_push_pid(halo_binding_t *B, lua_State *L, halo_pid_t pid);
/** Pushes nil, "ECODE: text", "ECODE" and returns 3. */
int hb_error(lua_State *L, int code);
/** Pushes nil, "ECODE: <formatted>", "ECODE" and returns 3. */
int hb_errorf(lua_State *L, int code, const char *fmt, ...);

/** The running node or a Lua error. */
halo_binding_t *hb_node(lua_State *L);
/** The current process, or a Lua error naming the function when there is none
 *  or when L is not that process's own coroutine (own = 1). */
halo_proc_t *hb_self(lua_State *L, halo_binding_t *B, const char *fn, int own);

/** Target parsed from a string: a PID, an alias, or a registered name. */
typedef struct hb_target {
  int kind;          /* HALO_TARGET_* */
  halo_pid_t pid;    /* PID: as parsed; NAME/ALIAS: the owner when found */
  const char *name;
  uint64_t alias;
  halo_proc_t *proc; /* local process behind it, or NULL */
} hb_target_t;

/** Parses the target at idx. Returns 0, or HALO_ENOPROC / HALO_EALIASUNKNOWN
 *  for a local name or alias that does not exist (t->kind is set anyway). */
int hb_target(lua_State *L, halo_binding_t *B, int idx, hb_target_t *t);

/** The local process named by the target at idx, or NULL with *err set
 *  (remote targets: HALO_ENOTALLOWED). */
halo_proc_t *hb_check_proc(lua_State *L, halo_binding_t *B, int idx, int *err);
/** Pushes true and returns 1 when rc is 0, else the error triple of rc. */
static inline int hb_ok_or_error(lua_State *L, int rc) {
  if (rc) return hb_error(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}
/** Pushes a new table that JSON encoders print as [] when it stays empty. */
void hb_new_array(lua_State *L, int n);
/** Pushes a shallow copy of the table on top (which stays below it). */
void hb_copy_table(lua_State *L);

/** MessagePack codec (codec.c): encodes the value at idx into w; 0 or a
 *  HALO_E* code with a reason in err. */
struct halo_mpw;
int hb_encode(lua_State *L, int idx, struct halo_mpw *w, int max_depth, char *err, size_t errlen);
/** Decodes exactly one value from buf and pushes it; 0 or a code (nothing pushed). */
int hb_decode(lua_State *L, const void *buf, size_t len, int max_depth, char *err, size_t errlen);
void hb_open_codec(lua_State *L);

/** Transport (net.c): starts it with a cookie, listening on "host:port"
 *  (NULL: 127.0.0.1, the default port or the next free one); pushes the
 *  port, or nil, err, code. */
int hb_net_start(lua_State *L, halo_binding_t *B, const char *cookie, const char *listen, const char *registrar);
/** 0 when registrar names a kind of registrar halo has ("embedded",
 *  "embedded:PORT", "none"), else -1 with *why set. */
int hb_registrar_check(const char *registrar, int *port, const char **why);
/** Joins node spec ("name@host[:port]") through its host's registrar:
 *  0, or an error code. */
int hb_net_join(halo_binding_t *B, const char *spec);
/** Closes connections and the acceptor (node stop); hb_net_free after the loop ends. */
void hb_net_stop(halo_binding_t *B);
/** 0 when addr is "host:port". */
int hb_net_check_addr(const char *addr);
/** Frees the transport and drops the Lua registrar info (node close). */
void hb_net_free(halo_binding_t *B, lua_State *L);
void hb_open_net(lua_State *L);
/** HTTP client (http.c): core.http.wait, start, cancel, stats. */
void hb_open_http(lua_State *L);
void hb_open_child(lua_State *L);
/** HTTP server (httpd.c): core.httpd.new, route, respond, ... */
void hb_open_httpd(lua_State *L);
/** Metrics (metrics.c): core.metrics ... */
void hb_open_metrics(lua_State *L);
/** File facts for hot reload (fs.c): core.fs.stat, core.fs.scandir. */
void hb_open_fs(lua_State *L);
/** Process stacks as text (stacks.c): core.stacks.dump, core.stacks.process. */
void hb_open_stacks(lua_State *L);
/** pprof profile.proto encoding and the CPU profiler hooks (pprof.c): core.pprof. */
/** core.heap (heap.c): the heap profile and runtime figures; start installs
 *  the sampling hooks on B's allocator at the rate of the option heap_rate
 *  of the table at index opts (node start), free drops the sites (node end,
 *  once the allocator is uninstalled). */
void hb_open_heap(lua_State *L);
void hb_heap_start(halo_binding_t *B, lua_State *L, int opts);
/** The collector's pacing (bindings/gc.c): start with the node's options at
 *  index opts (once the allocator is installed), a step after each slice
 *  when one is due, stop (LuaJIT's own trigger again), the figures as a
 *  table on top of L. */
void hb_gc_start(halo_binding_t *B, lua_State *L, int opts);
void hb_gc_slice(halo_binding_t *B, struct halo_proc *p); /* after p's slice, not nested in another */
void hb_gc_stop(halo_binding_t *B, lua_State *L);
void hb_gc_push_stats(halo_binding_t *B, lua_State *L);
/** The sentinel's finalizer ran: a cycle has swept (bindings/heap.c). */
void hb_gc_swept(halo_binding_t *B);
/** core.heap.pacing([on]) -> whether the collector is paced (switching it
 *  at run time is for benchmarks: halo run --no-gc-pacing is the switch). */
int hb_gc_pacing(lua_State *L);
/** Collector cycles the heap sentinel has seen end (bindings/heap.c). */
uint64_t hb_heap_cycles(void);
void hb_heap_free(halo_binding_t *B, lua_State *L);
void hb_open_pprof(lua_State *L);
/** JSON encoder (json.c): core.json.setup, core.json.encode. */
void hb_open_json(lua_State *L);
/** ... and the node's Prometheus exposition (built-in and custom families)
 *  in a malloc'ed buffer the caller frees: 0 or HALO_ENOMEM. */
int hb_metrics_expose(halo_binding_t *B, char **body, size_t *len);
/** Metric update for the FFI (op 0 add, 1 set, 2 observe, n <= 2 label
 *  values): 0, -1 when nothing was done (the Lua C API path then reports
 *  why), or the update's error code. Never raises. */
int hb_metrics_update(int op, double id, double v, int n, const char *a, size_t al, const char *b, size_t bl);

/** Puts w on B's node until it stops (a no-op when it is on already). */
void hb_watch(halo_binding_t *B, hb_watch_t *w);

/** Registers the functions of each file into the table on top (the
 *  sub-table core.<file> of module halo.core). */
void hb_open_node(lua_State *L);
void hb_open_gate(lua_State *L);
void hb_open_process(lua_State *L);
void hb_open_introspect(lua_State *L);
void hb_open_pool(lua_State *L);
void hb_open_event(lua_State *L);
void hb_open_log(lua_State *L);
void hb_open_remote(lua_State *L);

/** Remote spawn (remote.c): sets the Flags fields EnableRemoteSpawn and
 *  EnableRemoteApplicationStart of the table on top ... */
void hb_remote_push_flags(lua_State *L, halo_binding_t *B);
/** ... and NetworkInfo's EnabledSpawn ({Name, Behavior, Nodes}) and
 *  EnabledApplicationStart ({Name, Nodes}), sorted by Name. */
void hb_remote_push_enabled(lua_State *L, halo_binding_t *B);

/** Formats a local PID "<CCCCCCCC.0.N>" without printf; returns its length. */
size_t hb_format_local_pid(halo_binding_t *B, char *buf, uint64_t id);

/** Pushes p's PID string. */
void hb_push_proc_pid(halo_binding_t *B, lua_State *L, halo_proc_t *p);

/** Monotonic milliseconds; reached from Lua through the FFI (core.node.FFI_NOW). */
double halo_now_ms(void);
/** 1 when a record of level would pass the running source's level (FFI). */
int halo_log_enabled(int level);
/** halo.send of a number to a local process without the Lua C API; 0 when
 *  queued, nonzero (nothing done) when the regular path must handle it. */
int halo_send_number(const char *to, size_t len, double v);

/** Logs a record with p (or the node, when NULL) as its source. */
void hb_log(halo_binding_t *B, halo_proc_t *p, int level, const char *msg, size_t len);

#endif
