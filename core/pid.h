/*
 * Process identifiers. A PID names its node by the CRC32 of the node name and
 * the process by a per-node 64-bit counter; its string form is
 * "<CCCCCCCC.H.L>" (8 upper-case hex digits, then the high and low 32 bits of
 * the id as signed decimals), which is also how Lua code sees PIDs.
 * Refs and aliases use "Ref#<CCCCCCCC.N.0.0>" and "Alias#<CCCCCCCC.N.0.0>".
 */
#ifndef HALO_PID_H
#define HALO_PID_H

#include <stddef.h>
#include <stdint.h>

typedef struct halo_pid {
  uint32_t node; /* CRC32 of the node name */
  uint64_t id;
} halo_pid_t;

/** Longest string form of a PID, with the terminating NUL. */
#define HALO_PID_STRLEN 36
/** Longest string form of a ref or alias, with the terminating NUL. */
#define HALO_REF_STRLEN 64

/** CRC32 (reflected, polynomial 0xD5828281 as the reference uses) of s[0..n). */
uint32_t halo_crc32(const char *s, size_t n);

/** Writes "<CCCCCCCC.H.L>" into buf; returns its length. */
int halo_pid_format(char *buf, size_t size, halo_pid_t pid);

/** Parses "<CCCCCCCC.H.L>" or "CCCCCCCC.H.L"; returns 0 or HALO_EINCORRECT. */
int halo_pid_parse(const char *s, size_t n, halo_pid_t *out);

/** Writes "<prefix>#<CCCCCCCC.N.0.0>" ("Ref", "Alias") into buf; returns its length. */
int halo_ref_format(char *buf, size_t size, const char *prefix, uint32_t node, uint64_t id);

/** Parses "<prefix>#<CCCCCCCC.N.A.B>" (brackets optional); returns 0 or HALO_EINCORRECT. */
int halo_ref_parse(const char *s, size_t n, const char *prefix, uint32_t *node, uint64_t *id);

#endif
