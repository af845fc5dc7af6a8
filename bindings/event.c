/* core.event: the C side of lua/halo/event.lua over core/event.c (named
 * events, their subscribers and buffers, remote subscriptions). */
#include "binding.h"
#include "event.h"
#include "rel.h"

#include <string.h>

static int rel_type(lua_State *L, int idx) {
  const char *t = luaL_checkstring(L, idx);
  if (!strcmp(t, "link")) return HALO_REL_LINK;
  if (!strcmp(t, "monitor")) return HALO_REL_MONITOR;
  return luaL_argerror(L, idx, "'link' or 'monitor' expected");
}

static const char *check_event_name(lua_State *L, int idx) {
  size_t len;
  const char *name = luaL_checklstring(L, idx, &len);
  if (!len || strlen(name) != len) luaL_argerror(L, idx, "event name must be a non-empty string without NUL");
  return name;
}

/* core.event.register(name, buffer, notify, open) */
static int l_event_register(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.register", 0);
  const char *name = check_event_name(L, 1);
  lua_Number buffer = luaL_optnumber(L, 2, 0);
  if (buffer < 0 || buffer > 1e6 || buffer != (lua_Number)(uint32_t)buffer)
    return luaL_argerror(L, 2, "buffer must be a whole number from 0 to 1000000");
  halo_event_opts_t o = {(uint32_t)buffer, lua_toboolean(L, 3), lua_toboolean(L, 4)};
  return hb_ok_or_error(L, halo_event_register(&B->node, self, name, &o));
}

static int l_event_unregister(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.unregister", 0);
  return hb_ok_or_error(L, halo_event_unregister(&B->node, self, check_event_name(L, 1)));
}

/* core.event.publish(name, value) */
static int l_event_publish(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *name = check_event_name(L, 1);
  if (lua_isnoneornil(L, 2)) return luaL_argerror(L, 2, "a message expected");
  halo_payload_t pl = hb_anchor(B, L, 2);
  return hb_ok_or_error(L, halo_event_publish(&B->node, B->node.current, name, pl, hb_size(L, 2)));
}

/* A subscription's answer: the event's buffered payloads, oldest first. */
static int push_buffered(lua_State *L, halo_binding_t *B, int rc, const halo_event_t *ev) {
  if (rc) return hb_error(L, rc);
  hb_new_array(L, (int)ev->ring_len);
  for (uint32_t i = 0; i < ev->ring_len; i++) {
    hb_push_payload(B, L, halo_event_buffered(ev, i), 0);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* core.event.subscribe(name, "link"|"monitor") -> { buffered... } */
static int l_event_subscribe(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.link/monitor", 0);
  const char *name = check_event_name(L, 1);
  halo_event_t *ev = NULL;
  int rc = halo_event_subscribe(&B->node, self, name, rel_type(L, 2), &ev);
  return push_buffered(L, B, rc, ev);
}

static int l_event_unsubscribe(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.unlink/demonitor", 0);
  return hb_ok_or_error(L, halo_event_unsubscribe(&B->node, self, check_event_name(L, 1), rel_type(L, 2)));
}

/* A remote subscriber's PID string (another node's process). */
static halo_pid_t check_remote_pid(lua_State *L, halo_binding_t *B, int idx) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  halo_pid_t pid;
  if (halo_pid_parse(s, len, &pid) || !pid.node || pid.node == B->node.crc)
    luaL_argerror(L, idx, "another node's PID expected");
  return pid;
}

/* core.event.subscribe_remote(name, "link"|"monitor", pid) -> { buffered... },
 * producer, token: for the service that answers other nodes (halo.remote);
 * the subscriber's node keeps producer and token (core.event.watch_remote) */
static int l_event_subscribe_remote(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  const char *name = check_event_name(L, 1);
  halo_event_t *ev = NULL;
  int rc = halo_event_subscribe_remote(&B->node, name, rel_type(L, 2), check_remote_pid(L, B, 3), &ev);
  if (push_buffered(L, B, rc, ev) != 1) return 3;
  hb_push_pid(B, L, halo_node_pid(&B->node, ev->producer));
  lua_pushnumber(L, (double)ev->token);
  return 3;
}

/* core.event.watch_remote(node, name, "link"|"monitor", producer, token): the
 * caller subscribed to event name of node; its end or the node's loss then
 * reaches it (as an exit or a down). */
static int l_event_watch_remote(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.link/monitor", 0);
  size_t nl;
  const char *node = luaL_checklstring(L, 1, &nl);
  const char *name = check_event_name(L, 2);
  halo_pid_t producer = check_remote_pid(L, B, 4);
  double token = luaL_checknumber(L, 5);
  return hb_ok_or_error(L, halo_rel_watch_event(&B->node, self, rel_type(L, 3), halo_crc32(node, nl), producer.id,
                                             name, (uint64_t)token));
}

/* core.event.unwatch_remote(node, name, "link"|"monitor") */
static int l_event_unwatch_remote(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_proc_t *self = hb_self(L, B, "halo.event.unlink/demonitor", 0);
  size_t nl;
  const char *node = luaL_checklstring(L, 1, &nl);
  return hb_ok_or_error(L, halo_rel_unwatch_event(&B->node, self, rel_type(L, 3), halo_crc32(node, nl),
                                               check_event_name(L, 2)));
}

static int l_event_unsubscribe_remote(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  return hb_ok_or_error(L, halo_event_unsubscribe_remote(&B->node, check_event_name(L, 1), rel_type(L, 2),
                                                      check_remote_pid(L, B, 3)));
}

static void push_event_info(lua_State *L, halo_binding_t *B, const halo_event_t *ev) {
  lua_createtable(L, 0, 15);
  SET_STR("Name", ev->name);
  char crc[9]; /* pid_prefix is "<CCCCCCCC.0.": the 8 hex digits */
  memcpy(crc, B->pid_prefix + 1, 8);
  crc[8] = 0;
  lua_pushfstring(L, "Event#<%s:%s>", crc, ev->name);
  lua_setfield(L, -2, "Event");
  hb_push_pid(B, L, halo_node_pid(&B->node, ev->producer));
  lua_setfield(L, -2, "Producer");
  SET_INT("BufferSize", ev->buffer_size);
  SET_INT("CurrentBuffer", ev->ring_len);
  SET_BOOL("Notify", ev->notify);
  SET_BOOL("Open", ev->open);
  SET_INT("Subscribers", ev->nsubs);
  SET_INT("CreatedAt", ev->created_at);
  SET_INT("MessagesPublished", ev->published);
  SET_INT("MessagesLocalSent", ev->local_sent);
  SET_INT("MessagesRemoteSent", ev->remote_sent);
  SET_INT("LastPublishedAt", ev->last_published_at);
  SET_STR("UtilizationState", halo_event_utilization(ev));
}

/* core.event.info(name) -> EventInfo | nil, err */
static int l_event_info(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  halo_event_t *ev = halo_event_find(&B->node, check_event_name(L, 1));
  if (!ev) return hb_error(L, HALO_EEVENTUNKNOWN);
  push_event_info(L, B, ev);
  return 1;
}

typedef struct list_ctx {
  lua_State *L;
  halo_binding_t *B;
  int i;
} list_ctx_t;

static void list_one(void *ud, const halo_event_t *ev) {
  list_ctx_t *c = ud;
  push_event_info(c->L, c->B, ev);
  lua_rawseti(c->L, -2, ++c->i);
}

/* core.event.list() -> { EventInfo... } (unfiltered, unsorted) */
static int l_event_list(lua_State *L) {
  halo_binding_t *B = hb_node(L);
  hb_new_array(L, (int)B->node.events.len);
  list_ctx_t c = {L, B, 0};
  halo_event_each(&B->node, list_one, &c);
  return 1;
}

void hb_open_event(lua_State *L) {
  static const luaL_Reg fns[] = {{"register", l_event_register},
                                 {"unregister", l_event_unregister},
                                 {"publish", l_event_publish},
                                 {"subscribe", l_event_subscribe},
                                 {"unsubscribe", l_event_unsubscribe},
                                 {"subscribe_remote", l_event_subscribe_remote},
                                 {"unsubscribe_remote", l_event_unsubscribe_remote},
                                 {"watch_remote", l_event_watch_remote},
                                 {"unwatch_remote", l_event_unwatch_remote},
                                 {"info", l_event_info},
                                 {"list", l_event_list},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
}
