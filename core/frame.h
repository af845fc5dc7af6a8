/*
 * The inter-node wire format (see net.h for the protocol): frame splitting,
 * the handshake's and the session's frame bodies, fragment reassembly and
 * bounded decompression. Everything here works on byte buffers, without a
 * socket, so the parsers can be fuzzed (fuzz/fuzz_frame.c). Internal to the
 * transport: core/net.c and the fuzz target include it.
 */
#ifndef HALO_FRAME_H
#define HALO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

/* Frame types (the byte after the length); a message type | 0x80 is compressed. */
enum { F_HELLO = 1, F_CHALLENGE, F_PROOF, F_WELCOME, F_REJECT, F_PING, F_YIELD, F_READY,
       F_MSG = 16, F_REPLY, F_REL, F_MSG_NAME, F_FRAG };

#define HALO_FRAME_NONCE 16
#define HALO_FRAME_VERSION 1
#define HALO_FRAME_HELLO_JOIN 1
/* MSG body: u16 kind (with flags), u8 queue, u64 from, u64 to, u64 ref, u64
 * the target's creation (0: any run), payload. */
#define HALO_FRAME_MSG_HEAD 35
/* FRAG body: u64 id, u32 total, u32 offset, bytes of the whole frame (type byte first). */
#define HALO_FRAME_FRAG_HEAD 16
/* A frame's own bytes around a payload of the limit. */
#define HALO_FRAME_SLACK (1 + HALO_FRAME_MSG_HEAD + 1 + 255 + 64)
/* PROOF: MAC, u32 max, u64 age; WELCOME: MAC, u32 max, u8 pool size, u64 age. */
#define HALO_FRAME_PROOF_LEN (HALO_SHA256_LEN + 12)
#define HALO_FRAME_WELCOME_LEN (HALO_SHA256_LEN + 13)

void halo__put32(uint8_t *p, uint32_t v);
uint32_t halo__get32(const uint8_t *p);
void halo__put64(uint8_t *p, uint64_t v);
uint64_t halo__get64(const uint8_t *p);

/** The next frame in buf[0..len): > 0 its whole size (length prefix
 *  included; *type, *body and *blen set), 0 when more bytes are needed, -1
 *  when its length is 0 or over limit. */
long halo_frame_next(const uint8_t *buf, size_t len, uint32_t limit, int *type, const uint8_t **body,
                     size_t *blen);

typedef struct halo_frame_hello {
  int join;                      /* HELLO flag JOIN: a pool member joining session */
  char name[256];                /* "name@host" */
  uint8_t nonce[HALO_FRAME_NONCE];
  uint64_t creation;
  uint8_t session[HALO_FRAME_NONCE];
} halo_frame_hello_t;

/** HELLO {version, flags, name_d, nonce_d, creation_d[, session]}: 0, -1
 *  malformed, -2 another protocol version. */
int halo_frame_hello_parse(const uint8_t *p, const uint8_t *end, halo_frame_hello_t *h);
/** CHALLENGE {name_a, nonce_a, creation_a}: 0 or -1. */
int halo_frame_challenge_parse(const uint8_t *p, const uint8_t *end, char name[256],
                               uint8_t nonce[HALO_FRAME_NONCE], uint64_t *creation);
/** A name field: length byte, then "name@host" (no NUL, an '@'). 0 or -1. */
int halo_frame_name_parse(const uint8_t **p, const uint8_t *end, char out[256]);
/** Text from a peer (a REJECT's or YIELD's reason, a name it answers
 *  under) as printable ASCII in out (at most size - 1 bytes; control
 *  bytes, DEL and bytes past it become '?'). */
void halo_frame_reason(const uint8_t *p, const uint8_t *end, char *out, size_t size);

/** The handshake's proof: HMAC(cookie, tag | n1 | n2 | a | 0 | b | creation
 *  | max), bound to both nonces, both names, the prover's creation id and
 *  the message size limit it advertises. 0, or UV_EIO (halo_hmac_sha256). */
int halo_frame_mac(const char *cookie, char tag, const uint8_t *n1, const uint8_t *n2, const char *a,
                   const char *b, uint64_t creation, uint32_t max, uint8_t out[HALO_SHA256_LEN]);

/** READY {count, count join nonces}: the count, or -1 when malformed. */
int halo_frame_ready_parse(const uint8_t *p, const uint8_t *end, int pool_max);

typedef struct halo_frame_msg {
  int kind, queue;
  uint64_t from, to, ref;
  uint64_t creation;        /* the run of the target's node it is meant for (0: any) */
  char name[256];           /* MSG_NAME: the target name ("" otherwise) */
  const uint8_t *payload;
  size_t len;
} halo_frame_msg_t;

/** A MSG, REPLY or MSG_NAME body (type without the compression bit): 0, or
 *  -1 when malformed. */
int halo_frame_msg_parse(int type, const uint8_t *p, const uint8_t *end, halo_frame_msg_t *m);
/** 1 when a peer may deliver a message of this kind (with flags) to this
 *  queue: the kinds processes send each other (regular, request, event,
 *  exit and down signals), never the node's own (timeout, inspect, log). */
int halo_frame_kind_allowed(int kind, int queue);

/** A compressed payload (u32 original length, then a zlib stream) inflated
 *  into a malloc'ed buffer that grows with the output, never past limit nor
 *  past the declared length: 0 (*out, *len set), -1 malformed, -2 over the
 *  limit (a decompression bomb), HALO_ENOMEM. */
int halo_frame_inflate(const uint8_t *p, size_t n, size_t limit, uint8_t **out, size_t *len);

typedef struct halo_frame_frag {
  uint64_t id;
  uint32_t total, off;
  const uint8_t *bytes;
  uint32_t n;
} halo_frame_frag_t;

/** A FRAG body; total at most limit: 0 or -1. */
int halo_frame_frag_parse(const uint8_t *p, const uint8_t *end, uint32_t limit, halo_frame_frag_t *f);

/** A message being reassembled: its buffer grows as pieces arrive. */
typedef struct halo_frame_asm {
  uint8_t *buf;
  size_t cap;
  uint32_t total, got;
  uint64_t last;            /* halo_clock_ns() of the last piece (the caller's) */
} halo_frame_asm_t;

/** Adds piece f to a (a->total 0: the first piece, which must be at offset
 *  0). *held counts the bytes all of a peer's assemblies hold; it may not
 *  pass budget. 1 when the message is complete, 0 when more must come, -1
 *  out of order, -2 over the budget, HALO_ENOMEM. */
int halo_frame_asm_add(halo_frame_asm_t *a, const halo_frame_frag_t *f, size_t *held, size_t budget);
/** Frees a's buffer; *held gives its bytes back. */
void halo_frame_asm_free(halo_frame_asm_t *a, size_t *held);

#endif
