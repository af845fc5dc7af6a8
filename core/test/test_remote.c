#include "check.h"

#include "errors.h"
#include "pid.h"
#include "remote.h"

#include <string.h>

static uint32_t crc(const char *s) { return halo_crc32(s, strlen(s)); }

static void test_flags_and_lists(void) {
  halo_remote_t r;
  halo_remote_init(&r);
  const char *a[] = {"a@h"}, *b[] = {"b@h"}, *ab[] = {"a@h", "b@h"};
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_SPAWN, "w", crc("a@h")), HALO_ENAMEUNKNOWN);
  CHECK_EQ(halo_remote_enable(&r, HALO_REMOTE_SPAWN, "w", "Worker", a, 1), 0);
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_SPAWN, "w", crc("a@h")), 0);
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_SPAWN, "w", crc("b@h")), HALO_ENOTALLOWED);
  CHECK_EQ(halo_remote_enable(&r, HALO_REMOTE_SPAWN, "w", "Other", b, 1), HALO_ETAKEN);
  CHECK_EQ(halo_remote_enable(&r, HALO_REMOTE_SPAWN, "w", "Worker", ab, 2), 0);
  CHECK_EQ(halo_remote_find(&r, HALO_REMOTE_SPAWN, "w")->nnodes, 2); /* a@h once */
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_SPAWN, "w", crc("b@h")), 0);
  /* the flag turns every entry of its kind off */
  r.enabled[HALO_REMOTE_SPAWN] = 0;
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_SPAWN, "w", crc("a@h")), HALO_ENOTALLOWED);
  r.enabled[HALO_REMOTE_SPAWN] = 1;
  /* no nodes: any node; taking one node out of "any" closes the rest */
  CHECK_EQ(halo_remote_enable(&r, HALO_REMOTE_APPLICATION_START, "shop", NULL, NULL, 0), 0);
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_APPLICATION_START, "shop", crc("z@h")), 0);
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_SPAWN, "shop", crc("z@h")), HALO_ENAMEUNKNOWN);
  CHECK_EQ(halo_remote_disable(&r, HALO_REMOTE_APPLICATION_START, "shop", a, 1), 0);
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_APPLICATION_START, "shop", crc("z@h")), HALO_ENOTALLOWED);
  CHECK_EQ(halo_remote_disable(&r, HALO_REMOTE_SPAWN, "w", a, 1), 0);
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_SPAWN, "w", crc("a@h")), HALO_ENOTALLOWED);
  CHECK_EQ(halo_remote_check(&r, HALO_REMOTE_SPAWN, "w", crc("b@h")), 0);
  CHECK_EQ(halo_remote_disable(&r, HALO_REMOTE_SPAWN, "w", NULL, 0), 0);
  CHECK(halo_remote_find(&r, HALO_REMOTE_SPAWN, "w") == NULL);
  CHECK_EQ(halo_remote_disable(&r, HALO_REMOTE_SPAWN, "w", NULL, 0), HALO_EUNKNOWN);
  halo_remote_destroy(&r);
}

int main(void) {
  RUN_TEST(test_flags_and_lists);
  return check_exit_code();
}
