/* Log output formats: text from elsewhere (a peer's reject reason, a
 * process's message) cannot forge lines or reach the terminal as escape
 * sequences, and the JSON format stays valid. */
#include "check.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes one record with this message and name in format f; returns the
 * output (static buffer). */
static const char *write_one(int f, const char *msg, const char *name) {
  static char out[1024];
  halo_log_t log;
  halo_log_init(&log, 0x1234abcd);
  FILE *tmp = tmpfile();
  halo_log_record_t rec = {.time = 1, .level = HALO_LOG_WARNING, .msg = msg, .len = strlen(msg), .name = name};
  rec.pid.node = 0x1234abcd;
  rec.pid.id = name ? 7 : 0;
  halo_log_write(tmp, f, &log, &rec);
  rewind(tmp);
  size_t n = fread(out, 1, sizeof out - 1, tmp);
  out[n] = 0;
  fclose(tmp);
  halo_log_destroy(&log);
  return out;
}

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void test_plain_escapes(void) {
  const char *forged = "rejected\n2026-01-01T00:00:00.000000 [error] 00000000: forged\r\x1b[2J\x07 \\ \x7f end";
  for (int f = HALO_LOGGER_PLAIN; f <= HALO_LOGGER_COLOR; f++) {
    const char *out = write_one(f, forged, NULL);
    CHECK_EQ(lines(out), 1);
    CHECK(strstr(out, "rejected\\n2026-01-01T00:00:00.000000 [error] 00000000: forged\\r\\x1b[2J\\x07 \\\\ \\x7f end\n"));
    if (f == HALO_LOGGER_PLAIN) CHECK(!strchr(out, '\x1b'));
    CHECK(!strchr(out, '\r') && !strchr(out, '\x07') && !strchr(out, '\x7f'));
  }
  const char *out = write_one(HALO_LOGGER_PLAIN, "m", "evil\n\x1b]0;title\x07");
  CHECK_EQ(lines(out), 1);
  CHECK(!strchr(out, '\x1b') && !strchr(out, '\x07'));
  CHECK(strstr(out, "'evil\\n\\x1b]0;title\\x07'"));
}

static void test_plain_keeps_text(void) {
  const char *out = write_one(HALO_LOGGER_PLAIN, "héllo \t tab", NULL);
  CHECK(strstr(out, ": héllo \\t tab\n"));
}

static void test_json_valid(void) {
  const char *out = write_one(HALO_LOGGER_JSON, "a\nb\x1b[31m\"q\"\\ \x7f", "n\x01");
  CHECK_EQ(lines(out), 1);
  CHECK(strstr(out, "\"message\":\"a\\nb\\u001b[31m\\\"q\\\"\\\\ \\u007f\"}\n"));
  CHECK(strstr(out, "\"name\":\"n\\u0001\""));
}

/* 1 when s is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_valid(const unsigned char *s) {
  while (*s) {
    int n = *s < 0x80 ? 1 : (*s & 0xe0) == 0xc0 ? 2 : (*s & 0xf0) == 0xe0 ? 3 : (*s & 0xf8) == 0xf0 ? 4 : 0;
    if (!n || (n == 2 && *s < 0xc2)) return 0;
    unsigned cp = n == 1 ? *s : *s & (0x7f >> n);
    for (int i = 1; i < n; i++) {
      if ((s[i] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    s += n;
  }
  return 1;
}

/* Bytes that are not UTF-8 (a stranger's name, a peer's reason) keep the
 * JSON log valid; C1 controls (U+0080-U+009F: CSI is U+009B) are escaped
 * like the C0 ones; well-formed text is kept. */
static void test_json_not_utf8(void) {
  const char *msg = "a\xff\xfe b\xc0\xaf c\xed\xa0\x80 d\xf4\x90\x80\x80 e\xc3 f\xc2\x9b" "2J g\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  const char *out = write_one(HALO_LOGGER_JSON, msg, "n\xff@x");
  CHECK(utf8_valid((const unsigned char *)out));
  CHECK(strstr(out, "\"message\":\"a\\ufffd\\ufffd b\\ufffd\\ufffd c\\ufffd\\ufffd\\ufffd d\\ufffd\\ufffd\\ufffd\\ufffd "
                    "e\\ufffd f\\u009b2J g\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}\n"));
  CHECK(strstr(out, "\"name\":\"n\\ufffd@x\""));
}

/* In a text log, bytes that are not UTF-8 show as \xNN and C1 controls
 * (which terminals take as ESC sequences: U+009B is CSI) are escaped;
 * well-formed text is kept. */
static void test_plain_c1_and_not_utf8(void) {
  for (int f = HALO_LOGGER_PLAIN; f <= HALO_LOGGER_COLOR; f++) {
    const char *out = write_one(f, "a\xc2\x9b" "2J b\xc2\x85 c\xff\x9b d\xc3\xa9\xe2\x82\xac", "x\xc2\x9b" "31m@y");
    CHECK(strstr(out, "a\\xc2\\x9b2J b\\xc2\\x85 c\\xff\\x9b d\xc3\xa9\xe2\x82\xac"));
    CHECK(strstr(out, "x\\xc2\\x9b31m@y"));
    CHECK(utf8_valid((const unsigned char *)out));
  }
}

int main(void) {
  RUN_TEST(test_plain_escapes);
  RUN_TEST(test_plain_keeps_text);
  RUN_TEST(test_json_valid);
  RUN_TEST(test_json_not_utf8);
  RUN_TEST(test_plain_c1_and_not_utf8);
  return check_exit_code();
}
