/* The table of which run each remote identifier belongs to (creation.c). */
#include "check.h"
#include "creation.h"

static void test_learn_get(void) {
  halo_creations_t c;
  halo_creations_init(&c, 100);
  CHECK(halo_creations_get(&c, HALO_ID_PID, 7, 1) == 0);
  CHECK_EQ(halo_creations_learn(&c, HALO_ID_PID, 7, 1, 0xabcdef0123456789ull), 0);
  CHECK(halo_creations_get(&c, HALO_ID_PID, 7, 1) == 0xabcdef0123456789ull);
  /* another node, another kind, another id: each its own entry */
  CHECK(halo_creations_get(&c, HALO_ID_PID, 8, 1) == 0);
  CHECK(halo_creations_get(&c, HALO_ID_ALIAS, 7, 1) == 0);
  CHECK(halo_creations_get(&c, HALO_ID_PID, 7, 2) == 0);
  /* the node restarted: the identifier now names the new run */
  halo_creations_learn(&c, HALO_ID_PID, 7, 1, 42);
  CHECK(halo_creations_get(&c, HALO_ID_PID, 7, 1) == 42);
  /* nothing to remember: an unknown creation, ids past 2^31 */
  halo_creations_learn(&c, HALO_ID_PID, 7, 3, 0);
  halo_creations_learn(&c, HALO_ID_PID, 7, (uint64_t)1 << 31, 5);
  CHECK(halo_creations_get(&c, HALO_ID_PID, 7, 3) == 0);
  CHECK(halo_creations_get(&c, HALO_ID_PID, 7, (uint64_t)1 << 31) == 0);
  halo_creations_destroy(&c);
}

/* Two generations: what is used stays, what is not is forgotten. */
static void test_generations(void) {
  halo_creations_t c;
  halo_creations_init(&c, 10);
  halo_creations_learn(&c, HALO_ID_PID, 1, 1, 11);
  halo_creations_learn(&c, HALO_ID_PID, 1, 2, 12);
  for (uint64_t id = 100; id < 115; id++) halo_creations_learn(&c, HALO_ID_PID, 2, id, 1);
  CHECK(halo_creations_get(&c, HALO_ID_PID, 1, 1) == 11); /* in the old generation: moved up */
  for (uint64_t id = 200; id < 209; id++) halo_creations_learn(&c, HALO_ID_PID, 2, id, 1);
  CHECK(halo_creations_get(&c, HALO_ID_PID, 1, 1) == 11);
  CHECK(halo_creations_get(&c, HALO_ID_PID, 1, 2) == 0); /* two generations unused */
  CHECK(c.gen[0].len + c.gen[1].len <= 20);
  halo_creations_destroy(&c);
}

int main(void) {
  RUN_TEST(test_learn_get);
  RUN_TEST(test_generations);
  return check_exit_code();
}
