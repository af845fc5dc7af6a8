/* Payload anchoring: Lua values handed from one process to another are kept
 * alive in one registry table, at slots recycled through a C free list. */
#include "binding.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

halo_binding_t *halo__B;

const char *const hb_reasons[] = {"normal", "shutdown", "kill", "unregistered", "no connection",
                                   "out of memory"};

/* A freed key holds false, never nil: luaL_ref hands out new keys at the
 * registry's length when its own free list is empty, and a nil inside the
 * array part could move that border below keys this node still owns. */
int hb_key(halo_binding_t *B, lua_State *L) {
  int k;
  if (B->nfree) {
    k = B->free_keys[--B->nfree];
  } else {
    if (B->nkeys == B->capfree) { /* room to take every key back later */
      uint32_t nc = B->capfree ? B->capfree * 2 : 1024;
      int *nf = realloc(B->free_keys, nc * sizeof *nf);
      if (!nf) luaL_error(L, "out of memory");
      B->free_keys = nf;
      B->capfree = nc;
    }
    lua_pushboolean(L, 0);
    k = luaL_ref(L, LUA_REGISTRYINDEX);
    B->nkeys++;
  }
  lua_rawseti(L, LUA_REGISTRYINDEX, k);
  return k;
}

void hb_key_reserve(halo_binding_t *B, lua_State *L, uint32_t n) {
  while (B->nfree < n) {
    uint32_t had = B->nfree;
    B->nfree = 0; /* hb_key reserves a new key */
    lua_pushboolean(L, 0);
    int k = hb_key(B, L);
    B->nfree = had;
    B->free_keys[B->nfree++] = k;
  }
}

void hb_key_free(halo_binding_t *B, lua_State *L, int key) {
  lua_pushboolean(L, 0);
  lua_rawseti(L, LUA_REGISTRYINDEX, key);
  B->free_keys[B->nfree++] = key; /* capfree >= nkeys: always room */
}

void hb_keys_init(halo_binding_t *B, lua_State *L) {
  for (int i = 0; i < HB_NREASONS; i++) {
    lua_pushstring(L, hb_reasons[i]);
    B->reason_key[i] = hb_key(B, L);
  }
  for (int i = 0; i < 256; i++) {
    lua_pushboolean(L, 0);
    B->pid_cache_key[i] = hb_key(B, L);
    B->pid_cache[i] = (uint64_t)(i ^ 1); /* never matches slot i: empty */
  }
}

void hb_keys_close(halo_binding_t *B, lua_State *L) {
  for (int i = 0; i < HB_NREASONS; i++) hb_key_free(B, L, B->reason_key[i]);
  for (int i = 0; i < 256; i++) hb_key_free(B, L, B->pid_cache_key[i]);
  while (B->nfree) luaL_unref(L, LUA_REGISTRYINDEX, B->free_keys[--B->nfree]);
  free(B->free_keys);
  B->free_keys = NULL;
}

halo_payload_t hb_anchor(halo_binding_t *B, lua_State *L, int idx) {
  halo_payload_t pl;
  switch (lua_type(L, idx)) {
  case LUA_TNONE:
  case LUA_TNIL: pl.tag = PL_NIL; pl.val = 0; return pl;
  case LUA_TBOOLEAN: pl.tag = lua_toboolean(L, idx) ? PL_TRUE : PL_FALSE; pl.val = 0; return pl;
  case LUA_TNUMBER: {
    double d = lua_tonumber(L, idx);
    pl.tag = PL_NUMBER;
    memcpy(&pl.val, &d, sizeof d);
    return pl;
  }
  default: {
    lua_pushvalue(L, idx);
    int k = hb_key(B, L);
    B->anchored++;
    pl.tag = PL_ANCHOR;
    pl.val = (uint64_t)k;
    return pl;
  }
  }
}

void hb_push_payload(halo_binding_t *B, lua_State *L, halo_payload_t pl, int consume) {
  switch (pl.tag) {
  case PL_FALSE: lua_pushboolean(L, 0); return;
  case PL_TRUE: lua_pushboolean(L, 1); return;
  case PL_NUMBER: {
    double d;
    memcpy(&d, &pl.val, sizeof d);
    lua_pushnumber(L, d);
    return;
  }
  case PL_ANCHOR:
    lua_rawgeti(L, LUA_REGISTRYINDEX, (int)pl.val);
    if (consume) {
      hb_key_free(B, L, (int)pl.val);
      B->anchored--;
    }
    return;
  case PL_REASON: lua_rawgeti(L, LUA_REGISTRYINDEX, B->reason_key[pl.val]); return;
  default: lua_pushnil(L); return;
  }
}

void hb_release(halo_binding_t *B, halo_payload_t pl) {
  if (pl.tag != PL_ANCHOR) return;
  hb_key_free(B, hb_L(B), (int)pl.val);
  B->anchored--;
}

uint32_t hb_size(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: return (uint32_t)lua_objlen(L, idx);
  case LUA_TNUMBER: return 8;
  case LUA_TBOOLEAN: return 1;
  case LUA_TTABLE: return 64 + 16 * (uint32_t)lua_objlen(L, idx);
  default: return 0;
  }
}

int hb_push_pid_cached(halo_binding_t *B, lua_State *L, halo_pid_t pid) {
  if (pid.node != B->node.crc) return 0;
  halo_proc_t *p = halo_proc_find(&B->node, pid.id);
  if (p && p->href[HREF_PID]) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->href[HREF_PID]);
    return 1;
  }
  /* Messages often outlive their sender: keep the last strings formatted. */
  int slot = (int)(pid.id & 255);
  if (B->pid_cache[slot] != pid.id) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, B->pid_cache_key[slot]);
  return 1;
}

void hb_push_pid(halo_binding_t *B, lua_State *L, halo_pid_t pid) {
  if (hb_push_pid_cached(B, L, pid)) return;
  int slot = (int)(pid.id & 255);
  int local = pid.node == B->node.crc;
  char buf[HALO_PID_STRLEN];
  size_t n = local ? hb_format_local_pid(B, buf, pid.id) : (size_t)halo_pid_format(buf, sizeof buf, pid);
  lua_pushlstring(L, buf, n);
  if (local) {
    lua_pushvalue(L, -1);
    lua_rawseti(L, LUA_REGISTRYINDEX, B->pid_cache_key[slot]);
    B->pid_cache[slot] = pid.id;
  }
}

size_t hb_format_local_pid(halo_binding_t *B, char *buf, uint64_t id) {
  if (id >> 31) return (size_t)halo_pid_format(buf, HALO_PID_STRLEN, halo_node_pid(&B->node, id));
  char digits[12];
  int nd = 0;
  do {
    digits[nd++] = (char)('0' + id % 10);
    id /= 10;
  } while (id);
  memcpy(buf, B->pid_prefix, 12);
  for (int i = 0; i < nd; i++) buf[12 + i] = digits[nd - 1 - i];
  buf[12 + nd] = '>';
  buf[13 + nd] = 0;
  return (size_t)(13 + nd);
}

void hb_push_proc_pid(halo_binding_t *B, lua_State *L, halo_proc_t *p) {
  hb_push_pid(B, L, halo_node_pid(&B->node, p->id));
}

int hb_error(lua_State *L, int code) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", halo_err_name(code), halo_strerror(code));
  lua_pushstring(L, halo_err_name(code));
  return 3;
}

int hb_errorf(lua_State *L, int code, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", halo_err_name(code), buf);
  lua_pushstring(L, halo_err_name(code));
  return 3;
}

void hb_copy_table(lua_State *L) {
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}
