#include "log.h"
#include "errors.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const names[] = {"trace", "debug", "default", "info",
                                    "warning", "error", "panic", "disabled"};

void halo_log_init(halo_log_t *log, uint32_t node_crc) {
  memset(log, 0, sizeof *log);
  log->level = HALO_LOG_INFO;
  log->node_crc = node_crc;
  halo_log_add(log, "default", HALO_LOGGER_PLAIN, HALO_LOG_ALL_LEVELS, stderr, 0);
}

static void free_logger(halo_logger_t *lg) {
  if (lg->owns_out && lg->out) fclose(lg->out);
  free(lg->name);
}

void halo_log_destroy(halo_log_t *log) {
  for (uint32_t i = 0; i < log->nloggers; i++) free_logger(&log->loggers[i]);
  free(log->loggers);
  log->loggers = NULL;
  log->nloggers = log->cap = 0;
}

static int find(const halo_log_t *log, const char *name) {
  for (uint32_t i = 0; i < log->nloggers; i++)
    if (strcmp(log->loggers[i].name, name) == 0) return (int)i;
  return -1;
}

static halo_logger_t *push(halo_log_t *log, const char *name) {
  if (log->nloggers == log->cap) {
    uint32_t nc = log->cap ? log->cap * 2 : 4;
    halo_logger_t *nl = realloc(log->loggers, nc * sizeof *nl);
    if (!nl) return NULL;
    log->loggers = nl;
    log->cap = nc;
  }
  halo_logger_t *lg = &log->loggers[log->nloggers];
  memset(lg, 0, sizeof *lg);
  if (!(lg->name = strdup(name))) return NULL;
  log->nloggers++;
  return lg;
}

int halo_log_add(halo_log_t *log, const char *name, int format, uint8_t levels, FILE *out, int owns_out) {
  if (!name || !*name || !out || format < HALO_LOGGER_PLAIN || format > HALO_LOGGER_JSON) return HALO_EINCORRECT;
  if (find(log, name) >= 0) return HALO_ETAKEN;
  halo_logger_t *lg = push(log, name);
  if (!lg) return HALO_ENOMEM;
  lg->format = format;
  lg->levels = levels & HALO_LOG_ALL_LEVELS;
  lg->out = out;
  lg->owns_out = owns_out;
  return 0;
}

int halo_log_add_process(halo_log_t *log, const char *name, uint64_t pid, uint8_t levels, halo_pid_t source) {
  if (!name || !*name) return HALO_EINCORRECT;
  if (find(log, name) >= 0) return HALO_ETAKEN;
  if (halo_log_find_process(log, pid)) return HALO_ENOTALLOWED;
  halo_logger_t *lg = push(log, name);
  if (!lg) return HALO_ENOMEM;
  lg->format = HALO_LOGGER_PROCESS;
  lg->levels = levels & HALO_LOG_ALL_LEVELS;
  lg->pid = pid;
  lg->source = source;
  return 0;
}

static void remove_at(halo_log_t *log, uint32_t i) {
  free_logger(&log->loggers[i]);
  memmove(&log->loggers[i], &log->loggers[i + 1], (log->nloggers - i - 1) * sizeof *log->loggers);
  log->nloggers--;
}

int halo_log_remove(halo_log_t *log, const char *name) {
  int i = find(log, name);
  if (i < 0) return HALO_EUNKNOWN;
  remove_at(log, (uint32_t)i);
  return 0;
}

void halo_log_remove_process(halo_log_t *log, uint64_t pid) {
  for (uint32_t i = 0; i < log->nloggers; i++) {
    if (log->loggers[i].format == HALO_LOGGER_PROCESS && log->loggers[i].pid == pid) {
      remove_at(log, i);
      return;
    }
  }
}

const halo_logger_t *halo_log_find_process(const halo_log_t *log, uint64_t pid) {
  for (uint32_t i = 0; i < log->nloggers; i++)
    if (log->loggers[i].format == HALO_LOGGER_PROCESS && log->loggers[i].pid == pid) return &log->loggers[i];
  return NULL;
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

static void timestamp(char *ts, size_t size, uint64_t ns) {
  time_t secs = (time_t)(ns / 1000000000u);
  struct tm tm;
  localtime_r(&secs, &tm);
  size_t k = strftime(ts, size, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + k, size - k, ".%06u", (unsigned)(ns % 1000000000u / 1000u));
}

/* The length (1-4) of the well-formed UTF-8 sequence at s[0..n), its code
 * point in *cp; 0 when s does not start one (a stray or truncated byte, an
 * overlong form, a surrogate, past U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned *cp) {
  size_t k = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
  if (!k || k > n) return 0;
  unsigned c = k == 1 ? s[0] : s[0] & (0x7fu >> k);
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    c = c << 6 | (s[i] & 0x3fu);
  }
  if ((k == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) || (k == 4 && (c < 0x10000 || c > 0x10ffff))) return 0;
  *cp = c;
  return k;
}

/* A control character: C0, DEL or C1 (terminals take U+009B as CSI). */
static int is_control(unsigned cp) { return cp < 0x20 || (cp >= 0x7f && cp < 0xa0); }

/* JSON string body of s[0..len) (no quotes), escaped: control characters
 * as \uXXXX, bytes that are not UTF-8 as U+FFFD, so the line stays valid
 * JSON and harmless on a terminal. */
static void json_str(FILE *out, const char *s, size_t len) {
  for (size_t i = 0, k; i < len; i += k) {
    unsigned cp;
    if (!(k = utf8_seq((const unsigned char *)s + i, len - i, &cp))) {
      fputs("\\ufffd", out);
      k = 1;
      continue;
    }
    switch (cp) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\r': fputs("\\r", out); break;
    case '\t': fputs("\\t", out); break;
    default:
      if (is_control(cp)) fprintf(out, "\\u%04x", cp);
      else fwrite(s + i, 1, k, out);
    }
  }
}

/* s[0..len) for a text log: control characters (newlines, ESC, DEL, C1),
 * bytes that are not UTF-8 and the backslash escaped C-style, so text from
 * elsewhere (a peer's reason, a process's message) can neither start a line
 * nor drive the terminal. */
static void plain_str(FILE *out, const char *s, size_t len) {
  for (size_t i = 0, k; i < len; i += k) {
    unsigned cp;
    if (!(k = utf8_seq((const unsigned char *)s + i, len - i, &cp))) cp = 0, k = 1; /* not UTF-8: \xNN */
    switch (cp) {
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\r': fputs("\\r", out); break;
    case '\t': fputs("\\t", out); break;
    default:
      if (is_control(cp))
        for (size_t j = i; j < i + k; j++) fprintf(out, "\\x%02x", (unsigned char)s[j]);
      else fwrite(s + i, 1, k, out);
    }
  }
}

static void plain_cstr(FILE *out, const char *s) { plain_str(out, s, strlen(s)); }

/* ANSI colors of the colored console format. */
static const char *level_color(int level) {
  switch (level) {
  case HALO_LOG_TRACE: return "\033[2m";
  case HALO_LOG_DEBUG: return "\033[35m";
  case HALO_LOG_WARNING: return "\033[33m";
  case HALO_LOG_ERROR: return "\033[1;31m";
  case HALO_LOG_PANIC: return "\033[1;37;41m";
  default: return "";
  }
}

void halo_log_write(FILE *out, int format, const halo_log_t *log, const halo_log_record_t *rec) {
  char ts[40], src[HALO_PID_STRLEN];
  if (rec->pid.id) halo_pid_format(src, sizeof src, rec->pid);
  else snprintf(src, sizeof src, "%08X", log->node_crc);
  if (format == HALO_LOGGER_JSON) {
    fprintf(out, "{\"time\":%llu,\"level\":\"%s\",\"source\":{\"type\":\"%s\"",
            (unsigned long long)rec->time, halo_log_level_name(rec->level), rec->pid.id ? "process" : "node");
    if (log->node_name) {
      fputs(",\"node\":\"", out);
      json_str(out, log->node_name, strlen(log->node_name));
      fputc('"', out);
    }
    if (rec->pid.id) fprintf(out, ",\"pid\":\"%s\"", src);
    if (rec->name) {
      fputs(",\"name\":\"", out);
      json_str(out, rec->name, strlen(rec->name));
      fputc('"', out);
    }
    if (rec->behavior) {
      fputs(",\"behavior\":\"", out);
      json_str(out, rec->behavior, strlen(rec->behavior));
      fputc('"', out);
    }
    fputs("},\"message\":\"", out);
    json_str(out, rec->msg, rec->len);
    fputs("\"}\n", out);
    fflush(out);
    return;
  }
  timestamp(ts, sizeof ts, rec->time);
  if (format == HALO_LOGGER_COLOR) {
    /* time faint; level tag colored; node CRC green, PID blue, name green */
    const char *lc = level_color(rec->level), *lend = *lc ? "\033[0m" : "";
    int faint = rec->level == HALO_LOG_TRACE;
    fprintf(out, "\033[2m%s\033[0m %s[%s]%s %s%s\033[0m", ts, lc, halo_log_level_name(rec->level), lend,
            rec->pid.id ? "\033[34m" : "\033[32m", src);
    if (rec->name) {
      fputs(" \033[32m'", out);
      plain_cstr(out, rec->name);
      fputs("'\033[0m", out);
    }
    if (rec->behavior) fputc(' ', out), plain_cstr(out, rec->behavior);
    fprintf(out, ": %s", faint ? "\033[2m" : "");
    plain_str(out, rec->msg, rec->len);
    fprintf(out, "%s\n", faint ? "\033[0m" : "");
    fflush(out);
    return;
  }
  fprintf(out, "%s [%s] %s", ts, halo_log_level_name(rec->level), src);
  if (rec->name) fputs(" '", out), plain_cstr(out, rec->name), fputc('\'', out);
  if (rec->behavior) fputc(' ', out), plain_cstr(out, rec->behavior);
  fputs(": ", out);
  plain_str(out, rec->msg, rec->len);
  fputc('\n', out);
  fflush(out);
}

static int source_matches(const halo_logger_t *lg, const halo_log_record_t *rec) {
  if (!lg->source.node) return 1;
  return rec->pid.id == lg->source.id && (!rec->pid.id || rec->pid.node == lg->source.node);
}

void halo_log_emit(halo_log_t *log, const halo_log_record_t *rec) {
  int i = halo_log_level_index(rec->level);
  if (i < 0) return;
  log->counts[i]++;
  uint8_t bit = (uint8_t)(1u << i);
  /* Records of logger processes go to stream loggers only: loggers that log
   * while handling records could otherwise feed each other without end. */
  int from_logger = rec->pid.id && halo_log_find_process(log, rec->pid.id) != NULL;
  for (uint32_t k = 0; k < log->nloggers; k++) {
    halo_logger_t *lg = &log->loggers[k];
    if (!(lg->levels & bit)) continue;
    if (lg->format != HALO_LOGGER_PROCESS) {
      lg->records++;
      halo_log_write(lg->out, lg->format, log, rec);
    } else if (!from_logger && source_matches(lg, rec) && log->proc_sink) {
      lg->records++;
      log->proc_sink(log->proc_ud, lg, rec);
    }
  }
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
