/* core.codec: Lua values <-> MessagePack (core/msgpack.c), the one codec for the wire,
 * typed messages and the MCP proxy.
 *
 * Numbers: integral values in the int64 range travel as MessagePack ints,
 * the rest (fractions, inf, nan, -0) as float 64; ints beyond 2^53 decode to
 * the nearest double. Strings: valid UTF-8 as str, anything else as bin;
 * both decode to Lua strings. A string that is exactly the canonical form of
 * a PID, an alias or a ref travels as halo's extension type and decodes to
 * the same string; the extension carries the creation of the node's run it
 * belongs to when the node knows it (its own run's, or the one it was last
 * received with), and decoding one remembers it (net.h: halo_net_learn). Tables: a sequence 1..n (no other keys) is an array,
 * anything else a map. Functions, userdata, threads and cdata cannot be
 * encoded. Nesting is limited (default 64; a cycle hits the limit) and so is
 * the encoded size (default 64 MiB). */
#include "binding.h"
#include "creation.h"
#include "msgpack.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef HALO_FUZZ /* the fuzz target links the codec alone */
#include "net.h"

/* The creation an identifier's extension carries (0: unknown). Refs (kind
 * -1) are never addressed: only this node's own carry it. */
static uint64_t creation_of(int kind, uint32_t node, uint64_t id) {
  halo_binding_t *B = halo__B;
  if (!B || !B->net || (kind < 0 && node != B->node.crc)) return 0;
  return halo_net_creation_of(B->net, kind < 0 ? HALO_ID_PID : kind, node, id);
}

static void learn(int kind, uint32_t node, uint64_t id, uint64_t creation) {
  halo_binding_t *B = halo__B;
  if (creation && B && B->net) halo_net_learn(B->net, kind, node, id, creation);
}
#else
static uint64_t creation_of(int kind, uint32_t node, uint64_t id) {
  (void)kind, (void)node, (void)id;
  return 0;
}
static void learn(int kind, uint32_t node, uint64_t id, uint64_t creation) {
  (void)kind, (void)node, (void)id, (void)creation;
}
#endif

#define DEFAULT_DEPTH 64
#define DEFAULT_SIZE (64u << 20)

typedef struct codec_err {
  int code;
  char text[160];
} codec_err_t;

static int set_err(codec_err_t *e, int code, const char *fmt, const char *arg) {
  e->code = code;
  snprintf(e->text, sizeof e->text, fmt, arg);
  return code;
}

static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) k = 1, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) k = 2, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) k = 3, cp = c & 0x07;
    else return 0;
    if (i + k >= n) return 0; /* truncated sequence */
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + j] & 0x3f);
    }
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += k + 1;
  }
  return 1;
}

/* A string that is exactly a canonical PID / alias / ref: its extension. */
static int encode_id_string(halo_mpw_t *w, const char *s, size_t n) {
  char buf[HALO_REF_STRLEN];
  if (n > 6 && n < HALO_PID_STRLEN && s[0] == '<') {
    halo_pid_t pid;
    if (halo_pid_parse(s, n, &pid)) return 0;
    if ((size_t)halo_pid_format(buf, sizeof buf, pid) != n || memcmp(buf, s, n)) return 0;
    halo_mpw_id(w, HALO_MP_EXT_PID, pid.node, pid.id, creation_of(HALO_ID_PID, pid.node, pid.id));
    return 1;
  }
  const char *prefix = NULL;
  int8_t type = 0;
  if (n > 6 && memcmp(s, "Alias#", 6) == 0) prefix = "Alias", type = HALO_MP_EXT_ALIAS;
  else if (n > 4 && memcmp(s, "Ref#", 4) == 0) prefix = "Ref", type = HALO_MP_EXT_REF;
  if (!prefix || n >= HALO_REF_STRLEN) return 0;
  uint32_t node;
  uint64_t id;
  if (halo_ref_parse(s, n, prefix, &node, &id)) return 0;
  if ((size_t)halo_ref_format(buf, sizeof buf, prefix, node, id) != n || memcmp(buf, s, n)) return 0;
  halo_mpw_id(w, type, node, id, creation_of(type == HALO_MP_EXT_ALIAS ? HALO_ID_ALIAS : -1, node, id));
  return 1;
}

static int encode_value(lua_State *L, int idx, halo_mpw_t *w, int depth, codec_err_t *e);

static int encode_table(lua_State *L, int idx, halo_mpw_t *w, int depth, codec_err_t *e) {
  if (depth <= 0) return set_err(e, HALO_EMALFORMED, "%s", "nested too deep (or a table that contains itself)");
  if (!lua_checkstack(L, 4)) return set_err(e, HALO_ENOMEM, "%s", "Lua stack exhausted");
  size_t n = lua_objlen(L, idx), count = 0;
  int is_array = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (is_array) {
      if (lua_type(L, -2) != LUA_TNUMBER) {
        is_array = 0;
      } else {
        double k = lua_tonumber(L, -2);
        if (!(k >= 1 && k <= (double)n && k == floor(k))) is_array = 0;
      }
    }
    lua_pop(L, 1);
  }
  if (count > UINT32_MAX) return set_err(e, HALO_ETOOLARGE, "%s", "table with more than 2^32 entries");
  if (is_array && count == n) {
    halo_mpw_array(w, (uint32_t)n);
    for (size_t i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, (int)i);
      int rc = encode_value(L, lua_gettop(L), w, depth - 1, e);
      lua_pop(L, 1);
      if (rc) return rc;
    }
    return 0;
  }
  halo_mpw_map(w, (uint32_t)count);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    int rc = encode_value(L, top - 1, w, depth - 1, e);
    if (!rc) rc = encode_value(L, top, w, depth - 1, e);
    if (rc) {
      lua_pop(L, 2);
      return rc;
    }
    lua_pop(L, 1);
  }
  return 0;
}

static int encode_value(lua_State *L, int idx, halo_mpw_t *w, int depth, codec_err_t *e) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL: halo_mpw_nil(w); break;
  case LUA_TBOOLEAN: halo_mpw_bool(w, lua_toboolean(L, idx)); break;
  case LUA_TNUMBER: {
    double d = lua_tonumber(L, idx);
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == floor(d) && !(d == 0 && signbit(d)))
      halo_mpw_int(w, (int64_t)d);
    else
      halo_mpw_double(w, d);
    break;
  }
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (encode_id_string(w, s, n)) break;
    if (utf8_valid((const unsigned char *)s, n)) halo_mpw_str(w, s, n);
    else halo_mpw_bin(w, s, n);
    break;
  }
  case LUA_TTABLE: {
    int rc = encode_table(L, idx, w, depth, e);
    if (rc) return rc;
    break;
  }
  default: return set_err(e, HALO_EINCORRECT, "cannot encode a %s", luaL_typename(L, idx));
  }
  if (w->err) return set_err(e, w->err, "%s", w->err == HALO_ETOOLARGE ? "encoded value over the size limit" : "out of memory");
  return 0;
}

int hb_encode(lua_State *L, int idx, halo_mpw_t *w, int max_depth, char *err, size_t errlen) {
  codec_err_t e = {0, ""};
  if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
  int rc = encode_value(L, idx, w, max_depth, &e);
  if (rc && err) snprintf(err, errlen, "%s", e.text);
  return rc;
}

static int decode_value(lua_State *L, halo_mpr_t *r, int depth, codec_err_t *e) {
  halo_mp_obj_t o;
  if (halo_mpr_next(r, &o)) return set_err(e, HALO_EMALFORMED, "%s", r->err);
  if (!lua_checkstack(L, 3)) return set_err(e, HALO_ENOMEM, "%s", "Lua stack exhausted");
  switch (o.type) {
  case HALO_MP_NIL: lua_pushnil(L); return 0;
  case HALO_MP_BOOL: lua_pushboolean(L, o.v.b); return 0;
  case HALO_MP_INT: lua_pushnumber(L, (lua_Number)o.v.i); return 0;
  case HALO_MP_UINT: lua_pushnumber(L, (lua_Number)o.v.u); return 0;
  case HALO_MP_FLOAT: lua_pushnumber(L, o.v.f); return 0;
  case HALO_MP_STR:
  case HALO_MP_BIN: lua_pushlstring(L, (const char *)o.p, o.len); return 0;
  case HALO_MP_EXT: {
    char buf[HALO_REF_STRLEN];
    uint32_t node;
    uint64_t id, creation;
    if (o.ext == HALO_MP_EXT_ATOM) {
      lua_pushlstring(L, (const char *)o.p, o.len);
      return 0;
    }
    if (o.ext != HALO_MP_EXT_PID && o.ext != HALO_MP_EXT_REF && o.ext != HALO_MP_EXT_ALIAS) {
      char t[8];
      snprintf(t, sizeof t, "%d", o.ext);
      return set_err(e, HALO_EMALFORMED, "unknown extension type %s", t);
    }
    if (halo_mp_id(&o, &node, &id, &creation))
      return set_err(e, HALO_EMALFORMED, "%s", "identifier extension of the wrong size");
    if (o.ext != HALO_MP_EXT_REF) learn(o.ext == HALO_MP_EXT_PID ? HALO_ID_PID : HALO_ID_ALIAS, node, id, creation);
    int n;
    if (o.ext == HALO_MP_EXT_PID) n = halo_pid_format(buf, sizeof buf, (halo_pid_t){node, id});
    else n = halo_ref_format(buf, sizeof buf, o.ext == HALO_MP_EXT_REF ? "Ref" : "Alias", node, id);
    lua_pushlstring(L, buf, (size_t)n);
    return 0;
  }
  case HALO_MP_ARRAY:
  case HALO_MP_MAP: {
    if (depth <= 0) return set_err(e, HALO_EMALFORMED, "%s", "nested too deep");
    int map = o.type == HALO_MP_MAP;
    uint32_t n = o.v.n;
    /* presize, but not blindly: a count is only bounded by the bytes left */
    int pre = n > 4096 ? 4096 : (int)n;
    lua_createtable(L, map ? 0 : pre, map ? pre : 0);
    int t = lua_gettop(L);
    for (uint32_t i = 0; i < n; i++) {
      int rc = decode_value(L, r, depth - 1, e);
      if (rc) return rc;
      if (!map) {
        lua_rawseti(L, t, (int)i + 1);
        continue;
      }
      if (lua_isnil(L, -1)) return set_err(e, HALO_EMALFORMED, "%s", "map key is nil");
      if (lua_type(L, -1) == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))
        return set_err(e, HALO_EMALFORMED, "%s", "map key is NaN");
      rc = decode_value(L, r, depth - 1, e);
      if (rc) return rc;
      lua_rawset(L, t);
    }
    return 0;
  }
  default: return set_err(e, HALO_EMALFORMED, "%s", "unknown token");
  }
}

int hb_decode(lua_State *L, const void *buf, size_t len, int max_depth, char *err, size_t errlen) {
  codec_err_t e = {0, ""};
  halo_mpr_t r;
  halo_mpr_init(&r, buf, len);
  int top = lua_gettop(L);
  int rc = decode_value(L, &r, max_depth, &e);
  if (!rc && r.p != r.end) rc = set_err(&e, HALO_EMALFORMED, "%s", "trailing bytes after the value");
  if (rc) {
    lua_settop(L, top);
    if (err) snprintf(err, errlen, "%s", e.text);
  }
  return rc;
}

#ifndef HALO_FUZZ /* the fuzz target links the codec alone */
static void read_opts(lua_State *L, int idx, int *depth, size_t *size) {
  *depth = DEFAULT_DEPTH;
  *size = DEFAULT_SIZE;
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "max_depth");
  if (!lua_isnil(L, -1)) {
    lua_Number d = luaL_checknumber(L, -1);
    if (d < 1 || d > 255) luaL_argerror(L, idx, "max_depth must be from 1 to 255");
    *depth = (int)d;
  }
  lua_getfield(L, idx, "max_size");
  if (!lua_isnil(L, -1)) {
    lua_Number s = luaL_checknumber(L, -1);
    if (s < 1) luaL_argerror(L, idx, "max_size must be >= 1");
    *size = (size_t)s;
  }
  lua_pop(L, 2);
}

/* core.codec.encode(value[, {max_depth, max_size}]) -> string | nil, err, code */
static int l_encode(lua_State *L) {
  int depth;
  size_t size;
  luaL_checkany(L, 1);
  read_opts(L, 2, &depth, &size);
  halo_mpw_t w;
  halo_mpw_init(&w, size);
  char err[160];
  int rc = hb_encode(L, 1, &w, depth, err, sizeof err);
  if (rc) {
    halo_mpw_free(&w);
    return hb_errorf(L, rc, "%s", err);
  }
  lua_pushlstring(L, (const char *)w.buf, w.len);
  halo_mpw_free(&w);
  return 1;
}

/* core.codec.decode(string[, {max_depth}]) -> value | nil, err, code (a decoded nil is nil, nil) */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int depth;
  size_t size;
  read_opts(L, 2, &depth, &size);
  if (len > size) return hb_errorf(L, HALO_ETOOLARGE, "%zu bytes over the %zu byte limit", len, size);
  char err[160];
  int rc = hb_decode(L, s, len, depth, err, sizeof err);
  if (rc) return hb_errorf(L, rc, "%s", err);
  return 1;
}

void hb_open_codec(lua_State *L) {
  static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
#endif
