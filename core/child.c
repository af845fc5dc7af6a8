/* Child OS processes on uv_spawn; see child.h. */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

struct halo_child {
  uv_process_t proc;
  uv_timer_t grace; /* SIGKILL after a release's grace period */
  halo_child_exit_cb cb;
  void *ud;
  int exited, open; /* open: handles not yet closed */
};

static uint64_t live;

uint64_t halo_child_count(void) { return live; }

static void on_closed(uv_handle_t *h) {
  halo_child_t *c = h->data;
  if (--c->open == 0) {
    live--;
    free(c);
  }
}

static void child_close(halo_child_t *c) {
  uv_close((uv_handle_t *)&c->proc, on_closed);
  uv_close((uv_handle_t *)&c->grace, on_closed);
}

static void child_exited(uv_process_t *p, int64_t status, int signal) {
  halo_child_t *c = p->data;
  c->exited = 1;
  halo_child_exit_cb cb = c->cb;
  c->cb = NULL;
  if (cb) cb(c, c->ud, status, signal);
  child_close(c);
}

/* The parent's environment with extra's entries added or replacing those of
 * the same name: a malloc'ed array of pointers into both (NULL: out of memory). */
static char **env_merge(char **extra) {
  size_t n = 0, m = 0, k = 0;
  while (environ[n]) n++;
  while (extra[m]) m++;
  char **env = malloc((n + m + 1) * sizeof *env);
  if (!env) return NULL;
  for (size_t i = 0; i < n; i++) {
    size_t len = strcspn(environ[i], "=");
    size_t j = 0;
    while (j < m && !(strncmp(extra[j], environ[i], len) == 0 && extra[j][len] == '=')) j++;
    if (j == m) env[k++] = environ[i];
  }
  for (size_t j = 0; j < m; j++) env[k++] = extra[j];
  env[k] = NULL;
  return env;
}

int halo_child_spawn(uv_loop_t *loop, const halo_child_opts_t *o, halo_child_exit_cb cb, void *ud,
                     halo_child_t **out) {
  if (!o || !o->file || !o->args || !o->args[0]) return UV_EINVAL;
  halo_child_t *c = calloc(1, sizeof *c);
  char **env = o->env ? env_merge(o->env) : NULL;
  if (!c || (o->env && !env)) {
    free(c);
    free(env);
    return UV_ENOMEM;
  }
  int fd = -1;
  if (o->output) {
    fd = open(o->output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      int err = -errno; /* libuv's codes are the negated errno values */
      free(c);
      free(env);
      return err;
    }
  }
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_INHERIT_FD, .data.fd = fd >= 0 ? fd : 1},
      {.flags = UV_INHERIT_FD, .data.fd = fd >= 0 ? fd : 2},
  };
  uv_process_options_t po = {
      .exit_cb = child_exited,
      .file = o->file,
      .args = o->args,
      .cwd = o->cwd,
      .env = env,
      .flags = UV_PROCESS_DETACHED,
      .stdio_count = 3,
      .stdio = stdio,
  };
  c->proc.data = c->grace.data = c;
  int rc = uv_spawn(loop, &c->proc, &po);
  free(env); /* the child has its copy: uv_spawn returns once it exec'ed or failed */
  if (fd >= 0) close(fd);
  if (rc) {
    /* libuv wants the handle closed even when the spawn failed */
    c->open = 1;
    live++;
    uv_close((uv_handle_t *)&c->proc, on_closed);
    return rc;
  }
  uv_timer_init(loop, &c->grace);
  c->cb = cb;
  c->ud = ud;
  c->open = 2;
  live++;
  if (out) *out = c;
  return 0;
}

int halo_child_pid(const halo_child_t *c) { return c->proc.pid; }

int halo_child_kill(halo_child_t *c, int sig) {
  if (c->exited) return UV_ESRCH;
  return uv_process_kill(&c->proc, sig);
}

/* The child leads its own process group (setsid), whose id stays its pid
 * until it is reaped: the signal reaches what it started too. */
static void kill_group(halo_child_t *c, int sig) {
  if (kill(-c->proc.pid, sig)) uv_process_kill(&c->proc, sig);
}

static void on_grace(uv_timer_t *t) {
  halo_child_t *c = t->data;
  if (!c->exited) kill_group(c, SIGKILL);
}

void halo_child_release(halo_child_t *c, int sig, uint32_t grace_ms) {
  c->cb = NULL;
  if (c->exited) return;
  if (sig) kill_group(c, sig);
  uv_timer_start(&c->grace, on_grace, grace_ms, 0);
}
