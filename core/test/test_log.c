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

int main(void) {
  RUN_TEST(test_plain_escapes);
  RUN_TEST(test_plain_keeps_text);
  RUN_TEST(test_json_valid);
  return check_exit_code();
}
