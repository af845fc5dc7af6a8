#include "check.h"

#include "errors.h"
#include "mailbox.h"

#include <stdint.h>
#include <stdlib.h>

static halo_msgpool_t pool;

static halo_msg_t *msg(uint64_t val, uint64_t t_enq) {
  halo_msg_t *m = halo_msgpool_get(&pool);
  CHECK(m != NULL);
  m->pval = val;
  m->ptag = 1;
  m->t_enq = t_enq;
  m->next = (halo_msg_t *)(uintptr_t)0xdeadbeef; /* push must reset it */
  return m;
}

static void drain(halo_mailbox_t *mb) {
  halo_msg_t *m;
  while ((m = halo_mailbox_pop(mb))) halo_msgpool_put(&pool, m);
}

static void test_priority(void) {
  halo_mailbox_t mb;
  halo_mailbox_init(&mb, 0);
  CHECK(halo_mailbox_pop(&mb) == NULL);
  /* Pushed lowest priority first, three per queue, value = queue*10 + seq. */
  int order[] = {HALO_Q_LOG, HALO_Q_MAIN, HALO_Q_SYSTEM, HALO_Q_URGENT};
  for (int seq = 0; seq < 3; seq++)
    for (int k = 0; k < 4; k++) CHECK_EQ(halo_mailbox_push(&mb, order[k], msg((uint64_t)(order[k] * 10 + seq), 1)), 0);
  CHECK_EQ(halo_mailbox_len(&mb), 12);
  int want_q[] = {HALO_Q_URGENT, HALO_Q_SYSTEM, HALO_Q_MAIN, HALO_Q_LOG};
  for (int k = 0; k < 4; k++) {
    for (int seq = 0; seq < 3; seq++) {
      halo_msg_t *m = halo_mailbox_pop(&mb);
      CHECK(m != NULL);
      if (!m) return;
      CHECK_EQ(m->queue, want_q[k]);
      CHECK_EQ(m->pval, (uint64_t)(want_q[k] * 10 + seq));
      halo_msgpool_put(&pool, m);
    }
  }
  CHECK(halo_mailbox_pop(&mb) == NULL);
  CHECK_EQ(halo_mailbox_len(&mb), 0);

  /* A higher-priority message pushed while lower ones wait goes first. */
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, msg(1, 1)), 0);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_LOG, msg(2, 1)), 0);
  halo_msg_t *m = halo_mailbox_pop(&mb);
  CHECK_EQ(m->pval, 1);
  halo_msgpool_put(&pool, m);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_SYSTEM, msg(3, 1)), 0);
  m = halo_mailbox_pop(&mb);
  CHECK_EQ(m->pval, 3);
  halo_msgpool_put(&pool, m);
  m = halo_mailbox_pop(&mb);
  CHECK_EQ(m->pval, 2);
  halo_msgpool_put(&pool, m);
  halo_mailbox_destroy(&mb);
}

static void test_fifo(void) {
  halo_mailbox_t mb;
  halo_mailbox_init(&mb, 0);
  for (uint64_t i = 0; i < 2000; i++) CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, msg(i, 1)), 0);
  CHECK_EQ(halo_mailbox_depth(&mb, HALO_Q_MAIN), 2000);
  for (uint64_t i = 0; i < 2000; i++) {
    halo_msg_t *m = halo_mailbox_pop(&mb);
    CHECK_EQ(m->pval, i);
    halo_msgpool_put(&pool, m);
  }
  CHECK(mb.main.head == NULL && mb.main.tail == NULL);
  /* Pops and pushes interleaved: order stays FIFO across an emptied queue. */
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, msg(7, 1)), 0);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, msg(8, 1)), 0);
  halo_msg_t *m = halo_mailbox_pop(&mb);
  CHECK_EQ(m->pval, 7);
  halo_msgpool_put(&pool, m);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, msg(9, 1)), 0);
  m = halo_mailbox_pop(&mb);
  CHECK_EQ(m->pval, 8);
  halo_msgpool_put(&pool, m);
  m = halo_mailbox_pop(&mb);
  CHECK_EQ(m->pval, 9);
  halo_msgpool_put(&pool, m);
  CHECK(halo_mailbox_pop(&mb) == NULL);
  for (uint64_t i = 0; i < 5; i++) CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_SYSTEM, msg(i, 1)), 0);
  for (uint64_t i = 0; i < 5; i++) {
    m = halo_mailbox_pop(&mb);
    CHECK_EQ(m->pval, i);
    halo_msgpool_put(&pool, m);
  }
  halo_mailbox_destroy(&mb);
}

static void test_limit(void) {
  halo_mailbox_t mb;
  halo_mailbox_init(&mb, 3);
  for (uint64_t i = 0; i < 3; i++) CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, msg(i, 1)), 0);
  halo_msg_t *extra = msg(99, 1);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, extra), HALO_EFULL);
  CHECK_EQ(halo_mailbox_depth(&mb, HALO_Q_MAIN), 3);
  CHECK_EQ(halo_mailbox_len(&mb), 3);
  /* The limit is per queue: the others still take messages. */
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_URGENT, msg(100, 1)), 0);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_LOG, msg(200, 1)), 0);
  CHECK_EQ(halo_mailbox_len(&mb), 5);
  /* The queue is intact after the refusal: same order, tail not touched. */
  halo_msg_t *m = halo_mailbox_pop(&mb);
  CHECK_EQ(m->pval, 100);
  halo_msgpool_put(&pool, m);
  for (uint64_t i = 0; i < 3; i++) {
    m = halo_mailbox_pop(&mb);
    CHECK_EQ(m->pval, i);
    halo_msgpool_put(&pool, m);
  }
  CHECK(mb.main.head == NULL && mb.main.tail == NULL);
  /* Room again once drained. */
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, extra), 0);
  m = halo_mailbox_pop(&mb);
  CHECK(m == extra);
  halo_msgpool_put(&pool, m);
  m = halo_mailbox_pop(&mb);
  CHECK_EQ(m->pval, 200);
  halo_msgpool_put(&pool, m);
  for (uint64_t i = 0; i < 3; i++) CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_SYSTEM, msg(i, 1)), 0);
  extra = msg(99, 1);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_SYSTEM, extra), HALO_EFULL);
  halo_msgpool_put(&pool, extra);
  CHECK_EQ(halo_mailbox_depth(&mb, HALO_Q_SYSTEM), 3);
  drain(&mb);
  halo_mailbox_destroy(&mb);
}

static void test_depth_latency(void) {
  halo_mailbox_t mb;
  halo_mailbox_init(&mb, 0);
  for (int q = 0; q < HALO_NQUEUES; q++) {
    CHECK_EQ(halo_mailbox_depth(&mb, q), 0);
    CHECK_EQ(halo_mailbox_oldest(&mb, q), 0);
  }
  CHECK_EQ(halo_mailbox_latency(&mb, 1000), 0);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, msg(1, 500)), 0);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, msg(2, 600)), 0);
  CHECK_EQ(halo_mailbox_oldest(&mb, HALO_Q_MAIN), 500);
  CHECK_EQ(halo_mailbox_latency(&mb, 1000), 500);
  CHECK_EQ(halo_mailbox_latency(&mb, 400), 0); /* clock before the message: no negative age */
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_LOG, msg(3, 300)), 0);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_URGENT, msg(4, 700)), 0);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_SYSTEM, msg(5, 800)), 0);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_SYSTEM, msg(6, 900)), 0);
  CHECK_EQ(halo_mailbox_depth(&mb, HALO_Q_URGENT), 1);
  CHECK_EQ(halo_mailbox_depth(&mb, HALO_Q_SYSTEM), 2);
  CHECK_EQ(halo_mailbox_depth(&mb, HALO_Q_MAIN), 2);
  CHECK_EQ(halo_mailbox_depth(&mb, HALO_Q_LOG), 1);
  CHECK_EQ(halo_mailbox_len(&mb), 6);
  CHECK_EQ(halo_mailbox_oldest(&mb, HALO_Q_LOG), 300);
  CHECK_EQ(halo_mailbox_oldest(&mb, HALO_Q_SYSTEM), 800);
  /* The oldest message of any queue, even one popped last. */
  CHECK_EQ(halo_mailbox_latency(&mb, 1000), 700);
  halo_msg_t *m = halo_mailbox_pop(&mb); /* urgent 700 */
  CHECK_EQ(m->pval, 4);
  halo_msgpool_put(&pool, m);
  CHECK_EQ(halo_mailbox_oldest(&mb, HALO_Q_URGENT), 0);
  CHECK_EQ(halo_mailbox_len(&mb), 5);
  drain(&mb);
  CHECK_EQ(halo_mailbox_latency(&mb, 1000), 0);
  for (int q = 0; q < HALO_NQUEUES; q++) CHECK_EQ(halo_mailbox_depth(&mb, q), 0);
  halo_mailbox_destroy(&mb);
}

static void test_aux_lazy(void) {
  halo_mailbox_t mb;
  halo_mailbox_init(&mb, 0);
  CHECK(mb.aux == NULL);
  for (uint64_t i = 0; i < 10; i++) CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_MAIN, msg(i, 1)), 0);
  /* Reading depths of the aux queues does not allocate them. */
  for (int q = 0; q < HALO_NQUEUES; q++) (void)halo_mailbox_depth(&mb, q), (void)halo_mailbox_oldest(&mb, q);
  (void)halo_mailbox_latency(&mb, 10);
  drain(&mb);
  CHECK(mb.aux == NULL);
  CHECK_EQ(halo_mailbox_push(&mb, HALO_Q_LOG, msg(1, 1)), 0);
  CHECK(mb.aux != NULL);
  drain(&mb);
  halo_mailbox_destroy(&mb);
  CHECK(mb.aux == NULL);
  /* Destroying a mailbox that never had aux queues is fine. */
  halo_mailbox_init(&mb, 0);
  halo_mailbox_destroy(&mb);
  /* Each aux queue on its own allocates the block. */
  int qs[] = {HALO_Q_URGENT, HALO_Q_SYSTEM, HALO_Q_LOG};
  for (int k = 0; k < 3; k++) {
    halo_mailbox_init(&mb, 0);
    CHECK_EQ(halo_mailbox_push(&mb, qs[k], msg(1, 1)), 0);
    CHECK(mb.aux != NULL);
    CHECK_EQ(halo_mailbox_depth(&mb, qs[k]), 1);
    drain(&mb);
    halo_mailbox_destroy(&mb);
  }
}

static void test_pool(void) {
  halo_msgpool_t p;
  halo_msgpool_init(&p);
  CHECK_EQ(p.total, 0);
  CHECK_EQ(p.nfree, 0);
  halo_msg_t *a = halo_msgpool_get(&p);
  CHECK(a != NULL);
  uint64_t slab = p.total;
  CHECK(slab > 1);
  CHECK_EQ(p.nfree, slab - 1);
  CHECK_EQ(p.nslabs, 1);
  /* A returned record is the next one handed out. */
  halo_msgpool_put(&p, a);
  CHECK_EQ(p.nfree, slab);
  CHECK(halo_msgpool_get(&p) == a);
  halo_msgpool_put(&p, a);

  /* Take more records than many slabs hold; every record is distinct and
   * writable (ASan catches an overlap or out-of-bounds slab). */
  size_t want = (size_t)slab * 20 + 3;
  halo_msg_t **held = malloc(want * sizeof *held);
  for (size_t i = 0; i < want; i++) {
    held[i] = halo_msgpool_get(&p);
    CHECK(held[i] != NULL);
    held[i]->pval = i;
  }
  CHECK_EQ(p.nslabs, 21);
  CHECK_EQ(p.total, slab * 21);
  CHECK_EQ(p.total - p.nfree, want);
  for (size_t i = 0; i < want; i++) CHECK_EQ(held[i]->pval, i);
  for (size_t i = 0; i < want; i++) halo_msgpool_put(&p, held[i]);
  CHECK_EQ(p.nfree, p.total);
  /* Reuse: taking them again grows nothing. */
  for (size_t i = 0; i < want; i++) held[i] = halo_msgpool_get(&p);
  CHECK_EQ(p.nslabs, 21);
  for (size_t i = 0; i < want; i++) halo_msgpool_put(&p, held[i]);
  free(held);
  halo_msgpool_destroy(&p);
  CHECK_EQ(p.total, 0);
  CHECK(p.slabs == NULL);
}

int main(void) {
  halo_msgpool_init(&pool);
  RUN_TEST(test_priority);
  RUN_TEST(test_fifo);
  RUN_TEST(test_limit);
  RUN_TEST(test_depth_latency);
  RUN_TEST(test_aux_lazy);
  RUN_TEST(test_pool);
  /* Every record taken from the shared pool came back. */
  CHECK_EQ(pool.nfree, pool.total);
  halo_msgpool_destroy(&pool);
  return check_exit_code();
}
