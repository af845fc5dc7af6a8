/* libFuzzer target for the MessagePack decoder (make fuzz).
 *
 * For every input: the C validator (core/msgpack.c) and the Lua decoder
 * (bindings/codec.c) must agree on whether it is well-formed (the decoder may
 * refuse more: nil or NaN map keys, unknown extension types); whatever the
 * decoder accepts must encode again and decode to the same encoding. */
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
    if (hb_encode(L, -1, &w2, 64, err, sizeof err) || w2.len != w1.len) {
      fprintf(stderr, "the second encoding differs in size\n");
      abort();
    }
    halo_mpw_free(&w1);
    halo_mpw_free(&w2);
  }
  lua_settop(L, top);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
