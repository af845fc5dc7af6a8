#include "mailbox.h"
#include "errors.h"

#include <stdlib.h>
#include <string.h>

#define SLAB_MSGS 512

void halo_mailbox_init(halo_mailbox_t *mb, uint32_t limit) {
  memset(mb, 0, sizeof *mb);
  mb->limit = limit;
}

void halo_mailbox_destroy(halo_mailbox_t *mb) {
  free(mb->aux);
  mb->aux = NULL;
}

static halo_queue_t *queue_of(halo_mailbox_t *mb, int q) {
  if (q == HALO_Q_MAIN) return &mb->main;
  if (!mb->aux) {
    mb->aux = calloc(3, sizeof *mb->aux);
    if (!mb->aux) return NULL;
  }
  return &mb->aux[q == HALO_Q_URGENT ? 0 : q == HALO_Q_SYSTEM ? 1 : 2];
}

static const halo_queue_t *cqueue_of(const halo_mailbox_t *mb, int q) {
  if (q == HALO_Q_MAIN) return &mb->main;
  if (!mb->aux) return NULL;
  return &mb->aux[q == HALO_Q_URGENT ? 0 : q == HALO_Q_SYSTEM ? 1 : 2];
}

int halo_mailbox_push(halo_mailbox_t *mb, int q, halo_msg_t *m) {
  halo_queue_t *queue = queue_of(mb, q);
  if (!queue) return HALO_ENOMEM;
  if (mb->limit && queue->len >= mb->limit) return HALO_EFULL;
  m->next = NULL;
  m->queue = (uint8_t)q;
  if (queue->tail) queue->tail->next = m;
  else queue->head = m;
  queue->tail = m;
  queue->len++;
  return 0;
}

uint32_t halo_mailbox_depth(const halo_mailbox_t *mb, int q) {
  const halo_queue_t *queue = cqueue_of(mb, q);
  return queue ? queue->len : 0;
}

uint64_t halo_mailbox_oldest(const halo_mailbox_t *mb, int q) {
  const halo_queue_t *queue = cqueue_of(mb, q);
  return queue && queue->head ? queue->head->t_enq : 0;
}

uint64_t halo_mailbox_latency(const halo_mailbox_t *mb, uint64_t now) {
  uint64_t oldest = 0;
  for (int q = 0; q < HALO_NQUEUES; q++) {
    uint64_t t = halo_mailbox_oldest(mb, q);
    if (t && (!oldest || t < oldest)) oldest = t;
  }
  return oldest && now > oldest ? now - oldest : 0;
}

void halo_msgpool_init(halo_msgpool_t *p) { memset(p, 0, sizeof *p); }

void halo_msgpool_destroy(halo_msgpool_t *p) {
  for (uint32_t i = 0; i < p->nslabs; i++) free(p->slabs[i]);
  free(p->slabs);
  memset(p, 0, sizeof *p);
}

halo_msg_t *halo__msgpool_grow(halo_msgpool_t *p) {
  if (p->nslabs == p->capslabs) {
    uint32_t ncap = p->capslabs ? p->capslabs * 2 : 8;
    void **ns = realloc(p->slabs, ncap * sizeof *ns);
    if (!ns) return NULL;
    p->slabs = ns;
    p->capslabs = ncap;
  }
  halo_msg_t *slab = malloc(SLAB_MSGS * sizeof *slab);
  if (!slab) return NULL;
  p->slabs[p->nslabs++] = slab;
  p->total += SLAB_MSGS;
  /* Keep slab[0] for the caller, chain the rest into the free list. */
  for (int i = SLAB_MSGS - 1; i >= 1; i--) {
    slab[i].next = p->free;
    p->free = &slab[i];
  }
  p->nfree += SLAB_MSGS - 1;
  return &slab[0];
}
