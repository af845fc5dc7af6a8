/*
 * Log records, levels and per-level counters. The node owns one halo_log_t;
 * records below its level (or the source process's level) are dropped before
 * any formatting. A record that passes is counted and handed to every logger
 * registered for its level: plain text, colored text or JSON lines on a
 * stream, or a process (its log queue). The plain format:
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

/* Loggers: named sinks, each with its own set of levels. */
enum halo_logger_format { HALO_LOGGER_PLAIN, HALO_LOGGER_COLOR, HALO_LOGGER_JSON, HALO_LOGGER_PROCESS };

typedef struct halo_logger {
  char *name;
  int format;          /* enum halo_logger_format */
  uint8_t levels;      /* bit i = level index i (trace..panic) */
  FILE *out;           /* stream formats */
  int owns_out;        /* fclose it on removal */
  uint64_t pid;        /* HALO_LOGGER_PROCESS: the receiving process */
  halo_pid_t source;   /* HALO_LOGGER_PROCESS: only records of this source (node 0: any;
                          id 0 with node set: the node itself) */
  uint64_t records;    /* records handed to it */
} halo_logger_t;

typedef void (*halo_log_proc_cb)(void *ud, const halo_logger_t *lg, const halo_log_record_t *rec);

typedef struct halo_log {
  int level;             /* node level */
  uint64_t counts[6];    /* trace, debug, info, warning, error, panic */
  halo_logger_t *loggers;
  uint32_t nloggers, cap;
  halo_log_proc_cb proc_sink; /* delivers records to process loggers */
  void *proc_ud;
  uint32_t node_crc;
  const char *node_name;
} halo_log_t;

#define HALO_LOG_ALL_LEVELS 0x3f

/** Starts with one logger, "default": plain text on stderr, every level. */
void halo_log_init(halo_log_t *log, uint32_t node_crc);
/** Closes and frees every logger. */
void halo_log_destroy(halo_log_t *log);

/** Adds a stream logger (plain, color or json) writing to out. HALO_ETAKEN
 *  when the name is in use (out is then left alone), HALO_EINCORRECT for a
 *  bad format or empty name. */
int halo_log_add(halo_log_t *log, const char *name, int format, uint8_t levels, FILE *out, int owns_out);
/** Adds a process logger: records go to pid through proc_sink, except
 *  those whose source is a logger process (its own included). HALO_ETAKEN, HALO_ENOTALLOWED (the process is a
 *  logger already). */
int halo_log_add_process(halo_log_t *log, const char *name, uint64_t pid, uint8_t levels, halo_pid_t source);
/** Removes a logger by name: 0 or HALO_EUNKNOWN. */
int halo_log_remove(halo_log_t *log, const char *name);
/** Removes the logger of process pid, if any. */
void halo_log_remove_process(halo_log_t *log, uint64_t pid);
/** The logger of process pid, or NULL. */
const halo_logger_t *halo_log_find_process(const halo_log_t *log, uint64_t pid);
/** Writes one record in a stream format. */
void halo_log_write(FILE *out, int format, const halo_log_t *log, const halo_log_record_t *rec);

/** "trace".."disabled"; "unknown log level" for anything else. */
const char *halo_log_level_name(int level);

/** Parses a level name; returns HALO_EINCORRECT for an unknown name. */
int halo_log_level_parse(const char *name, int *level);

/** Index into counts[] for a level, or -1. */
int halo_log_level_index(int level);

/** Counts the record and hands it to every logger taking its level. The
 *  caller has checked the source's level. */
void halo_log_emit(halo_log_t *log, const halo_log_record_t *rec);

/** printf-style convenience for records whose source is the node. */
void halo_log_node(halo_log_t *log, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


#endif
