/*
 * The handshake's cryptography, from OpenSSL's libcrypto: HMAC-SHA256 for
 * the cookie proof, a constant-time digest comparison and random bytes from
 * the system's generator.
 */
#ifndef HALO_CRYPTO_H
#define HALO_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define HALO_SHA256_LEN 32

/** HMAC-SHA256 of msg under key: 0, or UV_EIO when libcrypto cannot
 *  compute it (out is then no digest: a verifier must refuse). */
int halo_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[HALO_SHA256_LEN]);
/** 1 when the two digests are equal; takes the same time whatever differs. */
int halo_digest_equal(const uint8_t a[HALO_SHA256_LEN], const uint8_t b[HALO_SHA256_LEN]);
/** Fills buf with n bytes from the system's random generator: 0, or UV_EIO
 *  when it has none to give (never a predictable fallback). */
int halo_random(void *buf, size_t n);

#endif
