/*
 * Child OS processes on libuv (uv_spawn): start a program, learn when it
 * exits, signal it, and release it so that it is stopped and reaped without
 * anyone waiting for it.
 *
 * Each child runs in a session of its own (setsid), so a terminal's Ctrl-C
 * reaches only the program that started it, which then stops its children
 * itself. Its stdin is /dev/null; stdout and stderr go to a file (appended)
 * or to the parent's own.
 *
 * The exit callback fires exactly once, from the loop, after which the
 * child is freed (its handles finish closing on the next loop turn), unless
 * the child was released first: then no callback fires.
 */
#ifndef HALO_CHILD_H
#define HALO_CHILD_H

#include <stdint.h>
#include <uv.h>

typedef struct halo_child halo_child_t;

/** status: the exit status, or 0 when killed; signal: the signal that
 *  ended it, or 0. */
typedef void (*halo_child_exit_cb)(halo_child_t *c, void *ud, int64_t status, int signal);

typedef struct halo_child_opts {
  const char *file;   /* the program, searched in PATH when it has no slash */
  char **args;        /* argv, NULL-terminated; args[0] is the program's name */
  const char *cwd;    /* NULL: the parent's */
  const char *output; /* file for stdout and stderr, created or appended to; NULL: the parent's */
  char **env;         /* "NAME=VALUE" entries, NULL-terminated, added to the parent's environment
                         (replacing a variable of that name); NULL: the parent's as it is */
} halo_child_opts_t;

/** Starts a child; *out names it. Returns 0, or a negative libuv code (the
 *  program cannot be run, the output file cannot be opened, out of memory)
 *  and then cb never fires. */
int halo_child_spawn(uv_loop_t *loop, const halo_child_opts_t *o, halo_child_exit_cb cb, void *ud,
                     halo_child_t **out);

/** The child's OS process id. */
int halo_child_pid(const halo_child_t *c);

/** Sends signal sig; 0 or a negative libuv code (UV_ESRCH once it exited). */
int halo_child_kill(halo_child_t *c, int sig);

/** Gives c up: its callback never fires; its process group (the child and
 *  what it started) gets sig now (0: none) and SIGKILL after grace_ms
 *  unless the child exited by then, and it is reaped and freed
 *  when it exits. The handles keep the loop running until then, so a loop
 *  run to its end leaves no child behind. */
void halo_child_release(halo_child_t *c, int sig, uint32_t grace_ms);

/** Children started and not yet freed (all loops). */
uint64_t halo_child_count(void);

#endif
