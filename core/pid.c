#include "pid.h"
#include "errors.h"

#include <stdio.h>
#include <string.h>

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xD5828281u : c >> 1;
    crc_table[i] = c;
  }
  crc_ready = 1;
}

uint32_t halo_crc32(const char *s, size_t n) {
  if (!crc_ready) crc_init();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = crc_table[(c ^ (uint8_t)s[i]) & 0xFF] ^ (c >> 8);
  return ~c;
}

int halo_pid_format(char *buf, size_t size, halo_pid_t pid) {
  return snprintf(buf, size, "<%08X.%d.%d>", pid.node, (int32_t)(uint32_t)(pid.id >> 32),
                  (int32_t)(uint32_t)pid.id);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Parses a signed 32-bit decimal at s[*i..n) up to a stop char; stores its
 * bit pattern. */
static int parse_i32(const char *s, size_t n, size_t *i, uint32_t *out) {
  int neg = 0;
  int64_t v = 0;
  size_t start;
  if (*i < n && s[*i] == '-') { neg = 1; (*i)++; }
  start = *i;
  while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
    v = v * 10 + (s[*i] - '0');
    if (v > 4294967295LL) return -1;
    (*i)++;
  }
  if (*i == start) return -1;
  if (neg) v = -v;
  if (v < -2147483648LL || v > 4294967295LL) return -1;
  *out = (uint32_t)(int64_t)v;
  return 0;
}

int halo_pid_parse(const char *s, size_t n, halo_pid_t *out) {
  size_t i = 0;
  uint32_t crc = 0, hi, lo;
  int bracket = 0;
  if (n && s[0] == '<') { bracket = 1; i = 1; }
  for (int k = 0; k < 8; k++, i++) {
    int h = i < n ? hexval(s[i]) : -1;
    if (h < 0) return HALO_EINCORRECT;
    crc = (crc << 4) | (uint32_t)h;
  }
  if (i >= n || s[i++] != '.') return HALO_EINCORRECT;
  if (parse_i32(s, n, &i, &hi)) return HALO_EINCORRECT;
  if (i >= n || s[i++] != '.') return HALO_EINCORRECT;
  if (parse_i32(s, n, &i, &lo)) return HALO_EINCORRECT;
  if (bracket) {
    if (i >= n || s[i++] != '>') return HALO_EINCORRECT;
  } else if (i < n && s[i] == '>') {
    i++;
  }
  if (i != n) return HALO_EINCORRECT;
  out->node = crc;
  out->id = ((uint64_t)hi << 32) | lo;
  return 0;
}

int halo_ref_format(char *buf, size_t size, const char *prefix, uint32_t node, uint64_t id) {
  return snprintf(buf, size, "%s#<%08X.%llu.0.0>", prefix, node, (unsigned long long)id);
}

int halo_ref_parse(const char *s, size_t n, const char *prefix, uint32_t *node, uint64_t *id) {
  size_t pl = strlen(prefix), i;
  uint32_t crc = 0;
  uint64_t v = 0;
  int parts = 0;
  if (n < pl + 2 || memcmp(s, prefix, pl) != 0 || s[pl] != '#') return HALO_EINCORRECT;
  i = pl + 1;
  if (s[i] == '<') i++;
  for (int k = 0; k < 8; k++, i++) {
    int h = i < n ? hexval(s[i]) : -1;
    if (h < 0) return HALO_EINCORRECT;
    crc = (crc << 4) | (uint32_t)h;
  }
  while (i < n && s[i] == '.') {
    size_t start = ++i;
    uint64_t x = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      uint64_t d = (uint64_t)(s[i++] - '0');
      if (x > (UINT64_MAX - d) / 10) return HALO_EINCORRECT;
      x = x * 10 + d;
    }
    if (i == start) return HALO_EINCORRECT;
    if (parts++ == 0) v = x;
  }
  if (parts != 3) return HALO_EINCORRECT;
  if (i < n && s[i] == '>') i++;
  if (i != n) return HALO_EINCORRECT;
  *node = crc;
  *id = v;
  return 0;
}
