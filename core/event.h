/*
 * Events: named publish/subscribe channels owned by a producer process.
 * A publish hands the payload to every subscriber (main queue, kind EVENT,
 * sender = publisher) and into an optional ring buffer of the last N
 * publishes, replayed to each new subscriber. Subscribers link (the event's
 * end is an exit signal) or monitor (a down message). With notify, the
 * producer is told when the first subscriber arrives and the last one leaves.
 * The producer's end (or unregister) ends the event and tells the
 * subscribers; a subscriber's end drops its subscriptions.
 */
#ifndef HALO_EVENT_H
#define HALO_EVENT_H

#include "node.h"

typedef struct halo_event_sub {
  uint64_t pid;
  uint32_t node; /* 0: a local process; else the node (CRC) of a remote subscriber */
  uint8_t type;  /* HALO_REL_LINK or HALO_REL_MONITOR */
} halo_event_sub_t;

typedef struct halo_event {
  char *name;
  uint64_t producer;        /* process id */
  int notify, open;
  uint32_t buffer_size;     /* configured ring size, 0 = none */
  halo_payload_t *ring;     /* buffer_size slots */
  uint32_t ring_head, ring_len;
  halo_event_sub_t *subs;
  uint32_t nsubs, capsubs;
  uint64_t created_at, last_published_at; /* unix ns; 0 = never */
  uint64_t published, local_sent, remote_sent;
  uint64_t token;           /* names this event in its end's notice to other nodes' subscribers */
} halo_event_t;

typedef struct halo_event_opts {
  uint32_t buffer;
  int notify, open;
} halo_event_opts_t;

/** Registers event name with p as its producer. Errors: HALO_ETAKEN, HALO_ENOMEM. */
int halo_event_register(halo_node_t *n, halo_proc_t *p, const char *name, const halo_event_opts_t *o);
/** Ends p's event name: subscribers are told with reason "unregistered".
 *  Errors: HALO_EEVENTUNKNOWN, HALO_ENOTOWNER. */
int halo_event_unregister(halo_node_t *n, halo_proc_t *p, const char *name);
/** Publishes pl (consumed) from p: only the producer, or anyone for an open
 *  event. Errors: HALO_EEVENTUNKNOWN, HALO_ENOTOWNER (pl is released). */
int halo_event_publish(halo_node_t *n, halo_proc_t *p, const char *name, halo_payload_t pl, uint32_t size);
/** Subscribes p (type HALO_REL_LINK or HALO_REL_MONITOR); *out is the event,
 *  whose ring the caller may read. Errors: HALO_EEVENTUNKNOWN,
 *  HALO_ETARGETEXIST (already subscribed), HALO_ENOTALLOWED (the producer), HALO_ENOMEM. */
int halo_event_subscribe(halo_node_t *n, halo_proc_t *p, const char *name, int type, halo_event_t **out);
/** Drops p's subscription of that type. Errors: HALO_EEVENTUNKNOWN, HALO_ETARGETUNKNOWN. */
int halo_event_unsubscribe(halo_node_t *n, halo_proc_t *p, const char *name, int type);
/** Subscribes a process of another node (who); publications and the
 *  event's end reach it through the node's route, counted as remote sends.
 *  Errors as halo_event_subscribe. */
int halo_event_subscribe_remote(halo_node_t *n, const char *name, int type, halo_pid_t who, halo_event_t **out);
int halo_event_unsubscribe_remote(halo_node_t *n, const char *name, int type, halo_pid_t who);
/** The event's utilization state, evaluated in the reference's order:
 *  "active" (published and subscribed), "on_demand" (notify), "idle",
 *  "no_subscribers", "no_publishing". */
const char *halo_event_utilization(const halo_event_t *ev);
/** Node crc is gone: its processes' subscriptions go. */
void halo__event_node_down(halo_node_t *n, uint32_t crc);
/** The event of that name, or NULL. */
halo_event_t *halo_event_find(halo_node_t *n, const char *name);
/** The i-th buffered payload, oldest first (i < ev->ring_len). */
halo_payload_t halo_event_buffered(const halo_event_t *ev, uint32_t i);
/** Calls fn for every event (order unspecified). */
void halo_event_each(halo_node_t *n, void (*fn)(void *ud, const halo_event_t *ev), void *ud);

/** Process end: ends the events p produces (reason) and drops its subscriptions. */
void halo__event_proc_ended(halo_node_t *n, halo_proc_t *p, const halo_payload_t *reason);
/** Node teardown: frees every event. */
void halo__event_destroy_all(halo_node_t *n);

#endif
