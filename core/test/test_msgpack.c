#include "check.h"

#include "errors.h"
#include "msgpack.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- helpers ----------------------------------------------------------------- */

/* Compares got[0..n) with exp[0..n) (and got_len with n when exact), and on
 * a mismatch prints the first differing offset and both bytes. */
static void check_bytes(const char *file, int line, const uint8_t *got, size_t got_len,
                        const uint8_t *exp, size_t n, int exact) {
  if (exact ? got_len != n : got_len < n) {
    fprintf(stderr, "%s:%d: byte check failed: length %zu, expected %s%zu\n", file, line,
            got_len, exact ? "" : ">= ", n);
    check_failures++;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    if (got[i] != exp[i]) {
      fprintf(stderr, "%s:%d: byte check failed at offset %zu: 0x%02x != 0x%02x\n", file,
              line, i, got[i], exp[i]);
      check_failures++;
      return;
    }
  }
}

/* The writer's whole output is exactly these bytes. */
#define CHECK_BYTES(w, ...)                                                              \
  do {                                                                                   \
    static const uint8_t cb_exp_[] = {__VA_ARGS__};                                      \
    check_bytes(__FILE__, __LINE__, (w)->buf, (w)->len, cb_exp_, sizeof cb_exp_, 1);     \
  } while (0)

/* The writer's output starts with these bytes. */
#define CHECK_PREFIX(w, ...)                                                             \
  do {                                                                                   \
    static const uint8_t cb_exp_[] = {__VA_ARGS__};                                      \
    check_bytes(__FILE__, __LINE__, (w)->buf, (w)->len, cb_exp_, sizeof cb_exp_, 0);     \
  } while (0)

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* A deterministic payload: byte i of pattern `seed`. */
static uint8_t *pattern(size_t n, unsigned seed) {
  uint8_t *p = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
  return p;
}

/* A heap copy of exactly n bytes, so ASan catches any read past the end. */
static uint8_t *exact_copy(const uint8_t *src, size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  if (n) memcpy(p, src, n);
  return p;
}

/* Validates exactly these bytes (from an exact-size heap copy). */
static int validate_bytes(const uint8_t *b, size_t n, int max_depth, const char **err) {
  uint8_t *c = exact_copy(b, n);
  *err = NULL;
  int rc = halo_mp_validate(c, n, max_depth, err);
  free(c);
  return rc;
}

/* Reads one token from exactly these bytes; checks that it fails cleanly. */
static void check_next_fails(const char *file, int line, const uint8_t *b, size_t n) {
  uint8_t *c = exact_copy(b, n);
  halo_mpr_t r;
  halo_mp_obj_t o;
  halo_mpr_init(&r, c, n);
  int rc = halo_mpr_next(&r, &o);
  if (rc != HALO_EMALFORMED || !r.err || !r.err[0]) {
    fprintf(stderr, "%s:%d: halo_mpr_next on %zu bytes (first 0x%02x) returned %d, err %s\n",
            file, line, n, n ? b[0] : 0, rc, r.err ? r.err : "(null)");
    check_failures++;
  }
  free(c);
}

#define CHECK_NEXT_FAILS(...)                                                            \
  do {                                                                                   \
    static const uint8_t nf_in_[] = {__VA_ARGS__};                                       \
    check_next_fails(__FILE__, __LINE__, nf_in_, sizeof nf_in_);                         \
  } while (0)

/* Reads the only token of a writer's output; checks it consumed everything. */
static int read_one(const halo_mpw_t *w, halo_mp_obj_t *o) {
  halo_mpr_t r;
  halo_mpr_init(&r, w->buf, w->len);
  int rc = halo_mpr_next(&r, o);
  if (rc == 0 && r.p != r.end) return -1;
  return rc;
}

static uint64_t dbits(double d) {
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

/* -- 1+2: writer format choice and reading it back --------------------------- */

struct enc {
  uint64_t v;
  uint8_t b[9];
  size_t n;
};

static void test_uint(void) {
  static const struct enc cases[] = {
      {0, {0x00}, 1},
      {1, {0x01}, 1},
      {127, {0x7f}, 1},
      {128, {0xcc, 0x80}, 2},
      {255, {0xcc, 0xff}, 2},
      {256, {0xcd, 0x01, 0x00}, 3},
      {65535, {0xcd, 0xff, 0xff}, 3},
      {65536, {0xce, 0x00, 0x01, 0x00, 0x00}, 5},
      {UINT32_MAX, {0xce, 0xff, 0xff, 0xff, 0xff}, 5},
      {(uint64_t)UINT32_MAX + 1, {0xcf, 0, 0, 0, 0x01, 0, 0, 0, 0}, 9},
      {0x0102030405060708ull, {0xcf, 1, 2, 3, 4, 5, 6, 7, 8}, 9},
      {(uint64_t)INT64_MAX + 1, {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9},
      {UINT64_MAX, {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct enc *c = &cases[i];
    halo_mpw_t w;
    halo_mpw_init(&w, 0);
    halo_mpw_uint(&w, c->v);
    CHECK_EQ(w.err, 0);
    check_bytes(__FILE__, __LINE__, w.buf, w.len, c->b, c->n, 1);
    halo_mp_obj_t o;
    CHECK_EQ(read_one(&w, &o), 0);
    if (c->v < 128) {
      /* positive fixint reads as INT */
      CHECK_EQ(o.type, HALO_MP_INT);
      CHECK_EQ(o.v.i, (int64_t)c->v);
    } else {
      CHECK_EQ(o.type, HALO_MP_UINT);
      CHECK(o.v.u == c->v);
    }
    halo_mpw_free(&w);
  }
}

static void test_int(void) {
  static const struct {
    int64_t v;
    uint8_t b[9];
    size_t n;
  } cases[] = {
      {0, {0x00}, 1},
      {127, {0x7f}, 1},
      {128, {0xcc, 0x80}, 2},
      {65536, {0xce, 0x00, 0x01, 0x00, 0x00}, 5},
      {INT64_MAX, {0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
      {-1, {0xff}, 1},
      {-31, {0xe1}, 1},
      {-32, {0xe0}, 1},
      {-33, {0xd0, 0xdf}, 2},
      {-127, {0xd0, 0x81}, 2},
      {-128, {0xd0, 0x80}, 2},
      {-129, {0xd1, 0xff, 0x7f}, 3},
      {-256, {0xd1, 0xff, 0x00}, 3},
      {-32768, {0xd1, 0x80, 0x00}, 3},
      {-32769, {0xd2, 0xff, 0xff, 0x7f, 0xff}, 5},
      {INT32_MIN, {0xd2, 0x80, 0x00, 0x00, 0x00}, 5},
      {(int64_t)INT32_MIN - 1, {0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}, 9},
      {-0x0102030405060708ll, {0xd3, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf8}, 9},
      {INT64_MIN, {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    halo_mpw_t w;
    halo_mpw_init(&w, 0);
    halo_mpw_int(&w, cases[i].v);
    CHECK_EQ(w.err, 0);
    check_bytes(__FILE__, __LINE__, w.buf, w.len, cases[i].b, cases[i].n, 1);
    halo_mp_obj_t o;
    CHECK_EQ(read_one(&w, &o), 0);
    if (cases[i].v >= 128) {
      CHECK_EQ(o.type, HALO_MP_UINT);
      CHECK(o.v.u == (uint64_t)cases[i].v);
    } else {
      CHECK_EQ(o.type, HALO_MP_INT);
      CHECK_EQ(o.v.i, cases[i].v);
      if (o.v.i != cases[i].v) fprintf(stderr, "  int case %zu\n", i);
    }
    halo_mpw_free(&w);
  }
}

/* Hand-built integers: signed formats sign-extend, unsigned ones do not, and
 * a positive value in a signed format is still INT. */
static void test_read_ints(void) {
  static const struct {
    uint8_t b[9];
    size_t n;
    int type;
    uint64_t v;
  } cases[] = {
      {{0xd0, 0x05}, 2, HALO_MP_INT, 5},
      {{0xd0, 0x7f}, 2, HALO_MP_INT, 127},
      {{0xd0, 0xff}, 2, HALO_MP_INT, (uint64_t)-1},
      {{0xd0, 0x80}, 2, HALO_MP_INT, (uint64_t)-128},
      {{0xd1, 0x7f, 0xff}, 3, HALO_MP_INT, 32767},
      {{0xd1, 0x80, 0x00}, 3, HALO_MP_INT, (uint64_t)-32768},
      {{0xd1, 0xff, 0xfe}, 3, HALO_MP_INT, (uint64_t)-2},
      {{0xd2, 0x7f, 0xff, 0xff, 0xff}, 5, HALO_MP_INT, INT32_MAX},
      {{0xd2, 0x80, 0x00, 0x00, 0x00}, 5, HALO_MP_INT, (uint64_t)(int64_t)INT32_MIN},
      {{0xd2, 0xff, 0xff, 0xff, 0xfd}, 5, HALO_MP_INT, (uint64_t)-3},
      {{0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, HALO_MP_INT, INT64_MAX},
      {{0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, HALO_MP_INT, (uint64_t)-1},
      {{0xcc, 0xff}, 2, HALO_MP_UINT, 255},
      {{0xcc, 0x05}, 2, HALO_MP_UINT, 5},
      {{0xcd, 0xff, 0xff}, 3, HALO_MP_UINT, 65535},
      {{0xce, 0xff, 0xff, 0xff, 0xff}, 5, HALO_MP_UINT, UINT32_MAX},
      {{0xce, 0x80, 0x00, 0x00, 0x00}, 5, HALO_MP_UINT, 0x80000000u},
      {{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, HALO_MP_UINT, UINT64_MAX},
      {{0x00}, 1, HALO_MP_INT, 0},
      {{0x7f}, 1, HALO_MP_INT, 127},
      {{0xe0}, 1, HALO_MP_INT, (uint64_t)-32},
      {{0xff}, 1, HALO_MP_INT, (uint64_t)-1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *c = exact_copy(cases[i].b, cases[i].n);
    halo_mpr_t r;
    halo_mp_obj_t o;
    halo_mpr_init(&r, c, cases[i].n);
    CHECK_EQ(halo_mpr_next(&r, &o), 0);
    CHECK(r.p == r.end);
    CHECK_EQ(o.type, cases[i].type);
    if (cases[i].type == HALO_MP_INT) CHECK_EQ(o.v.i, (int64_t)cases[i].v);
    else CHECK(o.v.u == cases[i].v);
    free(c);
  }
}

static void test_nil_bool(void) {
  halo_mpw_t w;
  halo_mp_obj_t o;
  halo_mpw_init(&w, 0);
  halo_mpw_nil(&w);
  CHECK_BYTES(&w, 0xc0);
  CHECK_EQ(read_one(&w, &o), 0);
  CHECK_EQ(o.type, HALO_MP_NIL);
  halo_mpw_free(&w);

  halo_mpw_init(&w, 0);
  halo_mpw_bool(&w, 1);
  CHECK_BYTES(&w, 0xc3);
  CHECK_EQ(read_one(&w, &o), 0);
  CHECK_EQ(o.type, HALO_MP_BOOL);
  CHECK_EQ(o.v.b, 1);
  halo_mpw_free(&w);

  halo_mpw_init(&w, 0);
  halo_mpw_bool(&w, 0);
  CHECK_BYTES(&w, 0xc2);
  CHECK_EQ(read_one(&w, &o), 0);
  CHECK_EQ(o.type, HALO_MP_BOOL);
  CHECK_EQ(o.v.b, 0);
  halo_mpw_free(&w);

  /* any non-zero int is true */
  halo_mpw_init(&w, 0);
  halo_mpw_bool(&w, 42);
  CHECK_BYTES(&w, 0xc3);
  halo_mpw_free(&w);
}

static void test_double(void) {
  halo_mpw_t w;
  halo_mp_obj_t o;

  halo_mpw_init(&w, 0);
  halo_mpw_double(&w, 1.5);
  CHECK_BYTES(&w, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0);
  CHECK_EQ(read_one(&w, &o), 0);
  CHECK_EQ(o.type, HALO_MP_FLOAT);
  CHECK(o.v.f == 1.5);
  halo_mpw_free(&w);

  halo_mpw_init(&w, 0);
  halo_mpw_double(&w, -2.0);
  CHECK_BYTES(&w, 0xcb, 0xc0, 0, 0, 0, 0, 0, 0, 0);
  halo_mpw_free(&w);

  /* every bit lands in big-endian order */
  static const double vals[] = {0.0, -0.0, 3.141592653589793, -1e300, 5e-324, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    uint64_t bits = dbits(vals[i]);
    uint8_t exp[9] = {0xcb};
    for (int k = 0; k < 8; k++) exp[1 + k] = (uint8_t)(bits >> (56 - 8 * k));
    halo_mpw_init(&w, 0);
    halo_mpw_double(&w, vals[i]);
    check_bytes(__FILE__, __LINE__, w.buf, w.len, exp, sizeof exp, 1);
    CHECK_EQ(read_one(&w, &o), 0);
    CHECK_EQ(o.type, HALO_MP_FLOAT);
    CHECK(dbits(o.v.f) == bits);
    halo_mpw_free(&w);
  }

  /* NaN keeps its payload bits */
  uint64_t nanbits = 0x7ff8000000c0ffeeull;
  double nan_;
  memcpy(&nan_, &nanbits, sizeof nan_);
  halo_mpw_init(&w, 0);
  halo_mpw_double(&w, nan_);
  CHECK_BYTES(&w, 0xcb, 0x7f, 0xf8, 0x00, 0x00, 0x00, 0xc0, 0xff, 0xee);
  CHECK_EQ(read_one(&w, &o), 0);
  CHECK(dbits(o.v.f) == nanbits);
  halo_mpw_free(&w);
}

static void test_read_float32(void) {
  static const struct {
    uint8_t b[5];
    double v;
  } cases[] = {
      {{0xca, 0x3f, 0xc0, 0x00, 0x00}, 1.5},
      {{0xca, 0xc0, 0x00, 0x00, 0x00}, -2.0},
      {{0xca, 0x00, 0x00, 0x00, 0x00}, 0.0},
      {{0xca, 0x40, 0x49, 0x0f, 0xdb}, (double)3.14159274101257324f},
      {{0xca, 0x7f, 0x7f, 0xff, 0xff}, 0x1.fffffep127},
      {{0xca, 0x00, 0x00, 0x00, 0x01}, 0x1p-149},
      {{0xca, 0x7f, 0x80, 0x00, 0x00}, INFINITY},
      {{0xca, 0xff, 0x80, 0x00, 0x00}, -INFINITY},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *c = exact_copy(cases[i].b, 5);
    halo_mpr_t r;
    halo_mp_obj_t o;
    halo_mpr_init(&r, c, 5);
    CHECK_EQ(halo_mpr_next(&r, &o), 0);
    CHECK(r.p == r.end);
    CHECK_EQ(o.type, HALO_MP_FLOAT);
    CHECK(o.v.f == cases[i].v);
    if (o.v.f != cases[i].v) fprintf(stderr, "  float32 case %zu: %.17g\n", i, o.v.f);
    free(c);
  }
  /* -0.0f keeps its sign, NaN stays NaN */
  static const uint8_t negz[] = {0xca, 0x80, 0x00, 0x00, 0x00};
  static const uint8_t qnan[] = {0xca, 0x7f, 0xc0, 0x00, 0x00};
  halo_mpr_t r;
  halo_mp_obj_t o;
  halo_mpr_init(&r, negz, sizeof negz);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK(o.v.f == 0.0 && signbit(o.v.f));
  halo_mpr_init(&r, qnan, sizeof qnan);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK_EQ(o.type, HALO_MP_FLOAT);
  CHECK(isnan(o.v.f));
}

/* Header bytes of a str or bin of length n. */
struct hdr {
  size_t n;
  uint8_t h[5];
  size_t hl;
};

static void check_str_or_bin(int bin, const struct hdr *c) {
  uint8_t *payload = pattern(c->n, (unsigned)c->n);
  halo_mpw_t w;
  halo_mpw_init(&w, 0);
  if (bin) halo_mpw_bin(&w, payload, c->n);
  else halo_mpw_str(&w, (const char *)payload, c->n);
  CHECK_EQ(w.err, 0);
  CHECK_EQ(w.len, c->hl + c->n);
  check_bytes(__FILE__, __LINE__, w.buf, w.len, c->h, c->hl, 0);
  if (w.len == c->hl + c->n) CHECK(memcmp(w.buf + c->hl, payload, c->n) == 0);
  halo_mp_obj_t o;
  CHECK_EQ(read_one(&w, &o), 0);
  CHECK_EQ(o.type, bin ? HALO_MP_BIN : HALO_MP_STR);
  CHECK_EQ(o.len, c->n);
  CHECK(o.p == w.buf + c->hl);
  if (o.len == c->n && o.p) CHECK(memcmp(o.p, payload, c->n) == 0);
  halo_mpw_free(&w);
  free(payload);
}

static void test_str(void) {
  static const struct hdr cases[] = {
      {0, {0xa0}, 1},
      {1, {0xa1}, 1},
      {31, {0xbf}, 1},
      {32, {0xd9, 32}, 2},
      {255, {0xd9, 0xff}, 2},
      {256, {0xda, 0x01, 0x00}, 3},
      {65535, {0xda, 0xff, 0xff}, 3},
      {65536, {0xdb, 0x00, 0x01, 0x00, 0x00}, 5},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_str_or_bin(0, &cases[i]);
}

static void test_bin(void) {
  static const struct hdr cases[] = {
      {0, {0xc4, 0x00}, 2},
      {1, {0xc4, 0x01}, 2},
      {31, {0xc4, 31}, 2},
      {255, {0xc4, 0xff}, 2},
      {256, {0xc5, 0x01, 0x00}, 3},
      {65535, {0xc5, 0xff, 0xff}, 3},
      {65536, {0xc6, 0x00, 0x01, 0x00, 0x00}, 5},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_str_or_bin(1, &cases[i]);
}

/* Array and map headers; read back with enough nil elements after them. */
static void test_containers(void) {
  static const struct {
    uint32_t n;
    uint8_t h[5];
    size_t hl;
  } cases[] = {
      {0, {0x90}, 1},
      {1, {0x91}, 1},
      {15, {0x9f}, 1},
      {16, {0xdc, 0x00, 0x10}, 3},
      {65535, {0xdc, 0xff, 0xff}, 3},
      {65536, {0xdd, 0x00, 0x01, 0x00, 0x00}, 5},
  };
  for (int map = 0; map <= 1; map++) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      uint8_t h[5];
      memcpy(h, cases[i].h, sizeof h);
      if (map) h[0] = cases[i].hl == 1 ? (uint8_t)(0x80 | cases[i].n) : (uint8_t)(h[0] + 2);
      halo_mpw_t w;
      halo_mpw_init(&w, 0);
      if (map) halo_mpw_map(&w, cases[i].n);
      else halo_mpw_array(&w, cases[i].n);
      CHECK_EQ(w.err, 0);
      check_bytes(__FILE__, __LINE__, w.buf, w.len, h, cases[i].hl, 1);

      /* The header alone is refused when it announces elements. */
      halo_mpr_t r;
      halo_mp_obj_t o;
      if (cases[i].n) {
        halo_mpr_init(&r, w.buf, w.len);
        CHECK_EQ(halo_mpr_next(&r, &o), HALO_EMALFORMED);
        CHECK(r.err && r.err[0]);
      }
      /* One element short is refused too; the exact count is accepted. */
      uint64_t elems = (uint64_t)cases[i].n * (map ? 2 : 1);
      for (uint64_t k = 0; k + 1 < elems; k++) halo_mpw_nil(&w);
      if (elems) {
        halo_mpr_init(&r, w.buf, w.len);
        CHECK_EQ(halo_mpr_next(&r, &o), HALO_EMALFORMED);
        halo_mpw_nil(&w);
      }
      CHECK_EQ(w.err, 0);
      CHECK_EQ(w.len, cases[i].hl + elems);
      halo_mpr_init(&r, w.buf, w.len);
      CHECK_EQ(halo_mpr_next(&r, &o), 0);
      CHECK_EQ(o.type, map ? HALO_MP_MAP : HALO_MP_ARRAY);
      CHECK_EQ(o.v.n, cases[i].n);
      CHECK(r.p == w.buf + cases[i].hl);
      uint64_t nils = 0;
      while (r.p < r.end && halo_mpr_next(&r, &o) == 0 && o.type == HALO_MP_NIL) nils++;
      CHECK_EQ(nils, elems);
      const char *err = NULL;
      CHECK_EQ(halo_mp_validate(w.buf, w.len, 1, &err), 0);
      halo_mpw_free(&w);
    }
  }
  /* the largest count */
  halo_mpw_t w;
  halo_mpw_init(&w, 0);
  halo_mpw_array(&w, UINT32_MAX);
  halo_mpw_map(&w, UINT32_MAX);
  CHECK_BYTES(&w, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xdf, 0xff, 0xff, 0xff, 0xff);
  halo_mpw_free(&w);
}

static void test_ext(void) {
  static const struct {
    uint32_t n;
    uint8_t h[5]; /* without the type byte */
    size_t hl;
  } cases[] = {
      {0, {0xc7, 0x00}, 2},
      {1, {0xd4}, 1},
      {2, {0xd5}, 1},
      {3, {0xc7, 0x03}, 2},
      {4, {0xd6}, 1},
      {5, {0xc7, 0x05}, 2},
      {8, {0xd7}, 1},
      {12, {0xc7, 0x0c}, 2},
      {16, {0xd8}, 1},
      {17, {0xc7, 0x11}, 2},
      {255, {0xc7, 0xff}, 2},
      {256, {0xc8, 0x01, 0x00}, 3},
      {300, {0xc8, 0x01, 0x2c}, 3},
      {65535, {0xc8, 0xff, 0xff}, 3},
      {65536, {0xc9, 0x00, 0x01, 0x00, 0x00}, 5},
      {70000, {0xc9, 0x00, 0x01, 0x11, 0x70}, 5},
  };
  static const int8_t types[] = {5, -1, 0, 127, -128};
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      uint32_t n = cases[i].n;
      size_t hl = cases[i].hl;
      uint8_t *payload = pattern(n, 3u + (unsigned)t);
      halo_mpw_t w;
      halo_mpw_init(&w, 0);
      halo_mpw_ext(&w, types[t], payload, n);
      CHECK_EQ(w.err, 0);
      CHECK_EQ(w.len, hl + 1 + n);
      check_bytes(__FILE__, __LINE__, w.buf, w.len, cases[i].h, hl, 0);
      if (w.len == hl + 1 + n) {
        CHECK_EQ(w.buf[hl], (uint8_t)types[t]);
        CHECK(memcmp(w.buf + hl + 1, payload, n) == 0);
      }
      halo_mp_obj_t o;
      CHECK_EQ(read_one(&w, &o), 0);
      CHECK_EQ(o.type, HALO_MP_EXT);
      CHECK_EQ(o.ext, types[t]);
      CHECK_EQ(o.len, n);
      CHECK(o.p == w.buf + hl + 1);
      if (o.len == n && o.p) CHECK(memcmp(o.p, payload, n) == 0);
      halo_mpw_free(&w);
      free(payload);
    }
  }
}

static void test_id(void) {
  static const struct {
    int8_t type;
    uint32_t node;
    uint64_t id, creation;
  } cases[] = {
      {HALO_MP_EXT_PID, 0xdeadbeefu, 0x0123456789abcdefull, 0},
      {HALO_MP_EXT_REF, 0, 0, 0},
      {HALO_MP_EXT_ALIAS, UINT32_MAX, UINT64_MAX, 0},
      {HALO_MP_EXT_PID, 1, (uint64_t)1 << 63, 0},
      {HALO_MP_EXT_PID, 2, 5, 0xfedcba9876543210ull},
      {HALO_MP_EXT_ALIAS, 3, 6, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    halo_mpw_t w;
    halo_mpw_init(&w, 0);
    halo_mpw_id(&w, cases[i].type, cases[i].node, cases[i].id, cases[i].creation);
    CHECK_EQ(w.err, 0);
    CHECK_EQ(w.len, cases[i].creation ? 23 : 15);
    halo_mp_obj_t o;
    CHECK_EQ(read_one(&w, &o), 0);
    CHECK_EQ(o.type, HALO_MP_EXT);
    CHECK_EQ(o.ext, cases[i].type);
    CHECK_EQ(o.len, cases[i].creation ? 20 : 12);
    uint32_t node = 7;
    uint64_t id = 7, creation = 7;
    CHECK_EQ(halo_mp_id(&o, &node, &id, &creation), 0);
    CHECK(node == cases[i].node);
    CHECK(id == cases[i].id);
    CHECK(creation == cases[i].creation);
    halo_mpw_free(&w);
  }
  /* exact bytes: ext8 of 12, type, node then id, both big-endian */
  halo_mpw_t w;
  halo_mpw_init(&w, 0);
  halo_mpw_id(&w, HALO_MP_EXT_PID, 0xdeadbeefu, 0x0123456789abcdefull, 0);
  CHECK_BYTES(&w, 0xc7, 0x0c, 0x01, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
              0xcd, 0xef);
  halo_mpw_free(&w);
  /* with the creation: ext8 of 20, the creation last */
  halo_mpw_init(&w, 0);
  halo_mpw_id(&w, HALO_MP_EXT_PID, 1, 2, 0x0102030405060708ull);
  CHECK_BYTES(&w, 0xc7, 0x14, 0x01, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8);
  halo_mpw_free(&w);

  /* halo_mp_id refuses other sizes and non-extensions */
  uint8_t eight[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  halo_mpw_init(&w, 0);
  halo_mpw_ext(&w, HALO_MP_EXT_PID, eight, 8);
  halo_mp_obj_t o;
  uint32_t node;
  uint64_t id, creation;
  CHECK_EQ(read_one(&w, &o), 0);
  CHECK_EQ(halo_mp_id(&o, &node, &id, &creation), HALO_EMALFORMED);
  halo_mpw_free(&w);
  halo_mpw_init(&w, 0);
  halo_mpw_bin(&w, "0123456789ab", 12);
  CHECK_EQ(read_one(&w, &o), 0);
  CHECK_EQ(halo_mp_id(&o, &node, &id, &creation), HALO_EMALFORMED);
  halo_mpw_free(&w);
}

/* Several tokens in one writer come back in order. */
static void test_sequence(void) {
  halo_mpw_t w;
  halo_mpw_init(&w, 0);
  halo_mpw_map(&w, 2);
  halo_mpw_str(&w, "key", 3);
  halo_mpw_int(&w, -200);
  halo_mpw_str(&w, "list", 4);
  halo_mpw_array(&w, 3);
  halo_mpw_nil(&w);
  halo_mpw_double(&w, 0.25);
  halo_mpw_ext(&w, HALO_MP_EXT_ATOM, "ok", 2);
  CHECK_EQ(w.err, 0);
  CHECK_BYTES(&w, 0x82, 0xa3, 'k', 'e', 'y', 0xd1, 0xff, 0x38, 0xa4, 'l', 'i', 's', 't', 0x93,
              0xc0, 0xcb, 0x3f, 0xd0, 0, 0, 0, 0, 0, 0, 0xd5, 0x04, 'o', 'k');
  halo_mpr_t r;
  halo_mp_obj_t o;
  halo_mpr_init(&r, w.buf, w.len);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK_EQ(o.type, HALO_MP_MAP);
  CHECK_EQ(o.v.n, 2);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK_EQ(o.type, HALO_MP_STR);
  CHECK(o.len == 3 && memcmp(o.p, "key", 3) == 0);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK_EQ(o.type, HALO_MP_INT);
  CHECK_EQ(o.v.i, -200);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK(o.type == HALO_MP_STR && o.len == 4 && memcmp(o.p, "list", 4) == 0);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK(o.type == HALO_MP_ARRAY && o.v.n == 3);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK_EQ(o.type, HALO_MP_NIL);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK(o.type == HALO_MP_FLOAT && o.v.f == 0.25);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK(o.type == HALO_MP_EXT && o.ext == HALO_MP_EXT_ATOM && o.len == 2 &&
        memcmp(o.p, "ok", 2) == 0);
  CHECK(r.p == r.end);
  /* past the end */
  CHECK_EQ(halo_mpr_next(&r, &o), HALO_EMALFORMED);
  CHECK(r.err && r.err[0]);
  halo_mpw_free(&w);

  /* the writer can be reused after free */
  halo_mpw_init(&w, 0);
  halo_mpw_nil(&w);
  halo_mpw_free(&w);
  CHECK(w.buf == NULL);
  CHECK_EQ(w.len, 0);
  halo_mpw_uint(&w, 1);
  CHECK_BYTES(&w, 0x01);
  halo_mpw_free(&w);
}

/* Each format cut short fails cleanly, never reading past the end. */
static void test_read_truncated(void) {
  CHECK_NEXT_FAILS(0xc1);
  CHECK_NEXT_FAILS(0xcc);
  CHECK_NEXT_FAILS(0xcd, 0x01);
  CHECK_NEXT_FAILS(0xce, 0x01, 0x02, 0x03);
  CHECK_NEXT_FAILS(0xcf, 1, 2, 3, 4, 5, 6, 7);
  CHECK_NEXT_FAILS(0xd0);
  CHECK_NEXT_FAILS(0xd1, 0xff);
  CHECK_NEXT_FAILS(0xd2, 0xff, 0xff, 0xff);
  CHECK_NEXT_FAILS(0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
  CHECK_NEXT_FAILS(0xca, 0x3f, 0xc0, 0x00);
  CHECK_NEXT_FAILS(0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0);
  CHECK_NEXT_FAILS(0xa3, 'a', 'b');
  CHECK_NEXT_FAILS(0xbf);
  CHECK_NEXT_FAILS(0xd9);
  CHECK_NEXT_FAILS(0xd9, 0x02, 'a');
  CHECK_NEXT_FAILS(0xda, 0x00);
  CHECK_NEXT_FAILS(0xda, 0x00, 0x01);
  CHECK_NEXT_FAILS(0xdb, 0x00, 0x00, 0x00);
  CHECK_NEXT_FAILS(0xdb, 0xff, 0xff, 0xff, 0xff, 'a');
  CHECK_NEXT_FAILS(0xc4);
  CHECK_NEXT_FAILS(0xc4, 0x01);
  CHECK_NEXT_FAILS(0xc5, 0x00, 0x02, 0x00);
  CHECK_NEXT_FAILS(0xc6, 0x80, 0x00, 0x00, 0x00);
  CHECK_NEXT_FAILS(0xd4);
  CHECK_NEXT_FAILS(0xd4, 0x01);
  CHECK_NEXT_FAILS(0xd5, 0x01, 0x00);
  CHECK_NEXT_FAILS(0xd6, 0x01, 0x00, 0x00, 0x00);
  CHECK_NEXT_FAILS(0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0);
  CHECK_NEXT_FAILS(0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  CHECK_NEXT_FAILS(0xc7);
  CHECK_NEXT_FAILS(0xc7, 0x00);
  CHECK_NEXT_FAILS(0xc7, 0x02, 0x05, 'a');
  CHECK_NEXT_FAILS(0xc8, 0x01);
  CHECK_NEXT_FAILS(0xc8, 0x01, 0x00, 0x05);
  CHECK_NEXT_FAILS(0xc9, 0x00, 0x00, 0x00);
  CHECK_NEXT_FAILS(0xc9, 0xff, 0xff, 0xff, 0xff, 0x05, 'a');
  CHECK_NEXT_FAILS(0x91);
  CHECK_NEXT_FAILS(0x9f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  CHECK_NEXT_FAILS(0x81, 0x01);
  CHECK_NEXT_FAILS(0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  CHECK_NEXT_FAILS(0xdc, 0x00);
  CHECK_NEXT_FAILS(0xdc, 0x00, 0x02, 0xc0);
  CHECK_NEXT_FAILS(0xdd, 0xff, 0xff, 0xff, 0xff);
  CHECK_NEXT_FAILS(0xdd, 0x00, 0x00, 0x00);
  CHECK_NEXT_FAILS(0xde, 0x00, 0x01, 0xc0);
  CHECK_NEXT_FAILS(0xdf, 0x80, 0x00, 0x00, 0x00, 0xc0, 0xc0);
  CHECK_NEXT_FAILS(0xdf, 0x00, 0x00);
  /* nothing at all */
  halo_mpr_t r;
  halo_mp_obj_t o;
  static const uint8_t one[1] = {0xc0};
  halo_mpr_init(&r, one, 0);
  CHECK_EQ(halo_mpr_next(&r, &o), HALO_EMALFORMED);
  CHECK(r.err && r.err[0]);
}

/* -- 3: the size limit --------------------------------------------------------- */

static void test_limit(void) {
  char s[20];
  memset(s, 'x', sizeof s);
  halo_mpw_t w;

  halo_mpw_init(&w, 10);
  halo_mpw_str(&w, s, 20);
  CHECK_EQ(w.err, HALO_ETOOLARGE);
  CHECK(w.len <= 10);
  CHECK(w.cap <= 10);
  size_t len = w.len;
  halo_mpw_nil(&w);
  halo_mpw_bool(&w, 1);
  halo_mpw_int(&w, -1);
  halo_mpw_uint(&w, 1);
  halo_mpw_double(&w, 1.0);
  halo_mpw_str(&w, "a", 1);
  halo_mpw_bin(&w, "a", 1);
  halo_mpw_array(&w, 0);
  halo_mpw_map(&w, 0);
  halo_mpw_ext(&w, 1, "a", 1);
  halo_mpw_id(&w, HALO_MP_EXT_PID, 1, 2, 0);
  CHECK_EQ(w.len, len);
  CHECK_EQ(w.err, HALO_ETOOLARGE);
  halo_mpw_free(&w);

  /* Earlier writes stay intact; the first error sticks. */
  halo_mpw_init(&w, 10);
  halo_mpw_uint(&w, 1);
  halo_mpw_nil(&w);
  CHECK_EQ(w.err, 0);
  halo_mpw_str(&w, s, 20);
  CHECK_EQ(w.err, HALO_ETOOLARGE);
  CHECK(w.len >= 2 && w.len <= 10);
  CHECK_PREFIX(&w, 0x01, 0xc0);
  halo_mpw_nil(&w);
  CHECK_EQ(w.err, HALO_ETOOLARGE);
  halo_mpw_free(&w);

  /* Filling up to exactly max is fine; one byte more is not. */
  halo_mpw_init(&w, 10);
  halo_mpw_str(&w, s, 9);
  CHECK_EQ(w.err, 0);
  CHECK_EQ(w.len, 10);
  CHECK(w.cap <= 10);
  halo_mpw_nil(&w);
  CHECK_EQ(w.err, HALO_ETOOLARGE);
  CHECK_EQ(w.len, 10);
  halo_mpw_free(&w);

  /* A limit above the first allocation still grows, and caps the buffer. */
  uint8_t *big = pattern(1000, 9);
  halo_mpw_init(&w, 1003);
  halo_mpw_bin(&w, big, 1000);
  CHECK_EQ(w.err, 0);
  CHECK_EQ(w.len, 1003);
  CHECK(w.cap <= 1003);
  halo_mpw_int(&w, 0);
  CHECK_EQ(w.err, HALO_ETOOLARGE);
  CHECK_EQ(w.len, 1003);
  halo_mpw_free(&w);

  /* An ext that does not fit. */
  halo_mpw_init(&w, 10);
  halo_mpw_ext(&w, 1, big, 16);
  CHECK_EQ(w.err, HALO_ETOOLARGE);
  CHECK(w.len <= 10);
  halo_mpw_free(&w);
  free(big);

  /* No limit: a large write succeeds. */
  uint8_t *huge = pattern(1 << 20, 1);
  halo_mpw_init(&w, 0);
  halo_mpw_bin(&w, huge, 1 << 20);
  CHECK_EQ(w.err, 0);
  CHECK_EQ(w.len, (1 << 20) + 5);
  halo_mpw_free(&w);
  free(huge);
}

/* -- 4: validation ------------------------------------------------------------- */

/* [ {"a": [1, -2, "x"], "b": {}}, ...x3 ] with assorted scalars. Depth 3. */
static void build_doc(halo_mpw_t *w) {
  halo_mpw_array(w, 4);
  for (int i = 0; i < 3; i++) {
    halo_mpw_map(w, 3);
    halo_mpw_str(w, "a", 1);
    halo_mpw_array(w, 5);
    halo_mpw_uint(w, 1000u + (unsigned)i);
    halo_mpw_int(w, -2 - i * 100000);
    halo_mpw_str(w, "x", 1);
    halo_mpw_double(w, 0.5 * i);
    halo_mpw_bool(w, i & 1);
    halo_mpw_str(w, "b", 1);
    halo_mpw_map(w, 0);
    halo_mpw_int(w, i);
    halo_mpw_id(w, HALO_MP_EXT_REF, 7, (uint64_t)i, 0);
  }
  halo_mpw_bin(w, "\x00\x01", 2);
}

static void test_validate(void) {
  const char *err;
  halo_mpw_t w;
  halo_mpw_init(&w, 0);
  build_doc(&w);
  CHECK_EQ(w.err, 0);

  CHECK_EQ(validate_bytes(w.buf, w.len, 64, &err), 0);
  CHECK_EQ(validate_bytes(w.buf, w.len, 3, &err), 0);
  /* three containers deep: a limit of 2 refuses it */
  CHECK_EQ(validate_bytes(w.buf, w.len, 2, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);

  /* every strict prefix is refused */
  for (size_t k = 0; k < w.len; k++) {
    err = NULL;
    int rc = validate_bytes(w.buf, k, 64, &err);
    CHECK_EQ(rc, HALO_EMALFORMED);
    CHECK(err && err[0]);
    if (rc != HALO_EMALFORMED) fprintf(stderr, "  prefix of %zu of %zu bytes accepted\n", k, w.len);
  }

  /* trailing bytes after a complete value */
  uint8_t *more = malloc(w.len + 1);
  memcpy(more, w.buf, w.len);
  more[w.len] = 0xc0;
  CHECK_EQ(validate_bytes(more, w.len + 1, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  free(more);
  halo_mpw_free(&w);

  static const uint8_t c0c0[] = {0xc0, 0xc0};
  CHECK_EQ(validate_bytes(c0c0, 2, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  static const uint8_t arr_extra[] = {0x91, 0x01, 0x02};
  CHECK_EQ(validate_bytes(arr_extra, sizeof arr_extra, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);

  /* the reserved byte, alone and inside a container */
  static const uint8_t c1[] = {0xc1};
  CHECK_EQ(validate_bytes(c1, 1, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  static const uint8_t arr_c1[] = {0x92, 0x01, 0xc1};
  CHECK_EQ(validate_bytes(arr_c1, sizeof arr_c1, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  static const uint8_t map_c1[] = {0x81, 0xc1, 0x01};
  CHECK_EQ(validate_bytes(map_c1, sizeof map_c1, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);

  /* counts announcing more elements than bytes left */
  static const uint8_t dd[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
  CHECK_EQ(validate_bytes(dd, sizeof dd, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  static const uint8_t df[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0};
  CHECK_EQ(validate_bytes(df, sizeof df, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  static const uint8_t dd_nested[] = {0x91, 0xdd, 0x00, 0x00, 0x00, 0x02, 0xc0};
  CHECK_EQ(validate_bytes(dd_nested, sizeof dd_nested, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  /* An inner container whose count fits the bytes left but not its parent's share. */
  static const uint8_t inner[] = {0x92, 0x92, 0xc0, 0xc0};
  CHECK_EQ(validate_bytes(inner, sizeof inner, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);

  /* a map with one pair whose value is missing */
  static const uint8_t map_half[] = {0x81, 0x01};
  CHECK_EQ(validate_bytes(map_half, sizeof map_half, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  static const uint8_t map_half2[] = {0x92, 0x81, 0x01, 0xc0};
  CHECK_EQ(validate_bytes(map_half2, sizeof map_half2, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  static const uint8_t map_full[] = {0x81, 0x01, 0x02};
  CHECK_EQ(validate_bytes(map_full, sizeof map_full, 64, &err), 0);

  /* empty input */
  CHECK_EQ(validate_bytes(NULL, 0, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);

  /* scalars, and empty containers, at the top level */
  static const uint8_t scalars[][3] = {{0xc0}, {0xc3}, {0x7f}, {0xe0}, {0xa0}, {0x90}, {0x80},
                                       {0xc4, 0x00}, {0xd0, 0x80}, {0xa1, 'z'}, {0xd4, 1, 2}};
  static const size_t scalar_len[] = {1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3};
  for (size_t i = 0; i < sizeof scalar_len / sizeof scalar_len[0]; i++) {
    CHECK_EQ(validate_bytes(scalars[i], scalar_len[i], 64, &err), 0);
  }
  /* A scalar needs no depth; an empty array needs one level. */
  CHECK_EQ(validate_bytes(scalars[0], 1, 0, &err), 0);
  CHECK_EQ(validate_bytes(scalars[5], 1, 1, &err), 0);
  CHECK_EQ(validate_bytes(scalars[5], 1, 0, &err), HALO_EMALFORMED);
}

static void test_validate_depth(void) {
  enum { N = 70 };
  uint8_t doc[N + 1];
  memset(doc, 0x91, N);
  doc[N] = 0xc0;
  const char *err = NULL;
  CHECK_EQ(validate_bytes(doc, sizeof doc, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  err = NULL;
  CHECK_EQ(validate_bytes(doc, sizeof doc, 100, &err), 0);
  /* the exact boundary: 70 open containers */
  CHECK_EQ(validate_bytes(doc, sizeof doc, N, &err), 0);
  CHECK_EQ(validate_bytes(doc, sizeof doc, N - 1, &err), HALO_EMALFORMED);
  /* truncated deep nesting */
  CHECK_EQ(validate_bytes(doc, N, 100, &err), HALO_EMALFORMED);

  /* the same with maps: {nil: {nil: ... nil}} */
  uint8_t mdoc[2 * N + 1];
  for (int i = 0; i < N; i++) {
    mdoc[2 * i] = 0x81;
    mdoc[2 * i + 1] = 0xc0;
  }
  mdoc[2 * N] = 0xc0;
  CHECK_EQ(validate_bytes(mdoc, sizeof mdoc, 64, &err), HALO_EMALFORMED);
  CHECK(err && err[0]);
  CHECK_EQ(validate_bytes(mdoc, sizeof mdoc, 100, &err), 0);

  /* Wide and shallow: siblings do not add depth. */
  uint8_t wide[1 + 3 * 200];
  halo_mpw_t w;
  halo_mpw_init(&w, 0);
  halo_mpw_array(&w, 200);
  for (int i = 0; i < 200; i++) {
    halo_mpw_array(&w, 1);
    halo_mpw_nil(&w);
  }
  CHECK(w.len <= sizeof wide);
  memcpy(wide, w.buf, w.len);
  CHECK_EQ(validate_bytes(wide, w.len, 2, &err), 0);
  CHECK_EQ(validate_bytes(wide, w.len, 1, &err), HALO_EMALFORMED);
  halo_mpw_free(&w);

  /* 250 deep within the 255 supported */
  enum { D = 250 };
  uint8_t deep[D + 1];
  memset(deep, 0x91, D);
  deep[D] = 0x01;
  CHECK_EQ(validate_bytes(deep, sizeof deep, 255, &err), 0);
  CHECK_EQ(validate_bytes(deep, sizeof deep, 249, &err), HALO_EMALFORMED);
}

/* -- 5: random round trip ------------------------------------------------------ */

enum { K_NIL, K_BOOL, K_INT, K_UINT, K_DOUBLE, K_STR, K_BIN, K_EXT, K_KINDS };

struct tok {
  int kind;
  int8_t ext;
  uint64_t bits;
  size_t off;
  uint32_t len;
};

static void check_tok(const struct tok *t, const halo_mp_obj_t *o, const uint8_t *pool) {
  switch (t->kind) {
  case K_NIL: CHECK_EQ(o->type, HALO_MP_NIL); break;
  case K_BOOL:
    CHECK_EQ(o->type, HALO_MP_BOOL);
    CHECK_EQ(o->v.b, (int)t->bits);
    break;
  case K_INT: {
    int64_t v = (int64_t)t->bits;
    if (v >= 128) {
      CHECK_EQ(o->type, HALO_MP_UINT);
      CHECK(o->v.u == (uint64_t)v);
    } else {
      CHECK_EQ(o->type, HALO_MP_INT);
      CHECK_EQ(o->v.i, v);
    }
    break;
  }
  case K_UINT:
    if (t->bits < 128) {
      CHECK_EQ(o->type, HALO_MP_INT);
      CHECK_EQ(o->v.i, (int64_t)t->bits);
    } else {
      CHECK_EQ(o->type, HALO_MP_UINT);
      CHECK(o->v.u == t->bits);
    }
    break;
  case K_DOUBLE:
    CHECK_EQ(o->type, HALO_MP_FLOAT);
    CHECK(dbits(o->v.f) == t->bits);
    break;
  case K_STR:
  case K_BIN:
  case K_EXT:
    CHECK_EQ(o->type, t->kind == K_STR ? HALO_MP_STR : t->kind == K_BIN ? HALO_MP_BIN : HALO_MP_EXT);
    if (t->kind == K_EXT) CHECK_EQ(o->ext, t->ext);
    CHECK_EQ(o->len, t->len);
    if (o->len == t->len && o->p) CHECK(memcmp(o->p, pool + t->off, t->len) == 0);
    break;
  }
}

static void test_random_roundtrip(void) {
  enum { N = 10000, POOL = 1 << 17 };
  static const double specials[] = {0.0, -0.0, 1.0, -1.0, INFINITY, -INFINITY, NAN, 1e308, 5e-324};
  uint8_t *pool = malloc(POOL);
  for (size_t i = 0; i < POOL; i++) pool[i] = (uint8_t)rnd();
  struct tok *toks = calloc(N, sizeof *toks);
  int seen[K_KINDS] = {0};

  halo_mpw_t w;
  halo_mpw_init(&w, 0);
  halo_mpw_array(&w, N);
  for (int i = 0; i < N; i++) {
    struct tok *t = &toks[i];
    t->kind = (int)(rnd() % K_KINDS);
    seen[t->kind]++;
    switch (t->kind) {
    case K_NIL: halo_mpw_nil(&w); break;
    case K_BOOL:
      t->bits = rnd() & 1;
      halo_mpw_bool(&w, (int)t->bits);
      break;
    case K_INT: {
      /* shift so every width is common */
      int64_t v = (int64_t)rnd() >> (rnd() % 64);
      t->bits = (uint64_t)v;
      halo_mpw_int(&w, v);
      break;
    }
    case K_UINT:
      t->bits = rnd() >> (rnd() % 64);
      halo_mpw_uint(&w, t->bits);
      break;
    case K_DOUBLE: {
      double d;
      if (rnd() % 8 == 0) {
        d = specials[rnd() % (sizeof specials / sizeof specials[0])];
      } else {
        uint64_t b = rnd();
        memcpy(&d, &b, sizeof d);
      }
      t->bits = dbits(d);
      halo_mpw_double(&w, d);
      break;
    }
    default: {
      uint64_t r = rnd();
      uint32_t len;
      if (r % 64 == 0) len = (uint32_t)(rnd() % 70001);
      else if (r % 8 == 0) len = (uint32_t)(rnd() % 400);
      else len = (uint32_t)(rnd() % 40);
      t->len = len;
      t->off = (size_t)(rnd() % (POOL - len + 1));
      if (t->kind == K_STR) halo_mpw_str(&w, (const char *)pool + t->off, len);
      else if (t->kind == K_BIN) halo_mpw_bin(&w, pool + t->off, len);
      else {
        t->ext = (int8_t)(uint8_t)rnd();
        halo_mpw_ext(&w, t->ext, pool + t->off, len);
      }
      break;
    }
    }
  }
  CHECK_EQ(w.err, 0);
  for (int k = 0; k < K_KINDS; k++) CHECK(seen[k] > N / K_KINDS / 2);

  const char *err = NULL;
  CHECK_EQ(halo_mp_validate(w.buf, w.len, 1, &err), 0);
  if (err) fprintf(stderr, "  validate: %s\n", err);

  halo_mpr_t r;
  halo_mp_obj_t o;
  halo_mpr_init(&r, w.buf, w.len);
  CHECK_EQ(halo_mpr_next(&r, &o), 0);
  CHECK_EQ(o.type, HALO_MP_ARRAY);
  CHECK_EQ(o.v.n, N);
  for (int i = 0; i < N; i++) {
    int before = check_failures;
    int rc = halo_mpr_next(&r, &o);
    CHECK_EQ(rc, 0);
    if (rc == 0) check_tok(&toks[i], &o, pool);
    if (check_failures != before) {
      fprintf(stderr, "  random token %d (kind %d, bits 0x%llx, len %u)\n", i, toks[i].kind,
              (unsigned long long)toks[i].bits, toks[i].len);
      break;
    }
  }
  CHECK(r.p == r.end);
  halo_mpw_free(&w);
  free(toks);
  free(pool);
}

int main(void) {
  RUN_TEST(test_uint);
  RUN_TEST(test_int);
  RUN_TEST(test_read_ints);
  RUN_TEST(test_nil_bool);
  RUN_TEST(test_double);
  RUN_TEST(test_read_float32);
  RUN_TEST(test_str);
  RUN_TEST(test_bin);
  RUN_TEST(test_containers);
  RUN_TEST(test_ext);
  RUN_TEST(test_id);
  RUN_TEST(test_sequence);
  RUN_TEST(test_read_truncated);
  RUN_TEST(test_limit);
  RUN_TEST(test_validate);
  RUN_TEST(test_validate_depth);
  RUN_TEST(test_random_roundtrip);
  return check_exit_code();
}
