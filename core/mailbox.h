/*
 * Mailbox: four FIFO queues drained in the order urgent > system > main > log.
 * The main queue is inline; the three others are allocated on first use, so
 * an idle process that only ever receives ordinary messages costs 32 bytes.
 * Message records come from a pool (free list over slabs) so the hot path
 * never calls malloc.
 */
#ifndef HALO_MAILBOX_H
#define HALO_MAILBOX_H

#include <stdint.h>

#include "pid.h"

enum halo_queue_id { HALO_Q_URGENT, HALO_Q_SYSTEM, HALO_Q_MAIN, HALO_Q_LOG, HALO_NQUEUES };

enum halo_msg_kind {
  HALO_MSG_REGULAR,
  HALO_MSG_REQUEST,
  HALO_MSG_EVENT,
  HALO_MSG_EXIT,
  HALO_MSG_DOWN,
  HALO_MSG_INSPECT,
  HALO_MSG_LOG,
  HALO_MSG_TIMEOUT, /* not queued: resumes a process whose receive timed out */
  HALO_MSG_REPLY,   /* not queued: a reply on its way to another node */
};

/* Message flags (halo_msg_t.flags). A send passes them in the kind argument,
 * shifted by HALO_KIND_FLAGS_SHIFT. */
enum {
  HALO_MF_REASON = 1, /* EXIT/DOWN whose payload is the bare reason: the host
                       * builds {kind, pid = from, reason} when it delivers it */
  HALO_MF_NOTICE = 2, /* EXIT/DOWN telling a remote watcher that its link or
                       * monitor fired (not a halo.exit): the relation goes */
  HALO_MF_FAILED = 4, /* REPLY that fails the call: the callee ended (or never
                       * was) before it replied; the payload is the reason */
};
#define HALO_KIND_FLAGS_SHIFT 8
#define HALO_KIND_REASON (HALO_MF_REASON << HALO_KIND_FLAGS_SHIFT)
#define HALO_KIND_NOTICE (HALO_MF_NOTICE << HALO_KIND_FLAGS_SHIFT)
#define HALO_KIND_FAILED (HALO_MF_FAILED << HALO_KIND_FLAGS_SHIFT)

/** A payload is opaque to the core: a tag and a 64-bit value owned by the host layer. */
typedef struct halo_payload {
  uint64_t val;
  uint8_t tag; /* 0 = none */
} halo_payload_t;

typedef struct halo_msg {
  struct halo_msg *next;
  halo_pid_t from;
  uint64_t ref;
  uint64_t t_enq; /* halo_clock_ns() at enqueue */
  uint64_t pval;
  uint32_t size;  /* bytes, as estimated by the sender's host layer */
  uint8_t kind;   /* enum halo_msg_kind */
  uint8_t ptag;
  uint8_t queue;  /* enum halo_queue_id it was pushed into */
  uint8_t flags;
} halo_msg_t;

typedef struct halo_queue {
  halo_msg_t *head, *tail;
  uint32_t len;
} halo_queue_t;

typedef struct halo_mailbox {
  halo_queue_t main;
  uint32_t limit;     /* per queue; 0 = unlimited */
  halo_queue_t *aux;  /* urgent, system, log; NULL until first used */
} halo_mailbox_t;

void halo_mailbox_init(halo_mailbox_t *mb, uint32_t limit);
/** Frees the aux queues; the queues must have been drained. */
void halo_mailbox_destroy(halo_mailbox_t *mb);

/** Appends m to queue q; returns 0, HALO_EFULL or HALO_ENOMEM. */
int halo_mailbox_push(halo_mailbox_t *mb, int q, halo_msg_t *m);

/** Removes and returns the next message in priority order, or NULL. */
static inline halo_msg_t *halo_mailbox_pop(halo_mailbox_t *mb);

/** Messages queued in all four queues. */
static inline uint32_t halo_mailbox_len(const halo_mailbox_t *mb);

/** Messages queued in queue q. */
uint32_t halo_mailbox_depth(const halo_mailbox_t *mb, int q);

/** Enqueue time of the oldest message of queue q, or 0 when it is empty. */
uint64_t halo_mailbox_oldest(const halo_mailbox_t *mb, int q);

/** Age in ns of the oldest queued message of any queue at time now, 0 when empty. */
uint64_t halo_mailbox_latency(const halo_mailbox_t *mb, uint64_t now);

/** Pool of message records. */
typedef struct halo_msgpool {
  halo_msg_t *free;
  uint64_t nfree, total;
  void **slabs;
  uint32_t nslabs, capslabs;
} halo_msgpool_t;

void halo_msgpool_init(halo_msgpool_t *p);
/** Frees every slab; all records must have been returned. */
void halo_msgpool_destroy(halo_msgpool_t *p);
/** Returns a record (fields unset) or NULL when out of memory. */
static inline halo_msg_t *halo_msgpool_get(halo_msgpool_t *p);
static inline void halo_msgpool_put(halo_msgpool_t *p, halo_msg_t *m);

/* -- implementation ------------------------------------------------------- */

halo_msg_t *halo__msgpool_grow(halo_msgpool_t *p);

static inline halo_msg_t *halo__queue_pop(halo_queue_t *q) {
  halo_msg_t *m = q->head;
  if (m) {
    q->head = m->next;
    if (!q->head) q->tail = NULL;
    q->len--;
  }
  return m;
}

static inline halo_msg_t *halo_mailbox_pop(halo_mailbox_t *mb) {
  halo_queue_t *aux = mb->aux;
  if (aux) {
    if (aux[0].head) return halo__queue_pop(&aux[0]);
    if (aux[1].head) return halo__queue_pop(&aux[1]);
    if (!mb->main.head) return halo__queue_pop(&aux[2]);
  }
  return halo__queue_pop(&mb->main);
}

static inline uint32_t halo_mailbox_len(const halo_mailbox_t *mb) {
  uint32_t n = mb->main.len;
  if (mb->aux) n += mb->aux[0].len + mb->aux[1].len + mb->aux[2].len;
  return n;
}

static inline halo_msg_t *halo_msgpool_get(halo_msgpool_t *p) {
  halo_msg_t *m = p->free;
  if (!m) return halo__msgpool_grow(p);
  p->free = m->next;
  p->nfree--;
  return m;
}

static inline void halo_msgpool_put(halo_msgpool_t *p, halo_msg_t *m) {
  m->next = p->free;
  p->free = m;
  p->nfree++;
}

#endif
