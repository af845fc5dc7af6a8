/*
 * The runtime (node, processes, scheduler, timers, links, introspection) on
 * a real libuv loop, driven by a small fake host written in C: payloads are
 * plain integers and each process's code is a tiny state machine. One file
 * for all of it because every case shares that host and its leak checks.
 */
#include "check.h"

#include "errors.h"
#include "introspect.h"
#include "node.h"
#include "process.h"
#include "rel.h"
#include "scheduler.h"
#include "timer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* -- Fake host ------------------------------------------------------------- */

enum { PL_INT = 1, PL_REASON = 2, PL_SIGNAL = 3 };

static const char *const reason_texts[] = {"", "normal", "kill", "shutdown", "unregistered"};
enum { R_NORMAL = 1, R_KILL, R_SHUTDOWN, R_UNREGISTERED };

/* Behaviors of fake processes. */
enum {
  B_RECORD,  /* records messages; counts them; replies to requests with count*100 + value */
  B_SLEEP,   /* a message v: sleeps v ms inside the callback */
  B_CALL,    /* a message v: calls its target with v, waits for the reply */
  B_EXIT,    /* a message v: exits with reason v */
  B_SUICIDE, /* a message: kills itself, then returns as if nothing happened */
  B_FUNC,    /* function process: receives with its timeout; 0 or a timeout ends it */
};

enum { EV_INIT, EV_MSG, EV_WAKE, EV_TERM, EV_FREE, EV_STOPPED, EV_ENDED };

typedef struct ev {
  int what;
  uint64_t pid;
  int kind;      /* EV_MSG: message kind; EV_WAKE: wake reason */
  int queue;     /* EV_MSG: queue; EV_WAKE: what it waited for */
  uint64_t from; /* EV_MSG: sender id */
  uint64_t ref;
  uint8_t tag;   /* payload (EV_MSG), result (EV_WAKE) or reason (EV_TERM) */
  uint64_t val;
  uint8_t flags; /* EV_MSG: message flags */
} ev_t;

typedef struct sigrec {
  halo_signal_info_t info;
  char name[32];
  halo_payload_t reason; /* borrowed copy, for comparison only */
} sigrec_t;

typedef struct fproc {
  int beh;
  uint64_t count;
  uint64_t init_sleep; /* init sleeps this long (ms) */
  uint64_t init_fail;  /* init exits with this reason */
  halo_pid_t target;   /* B_CALL */
  uint64_t timeout;
  int no_reply;        /* B_RECORD: keep requests unanswered */
  uint64_t held_ref;
  halo_pid_t held_from;
} fproc_t;

typedef struct host {
  int64_t live; /* payloads made and not yet released or consumed */
  ev_t ev[32768];
  size_t nev;
  sigrec_t sig[64];
  size_t nsig;
  int stopped;
} host_t;

static uv_loop_t loop;
static halo_node_t node;
static host_t H;
static uv_timer_t guard;
static int guard_fired;

static void record(int what, halo_proc_t *p, int kind, int queue, uint64_t from, uint64_t ref,
                   uint8_t tag, uint64_t val) {
  if (H.nev == sizeof H.ev / sizeof H.ev[0]) {
    CHECK(!"event log full");
    return;
  }
  H.ev[H.nev++] = (ev_t){what, p ? p->id : 0, kind, queue, from, ref, tag, val, 0};
}

static halo_payload_t pl_int(uint64_t v) {
  H.live++;
  return (halo_payload_t){v, PL_INT};
}

static void consume(halo_payload_t pl) {
  if (pl.tag) H.live--;
}

static int hook_run(halo_node_t *n, halo_proc_t *p, halo_msg_t *msg) {
  fproc_t *fp = p->host;
  CHECK(n->current == p);
  CHECK(p->flags & HALO_PF_ACTIVE);
  CHECK(p->state != HALO_STATE_ZOMBEE && p->state != HALO_STATE_TERMINATED);
  if (msg) {
    halo_payload_t pl = {msg->pval, msg->ptag};
    CHECK_EQ(p->wait, HALO_WAIT_RECEIVE);
    p->wait = HALO_WAIT_NONE;
    record(EV_MSG, p, msg->kind, msg->queue, msg->from.id, msg->ref, msg->ptag, msg->pval);
    if (H.nev) H.ev[H.nev - 1].flags = msg->flags;
    consume(pl);
    if (msg->kind == HALO_MSG_REQUEST) {
      fp->count++;
      if (fp->no_reply) {
        fp->held_ref = msg->ref;
        fp->held_from = msg->from;
      } else {
        halo_payload_t r = pl_int(fp->count * 100 + msg->pval);
        int rc = halo_reply(n, p, msg->from, msg->ref, r);
        CHECK_EQ(rc, 0);
        if (rc) consume(r);
      }
      return HALO_RUN_IDLE;
    }
    if (msg->kind != HALO_MSG_REGULAR) return HALO_RUN_IDLE;
    fp->count++;
    switch (fp->beh) {
    case B_SLEEP: {
      int rc = halo_proc_sleep(n, p, msg->pval);
      CHECK_EQ(rc, 0);
      return rc ? HALO_RUN_IDLE : HALO_RUN_SUSPENDED;
    }
    case B_CALL: {
      halo_payload_t req = pl_int(msg->pval);
      int64_t ref = halo_call(n, p, fp->target, HALO_MSG_REQUEST, HALO_Q_MAIN, req, 8, fp->timeout);
      CHECK(ref > 0);
      if (ref > 0) return HALO_RUN_SUSPENDED;
      consume(req);
      return HALO_RUN_IDLE;
    }
    case B_EXIT: p->result = pl_int(msg->pval); return HALO_RUN_EXITED;
    case B_FUNC:
      if (!msg->pval) {
        p->result = pl_int(0);
        return HALO_RUN_EXITED;
      }
      CHECK_EQ(halo_proc_receive(n, p, fp->timeout), 0);
      return HALO_RUN_SUSPENDED;
    case B_SUICIDE:
      CHECK_EQ(halo_proc_kill(n, p), 0);
      CHECK_EQ(p->state, HALO_STATE_ZOMBEE);
      return HALO_RUN_IDLE;
    default: return HALO_RUN_IDLE;
    }
  }
  if (p->wake) {
    record(EV_WAKE, p, p->wake, p->wait, 0, p->wait_ref, p->result.tag, p->result.val);
    consume(p->result);
    p->result.tag = 0;
    p->wake = HALO_WAKE_NONE;
    p->wait = HALO_WAIT_NONE;
    if (fp->beh == B_FUNC) {
      p->result = pl_int(1000);
      return HALO_RUN_EXITED;
    }
    return HALO_RUN_IDLE; /* also ends an init that slept */
  }
  record(EV_INIT, p, 0, 0, 0, 0, 0, 0);
  if (fp->beh == B_FUNC) {
    CHECK(p->flags & HALO_PF_FUNC);
    CHECK_EQ(p->state, HALO_STATE_RUNNING);
    CHECK_EQ(halo_proc_receive(n, p, fp->timeout), 0);
    return HALO_RUN_SUSPENDED;
  }
  CHECK(!(p->flags & HALO_PF_STARTED));
  if (fp->init_fail) {
    p->result = pl_int(fp->init_fail);
    return HALO_RUN_EXITED;
  }
  if (fp->init_sleep) {
    CHECK_EQ(halo_proc_sleep(n, p, fp->init_sleep), 0);
    return HALO_RUN_SUSPENDED;
  }
  return HALO_RUN_IDLE;
}

static void hook_terminate(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason) {
  CHECK(n->current == p);
  CHECK_EQ(p->state, HALO_STATE_TERMINATED);
  CHECK(halo_proc_find(n, p->id) == p);
  record(EV_TERM, p, 0, 0, 0, 0, reason->tag, reason->val);
}

static size_t count_ev(int what, uint64_t pid);

/* Once per process, at its end: TERMINATED, or ZOMBEE with its record kept. */
static void hook_ended(halo_node_t *n, halo_proc_t *p) {
  CHECK(p->state == HALO_STATE_TERMINATED || p->state == HALO_STATE_ZOMBEE);
  CHECK(halo_proc_find(n, p->id) == p);
  CHECK_EQ(count_ev(EV_ENDED, p->id), 0);
  record(EV_ENDED, p, 0, 0, 0, 0, 0, 0);
}

static void hook_free(halo_node_t *n, halo_proc_t *p) {
  (void)n;
  CHECK_EQ(count_ev(EV_ENDED, p->id), 1); /* ended came first */
  record(EV_FREE, p, 0, 0, 0, 0, 0, 0);
  free(p->host);
  p->host = NULL;
}

static halo_payload_t hook_dup(halo_node_t *n, const halo_payload_t *pl) {
  (void)n;
  if (pl->tag) H.live++;
  return *pl;
}

static void hook_release(halo_node_t *n, halo_payload_t pl) {
  (void)n;
  consume(pl);
  CHECK(H.live >= 0);
}

static halo_payload_t hook_signal(halo_node_t *n, const halo_signal_info_t *info,
                                  const halo_payload_t *reason) {
  (void)n;
  if (H.nsig == sizeof H.sig / sizeof H.sig[0]) {
    CHECK(!"signal log full");
    return (halo_payload_t){0, 0};
  }
  sigrec_t *s = &H.sig[H.nsig];
  s->info = *info;
  s->name[0] = 0;
  if (info->name) snprintf(s->name, sizeof s->name, "%s", info->name);
  s->info.name = NULL;
  s->reason = *reason;
  H.live++;
  return (halo_payload_t){H.nsig++, PL_SIGNAL};
}

static halo_payload_t hook_reason(halo_node_t *n, const char *text) {
  (void)n;
  for (uint64_t i = 1; i < sizeof reason_texts / sizeof reason_texts[0]; i++) {
    if (strcmp(text, reason_texts[i]) == 0) {
      H.live++;
      return (halo_payload_t){i, PL_REASON};
    }
  }
  fprintf(stderr, "unexpected reason \"%s\"\n", text);
  CHECK(!"known reason");
  return (halo_payload_t){0, 0};
}

static void hook_stopped(halo_node_t *n) {
  CHECK(n->stopped);
  CHECK_EQ(n->nprocs, 0);
  H.stopped++;
  record(EV_STOPPED, NULL, 0, 0, 0, 0, 0, 0);
}

static const halo_node_hooks_t hooks = {hook_run,    hook_terminate, hook_free,   hook_dup,
                                        hook_release, hook_signal,   hook_reason, NULL, NULL, NULL, hook_stopped, hook_ended};

/* -- Fixture --------------------------------------------------------------- */

static void on_guard(uv_timer_t *t) {
  (void)t;
  guard_fired = 1;
}

static void guard_start(uint64_t ms) {
  guard_fired = 0;
  uv_update_time(&loop);
  uv_timer_start(&guard, on_guard, ms, 0);
}

/* Runs the loop until cond holds; fails the test after ms. */
#define RUN_UNTIL(cond, ms)                                                              \
  do {                                                                                   \
    guard_start(ms);                                                                     \
    while (!(cond) && !guard_fired) uv_run(&loop, UV_RUN_ONCE);                          \
    uv_timer_stop(&guard);                                                               \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "%s:%d: timed out waiting for %s\n", __FILE__, __LINE__, #cond);   \
      check_failures++;                                                                  \
    }                                                                                    \
  } while (0)

/* Runs the loop for about ms. */
static void run_for(uint64_t ms) {
  guard_start(ms);
  while (!guard_fired) uv_run(&loop, UV_RUN_ONCE);
}

static void setup(void) {
  memset(&H, 0, sizeof H);
  CHECK_EQ(uv_loop_init(&loop), 0);
  CHECK_EQ(halo_node_init(&node, &loop, "test@localhost"), 0);
  node.hooks = hooks;
  node.host = &H;
  node.auto_stop = 0;
  uv_timer_init(&loop, &guard);
  CHECK_EQ(halo_node_start(&node), 0);
}

/* Stops the node (if the test has not), closes everything and checks that
 * nothing leaked: processes, timers, messages, payloads, loop handles. */
static void teardown(void) {
  if (!node.stopped) {
    halo_node_stop(&node, 0);
    RUN_UNTIL(node.stopped, 2000);
  }
  CHECK_EQ(H.stopped, 1);
  CHECK_EQ(node.nprocs, 0);
  CHECK(node.first == NULL && node.last == NULL);
  CHECK_EQ(node.procs.len, 0);
  CHECK_EQ(node.names.len, 0);
  CHECK_EQ(node.strings.len, 5); /* interned names go with their last process, but the defaults */
  CHECK_EQ(node.aliases.len, 0);
  CHECK_EQ(node.ntimers, 0);
  CHECK_EQ(node.timers.len, 0);
  CHECK_EQ(node.msgs.total, node.msgs.nfree);
  CHECK(node.rq_head == NULL);
  halo_node_close(&node);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(uv_loop_close(&loop), 0);
  halo_node_destroy(&node);
  CHECK_EQ(H.live, 0);
}

static halo_proc_t *spawn_opts(int beh, halo_spawn_opts_t *o) {
  halo_proc_t *p = NULL;
  int rc = halo_proc_spawn(&node, o, &p);
  CHECK_EQ(rc, 0);
  if (rc) return NULL;
  fproc_t *fp = calloc(1, sizeof *fp);
  fp->beh = beh;
  p->host = fp;
  return p;
}

/* Spawns without starting. */
static halo_proc_t *spawn(int beh, const char *name) {
  halo_spawn_opts_t o = {0};
  o.name = name;
  o.behavior = beh == B_SLEEP ? "sleeper" : beh == B_CALL ? "caller" : beh == B_EXIT ? "exiter" : "recorder";
  return spawn_opts(beh, &o);
}

/* Spawns and runs init to completion. */
static halo_proc_t *start(int beh, const char *name) {
  halo_proc_t *p = spawn(beh, name);
  CHECK_EQ(halo_proc_start(&node, p, NULL), HALO_RUN_IDLE);
  return p;
}

static fproc_t *F(halo_proc_t *p) { return p->host; }

static halo_pid_t pid_of(halo_proc_t *p) { return halo_node_pid(&node, p->id); }

static int send_int(halo_proc_t *to, uint64_t v) {
  halo_payload_t pl = pl_int(v);
  int rc = halo_send_proc(&node, NULL, to, HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl, 8);
  if (rc) consume(pl);
  return rc;
}

static size_t count_ev(int what, uint64_t pid) {
  size_t c = 0;
  for (size_t i = 0; i < H.nev; i++)
    if (H.ev[i].what == what && (!pid || H.ev[i].pid == pid)) c++;
  return c;
}

/* The k-th (0-based) event of a kind for pid, or NULL. */
static const ev_t *nth_ev(int what, uint64_t pid, size_t k) {
  for (size_t i = 0; i < H.nev; i++)
    if (H.ev[i].what == what && (!pid || H.ev[i].pid == pid) && k-- == 0) return &H.ev[i];
  return NULL;
}

static size_t ev_index(const ev_t *e) { return e ? (size_t)(e - H.ev) : SIZE_MAX; }

/* -- Spawn and start ------------------------------------------------------- */

static void test_spawn_start(void) {
  setup();
  halo_spawn_opts_t o = {0};
  o.behavior = "counter";
  o.application = "app";
  halo_proc_t *p = spawn_opts(B_RECORD, &o);
  uint64_t id = p->id;
  CHECK(id > 1000);
  CHECK_EQ(p->state, HALO_STATE_INIT);
  CHECK_EQ(node.state_count[halo_state_index(HALO_STATE_INIT)], 1);
  CHECK_EQ(node.nprocs, 1);
  CHECK_EQ(halo_node_alive(&node), 1);
  CHECK(halo_proc_find(&node, id) == p);
  CHECK_EQ(node.counters.spawned, 0);
  CHECK_STR_EQ(p->behavior, "counter");
  CHECK_STR_EQ(p->kind, "actor");
  CHECK_STR_EQ(p->application, "app");
  CHECK_EQ(p->parent.id, 1);
  CHECK_EQ(p->parent.node, node.crc);
  CHECK_EQ(p->leader.id, 1);

  CHECK_EQ(halo_proc_start(&node, p, NULL), HALO_RUN_IDLE);
  CHECK_EQ(count_ev(EV_INIT, id), 1);
  CHECK_EQ(p->state, HALO_STATE_SLEEP);
  CHECK_EQ(p->wait, HALO_WAIT_RECEIVE);
  CHECK(p->flags & HALO_PF_STARTED);
  CHECK(!(p->flags & HALO_PF_RUNQ));
  CHECK(!(p->flags & HALO_PF_ACTIVE));
  CHECK_EQ(p->wakeups, 1);
  CHECK_EQ(node.counters.spawned, 1);
  CHECK_EQ(node.state_count[halo_state_index(HALO_STATE_INIT)], 0);
  CHECK_EQ(node.state_count[halo_state_index(HALO_STATE_SLEEP)], 1);
  CHECK(node.current == NULL);
  CHECK(node.rq_head == NULL);

  /* A child inherits the leader of its parent; ids grow. */
  halo_spawn_opts_t co = {0};
  co.parent = p;
  halo_proc_t *c = spawn_opts(B_RECORD, &co);
  CHECK(c->id > id);
  CHECK_EQ(c->parent.id, id);
  CHECK_EQ(c->leader.id, 1);
  CHECK_STR_EQ(c->behavior, "function");
  CHECK_EQ(halo_proc_start(&node, c, NULL), HALO_RUN_IDLE);

  /* Init that fails: the record goes, the caller gets the reason. */
  halo_proc_t *bad = spawn(B_RECORD, "bad");
  uint64_t bad_id = bad->id;
  F(bad)->init_fail = 77;
  halo_payload_t reason = {0, 0};
  CHECK_EQ(halo_proc_start(&node, bad, &reason), HALO_RUN_EXITED);
  CHECK_EQ(reason.tag, PL_INT);
  CHECK_EQ(reason.val, 77);
  consume(reason);
  CHECK(halo_proc_find(&node, bad_id) == NULL);
  CHECK(halo_name_lookup(&node, "bad") == NULL);
  CHECK_EQ(node.counters.spawn_failed, 1);
  CHECK_EQ(node.counters.spawned, 2);
  CHECK_EQ(node.counters.terminated, 0);
  CHECK_EQ(count_ev(EV_FREE, bad_id), 1);

  /* Init that sleeps: started once the sleep ends, through the loop. */
  halo_proc_t *s = spawn(B_RECORD, NULL);
  F(s)->init_sleep = 20;
  uint64_t t0 = uv_hrtime();
  CHECK_EQ(halo_proc_start(&node, s, NULL), HALO_RUN_SUSPENDED);
  CHECK_EQ(s->state, HALO_STATE_INIT);
  CHECK_EQ(s->wait, HALO_WAIT_SLEEP);
  CHECK(!(s->flags & HALO_PF_STARTED));
  CHECK_EQ(node.counters.spawned, 2);
  RUN_UNTIL(s->state == HALO_STATE_SLEEP, 2000);
  CHECK(uv_hrtime() - t0 >= 20000000u);
  CHECK(s->flags & HALO_PF_STARTED);
  CHECK_EQ(s->wakeups, 1);
  CHECK_EQ(node.counters.spawned, 3);
  const ev_t *w = nth_ev(EV_WAKE, s->id, 0);
  CHECK(w && w->kind == HALO_WAKE_TIMEOUT && w->queue == HALO_WAIT_SLEEP);
  CHECK(s->init_ns >= 20000000u);

  /* Spawning under a taken name fails and leaves nothing behind. */
  start(B_RECORD, "taken");
  halo_proc_t *twin = NULL;
  halo_spawn_opts_t no = {0};
  no.name = "taken";
  CHECK_EQ(halo_proc_spawn(&node, &no, &twin), HALO_ETAKEN);
  no.name = "";
  CHECK_EQ(halo_proc_spawn(&node, &no, &twin), HALO_EINCORRECT);
  CHECK_EQ(node.counters.spawn_failed, 3);
  CHECK_EQ(node.nprocs, 4);
  teardown();
}

/* -- Messages and the run queue -------------------------------------------- */

static void test_send(void) {
  setup();
  halo_proc_t *p = start(B_RECORD, NULL);
  CHECK_EQ(send_int(p, 5), 0);
  CHECK_EQ(p->state, HALO_STATE_RUNNING);
  CHECK(p->flags & HALO_PF_RUNQ);
  CHECK(node.rq_head == p && node.rq_tail == p);
  CHECK_EQ(p->msgs_in, 1);
  CHECK_EQ(p->wakeups, 2);
  CHECK_EQ(send_int(p, 6), 0);
  CHECK(node.rq_head == p && node.rq_tail == p && p->runq_next == NULL);
  CHECK_EQ(p->wakeups, 2); /* already awake */
  CHECK_EQ(halo_mailbox_len(&p->mb), 2);
  CHECK_EQ(count_ev(EV_MSG, p->id), 0); /* nothing runs outside the loop */

  RUN_UNTIL(count_ev(EV_MSG, p->id) == 2, 2000);
  CHECK_EQ(nth_ev(EV_MSG, p->id, 0)->val, 5);
  CHECK_EQ(nth_ev(EV_MSG, p->id, 1)->val, 6);
  CHECK_EQ(nth_ev(EV_MSG, p->id, 0)->from, 1); /* the node */
  CHECK_EQ(p->state, HALO_STATE_SLEEP);
  CHECK(!(p->flags & HALO_PF_RUNQ));
  CHECK(node.rq_head == NULL);
  CHECK_EQ(H.live, 0);
  CHECK(!uv_is_active((uv_handle_t *)&node.idle)); /* an idle node does not spin */

  /* Errors: the payload stays with the sender. */
  halo_payload_t pl = pl_int(1);
  CHECK_EQ(halo_send(&node, NULL, halo_node_pid(&node, 999999), HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl, 8),
           HALO_ENOPROC);
  CHECK_EQ(node.counters.send_errors_local, 1);
  halo_pid_t remote = {node.crc ^ 1, 1001};
  CHECK_EQ(halo_send(&node, NULL, remote, HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl, 8), HALO_ENOCONN);
  CHECK_EQ(node.counters.send_errors_remote, 1);
  consume(pl);

  /* From a process: counted on both sides; the receiver sees the sender. */
  halo_proc_t *q = start(B_RECORD, NULL);
  pl = pl_int(9);
  CHECK_EQ(halo_send(&node, q, pid_of(p), HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl, 8), 0);
  CHECK_EQ(q->msgs_out, 1);
  RUN_UNTIL(count_ev(EV_MSG, p->id) == 3, 2000);
  CHECK_EQ(nth_ev(EV_MSG, p->id, 2)->from, q->id);

  /* The mailbox limit refuses and counts; the queue keeps what it had. */
  halo_spawn_opts_t o = {0};
  o.mailbox_limit = 2;
  halo_proc_t *l = spawn_opts(B_RECORD, &o);
  CHECK_EQ(halo_proc_start(&node, l, NULL), HALO_RUN_IDLE);
  CHECK_EQ(send_int(l, 1), 0);
  CHECK_EQ(send_int(l, 2), 0);
  CHECK_EQ(send_int(l, 3), HALO_EFULL);
  CHECK_EQ(node.counters.send_errors_local, 2);
  CHECK_EQ(l->msgs_in, 2);
  RUN_UNTIL(count_ev(EV_MSG, l->id) == 2, 2000);
  CHECK_EQ(nth_ev(EV_MSG, l->id, 1)->val, 2);
  teardown();
}

static void test_runq_fifo(void) {
  setup();
  halo_proc_t *a = start(B_RECORD, NULL), *b = start(B_RECORD, NULL), *c = start(B_RECORD, NULL);
  CHECK_EQ(send_int(c, 1), 0);
  CHECK_EQ(send_int(a, 2), 0);
  CHECK_EQ(send_int(b, 3), 0);
  CHECK_EQ(send_int(a, 4), 0); /* a is queued already: stays second */
  RUN_UNTIL(count_ev(EV_MSG, 0) == 4, 2000);
  CHECK_EQ(nth_ev(EV_MSG, 0, 0)->pid, c->id);
  CHECK_EQ(nth_ev(EV_MSG, 0, 1)->pid, a->id);
  CHECK_EQ(nth_ev(EV_MSG, 0, 2)->pid, a->id);
  CHECK_EQ(nth_ev(EV_MSG, 0, 3)->pid, b->id);
  teardown();
}

/* A process with a full mailbox yields after node.batch messages, so a
 * quiet process waits at most one turn. */
static void test_batch(void) {
  setup();
  CHECK_EQ(node.batch, 64);
  halo_proc_t *a = start(B_RECORD, NULL), *b = start(B_RECORD, NULL);
  for (uint64_t i = 0; i < 1000; i++) CHECK_EQ(send_int(a, i), 0);
  for (uint64_t i = 0; i < 100; i++) CHECK_EQ(send_int(b, 1000 + i), 0);
  RUN_UNTIL(count_ev(EV_MSG, 0) == 1100, 5000);
  /* Expected turns: a 64, b 64, a 64, b 36, then a alone (its turns merge in the log). */
  size_t i = 0, turn = 0;
  uint64_t next_a = 0, next_b = 1000;
  size_t want[] = {64, 64, 64, 36};
  while (i < H.nev) {
    if (H.ev[i].what != EV_MSG) {
      i++;
      continue;
    }
    uint64_t pid = H.ev[i].pid;
    size_t run = 0;
    for (; i < H.nev && H.ev[i].what == EV_MSG && H.ev[i].pid == pid; i++, run++) {
      uint64_t *next = pid == a->id ? &next_a : &next_b;
      CHECK_EQ(H.ev[i].val, *next); /* FIFO within a process */
      (*next)++;
    }
    if (turn < 4) {
      CHECK_EQ(pid, turn % 2 ? b->id : a->id);
      CHECK_EQ(run, want[turn]);
    } else { /* a alone: its turns follow each other */
      CHECK_EQ(pid, a->id);
      CHECK_EQ(run, 1000 - 128);
    }
    turn++;
  }
  CHECK_EQ(turn, 5);
  CHECK_EQ(next_a, 1000);
  CHECK_EQ(next_b, 1100);
  CHECK_EQ(a->state, HALO_STATE_SLEEP);
  CHECK_EQ(b->state, HALO_STATE_SLEEP);
  teardown();
}

/* -- Timers ---------------------------------------------------------------- */

static void test_timers(void) {
  setup();
  halo_proc_t *o = start(B_RECORD, NULL), *t = start(B_RECORD, NULL);
  uint64_t t0 = uv_hrtime();
  int64_t id = halo_timer_send_after(&node, o, pid_of(t), pl_int(42), 8, 20);
  CHECK(id > 0);
  CHECK_EQ(node.ntimers, 1);
  RUN_UNTIL(count_ev(EV_MSG, t->id) == 1, 2000);
  CHECK(uv_hrtime() - t0 >= 20000000u);
  const ev_t *e = nth_ev(EV_MSG, t->id, 0);
  CHECK(e && e->val == 42 && e->from == o->id);
  CHECK_EQ(o->msgs_out, 1);
  CHECK_EQ(node.ntimers, 0);
  CHECK_EQ(halo_timer_cancel(&node, o, (uint64_t)id), HALO_ETARGETUNKNOWN); /* fired */

  /* Cancel: no delivery, the payload is released. */
  int64_t live = H.live;
  int64_t id2 = halo_timer_send_after(&node, o, pid_of(t), pl_int(43), 8, 30);
  CHECK(id2 > id);
  CHECK_EQ(halo_timer_cancel(&node, t, (uint64_t)id2), HALO_ETARGETUNKNOWN); /* not its owner */
  CHECK_EQ(halo_timer_cancel(&node, o, (uint64_t)id2), 0);
  CHECK_EQ(H.live, live);
  CHECK_EQ(halo_timer_cancel(&node, o, (uint64_t)id2), HALO_ETARGETUNKNOWN);
  CHECK_EQ(node.ntimers, 0);
  /* Timers of an ending owner are cancelled with it. */
  halo_proc_t *o2 = start(B_RECORD, NULL);
  CHECK(halo_timer_send_after(&node, o2, pid_of(t), pl_int(44), 8, 30) > 0);
  CHECK(halo_timer_send_after(&node, o2, pid_of(t), pl_int(45), 8, 10) > 0);
  CHECK_EQ(node.ntimers, 2);
  CHECK_EQ(halo_proc_kill(&node, o2), 0);
  CHECK_EQ(node.ntimers, 0);
  CHECK_EQ(H.live, live);
  /* A timer to a process that is gone drops its payload. */
  halo_proc_t *gone = start(B_RECORD, NULL);
  CHECK(halo_timer_send_after(&node, o, pid_of(gone), pl_int(46), 8, 5) > 0);
  CHECK_EQ(halo_proc_kill(&node, gone), 0);
  run_for(60);
  CHECK_EQ(count_ev(EV_MSG, t->id), 1);
  CHECK_EQ(H.live, live);
  CHECK_EQ(node.ntimers, 0);

  /* Sleep inside a callback: the process stays "running", is not in the
   * run queue, and resumes with HALO_WAKE_TIMEOUT through the loop. */
  halo_proc_t *s = start(B_SLEEP, NULL);
  t0 = uv_hrtime();
  CHECK_EQ(send_int(s, 25), 0);
  RUN_UNTIL(s->wait == HALO_WAIT_SLEEP, 2000);
  CHECK_EQ(s->state, HALO_STATE_RUNNING);
  CHECK(s->wait_timer != NULL);
  CHECK(!(s->flags & HALO_PF_RUNQ));
  CHECK_EQ(node.ntimers, 1);
  CHECK_EQ(send_int(s, 0), 0); /* queued, not delivered during the sleep */
  CHECK(!(s->flags & HALO_PF_RUNQ));
  CHECK_EQ(count_ev(EV_MSG, s->id), 1);
  RUN_UNTIL(count_ev(EV_WAKE, s->id) == 1, 2000);
  CHECK(uv_hrtime() - t0 >= 25000000u);
  const ev_t *w = nth_ev(EV_WAKE, s->id, 0);
  CHECK(w && w->kind == HALO_WAKE_TIMEOUT && w->queue == HALO_WAIT_SLEEP);
  /* The queued message comes after the wake. The second one sleeps 0 ms. */
  RUN_UNTIL(count_ev(EV_WAKE, s->id) == 2 && s->state == HALO_STATE_SLEEP, 2000);
  CHECK(ev_index(nth_ev(EV_MSG, s->id, 1)) > ev_index(nth_ev(EV_WAKE, s->id, 0)));
  CHECK(s->wait_timer == NULL);
  CHECK_EQ(node.ntimers, 0);
  /* Time suspended inside the callback counts as running time. */
  CHECK(s->running_ns >= 25000000u);
  teardown();
}

/* -- Call and reply -------------------------------------------------------- */

static void test_call(void) {
  setup();
  halo_proc_t *t = start(B_RECORD, "counter"), *c = start(B_CALL, NULL);
  F(c)->target = pid_of(t);
  F(c)->timeout = 1000;
  CHECK_EQ(send_int(c, 7), 0);
  RUN_UNTIL(count_ev(EV_WAKE, c->id) == 1, 2000);
  const ev_t *w = nth_ev(EV_WAKE, c->id, 0);
  CHECK(w && w->kind == HALO_WAKE_REPLY && w->queue == HALO_WAIT_REPLY);
  CHECK(w && w->tag == PL_INT && w->val == 107);
  const ev_t *req = nth_ev(EV_MSG, t->id, 0);
  CHECK(req && req->kind == HALO_MSG_REQUEST && req->from == c->id && req->ref == w->ref && req->ref > 0);
  RUN_UNTIL(c->state == HALO_STATE_SLEEP, 2000);
  CHECK(c->wait_timer == NULL);
  CHECK_EQ(node.ntimers, 0);
  CHECK_EQ(c->msgs_out, 1);
  CHECK_EQ(c->msgs_in, 2); /* the trigger and the reply */
  CHECK_EQ(t->msgs_in, 1);
  CHECK_EQ(t->msgs_out, 1);
  CHECK_EQ(node.counters.call_errors_local, 0);

  /* A second call gets a fresh ref. */
  CHECK_EQ(send_int(c, 8), 0);
  RUN_UNTIL(count_ev(EV_WAKE, c->id) == 2, 2000);
  CHECK_EQ(nth_ev(EV_WAKE, c->id, 1)->val, 208);
  CHECK(nth_ev(EV_WAKE, c->id, 1)->ref > w->ref);

  /* Timeout: the target keeps the request unanswered. */
  halo_proc_t *mute = start(B_RECORD, NULL);
  F(mute)->no_reply = 1;
  F(c)->target = pid_of(mute);
  F(c)->timeout = 100;
  CHECK_EQ(send_int(c, 1), 0);
  RUN_UNTIL(F(mute)->held_ref != 0, 2000);
  CHECK_EQ(c->state, HALO_STATE_WAIT);
  CHECK_EQ(c->wait, HALO_WAIT_REPLY);
  CHECK_EQ(c->wait_ref, F(mute)->held_ref);
  CHECK_EQ(node.state_count[halo_state_index(HALO_STATE_WAIT)], 1);
  /* A reply with the wrong ref is late. */
  halo_payload_t pl = pl_int(5);
  CHECK_EQ(halo_reply(&node, mute, F(mute)->held_from, F(mute)->held_ref + 100, pl), HALO_EIGNORED);
  CHECK_EQ(node.counters.late_replies, 1);
  CHECK_EQ(c->state, HALO_STATE_WAIT);
  RUN_UNTIL(count_ev(EV_WAKE, c->id) == 3, 2000);
  w = nth_ev(EV_WAKE, c->id, 2);
  CHECK(w && w->kind == HALO_WAKE_TIMEOUT && w->queue == HALO_WAIT_REPLY && w->tag == 0);
  CHECK_EQ(node.counters.call_errors_local, 1);
  RUN_UNTIL(c->state == HALO_STATE_SLEEP, 2000);
  /* The reply after the timeout is ignored and stays with the replier. */
  CHECK_EQ(halo_reply(&node, mute, F(mute)->held_from, F(mute)->held_ref, pl), HALO_EIGNORED);
  CHECK_EQ(node.counters.late_replies, 2);
  CHECK_EQ(halo_reply(&node, mute, halo_node_pid(&node, 999999), 1, pl), HALO_ENOPROC);
  CHECK_EQ(node.counters.late_replies, 3);
  consume(pl);
  CHECK_EQ(c->wait, HALO_WAIT_RECEIVE);

  /* Calls that cannot start fail at once, counted, payload not taken. */
  pl = pl_int(1);
  CHECK_EQ(halo_call(&node, c, pid_of(c), HALO_MSG_REQUEST, HALO_Q_MAIN, pl, 8, 100), HALO_ENOTALLOWED);
  CHECK_EQ(halo_call(&node, c, halo_node_pid(&node, 999999), HALO_MSG_REQUEST, HALO_Q_MAIN, pl, 8, 100),
           HALO_ENOPROC);
  CHECK_EQ(node.counters.call_errors_local, 3);
  halo_pid_t remote = {node.crc ^ 1, 1001};
  CHECK_EQ(halo_call(&node, c, remote, HALO_MSG_REQUEST, HALO_Q_MAIN, pl, 8, 100), HALO_ENOCONN);
  CHECK_EQ(node.counters.call_errors_remote, 1);
  consume(pl);
  CHECK_EQ(c->state, HALO_STATE_SLEEP);
  CHECK_EQ(c->wait, HALO_WAIT_RECEIVE);
  CHECK_EQ(node.ntimers, 0);
  teardown();
}

/* -- Function processes ---------------------------------------------------- */

static void test_function_process(void) {
  setup();
  halo_spawn_opts_t o = {0};
  o.func = 1;
  halo_proc_t *f = spawn_opts(B_FUNC, &o);
  uint64_t fid = f->id;
  F(f)->timeout = 40;
  CHECK_EQ(halo_proc_start(&node, f, NULL), HALO_RUN_SUSPENDED);
  CHECK(f->flags & HALO_PF_STARTED);
  CHECK_EQ(node.counters.spawned, 1);
  CHECK_EQ(f->state, HALO_STATE_SLEEP);
  CHECK_EQ(f->wait, HALO_WAIT_RECEIVE);
  CHECK(f->wait_timer != NULL);
  /* A message before the timeout is delivered and disarms the timer; the
   * next receive arms a new one. */
  CHECK_EQ(send_int(f, 5), 0);
  RUN_UNTIL(count_ev(EV_MSG, fid) == 1, 2000);
  CHECK_EQ(count_ev(EV_WAKE, fid), 0);
  CHECK(f->wait_timer != NULL);
  CHECK_EQ(node.ntimers, 1);
  uint64_t t0 = uv_hrtime();
  RUN_UNTIL(halo_proc_find(&node, fid) == NULL, 2000);
  CHECK(uv_hrtime() - t0 >= 35000000u);
  const ev_t *w = nth_ev(EV_WAKE, fid, 0);
  CHECK(w && w->kind == HALO_WAKE_TIMEOUT && w->queue == HALO_WAIT_RECEIVE);
  const ev_t *term = nth_ev(EV_TERM, fid, 0);
  CHECK(term && term->tag == PL_INT && term->val == 1000);
  CHECK_EQ(node.counters.terminated, 1);
  CHECK_EQ(node.ntimers, 0);

  /* Receive without a timeout: no timer, it waits for as long as it takes. */
  f = spawn_opts(B_FUNC, &o);
  fid = f->id;
  F(f)->timeout = UINT64_MAX;
  CHECK_EQ(halo_proc_start(&node, f, NULL), HALO_RUN_SUSPENDED);
  CHECK(f->wait_timer == NULL);
  CHECK_EQ(send_int(f, 3), 0);
  CHECK_EQ(send_int(f, 0), 0);
  RUN_UNTIL(halo_proc_find(&node, fid) == NULL, 2000);
  CHECK_EQ(count_ev(EV_MSG, fid), 2);
  term = nth_ev(EV_TERM, fid, 0);
  CHECK(term && term->tag == PL_INT && term->val == 0);
  teardown();
}

/* -- Links and monitors ---------------------------------------------------- */

static const sigrec_t *sig_of(const ev_t *e) {
  if (!e || e->tag != PL_SIGNAL || e->val >= H.nsig) return NULL;
  return &H.sig[e->val];
}

static void test_links_monitors(void) {
  setup();
  halo_proc_t *t = start(B_EXIT, "tgt");
  halo_proc_t *wl = start(B_RECORD, NULL), *wm = start(B_RECORD, NULL);
  halo_proc_t *wn = start(B_RECORD, NULL), *wa = start(B_RECORD, NULL);
  uint64_t tid = t->id;
  int64_t alias = halo_alias_new(&node, t);
  CHECK(alias > 0);
  CHECK(halo_alias_lookup(&node, (uint64_t)alias) == t);
  CHECK_EQ(halo_rel_add(&node, wl, HALO_REL_LINK, t, HALO_TARGET_PID, NULL, 0), 0);
  CHECK_EQ(halo_rel_add(&node, wm, HALO_REL_MONITOR, t, HALO_TARGET_PID, NULL, 0), 0);
  CHECK_EQ(halo_rel_add(&node, wn, HALO_REL_MONITOR, t, HALO_TARGET_NAME, "tgt", 0), 0);
  CHECK_EQ(halo_rel_add(&node, wa, HALO_REL_MONITOR, t, HALO_TARGET_ALIAS, NULL, (uint64_t)alias), 0);
  CHECK_EQ(halo_rel_add(&node, wl, HALO_REL_LINK, t, HALO_TARGET_PID, NULL, 0), HALO_ETARGETEXIST);
  CHECK_EQ(halo_rel_add(&node, t, HALO_REL_LINK, t, HALO_TARGET_PID, NULL, 0), HALO_ENOTALLOWED);
  /* A link and a monitor of the same pair are distinct relations. */
  CHECK_EQ(halo_rel_add(&node, wl, HALO_REL_MONITOR, t, HALO_TARGET_PID, NULL, 0), 0);
  CHECK_EQ(halo_rel_remove(&node, wl, HALO_REL_MONITOR, HALO_TARGET_PID, tid, NULL, 0), 0);
  CHECK_EQ(halo_rel_remove(&node, wl, HALO_REL_MONITOR, HALO_TARGET_PID, tid, NULL, 0), HALO_ETARGETUNKNOWN);
  CHECK_EQ(t->ext->watchers.len, 4);
  CHECK_EQ(wl->ext->watching.len, 1);

  CHECK_EQ(send_int(t, 9), 0); /* t exits with reason 9 */
  RUN_UNTIL(count_ev(EV_MSG, wl->id) + count_ev(EV_MSG, wm->id) + count_ev(EV_MSG, wn->id) +
                    count_ev(EV_MSG, wa->id) == 4,
            2000);
  CHECK(halo_proc_find(&node, tid) == NULL);
  CHECK(halo_name_lookup(&node, "tgt") == NULL);
  CHECK(halo_alias_lookup(&node, (uint64_t)alias) == NULL);
  const ev_t *term = nth_ev(EV_TERM, tid, 0);
  CHECK(term && term->tag == PL_INT && term->val == 9);
  CHECK_EQ(node.counters.terminated, 1);

  struct { halo_proc_t *w; int kind, queue, tkind; } want[] = {
      {wl, HALO_MSG_EXIT, HALO_Q_URGENT, HALO_TARGET_PID},
      {wm, HALO_MSG_DOWN, HALO_Q_SYSTEM, HALO_TARGET_PID},
      {wn, HALO_MSG_DOWN, HALO_Q_SYSTEM, HALO_TARGET_NAME},
      {wa, HALO_MSG_DOWN, HALO_Q_SYSTEM, HALO_TARGET_ALIAS},
  };
  for (int i = 0; i < 4; i++) {
    const ev_t *e = nth_ev(EV_MSG, want[i].w->id, 0);
    CHECK(e != NULL);
    if (!e) continue;
    CHECK(ev_index(e) > ev_index(term)); /* terminate runs before the watchers hear */
    CHECK_EQ(e->kind, want[i].kind);
    CHECK_EQ(e->queue, want[i].queue);
    CHECK_EQ(e->from, tid);
    CHECK_EQ(want[i].w->ext->watching.len, 0); /* the relation is gone */
    if (want[i].tkind == HALO_TARGET_PID) {
      /* A PID target: the bare reason, no host payload built. */
      CHECK_EQ(e->flags, HALO_MF_REASON);
      CHECK(e->tag == PL_INT && e->val == 9);
      continue;
    }
    CHECK_EQ(e->flags, 0);
    const sigrec_t *s = sig_of(e);
    CHECK(s != NULL);
    if (!s) continue;
    CHECK_EQ(s->info.kind, want[i].kind);
    CHECK_EQ(s->info.target_kind, want[i].tkind);
    CHECK_EQ(s->info.pid.id, tid);
    CHECK_EQ(s->info.pid.node, node.crc);
    CHECK(s->reason.tag == PL_INT && s->reason.val == 9);
    if (want[i].tkind == HALO_TARGET_NAME) CHECK_STR_EQ(s->name, "tgt");
    if (want[i].tkind == HALO_TARGET_ALIAS) CHECK_EQ(s->info.alias, alias);
  }

  /* A watcher that ends first leaves nothing in its target's list. */
  halo_proc_t *y = start(B_EXIT, NULL), *x = start(B_RECORD, NULL);
  CHECK_EQ(halo_rel_add(&node, x, HALO_REL_MONITOR, y, HALO_TARGET_PID, NULL, 0), 0);
  CHECK_EQ(halo_rel_add(&node, x, HALO_REL_LINK, y, HALO_TARGET_PID, NULL, 0), 0);
  CHECK_EQ(y->ext->watchers.len, 2);
  CHECK_EQ(halo_proc_kill(&node, x), 0);
  CHECK_EQ(y->ext->watchers.len, 0);
  size_t nsig = H.nsig;
  CHECK_EQ(send_int(y, 1), 0);
  RUN_UNTIL(halo_node_alive(&node) == 4, 2000);
  CHECK_EQ(H.nsig, nsig);

  /* Unregistering a name or deleting an alias tells their watchers. */
  halo_proc_t *u = start(B_RECORD, "named"), *v = start(B_RECORD, NULL);
  alias = halo_alias_new(&node, u);
  CHECK_EQ(halo_rel_add(&node, v, HALO_REL_MONITOR, u, HALO_TARGET_NAME, "named", 0), 0);
  CHECK_EQ(halo_rel_add(&node, v, HALO_REL_LINK, u, HALO_TARGET_ALIAS, NULL, (uint64_t)alias), 0);
  CHECK_EQ(halo_rel_add(&node, v, HALO_REL_MONITOR, u, HALO_TARGET_PID, NULL, 0), 0);
  CHECK_EQ(halo_name_unregister(&node, "named"), 0);
  CHECK_EQ(halo_alias_delete(&node, v, (uint64_t)alias), HALO_ENOTOWNER);
  CHECK_EQ(halo_alias_delete(&node, u, (uint64_t)alias), 0);
  CHECK_EQ(halo_alias_delete(&node, u, (uint64_t)alias), HALO_EALIASUNKNOWN);
  RUN_UNTIL(count_ev(EV_MSG, v->id) == 2, 2000);
  const sigrec_t *s1 = sig_of(nth_ev(EV_MSG, v->id, 0)), *s2 = sig_of(nth_ev(EV_MSG, v->id, 1));
  CHECK(s1 && s2);
  if (s1 && s2) {
    /* The exit signal (urgent) is read before the down message (system). */
    CHECK_EQ(s1->info.kind, HALO_MSG_EXIT);
    CHECK_EQ(s1->info.target_kind, HALO_TARGET_ALIAS);
    CHECK_EQ(s2->info.kind, HALO_MSG_DOWN);
    CHECK_EQ(s2->info.target_kind, HALO_TARGET_NAME);
    CHECK(s1->reason.tag == PL_REASON && s1->reason.val == R_UNREGISTERED);
    CHECK(s2->reason.tag == PL_REASON && s2->reason.val == R_UNREGISTERED);
  }
  /* The monitor by pid is still there. */
  CHECK_EQ(v->ext->watching.len, 1);
  CHECK_EQ(u->ext->watchers.len, 1);
  teardown();
}

/* -- Names ----------------------------------------------------------------- */

static void test_names(void) {
  setup();
  halo_proc_t *a = start(B_RECORD, NULL), *b = start(B_RECORD, NULL);
  char name[16] = "svc";
  CHECK_EQ(halo_name_register(&node, a, name), 0);
  strcpy(name, "xxx"); /* the node keeps its own copy */
  CHECK(halo_name_lookup(&node, "svc") == a);
  CHECK_STR_EQ(a->name, "svc");
  CHECK_EQ(halo_name_register(&node, b, "svc"), HALO_ETAKEN);
  CHECK_EQ(halo_name_register(&node, a, "other"), HALO_ETAKEN); /* a has a name */
  CHECK_EQ(halo_name_register(&node, b, ""), HALO_EINCORRECT);
  CHECK(halo_name_lookup(&node, "other") == NULL);
  CHECK_EQ(halo_name_unregister(&node, "svc"), 0);
  CHECK_EQ(halo_name_unregister(&node, "svc"), HALO_ENAMEUNKNOWN);
  CHECK(halo_name_lookup(&node, "svc") == NULL);
  CHECK(a->name == NULL);
  CHECK_EQ(halo_name_register(&node, b, "svc"), 0);
  CHECK_EQ(halo_name_register(&node, a, "other"), 0);
  CHECK(halo_name_lookup(&node, "svc") == b);
  /* The name goes with its process and can be taken again. */
  CHECK_EQ(halo_proc_kill(&node, b), 0);
  CHECK(halo_name_lookup(&node, "svc") == NULL);
  halo_proc_t *c = start(B_RECORD, "svc");
  CHECK(halo_name_lookup(&node, "svc") == c);
  CHECK_EQ(node.names.len, 2);
  teardown();
}

/* -- Kill ------------------------------------------------------------------ */

static void test_kill(void) {
  setup();
  halo_proc_t *m = start(B_RECORD, NULL);

  /* An idle process terminates at once with reason "kill". */
  halo_proc_t *i = start(B_RECORD, "idle");
  uint64_t iid = i->id;
  CHECK_EQ(halo_rel_add(&node, m, HALO_REL_MONITOR, i, HALO_TARGET_PID, NULL, 0), 0);
  CHECK_EQ(halo_proc_kill(&node, i), 0);
  CHECK(halo_proc_find(&node, iid) == NULL);
  CHECK(halo_name_lookup(&node, "idle") == NULL);
  const ev_t *term = nth_ev(EV_TERM, iid, 0);
  CHECK(term && term->tag == PL_REASON && term->val == R_KILL);
  CHECK_EQ(count_ev(EV_FREE, iid), 1);
  CHECK_EQ(node.counters.terminated, 1);
  CHECK_EQ(node.nprocs, 1);

  /* An awake process with queued messages: they are dropped, and its
   * record, still linked in the run queue, is recycled safely. */
  halo_proc_t *q = start(B_RECORD, NULL);
  uint64_t qid = q->id;
  CHECK_EQ(send_int(q, 1), 0);
  CHECK_EQ(send_int(q, 2), 0);
  CHECK(q->flags & HALO_PF_RUNQ);
  CHECK_EQ(halo_proc_kill(&node, q), 0);
  CHECK(halo_proc_find(&node, qid) == NULL);
  RUN_UNTIL(count_ev(EV_MSG, m->id) == 1 && node.rq_head == NULL, 2000);
  CHECK_EQ(count_ev(EV_MSG, qid), 0);
  CHECK(node.rq_head == NULL);

  /* A process suspended in its callback becomes a zombee: its watchers
   * hear at once, terminate never runs, the record goes when the sleep ends. */
  halo_proc_t *z = start(B_SLEEP, "zzz");
  uint64_t zid = z->id;
  CHECK_EQ(halo_rel_add(&node, m, HALO_REL_MONITOR, z, HALO_TARGET_PID, NULL, 0), 0);
  uint64_t t0 = uv_hrtime();
  CHECK_EQ(send_int(z, 200), 0);
  RUN_UNTIL(z->wait == HALO_WAIT_SLEEP, 2000);
  CHECK_EQ(halo_proc_kill(&node, z), 0);
  CHECK(halo_proc_find(&node, zid) == z);
  CHECK_EQ(z->state, HALO_STATE_ZOMBEE);
  CHECK(z->flags & HALO_PF_DEAD);
  CHECK_EQ(count_ev(EV_TERM, zid), 0);
  CHECK(halo_name_lookup(&node, "zzz") == NULL);
  CHECK_EQ(count_ev(EV_ENDED, zid), 1); /* at the kill, not when the record goes */
  CHECK_EQ(count_ev(EV_FREE, zid), 0);
  CHECK_EQ(node.state_count[halo_state_index(HALO_STATE_ZOMBEE)], 1);
  CHECK_EQ(node.nprocs, 2);
  CHECK_EQ(halo_node_alive(&node), 1);
  CHECK_EQ(node.counters.terminated, 3);
  CHECK_EQ(halo_proc_kill(&node, z), 0); /* again: nothing */
  CHECK_EQ(send_int(z, 1), HALO_ETERMINATED);
  RUN_UNTIL(count_ev(EV_MSG, m->id) == 2, 2000);
  const ev_t *d = nth_ev(EV_MSG, m->id, 1);
  CHECK(d && d->kind == HALO_MSG_DOWN && d->flags == HALO_MF_REASON && d->from == zid &&
        d->tag == PL_REASON && d->val == R_KILL);
  run_for(10);
  CHECK(halo_proc_find(&node, zid) == z); /* still sleeping */
  RUN_UNTIL(halo_proc_find(&node, zid) == NULL, 2000);
  CHECK(uv_hrtime() - t0 >= 200000000u);
  CHECK_EQ(count_ev(EV_WAKE, zid), 0); /* it never ran again */
  CHECK_EQ(count_ev(EV_FREE, zid), 1);
  CHECK_EQ(count_ev(EV_ENDED, zid), 1); /* not again at the reap */
  CHECK_EQ(node.nprocs, 1);
  CHECK_EQ(node.state_count[halo_state_index(HALO_STATE_ZOMBEE)], 0);
  CHECK_EQ(node.ntimers, 0);

  /* A caller killed while it waits for a reply: the reply reaps it. */
  halo_proc_t *mute = start(B_RECORD, NULL), *c = start(B_CALL, NULL);
  F(mute)->no_reply = 1;
  F(c)->target = pid_of(mute);
  F(c)->timeout = 5000;
  uint64_t cid = c->id;
  CHECK_EQ(send_int(c, 3), 0);
  RUN_UNTIL(F(mute)->held_ref != 0, 2000);
  CHECK_EQ(halo_proc_kill(&node, c), 0);
  CHECK_EQ(c->state, HALO_STATE_ZOMBEE);
  CHECK_EQ(halo_reply(&node, mute, F(mute)->held_from, F(mute)->held_ref, pl_int(1)), 0);
  CHECK(halo_proc_find(&node, cid) == NULL);
  CHECK_EQ(node.ntimers, 0);
  CHECK_EQ(node.counters.call_errors_local, 0);

  /* A process that kills itself inside its callback: a zombee until the
   * callback returns, then reaped. Its other messages are dropped. */
  halo_proc_t *k = start(B_SUICIDE, NULL);
  uint64_t kid = k->id;
  CHECK_EQ(halo_rel_add(&node, m, HALO_REL_MONITOR, k, HALO_TARGET_PID, NULL, 0), 0);
  CHECK_EQ(send_int(k, 1), 0);
  CHECK_EQ(send_int(k, 2), 0);
  RUN_UNTIL(halo_proc_find(&node, kid) == NULL, 2000);
  CHECK_EQ(count_ev(EV_MSG, kid), 1);
  CHECK_EQ(count_ev(EV_TERM, kid), 0);
  CHECK_EQ(count_ev(EV_FREE, kid), 1);
  CHECK_EQ(count_ev(EV_ENDED, kid), 1);
  RUN_UNTIL(count_ev(EV_MSG, m->id) == 3, 2000);

  /* A zombee still asleep when the node stops is reaped by the stop. */
  halo_proc_t *z2 = start(B_SLEEP, NULL);
  uint64_t z2id = z2->id;
  CHECK_EQ(send_int(z2, 10000), 0);
  RUN_UNTIL(z2->wait == HALO_WAIT_SLEEP, 2000);
  CHECK_EQ(halo_proc_kill(&node, z2), 0);
  halo_node_stop(&node, 0);
  RUN_UNTIL(node.stopped, 2000);
  CHECK_EQ(count_ev(EV_FREE, z2id), 1);
  CHECK_EQ(count_ev(EV_TERM, z2id), 0);
  CHECK_EQ(count_ev(EV_ENDED, z2id), 1); /* at the kill; the stop's reap adds none */
  teardown();
}

/* The node keeps at most a few thousand freed records for reuse and frees
 * the rest: a process reaped right after its own run must not be touched
 * after that. */
static void test_kill_self_free_list_full(void) {
  setup();
  halo_proc_t *k = start(B_SUICIDE, NULL);
  halo_proc_t **many = malloc(5000 * sizeof *many);
  for (int i = 0; i < 5000; i++) many[i] = start(B_RECORD, NULL);
  for (int i = 0; i < 5000; i++) CHECK_EQ(halo_proc_kill(&node, many[i]), 0);
  free(many);
  CHECK_EQ(node.nprocs, 1);
  CHECK(node.nfree_procs < 5000); /* full: the next freed record is free()d */
  uint64_t kid = k->id;
  CHECK_EQ(send_int(k, 1), 0);
  CHECK_EQ(send_int(k, 2), 0);
  RUN_UNTIL(halo_proc_find(&node, kid) == NULL, 2000);
  CHECK_EQ(count_ev(EV_MSG, kid), 1);
  teardown();
}

/* -- Introspection --------------------------------------------------------- */

static void test_process_list(void) {
  setup();
  halo_spawn_opts_t o = {0};
  halo_proc_t *p[4];
  const char *beh[] = {"alpha.worker", "beta.worker", "gamma", "delta"};
  const char *names[] = {"w1", "w2", NULL, "x"};
  const char *apps[] = {"app1", "app2", NULL, "app1"};
  int msgs[] = {3, 5, 0, 1};
  for (int k = 0; k < 4; k++) {
    o.behavior = beh[k];
    o.name = names[k];
    o.application = apps[k];
    p[k] = spawn_opts(B_RECORD, &o);
    CHECK_EQ(halo_proc_start(&node, p[k], NULL), HALO_RUN_IDLE);
  }
  /* Mailboxes stay filled: the loop does not run during the checks. */
  for (int k = 0; k < 4; k++)
    for (int j = 0; j < msgs[k]; j++) CHECK_EQ(send_int(p[k], (uint64_t)j), 0);

  halo_proc_filter_t f;
  size_t n;
  halo_proc_t **l;
#define EXPECT(...)                                                                      \
  do {                                                                                   \
    halo_proc_t *want_[] = {__VA_ARGS__};                                                \
    size_t nwant_ = sizeof want_ / sizeof want_[0];                                      \
    l = halo_process_list(&node, &f, &n);                                                \
    CHECK(l != NULL);                                                                    \
    CHECK_EQ(n, nwant_);                                                                 \
    for (size_t k_ = 0; l && k_ < n && k_ < nwant_; k_++) CHECK(l[k_] == want_[k_]);     \
    free(l);                                                                             \
  } while (0)

  halo_proc_filter_init(&f);
  EXPECT(p[0], p[1], p[2], p[3]); /* spawn order */
  f.limit = 2;
  EXPECT(p[0], p[1]);
  halo_proc_filter_init(&f);
  f.sort_by = HALO_KEY_MAILBOX;
  EXPECT(p[1], p[0], p[3], p[2]);
  f.limit = 3;
  EXPECT(p[1], p[0], p[3]);
  halo_proc_filter_init(&f);
  f.behavior = "worker";
  EXPECT(p[0], p[1]);
  halo_proc_filter_init(&f);
  f.name = "w";
  EXPECT(p[0], p[1]);
  halo_proc_filter_init(&f);
  f.application = "app1";
  EXPECT(p[0], p[3]);
  halo_proc_filter_init(&f);
  f.state = HALO_STATE_SLEEP;
  EXPECT(p[2]);
  halo_proc_filter_init(&f);
  f.has_min = 1u << HALO_KEY_MAILBOX;
  f.min[HALO_KEY_MAILBOX] = 2;
  EXPECT(p[0], p[1]);
  halo_proc_filter_init(&f);
  f.has_max = 1u << HALO_KEY_MAILBOX;
  f.max[HALO_KEY_MAILBOX] = 1;
  f.sort_by = HALO_KEY_MESSAGES_IN;
  EXPECT(p[3], p[2]);
  /* Ties sort by spawn order. */
  halo_proc_filter_init(&f);
  f.sort_by = HALO_KEY_WAKEUPS;
  EXPECT(p[0], p[1], p[3], p[2]);
  f.limit = 2; /* the heap keeps the first of equal rows */
  EXPECT(p[0], p[1]);
  f.sort_by = HALO_KEY_MAILBOX;
  f.limit = 1;
  EXPECT(p[1]);
  f.limit = 2;
  f.has_max = 1u << HALO_KEY_MAILBOX;
  f.max[HALO_KEY_MAILBOX] = 3;
  EXPECT(p[0], p[3]);
  /* Ascending, the text keys, PID and the matched count. */
  size_t matched = 0;
  halo_proc_filter_init(&f);
  f.sort_by = HALO_KEY_MAILBOX;
  f.ascending = 1;
  f.limit = 2;
  f.matched = &matched;
  EXPECT(p[2], p[3]);
  CHECK_EQ(matched, 4);
  f.sort_by = HALO_KEY_PID;
  f.ascending = 0;
  EXPECT(p[3], p[2]);
  f.sort_by = HALO_KEY_NAME; /* w1, w2, "", "" ascending: unnamed first */
  f.ascending = 1;
  f.limit = 0;
  l = halo_process_list(&node, &f, &n);
  CHECK_EQ(n, 4);
  for (size_t i = 1; l && i < n; i++)
    CHECK(strcmp(l[i - 1]->name ? l[i - 1]->name : "", l[i]->name ? l[i]->name : "") <= 0);
  free(l);
  halo_proc_filter_init(&f);
  f.behavior = "worker";
  f.limit = 1;
  f.matched = &matched;
  EXPECT(p[0]);
  CHECK_EQ(matched, 2);
  halo_proc_filter_init(&f);
  f.behavior = "nothing";
  l = halo_process_list(&node, &f, &n);
  CHECK_EQ(n, 0);
  free(l);
#undef EXPECT

  CHECK_EQ(halo_proc_key_parse("mailbox"), HALO_KEY_MAILBOX);
  CHECK_EQ(halo_proc_key_parse("drain"), HALO_KEY_DRAIN);
  CHECK_EQ(halo_proc_key_parse("nope"), -1);
  CHECK_EQ(halo_proc_key_parse("application"), HALO_KEY_APPLICATION);
  CHECK(halo_proc_key_is_text(HALO_KEY_NAME) && !halo_proc_key_is_text(HALO_KEY_PID));
  CHECK_EQ(halo_proc_state_parse("wait response"), HALO_STATE_WAIT);
  CHECK_EQ(halo_proc_state_parse("Wait_Response"), HALO_STATE_WAIT);
  CHECK_EQ(halo_proc_state_parse("ZOMBEE"), HALO_STATE_ZOMBEE);
  CHECK_EQ(halo_proc_state_parse("sleeping"), 0);
  CHECK_EQ(halo_proc_state_parse("slee"), 0);
  CHECK_STR_EQ(halo_proc_key_name(HALO_KEY_MESSAGES_OUT), "messages_out");

  halo_proc_short_t si;
  halo_proc_short_info(&node, p[1], node.now, &si);
  CHECK_EQ(si.pid.id, p[1]->id);
  CHECK_STR_EQ(si.name, "w2");
  CHECK_STR_EQ(si.behavior, "beta.worker");
  CHECK_STR_EQ(si.application, "app2");
  CHECK_EQ(si.mailbox, 5);
  CHECK_EQ(si.messages_in, 5);
  CHECK_EQ(si.state, HALO_STATE_RUNNING);
  CHECK_STR_EQ(halo_state_name(si.state), "running");
  CHECK_STR_EQ(halo_state_name(HALO_STATE_WAIT), "wait response");
  halo_proc_short_info(&node, p[2], node.now, &si);
  CHECK_STR_EQ(si.name, "");
  CHECK_STR_EQ(si.application, "");
  CHECK_EQ(halo_proc_key_value(&node, p[1], HALO_KEY_DRAIN, node.now), 5.0 / 2.0);
  teardown();
}

static void test_process_children(void) {
  setup();
  halo_spawn_opts_t o = {0};
  halo_proc_t *root = spawn_opts(B_RECORD, &o);
  o.parent = root;
  halo_proc_t *a = spawn_opts(B_RECORD, &o), *b = spawn_opts(B_RECORD, &o);
  o.parent = a;
  halo_proc_t *a1 = spawn_opts(B_RECORD, &o);
  o.parent = b;
  halo_proc_t *b1 = spawn_opts(B_RECORD, &o);
  o.parent = a1;
  halo_proc_t *a11 = spawn_opts(B_RECORD, &o);
  size_t n;
  halo_proc_t **l = halo_process_children(&node, root->id, 0, &n);
  CHECK_EQ(n, 2);
  CHECK(l[0] == a && l[1] == b);
  free(l);
  l = halo_process_children(&node, root->id, 1, &n); /* level by level */
  CHECK_EQ(n, 5);
  halo_proc_t *want[] = {a, b, a1, b1, a11};
  for (size_t k = 0; k < n && k < 5; k++) CHECK(l[k] == want[k]);
  free(l);
  l = halo_process_children(&node, a11->id, 1, &n);
  CHECK_EQ(n, 0);
  free(l);
  teardown();
}

/* -- Node stop ------------------------------------------------------------- */

static void test_stop(void) {
  setup();
  halo_proc_t *p[4];
  uint64_t ids[4];
  for (int k = 0; k < 4; k++) {
    p[k] = start(k == 2 ? B_SLEEP : B_RECORD, NULL);
    ids[k] = p[k]->id;
  }
  CHECK_EQ(send_int(p[2], 10000), 0); /* suspended in a callback when the stop comes */
  RUN_UNTIL(p[2]->wait == HALO_WAIT_SLEEP, 2000);
  CHECK_EQ(send_int(p[1], 1), 0);      /* in the run queue when the stop comes */
  halo_node_stop(&node, 3);
  halo_node_stop(&node, 4); /* the first exit code wins */
  CHECK(!node.stopped);
  halo_proc_t *late = NULL;
  halo_spawn_opts_t o = {0};
  CHECK_EQ(halo_proc_spawn(&node, &o, &late), HALO_ENODESTOP);
  RUN_UNTIL(node.stopped, 2000);
  CHECK_EQ(node.exit_code, 3);
  CHECK_EQ(H.stopped, 1);
  /* Newest first, each with "shutdown", then the stopped hook. */
  for (int k = 0; k < 4; k++) {
    const ev_t *e = nth_ev(EV_TERM, 0, (size_t)k);
    CHECK(e && e->pid == ids[3 - k] && e->tag == PL_REASON && e->val == R_SHUTDOWN);
  }
  CHECK_EQ(count_ev(EV_TERM, 0), 4);
  CHECK(H.ev[H.nev - 1].what == EV_STOPPED);
  CHECK_EQ(count_ev(EV_MSG, ids[1]), 0); /* the stop comes before queued work */
  CHECK_EQ(count_ev(EV_FREE, 0), 4);
  CHECK_EQ(count_ev(EV_ENDED, 0), 4);
  teardown();

  /* With auto_stop, the end of the last process stops the node. */
  setup();
  node.auto_stop = 1;
  halo_proc_t *a = start(B_EXIT, NULL), *b = start(B_EXIT, NULL);
  CHECK_EQ(send_int(a, 1), 0);
  RUN_UNTIL(halo_node_alive(&node) == 1, 2000);
  CHECK(!node.stopping);
  CHECK_EQ(send_int(b, 2), 0);
  RUN_UNTIL(node.stopped, 2000);
  CHECK_EQ(node.exit_code, 0);
  CHECK_EQ(count_ev(EV_TERM, 0), 2);
  teardown();
}

/* Regression: interned behavior, kind and application names were never
 * freed, so generated behavior names grew the table without bound. */
static void test_intern_bounded(void) {
  setup();
  halo_spawn_opts_t o = {0};
  o.behavior = "parent";
  o.application = "app";
  halo_proc_t *parent = spawn_opts(B_RECORD, &o);
  CHECK_EQ(halo_proc_start(&node, parent, NULL), HALO_RUN_IDLE);
  uint32_t base = node.strings.len;
  halo_proc_t *kids[500];
  char name[32];
  for (int i = 0; i < 500; i++) {
    halo_spawn_opts_t k = {0};
    snprintf(name, sizeof name, "gen_%d", i);
    k.behavior = name;
    k.parent = parent; /* inherits the application */
    kids[i] = spawn_opts(B_RECORD, &k);
    CHECK_EQ(halo_proc_start(&node, kids[i], NULL), HALO_RUN_IDLE);
  }
  CHECK_EQ(node.strings.len, base + 500);
  halo_proc_kill(&node, parent); /* the children keep "app" alive */
  run_for(20);
  CHECK_STR_EQ(kids[0]->application, "app");
  for (int i = 0; i < 500; i++) halo_proc_kill(&node, kids[i]);
  run_for(20);
  CHECK_EQ(node.nprocs, 0);
  CHECK_EQ(node.strings.len, 5); /* the defaults only */
  teardown();
}

/* Regression: a caller that timed out and called the same callee again kept
 * every old entry in the callee's list of callers (each looked like it still
 * waited), so a caller polling an unresponsive server grew it without bound. */
static void test_callers_bounded(void) {
  setup();
  halo_proc_t *mute = start(B_RECORD, NULL), *c = start(B_CALL, NULL);
  F(mute)->no_reply = 1;
  F(c)->target = pid_of(mute);
  F(c)->timeout = 1;
  for (size_t i = 1; i <= 200; i++) {
    CHECK_EQ(send_int(c, i), 0);
    RUN_UNTIL(count_ev(EV_WAKE, c->id) == i, 2000);
  }
  CHECK_EQ(node.counters.call_errors_local, 200);
  CHECK(mute->ext && mute->ext->capcallers <= 8);
  teardown();
}

int main(void) {
  RUN_TEST(test_spawn_start);
  RUN_TEST(test_send);
  RUN_TEST(test_runq_fifo);
  RUN_TEST(test_batch);
  RUN_TEST(test_timers);
  RUN_TEST(test_call);
  RUN_TEST(test_function_process);
  RUN_TEST(test_links_monitors);
  RUN_TEST(test_names);
  RUN_TEST(test_kill);
  RUN_TEST(test_kill_self_free_list_full);
  RUN_TEST(test_process_list);
  RUN_TEST(test_process_children);
  RUN_TEST(test_stop);
  RUN_TEST(test_intern_bounded);
  RUN_TEST(test_callers_bounded);
  return check_exit_code();
}
