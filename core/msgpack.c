#include "msgpack.h"
#include "errors.h"

#include <stdlib.h>
#include <string.h>

/* -- writer ---------------------------------------------------------------- */

void halo_mpw_init(halo_mpw_t *w, size_t max) {
  memset(w, 0, sizeof *w);
  w->max = max;
}

void halo_mpw_free(halo_mpw_t *w) {
  free(w->buf);
  w->buf = NULL;
  w->len = w->cap = 0;
}

static uint8_t *room(halo_mpw_t *w, size_t n) {
  if (w->err) return NULL;
  if (w->max && w->len + n > w->max) {
    w->err = HALO_ETOOLARGE;
    return NULL;
  }
  if (w->len + n > w->cap) {
    size_t nc = w->cap ? w->cap : 64;
    while (nc < w->len + n) nc *= 2;
    if (w->max && nc > w->max) nc = w->max;
    uint8_t *nb = realloc(w->buf, nc);
    if (!nb) {
      w->err = HALO_ENOMEM;
      return NULL;
    }
    w->buf = nb;
    w->cap = nc;
  }
  uint8_t *at = w->buf + w->len;
  w->len += n;
  return at;
}

uint8_t *halo_mpw_reserve(halo_mpw_t *w, size_t n) { return room(w, n); }

static void be(uint8_t *p, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static void put_tagged(halo_mpw_t *w, uint8_t tag, uint64_t v, int bytes) {
  uint8_t *p = room(w, 1 + (size_t)bytes);
  if (!p) return;
  p[0] = tag;
  be(p + 1, v, bytes);
}

void halo_mpw_nil(halo_mpw_t *w) { put_tagged(w, 0xc0, 0, 0); }
void halo_mpw_bool(halo_mpw_t *w, int v) { put_tagged(w, v ? 0xc3 : 0xc2, 0, 0); }

void halo_mpw_uint(halo_mpw_t *w, uint64_t v) {
  if (v < 128) put_tagged(w, (uint8_t)v, 0, 0);
  else if (v <= UINT8_MAX) put_tagged(w, 0xcc, v, 1);
  else if (v <= UINT16_MAX) put_tagged(w, 0xcd, v, 2);
  else if (v <= UINT32_MAX) put_tagged(w, 0xce, v, 4);
  else put_tagged(w, 0xcf, v, 8);
}

void halo_mpw_int(halo_mpw_t *w, int64_t v) {
  if (v >= 0) {
    halo_mpw_uint(w, (uint64_t)v);
  } else if (v >= -32) {
    put_tagged(w, (uint8_t)(int8_t)v, 0, 0);
  } else if (v >= INT8_MIN) {
    put_tagged(w, 0xd0, (uint64_t)v, 1);
  } else if (v >= INT16_MIN) {
    put_tagged(w, 0xd1, (uint64_t)v, 2);
  } else if (v >= INT32_MIN) {
    put_tagged(w, 0xd2, (uint64_t)v, 4);
  } else {
    put_tagged(w, 0xd3, (uint64_t)v, 8);
  }
}

void halo_mpw_double(halo_mpw_t *w, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  put_tagged(w, 0xcb, bits, 8);
}

static void put_bytes(halo_mpw_t *w, const void *s, size_t n) {
  uint8_t *p = room(w, n);
  if (p && n) memcpy(p, s, n);
}

void halo_mpw_str(halo_mpw_t *w, const char *s, size_t n) {
  if (n > UINT32_MAX) {
    if (!w->err) w->err = HALO_ETOOLARGE;
    return;
  }
  if (n < 32) put_tagged(w, (uint8_t)(0xa0 | n), 0, 0);
  else if (n <= UINT8_MAX) put_tagged(w, 0xd9, n, 1);
  else if (n <= UINT16_MAX) put_tagged(w, 0xda, n, 2);
  else put_tagged(w, 0xdb, n, 4);
  put_bytes(w, s, n);
}

void halo_mpw_bin(halo_mpw_t *w, const void *s, size_t n) {
  if (n > UINT32_MAX) {
    if (!w->err) w->err = HALO_ETOOLARGE;
    return;
  }
  if (n <= UINT8_MAX) put_tagged(w, 0xc4, n, 1);
  else if (n <= UINT16_MAX) put_tagged(w, 0xc5, n, 2);
  else put_tagged(w, 0xc6, n, 4);
  put_bytes(w, s, n);
}

void halo_mpw_array(halo_mpw_t *w, uint32_t n) {
  if (n < 16) put_tagged(w, (uint8_t)(0x90 | n), 0, 0);
  else if (n <= UINT16_MAX) put_tagged(w, 0xdc, n, 2);
  else put_tagged(w, 0xdd, n, 4);
}

void halo_mpw_map(halo_mpw_t *w, uint32_t n) {
  if (n < 16) put_tagged(w, (uint8_t)(0x80 | n), 0, 0);
  else if (n <= UINT16_MAX) put_tagged(w, 0xde, n, 2);
  else put_tagged(w, 0xdf, n, 4);
}

void halo_mpw_ext(halo_mpw_t *w, int8_t type, const void *data, uint32_t n) {
  static const uint8_t fix[17] = {[1] = 0xd4, [2] = 0xd5, [4] = 0xd6, [8] = 0xd7, [16] = 0xd8};
  uint8_t *p;
  if (n <= 16 && fix[n]) {
    if (!(p = room(w, 1))) return;
    p[0] = fix[n];
  } else if (n <= UINT8_MAX) {
    if (!(p = room(w, 2))) return;
    p[0] = 0xc7;
    p[1] = (uint8_t)n;
  } else if (n <= UINT16_MAX) {
    if (!(p = room(w, 3))) return;
    p[0] = 0xc8;
    be(p + 1, n, 2);
  } else {
    if (!(p = room(w, 5))) return;
    p[0] = 0xc9;
    be(p + 1, n, 4);
  }
  uint8_t *t = room(w, 1);
  if (!t) return;
  *t = (uint8_t)type;
  put_bytes(w, data, n);
}

void halo_mpw_id(halo_mpw_t *w, int8_t type, uint32_t node, uint64_t id, uint64_t creation) {
  uint8_t b[20];
  be(b, node, 4);
  be(b + 4, id, 8);
  be(b + 12, creation, 8);
  halo_mpw_ext(w, type, b, creation ? 20 : 12);
}

/* -- reader ---------------------------------------------------------------- */

void halo_mpr_init(halo_mpr_t *r, const void *buf, size_t len) {
  r->p = buf;
  r->end = r->p + len;
  r->err = NULL;
}

static int fail(halo_mpr_t *r, const char *why) {
  r->err = why;
  return HALO_EMALFORMED;
}

static uint64_t rd(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v = (v << 8) | p[i];
  return v;
}

/* Takes a length field of `bytes` bytes, then `len` payload bytes. */
static int take_sized(halo_mpr_t *r, halo_mp_obj_t *o, int type, int bytes) {
  if (r->end - r->p < bytes) return fail(r, "truncated length");
  uint64_t n = rd(r->p, bytes);
  r->p += bytes;
  if ((uint64_t)(r->end - r->p) < n) return fail(r, "truncated string or binary");
  o->type = type;
  o->p = r->p;
  o->len = (uint32_t)n;
  r->p += n;
  return 0;
}

static int take_ext(halo_mpr_t *r, halo_mp_obj_t *o, int len_bytes, uint32_t fixed) {
  uint64_t n = fixed;
  if (len_bytes) {
    if (r->end - r->p < len_bytes) return fail(r, "truncated extension length");
    n = rd(r->p, len_bytes);
    r->p += len_bytes;
  }
  if (r->end - r->p < 1) return fail(r, "truncated extension type");
  o->ext = (int8_t)*r->p++;
  if ((uint64_t)(r->end - r->p) < n) return fail(r, "truncated extension");
  o->type = HALO_MP_EXT;
  o->p = r->p;
  o->len = (uint32_t)n;
  r->p += n;
  return 0;
}

/* A container of n elements needs at least n (array) or 2n (map) bytes. */
static int take_count(halo_mpr_t *r, halo_mp_obj_t *o, int type, int bytes) {
  uint64_t n;
  if (bytes) {
    if (r->end - r->p < bytes) return fail(r, "truncated container length");
    n = rd(r->p, bytes);
    r->p += bytes;
  } else {
    n = o->v.n;
  }
  if (n * (type == HALO_MP_MAP ? 2u : 1u) > (uint64_t)(r->end - r->p))
    return fail(r, "container longer than the data");
  o->type = type;
  o->v.n = (uint32_t)n;
  return 0;
}

static int take_num(halo_mpr_t *r, int bytes, uint64_t *v) {
  if (r->end - r->p < bytes) return fail(r, "truncated number");
  *v = rd(r->p, bytes);
  r->p += bytes;
  return 0;
}

int halo_mpr_next(halo_mpr_t *r, halo_mp_obj_t *o) {
  memset(o, 0, sizeof *o);
  if (r->p >= r->end) return fail(r, "truncated: value expected");
  uint8_t c = *r->p++;
  uint64_t v;
  if (c <= 0x7f) {
    o->type = HALO_MP_INT;
    o->v.i = c;
    return 0;
  }
  if (c >= 0xe0) {
    o->type = HALO_MP_INT;
    o->v.i = (int8_t)c;
    return 0;
  }
  if ((c & 0xf0) == 0x80) {
    o->v.n = c & 0x0f;
    return take_count(r, o, HALO_MP_MAP, 0);
  }
  if ((c & 0xf0) == 0x90) {
    o->v.n = c & 0x0f;
    return take_count(r, o, HALO_MP_ARRAY, 0);
  }
  if ((c & 0xe0) == 0xa0) {
    uint32_t n = c & 0x1f;
    if ((uint32_t)(r->end - r->p) < n) return fail(r, "truncated string");
    o->type = HALO_MP_STR;
    o->p = r->p;
    o->len = n;
    r->p += n;
    return 0;
  }
  switch (c) {
  case 0xc0: o->type = HALO_MP_NIL; return 0;
  case 0xc2: case 0xc3: o->type = HALO_MP_BOOL; o->v.b = c == 0xc3; return 0;
  case 0xc4: return take_sized(r, o, HALO_MP_BIN, 1);
  case 0xc5: return take_sized(r, o, HALO_MP_BIN, 2);
  case 0xc6: return take_sized(r, o, HALO_MP_BIN, 4);
  case 0xc7: return take_ext(r, o, 1, 0);
  case 0xc8: return take_ext(r, o, 2, 0);
  case 0xc9: return take_ext(r, o, 4, 0);
  case 0xca: {
    if (take_num(r, 4, &v)) return HALO_EMALFORMED;
    uint32_t b = (uint32_t)v;
    float f;
    memcpy(&f, &b, sizeof f);
    o->type = HALO_MP_FLOAT;
    o->v.f = f;
    return 0;
  }
  case 0xcb:
    if (take_num(r, 8, &v)) return HALO_EMALFORMED;
    o->type = HALO_MP_FLOAT;
    memcpy(&o->v.f, &v, sizeof v);
    return 0;
  case 0xcc: case 0xcd: case 0xce: case 0xcf:
    if (take_num(r, 1 << (c - 0xcc), &v)) return HALO_EMALFORMED;
    o->type = HALO_MP_UINT;
    o->v.u = v;
    return 0;
  case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
    int bytes = 1 << (c - 0xd0);
    if (take_num(r, bytes, &v)) return HALO_EMALFORMED;
    /* sign-extend */
    if (bytes < 8 && (v >> (bytes * 8 - 1)) & 1) v |= ~((UINT64_C(1) << (bytes * 8)) - 1);
    o->type = HALO_MP_INT;
    o->v.i = (int64_t)v;
    return 0;
  }
  case 0xd4: return take_ext(r, o, 0, 1);
  case 0xd5: return take_ext(r, o, 0, 2);
  case 0xd6: return take_ext(r, o, 0, 4);
  case 0xd7: return take_ext(r, o, 0, 8);
  case 0xd8: return take_ext(r, o, 0, 16);
  case 0xd9: return take_sized(r, o, HALO_MP_STR, 1);
  case 0xda: return take_sized(r, o, HALO_MP_STR, 2);
  case 0xdb: return take_sized(r, o, HALO_MP_STR, 4);
  case 0xdc: return take_count(r, o, HALO_MP_ARRAY, 2);
  case 0xdd: return take_count(r, o, HALO_MP_ARRAY, 4);
  case 0xde: return take_count(r, o, HALO_MP_MAP, 2);
  case 0xdf: return take_count(r, o, HALO_MP_MAP, 4);
  default: return fail(r, "reserved byte 0xc1");
  }
}

int halo_mp_id(const halo_mp_obj_t *o, uint32_t *node, uint64_t *id, uint64_t *creation) {
  if (o->type != HALO_MP_EXT || (o->len != 12 && o->len != 20)) return HALO_EMALFORMED;
  *node = (uint32_t)rd(o->p, 4);
  *id = rd(o->p + 4, 8);
  *creation = o->len == 20 ? rd(o->p + 12, 8) : 0;
  return 0;
}

int halo_mp_validate(const void *buf, size_t len, int max_depth, const char **err) {
  /* An explicit stack of "values still to read" per open container. */
  uint64_t pending[256];
  int depth = 0;
  if (max_depth > 255) max_depth = 255;
  halo_mpr_t r;
  halo_mpr_init(&r, buf, len);
  pending[0] = 1;
  while (depth > 0 || pending[0] > 0) {
    if (pending[depth] == 0) {
      depth--;
      continue;
    }
    pending[depth]--;
    halo_mp_obj_t o;
    if (halo_mpr_next(&r, &o)) {
      *err = r.err;
      return HALO_EMALFORMED;
    }
    if (o.type == HALO_MP_ARRAY || o.type == HALO_MP_MAP) {
      if (depth + 1 > max_depth) {
        *err = "nested too deep";
        return HALO_EMALFORMED;
      }
      pending[++depth] = (uint64_t)o.v.n * (o.type == HALO_MP_MAP ? 2 : 1);
    }
  }
  if (r.p != r.end) {
    *err = "trailing bytes after the value";
    return HALO_EMALFORMED;
  }
  return 0;
}
