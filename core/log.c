#include "log.h"
#include "errors.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static const char *const names[] = {"trace", "debug", "default", "info",
                                    "warning", "error", "panic", "disabled"};

void halo_log_init(halo_log_t *log, uint32_t node_crc) {
  memset(log, 0, sizeof *log);
  log->level = HALO_LOG_INFO;
  log->node_crc = node_crc;
}

const char *halo_log_level_name(int level) {
  if (level < HALO_LOG_TRACE || level > HALO_LOG_DISABLED) return "unknown log level";
  return names[level - HALO_LOG_TRACE];
}

int halo_log_level_parse(const char *name, int *level) {
  for (int l = HALO_LOG_TRACE; l <= HALO_LOG_DISABLED; l++) {
    if (l != HALO_LOG_DEFAULT && strcmp(name, names[l - HALO_LOG_TRACE]) == 0) {
      *level = l;
      return 0;
    }
  }
  return HALO_EINCORRECT;
}

int halo_log_level_index(int level) {
  switch (level) {
  case HALO_LOG_TRACE: return 0;
  case HALO_LOG_DEBUG: return 1;
  case HALO_LOG_INFO: return 2;
  case HALO_LOG_WARNING: return 3;
  case HALO_LOG_ERROR: return 4;
  case HALO_LOG_PANIC: return 5;
  default: return -1;
  }
}

void halo_log_write_plain(FILE *out, uint32_t node_crc, const halo_log_record_t *rec) {
  char ts[40], src[HALO_PID_STRLEN];
  time_t secs = (time_t)(rec->time / 1000000000u);
  struct tm tm;
  localtime_r(&secs, &tm);
  size_t k = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + k, sizeof ts - k, ".%06u", (unsigned)(rec->time % 1000000000u / 1000u));
  if (rec->pid.id) halo_pid_format(src, sizeof src, rec->pid);
  else snprintf(src, sizeof src, "%08X", node_crc);
  fprintf(out, "%s [%s] %s%s%s%s%s%s: %.*s\n", ts, halo_log_level_name(rec->level), src,
          rec->name ? " '" : "", rec->name ? rec->name : "", rec->name ? "'" : "",
          rec->behavior ? " " : "", rec->behavior ? rec->behavior : "", (int)rec->len, rec->msg);
  fflush(out);
}

void halo_log_emit(halo_log_t *log, const halo_log_record_t *rec) {
  int i = halo_log_level_index(rec->level);
  if (i >= 0) log->counts[i]++;
  if (log->sink) log->sink(log->sink_ud, rec);
  else halo_log_write_plain(stderr, log->node_crc, rec);
}

void halo_log_node(halo_log_t *log, int level, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  if (level < log->level) return;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  halo_log_record_t rec = {0};
  rec.time = 0;
  {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    rec.time = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
  }
  rec.level = level;
  rec.msg = buf;
  rec.len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
  halo_log_emit(log, &rec);
}
