#include "crypto.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <uv.h>

int halo_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[HALO_SHA256_LEN]) {
  unsigned len = HALO_SHA256_LEN;
  if (klen > INT_MAX || !HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len) || len != HALO_SHA256_LEN)
    return UV_EIO;
  return 0;
}

int halo_digest_equal(const uint8_t a[HALO_SHA256_LEN], const uint8_t b[HALO_SHA256_LEN]) {
  return CRYPTO_memcmp(a, b, HALO_SHA256_LEN) == 0;
}

int halo_random(void *buf, size_t n) {
  return n <= (size_t)INT32_MAX && RAND_bytes(buf, (int)n) == 1 ? 0 : UV_EIO;
}
