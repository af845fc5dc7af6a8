#include "pprof.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "errors.h"
#include "map.h"

/* profile.proto field numbers */
enum {
  P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_MAPPING = 3, P_LOCATION = 4, P_FUNCTION = 5,
  P_STRING_TABLE = 6, P_TIME_NANOS = 9, P_DURATION_NANOS = 10, P_PERIOD_TYPE = 11, P_PERIOD = 12,
};
enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

typedef struct buf {
  unsigned char *p;
  size_t len, cap;
  int oom;
} buf_t;

struct halo_pprof {
  buf_t types, samples, locations, functions, strings;
  halo_smap_t string_ids;  /* string -> index + 1 */
  char **owned;            /* the strings' copies, freed with the profile */
  size_t nowned, owned_cap;
  halo_smap_t function_ids; /* "name\x1ffile" -> id */
  halo_imap_t location_ids; /* function id << 32 | line -> id */
  uint64_t nstrings, nfunctions, nlocations;
  size_t ntypes, nsamples;
  int64_t period_type, period_unit, period, time_nanos, duration_nanos;
  int oom;
};

static void buf_put(buf_t *b, const void *data, size_t n) {
  if (b->oom) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    unsigned char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void buf_varint(buf_t *b, uint64_t v) {
  unsigned char tmp[10];
  size_t n = 0;
  while (v >= 0x80) {
    tmp[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  tmp[n++] = (unsigned char)v;
  buf_put(b, tmp, n);
}

static void buf_key(buf_t *b, unsigned field, unsigned wire) { buf_varint(b, (uint64_t)field << 3 | wire); }

/* A varint field; proto3 omits zero values. */
static void buf_uint(buf_t *b, unsigned field, uint64_t v) {
  if (!v) return;
  buf_key(b, field, WIRE_VARINT);
  buf_varint(b, v);
}

static void buf_bytes(buf_t *b, unsigned field, const void *data, size_t n) {
  buf_key(b, field, WIRE_LEN);
  buf_varint(b, n);
  buf_put(b, data, n);
}

static void buf_free(buf_t *b) { free(b->p); }

halo_pprof_t *halo_pprof_new(void) {
  halo_pprof_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  halo_smap_init(&p->string_ids);
  halo_smap_init(&p->function_ids);
  halo_imap_init(&p->location_ids);
  buf_bytes(&p->strings, P_STRING_TABLE, "", 0); /* string 0 is "" */
  p->nstrings = 1;
  return p;
}

void halo_pprof_free(halo_pprof_t *p) {
  if (!p) return;
  buf_free(&p->types);
  buf_free(&p->samples);
  buf_free(&p->locations);
  buf_free(&p->functions);
  buf_free(&p->strings);
  halo_smap_destroy(&p->string_ids);
  halo_smap_destroy(&p->function_ids);
  halo_imap_destroy(&p->location_ids);
  for (size_t i = 0; i < p->nowned; i++) free(p->owned[i]);
  free(p->owned);
  free(p);
}

/* Keeps a copy of s alive as long as the profile; NULL when out of memory. */
static char *own(halo_pprof_t *p, const char *s, size_t n) {
  if (p->nowned == p->owned_cap) {
    size_t cap = p->owned_cap ? p->owned_cap * 2 : 64;
    char **no = realloc(p->owned, cap * sizeof *no);
    if (!no) return NULL;
    p->owned = no;
    p->owned_cap = cap;
  }
  char *c = malloc(n + 1);
  if (!c) return NULL;
  memcpy(c, s, n);
  c[n] = '\0';
  p->owned[p->nowned++] = c;
  return c;
}

/* The string table index of s (added the first time); -1 when out of memory. */
static int64_t str_id(halo_pprof_t *p, const char *s) {
  if (!s || !*s) return 0;
  void *v = halo_smap_get(&p->string_ids, s);
  if (v) return (int64_t)(uintptr_t)v - 1;
  size_t n = strlen(s);
  char *c = own(p, s, n);
  if (!c || halo_smap_put(&p->string_ids, c, (void *)(uintptr_t)(p->nstrings + 1)) != 0) {
    p->oom = 1;
    return -1;
  }
  buf_bytes(&p->strings, P_STRING_TABLE, s, n);
  return (int64_t)p->nstrings++;
}

static void value_type(buf_t *b, unsigned field, int64_t type, int64_t unit) {
  buf_t m = {0};
  buf_uint(&m, 1, (uint64_t)type);
  buf_uint(&m, 2, (uint64_t)unit);
  if (m.oom) b->oom = 1;
  buf_bytes(b, field, m.p, m.len);
  buf_free(&m);
}

int halo_pprof_sample_type(halo_pprof_t *p, const char *type, const char *unit) {
  int64_t t = str_id(p, type), u = str_id(p, unit);
  if (t < 0 || u < 0) return HALO_ENOMEM;
  value_type(&p->types, P_SAMPLE_TYPE, t, u);
  if (p->types.oom) return HALO_ENOMEM;
  return (int)p->ntypes++;
}

int halo_pprof_period(halo_pprof_t *p, const char *type, const char *unit, int64_t period) {
  int64_t t = str_id(p, type), u = str_id(p, unit);
  if (t < 0 || u < 0) return HALO_ENOMEM;
  p->period_type = t;
  p->period_unit = u;
  p->period = period;
  return 0;
}

void halo_pprof_times(halo_pprof_t *p, int64_t time_nanos, int64_t duration_nanos) {
  p->time_nanos = time_nanos;
  p->duration_nanos = duration_nanos;
}

static uint64_t function_id(halo_pprof_t *p, const char *name, const char *file) {
  if (!file) file = "";
  size_t nn = strlen(name), nf = strlen(file);
  char *key = malloc(nn + nf + 2);
  if (!key) return 0;
  memcpy(key, name, nn);
  key[nn] = '\x1f';
  memcpy(key + nn + 1, file, nf + 1);
  void *v = halo_smap_get(&p->function_ids, key);
  if (v) {
    free(key);
    return (uint64_t)(uintptr_t)v;
  }
  int64_t sn = str_id(p, name), sf = str_id(p, file);
  char *kept = own(p, key, nn + nf + 1);
  free(key);
  uint64_t id = p->nfunctions + 1;
  if (sn < 0 || sf < 0 || !kept || halo_smap_put(&p->function_ids, kept, (void *)(uintptr_t)id) != 0) return 0;
  buf_t m = {0};
  buf_uint(&m, 1, id);
  buf_uint(&m, 2, (uint64_t)sn);
  buf_uint(&m, 3, (uint64_t)sn); /* system_name: the same name */
  buf_uint(&m, 4, (uint64_t)sf);
  if (m.oom) p->functions.oom = 1;
  buf_bytes(&p->functions, P_FUNCTION, m.p, m.len);
  buf_free(&m);
  if (p->functions.oom) return 0;
  p->nfunctions = id;
  return id;
}

uint64_t halo_pprof_location(halo_pprof_t *p, const char *function, const char *file, int64_t line) {
  uint64_t fid = function_id(p, function ? function : "?", file);
  if (!fid) return 0;
  uint64_t key = fid << 32 | (uint32_t)line;
  void *v = halo_imap_get(&p->location_ids, key);
  if (v) return (uint64_t)(uintptr_t)v;
  uint64_t id = p->nlocations + 1;
  if (halo_imap_put(&p->location_ids, key, (void *)(uintptr_t)id) != 0) return 0;
  buf_t ln = {0}, m = {0};
  buf_uint(&ln, 1, fid);
  buf_uint(&ln, 2, (uint64_t)line);
  buf_uint(&m, 1, id);
  buf_uint(&m, 2, 1); /* mapping 1: the program */
  buf_bytes(&m, 4, ln.p, ln.len);
  if (ln.oom || m.oom) p->locations.oom = 1;
  buf_bytes(&p->locations, P_LOCATION, m.p, m.len);
  buf_free(&ln);
  buf_free(&m);
  if (p->locations.oom) return 0;
  p->nlocations = id;
  return id;
}

int halo_pprof_sample(halo_pprof_t *p, const uint64_t *locations, size_t nlocations,
                      const int64_t *values, size_t nvalues,
                      const halo_pprof_label_t *labels, size_t nlabels) {
  if (nvalues != p->ntypes) return HALO_EINCORRECT;
  buf_t m = {0}, packed = {0}, lb = {0};
  for (size_t i = 0; i < nlocations; i++) buf_varint(&packed, locations[i]);
  if (nlocations) buf_bytes(&m, 1, packed.p, packed.len);
  packed.len = 0;
  for (size_t i = 0; i < nvalues; i++) buf_varint(&packed, (uint64_t)values[i]);
  if (nvalues) buf_bytes(&m, 2, packed.p, packed.len);
  for (size_t i = 0; i < nlabels; i++) {
    int64_t k = str_id(p, labels[i].key);
    int64_t s = labels[i].str ? str_id(p, labels[i].str) : 0;
    int64_t u = labels[i].str ? 0 : str_id(p, labels[i].num_unit);
    if (k < 0 || s < 0 || u < 0) break;
    lb.len = 0;
    buf_uint(&lb, 1, (uint64_t)k);
    buf_uint(&lb, 2, (uint64_t)s);
    if (!labels[i].str) {
      buf_uint(&lb, 3, (uint64_t)labels[i].num);
      buf_uint(&lb, 4, (uint64_t)u);
    }
    if (lb.oom) m.oom = 1;
    buf_bytes(&m, 3, lb.p, lb.len);
  }
  int oom = p->oom || m.oom || packed.oom || lb.oom;
  if (!oom) buf_bytes(&p->samples, P_SAMPLE, m.p, m.len);
  buf_free(&m);
  buf_free(&packed);
  buf_free(&lb);
  if (oom || p->samples.oom) return HALO_ENOMEM;
  p->nsamples++;
  return 0;
}

size_t halo_pprof_samples(const halo_pprof_t *p) { return p->nsamples; }

int halo_pprof_write(halo_pprof_t *p, unsigned char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  buf_t m = {0}, map = {0};
  int64_t halo = str_id(p, "halo");
  if (halo < 0) return HALO_ENOMEM;
  buf_uint(&map, 1, 1);
  buf_uint(&map, 5, (uint64_t)halo);
  buf_uint(&map, 7, 1); /* has_functions */
  buf_uint(&map, 8, 1); /* has_filenames */
  buf_uint(&map, 9, 1); /* has_line_numbers */
  buf_put(&m, p->types.p, p->types.len);
  buf_put(&m, p->samples.p, p->samples.len);
  buf_bytes(&m, P_MAPPING, map.p, map.len);
  buf_put(&m, p->locations.p, p->locations.len);
  buf_put(&m, p->functions.p, p->functions.len);
  buf_put(&m, p->strings.p, p->strings.len);
  buf_uint(&m, P_TIME_NANOS, (uint64_t)p->time_nanos);
  buf_uint(&m, P_DURATION_NANOS, (uint64_t)p->duration_nanos);
  if (p->period_type || p->period_unit) value_type(&m, P_PERIOD_TYPE, p->period_type, p->period_unit);
  buf_uint(&m, P_PERIOD, (uint64_t)p->period);
  int oom = p->oom || m.oom || map.oom || p->types.oom || p->samples.oom || p->locations.oom ||
            p->functions.oom || p->strings.oom;
  buf_free(&map);
  if (oom) {
    buf_free(&m);
    return HALO_ENOMEM;
  }
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    buf_free(&m);
    return HALO_ENOMEM;
  }
  uLong cap = deflateBound(&z, (uLong)m.len);
  unsigned char *gz = malloc(cap);
  int rc = HALO_ENOMEM;
  if (gz) {
    z.next_in = m.p;
    z.avail_in = (uInt)m.len;
    z.next_out = gz;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) == Z_STREAM_END) {
      *out = gz;
      *len = z.total_out;
      rc = 0;
    } else {
      free(gz);
    }
  }
  deflateEnd(&z);
  buf_free(&m);
  return rc;
}
