/* libFuzzer target for the transport's parsers (make fuzz): the input is a
 * byte stream as a peer could send it. It is cut into frames as a link does
 * (core/frame.c), and each frame goes through the parser of its type: the
 * handshake's (HELLO, CHALLENGE, READY, reasons, the proof over what was
 * parsed), messages (heads, kinds, bounded decompression) and fragments
 * (reassembly under a byte budget). Invariants that hold for any input are
 * checked; a crash, a leak or a sanitizer report is a finding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

#define LIMIT (1u << 20)
#define BUDGET (256u << 10)
#define SLOTS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what) {
  fprintf(stderr, "%s\n", what);
  abort();
}

static void check_name(const char *name) {
  if (!*name || !strchr(name, '@') || strlen(name) > 255) fail("a parsed name is not name@host");
}

static void on_msg(int type, const uint8_t *p, const uint8_t *end) {
  halo_frame_msg_t m;
  if (halo_frame_msg_parse(type & 0x7f, p, end, &m)) return;
  if (m.payload < p || m.payload + m.len != end) fail("a message payload outside its frame");
  if ((type & 0x7f) == F_MSG_NAME && !*m.name) fail("a named message without a name");
  (void)halo_frame_kind_allowed(m.kind, m.queue);
  if (!(type & 0x80)) return;
  uint8_t *out = NULL;
  size_t len = 0;
  int rc = halo_frame_inflate(m.payload, m.len, 65536, &out, &len);
  if (rc == 0 && (len > 65536 || !out)) fail("inflated past the limit");
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  halo_frame_asm_t slots[SLOTS];
  uint64_t ids[SLOTS];
  size_t held = 0;
  memset(slots, 0, sizeof slots);
  memset(ids, 0, sizeof ids);
  size_t off = 0;
  for (;;) {
    int type;
    const uint8_t *body;
    size_t blen;
    long k = halo_frame_next(data + off, size - off, LIMIT, &type, &body, &blen);
    if (k <= 0) break;
    if ((size_t)k > size - off || body + blen != data + off + k) fail("a frame outside the input");
    off += (size_t)k;
    const uint8_t *end = body + blen;
    switch (type & 0x7f) {
    case F_HELLO: {
      halo_frame_hello_t h;
      if (halo_frame_hello_parse(body, end, &h)) break;
      check_name(h.name);
      uint8_t mac[HALO_SHA256_LEN];
      halo_frame_mac("cookie", 'D', h.nonce, h.session, h.name, "a@b", h.creation, 0, mac);
      break;
    }
    case F_CHALLENGE: {
      char name[256];
      uint8_t nonce[HALO_FRAME_NONCE];
      uint64_t creation;
      if (!halo_frame_challenge_parse(body, end, name, nonce, &creation)) check_name(name);
      break;
    }
    case F_REJECT:
    case F_YIELD: {
      char why[128];
      halo_frame_reason(body, end, why, sizeof why);
      for (const char *c = why; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) fail("a reason byte that is not printable ASCII");
      break;
    }
    case F_READY: {
      int n = halo_frame_ready_parse(body, end, 8);
      if (n >= 8 || (n >= 0 && (size_t)(1 + n * HALO_FRAME_NONCE) != blen)) fail("a READY of the wrong size");
      break;
    }
    case F_MSG:
    case F_REPLY:
    case F_MSG_NAME: on_msg(type, body, end); break;
    case F_FRAG: {
      halo_frame_frag_t f;
      if (halo_frame_frag_parse(body, end, LIMIT, &f)) break;
      halo_frame_asm_t *a = &slots[f.id % SLOTS];
      if (a->total && ids[f.id % SLOTS] != f.id) break; /* that slot is taken: as if late */
      ids[f.id % SLOTS] = f.id;
      int rc = halo_frame_asm_add(a, &f, &held, BUDGET);
      if (held > BUDGET) fail("reassembly past its budget");
      if (a->got > a->total || a->cap > a->total) fail("an assembly past its total");
      int inner = rc == 1 ? a->buf[0] & 0x7f : 0;
      if (inner == F_MSG || inner == F_REPLY || inner == F_MSG_NAME) on_msg(a->buf[0], a->buf + 1, a->buf + a->total);
      if (rc != 0) {
        halo_frame_asm_free(a, &held);
        memset(a, 0, sizeof *a);
      }
      break;
    }
    default: break;
    }
  }
  for (int i = 0; i < SLOTS; i++) halo_frame_asm_free(&slots[i], &held);
  if (held) fail("reassembly bytes left over");
  return 0;
}
