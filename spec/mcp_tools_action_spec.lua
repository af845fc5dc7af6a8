-- The action and log-level tool files, loaded as the MCP server loads them
-- and run inside processes of a real node.
local halo = require("halo")
local helper = require("helper")
local json = require("halo.json")
local message = require("halo.message")

-- name -> definition, in file order (the server's loadfile, an environment over _G)
local function load_tools(path)
  local chunk = assert(loadfile(path))
  setfenv(chunk, setmetatable({}, { __index = _G }))
  local list = chunk()
  local byname, names = {}, {}
  for i, def in ipairs(list) do
    byname[def.name] = def
    names[i] = def.name
  end
  return byname, names
end

local action, action_names = load_tools("mcp_tools/action.lua")
local logt, log_names = load_tools("mcp_tools/log.lua")
local tools = {}
for k, v in pairs(action) do tools[k] = v end
for k, v in pairs(logt) do tools[k] = v end

-- Runs a tool handler the way a worker does: { value, err } (err set when it failed).
local function run(name, args, ctx)
  ctx = ctx or {}
  ctx.tool, ctx.timeout = name, ctx.timeout or 30
  if ctx.timeout_given == nil then ctx.timeout_given = false end
  local v, err = tools[name].handler(args or {}, ctx)
  return { v = v, err = err }
end

-- A process that records what reaches it: messages, calls (answered with
-- { echo = request }), and keeps a call from "never" unanswered.
local function recorder(log, opts)
  return assert(halo.spawn({
    handle_message = function(_, from, msg) log[#log + 1] = { from = from, msg = msg } end,
    handle_call = function(_, _, _, req)
      if req == "never" then return nil end
      if type(req) == "table" and req.sleep then halo.sleep(req.sleep) end
      if req == "die" then error("boom", 0) end
      return { echo = req }
    end,
  }, nil, opts))
end

local function other_crc(pid) return (pid:gsub("^<%x+", "<ABCDEF01")) end

describe("mcp_tools/action.lua and log.lua", function()
  it("declare the reference's tools, schemas without node/timeout, serialisable", function()
    assert.same({ "message_types", "message_type_info", "send_message", "call_process", "send_exit", "process_kill" },
      action_names)
    assert.same({ "log_level_get", "log_level_set", "loggers_list" }, log_names)
    local required = {
      message_type_info = { "type_name" }, send_message = { "to", "message" }, call_process = { "to", "request" },
      send_exit = { "pid" }, process_kill = { "pid" }, log_level_set = { "level" },
    }
    for name, def in pairs(tools) do
      assert.is_string(def.description)
      assert.equal("object", def.inputSchema.type)
      assert.is_nil(def.inputSchema.properties.node, name)
      assert.is_nil(def.inputSchema.properties.timeout, name)
      assert.same(required[name] or nil, def.inputSchema.required and { unpack(def.inputSchema.required) } or nil)
      local text = json.encode(def.inputSchema)
      assert.is_truthy(json.decode(text), name)
    end
    assert.equal('{"additionalProperties":false,"properties":{},"type":"object"}',
      json.encode(tools.loggers_list.inputSchema))
    -- message and request take any JSON value (a stringified object is unwrapped by the handler)
    assert.is_nil(tools.send_message.inputSchema.properties.message.type)
    assert.is_nil(tools.call_process.inputSchema.properties.request.type)
  end)

  describe("message_types / message_type_info", function()
    before_each(function()
      message.define("spec_tools/SpecOrder", { Item = "string", Count = "integer" })
      message.define("spec_tools/SpecCancel", { Item = "string" })
    end)
    after_each(function()
      message.undefine("spec_tools/SpecOrder")
      message.undefine("spec_tools/SpecCancel")
    end)

    it("list the declared shapes, sorted and filtered, and describe one", function()
      local r = helper.run(function()
        return {
          all = run("message_types"), some = run("message_types", { filter = "SPEC_TOOLS/" }),
          none = run("message_types", { filter = "no such shape" }),
          info = run("message_type_info", { type_name = "SpecOrder" }),
          full = run("message_type_info", { type_name = "#spec_tools/SpecCancel" }),
          missing = run("message_type_info", { type_name = "Nope" }),
        }
      end)
      assert.equal(json.ARRAY, getmetatable(r.all.v))
      assert.same({ "spec_tools/SpecCancel", "spec_tools/SpecOrder" }, r.some.v)
      assert.equal("[]", json.encode(r.none.v, true))
      assert.equal(table.concat({
        "{",
        '  "fields": [',
        "    {",
        '      "name": "Count",',
        '      "type": "integer"',
        "    },",
        "    {",
        '      "name": "Item",',
        '      "type": "string"',
        "    }",
        "  ],",
        '  "kind": "table",',
        '  "type_name": "spec_tools/SpecOrder"',
        "}" }, "\n"), json.encode(r.info.v, true))
      assert.equal("spec_tools/SpecCancel", r.full.v.type_name)
      assert.is_nil(r.missing.v)
      assert.equal("type not found: Nope. Use message_types to list registered types", r.missing.err)
    end)
  end)

  describe("send_message", function()
    before_each(function() message.define("spec_tools/SpecOrder", { Item = "string", Count = "integer" }) end)
    after_each(function() message.undefine("spec_tools/SpecOrder") end)

    it("delivers to a PID (brackets and node part as typed) or a name, from the calling process", function()
      local r = helper.run(function()
        local log = {}
        local p = recorder(log, { name = "spec_sink" })
        local out = {
          self = halo.self(), p = p,
          by_name = run("send_message", { to = "spec_sink", message = { a = 1 } }),
          by_pid = run("send_message", { to = p, message = { 1, 2 } }),
          bare = run("send_message", { to = other_crc(p):sub(2, -2), message = 5 }),
          text = run("send_message", { to = "spec_sink", message = "hi" }),
          bool = run("send_message", { to = "spec_sink", message = true, important = true }),
          null = run("send_message", { to = "spec_sink", message = json.null }),
          unwrapped = run("send_message", { to = "spec_sink", message = ' {"b": [1, null, 3], "c": null}' }),
          typed = run("send_message", { to = "spec_sink", message = '{"Item": "apple", "Count": "3"}',
                                        type_name = "SpecOrder" }),
        }
        assert(helper.wait_until(function() return #log == 8 end))
        out.log = log
        return out
      end)
      assert.equal("message sent to spec_sink (type: table, important: false)", r.by_name.v)
      assert.equal(("message sent to %s (type: list, important: false)"):format(r.p), r.by_pid.v)
      assert.equal(("message sent to %s (type: number, important: false)"):format(other_crc(r.p):sub(2, -2)), r.bare.v)
      assert.equal("message sent to spec_sink (type: string, important: false)", r.text.v)
      assert.equal("message sent to spec_sink (type: boolean, important: true)", r.bool.v)
      assert.equal("message sent to spec_sink (type: nil, important: false)", r.null.v)
      assert.equal("message sent to spec_sink (type: table, important: false)", r.unwrapped.v)
      assert.equal("message sent to spec_sink (type: SpecOrder, important: false)", r.typed.v)
      for _, e in ipairs(r.log) do assert.equal(r.self, e.from) end
      assert.same({ a = 1 }, r.log[1].msg)
      assert.same({ 1, 2 }, r.log[2].msg)
      assert.equal(5, r.log[3].msg)
      assert.equal("hi", r.log[4].msg)
      assert.equal(true, r.log[5].msg)
      assert.is_nil(r.log[6].msg)
      assert.same({ b = { 1, nil, 3 } }, r.log[7].msg)
      assert.same({ type = "SpecOrder", Item = "apple", Count = 3 }, r.log[8].msg)
    end)

    it("answers the reference's error texts", function()
      local r = helper.run(function()
        local log = {}
        recorder(log, { name = "spec_sink" })
        local out = {
          unknown = run("send_message", { to = "no_such_name", message = {} }),
          important = run("send_message", { to = "<0.0.999999>", message = {}, important = true }),
          bad_pid = run("send_message", { to = "<bad", message = {} }),
          empty = run("send_message", { to = "", message = {} }),
          bad_json = run("send_message", { to = "spec_sink", message = "{not json" }),
          no_type = run("send_message", { to = "spec_sink", message = {}, type_name = "Nope" }),
          bad_shape = run("send_message", { to = "spec_sink", message = { Count = "many" }, type_name = "SpecOrder" }),
        }
        halo.sleep(20)
        out.delivered = #log
        return out
      end)
      assert.equal("send_message: unknown process", r.unknown.err)
      assert.equal("send_message (important): unknown process", r.important.err)
      assert.equal("send_message: incorrect PID format, expected <crc.high.low> (or <crc.name>)", r.bad_pid.err)
      assert.equal("send_message: empty process name", r.empty.err)
      assert.matches("^invalid JSON: .", r.bad_json.err)
      assert.equal("type not found: Nope. Use message_types to list registered types", r.no_type.err)
      assert.equal("failed to construct spec_tools/SpecOrder: field Count: expected integer, got string", r.bad_shape.err)
      assert.equal(0, r.delivered)
    end)
  end)

  it("reach the scenarios' shapes: a typed MessagePing makes latency_worker send a request", function()
    local saved = package.path
    package.path = "scenarios/?.lua;" .. package.path
    local latency = require("latency")
    require("messaging")
    require("events")
    package.path = saved
    local r = helper.run(function()
      -- nothing listens on port 1: the request fails at once and counts as an error
      assert(halo.spawn(latency.Worker, { slowweb = "127.0.0.1:1", request_timeout = 1000 }, { name = "latency_worker" }))
      local out = { types = run("message_types", { filter = "Message" }),
                    sent = run("send_message", { to = "latency_worker", message = { Seq = 7 }, type_name = "MessagePing" }) }
      assert(helper.wait_until(function() return halo.inspect("latency_worker").requests_error == "1" end))
      return out
    end)
    for _, n in ipairs({ "events/MessageEventData", "latency/MessagePing", "messaging/MessageBulkPayload",
                         "messaging/MessagePayload" }) do
      assert.is_truthy(table.concat(r.types.v, " "):find(n, 1, true), n)
    end
    assert.equal("message sent to latency_worker (type: MessagePing, important: false)", r.sent.v)
  end)

  describe("call_process", function()
    it("returns the reply as pretty JSON, by PID or name, with a typed request", function()
      message.define("spec_tools/SpecOrder", { Item = "string" })
      local r = helper.run(function()
        local p = recorder({}, { name = "spec_callee" })
        return {
          by_name = run("call_process", { to = "spec_callee", request = '["x", 2]' }),
          by_pid = run("call_process", { to = p:sub(2, -2), request = "plain" }),
          typed = run("call_process", { to = "spec_callee", request = { Item = "pear" }, type_name = "SpecOrder" }),
        }
      end)
      message.undefine("spec_tools/SpecOrder")
      assert.equal('{\n  "echo": [\n    "x",\n    2\n  ]\n}', r.by_name.v)
      assert.equal('{\n  "echo": "plain"\n}', r.by_pid.v)
      assert.same({ echo = { type = "SpecOrder", Item = "pear" } }, json.decode(r.typed.v))
    end)

    it("waits the given timeout, or 5 s when none was given", function()
      local r = helper.run(function()
        recorder({}, { name = "spec_callee" })
        local t0 = halo.now()
        local given = run("call_process", { to = "spec_callee", request = "never" }, { timeout = 1, timeout_given = true })
        local waited = halo.now() - t0
        -- absent: ctx.timeout (1) is the proxy's, not this call's; a reply after 1.3 s still arrives
        local absent = run("call_process", { to = "spec_callee", request = { sleep = 1300 } },
          { timeout = 1, timeout_given = false })
        return { given = given, waited = waited, absent = absent }
      end, { timeout = 15000 })
      assert.equal("call_process: timed out", r.given.err)
      assert.is_true(r.waited >= 990 and r.waited < 2500, "waited " .. r.waited .. " ms")
      assert.same({ echo = { sleep = 1300 } }, json.decode(r.absent.v))
    end)

    it("answers the reference's error texts", function()
      local r = helper.run(function()
        recorder({}, { name = "spec_callee" })
        return {
          unknown = run("call_process", { to = "no_such_name", request = 1 }),
          gone = run("call_process", { to = "<0.0.999999>", request = 1, important = true }),
          died = run("call_process", { to = "spec_callee", request = "die" }),
          bad_pid = run("call_process", { to = "<1.2", request = 1 }),
          bad_json = run("call_process", { to = "spec_callee", request = "[1," }),
          no_type = run("call_process", { to = "spec_callee", request = {}, type_name = "Nope" }),
        }
      end)
      assert.equal("call_process: unknown process", r.unknown.err)
      assert.equal("call_process: unknown process", r.gone.err)
      assert.equal("call_process: process terminated: boom", r.died.err)
      assert.equal("call_process: incorrect PID format, expected <crc.high.low> (or <crc.name>)", r.bad_pid.err)
      assert.matches("^invalid JSON: .", r.bad_json.err)
      assert.equal("type not found: Nope. Use message_types to list registered types", r.no_type.err)
    end)
  end)

  describe("send_exit", function()
    it("ends the target with the reason (normal by default); a trapping target receives it", function()
      local r = helper.run(function()
        local a, b = recorder({}), recorder({})
        -- the exit comes from the caller; a parent's exit cannot be trapped, so another process spawns this one
        local trapped = {}
        local spawner = assert(halo.spawn({ handle_call = function() return recorder(trapped, { trap_exit = true }) end }))
        local t = halo.call(spawner, "spawn")
        assert(halo.monitor(a))
        assert(halo.monitor(b))
        local out = {
          a = a, b = b, t = t, self = halo.self(),
          custom = run("send_exit", { pid = other_crc(a), reason = "maintenance window" }),
          default = run("send_exit", { pid = b:sub(2, -2) }),
          trap = run("send_exit", { pid = t, reason = "shutdown" }),
        }
        out.down_a = helper.await_down(a)
        out.down_b = helper.await_down(b)
        assert(helper.wait_until(function() return #trapped == 1 end))
        out.trapped, out.t_alive = trapped[1], halo.alive(t)
        halo.kill(t)
        return out
      end)
      assert.equal(("exit signal sent to %s (reason: maintenance window)"):format(r.a), r.custom.v)
      assert.equal(("exit signal sent to %s (reason: normal)"):format(r.b), r.default.v)
      assert.equal(("exit signal sent to %s (reason: shutdown)"):format(r.t), r.trap.v)
      assert.equal("maintenance window", r.down_a.reason)
      assert.equal("normal", r.down_b.reason)
      assert.same({ kind = "exit", pid = r.self, reason = "shutdown" }, r.trapped.msg)
      assert.is_true(r.t_alive)
    end)

    it("answers the reference's error texts", function()
      local r = helper.run(function()
        return { bad = run("send_exit", { pid = "spec_callee" }), missing = run("send_exit", {}),
                 unknown = run("send_exit", { pid = "<0.0.999999>" }),
                 self = run("send_exit", { pid = halo.self() }) }
      end)
      assert.equal("invalid pid: incorrect PID format, expected <crc.high.low>", r.bad.err)
      assert.equal("invalid pid: incorrect PID format, expected <crc.high.low>", r.missing.err)
      assert.equal("send_exit: unknown process", r.unknown.err)
      assert.equal("send_exit: an exit signal may not go to the sender itself, its parent or its leader", r.self.err)
    end)
  end)

  describe("process_kill", function()
    it("kills an idle process and leaves a zombee of one stuck in a callback", function()
      local r = helper.run(function()
        local idle = recorder({})
        local inside = false
        local stuck = assert(halo.spawn({
          handle_message = function()
            inside = true
            halo.sleep(300)
          end,
        }))
        halo.send(stuck, "go")
        assert(helper.wait_until(function() return inside end))
        assert(halo.monitor(idle))
        assert(halo.monitor(stuck))
        local out = { idle = idle, stuck = stuck,
                      k1 = run("process_kill", { pid = idle }), k2 = run("process_kill", { pid = stuck:sub(2, -2) }) }
        out.stuck_state = halo.process_state(stuck)
        out.down_idle, out.down_stuck = helper.await_down(idle), helper.await_down(stuck)
        return out
      end)
      assert.equal(("process %s killed"):format(r.idle), r.k1.v)
      assert.equal(("process %s killed"):format(r.stuck), r.k2.v)
      assert.equal("kill", r.down_idle.reason)
      assert.equal("kill", r.down_stuck.reason)
      assert.equal("zombee", r.stuck_state)
    end)

    it("answers the reference's error texts and spares the calling worker", function()
      local r = helper.run(function()
        return { bad = run("process_kill", { pid = "1.2" }), unknown = run("process_kill", { pid = "<0.0.999999>" }),
                 huge = run("process_kill", { pid = "<0.0.4294967296>" }),
                 self = run("process_kill", { pid = halo.self() }) }
      end)
      assert.equal("invalid pid: incorrect PID format, expected <crc.high.low>", r.bad.err)
      assert.equal("process_kill: unknown process", r.unknown.err)
      assert.equal("invalid pid: incorrect PID format, expected <crc.high.low>", r.huge.err)
      assert.equal("process_kill: not allowed: that is the MCP worker running this call", r.self.err)
    end)

    it("spare the node's system processes (halo_remote, halo_applications, cron: nothing restarts them)", function()
      local r = helper.run(function()
        local sys = assert(halo.spawn({ name = "spec.system", kind = "system", handle_message = function() end }))
        local out = { sys = sys, kill = run("process_kill", { pid = sys }),
                      exit = run("send_exit", { pid = sys, reason = "kill" }),
                      exit_normal = run("send_exit", { pid = sys:sub(2, -2) }),
                      entry = halo.self(), exit_entry = run("send_exit", { pid = halo.self(), reason = "shutdown" }) }
        out.state = halo.process_state(sys)
        halo.kill(sys)
        return out
      end)
      local why = ("not allowed: %s is a system process of the node (spec.system)"):format(r.sys)
      assert.equal("process_kill: " .. why, r.kill.err)
      assert.equal("send_exit: " .. why, r.exit.err)
      assert.equal("send_exit: " .. why, r.exit_normal.err)
      assert.equal("sleep", r.state)
      -- the node's entry: ending it stops the node
      assert.equal(("send_exit: not allowed: %s is the node's entry process (its end stops the node)"):format(r.entry),
        r.exit_entry.err)
    end)
  end)

  describe("log_level_get / log_level_set", function()
    it("read and change the node's and processes' levels by PID, alias and name", function()
      local r = helper.run(function()
        assert(halo.log.remove_logger("default")) -- records are counted, not shown
        local p = assert(halo.spawn({
          init = function(self) self.alias = halo.alias() end,
          handle_call = function(self, _, _, req)
            if req == "alias" then return self.alias end
            halo.log.info("spec info line")
            return true
          end,
        }, nil, { name = "spec_logger" }))
        local alias = halo.call(p, "alias")
        local function logged()
          local before = halo.node_info().LogMessages[3] -- info records
          halo.call(p, "log")
          return halo.node_info().LogMessages[3] - before
        end
        local out = { p = p, alias = alias }
        out.node_get = run("log_level_get")
        out.node_get2 = run("log_level_get", { target = "node" })
        out.node_set = run("log_level_set", { level = "WARNING", target = "" })
        out.node_level = halo.log.level()
        out.pid_set = run("log_level_set", { level = "info", target = p:sub(2, -2) })
        out.pid_get = run("log_level_get", { target = p })
        out.logged_info = logged()
        out.name_set = run("log_level_set", { level = "Error", target = "spec_logger" })
        out.name_get = run("log_level_get", { target = "spec_logger" })
        out.logged_error = logged()
        out.alias_set = run("log_level_set", { level = "debug", target = other_crc(alias:sub(7)):gsub("^", "Alias#") })
        out.alias_get = run("log_level_get", { target = alias })
        out.info_level = halo.process_info(p).LogLevel
        out.disabled = run("log_level_set", { level = "disabled" })
        out.node_level2 = halo.log.level()
        return out
      end)
      assert.equal("node log level: panic", r.node_get.v) -- the spec helper's level
      assert.equal("node log level: panic", r.node_get2.v)
      assert.equal("node log level set to warning", r.node_set.v)
      assert.equal("warning", r.node_level)
      assert.equal(("process %s log level set to info"):format(r.p:sub(2, -2)), r.pid_set.v)
      assert.equal(("process %s log level: info"):format(r.p), r.pid_get.v)
      assert.equal(1, r.logged_info)
      assert.equal(("process spec_logger (%s) log level set to error"):format(r.p), r.name_set.v)
      assert.equal(("process spec_logger (%s) log level: error"):format(r.p), r.name_get.v)
      assert.equal(0, r.logged_error)
      assert.matches("^process Alias#<ABCDEF01%.%d+%.0%.0> %(" .. r.p:gsub("%p", "%%%0") .. "%) log level set to debug$",
        r.alias_set.v)
      assert.equal(("process %s (%s) log level: debug"):format(r.alias, r.p), r.alias_get.v)
      assert.equal("debug", r.info_level)
      assert.equal("node log level set to disabled", r.disabled.v)
      assert.equal("disabled", r.node_level2)
    end)

    it("answer the reference's error texts", function()
      local r = helper.run(function()
        return {
          unresolved = run("log_level_get", { target = "no_such_name" }),
          unresolved_set = run("log_level_set", { level = "info", target = "no_such_name" }),
          pid_get = run("log_level_get", { target = "<0.0.999999>" }),
          pid_set = run("log_level_set", { level = "info", target = "0.0.999999" }),
          alias_get = run("log_level_get", { target = "Alias#<0.999.0.0>" }),
          alias_wide = run("log_level_get", { target = "Alias#<0.18446744073709551616.0.0>" }),
          alias_wide_set = run("log_level_set", { level = "info", target = "Alias#<0.99999999999999999999999.0.0>" }),
          level = run("log_level_set", { level = "verbose", target = "no_such_name" }),
          node_level = halo.log.level(),
        }
      end)
      local unresolved = 'cannot resolve target "no_such_name": not a valid PID, alias, or registered name'
      assert.equal(unresolved, r.unresolved.err)
      assert.equal(unresolved, r.unresolved_set.err)
      assert.equal("log_level_get process <0.0.999999>: unknown process", r.pid_get.err)
      assert.equal("log_level_set process 0.0.999999: unknown process", r.pid_set.err)
      assert.equal("log_level_get process Alias#<0.999.0.0>: unknown alias", r.alias_get.err)
      -- an alias id past 64 bits is no alias (nor a name)
      assert.equal('cannot resolve target "Alias#<0.18446744073709551616.0.0>": not a valid PID, alias, or registered name',
        r.alias_wide.err)
      assert.equal('cannot resolve target "Alias#<0.99999999999999999999999.0.0>": not a valid PID, alias, or '
        .. 'registered name', r.alias_wide_set.err)
      assert.equal("unknown log level: verbose", r.level.err) -- the level is checked first
      assert.equal("panic", r.node_level)
    end)
  end)

  describe("loggers_list", function()
    it("lists the loggers with their levels, an added logger and a subscribed process among them", function()
      local r = helper.run(function()
        local before = run("loggers_list")
        assert(halo.log.add_logger("spec_audit", { levels = { "warning", "error" }, output = "/dev/null" }))
        local sub = assert(halo.spawn({ init = function() assert(halo.log.subscribe({ name = "spec_sub" })) end,
                                        handle_log = function() end }))
        local after = run("loggers_list")
        halo.log.remove_logger("spec_audit")
        halo.kill(sub)
        return { before = before, after = after }
      end)
      assert.equal(json.ARRAY, getmetatable(r.before.v))
      local names = {}
      for _, l in ipairs(r.before.v) do names[l.name] = true end
      assert.is_nil(names.spec_audit)
      local by = {}
      for _, l in ipairs(r.after.v) do by[l.name] = l end
      assert.same({ name = "spec_audit", levels = { "warning", "error" } }, by.spec_audit)
      assert.same({ "trace", "debug", "info", "warning", "error", "panic" }, by.spec_sub.levels)
      assert.matches('"levels": %[\n', json.encode(r.after.v, true))
    end)
  end)
end)
