/*
 * SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the handshake's
 * cookie proof. Small and dependency-free; not constant-time beyond what
 * the algorithm itself is (comparisons of digests use halo_digest_equal).
 */
#ifndef HALO_SHA256_H
#define HALO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define HALO_SHA256_LEN 32

typedef struct halo_sha256 {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t block[64];
  size_t used;
} halo_sha256_t;

void halo_sha256_init(halo_sha256_t *c);
void halo_sha256_update(halo_sha256_t *c, const void *data, size_t n);
void halo_sha256_final(halo_sha256_t *c, uint8_t out[HALO_SHA256_LEN]);
/** One-shot digest of data. */
void halo_sha256(const void *data, size_t n, uint8_t out[HALO_SHA256_LEN]);
/** HMAC-SHA256 of msg under key. */
void halo_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[HALO_SHA256_LEN]);
/** 1 when the two digests are equal; takes the same time whatever differs. */
int halo_digest_equal(const uint8_t a[HALO_SHA256_LEN], const uint8_t b[HALO_SHA256_LEN]);

#endif
