/*
 * Log records, levels and per-level counters. The node owns one halo_log_t;
 * records below its level (or the source process's level) are dropped before
 * any formatting. Sinks are callbacks; the default sink writes the plain
 * format to stderr:
 *   <time> [<level>] <source>[ '<name>'][ <behavior>]: <message>
 */
#ifndef HALO_LOG_H
#define HALO_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "pid.h"

/* Level values follow the reference (0 = inherit). */
enum halo_log_level {
  HALO_LOG_TRACE = -2,
  HALO_LOG_DEBUG = -1,
  HALO_LOG_DEFAULT = 0,
  HALO_LOG_INFO = 1,
  HALO_LOG_WARNING = 2,
  HALO_LOG_ERROR = 3,
  HALO_LOG_PANIC = 4,
  HALO_LOG_DISABLED = 5,
};

typedef struct halo_log_record {
  uint64_t time;        /* unix ns */
  int level;
  halo_pid_t pid;       /* pid.id == 0: the node itself is the source */
  const char *name;     /* registered name or NULL */
  const char *behavior; /* or NULL */
  const char *msg;
  size_t len;
} halo_log_record_t;

typedef void (*halo_log_sink_cb)(void *ud, const halo_log_record_t *rec);

typedef struct halo_log {
  int level;             /* node level */
  uint64_t counts[6];    /* trace, debug, info, warning, error, panic */
  halo_log_sink_cb sink; /* NULL: halo_log_write_plain to stderr */
  void *sink_ud;
  uint32_t node_crc;
} halo_log_t;

void halo_log_init(halo_log_t *log, uint32_t node_crc);

/** "trace".."disabled"; "unknown log level" for anything else. */
const char *halo_log_level_name(int level);

/** Parses a level name; returns HALO_EINCORRECT for an unknown name. */
int halo_log_level_parse(const char *name, int *level);

/** Index into counts[] for a level, or -1. */
int halo_log_level_index(int level);

/** Counts the record and hands it to the sink. The caller has checked the level. */
void halo_log_emit(halo_log_t *log, const halo_log_record_t *rec);

/** printf-style convenience for records whose source is the node. */
void halo_log_node(halo_log_t *log, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Writes one record in the plain format. */
void halo_log_write_plain(FILE *out, uint32_t node_crc, const halo_log_record_t *rec);

#endif
