/* libFuzzer target for the MessagePack decoder (make fuzz).
 *
 * For every input: the C validator (core/msgpack.c) and the Lua decoder
 * (bindings/codec.c) must agree on whether it is well-formed (the decoder may
 * refuse more: nil or NaN map keys, unknown extension types); whatever the
 * decoder accepts must encode again, and that encoding must decode and
 * encode to the same bytes (up to the order of a map's pairs, which a Lua
 * table does not keep). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "msgpack.h"

static lua_State *L;

typedef struct pair {
  halo_mpw_t k, v;
} pair_t;

static int bytes_cmp(const halo_mpw_t *x, const halo_mpw_t *y) {
  int c = memcmp(x->buf, y->buf, x->len < y->len ? x->len : y->len);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* By key, then value: tables as keys may encode alike. */
static int pair_cmp(const void *a, const void *b) {
  const pair_t *x = a, *y = b;
  int c = bytes_cmp(&x->k, &y->k);
  return c ? c : bytes_cmp(&x->v, &y->v);
}

/* Copies one value from r to w with every map's pairs sorted by their
 * bytes: two encodings of one value (a Lua table's pairs come in any
 * order) give the same bytes. */
static void canon(halo_mpr_t *r, halo_mpw_t *w) {
  const uint8_t *at = r->p;
  halo_mp_obj_t o;
  if (halo_mpr_next(r, &o)) {
    fprintf(stderr, "an encoding does not read back: %s\n", r->err);
    abort();
  }
  memcpy(halo_mpw_reserve(w, (size_t)(r->p - at)), at, (size_t)(r->p - at)); /* the token, or a header */
  if (o.type == HALO_MP_ARRAY)
    for (uint32_t i = 0; i < o.v.n; i++) canon(r, w);
  if (o.type != HALO_MP_MAP) return;
  pair_t *pairs = calloc(o.v.n ? o.v.n : 1, sizeof *pairs);
  for (uint32_t i = 0; i < o.v.n; i++) {
    canon(r, &pairs[i].k);
    canon(r, &pairs[i].v);
  }
  qsort(pairs, o.v.n, sizeof *pairs, pair_cmp);
  for (uint32_t i = 0; i < o.v.n; i++) {
    memcpy(halo_mpw_reserve(w, pairs[i].k.len), pairs[i].k.buf, pairs[i].k.len);
    memcpy(halo_mpw_reserve(w, pairs[i].v.len), pairs[i].v.buf, pairs[i].v.len);
    halo_mpw_free(&pairs[i].k);
    halo_mpw_free(&pairs[i].v);
  }
  free(pairs);
}

/* 1 when a and b encode the same value, byte for byte up to map order. */
static int same_bytes(const halo_mpw_t *a, const halo_mpw_t *b) {
  halo_mpw_t ca, cb;
  halo_mpr_t ra, rb;
  halo_mpw_init(&ca, 0);
  halo_mpw_init(&cb, 0);
  halo_mpr_init(&ra, a->buf, a->len);
  halo_mpr_init(&rb, b->buf, b->len);
  canon(&ra, &ca);
  canon(&rb, &cb);
  int same = ra.p == ra.end && rb.p == rb.end && ca.len == cb.len && !memcmp(ca.buf, cb.buf, ca.len);
  halo_mpw_free(&ca);
  halo_mpw_free(&cb);
  return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) L = luaL_newstate();
  const char *verr = NULL;
  int valid = halo_mp_validate(data, size, 64, &verr) == 0;
  char err[160];
  int top = lua_gettop(L);
  int rc = hb_decode(L, data, size, 64, err, sizeof err);
  if (rc == 0 && !valid) {
    fprintf(stderr, "decoder accepted what the validator refused (%s)\n", verr);
    abort();
  }
  if (rc == 0) {
    halo_mpw_t w1, w2;
    halo_mpw_init(&w1, 0);
    halo_mpw_init(&w2, 0);
    if (hb_encode(L, -1, &w1, 64, err, sizeof err)) {
      fprintf(stderr, "a decoded value did not encode: %s\n", err);
      abort();
    }
    if (hb_decode(L, w1.buf, w1.len, 64, err, sizeof err)) {
      fprintf(stderr, "a re-encoded value did not decode: %s\n", err);
      abort();
    }
    if (hb_encode(L, -1, &w2, 64, err, sizeof err) || !same_bytes(&w1, &w2)) {
      fprintf(stderr, "the second encoding differs\n");
      abort();
    }
    halo_mpw_free(&w1);
    halo_mpw_free(&w2);
  }
  lua_settop(L, top);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
