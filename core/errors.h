/*
 * halo error codes. Functions return 0 or a negative code; libuv codes pass
 * through unchanged (they are negative errno values, all above -4096), halo's
 * own codes live below HALO__ERR_BASE so the two never collide.
 */
#ifndef HALO_ERRORS_H
#define HALO_ERRORS_H

#define HALO__ERR_BASE (-30000)

#define HALO_ERRNO_MAP(X)                                                     \
  X(NOPROC, "unknown process")                                                \
  X(FULL, "process mailbox is full")                                          \
  X(TIMEDOUT, "timed out")                                                    \
  X(NOCONN, "no connection")                                                  \
  X(TAKEN, "resource is taken")                                               \
  X(NOTALLOWED, "not allowed")                                                \
  X(INCORRECT, "incorrect value or argument")                                 \
  X(TERMINATED, "process terminated")                                         \
  X(NODESTOP, "node terminated")                                              \
  X(TARGETEXIST, "target is already exist")                                   \
  X(TARGETUNKNOWN, "unknown target")                                          \
  X(NAMEUNKNOWN, "unknown name")                                              \
  X(ALIASUNKNOWN, "unknown alias")                                            \
  X(NOTOWNER, "not an owner")                                                 \
  X(IGNORED, "response ignored")                                              \
  X(NOMEM, "out of memory")                                                   \
  X(MALFORMED, "malformed value")                                             \
  X(TOOLARGE, "too large")                                                    \
  X(INIT, "init failed")                                                      \
  X(EVENTUNKNOWN, "unknown event")                                            \
  X(APPUNKNOWN, "unknown application")                                        \
  X(APPDEPENDS, "dependency fail")                                            \
  X(APPSTATE, "application is in running/stopping state")                     \
  X(APPEMPTY, "application has no items")                                     \
  X(APPSTOPPING, "application stopping is in progress")                       \
  X(APPRUNNING, "application is still running")                               \
  X(CRONSPEC, "incorrect cron spec")                                          \
  X(NOROUTE, "no route")                                                      \
  X(UNKNOWN, "unknown")

enum {
  HALO__ERR_FIRST = HALO__ERR_BASE,
#define X(name, text) HALO_E##name,
  HALO_ERRNO_MAP(X)
#undef X
  HALO__ERR_LAST
};

/** Text of an error code: halo's own texts (the reference's wording) or libuv's. */
const char *halo_strerror(int code);

/** Symbolic name of an error code without the leading H: "ENOPROC", "ETIMEDOUT", or libuv's name. */
const char *halo_err_name(int code);

#endif
