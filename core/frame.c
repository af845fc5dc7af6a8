#include "frame.h"
#include "errors.h"
#include "mailbox.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define NONCE HALO_FRAME_NONCE

void halo__put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
uint32_t halo__get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
void halo__put64(uint8_t *p, uint64_t v) {
  halo__put32(p, (uint32_t)(v >> 32));
  halo__put32(p + 4, (uint32_t)v);
}
uint64_t halo__get64(const uint8_t *p) { return (uint64_t)halo__get32(p) << 32 | halo__get32(p + 4); }

/* -- frames and the handshake -------------------------------------------------- */

long halo_frame_next(const uint8_t *buf, size_t len, uint32_t limit, int *type, const uint8_t **body,
                     size_t *blen) {
  if (len < 4) return 0;
  uint32_t n = halo__get32(buf);
  if (n == 0 || n > limit) return -1;
  if (len - 4 < n) return 0;
  *type = buf[4];
  *body = buf + 5;
  *blen = n - 1;
  return 4 + (long)n;
}

int halo_frame_name_parse(const uint8_t **p, const uint8_t *end, char out[256]) {
  if (*p >= end) return -1;
  size_t n = **p;
  (*p)++;
  if (n == 0 || (size_t)(end - *p) < n) return -1;
  memcpy(out, *p, n);
  out[n] = 0;
  *p += n;
  if (strlen(out) != n || !strchr(out, '@')) return -1;
  return 0;
}

int halo_frame_hello_parse(const uint8_t *p, const uint8_t *end, halo_frame_hello_t *h) {
  if (p >= end || *p++ != HALO_FRAME_VERSION) return -2;
  if (p >= end || *p > HALO_FRAME_HELLO_JOIN) return -1;
  h->join = *p++ == HALO_FRAME_HELLO_JOIN;
  if (halo_frame_name_parse(&p, end, h->name) || end - p != NONCE + 8 + (h->join ? NONCE : 0)) return -1;
  memcpy(h->nonce, p, NONCE);
  h->creation = halo__get64(p + NONCE);
  if (h->join) memcpy(h->session, p + NONCE + 8, NONCE);
  return 0;
}

int halo_frame_challenge_parse(const uint8_t *p, const uint8_t *end, char name[256], uint8_t nonce[NONCE],
                               uint64_t *creation) {
  if (halo_frame_name_parse(&p, end, name) || end - p != NONCE + 8) return -1;
  memcpy(nonce, p, NONCE);
  *creation = halo__get64(p + NONCE);
  return 0;
}

void halo_frame_reason(const uint8_t *p, const uint8_t *end, char *out, size_t size) {
  size_t l = (size_t)(end - p) < size - 1 ? (size_t)(end - p) : size - 1;
  for (size_t i = 0; i < l; i++) out[i] = p[i] < 0x20 || p[i] >= 0x7f ? '?' : (char)p[i];
  out[l] = 0;
}

int halo_frame_mac(const char *cookie, char tag, const uint8_t *n1, const uint8_t *n2, const char *a,
                   const char *b, uint64_t creation, uint32_t max, uint8_t out[HALO_SHA256_LEN]) {
  uint8_t msg[1 + 2 * NONCE + 2 * 256 + 1 + 12];
  size_t k = 0, al = strlen(a), bl = strlen(b);
  msg[k++] = (uint8_t)tag;
  memcpy(msg + k, n1, NONCE), k += NONCE;
  memcpy(msg + k, n2, NONCE), k += NONCE;
  memcpy(msg + k, a, al), k += al;
  msg[k++] = 0;
  memcpy(msg + k, b, bl), k += bl;
  halo__put64(msg + k, creation), k += 8;
  halo__put32(msg + k, max), k += 4;
  return halo_hmac_sha256(cookie, strlen(cookie), msg, k, out);
}

int halo_frame_ready_parse(const uint8_t *p, const uint8_t *end, int pool_max) {
  if (end - p < 1 || end - p != 1 + p[0] * NONCE || p[0] >= pool_max) return -1;
  return p[0];
}

/* -- messages ---------------------------------------------------------------- */

int halo_frame_msg_parse(int type, const uint8_t *p, const uint8_t *end, halo_frame_msg_t *m) {
  if (end - p < HALO_FRAME_MSG_HEAD) return -1;
  m->kind = (int)(p[0] << 8 | p[1]);
  m->queue = p[2];
  m->from = halo__get64(p + 3);
  m->to = halo__get64(p + 11);
  m->ref = halo__get64(p + 19);
  m->creation = halo__get64(p + 27);
  m->name[0] = 0;
  const uint8_t *payload = p + HALO_FRAME_MSG_HEAD;
  if (type == F_MSG_NAME) { /* the head, a name, then the payload */
    size_t nl = payload < end ? *payload : 0;
    if (!nl || (size_t)(end - payload) < 1 + nl) return -1;
    memcpy(m->name, payload + 1, nl);
    m->name[nl] = 0;
    if (strlen(m->name) != nl) return -1; /* a NUL inside: no name of ours */
    payload += 1 + nl;
  }
  m->payload = payload;
  m->len = (size_t)(end - payload);
  return 0;
}

int halo_frame_kind_allowed(int kind, int queue) {
  int base = kind & 0xff, flags = kind >> HALO_KIND_FLAGS_SHIFT;
  if (queue < 0 || queue >= HALO_NQUEUES || queue == HALO_Q_LOG) return 0;
  if (flags & ~(HALO_MF_REASON | HALO_MF_NOTICE)) return 0;
  switch (base) {
  case HALO_MSG_REGULAR:
  case HALO_MSG_REQUEST:
  case HALO_MSG_EVENT: return flags == 0;
  case HALO_MSG_EXIT:
  case HALO_MSG_DOWN: return 1;
  default: return 0;
  }
}

int halo_frame_inflate(const uint8_t *p, size_t n, size_t limit, uint8_t **out, size_t *len) {
  if (n < 4) return -1;
  size_t want = halo__get32(p);
  if (want == 0) return -1;
  if (want > limit) return -2;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit(&z) != Z_OK) return HALO_ENOMEM;
  z.next_in = (Bytef *)(p + 4);
  z.avail_in = (uInt)(n - 4);
  size_t cap = want < 65536 ? want : 65536;
  uint8_t *buf = NULL;
  int rc = 0;
  for (;;) {
    uint8_t *nb = realloc(buf, cap + 1); /* one byte more: output past the declared length shows */
    if (!nb) {
      rc = HALO_ENOMEM;
      break;
    }
    buf = nb;
    z.next_out = buf + z.total_out;
    z.avail_out = (uInt)(cap + 1 - z.total_out);
    int zr = inflate(&z, Z_NO_FLUSH);
    if (z.total_out > want) rc = -2; /* more than it declared */
    else if (zr == Z_STREAM_END) rc = z.total_out == want && !z.avail_in ? 1 : -1;
    else if (zr != Z_OK && zr != Z_BUF_ERROR) rc = -1;
    else if (z.avail_out) rc = -1; /* input ran out before the end */
    if (rc) break;
    cap = cap * 2 < want ? cap * 2 : want;
  }
  inflateEnd(&z);
  if (rc != 1) {
    free(buf);
    return rc;
  }
  *out = buf;
  *len = want;
  return 0;
}

/* -- fragments --------------------------------------------------------------- */

int halo_frame_frag_parse(const uint8_t *p, const uint8_t *end, uint32_t limit, halo_frame_frag_t *f) {
  if (end - p <= HALO_FRAME_FRAG_HEAD) return -1;
  f->id = halo__get64(p);
  f->total = halo__get32(p + 8);
  f->off = halo__get32(p + 12);
  f->n = (uint32_t)(end - p - HALO_FRAME_FRAG_HEAD);
  f->bytes = p + HALO_FRAME_FRAG_HEAD;
  if (f->total < 2 || f->total > limit || f->off > f->total || f->n > f->total - f->off) return -1;
  return 0;
}

int halo_frame_asm_add(halo_frame_asm_t *a, const halo_frame_frag_t *f, size_t *held, size_t budget) {
  if (!a->total) {
    if (f->off) return -1;
    a->total = f->total;
  } else if (f->off != a->got || f->total != a->total) {
    return -1;
  }
  size_t need = (size_t)f->off + f->n;
  if (need > a->cap) { /* grows with what came, not with what is announced */
    size_t cap = a->cap ? a->cap * 2 : 65536;
    if (cap < need) cap = need;
    if (cap > a->total) cap = a->total;
    if (*held + (cap - a->cap) > budget) return -2;
    uint8_t *nb = realloc(a->buf, cap);
    if (!nb) return HALO_ENOMEM;
    *held += cap - a->cap;
    a->buf = nb;
    a->cap = cap;
  }
  memcpy(a->buf + f->off, f->bytes, f->n);
  a->got += f->n;
  return a->got == a->total;
}

void halo_frame_asm_free(halo_frame_asm_t *a, size_t *held) {
  *held -= a->cap;
  free(a->buf);
  a->buf = NULL;
  a->cap = 0;
}
