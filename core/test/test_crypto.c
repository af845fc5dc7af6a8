/* HMAC-SHA256 against the published test vectors (RFC 4231), digest
 * comparison and random bytes. */
#include "check.h"
#include "crypto.h"

#include <limits.h>
#include <stdlib.h>
#include <uv.h>

static void hex(const uint8_t *d, char *out) {
  for (int i = 0; i < HALO_SHA256_LEN; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void expect_hmac(const void *key, size_t kl, const void *msg, size_t ml, const char *want) {
  uint8_t d[HALO_SHA256_LEN];
  char h[65];
  halo_hmac_sha256(key, kl, msg, ml, d);
  hex(d, h);
  CHECK_STR_EQ(h, want);
}

static void test_hmac_rfc4231(void) {
  uint8_t k1[20], k3[20], d3[50], k6[131];
  memset(k1, 0x0b, sizeof k1);
  expect_hmac(k1, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  expect_hmac("Jefe", 4, "what do ya want for nothing?", 28,
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  memset(k3, 0xaa, sizeof k3);
  memset(d3, 0xdd, sizeof d3);
  expect_hmac(k3, 20, d3, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  memset(k6, 0xaa, sizeof k6);
  const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
  expect_hmac(k6, 131, m6, strlen(m6), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  const char *m7 = "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.";
  expect_hmac(k6, 131, m7, strlen(m7), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static void test_digest_equal(void) {
  uint8_t a[HALO_SHA256_LEN], b[HALO_SHA256_LEN];
  halo_hmac_sha256("k", 1, "x", 1, a);
  memcpy(b, a, sizeof a);
  CHECK(halo_digest_equal(a, b));
  for (int i = 0; i < HALO_SHA256_LEN; i++) {
    b[i] ^= 1;
    CHECK(!halo_digest_equal(a, b));
    b[i] ^= 1;
  }
}

/* An HMAC that libcrypto cannot compute (here: a key length it cannot
 * take) is an error the verifier sees, not whatever the output buffer held
 * compared with a forged proof. */
static void test_hmac_failure(void) {
  uint8_t d[HALO_SHA256_LEN];
  CHECK_EQ(halo_hmac_sha256("k", 1, "x", 1, d), 0);
  CHECK_EQ(halo_hmac_sha256("k", (size_t)INT_MAX + 1, "x", 1, d), UV_EIO);
}

/* Two draws of random bytes differ (a constant fallback would not). */
static void test_random(void) {
  uint8_t a[32] = {0}, b[32] = {0};
  CHECK_EQ(halo_random(a, sizeof a), 0);
  CHECK_EQ(halo_random(b, sizeof b), 0);
  CHECK(memcmp(a, b, sizeof a) != 0);
}

int main(void) {
  RUN_TEST(test_hmac_rfc4231);
  RUN_TEST(test_digest_equal);
  RUN_TEST(test_hmac_failure);
  RUN_TEST(test_random);
  return check_exit_code();
}
