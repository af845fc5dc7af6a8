/* core.fs: the file facts hot reload needs (lua/halo/mcp/registry.lua),
 * over libuv's synchronous uv_fs calls (no callback: they run on the
 * calling thread and never touch a loop). Missing files are runtime
 * failures: nil, "ECODE: text", "ECODE". */
#include "binding.h"

#include <string.h>

static int fs_error(lua_State *L, int rc, const char *path) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s: %s", uv_err_name(rc), uv_strerror(rc), path);
  lua_pushstring(L, uv_err_name(rc));
  return 3;
}

/* core.fs.stat(path) -> { mtime = ns, size = bytes, ino, type = "file"|"dir"|"other" } | nil, err, code */
static int l_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  uv_fs_t req;
  int rc = uv_fs_stat(NULL, &req, path, NULL);
  if (rc < 0) {
    uv_fs_req_cleanup(&req);
    return fs_error(L, rc, path);
  }
  const uv_stat_t *st = &req.statbuf;
  lua_createtable(L, 0, 4);
  lua_pushnumber(L, (double)st->st_mtim.tv_sec * 1e9 + (double)st->st_mtim.tv_nsec);
  lua_setfield(L, -2, "mtime");
  lua_pushnumber(L, (double)st->st_size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (double)st->st_ino);
  lua_setfield(L, -2, "ino");
  uint64_t fmt = st->st_mode & S_IFMT;
  lua_pushstring(L, fmt == S_IFREG ? "file" : fmt == S_IFDIR ? "dir" : "other");
  lua_setfield(L, -2, "type");
  uv_fs_req_cleanup(&req);
  return 1;
}

/* core.fs.scandir(dir) -> { name... } (sorted, "." and ".." left out) | nil, err, code */
static int l_scandir(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  uv_fs_t req;
  int rc = uv_fs_scandir(NULL, &req, dir, 0, NULL);
  if (rc < 0) {
    uv_fs_req_cleanup(&req);
    return fs_error(L, rc, dir);
  }
  lua_createtable(L, rc, 0);
  uv_dirent_t ent;
  int i = 0;
  while (uv_fs_scandir_next(&req, &ent) == 0) {
    lua_pushstring(L, ent.name);
    lua_rawseti(L, -2, ++i);
  }
  uv_fs_req_cleanup(&req);
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  return 1;
}

void hb_open_fs(lua_State *L) {
  static const luaL_Reg fns[] = {{"stat", l_stat}, {"scandir", l_scandir}, {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
