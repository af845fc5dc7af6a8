/*
 * Processes: the record the core keeps per actor, spawn, send, call, reply,
 * exit, kill, names and aliases. The host layer (bindings/) runs the
 * process's code; the core owns its identity, mailbox, state and accounting.
 */
#ifndef HALO_PROCESS_H
#define HALO_PROCESS_H

#include <stdint.h>

#include "mailbox.h"
#include "pid.h"

typedef struct halo_node halo_node_t;
typedef struct halo_proc halo_proc_t;
typedef struct halo_timer halo_timer_t;
typedef struct halo_proc_ext halo_proc_ext_t;

/* State values follow the reference's numbering. */
enum halo_state {
  HALO_STATE_INIT = 1,
  HALO_STATE_SLEEP = 2,
  HALO_STATE_RUNNING = 4,
  HALO_STATE_WAIT = 8, /* "wait response" */
  HALO_STATE_TERMINATED = 16,
  HALO_STATE_ZOMBEE = 32,
};

/** What a suspended process waits for. */
enum halo_wait {
  HALO_WAIT_NONE,    /* running, or not started */
  HALO_WAIT_RECEIVE, /* idle: the next message resumes it */
  HALO_WAIT_REPLY,   /* call or inspect: the reply with wait_ref resumes it */
  HALO_WAIT_SLEEP,   /* sleep inside a callback */
  HALO_WAIT_SPAWN,   /* the init of child wait_ref */
};

/** What a HALO_WAIT_REPLY waits for: set when it parks, read by stack dumps. */
enum halo_wait_for { HALO_FOR_CALL, HALO_FOR_INSPECT, HALO_FOR_HTTP, HALO_FOR_RELATION };

/** Why a suspended process was made runnable again. */
enum halo_wake { HALO_WAKE_NONE, HALO_WAKE_REPLY, HALO_WAKE_TIMEOUT, HALO_WAKE_ERROR,
                 HALO_WAKE_ENDED /* the callee of a call ended first: result holds its reason */ };

enum halo_proc_flag {
  HALO_PF_RUNQ = 1,     /* in the run queue */
  HALO_PF_TRAP = 2,     /* trap exit */
  HALO_PF_FUNC = 4,     /* a function process: no init/dispatch loop */
  HALO_PF_ENTRY = 8,    /* the node's entry process */
  HALO_PF_DEAD = 16,    /* terminate has run; only a zombee record remains */
  HALO_PF_ACTIVE = 32,  /* its code is on the C stack right now (maybe nested) */
  HALO_PF_STARTED = 64, /* init is done */
  HALO_PF_LINK_CHILD = 128, /* the parent links to it once init is done */
};

struct halo_proc {
  uint64_t id;
  halo_proc_t *runq_next;
  halo_proc_t *prev, *next; /* all processes in spawn order */
  halo_mailbox_t mb;
  uint8_t state, wait, wake, flags;
  uint8_t wait_state; /* state to return to when the wait ends */
  int8_t log_level;
  uint8_t depth;      /* nesting of synchronous spawns (at most MAX_SPAWN_DEPTH + 1: bindings/process.c) */
  uint8_t wait_for;   /* HALO_WAIT_REPLY: enum halo_wait_for */
  uint64_t wait_ref;  /* awaited reply ref, or child id for HALO_WAIT_SPAWN */
  halo_pid_t wait_pid; /* HALO_WAIT_REPLY: the callee (id 0: a name on node wait_pid.node) */
  halo_timer_t *wait_timer;
  halo_payload_t result; /* reply value, or the exit reason once EXITED */
  /* accounting */
  uint64_t msgs_in, msgs_out;
  uint64_t running_ns, init_ns, wakeups;
  uint64_t alloc_bytes;
  uint64_t t_spawn, t_state, t_suspend;
  halo_pid_t parent, leader;
  char *name;            /* registered name, owned */
  const char *behavior;  /* interned by the node */
  const char *kind;      /* interned */
  const char *application; /* interned, "" outside applications */
  halo_proc_ext_t *ext;  /* aliases, links, monitors, timers; NULL until used */
  void *host;            /* host layer: its coroutine */
  int32_t href[4];       /* host layer: registry refs it owns */
};

typedef struct halo_spawn_opts {
  const char *name;      /* register under this name, or NULL */
  halo_proc_t *parent;   /* NULL: the node itself */
  halo_pid_t leader;     /* id 0: inherit the parent's leader */
  uint32_t mailbox_limit;/* per queue, 0 = unlimited */
  int log_level;         /* HALO_LOG_DEFAULT: the parent's (or the node's) */
  const char *behavior;
  const char *kind;      /* NULL: "actor" */
  const char *application;
  int link_parent;       /* the child gets an exit signal when the parent dies */
  int link_child;        /* the parent gets an exit signal when the child dies (set up
                            once init succeeds: a failed spawn does not end the parent) */
  int func;              /* function process */
  int monitor;           /* the parent monitors the child (set up before init) */
} halo_spawn_opts_t;

/** Creates a process in state init and registers it (and its name).
 *  The host then attaches its code and calls halo_proc_start(). */
int halo_proc_spawn(halo_node_t *n, const halo_spawn_opts_t *o, halo_proc_t **out);

/** Result codes of halo_proc_start() and of the host's run hook. */
enum halo_run { HALO_RUN_IDLE, HALO_RUN_SUSPENDED, HALO_RUN_EXITED };

/** Runs the process's init now (nested inside the caller when there is one).
 *  Returns HALO_RUN_IDLE once init is done, HALO_RUN_SUSPENDED when init
 *  waits (a spawner should then wait with halo_proc_wait_spawn()), or
 *  HALO_RUN_EXITED when init failed: the record is gone and *reason holds
 *  the failure (owned by the caller). */
int halo_proc_start(halo_node_t *n, halo_proc_t *p, halo_payload_t *reason);

/** Looks a local process up by id. */
halo_proc_t *halo_proc_find(halo_node_t *n, uint64_t id);

/** Sends a message. On success the payload belongs to the receiver; on
 *  failure it stays with the caller. from may be NULL (the node). */
int halo_send(halo_node_t *n, halo_proc_t *from, halo_pid_t to, int kind, int queue,
              uint64_t ref, halo_payload_t pl, uint32_t size);

/** Logs msg[0..len) with p (NULL: the node) as its source, if p's level lets it through. */
void halo_log_proc_msg(halo_node_t *n, halo_proc_t *p, int level, const char *msg, size_t len);
/** The same, printf-style. */
void halo_log_proc(halo_node_t *n, halo_proc_t *p, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** halo_call to a name registered on another node (through the route). */
int64_t halo_call_name(halo_node_t *n, halo_proc_t *p, uint32_t node, const char *name, int kind, int queue,
                       halo_payload_t request, uint32_t size, uint64_t timeout_ms);

/** Sends to a name registered on another node (through the route). Same
 *  contract as halo_send; counted as a remote send error on failure. */
int halo_send_name(halo_node_t *n, halo_proc_t *from, uint32_t node, const char *name, int kind, int queue,
                   halo_payload_t pl, uint32_t size);

/** Sends to a local process record (no lookup). Same contract as halo_send. */
int halo_send_proc(halo_node_t *n, halo_proc_t *from, halo_proc_t *to, int kind, int queue,
                   uint64_t ref, halo_payload_t pl, uint32_t size);

/** Starts a call from p (which must be running): sends a request with a
 *  fresh ref, then p waits for the reply. Returns the ref (> 0) or an error
 *  (HALO_ENOTALLOWED: a call to itself, an inspect of another node's process:
 *  its node refuses it, a node inspects only its own). */
int64_t halo_call(halo_node_t *n, halo_proc_t *p, halo_pid_t to, int kind, int queue,
                  halo_payload_t request, uint32_t size, uint64_t timeout_ms);

/** Ends caller's pending call ref at once because its callee ended: the
 *  call returns the callee's reason (a copy of *reason; the caller's
 *  halo.call gives nil, "ETERMINATED: process terminated: <reason>",
 *  "ETERMINATED", reason). 0, or HALO_EIGNORED when caller no longer waits
 *  for ref. Local callees trigger it themselves when they terminate. */
int halo_call_abort(halo_node_t *n, halo_proc_t *caller, uint64_t ref, const halo_payload_t *reason);

/** Aborts (halo_call_abort) every local call waiting on callee; callee.id
 *  0 means every callee on node callee.node (its link went away). For the
 *  cluster layer: a down of a remote callee, or a lost node. O(processes). */
void halo_call_abort_all(halo_node_t *n, halo_pid_t callee, const halo_payload_t *reason);

/** Replies to a waiting caller; 0, HALO_EIGNORED (nobody waits for ref:
 *  counted as a late reply, payload stays with the caller) or HALO_ENOPROC. */
int halo_reply(halo_node_t *n, halo_proc_t *from, halo_pid_t to, uint64_t ref, halo_payload_t pl);

/** p sleeps inside its callback for ms milliseconds. */
int halo_proc_sleep(halo_node_t *n, halo_proc_t *p, uint64_t ms);

/** p gives the CPU back: it goes to the tail of the run queue. */
int halo_proc_yield(halo_node_t *n, halo_proc_t *p);
/** Back-pressure: a process that sent on a congested link (ext->throttled)
 *  is parked at its next yield until the link drains (net.c wakes it). */
enum { HALO_THROTTLED = 1, HALO_PARKED = 2 };

/** A function process waits for its next message, at most ms (UINT64_MAX: forever). */
int halo_proc_receive(halo_node_t *n, halo_proc_t *p, uint64_t ms);

/** p waits for the init of child (after halo_proc_start returned SUSPENDED). */
int halo_proc_wait_spawn(halo_node_t *n, halo_proc_t *p, halo_proc_t *child, uint64_t timeout_ms);

/** Terminates p with reason (owned by the callee). Used for processes
 *  that are not running right now; a running process returns EXITED from
 *  its run hook instead. */
void halo_proc_exit(halo_node_t *n, halo_proc_t *p, halo_payload_t reason);

/** Kills p: an idle process terminates with reason "kill"; a process
 *  suspended inside a callback becomes a zombee (its links and monitors
 *  fire, it never runs again, its record goes once its wait ends). */
int halo_proc_kill(halo_node_t *n, halo_proc_t *p);

/** halo_proc_kill with reason (owned by the callee) instead of "kill". */
int halo_proc_end(halo_node_t *n, halo_proc_t *p, halo_payload_t reason);

/** Registers name for p: 0, HALO_ETAKEN (name used or p already named) or HALO_ENOMEM. */
int halo_name_register(halo_node_t *n, halo_proc_t *p, const char *name);
/** Unregisters name; its watchers get "unregistered". 0 or HALO_ENAMEUNKNOWN. */
int halo_name_unregister(halo_node_t *n, const char *name);
halo_proc_t *halo_name_lookup(halo_node_t *n, const char *name);

/** Creates an alias for p; returns its id (> 0) or an error. */
int64_t halo_alias_new(halo_node_t *n, halo_proc_t *p);
/** Deletes an alias of p: 0, HALO_EALIASUNKNOWN or HALO_ENOTOWNER. */
int halo_alias_delete(halo_node_t *n, halo_proc_t *p, uint64_t alias);
halo_proc_t *halo_alias_lookup(halo_node_t *n, uint64_t alias);

/** Sets the state and keeps the node's per-state counts. */
void halo__proc_set_state(halo_node_t *n, halo_proc_t *p, int state);
/** Final cleanup after the host's run hook returned EXITED (reason in p->result). */
void halo__proc_terminate(halo_node_t *n, halo_proc_t *p, halo_payload_t reason, int zombee);
/** Frees a record whose zombee wait ended. */
void halo__proc_reap(halo_node_t *n, halo_proc_t *p);

/** Enqueues into a local record without counting send errors. */
int halo__enqueue(halo_node_t *n, halo_pid_t from, halo_proc_t *to, int kind, int queue,
                  uint64_t ref, halo_payload_t pl, uint32_t size);
/** Accounting at the end of init (init time, the kick, spawner). */
void halo__proc_init_done(halo_node_t *n, halo_proc_t *p);
/** Returns a freed record to the node's free list. */
void halo__proc_recycle(halo_node_t *n, halo_proc_t *p);

/** Name of a state ("wait response" with a space, "zombee"). */
const char *halo_state_name(int state);

#endif
