#include "collect.h"
#include "clock.h"
#include "errors.h"
#include "event.h"
#include "net.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* -- The catalogue ------------------------------------------------------------- */

enum src { SRC_SCALAR, SRC_LOG, SRC_EVUTIL, SRC_DEPTH, SRC_LATENCY, SRC_UTIL, SRC_PEER, SRC_ACCEPTOR, SRC_PTOP, SRC_ETOP };

enum scalar {
  S_UPTIME, S_PROCS, S_RUNNING, S_ZOMBIE, S_SPAWNED, S_SPAWN_FAILED, S_TERMINATED, S_MEM_USED, S_MEM_ALLOC,
  S_CPU_USER, S_CPU_SYS, S_CPU_CORES, S_APPS, S_APPS_RUNNING, S_NAMES, S_ALIASES, S_EVENTS, S_SEND_LOCAL,
  S_SEND_REMOTE, S_CALL_LOCAL, S_CALL_REMOTE, S_EV_PUBLISHED, S_EV_RECEIVED, S_EV_LOCAL, S_EV_REMOTE,
  S_EV_SUBS_MAX, S_CONNECTED, S_ESTABLISHED, S_LOST, S_MSGS_IN, S_MSGS_OUT, S_RUNNING_TIME, S_WAKEUPS,
  S_DEPTH_MAX, S_LAT_MAX, S_LAT_PROCS, S_UTIL_MAX, S_INIT_MAX, NSCALARS
};

enum peer_field {
  P_UPTIME, P_MSGS_IN, P_MSGS_OUT, P_BYTES_IN, P_BYTES_OUT, P_FRAG_SENT, P_FRAG_MSGS_SENT, P_FRAG_RECV,
  P_FRAG_MSGS_RECV, P_FRAG_TIMEOUTS, P_COMP_SENT, P_COMP_BYTES, P_COMP_ORIG, P_DECOMP_RECV, P_DECOMP_BYTES,
  P_DECOMP_ORIG
};

enum ptop { H_DEPTH, H_LATENCY, H_UTIL, H_INIT, H_IN, H_OUT, H_WAKEUPS, H_DRAINS, H_LIVENESS, NPTOPS };
enum etop { E_SUBS, E_PUBLISHED, E_LOCAL, E_REMOTE, NETOPS };

#define PROC_LABELS "pid,name,application,behavior"
#define EVENT_LABELS "event,producer"
#define F(name, labels, help, note, src, idx) {"halo_" name, labels, help, note, src, idx}

const halo_collect_family_t halo_collect_families[] = {
    F("acceptor_handshake_errors_total", "acceptor", "Handshake failures per acceptor (cumulative).",
      "acceptor = host:port the node listens on; no series while the network is off", SRC_ACCEPTOR, 0),
    F("applications_running", "", "Running applications.", "set by halo.application on every state change", SRC_SCALAR, S_APPS_RUNNING),
    F("applications_total", "", "Loaded applications.", "halo has no system application: only the node's own", SRC_SCALAR, S_APPS),
    F("call_errors_local_total", "", "Failed call deliveries to local targets (cumulative).", NULL, SRC_SCALAR, S_CALL_LOCAL),
    F("call_errors_remote_total", "", "Failed call deliveries to remote targets (cumulative).", NULL, SRC_SCALAR, S_CALL_REMOTE),
    F("connected_nodes_total", "", "Currently connected peer nodes.", "peers with an established, ready session", SRC_SCALAR, S_CONNECTED),
    F("connections_established_total", "", "Connections established since start (cumulative).", "absent while the network is off", SRC_SCALAR, S_ESTABLISHED),
    F("connections_lost_total", "", "Connections lost since start (cumulative).", "absent while the network is off", SRC_SCALAR, S_LOST),
    F("cpu_cores", "", "CPUs available to the node.", "uv_available_parallelism()", SRC_SCALAR, S_CPU_CORES),
    F("cpu_system_seconds", "", "System CPU time of the OS process in seconds (cumulative).", "getrusage", SRC_SCALAR, S_CPU_SYS),
    F("cpu_user_seconds", "", "User CPU time of the OS process in seconds (cumulative).", "getrusage", SRC_SCALAR, S_CPU_USER),
    F("event_local_sent_top", EVENT_LABELS, "Top-N events by deliveries to local subscribers.", "only events with > 0", SRC_ETOP, E_LOCAL),
    F("event_published_top", EVENT_LABELS, "Top-N events by messages published.", "only events with > 0", SRC_ETOP, E_PUBLISHED),
    F("event_remote_sent_top", EVENT_LABELS, "Top-N events by messages sent to remote nodes.", "only events with > 0", SRC_ETOP, E_REMOTE),
    F("event_subscribers_max", "", "Largest subscriber count of any event.", "link and monitor subscribers, local and remote", SRC_SCALAR, S_EV_SUBS_MAX),
    F("event_subscribers_top", EVENT_LABELS, "Top-N events by subscriber count.", "every event is a candidate, zero included", SRC_ETOP, E_SUBS),
    F("event_utilization", "state", "Events per utilization state.",
      "states active, on_demand, idle, no_subscribers, no_publishing (first match wins), all five every scrape", SRC_EVUTIL, 0),
    F("events_local_sent_total", "", "Event deliveries to local subscribers (cumulative).", "one per subscriber", SRC_SCALAR, S_EV_LOCAL),
    F("events_published_total", "", "Events published by local producers (cumulative).", NULL, SRC_SCALAR, S_EV_PUBLISHED),
    F("events_received_total", "", "Event messages received from remote nodes (cumulative).", "counted by the transport", SRC_SCALAR, S_EV_RECEIVED),
    F("events_remote_sent_total", "", "Event messages sent to remote nodes (cumulative).", NULL, SRC_SCALAR, S_EV_REMOTE),
    F("log_messages_total", "level", "Log records per level (cumulative).",
      "levels trace, debug, info, warning, error, panic, counted once per record that passes the level check", SRC_LOG, 0),
    F("mailbox_depth_distribution", "range", "Processes per mailbox depth range.",
      "ranges 1, 5, 10, 50, 100, 500, 1K, 5K, 10K, 10K+ (inclusive upper bounds); empty mailboxes not counted", SRC_DEPTH, 0),
    F("mailbox_depth_max", "", "Deepest mailbox (messages).", "all four queues", SRC_SCALAR, S_DEPTH_MAX),
    F("mailbox_depth_top", PROC_LABELS, "Top-N processes by mailbox depth.", "only non-empty mailboxes", SRC_PTOP, H_DEPTH),
    F("mailbox_latency_distribution", "range", "Processes per mailbox latency range.",
      "age of the oldest queued message; ranges 1ms .. 60s, 60s+; only latency > 0; always measured", SRC_LATENCY, 0),
    F("mailbox_latency_max_seconds", "", "Largest mailbox latency in seconds.", NULL, SRC_SCALAR, S_LAT_MAX),
    F("mailbox_latency_processes", "", "Processes with mailbox latency > 0 (stressed).", NULL, SRC_SCALAR, S_LAT_PROCS),
    F("mailbox_latency_top_seconds", PROC_LABELS, "Top-N processes by mailbox latency in seconds.", NULL, SRC_PTOP, H_LATENCY),
    F("memory_alloc_bytes", "", "Live heap bytes.", "Lua heap + malloc'ed C heap in use (mallinfo2)", SRC_SCALAR, S_MEM_ALLOC),
    F("memory_used_bytes", "", "Memory obtained from the OS in bytes.", "resident set size", SRC_SCALAR, S_MEM_USED),
    F("node_uptime_seconds", "", "Node uptime in whole seconds.", NULL, SRC_SCALAR, S_UPTIME),
    F("process_drains_top", PROC_LABELS, "Top-N processes by messages per wakeup.", "skips wakeups = 0 and messages in = 0", SRC_PTOP, H_DRAINS),
    F("process_init_time_max_seconds", "", "Longest init time in seconds.", "processes with init time 0 skipped", SRC_SCALAR, S_INIT_MAX),
    F("process_init_time_top_seconds", PROC_LABELS, "Top-N processes by init time in seconds.", "init time 0 skipped", SRC_PTOP, H_INIT),
    F("process_liveness_bottom", PROC_LABELS, "Bottom-N processes by liveness score.",
      "running ns / (uptime s x mailbox latency ns); excludes uptime < 60 s, messages in = 0, latency 0, zombees", SRC_PTOP, H_LIVENESS),
    F("process_messages_in", "", "Messages received, summed over live processes.", "drops when processes end", SRC_SCALAR, S_MSGS_IN),
    F("process_messages_in_top", PROC_LABELS, "Top-N processes by messages received.", "only > 0", SRC_PTOP, H_IN),
    F("process_messages_out", "", "Messages sent, summed over live processes.", "drops when processes end", SRC_SCALAR, S_MSGS_OUT),
    F("process_messages_out_top", PROC_LABELS, "Top-N processes by messages sent.", "only > 0", SRC_PTOP, H_OUT),
    F("process_running_time_seconds", "", "Callback running time in seconds, summed over live processes.", NULL, SRC_SCALAR, S_RUNNING_TIME),
    F("process_utilization_distribution", "range", "Processes per utilization range.",
      "running time / uptime; ranges 1%, 5%, 10%, 25%, 50%, 75%, 90%, 90%+; uptime 0 or utilization 0 skipped", SRC_UTIL, 0),
    F("process_utilization_max", "", "Highest utilization (ratio 0..1).", NULL, SRC_SCALAR, S_UTIL_MAX),
    F("process_utilization_top", PROC_LABELS, "Top-N processes by utilization (ratio).", NULL, SRC_PTOP, H_UTIL),
    F("process_wakeups", "", "Wakeups, summed over live processes.", NULL, SRC_SCALAR, S_WAKEUPS),
    F("process_wakeups_top", PROC_LABELS, "Top-N processes by wakeups.", "wakeups 0 skipped", SRC_PTOP, H_WAKEUPS),
    F("processes_running", "", "Processes in state running.", NULL, SRC_SCALAR, S_RUNNING),
    F("processes_spawn_failed_total", "", "Failed spawn attempts (cumulative).", NULL, SRC_SCALAR, S_SPAWN_FAILED),
    F("processes_spawned_total", "", "Successful spawns (cumulative).", NULL, SRC_SCALAR, S_SPAWNED),
    F("processes_terminated_total", "", "Terminated processes (cumulative).", NULL, SRC_SCALAR, S_TERMINATED),
    F("processes_total", "", "Processes in the table (all states).", NULL, SRC_SCALAR, S_PROCS),
    F("processes_zombie", "", "Processes in state zombee.", NULL, SRC_SCALAR, S_ZOMBIE),
    F("registered_aliases_total", "", "Registered aliases.", NULL, SRC_SCALAR, S_ALIASES),
    F("registered_events_total", "", "Registered events.", NULL, SRC_SCALAR, S_EVENTS),
    F("registered_names_total", "", "Registered process names.", NULL, SRC_SCALAR, S_NAMES),
    F("remote_bytes_in_total", "remote_node", "Wire bytes received from the peer (cumulative).", NULL, SRC_PEER, P_BYTES_IN),
    F("remote_bytes_out_total", "remote_node", "Wire bytes sent to the peer (cumulative).", NULL, SRC_PEER, P_BYTES_OUT),
    F("remote_compressed_bytes_sent_total", "remote_node", "Bytes of compressed messages after compression (cumulative).", NULL, SRC_PEER, P_COMP_BYTES),
    F("remote_compressed_orig_bytes_sent_total", "remote_node", "Bytes of compressed messages before compression (cumulative).", NULL, SRC_PEER, P_COMP_ORIG),
    F("remote_compressed_sent_total", "remote_node", "Messages sent compressed (cumulative).", NULL, SRC_PEER, P_COMP_SENT),
    F("remote_decompressed_bytes_recv_total", "remote_node", "Bytes of compressed messages before decompression (cumulative).", NULL, SRC_PEER, P_DECOMP_BYTES),
    F("remote_decompressed_orig_recv_total", "remote_node", "Bytes of compressed messages after decompression (cumulative).", NULL, SRC_PEER, P_DECOMP_ORIG),
    F("remote_decompressed_recv_total", "remote_node", "Compressed messages received and decompressed (cumulative).", NULL, SRC_PEER, P_DECOMP_RECV),
    F("remote_fragment_messages_received_total", "remote_node", "Messages reassembled from fragments (cumulative).", NULL, SRC_PEER, P_FRAG_MSGS_RECV),
    F("remote_fragment_messages_sent_total", "remote_node", "Messages sent in fragments (cumulative).", NULL, SRC_PEER, P_FRAG_MSGS_SENT),
    F("remote_fragment_timeouts_total", "remote_node", "Reassemblies abandoned on timeout (cumulative).", NULL, SRC_PEER, P_FRAG_TIMEOUTS),
    F("remote_fragments_received_total", "remote_node", "Fragments received (cumulative).", NULL, SRC_PEER, P_FRAG_RECV),
    F("remote_fragments_sent_total", "remote_node", "Fragments sent (cumulative).", NULL, SRC_PEER, P_FRAG_SENT),
    F("remote_messages_in_total", "remote_node", "Messages received from the peer (cumulative).", NULL, SRC_PEER, P_MSGS_IN),
    F("remote_messages_out_total", "remote_node", "Messages sent to the peer (cumulative).", NULL, SRC_PEER, P_MSGS_OUT),
    F("remote_node_uptime_seconds", "remote_node", "The peer node's uptime in whole seconds.", "from the handshake, not the connection age", SRC_PEER, P_UPTIME),
    F("send_errors_local_total", "", "Failed send deliveries to local targets (cumulative).", NULL, SRC_SCALAR, S_SEND_LOCAL),
    F("send_errors_remote_total", "", "Failed send deliveries to remote targets (cumulative).", NULL, SRC_SCALAR, S_SEND_REMOTE),
};
const int halo_collect_nfamilies = (int)(sizeof halo_collect_families / sizeof halo_collect_families[0]);

const char *const halo_collect_absent[] = {NULL};

/* Range labels and inclusive upper bounds of the distributions. */
static const char *const depth_labels[] = {"1", "5", "10", "50", "100", "500", "1K", "5K", "10K", "10K+"};
static const uint32_t depth_bounds[] = {1, 5, 10, 50, 100, 500, 1000, 5000, 10000};
static const char *const latency_labels[] = {"1ms", "5ms", "10ms", "50ms", "100ms", "500ms", "1s", "5s", "10s", "30s", "60s", "60s+"};
static const uint64_t latency_bounds[] = {1000000, 5000000, 10000000, 50000000, 100000000, 500000000,
                                          1000000000, 5000000000, 10000000000, 30000000000, 60000000000};
static const char *const util_labels[] = {"1%", "5%", "10%", "25%", "50%", "75%", "90%", "90%+"};
static const double util_bounds[] = {.01, .05, .10, .25, .50, .75, .90};
static const char *const log_labels[] = {"trace", "debug", "info", "warning", "error", "panic"};
static const char *const evutil_labels[] = {"active", "on_demand", "idle", "no_subscribers", "no_publishing"};
#define NDEPTH 10
#define NLATENCY 12
#define NUTIL 8

/* -- Bounded heaps ------------------------------------------------------------- */

/* The N best of a pass: the root is the worst entry (smallest k); a candidate
 * replaces it only when strictly better, so ties keep the earlier one. */
typedef struct entry {
  double k, v;
  uint64_t seq; /* order of arrival: of equal entries the later is the worse */
  const void *item;
  uint64_t id;  /* a process's id: its record is read again only if it still has it */
} entry_t;

typedef struct heap {
  entry_t *e;
  uint32_t len;
  uint64_t seq;
} heap_t;

static inline int worse(const entry_t *a, const entry_t *b) { return a->k < b->k || (a->k == b->k && a->seq > b->seq); }

static void heap_sift(entry_t *e, uint32_t len, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < len && worse(&e[l], &e[m])) m = l;
    if (r < len && worse(&e[r], &e[m])) m = r;
    if (m == i) return;
    entry_t t = e[i];
    e[i] = e[m];
    e[m] = t;
    i = m;
  }
}

static void heap_push(heap_t *h, uint32_t cap, double k, double v, const void *item, uint64_t id) {
  if (h->len < cap) {
    uint32_t i = h->len++;
    h->e[i] = (entry_t){k, v, ++h->seq, item, id};
    while (i) {
      uint32_t p = (i - 1) / 2;
      if (!worse(&h->e[i], &h->e[p])) break;
      entry_t t = h->e[i];
      h->e[i] = h->e[p];
      h->e[p] = t;
      i = p;
    }
  } else if (k > h->e[0].k) {
    h->e[0] = (entry_t){k, v, ++h->seq, item, id};
    heap_sift(h->e, h->len, 0);
  }
}

/* The common case, inlined: the heap is full and the candidate is no better. */
static inline void heap_offer(heap_t *h, uint32_t cap, double k, double v, const void *item, uint64_t id) {
  if (h->len < cap || k > h->e[0].k) heap_push(h, cap, k, v, item, id);
}

/* -- Collection ------------------------------------------------------------------ */

struct halo_collect {
  halo_node_t *n;
  halo_collect_opts_t o;
  halo_proc_t *cursor;   /* the next record of the pass, NULL at its end */
  int started;
  entry_t *entries;      /* the heaps' room */
  /* the pass's sums and maxima so far */
  uint64_t in, out, run_sum, wakeups, depth_max, lat_max, lat_procs, init_max;
  double util_max;
  double s[NSCALARS];
  uint8_t have[NSCALARS];
  double depth[NDEPTH], latency[NLATENCY], util[NUTIL], evutil[5];
  heap_t ptop[NPTOPS], etop[NETOPS];
  halo_peer_t **peers;
  uint32_t npeers;
  uint32_t top_n;
};
typedef struct halo_collect collected_t;

static void set(collected_t *c, int i, double v) {
  c->s[i] = v;
  c->have[i] = 1;
}

static double rss_bytes(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return 0;
  ssize_t r = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (r <= 0) return 0;
  buf[r] = 0;
  long size, pages;
  if (sscanf(buf, "%ld %ld", &size, &pages) != 2) return 0;
  return (double)pages * (double)sysconf(_SC_PAGESIZE);
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static void collect_node(halo_node_t *n, const halo_collect_opts_t *o, collected_t *c, uint64_t now) {
  const halo_node_counters_t *k = &n->counters;
  set(c, S_UPTIME, (double)((now - n->t_start) / 1000000000u));
  set(c, S_PROCS, n->nprocs);
  set(c, S_RUNNING, n->state_count[halo_state_index(HALO_STATE_RUNNING)]);
  set(c, S_ZOMBIE, n->state_count[halo_state_index(HALO_STATE_ZOMBEE)]);
  set(c, S_SPAWNED, (double)k->spawned);
  set(c, S_SPAWN_FAILED, (double)k->spawn_failed);
  set(c, S_TERMINATED, (double)k->terminated);
  set(c, S_MEM_USED, rss_bytes());
  set(c, S_MEM_ALLOC, o->lua_heap + (double)mallinfo2().uordblks);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  set(c, S_CPU_USER, tv_s(ru.ru_utime));
  set(c, S_CPU_SYS, tv_s(ru.ru_stime));
  set(c, S_CPU_CORES, uv_available_parallelism());
  set(c, S_APPS, o->apps_total);
  set(c, S_APPS_RUNNING, o->apps_running);
  set(c, S_NAMES, (double)n->names.len);
  set(c, S_ALIASES, (double)n->aliases.len);
  set(c, S_EVENTS, (double)n->events.len);
  set(c, S_SEND_LOCAL, (double)k->send_errors_local);
  set(c, S_SEND_REMOTE, (double)k->send_errors_remote);
  set(c, S_CALL_LOCAL, (double)k->call_errors_local);
  set(c, S_CALL_REMOTE, (double)k->call_errors_remote);
  set(c, S_EV_PUBLISHED, (double)k->events_published);
  set(c, S_EV_RECEIVED, (double)k->events_received);
  set(c, S_EV_LOCAL, (double)k->events_local_sent);
  set(c, S_EV_REMOTE, (double)k->events_remote_sent);
}

/* The pass over the process table, at most budget records; 1 when it is done. */
static int collect_procs(collected_t *c, uint32_t budget) {
  uint64_t now = halo_clock_ns();
  uint64_t in = c->in, out = c->out, run_sum = c->run_sum, wakeups = c->wakeups, depth_max = c->depth_max,
           lat_max = c->lat_max, lat_procs = c->lat_procs, init_max = c->init_max;
  double util_max = c->util_max;
  const uint32_t N = c->top_n;
  heap_t *h = c->ptop;
  halo_proc_t *p = c->cursor;
  for (; p && budget; p = p->next, budget--) {
    halo_proc_t *nx = p->next; /* the list is walked cold: fetch the next record while this one is read */
    if (nx) {
      __builtin_prefetch(nx);
      __builtin_prefetch((const char *)nx + 64);
      __builtin_prefetch((const char *)nx + 128);
    }
    /* Only a process suspended inside a callback has t_suspend set (and its
     * open time counted): testing wait first spares the record's last cache line. */
    uint64_t run = p->running_ns;
    if (p->wait > HALO_WAIT_RECEIVE && p->t_suspend && now > p->t_suspend) run += now - p->t_suspend;
    uint64_t pin = p->msgs_in, pwake = p->wakeups;
    in += pin;
    out += p->msgs_out;
    run_sum += run;
    wakeups += pwake;
    uint32_t depth = halo_mailbox_len(&p->mb);
    uint64_t lat = 0;
    if (depth) {
      int b = 0;
      while (b < NDEPTH - 1 && depth > depth_bounds[b]) b++;
      c->depth[b]++;
      if (depth > depth_max) depth_max = depth;
      heap_offer(&h[H_DEPTH], N, depth, depth, p, p->id);
      lat = halo_mailbox_latency(&p->mb, now);
      if (lat) {
        b = 0;
        while (b < NLATENCY - 1 && lat > latency_bounds[b]) b++;
        c->latency[b]++;
        lat_procs++;
        if (lat > lat_max) lat_max = lat;
        heap_offer(&h[H_LATENCY], N, (double)lat, (double)lat / 1e9, p, p->id);
      }
    }
    uint64_t up = now > p->t_spawn ? (now - p->t_spawn) / 1000000000u : 0;
    if (up && run) {
      double u = (double)run / ((double)up * 1e9);
      if (u > 1) u = 1;
      int b = 0;
      while (b < NUTIL - 1 && u > util_bounds[b]) b++;
      c->util[b]++;
      if (u > util_max) util_max = u;
      heap_offer(&h[H_UTIL], N, u, u, p, p->id);
    }
    if (p->init_ns) {
      if (p->init_ns > init_max) init_max = p->init_ns;
      heap_offer(&h[H_INIT], N, (double)p->init_ns, (double)p->init_ns / 1e9, p, p->id);
    }
    if (pin) heap_offer(&h[H_IN], N, (double)pin, (double)pin, p, p->id);
    if (p->msgs_out) heap_offer(&h[H_OUT], N, (double)p->msgs_out, (double)p->msgs_out, p, p->id);
    if (pwake) {
      heap_offer(&h[H_WAKEUPS], N, (double)pwake, (double)pwake, p, p->id);
      if (pin) heap_offer(&h[H_DRAINS], N, (double)pin / (double)pwake, (double)pin / (double)pwake, p, p->id);
    }
    if (up >= 60 && pin && lat && p->state != HALO_STATE_ZOMBEE) {
      double score = (double)run / ((double)up * (double)lat);
      heap_offer(&h[H_LIVENESS], N, -score, score, p, p->id); /* bottom-N: the lowest scores win */
    }
  }
  c->cursor = p;
  c->in = in, c->out = out, c->run_sum = run_sum, c->wakeups = wakeups, c->depth_max = depth_max;
  c->lat_max = lat_max, c->lat_procs = lat_procs, c->init_max = init_max, c->util_max = util_max;
  return p == NULL;
}

/* The pass's figures as scalars (once it is done). */
static void procs_done(collected_t *c) {
  set(c, S_MSGS_IN, (double)c->in);
  set(c, S_MSGS_OUT, (double)c->out);
  set(c, S_RUNNING_TIME, (double)c->run_sum / 1e9);
  set(c, S_WAKEUPS, (double)c->wakeups);
  set(c, S_DEPTH_MAX, (double)c->depth_max);
  set(c, S_LAT_MAX, (double)c->lat_max / 1e9);
  set(c, S_LAT_PROCS, (double)c->lat_procs);
  set(c, S_UTIL_MAX, c->util_max);
  set(c, S_INIT_MAX, (double)c->init_max / 1e9);
}

static void collect_events(halo_node_t *n, collected_t *c) {
  uint32_t subs_max = 0;
  for (size_t i = 0; i < n->events.cap; i++) {
    const halo_event_t *ev = n->events.slots[i].val;
    if (!ev) continue;
    if (ev->nsubs > subs_max) subs_max = ev->nsubs;
    const char *state = halo_event_utilization(ev);
    for (int s = 0; s < 5; s++)
      if (!strcmp(state, evutil_labels[s])) c->evutil[s]++;
    heap_offer(&c->etop[E_SUBS], c->top_n, ev->nsubs, ev->nsubs, ev, 0);
    if (ev->published) heap_offer(&c->etop[E_PUBLISHED], c->top_n, (double)ev->published, (double)ev->published, ev, 0);
    if (ev->local_sent) heap_offer(&c->etop[E_LOCAL], c->top_n, (double)ev->local_sent, (double)ev->local_sent, ev, 0);
    if (ev->remote_sent) heap_offer(&c->etop[E_REMOTE], c->top_n, (double)ev->remote_sent, (double)ev->remote_sent, ev, 0);
  }
  set(c, S_EV_SUBS_MAX, subs_max);
}

static int collect_net(halo_net_t *net, collected_t *c) {
  uint32_t connected = 0;
  if (net) {
    c->peers = malloc((net->peers.len ? net->peers.len : 1) * sizeof *c->peers);
    if (!c->peers) return HALO_ENOMEM;
    for (size_t i = 0; i < net->peers.cap; i++) {
      halo_peer_t *p = net->peers.slots[i].val;
      if (p && p->ready && p->live > 0) c->peers[c->npeers++] = p;
    }
    connected = c->npeers;
    set(c, S_ESTABLISHED, (double)net->connections_established);
    set(c, S_LOST, (double)net->connections_lost);
  }
  set(c, S_CONNECTED, connected);
  return 0;
}

static double peer_value(const halo_peer_t *p, int f, uint64_t now) {
  switch (f) {
  case P_UPTIME: return (double)(now > p->started_at ? (now - p->started_at) / 1000000000u : 0);
  case P_MSGS_IN: return (double)p->msgs_in;
  case P_MSGS_OUT: return (double)p->msgs_out;
  case P_BYTES_IN: return (double)p->bytes_in;
  case P_BYTES_OUT: return (double)p->bytes_out;
  case P_FRAG_SENT: return (double)p->frag_sent;
  case P_FRAG_MSGS_SENT: return (double)p->frag_msgs_sent;
  case P_FRAG_RECV: return (double)p->frag_recv;
  case P_FRAG_MSGS_RECV: return (double)p->frag_msgs_recv;
  case P_FRAG_TIMEOUTS: return (double)p->frag_timeouts;
  case P_COMP_SENT: return (double)p->compressed_sent;
  case P_COMP_BYTES: return (double)p->compressed_bytes;
  case P_COMP_ORIG: return (double)p->compressed_orig;
  case P_DECOMP_RECV: return (double)p->decompressed_recv;
  case P_DECOMP_BYTES: return (double)p->decompressed_bytes;
  default: return (double)p->decompressed_orig;
  }
}

int halo_collect_family_type(const halo_collect_family_t *f) {
  size_t len = strlen(f->name);
  if (len < 6 || strcmp(f->name + len - 6, "_total")) return HALO_METRIC_GAUGE;
  if (f->src == SRC_SCALAR)
    switch (f->idx) {
    case S_PROCS: case S_APPS: case S_NAMES: case S_ALIASES: case S_EVENTS: case S_CONNECTED:
      return HALO_METRIC_UNTYPED;
    }
  return HALO_METRIC_COUNTER;
}

/* -- Views --------------------------------------------------------------------------- */

#define MAX_FAMILY_LABELS 4

typedef struct builder {
  halo_node_t *n;
  collected_t *c;
  halo_net_t *net;
  uint64_t now;
  halo_mview_series_t *series; /* next free */
  const char **vals;           /* next free label value slot */
  char *text;                  /* next free byte for formatted PIDs and addresses */
  char pid_prefix[16];         /* "<CCCCCCCC.0." */
  const char *labels[sizeof halo_collect_families / sizeof halo_collect_families[0]][MAX_FAMILY_LABELS];
} builder_t;

static const char *put_text(builder_t *b, const char *s, size_t len) {
  char *at = b->text;
  memcpy(at, s, len);
  at[len] = 0;
  b->text += len + 1;
  return at;
}

/* "<CRC.0.ID>" without printf: the prefix is made once per scrape. */
static const char *pid_text(builder_t *b, uint64_t id) {
  if (id >> 31) {
    char buf[HALO_PID_STRLEN + 8];
    int len = halo_pid_format(buf, sizeof buf, halo_node_pid(b->n, id));
    return put_text(b, buf, (size_t)len);
  }
  char *at = b->text;
  memcpy(at, b->pid_prefix, 12);
  size_t len = 12 + halo_metrics_format_u64(at + 12, id);
  at[len] = '>';
  at[len + 1] = 0;
  b->text += len + 2;
  return at;
}

static void add(builder_t *b, halo_mview_t *v, double value, int nvals, ...) {
  halo_mview_series_t *s = b->series++;
  s->values = b->vals;
  s->value = value;
  s->counts = NULL;
  s->count = 0;
  va_list ap;
  va_start(ap, nvals);
  for (int i = 0; i < nvals; i++) *b->vals++ = va_arg(ap, const char *);
  va_end(ap);
  v->nseries++;
}

static void add_fixed(builder_t *b, halo_mview_t *v, const char *const *labels, const double *vals, int n) {
  for (int i = 0; i < n; i++) add(b, v, vals[i], 1, labels[i]);
}

static void build_view(builder_t *b, int fi, halo_mview_t *v) {
  const halo_collect_family_t *f = &halo_collect_families[fi];
  collected_t *c = b->c;
  *v = (halo_mview_t){f->name, f->help, halo_collect_family_type(f), 0, b->labels[fi], 0, NULL, b->series, 0};
  for (const char *l = f->labels; *l && v->nlabels < MAX_FAMILY_LABELS;) { /* split "a,b,c" */
    const char *end = strchr(l, ',');
    size_t len = end ? (size_t)(end - l) : strlen(l);
    b->labels[fi][v->nlabels++] = put_text(b, l, len);
    l += len + (end ? 1 : 0);
  }
  switch (f->src) {
  case SRC_SCALAR:
    if (c->have[f->idx]) add(b, v, c->s[f->idx], 0);
    break;
  case SRC_LOG:
    for (int i = 0; i < 6; i++) add(b, v, (double)b->n->log.counts[i], 1, log_labels[i]);
    break;
  case SRC_EVUTIL: add_fixed(b, v, evutil_labels, c->evutil, 5); break;
  case SRC_DEPTH: add_fixed(b, v, depth_labels, c->depth, NDEPTH); break;
  case SRC_LATENCY: add_fixed(b, v, latency_labels, c->latency, NLATENCY); break;
  case SRC_UTIL: add_fixed(b, v, util_labels, c->util, NUTIL); break;
  case SRC_PEER:
    for (uint32_t i = 0; i < c->npeers; i++) add(b, v, peer_value(c->peers[i], f->idx, b->now), 1, c->peers[i]->name);
    break;
  case SRC_ACCEPTOR:
    if (b->net && b->net->acceptor) {
      char buf[96];
      int len = snprintf(buf, sizeof buf, "%s:%d", b->net->host, b->net->port);
      add(b, v, (double)b->net->handshake_errors, 1, put_text(b, buf, (size_t)len));
    }
    break;
  case SRC_PTOP: {
    heap_t *h = &c->ptop[f->idx];
    for (uint32_t i = 0; i < h->len; i++) {
      const halo_proc_t *p = h->e[i].item;
      if (halo_proc_find(b->n, h->e[i].id) != p) continue; /* ended during the pass */
      add(b, v, h->e[i].v, 4, pid_text(b, p->id), p->name ? p->name : "", p->application, p->behavior);
    }
    break;
  }
  case SRC_ETOP: {
    heap_t *h = &c->etop[f->idx];
    for (uint32_t i = 0; i < h->len; i++) {
      const halo_event_t *ev = h->e[i].item;
      add(b, v, h->e[i].v, 2, ev->name, pid_text(b, ev->producer));
    }
    break;
  }
  }
}

static int cmp_view(const void *a, const void *b) {
  return strcmp(((const halo_mview_t *)a)->name, ((const halo_mview_t *)b)->name);
}

halo_collect_t *halo_collect_new(halo_node_t *n, const halo_collect_opts_t *o) {
  collected_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->n = n;
  c->o = *o;
  c->top_n = o->top_n ? o->top_n : HALO_COLLECT_TOP_N;
  c->entries = malloc((size_t)(NPTOPS + NETOPS) * c->top_n * sizeof *c->entries);
  if (!c->entries) {
    free(c);
    return NULL;
  }
  for (int i = 0; i < NPTOPS; i++) c->ptop[i].e = c->entries + (size_t)i * c->top_n;
  for (int i = 0; i < NETOPS; i++) c->etop[i].e = c->entries + (size_t)(NPTOPS + i) * c->top_n;
  return c;
}

void halo_collect_delete(halo_collect_t *c) {
  if (!c) return;
  free(c->peers);
  free(c->entries);
  free(c);
}

int halo_collect_step(halo_collect_t *c, uint32_t budget) {
  if (!c->started) {
    c->started = 1;
    c->cursor = c->n->first;
  }
  return collect_procs(c, budget ? budget : 1);
}

void halo_collect_forget(halo_collect_t *c, halo_proc_t *p) {
  if (c->cursor == p) c->cursor = p->next; /* unlinked, but its next is still right */
}

int halo_collect_finish(halo_collect_t *c, halo_metrics_t *m, halo_mbuf_t *out) {
  halo_node_t *n = c->n;
  while (!halo_collect_step(c, UINT32_MAX)) {}
  uint64_t now = halo_clock_ns();
  procs_done(c);
  collect_node(n, &c->o, c, now);
  collect_events(n, c);
  const int NF = halo_collect_nfamilies;
  int rc = collect_net(c->o.net, c);
  halo_mview_t *cviews = NULL, *views = NULL;
  halo_mview_series_t *cseries = NULL, *series = NULL;
  const char **vals = NULL;
  char *text = NULL;
  int ncustom = 0;
  if (!rc && m && (ncustom = halo_metrics_views(m, &cviews, &cseries)) < 0) rc = HALO_ENOMEM;
  /* room: every family's series; label slots and text for the widest */
  size_t nseries = NSCALARS + 6 + 5 + NDEPTH + NLATENCY + NUTIL + 1 + (size_t)c->npeers * 16 +
                   (size_t)(NPTOPS + NETOPS) * c->top_n;
  size_t nvals = nseries * 4, ntext = 4096 + (size_t)(NPTOPS + NETOPS) * c->top_n * (HALO_PID_STRLEN + 8);
  builder_t *b = NULL;
  if (!rc) {
    views = malloc((size_t)(NF + ncustom) * sizeof *views);
    series = malloc(nseries * sizeof *series);
    vals = malloc(nvals * sizeof *vals);
    text = malloc(ntext);
    b = malloc(sizeof *b);
    if (!views || !series || !vals || !text || !b) rc = HALO_ENOMEM;
  }
  if (!rc) {
    *b = (builder_t){.n = n, .c = c, .net = c->o.net, .now = now, .series = series, .vals = vals, .text = text};
    snprintf(b->pid_prefix, sizeof b->pid_prefix, "<%08X.0.", n->crc);
    for (int i = 0; i < NF; i++) build_view(b, i, &views[i]);
    if (ncustom) memcpy(views + NF, cviews, (size_t)ncustom * sizeof *views);
    qsort(views, (size_t)(NF + ncustom), sizeof *views, cmp_view);
    for (int i = 0; i < NF + ncustom; i++) halo_metrics_write(out, n->name, &views[i]);
    if (out->oom) rc = HALO_ENOMEM;
  }
  free(b);
  free(views);
  free(series);
  free(vals);
  free(text);
  free(cviews);
  free(cseries);
  return rc;
}

int halo_collect_expose(halo_node_t *n, halo_metrics_t *m, const halo_collect_opts_t *o, halo_mbuf_t *out) {
  halo_collect_t *c = halo_collect_new(n, o);
  if (!c) return HALO_ENOMEM;
  int rc = halo_collect_finish(c, m, out);
  halo_collect_delete(c);
  return rc;
}
