/* Targets: the strings that name a process (a PID, a registered name, an
 * alias, another node's <CCCCCCCC.name>) resolved to what the core
 * addresses (hb_target), and the FFI send of a number to a local process,
 * which needs nothing else. Registers no functions. */
#include "binding.h"
#include "net.h"
#include "process.h"
#include "rel.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Malformed target strings (hb_target raises for them). */
enum { BAD_PID = 1, BAD_ALIAS, BAD_EMPTY };

/* A local identifier that came back from another node as one of an earlier
 * run of this node names no process of this run. */
static int stale(halo_binding_t *B, int kind, uint64_t id) {
  return B->net && B->net->stale_self && halo_net_stale(B->net, kind, id);
}

/* Resolves a target string without touching Lua: 0, a HALO_E* code, or BAD_*. */
static int target_parse(halo_binding_t *B, const char *s, size_t len, hb_target_t *t) {
  halo_node_t *n = &B->node;
  memset(t, 0, sizeof *t);
  if (len > 12 && len < 24 && memcmp(s, B->pid_prefix, 12) == 0 && s[len - 1] == '>') {
    /* Fast path: a local PID with a high part of 0. */
    uint64_t id = 0;
    size_t i = 12;
    for (; i < len - 1 && s[i] >= '0' && s[i] <= '9'; i++) id = id * 10 + (uint64_t)(s[i] - '0');
    if (i == len - 1 && i > 12 && id <= 0x7fffffffu) {
      t->kind = HALO_TARGET_PID;
      t->pid = halo_node_pid(n, id);
      t->proc = stale(B, HALO_ID_PID, id) ? NULL : halo_proc_find(n, id);
      return t->proc ? 0 : HALO_ENOPROC;
    }
  }
  if (len && s[0] == '<') {
    if (halo_pid_parse(s, len, &t->pid)) {
      /* "<CCCCCCCC.name>": a registered name on the node with that CRC */
      static char name[256];
      char *end;
      if (len < 12 || len - 11 >= sizeof name || s[9] != '.' || s[len - 1] != '>') return BAD_PID;
      for (int i = 1; i < 9; i++)
        if (!isxdigit((unsigned char)s[i])) return BAD_PID;
      memcpy(name, s + 10, len - 11);
      name[len - 11] = 0;
      if (!name[0] || strlen(name) != len - 11) return BAD_PID;
      char crc_hex[9];
      memcpy(crc_hex, s + 1, 8);
      crc_hex[8] = 0;
      t->kind = HALO_TARGET_NAME;
      t->name = name;
      t->pid.node = (uint32_t)strtoul(crc_hex, &end, 16);
      t->pid.id = 0;
      if (t->pid.node != n->crc) return 0; /* another node: routed by name */
      t->proc = halo_name_lookup(n, name);
      if (!t->proc) return HALO_ENOPROC;
      t->pid = halo_node_pid(n, t->proc->id);
      return 0;
    }
    t->kind = HALO_TARGET_PID;
    if (t->pid.node == n->crc) {
      t->proc = stale(B, HALO_ID_PID, t->pid.id) ? NULL : halo_proc_find(n, t->pid.id);
      if (!t->proc) return HALO_ENOPROC;
    }
    return 0;
  }
  if (len > 6 && memcmp(s, "Alias#", 6) == 0) {
    uint32_t crc;
    if (halo_ref_parse(s, len, "Alias", &crc, &t->alias)) return BAD_ALIAS;
    t->kind = HALO_TARGET_ALIAS;
    if (crc != n->crc) { /* another node's alias: sent like a name there, which resolves it */
      t->kind = HALO_TARGET_NAME;
      t->name = s;
      t->pid.node = crc;
      t->pid.id = 0;
      return len < 256 ? 0 : BAD_ALIAS;
    }
    t->proc = stale(B, HALO_ID_ALIAS, t->alias) ? NULL : halo_alias_lookup(n, t->alias);
    if (!t->proc) return HALO_EALIASUNKNOWN;
    t->pid = halo_node_pid(n, t->proc->id);
    return 0;
  }
  if (!len) return BAD_EMPTY;
  t->kind = HALO_TARGET_NAME;
  t->name = s;
  t->proc = halo_name_lookup(n, s);
  if (!t->proc) return HALO_ENOPROC;
  t->pid = halo_node_pid(n, t->proc->id);
  return 0;
}

int hb_target(lua_State *L, halo_binding_t *B, int idx, hb_target_t *t) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  int rc = target_parse(B, s, len, t);
  switch (rc) {
  case BAD_PID: return luaL_argerror(L, idx, "incorrect PID format, expected <crc.high.low> (or <crc.name>)");
  case BAD_ALIAS: return luaL_argerror(L, idx, "incorrect Alias format, expected Alias#<crc.id0.id1.id2>");
  case BAD_EMPTY: return luaL_argerror(L, idx, "empty process name");
  default: return rc;
  }
}

/* The FFI fast path of halo.send for number messages to local processes:
 * no Lua C API, so a compiled loop calls it directly. Any other outcome
 * (an error, a remote target, no node) returns nonzero without side effects
 * and halo.send takes the regular path, which reports it. */
int halo_send_number(const char *to, size_t len, double v) {
  halo_binding_t *B = halo__B;
  if (!B) return -1;
  hb_target_t t;
  if (target_parse(B, to, len, &t) || !t.proc) return -1;
  /* A pool may drop and log the message; logging can reach process loggers
   * through host hooks, which must not run inside a compiled trace. */
  if (t.proc->ext && t.proc->ext->pool) return -1;
  halo_node_t *n = &B->node;
  halo_payload_t pl;
  pl.tag = PL_NUMBER;
  memcpy(&pl.val, &v, sizeof v);
  halo_proc_t *from = n->current;
  int rc = halo__enqueue(n, halo_node_pid(n, from ? from->id : 1), t.proc, HALO_MSG_REGULAR, HALO_Q_MAIN, 0, pl, 8);
  if (rc) return -1; /* nothing was queued: the regular path counts and reports it */
  if (from) from->msgs_out++;
  return 0;
}
