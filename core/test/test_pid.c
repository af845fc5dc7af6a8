#include "check.h"

#include "errors.h"
#include "pid.h"

#include <stdint.h>
#include <string.h>
#include <uv.h>

/* Bit-at-a-time reflected CRC32, written from the definition rather than
 * from pid.c's table. */
static uint32_t crc_ref(const char *s) {
  uint32_t c = 0xFFFFFFFFu;
  for (; *s; s++) {
    c ^= (uint8_t)*s;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xD5828281u : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

static int parse(const char *s, halo_pid_t *out) { return halo_pid_parse(s, strlen(s), out); }

static void test_crc32(void) {
  /* Go's hash/crc32 documents crc32.Checksum("Hello world", MakeTable(0xD5828281)). */
  CHECK_EQ(halo_crc32("Hello world", 11), 0x2964D064u);
  CHECK_EQ(halo_crc32("", 0), 0);
  CHECK_EQ(halo_crc32("node@localhost", 14), 0x2C323E75u);
  CHECK_EQ(halo_crc32("halo@localhost", 14), 0x35DBD1C6u);
  CHECK_EQ(halo_crc32("demo@127.0.0.1", 14), 0x3E79D2BCu);
  const char *names[] = {"a", "123456789", "node1@host", "x@y", "a-much-longer-node-name@some.host.example",
                         "\xff\x80 high bytes@h"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    CHECK_EQ(halo_crc32(names[i], strlen(names[i])), crc_ref(names[i]));
  /* Only the first n bytes count. */
  CHECK_EQ(halo_crc32("node@localhostXYZ", 14), 0x2C323E75u);
}

static void test_pid_format(void) {
  char buf[HALO_PID_STRLEN];
  halo_pid_t p = {0x2C323E75u, 1001};
  CHECK_EQ(halo_pid_format(buf, sizeof buf, p), 17);
  CHECK_STR_EQ(buf, "<2C323E75.0.1001>");

  p.node = 0xABu;
  p.id = (5ull << 32) | 7;
  halo_pid_format(buf, sizeof buf, p);
  CHECK_STR_EQ(buf, "<000000AB.5.7>");

  /* The low part as int32 is negative. */
  p.id = 0x80000000u;
  halo_pid_format(buf, sizeof buf, p);
  CHECK_STR_EQ(buf, "<000000AB.0.-2147483648>");

  /* The longest form fits HALO_PID_STRLEN. */
  p.node = 0xFFFFFFFFu;
  p.id = 0x8000000080000000ull;
  int len = halo_pid_format(buf, sizeof buf, p);
  CHECK_STR_EQ(buf, "<FFFFFFFF.-2147483648.-2147483648>");
  CHECK(len < HALO_PID_STRLEN);
}

static void roundtrip(halo_pid_t p) {
  char buf[HALO_PID_STRLEN];
  halo_pid_t q = {0, 0};
  int len = halo_pid_format(buf, sizeof buf, p);
  CHECK_EQ(halo_pid_parse(buf, (size_t)len, &q), 0);
  CHECK_EQ(q.node, p.node);
  CHECK_EQ(q.id, p.id);
  /* Without brackets. */
  q.node = 0;
  q.id = 0;
  CHECK_EQ(halo_pid_parse(buf + 1, (size_t)len - 2, &q), 0);
  CHECK_EQ(q.node, p.node);
  CHECK_EQ(q.id, p.id);
}

static void test_pid_roundtrip(void) {
  uint64_t ids[] = {0,
                    1,
                    1001,
                    0x7FFFFFFFull,
                    0x80000000ull,         /* low part negative as int32 */
                    0xFFFFFFFFull,         /* low part -1 */
                    0x100000000ull,        /* above 2^32 */
                    0x1FFFFFFFFull,
                    (3ull << 32) | 0x80000001ull,
                    0x7FFFFFFF00000000ull,
                    0x8000000000000000ull, /* high part negative */
                    UINT64_MAX};
  uint32_t nodes[] = {0, 0x2C323E75u, 0xFFFFFFFFu, 0x00ABCDEFu};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    for (size_t j = 0; j < sizeof nodes / sizeof nodes[0]; j++) roundtrip((halo_pid_t){nodes[j], ids[i]});
}

static void test_pid_parse(void) {
  halo_pid_t p;
  CHECK_EQ(parse("<2C323E75.0.1001>", &p), 0);
  CHECK_EQ(p.node, 0x2C323E75u);
  CHECK_EQ(p.id, 1001);
  CHECK_EQ(parse("2c323e75.0.1001", &p), 0); /* lower-case hex */
  CHECK_EQ(p.node, 0x2C323E75u);
  CHECK_EQ(parse("<00000001.1.-1>", &p), 0);
  CHECK_EQ(p.id, 0x1FFFFFFFFull);
  CHECK_EQ(parse("<00000001.-1.0>", &p), 0);
  CHECK_EQ(p.id, 0xFFFFFFFF00000000ull);
  /* Unsigned spellings of the 32-bit parts are the same bits. */
  CHECK_EQ(parse("<00000001.0.4294967295>", &p), 0);
  CHECK_EQ(p.id, 0xFFFFFFFFull);
  CHECK_EQ(parse("<00000001.0.-2147483648>", &p), 0);
  CHECK_EQ(p.id, 0x80000000ull);

  /* An error leaves *out alone. */
  halo_pid_t keep = {0x1234u, 99};
  const char *bad[] = {
      "",
      "<",
      "<>",
      "<2C323E7.0.1001>",      /* 7 hex digits */
      "<2C323E755.0.1001>",    /* 9 hex digits */
      "<2C323E7G.0.1001>",     /* not hex */
      "<2C323E75>",            /* no parts */
      "<2C323E75.0>",          /* one part */
      "<2C323E75.0.>",         /* empty part */
      "<2C323E75..1001>",
      "<2C323E75.0.1001",      /* unclosed */
      "<2C323E75.0.1001>x",    /* trailing garbage */
      "<2C323E75.0.1001>>",
      "2C323E75.0.1001 ",
      "<2C323E75.0.1001.5>",   /* extra part */
      "<2C323E75.0.4294967296>", /* above 32 bits */
      "<2C323E75.0.-2147483649>",
      "<2C323E75.0.+1>",
      "<2C323E75.0.->",
      " <2C323E75.0.1001>",
      "<2C323E75,0,1001>",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    p = keep;
    int rc = parse(bad[i], &p);
    if (rc != HALO_EINCORRECT) fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
    CHECK_EQ(rc, HALO_EINCORRECT);
    CHECK_EQ(p.node, keep.node);
    CHECK_EQ(p.id, keep.id);
  }
  /* n bounds the input: a valid prefix followed by more bytes is read up to n only. */
  CHECK_EQ(halo_pid_parse("<2C323E75.0.1001>junk", 17, &p), 0);
  CHECK_EQ(p.id, 1001);
  CHECK_EQ(halo_pid_parse("<2C323E75.0.1001>", 16, &p), HALO_EINCORRECT);
}

static void test_ref(void) {
  char buf[HALO_REF_STRLEN];
  uint32_t node = 0;
  uint64_t id = 0;
  int len = halo_ref_format(buf, sizeof buf, "Ref", 0x2C323E75u, 42);
  CHECK_STR_EQ(buf, "Ref#<2C323E75.42.0.0>");
  CHECK_EQ(len, (int)strlen(buf));
  CHECK_EQ(halo_ref_parse(buf, (size_t)len, "Ref", &node, &id), 0);
  CHECK_EQ(node, 0x2C323E75u);
  CHECK_EQ(id, 42);

  len = halo_ref_format(buf, sizeof buf, "Alias", 0xFFFFFFFFu, UINT64_MAX);
  CHECK_STR_EQ(buf, "Alias#<FFFFFFFF.18446744073709551615.0.0>");
  CHECK(len < HALO_REF_STRLEN);
  CHECK_EQ(halo_ref_parse(buf, (size_t)len, "Alias", &node, &id), 0);
  CHECK_EQ(node, 0xFFFFFFFFu);
  CHECK_EQ(id, UINT64_MAX);

  /* Brackets are optional; the last two parts are read but not kept. */
  CHECK_EQ(halo_ref_parse("Ref#0000abcd.7.1.2", 18, "Ref", &node, &id), 0);
  CHECK_EQ(node, 0xABCDu);
  CHECK_EQ(id, 7);

  const char *bad[] = {
      "",
      "Ref",
      "Ref#",
      "Ref#<>",
      "Alias#<2C323E75.42.0.0>",  /* wrong prefix */
      "ref#<2C323E75.42.0.0>",
      "Ref<2C323E75.42.0.0>",     /* no '#' */
      "Ref#<2C323E7.42.0.0>",     /* 7 hex digits */
      "Ref#<2C323E75.42.0>",      /* two parts */
      "Ref#<2C323E75.42.0.0.0>",  /* four parts */
      "Ref#<2C323E75.42..0>",
      "Ref#<2C323E75.-1.0.0>",
      "Ref#<2C323E75.18446744073709551616.0.0>", /* above 64 bits */
      "Ref#<2C323E75.42.0.0>x",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    node = 0x1234u;
    id = 99;
    int rc = halo_ref_parse(bad[i], strlen(bad[i]), "Ref", &node, &id);
    if (rc != HALO_EINCORRECT) fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
    CHECK_EQ(rc, HALO_EINCORRECT);
    CHECK_EQ(node, 0x1234u);
    CHECK_EQ(id, 99);
  }
}

static void test_errors(void) {
  CHECK_STR_EQ(halo_err_name(HALO_EINCORRECT), "EINCORRECT");
  CHECK_STR_EQ(halo_err_name(HALO_ETIMEDOUT), "ETIMEDOUT");
  CHECK_STR_EQ(halo_strerror(HALO_ENOPROC), "unknown process");
  CHECK_STR_EQ(halo_err_name(UV_ENOMEM), "ENOMEM");
  CHECK(HALO__ERR_LAST < -4096);
}

int main(void) {
  RUN_TEST(test_crc32);
  RUN_TEST(test_pid_format);
  RUN_TEST(test_pid_roundtrip);
  RUN_TEST(test_pid_parse);
  RUN_TEST(test_ref);
  RUN_TEST(test_errors);
  return check_exit_code();
}
