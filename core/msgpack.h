/*
 * MessagePack: a writer into a growable buffer and a reader that hands out
 * one token at a time. Pure C, no allocation by the reader. halo's own
 * extension types carry its identifiers (node CRC32, the 64-bit id and, when
 * known, the 64-bit creation of the node's run it belongs to, big-endian: 12
 * or 20 bytes) and atoms (the name's bytes).
 */
#ifndef HALO_MSGPACK_H
#define HALO_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

enum halo_mp_ext { HALO_MP_EXT_PID = 1, HALO_MP_EXT_REF = 2, HALO_MP_EXT_ALIAS = 3, HALO_MP_EXT_ATOM = 4 };

typedef struct halo_mpw {
  uint8_t *buf;
  size_t len, cap;
  size_t max; /* refuse to grow past this many bytes (0: no limit) */
  int err;    /* first error: HALO_ENOMEM or HALO_ETOOLARGE; later writes are ignored */
} halo_mpw_t;

/** Starts an empty writer that may grow to max bytes (0: unlimited). */
void halo_mpw_init(halo_mpw_t *w, size_t max);
/** Frees the buffer. */
void halo_mpw_free(halo_mpw_t *w);
/** Appends n raw bytes left for the caller to fill; NULL (w->err set) when
 *  they do not fit. The pointer is valid until the next write. */
uint8_t *halo_mpw_reserve(halo_mpw_t *w, size_t n);

void halo_mpw_nil(halo_mpw_t *w);
void halo_mpw_bool(halo_mpw_t *w, int v);
void halo_mpw_int(halo_mpw_t *w, int64_t v);   /* smallest int format */
void halo_mpw_uint(halo_mpw_t *w, uint64_t v); /* smallest uint format */
void halo_mpw_double(halo_mpw_t *w, double v); /* float 64 */
void halo_mpw_str(halo_mpw_t *w, const char *s, size_t n);
void halo_mpw_bin(halo_mpw_t *w, const void *s, size_t n);
void halo_mpw_array(halo_mpw_t *w, uint32_t n);
void halo_mpw_map(halo_mpw_t *w, uint32_t n);
void halo_mpw_ext(halo_mpw_t *w, int8_t type, const void *data, uint32_t n);
/** halo identifier extension: node CRC, id and creation (0: unknown, left out). */
void halo_mpw_id(halo_mpw_t *w, int8_t type, uint32_t node, uint64_t id, uint64_t creation);

enum halo_mp_type {
  HALO_MP_NIL, HALO_MP_BOOL, HALO_MP_INT, HALO_MP_UINT, HALO_MP_FLOAT,
  HALO_MP_STR, HALO_MP_BIN, HALO_MP_ARRAY, HALO_MP_MAP, HALO_MP_EXT,
};

typedef struct halo_mp_obj {
  int type;          /* enum halo_mp_type */
  int8_t ext;        /* HALO_MP_EXT: its type */
  union {
    int b;
    int64_t i;
    uint64_t u;
    double f;
    uint32_t n;      /* ARRAY: elements; MAP: pairs */
  } v;
  const uint8_t *p;  /* STR, BIN, EXT: the bytes */
  uint32_t len;      /* STR, BIN, EXT: their length */
} halo_mp_obj_t;

typedef struct halo_mpr {
  const uint8_t *p, *end;
  const char *err;   /* why the last read failed */
} halo_mpr_t;

void halo_mpr_init(halo_mpr_t *r, const void *buf, size_t len);
/** Reads the next token; 0, or HALO_EMALFORMED with r->err set. Arrays and
 *  maps announce their element counts; their elements are the next tokens.
 *  A count larger than the bytes left could hold is refused here. */
int halo_mpr_next(halo_mpr_t *r, halo_mp_obj_t *o);
/** Decodes a halo identifier extension (12 bytes, or 20 with the creation;
 *  *creation is 0 when it is left out). */
int halo_mp_id(const halo_mp_obj_t *o, uint32_t *node, uint64_t *id, uint64_t *creation);

/** Checks that buf holds exactly one well-formed value nested at most
 *  max_depth (at most 255) deep. 0, or HALO_EMALFORMED with *err (static
 *  text) set. */
int halo_mp_validate(const void *buf, size_t len, int max_depth, const char **err);

#endif
