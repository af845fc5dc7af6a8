/*
 * The node: one per OS process in production (tests may run several one after
 * another). It owns the process table, names, aliases, the run queue on a
 * libuv loop, timers, counters and the log. The host layer plugs in through
 * halo_node_hooks_t; that is the only way the core calls up.
 */
#ifndef HALO_NODE_H
#define HALO_NODE_H

#include <stdint.h>
#include <uv.h>

#include "alloc.h"
#include "log.h"
#include "mailbox.h"
#include "map.h"
#include "pid.h"
#include "process.h"

/** A watcher being told that a target ended (link: EXIT, monitor: DOWN). */
typedef struct halo_signal_info {
  int kind;          /* HALO_MSG_EXIT or HALO_MSG_DOWN */
  int target_kind;   /* HALO_TARGET_* */
  halo_pid_t pid;    /* the process behind the target (an event's producer) */
  const char *name;  /* HALO_TARGET_NAME, HALO_TARGET_EVENT */
  uint64_t alias;    /* HALO_TARGET_ALIAS */
  int notice;        /* HALO_NOTICE_*: a notice to an event's producer (no reason) */
  uint64_t to;       /* the local process the payload is for, 0 when not known */
} halo_signal_info_t;

enum { HALO_NOTICE_NONE, HALO_NOTICE_EVENT_START, HALO_NOTICE_EVENT_STOP };

struct halo_mpw;

typedef struct halo_node_hooks {
  /** Runs p: delivers msg (p waits in RECEIVE), or with msg == NULL starts
   *  init (first run) or continues a suspended callback (p->wake says why).
   *  Returns enum halo_run; on EXITED the reason is in p->result. */
  int (*run)(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg);
  /** Runs p's terminate callback (p is TERMINATED, still registered). */
  void (*terminate)(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason);
  /** Releases host data of a record about to be freed. */
  void (*free)(halo_node_t *n, halo_proc_t *p);
  /** Anchors the same value once more (a second owner). */
  halo_payload_t (*dup)(halo_node_t *n, const halo_payload_t *pl);
  /** Releases a payload that will not be delivered. */
  void (*release)(halo_node_t *n, halo_payload_t pl);
  /** Builds the payload of an exit or down message for one watcher (reason
   *  is NULL for an event notice). */
  halo_payload_t (*signal)(halo_node_t *n, const halo_signal_info_t *info,
                           const halo_payload_t *reason);
  /** Makes a payload of a reason text ("normal", "kill", "shutdown", ...). */
  halo_payload_t (*reason)(halo_node_t *n, const char *text);
  /** Encodes a payload for the wire (MessagePack into w); 0 or an error. */
  int (*encode)(halo_node_t *n, halo_payload_t pl, struct halo_mpw *w);
  /** Decodes bytes from the wire into a payload the receiver will own. */
  int (*decode)(halo_node_t *n, const void *buf, size_t len, halo_payload_t *out);
  /** Builds the payload of a log record for a process logger (NULL: none). */
  halo_payload_t (*log_record)(halo_node_t *n, const halo_log_record_t *rec);
  /** Called once when the node has stopped (every process gone). */
  void (*stopped)(halo_node_t *n);
  /** p ended: TERMINATED, or ZOMBEE (it never runs again, its record stays
   *  until its wait ends); its links and monitors have fired. May be NULL. */
  void (*ended)(halo_node_t *n, halo_proc_t *p);
} halo_node_hooks_t;

/** Remote delivery: the cluster layer installs one. */
typedef struct halo_route {
  int (*send)(void *ud, halo_node_t *n, halo_proc_t *from, halo_pid_t to, int kind, int queue,
              uint64_t ref, halo_payload_t pl, uint32_t size);
  /** Sends to a registered name on node `node`. Same ownership as send. */
  int (*send_name)(void *ud, halo_node_t *n, halo_proc_t *from, uint32_t node, const char *name, int kind,
                   int queue, uint64_t ref, halo_payload_t pl, uint32_t size);
  /** Asks target's node to add (or drop) a link/monitor from local watcher
   *  id to target, or (name not NULL) to the process registered there as name. */
  int (*rel)(void *ud, halo_node_t *n, int add, int type, uint64_t watcher, halo_pid_t target, uint64_t ref,
             const char *name);
  void *ud;
} halo_route_t;

typedef struct halo_node_counters {
  uint64_t spawned, spawn_failed, terminated;
  uint64_t send_errors_local, send_errors_remote;
  uint64_t call_errors_local, call_errors_remote;
  uint64_t late_replies;
  uint64_t events_published, events_local_sent, events_remote_sent;
  uint64_t events_received; /* event messages from other nodes (the transport counts them) */
} halo_node_counters_t;

struct halo_node {
  uv_loop_t *loop;
  char *name;
  uint32_t crc;
  int64_t creation;       /* unix seconds at start */
  uint64_t t_start;       /* halo_clock_ns() at start */
  uint64_t now;           /* last clock reading of the scheduler */
  halo_proc_t *open;      /* process whose batch leaves its running time open */
  uint64_t open_t0;       /* ... since this reading */

  halo_imap_t procs;      /* id -> halo_proc_t */
  halo_proc_t *first, *last;
  uint64_t next_id;
  uint32_t nprocs;        /* records in the table, zombees included */
  uint32_t state_count[6];
  halo_proc_t *free_procs;/* recycled records */
  uint32_t nfree_procs;

  halo_smap_t names;
  halo_smap_t events;     /* name -> halo_event_t (event.h) */
  halo_imap_t aliases;
  uint64_t next_alias, next_ref;
  halo_smap_t strings;    /* interned behavior/kind/application names, reference-counted */
  const char *intern_recent[4]; /* last interned strings looked up */
  uint32_t intern_next;

  halo_msgpool_t msgs;

  /* run queue and scheduler */
  halo_proc_t *rq_head, *rq_tail;
  halo_proc_t *current;   /* the process whose code runs now, or NULL */
  uv_idle_t idle;
  uv_prepare_t prepare;
  uv_check_t check;
  uint32_t batch;         /* messages per process per turn */
  uint64_t slice_ns;      /* scheduler time per loop iteration */

  /* timers */
  halo_imap_t timers;     /* id -> send_after timer */
  uint64_t next_timer;
  halo_timer_t *free_timers;
  uint32_t ntimers;       /* armed timers of every kind */
  uint32_t nhandles;      /* uv timer handles allocated */

  halo_alloc_t *alloc;    /* optional accounting allocator */
  halo_log_t log;
  halo_node_hooks_t hooks;
  void *host;
  halo_route_t *route;
  halo_node_counters_t counters;

  int stopping;           /* stop requested */
  int stopped;
  int exit_code;
  int auto_stop;          /* stop when the last process ends */

  /* watchdog: written by the loop thread, read by the watchdog thread */
  uint64_t wd_cb_seq, wd_cb_start;
  halo_proc_t *wd_cb_proc; /* innermost process running a callback, or NULL */
  uint64_t wd_busy_since;
  int wd_in_poll;
  void *watchdog;
  uv_mutex_t wd_mu;        /* held by the watchdog while it reads the record it
                              reports, by the loop while it frees or renames one */
};

/** Initializes a node named name ("name@host") on loop. */
int halo_node_init(halo_node_t *n, uv_loop_t *loop, const char *name);

/** Releases everything; the node must have stopped and its loop run until
 *  the handles closed (halo_node_close() then uv_run). */
void halo_node_destroy(halo_node_t *n);

/** Starts the scheduler's loop handles. */
int halo_node_start(halo_node_t *n);

/** Requests a stop with an exit code: every process is terminated
 *  (children first, reason "shutdown") at the next safe point. */
void halo_node_stop(halo_node_t *n, int exit_code);

/** Closes the node's libuv handles (after it stopped). */
void halo_node_close(halo_node_t *n);

/** Interns a string: returns the node's copy with one more reference (NULL
 *  when out of memory). Each reference is given back with halo_node_unintern. */
const char *halo_node_intern(halo_node_t *n, const char *s);
/** Names interned for the node's whole life (spawn defaults). */
extern const char *const halo_node_default_names[5];
/** One more reference to an interned string (NULL passes). */
const char *halo_node_intern_ref(const char *s);
/** Gives a reference back; the string is freed with its last one. */
void halo_node_unintern(halo_node_t *n, const char *s);

/** The id the next successful halo_proc_spawn() gives its process. */
static inline uint64_t halo_proc_next_id(const halo_node_t *n) { return n->next_id + 1; }

/** The node's PID for a local id. */
static inline halo_pid_t halo_node_pid(const halo_node_t *n, uint64_t id) {
  halo_pid_t p = {n->crc, id};
  return p;
}

/** Live records (excluding zombees). */
static inline uint32_t halo_node_alive(const halo_node_t *n) {
  return n->nprocs - n->state_count[5];
}

/** The loop thread takes wd_mu around changes to what a watchdog report
 *  reads of a record (name, interned names, the record itself); no-ops
 *  while no watchdog runs. */
void halo__node_wd_lock(halo_node_t *n);
void halo__node_wd_unlock(halo_node_t *n);

/** Index of a state in state_count[]. */
int halo_state_index(int state);

#endif
