/*
 * core.json: the JSON encoder behind halo.json.encode (lua/halo/json.lua
 * states the rules: sorted object keys, list and object marks, Go's
 * MarshalIndent layout, U+FFFD for bytes that are not UTF-8).
 *
 *   core.json.setup(ARRAY, OBJECT, null, cdata_text)   once, from halo.json
 *   core.json.encode(v, pretty) -> text
 *
 * The text grows in a malloc'ed buffer owned by a userdata (its __gc frees
 * it), so an error anywhere (a cycle, a __tostring that raises) leaks
 * nothing. One such state is cached between calls; a call takes it out of
 * the cache and puts it back when done, so a nested call (from a
 * __tostring) or an unwound one never shares it.
 */
#include "binding.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 200
#define JSON_KEEP_BYTES (1u << 20) /* a cached state keeps at most this much buffer */
#define JSON_STACK_KEYS 4000       /* an object's keys stay on the Lua stack below this top */
#define LUA_TCDATA 10              /* LuaJIT's type of FFI values */

/* Slots of the configuration table both functions share as upvalue 1. */
enum { CFG_ARRAY = 1, CFG_OBJECT, CFG_NULL, CFG_CDATA, CFG_STATE_MT, CFG_STATE };

/* Stack slots of an encode call: arguments, then what it fetched. */
enum { S_VALUE = 1, S_PRETTY, S_CFG, S_NULL, S_CDATA, S_STATE };

/* An object key waiting to be sorted: numbers first, then strings (byte
 * order), as halo.json always ordered them (by type name, then value). */
typedef struct {
  const char *s; /* NULL for a number */
  size_t len;
  double num;
  int slot;      /* where the key is kept (collect_keys) */
} json_key_t;

typedef struct {
  char *buf;
  size_t len, cap;
  json_key_t *keys; /* a stack: each object level sorts its own range */
  size_t nkeys, capkeys;
  const void *path[JSON_MAX_DEPTH + 1]; /* tables being encoded, outermost first */
  const void *array_mt, *object_mt;
  int pretty;
} json_state_t;

static int state_gc(lua_State *L) {
  json_state_t *S = lua_touserdata(L, 1);
  free(S->buf);
  free(S->keys);
  S->buf = NULL, S->keys = NULL;
  S->cap = S->capkeys = 0;
  return 0;
}

/* -- Output ------------------------------------------------------------------- */

static void grow(lua_State *L, json_state_t *S, size_t n) {
  size_t cap = S->cap ? S->cap : 256;
  while (cap - S->len < n) cap *= 2;
  char *b = realloc(S->buf, cap);
  if (!b) luaL_error(L, "json: out of memory");
  S->buf = b, S->cap = cap;
}

static inline char *reserve(lua_State *L, json_state_t *S, size_t n) {
  if (S->cap - S->len < n) grow(L, S, n);
  return S->buf + S->len;
}

static inline void put(lua_State *L, json_state_t *S, const char *s, size_t n) {
  memcpy(reserve(L, S, n), s, n);
  S->len += n;
}

#define PUT_LIT(L, S, lit) put(L, S, lit, sizeof(lit) - 1)

/* A newline and 2 * depth spaces (pretty only). */
static void put_indent(lua_State *L, json_state_t *S, int depth) {
  if (!S->pretty) return;
  size_t n = 1 + 2 * (size_t)depth;
  char *p = reserve(L, S, n);
  p[0] = '\n';
  memset(p + 1, ' ', n - 1);
  S->len += n;
}

/* -- Strings -------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 when the
 * byte at s does not start one (a stray continuation byte, an overlong
 * form, a surrogate, past U+10FFFF, cut short). */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (!len || len > n) return 0;
  for (size_t k = 1; k < len; k++)
    if ((s[k] & 0xC0) != 0x80) return 0;
  unsigned c2 = s[1];
  if ((c == 0xE0 && c2 < 0xA0) || (c == 0xED && c2 > 0x9F) || (c == 0xF0 && c2 < 0x90) ||
      (c == 0xF4 && c2 > 0x8F))
    return 0;
  return len;
}

static void put_string(lua_State *L, json_state_t *S, const char *str, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str;
  PUT_LIT(L, S, "\"");
  for (size_t i = 0; i < n;) {
    /* In chunks: at most 6 bytes out per byte in (\u00XX), and a UTF-8
     * sequence may run 3 bytes past the chunk. */
    size_t end = n - i > 4096 ? i + 4096 : n;
    char *o = reserve(L, S, 6 * (end - i) + 4), *o0 = o;
    while (i < end) {
      unsigned c = s[i];
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
        *o++ = (char)c, i++;
      } else if (c >= 0x80) {
        size_t len = utf8_len(s + i, n - i);
        if (len) {
          memcpy(o, s + i, len), o += len, i += len;
        } else {
          memcpy(o, "\xEF\xBF\xBD", 3), o += 3, i++;
        }
      } else { /* control characters (DEL too), '"' and '\\' */
        char e = c == '"' ? '"' : c == '\\' ? '\\' : c == '\b' ? 'b' : c == '\f' ? 'f' : c == '\n' ? 'n'
               : c == '\r' ? 'r' : c == '\t' ? 't' : 0;
        *o++ = '\\';
        if (e) {
          *o++ = e;
        } else {
          memcpy(o, "u00", 3), o += 3;
          *o++ = hex[c >> 4], *o++ = hex[c & 15];
        }
        i++;
      }
    }
    S->len += (size_t)(o - o0);
  }
  PUT_LIT(L, S, "\"");
}

/* tostring(v) through the global tostring (so __tostring applies), quoted. */
static void put_tostring(lua_State *L, json_state_t *S, int idx) {
  lua_getglobal(L, "tostring");
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  if (!s) luaL_error(L, "json: tostring did not return a string");
  put_string(L, S, s, n);
  lua_pop(L, 1);
}

/* -- Numbers ---------------------------------------------------------------------- */

/* LuaJIT's string.format rounds an exact tie away from zero where C's
 * rounds it to even. "%.17g" meets one when d is exactly an 18-digit decimal
 * (ending in 5); at "%.14g" a tie never round-trips, so "%.17g" follows
 * anyway. Prints such a d into tmp as LuaJIT does and returns the length, or
 * returns 0 when d is no such tie. */
static int g17_tie(double d, char *tmp) {
  int e;
  double f = frexp(fabs(d), &e);
  uint64_t m = (uint64_t)ldexp(f, 53), p;
  int k = 53 - e; /* |d| = m / 2^k = m * 5^k / 10^k */
  while (k > 0 && !(m & 1)) m >>= 1, k--;
  if (k <= 0 || k > 26) return 0;
  p = m;
  for (int i = 0; i < k; i++) {
    if (p >= 1000000000000000000ULL) return 0;
    p *= 5;
  }
  if (p < 100000000000000000ULL || p >= 1000000000000000000ULL) return 0;
  uint64_t q = p / 10 + 1; /* 17 digits, the tie rounded away from zero */
  int x = 17 - k;          /* decimal exponent of the leading digit */
  if (q == 100000000000000000ULL) q /= 10, x++;
  char dig[24];
  snprintf(dig, sizeof dig, "%llu", (unsigned long long)q);
  int nd = 17;
  while (nd > 1 && dig[nd - 1] == '0') nd--;
  char *o = tmp;
  if (d < 0) *o++ = '-';
  if (x < -4) {
    *o++ = dig[0];
    if (nd > 1) *o++ = '.', memcpy(o, dig + 1, (size_t)nd - 1), o += nd - 1;
    o += sprintf(o, "e-%02d", -x);
  } else if (x >= 0) {
    memcpy(o, dig, (size_t)x + 1), o += x + 1;
    if (nd > x + 1) *o++ = '.', memcpy(o, dig + x + 1, (size_t)(nd - x - 1)), o += nd - x - 1;
  } else {
    *o++ = '0', *o++ = '.';
    for (int i = 0; i < -x - 1; i++) *o++ = '0';
    memcpy(o, dig, (size_t)nd), o += nd;
  }
  return (int)(o - tmp);
}

static void put_number(lua_State *L, json_state_t *S, double d) {
  char tmp[40];
  int n;
  if (isnan(d) || isinf(d)) {
    PUT_LIT(L, S, "null");
    return;
  }
  /* Integral values in int64's range print as integers (unix ns times pass
   * 2^53; Go's decoder refuses 1.79e+18 for an int64). */
  if (floor(d) == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
    if (d == 0 && signbit(d)) {
      n = snprintf(tmp, sizeof tmp, "-0");
    } else {
      int64_t v = (int64_t)d;
      uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
      char *e = tmp + sizeof tmp, *p = e;
      do *--p = (char)('0' + u % 10), u /= 10;
      while (u);
      if (v < 0) *--p = '-';
      put(L, S, p, (size_t)(e - p));
      return;
    }
  } else {
    n = snprintf(tmp, sizeof tmp, "%.14g", d);
    if (strtod(tmp, NULL) != d && !(n = g17_tie(d, tmp))) n = snprintf(tmp, sizeof tmp, "%.17g", d);
  }
  put(L, S, tmp, (size_t)n);
}

/* -- Tables ------------------------------------------------------------------------- */

static void put_value(lua_State *L, json_state_t *S, int idx, int depth);

static inline int key_cmp(const void *pa, const void *pb) {
  const json_key_t *a = pa, *b = pb;
  if (!a->s || !b->s) {
    if (a->s) return 1;
    if (b->s) return -1;
    return a->num < b->num ? -1 : a->num > b->num;
  }
  const unsigned char *x = (const unsigned char *)a->s, *y = (const unsigned char *)b->s;
  size_t n = a->len < b->len ? a->len : b->len;
  for (size_t i = 0; i < n; i++) /* keys are short: no memcmp call */
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return a->len < b->len ? -1 : a->len > b->len;
}

/* A new entry on top of S->keys. */
static json_key_t *push_key(lua_State *L, json_state_t *S) {
  if (S->nkeys == S->capkeys) {
    size_t cap = S->capkeys ? 2 * S->capkeys : 64;
    json_key_t *keys = realloc(S->keys, cap * sizeof *keys);
    if (!keys) luaL_error(L, "json: out of memory");
    S->keys = keys, S->capkeys = cap;
  }
  return &S->keys[S->nkeys++];
}

/* Fills k from the key at idx (a string or a number). */
static void set_key(lua_State *L, json_key_t *k, int idx, int type, int slot) {
  k->slot = slot;
  if (type == LUA_TSTRING) {
    k->s = lua_tolstring(L, idx, &k->len);
  } else {
    k->s = NULL;
    k->num = lua_tonumber(L, idx);
  }
}

/* The table at t (raw: no metatable of its own, or a mark) is a list of n. */
static int is_list(lua_State *L, json_state_t *S, int t, const void *mt, size_t *n) {
  *n = lua_objlen(L, t);
  if (mt == S->array_mt) return 1;
  if (mt == S->object_mt || *n == 0) return 0;
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) count++, lua_pop(L, 1);
  return count == *n;
}

static void put_list(lua_State *L, json_state_t *S, int t, size_t n, int raw, int depth) {
  if (n == 0) {
    PUT_LIT(L, S, "[]");
    return;
  }
  PUT_LIT(L, S, "[");
  for (size_t i = 1; i <= n; i++) {
    if (i > 1) PUT_LIT(L, S, ",");
    put_indent(L, S, depth + 1);
    if (raw) {
      lua_rawgeti(L, t, (int)i);
    } else {
      lua_pushnumber(L, (lua_Number)i);
      lua_gettable(L, t);
    }
    put_value(L, S, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  put_indent(L, S, depth);
  PUT_LIT(L, S, "]");
}

/* Sorts n keys: insertion sort for the small objects most are, else qsort. */
static void sort_keys(json_key_t *k, size_t n) {
  if (n > 24) {
    qsort(k, n, sizeof *k, key_cmp);
    return;
  }
  for (size_t i = 1; i < n; i++) {
    json_key_t x = k[i];
    size_t j = i;
    while (j > 0 && key_cmp(&x, &k[j - 1]) < 0) k[j] = k[j - 1], j--;
    k[j] = x;
  }
}

/* Collects the string and number keys of the table at t, sorted, into
 * S->keys from base. Each key is kept alive while values are encoded (a
 * __tostring could drop it from t): on the stack (slot: its index) while few
 * enough to fit there, otherwise (*ks set to its index) in a table of keys
 * (slot: the index there). */
static int collect_keys(lua_State *L, json_state_t *S, int t, size_t base, int *ks) {
  int top = lua_gettop(L), nk = 0;
  *ks = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    int tk = lua_type(L, -1);
    if (tk != LUA_TSTRING && tk != LUA_TNUMBER) continue;
    if (lua_gettop(L) > JSON_STACK_KEYS || !lua_checkstack(L, 4)) break;
    set_key(L, push_key(L, S), -1, tk, lua_gettop(L));
    nk++;
    lua_pushvalue(L, -1);
  }
  if (lua_gettop(L) > top + nk) { /* too many for the stack: again, into a table */
    lua_settop(L, top);
    S->nkeys = base, nk = 0;
    lua_newtable(L);
    *ks = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
      lua_pop(L, 1);
      int tk = lua_type(L, -1);
      if (tk != LUA_TSTRING && tk != LUA_TNUMBER) continue;
      set_key(L, push_key(L, S), -1, tk, ++nk);
      lua_pushvalue(L, -1);
      lua_rawseti(L, *ks, nk);
    }
  }
  sort_keys(S->keys + base, (size_t)nk);
  return nk;
}

static void put_object(lua_State *L, json_state_t *S, int t, int raw, int depth) {
  size_t base = S->nkeys;
  int top = lua_gettop(L), ks;
  int nk = collect_keys(L, S, t, base, &ks);
  if (nk == 0) {
    PUT_LIT(L, S, "{}");
    lua_settop(L, top);
    return;
  }
  PUT_LIT(L, S, "{");
  for (int i = 0; i < nk; i++) {
    json_key_t k = S->keys[base + (size_t)i]; /* nested objects may move S->keys */
    if (i > 0) PUT_LIT(L, S, ",");
    put_indent(L, S, depth + 1);
    if (k.s) {
      put_string(L, S, k.s, k.len);
    } else {
      size_t len;
      if (ks) lua_rawgeti(L, ks, k.slot);
      else lua_pushvalue(L, k.slot);
      const char *s = lua_tolstring(L, -1, &len); /* tostring of a number */
      put_string(L, S, s, len);
      lua_pop(L, 1);
    }
    if (S->pretty) PUT_LIT(L, S, ": ");
    else PUT_LIT(L, S, ":");
    if (ks) lua_rawgeti(L, ks, k.slot);
    else lua_pushvalue(L, k.slot);
    if (raw) lua_rawget(L, t); /* t[k] as it is now */
    else lua_gettable(L, t);
    put_value(L, S, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  put_indent(L, S, depth);
  PUT_LIT(L, S, "}");
  S->nkeys = base;
  lua_settop(L, top);
}

static void put_table(lua_State *L, json_state_t *S, int t, int depth) {
  const void *self = lua_topointer(L, t);
  for (int d = 0; d < depth; d++)
    if (S->path[d] == self) luaL_error(L, "json: cycle in table");
  if (depth >= JSON_MAX_DEPTH) luaL_error(L, "json: tables nested deeper than %d", JSON_MAX_DEPTH);
  S->path[depth] = self;
  luaL_checkstack(L, 8, "json: nesting");
  const void *mt = NULL;
  if (lua_getmetatable(L, t)) {
    mt = lua_topointer(L, -1);
    lua_pop(L, 1);
  }
  /* A table with a metatable that is no mark reads through it (its __index
   * applies), as t[k] does. */
  int raw = !mt || mt == S->array_mt || mt == S->object_mt;
  size_t n;
  if (is_list(L, S, t, mt, &n)) put_list(L, S, t, n, raw, depth);
  else put_object(L, S, t, raw, depth);
}

static void put_value(lua_State *L, json_state_t *S, int idx, int depth) {
  size_t n;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &n);
    put_string(L, S, s, n);
    break;
  case LUA_TNUMBER: put_number(L, S, lua_tonumber(L, idx)); break;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) PUT_LIT(L, S, "true");
    else PUT_LIT(L, S, "false");
    break;
  case LUA_TTABLE: put_table(L, S, idx, depth); break;
  case LUA_TNIL: PUT_LIT(L, S, "null"); break;
  case LUA_TCDATA: /* halo.json's cdata_text: 123LL prints 123, a NULL pointer null */
    lua_pushvalue(L, S_CDATA);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    s = lua_tolstring(L, -1, &n);
    if (!s) luaL_error(L, "json: cdata_text did not return a string");
    put(L, S, s, n);
    lua_pop(L, 1);
    break;
  default:
    if (lua_rawequal(L, idx, S_NULL)) PUT_LIT(L, S, "null");
    else put_tostring(L, S, idx);
  }
}

/* -- Lua API ------------------------------------------------------------------------- */

/* core.json.encode(v, pretty) -> text */
static int l_encode(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1)); /* S_CFG */
  lua_rawgeti(L, S_CFG, CFG_NULL);
  lua_rawgeti(L, S_CFG, CFG_CDATA);
  if (lua_isnil(L, S_CDATA)) luaL_error(L, "json: core.json.setup has not run");
  lua_rawgeti(L, S_CFG, CFG_STATE);
  json_state_t *S = lua_touserdata(L, S_STATE);
  if (S) {
    lua_pushnil(L);
    lua_rawseti(L, S_CFG, CFG_STATE);
  } else {
    lua_pop(L, 1);
    S = lua_newuserdata(L, sizeof *S);
    memset(S, 0, sizeof *S);
    lua_rawgeti(L, S_CFG, CFG_STATE_MT);
    lua_setmetatable(L, -2);
  }
  S->len = S->nkeys = 0;
  if (!S->buf) grow(L, S, 1);
  S->pretty = lua_toboolean(L, S_PRETTY);
  lua_rawgeti(L, S_CFG, CFG_ARRAY);
  lua_rawgeti(L, S_CFG, CFG_OBJECT);
  S->array_mt = lua_topointer(L, -2);
  S->object_mt = lua_topointer(L, -1);
  lua_pop(L, 2);
  put_value(L, S, S_VALUE, 0);
  lua_pushlstring(L, S->buf, S->len);
  if (S->cap > JSON_KEEP_BYTES) {
    free(S->buf);
    S->buf = NULL, S->cap = 0;
  }
  lua_pushvalue(L, S_STATE);
  lua_rawseti(L, S_CFG, CFG_STATE);
  return 1;
}

/* core.json.setup(ARRAY, OBJECT, null, cdata_text): the list and object
 * marks (metatables), the null value, and the function that prints a cdata
 * value (returns its JSON text). */
static int l_setup(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checkany(L, 3);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  for (int i = 1; i <= 4; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, lua_upvalueindex(1), CFG_ARRAY + i - 1);
  }
  return 0;
}

void hb_open_json(lua_State *L) {
  lua_newtable(L); /* the configuration both functions share */
  lua_newtable(L);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawseti(L, -2, CFG_STATE_MT);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_encode, 1);
  lua_setfield(L, -3, "encode");
  lua_pushcclosure(L, l_setup, 1);
  lua_setfield(L, -2, "setup");
}
