#include "check.h"

#include "child.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct seen {
  int calls, signal;
  int64_t status;
} seen_t;

static void on_exit_seen(halo_child_t *c, void *ud, int64_t status, int signal) {
  seen_t *s = ud;
  (void)c;
  s->calls++;
  s->status = status;
  s->signal = signal;
}

static halo_child_t *spawn_sh(uv_loop_t *loop, const char *script, const char *output, seen_t *s) {
  char *args[] = {"sh", "-c", (char *)script, NULL};
  halo_child_opts_t o = {"sh", args, NULL, output, NULL};
  halo_child_t *c = NULL;
  CHECK_EQ(halo_child_spawn(loop, &o, on_exit_seen, s, &c), 0);
  return c;
}

/* The exit status and the output file reach the caller; the child is freed. */
static void test_exit_and_output(uv_loop_t *loop) {
  char path[] = "/tmp/halo_child_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  seen_t s = {0, 0, 0};
  halo_child_t *c = spawn_sh(loop, "echo out; echo err >&2; exit 3", path, &s);
  CHECK(c && halo_child_pid(c) > 0);
  CHECK_EQ(halo_child_count(), 1);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ(s.calls, 1);
  CHECK_EQ(s.status, 3);
  CHECK_EQ(s.signal, 0);
  CHECK_EQ(halo_child_count(), 0);
  char buf[64] = {0};
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  if (f) {
    CHECK_EQ(fread(buf, 1, sizeof buf - 1, f), 8);
    fclose(f);
  }
  CHECK_STR_EQ(buf, "out\nerr\n");
  unlink(path);
}

/* env adds variables to the parent's environment and replaces one of the
 * same name (once: the child sees the new value only). */
static void test_env(uv_loop_t *loop) {
  setenv("HALO_CHILD_TEST_KEEP", "kept", 1);
  setenv("HALO_CHILD_TEST_OVER", "old", 1);
  char *env[] = {"HALO_CHILD_TEST_OVER=new", "HALO_CHILD_TEST_NEW=added", NULL};
  char *args[] = {"sh", "-c",
                  "[ \"$HALO_CHILD_TEST_KEEP\" = kept ] && [ \"$HALO_CHILD_TEST_OVER\" = new ] && "
                  "[ \"$HALO_CHILD_TEST_NEW\" = added ] && [ \"$(env | grep -c ^HALO_CHILD_TEST_OVER=)\" = 1 ] && exit 7; "
                  "exit 1",
                  NULL};
  halo_child_opts_t o = {"sh", args, NULL, NULL, env};
  seen_t s = {0, 0, 0};
  halo_child_t *c = NULL;
  CHECK_EQ(halo_child_spawn(loop, &o, on_exit_seen, &s, &c), 0);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ(s.calls, 1);
  CHECK_EQ(s.status, 7);
  CHECK_STR_EQ(getenv("HALO_CHILD_TEST_OVER"), "old"); /* the parent's own is untouched */
  unsetenv("HALO_CHILD_TEST_KEEP");
  unsetenv("HALO_CHILD_TEST_OVER");
}

/* kill delivers a signal; the callback names it. */
static void test_kill(uv_loop_t *loop) {
  seen_t s = {0, 0, 0};
  halo_child_t *c = spawn_sh(loop, "exec sleep 30", NULL, &s);
  CHECK_EQ(halo_child_kill(c, SIGTERM), 0);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ(s.calls, 1);
  CHECK_EQ(s.signal, SIGTERM);
  CHECK_EQ(halo_child_count(), 0);
}

/* A released child that ignores SIGTERM is killed after the grace period
 * and reaped; its callback never fires. */
static void test_release(uv_loop_t *loop) {
  seen_t s = {0, 0, 0};
  halo_child_t *c = spawn_sh(loop, "trap '' TERM; while :; do sleep 0.05; done", NULL, &s);
  int pid = halo_child_pid(c);
  usleep(100000); /* the trap is set before the signal comes */
  halo_child_release(c, SIGTERM, 200);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ(s.calls, 0);
  CHECK_EQ(halo_child_count(), 0);
  CHECK(kill(pid, 0) != 0); /* reaped: the pid is gone */
}

/* True while OS process pid exists and is not a zombie. */
static int running(int pid) {
  char path[64], stat[256] = {0};
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(stat, 1, sizeof stat - 1, f);
  fclose(f);
  const char *p = n ? strrchr(stat, ')') : NULL;
  return p && p[1] == ' ' && p[2] != 'Z';
}

/* A release stops the child's whole process group: a shell's background
 * job does not outlive it. */
static void test_release_group(uv_loop_t *loop) {
  char path[] = "/tmp/halo_child_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  char script[128];
  snprintf(script, sizeof script, "sleep 30 & echo $! > %s; wait", path);
  seen_t s = {0, 0, 0};
  halo_child_t *c = spawn_sh(loop, script, NULL, &s);
  int job = 0;
  for (int i = 0; i < 500 && !job; i++) { /* the shell writes its job's pid */
    FILE *f = fopen(path, "r");
    if (f) {
      if (fscanf(f, "%d", &job) != 1) job = 0;
      fclose(f);
    }
    if (!job) usleep(10000);
  }
  CHECK(job > 0 && running(job));
  halo_child_release(c, SIGTERM, 200);
  uv_run(loop, UV_RUN_DEFAULT);
  for (int i = 0; i < 200 && running(job); i++) usleep(10000);
  CHECK(!running(job));
  if (job > 0 && running(job)) kill(job, SIGKILL);
  unlink(path);
}

/* A program that cannot run fails the spawn, or exits 127 from the shell. */
static void test_missing(uv_loop_t *loop) {
  char *args[] = {"/nonexistent/halo-none", NULL};
  halo_child_opts_t o = {args[0], args, NULL, NULL, NULL};
  seen_t s = {0, 0, 0};
  halo_child_t *c = NULL;
  CHECK(halo_child_spawn(loop, &o, on_exit_seen, &s, &c) < 0);
  char *none[] = {NULL};
  halo_child_opts_t bad = {"sh", none, NULL, NULL, NULL};
  CHECK_EQ(halo_child_spawn(loop, &bad, on_exit_seen, &s, &c), UV_EINVAL);
  /* an output file that cannot be opened answers the open's own error */
  char *sh[] = {"sh", "-c", "true", NULL};
  halo_child_opts_t nodir = {"sh", sh, NULL, "/nonexistent/dir/out", NULL};
  CHECK_EQ(halo_child_spawn(loop, &nodir, on_exit_seen, &s, &c), UV_ENOENT);
  halo_child_opts_t isdir = {"sh", sh, NULL, "/tmp", NULL};
  CHECK_EQ(halo_child_spawn(loop, &isdir, on_exit_seen, &s, &c), UV_EISDIR);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ(s.calls, 0);
  CHECK_EQ(halo_child_count(), 0);
}

int main(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  test_exit_and_output(&loop);
  test_env(&loop);
  test_kill(&loop);
  test_release(&loop);
  test_release_group(&loop);
  test_missing(&loop);
  CHECK_EQ(uv_loop_close(&loop), 0);
  return check_exit_code();
}
