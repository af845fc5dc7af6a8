-- The process, application and event tool files of mcp_tools/, loaded with
-- loadfile as the MCP server loads them and called inside a real node.
local halo = require("halo")
local json = require("halo.json")
local helper = require("helper")

local tools = {}
for _, file in ipairs({ "process", "application", "event" }) do
  for _, t in ipairs(assert(loadfile("mcp_tools/" .. file .. ".lua"))()) do tools[t.name] = t end
end

-- Calls a tool's handler as the server does: the value or nil, err, and the
-- result text (a string verbatim, anything else pretty JSON).
local function call(name, args)
  local t = assert(tools[name], name)
  local v, err = t.handler(args or {}, { tool = name, node = halo.node_info().Name, pid = halo.self(), timeout = 30 })
  if v == nil then return nil, err end
  return v, type(v) == "string" and v or json.encode(v, true)
end

local function pids(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.PID end
  return out
end

local function has(rows, pid)
  for _, r in ipairs(rows) do if r.PID == pid then return true end end
  return false
end

-- init sleeps args.init_ms; {"out", n} sends n messages to args.sink;
-- "hold" parks it in its callback until args.gate.open; "call" calls args.sink.
local worker = {
  init = function(self, args)
    self.args = args or {}
    if self.args.init_ms then halo.sleep(self.args.init_ms) end
  end,
  handle_message = function(self, _, msg)
    if msg == "hold" then
      self.args.gate.held = true
      while not self.args.gate.open do halo.sleep(2) end
    elseif msg == "call" then
      halo.call(self.args.sink, "never", 2000)
    elseif type(msg) == "table" and msg[1] == "out" then
      for _ = 1, msg[2] do halo.send(self.args.sink, "x") end
    end
  end,
  handle_call = function() end, -- never replies
  handle_inspect = function(_, _, items) return { answer = "42", items = table.concat(items, ",") } end,
}
local idle = { handle_message = function() end, handle_call = function() end }

describe("mcp_tools: every tool declares a schema and a description", function()
  it("names, descriptions, schemas", function()
    local names = {}
    for name, t in pairs(tools) do
      names[#names + 1] = name
      assert.is_string(t.description)
      assert.truthy(#t.description > 40, name)
      assert.equal("object", t.inputSchema.type)
      assert.is_nil(t.inputSchema.properties.node)
      assert.is_nil(t.inputSchema.properties.timeout)
      -- the schema encodes with lists as lists
      local text = json.encode(t.inputSchema)
      assert.falsy(text:find('"required":{', 1, true), name)
    end
    table.sort(names)
    assert.same({ "app_info", "app_list", "app_processes", "event_info", "event_list", "meta_inspect",
                  "process_children", "process_info", "process_inspect", "process_list", "process_lookup",
                  "process_state" }, names)
  end)
end)

describe("mcp_tools process_list", function()
  it("applies each filter and answers [] when nothing matches", function()
    local r = helper.run(function()
      local sink = assert(halo.spawn(idle, nil, { behavior = "tp.sink" }))
      local gate = {}
      local slow = assert(halo.spawn(worker, { sink = sink, init_ms = 30, gate = gate },
        { name = "tp_slow", behavior = "tp.worker", application = "tpapp" }))
      local talker = assert(halo.spawn(worker, { sink = sink, gate = gate },
        { name = "tp_talker", behavior = "tp.worker", application = "tpapp2" }))
      local caller = assert(halo.spawn(worker, { sink = sink, gate = gate }, { behavior = "tp.caller" }))
      halo.send(talker, { "out", 3 })
      halo.send(caller, "call")
      halo.send(slow, "hold")
      assert(helper.wait_until(function() return gate.held and halo.process_state(caller) == "wait response" end))
      halo.send(slow, "queued")
      halo.send(slow, "queued")
      halo.send(talker, { "out", 0 }) -- one wakeup more than the others
      assert(helper.wait_until(function()
        local t = halo.process_info(talker)
        return t.MessagesIn == 2 and t.State == "sleep"
      end))
      local out = {}
      local function q(args) return (call("process_list", args)) end
      out.app = pids(q({ application = "tpapp" }))
      out.app_prefix = pids(q({ application = "tpap" }))
      out.behavior = pids(q({ behavior = "tp.work" }))
      out.behavior_case = pids(q({ behavior = "TP.WORK" }))
      out.name = pids(q({ name = "tp_" }))
      out.wait_space = pids(q({ state = "wait response" }))
      out.wait_underscore = pids(q({ state = "wait_response" }))
      out.wait_case = pids(q({ state = "Wait_Response" }))
      out.running = pids(q({ state = "running", behavior = "tp." }))
      out.sleep = pids(q({ state = "sleep", behavior = "tp." }))
      out.min_mailbox = pids(q({ min_mailbox = 2, behavior = "tp." }))
      out.min_latency = pids(q({ min_mailbox_latency_ms = 0.001, behavior = "tp." }))
      out.min_in = pids(q({ min_messages_in = 4, behavior = "tp." })) -- 3 sends and a call
      out.min_out = pids(q({ min_messages_out = 3, behavior = "tp." }))
      out.min_init = pids(q({ min_init_time_ms = 20, behavior = "tp." }))
      out.min_running = pids(q({ min_running_time_ms = 20, behavior = "tp." }))
      -- the most wakeups among them: exactly the rows with that many
      local most, want = 0, {}
      for _, row in ipairs(q({ behavior = "tp." })) do most = math.max(most, row.Wakeups) end
      for _, row in ipairs(q({ behavior = "tp." })) do
        if row.Wakeups == most then want[#want + 1] = row.PID end
      end
      out.min_wakeups, out.most_wakeups = pids(q({ min_wakeups = most, behavior = "tp." })), want
      out.zero_is_off = #q({ behavior = "tp.", min_mailbox = 0, min_uptime = 0, max_uptime = 0, min_wakeups = -1 })
      out.null_is_absent = #q({ behavior = "tp.", state = json.null, application = "" })
      out.combined = pids(q({ behavior = "tp.worker", state = "sleep", name = "talker", min_messages_out = 1 }))
      local none, none_text = call("process_list", { behavior = "no such behavior" })
      out.none, out.none_text = #none, none_text
      out.bad_state = { call("process_list", { state = "waiting" }) }
      gate.open = true
      out.slow, out.talker, out.caller, out.sink = slow, talker, caller, sink
      return out
    end)
    assert.same({ r.slow }, r.app)
    assert.same({}, r.app_prefix)
    assert.same({ r.slow, r.talker }, r.behavior)
    assert.same({}, r.behavior_case)
    assert.same({ r.slow, r.talker }, r.name)
    assert.same({ r.caller }, r.wait_space)
    assert.same({ r.caller }, r.wait_underscore)
    assert.same({ r.caller }, r.wait_case)
    assert.same({ r.slow }, r.running)
    assert.same({ r.sink, r.talker }, r.sleep)
    assert.same({ r.slow }, r.min_mailbox)
    assert.same({ r.slow }, r.min_latency)
    assert.same({ r.sink }, r.min_in)
    assert.same({ r.talker }, r.min_out)
    assert.same({ r.slow }, r.min_init)
    assert.same({ r.slow }, r.min_running)
    assert.same(r.most_wakeups, r.min_wakeups)
    assert.truthy(#r.min_wakeups < 4)
    assert.equal(4, r.zero_is_off)
    assert.equal(4, r.null_is_absent)
    assert.same({ r.talker }, r.combined)
    assert.equal(0, r.none)
    assert.equal("[]", r.none_text)
    assert.is_nil(r.bad_state[1])
    assert.equal("unknown process state 'waiting' (init, sleep, running, wait response, terminated, zombee)",
      r.bad_state[2])
  end)

  it("sorts descending by every key and cuts to limit", function()
    local r = helper.run(function()
      local sink = assert(halo.spawn(idle, nil, { behavior = "tp.sink" }))
      for i = 1, 6 do
        local w = assert(halo.spawn(worker, { sink = sink, init_ms = i % 3 }, { behavior = "tp.sorted" }))
        for _ = 1, i % 4 do halo.send(w, { "out", i }) end
      end
      assert(helper.wait_until(function()
        return #halo.process_list({ behavior = "tp.sorted", min = { mailbox = 1 } }) == 0
      end))
      local fields = { mailbox = "MessagesMailbox", mailbox_latency = "MailboxLatency", running_time = "RunningTime",
                       init_time = "InitTime", wakeups = "Wakeups", uptime = "Uptime", messages_in = "MessagesIn",
                       messages_out = "MessagesOut", drain = "Drain" }
      local out = { bad = {} }
      for key, field in pairs(fields) do
        local all = call("process_list", { behavior = "tp.", sort_by = key, limit = 0 })
        local top = call("process_list", { behavior = "tp.", sort_by = key, limit = 3 })
        for i = 2, #all do
          if all[i - 1][field] < all[i][field] then out.bad[#out.bad + 1] = key .. " not descending" end
        end
        if #all ~= 7 or #top ~= 3 then out.bad[#out.bad + 1] = key .. " count " .. #all .. "/" .. #top end
        for i = 1, 3 do
          if top[i][field] ~= all[i][field] then out.bad[#out.bad + 1] = key .. " top differs" end
        end
      end
      local by_out = call("process_list", { behavior = "tp.", sort_by = "messages_out", limit = 1 })
      out.top_out = by_out[1].MessagesOut
      return out
    end)
    assert.same({}, r.bad)
    assert.equal(12, r.top_out) -- worker 6 sent 2 x 6
  end)
end)

describe("mcp_tools process_list limits and uptime", function()
  it("limit absent is 100, 0 or negative is no limit; min_uptime and max_uptime", function()
    local r = helper.run(function()
      local old = assert(halo.spawn(idle, nil, { behavior = "tp.old" }))
      assert(helper.wait_until(function() return halo.process_info(old).Uptime >= 2 end, 3000, 20))
      for _ = 1, 110 do assert(halo.spawn(idle, nil, { behavior = "tp.many" })) end
      local total = halo.node_info().ProcessesTotal
      return {
        total = total, old = old,
        default = #call("process_list", {}),
        zero = #call("process_list", { limit = 0 }),
        negative = #call("process_list", { limit = -1 }),
        huge = #call("process_list", { limit = 2 ^ 64 }),
        huger = #call("process_list", { limit = 1e300, sort_by = "uptime" }),
        five = #call("process_list", { limit = 5 }),
        five_sorted = #call("process_list", { limit = 5, sort_by = "uptime" }),
        oldest = call("process_list", { limit = 1, sort_by = "uptime", behavior = "tp." })[1].PID,
        min_uptime = pids(call("process_list", { min_uptime = 2, behavior = "tp." })),
        max_uptime = #call("process_list", { max_uptime = 1, behavior = "tp.", limit = 0 }),
      }
    end)
    assert.truthy(r.total > 111)
    assert.equal(100, r.default)
    assert.equal(r.total, r.zero)
    assert.equal(r.total, r.negative)
    assert.equal(r.total, r.huge) -- past size_t: no limit
    assert.equal(r.total, r.huger)
    assert.equal(5, r.five)
    assert.equal(5, r.five_sorted)
    assert.equal(r.old, r.oldest)
    assert.same({ r.old }, r.min_uptime)
    assert.equal(110, r.max_uptime) -- the fresh ones, not the old one
  end)
end)

describe("mcp_tools process tools on one process", function()
  it("process_children, process_info, process_state, process_lookup", function()
    local r = helper.run(function()
      local tree = {
        init = function(self, depth)
          self.kids = {}
          for i = 1, depth > 0 and 2 or 0 do self.kids[i] = assert(halo.spawn("tp_tree_behavior", depth - 1)) end
        end,
        handle_call = function(self) return self.kids end,
      }
      package.loaded.tp_tree_behavior = tree
      local root = assert(halo.spawn(tree, 2, { name = "tp_root" }))
      local kids = halo.call(root, "kids")
      local out = { root = root, kids = kids }
      out.direct = pids(call("process_children", { parent = "tp_root" }))
      out.by_pid = pids(call("process_children", { parent = root:sub(2, -2) })) -- no brackets
      out.recursive = #call("process_children", { parent = root, recursive = true })
      out.level2 = call("process_children", { parent = root, recursive = true })[3].Parent
      out.leaf = { call("process_children", { parent = halo.call(kids[1], "kids")[1] }) }
      out.unknown = { call("process_children", { parent = "tp_nobody" }) }
      -- info
      local info, text = call("process_info", { pid = root })
      out.info_name, out.info_text = info.Name, text
      out.info_foreign_crc = call("process_info", { pid = "<0.0." .. root:match("(%d+)>$") .. ">" }).PID
      out.info_bad = { call("process_info", { pid = "abc" }) }
      out.info_two_parts = { call("process_info", { pid = "<1.2>" }) }
      out.info_unknown = { call("process_info", { pid = "<0.0.999999>" }) }
      -- state
      local callee = assert(halo.spawn(idle))
      local waiter = assert(halo.spawn(worker, { sink = callee }))
      halo.send(waiter, "call")
      assert(helper.wait_until(function() return halo.process_state(waiter) == "wait response" end))
      out.state_sleep = { call("process_state", { pid = root }) }
      out.state_wait = { call("process_state", { pid = waiter }) }
      out.state_unknown = { call("process_state", { pid = "<0.0.999999>" }) }
      out.state_bad = { call("process_state", { pid = "" }) }
      -- lookup
      out.lookup_name = { call("process_lookup", { name = "tp_root" }) }
      out.lookup_pid = { call("process_lookup", { pid = root }) }
      out.lookup_unnamed = { call("process_lookup", { pid = callee }) }
      out.lookup_both = { call("process_lookup", { pid = callee, name = "tp_root" }) }
      out.lookup_neither = { call("process_lookup", {}) }
      out.lookup_bad_name = { call("process_lookup", { name = "tp_nobody" }) }
      out.lookup_bad_pid = { call("process_lookup", { pid = "<0.0.999999>" }) }
      out.lookup_malformed = { call("process_lookup", { pid = "x.y.z" }) }
      out.callee, out.waiter = callee, waiter
      return out
    end)
    assert.same(r.kids, r.direct)
    assert.same(r.kids, r.by_pid)
    assert.equal(6, r.recursive)
    assert.equal(r.kids[1], r.level2)
    assert.same({}, r.leaf[1])
    assert.equal("[]", r.leaf[2])
    assert.same({ nil, 'cannot resolve parent "tp_nobody": unknown process' }, r.unknown)
    assert.equal("tp_root", r.info_name)
    assert.truthy(r.info_text:find('\n  "Aliases": [],\n', 1, true))
    assert.truthy(r.info_text:find('\n  "MailboxQueues": {\n', 1, true))
    assert.equal(r.root, r.info_foreign_crc)
    assert.same({ nil, "invalid pid: incorrect PID format, expected <crc.high.low>" }, r.info_bad)
    assert.same({ nil, "invalid pid: incorrect PID format, expected <crc.high.low>" }, r.info_two_parts)
    assert.same({ nil, "process_info: unknown process" }, r.info_unknown)
    assert.same({ "sleep", "sleep" }, r.state_sleep)
    assert.same({ "wait response", "wait response" }, r.state_wait)
    assert.same({ nil, "process_state: unknown process" }, r.state_unknown)
    assert.same({ nil, "invalid pid: incorrect PID format, expected <crc.high.low>" }, r.state_bad)
    assert.same({ r.root, r.root }, r.lookup_name)
    assert.same({ "tp_root", "tp_root" }, r.lookup_pid)
    assert.same({ "", "" }, r.lookup_unnamed)
    assert.same({ r.root, r.root }, r.lookup_both)
    assert.same({ nil, "either 'name' or 'pid' parameter is required" }, r.lookup_neither)
    assert.same({ nil, "process_lookup by name: unknown process" }, r.lookup_bad_name)
    assert.same({ nil, "process_lookup by pid: unknown process" }, r.lookup_bad_pid)
    assert.same({ nil, "invalid pid: incorrect PID format, expected <crc.high.low>" }, r.lookup_malformed)
  end)

  it("process_inspect and meta_inspect: behaviors, pools, supervisors, aliases", function()
    local r = helper.run(function()
      local w = assert(halo.spawn(worker, {}))
      local fn = assert(halo.spawn(function() halo.receive(3000) end))
      local pool = assert(halo.pool.start({ size = 2, worker = idle }, { name = "tp_pool" }))
      local sup = assert(halo.supervisor.start({ strategy = "one_for_one",
        children = { { name = "tp_child", behavior = idle } } }, { name = "tp_sup" }))
      local holder = assert(halo.spawn({
        init = function(self) self.alias = halo.alias() end,
        handle_call = function(self) return self.alias end,
        handle_inspect = function() return { meta = "yes" } end,
      }))
      local alias = halo.call(holder, "alias")
      local out = { alias = alias }
      -- the framework's own processes answer their figures
      assert(halo.cron.add("tp_job", "@every 1h", function() end))
      assert(halo.application.load({ name = "tp_app", group = { { behavior = idle } } }))
      assert(halo.application.start("tp_app"))
      local srv = assert(require("halo.http").serve({ port = 0, routes = { ["/x"] = function() return "x" end } }))
      assert(halo.http.get("http://127.0.0.1:" .. srv.port .. "/x"))
      out.cron = call("process_inspect", { pid = halo.whereis("halo_cron") })
      out.apps = call("process_inspect", { pid = halo.whereis("halo_applications") })
      out.http = call("process_inspect", { pid = srv.pid })
      out.port = srv.port
      srv:close()
      halo.application.stop("tp_app")
      halo.cron.remove("tp_job")
      out.worker = { call("process_inspect", { pid = w, items = { "a", "b" } }) }
      out.fn = { call("process_inspect", { pid = fn }) }
      out.pool = call("process_inspect", { pid = pool })
      out.sup = call("process_inspect", { pid = sup })
      out.unknown = { call("process_inspect", { pid = "<0.0.999999>" }) }
      out.bad = { call("process_inspect", { pid = "1.2.3.4" }) }
      out.meta = { call("meta_inspect", { alias = alias }) }
      out.meta_bare = call("meta_inspect", { alias = alias:match("^Alias#<(.*)>$") })
      out.meta_unknown = { call("meta_inspect", { alias = "Alias#<0.999999.0.0>" }) }
      out.meta_bad = { call("meta_inspect", { alias = "<0.1.2>" }) }
      out.meta_max = { call("meta_inspect", { alias = "Alias#<0.18446744073709551615.0.0>" }) }
      out.meta_wide = { call("meta_inspect", { alias = "Alias#<0.18446744073709551616.0.0>" }) }
      out.meta_wider = { call("meta_inspect", { alias = "Alias#<0.99999999999999999999.0.0>" }) }
      local odd = assert(halo.spawn({ handle_inspect = function() return "just text" end }))
      out.odd = { call("process_inspect", { pid = odd }) }
      halo.kill(odd)
      halo.send(fn, "done")
      halo.supervisor.stop(sup)
      return out
    end)
    assert.same({ answer = "42", items = "a,b" }, r.worker[1])
    assert.equal('{\n  "answer": "42",\n  "items": "a,b"\n}', r.worker[2])
    assert.equal("{}", r.fn[2])
    for _, k in ipairs({ "pool_size", "worker_behavior", "worker_mailbox_size", "worker_restarts",
                         "messages_forwarded", "messages_unhandled" }) do
      assert.is_string(r.pool[k], k)
    end
    assert.equal("2", r.pool.pool_size)
    for _, k in ipairs({ "type", "strategy", "intensity", "period", "restarts_count" }) do
      assert.is_string(r.sup[k], k)
    end
    assert.equal("1", r.cron.jobs_total)
    assert.equal("0", r.cron.jobs_running)
    assert.equal("tp_job", r.cron.next_jobs)
    assert.truthy(r.cron.next_run:find("^%d%d%d%d%-%d%d%-%d%dT"))
    assert.same({ applications_total = "1", applications_loaded = "0", applications_running = "1",
                  applications_stopping = "0" }, r.apps)
    assert.equal("1", r.http.requests)
    assert.equal("127.0.0.1:" .. r.port, r.http.address)
    assert.same({ nil, "process_inspect: unknown process" }, r.unknown)
    assert.same({ nil, "invalid pid: incorrect PID format, expected <crc.high.low>" }, r.bad)
    assert.same({ meta = "yes" }, r.meta[1])
    assert.same({ meta = "yes" }, r.meta_bare)
    assert.same({ nil, "meta_inspect: unknown alias" }, r.meta_unknown)
    assert.same({ nil, "invalid alias: incorrect Alias format, expected <crc.id0.id1.id2>" }, r.meta_bad)
    assert.same({ nil, "meta_inspect: unknown alias" }, r.meta_max) -- the largest 64-bit id
    assert.same({ nil, "invalid alias: incorrect Alias format, expected <crc.id0.id1.id2>" }, r.meta_wide)
    assert.same({ nil, "invalid alias: incorrect Alias format, expected <crc.id0.id1.id2>" }, r.meta_wider)
    assert.same({ nil, "process_inspect: handle_inspect answered a string, not a map" }, r.odd)
  end)
end)

describe("mcp_tools process_inspect on a networked node", function()
  it("the remote service answers its figures", function()
    local r = helper.run(function()
      return call("process_inspect", { pid = halo.whereis("halo_remote") })
    end, { name = "tp@localhost", listen = "127.0.0.1:0", registrar = "none" })
    assert.same({ remote_subscribers = "0", remote_subscriptions = "0" }, r)
  end)
end)

describe("mcp_tools application tools", function()
  it("app_list filters, app_info, app_processes and their errors", function()
    local r = helper.run(function()
      local member = { init = function(self) self.kid = assert(halo.spawn(idle)) end, handle_message = function() end }
      assert(halo.application.load({ name = "tp_shop", description = "the shop", version = "2.1.0", mode = "transient",
        weight = 3, tags = { "web" }, group = { { behavior = member, name = "tp_shop_a" } } }))
      assert(halo.application.load({ name = "tp_idle", group = { { behavior = idle } } }))
      assert(halo.application.start("tp_shop"))
      local out = {}
      local function names(rows)
        local t = {}
        for i, row in ipairs(rows) do t[i] = row.name end
        table.sort(t)
        return t
      end
      out.all = call("app_list", {})
      out.running = names(call("app_list", { state = "RUNNING" }))
      out.loaded = names(call("app_list", { state = "loaded" }))
      out.stopped = { call("app_list", { state = "stopped" }) }
      out.stopping = names(call("app_list", { state = "stopping" }))
      out.mode = names(call("app_list", { mode = "Transient" }))
      out.name = names(call("app_list", { name = "idle" }))
      out.min_uptime = names(call("app_list", { min_uptime = 1000 }))
      out.min_uptime_off = names(call("app_list", { min_uptime = 0, name = "tp_" }))
      out.bad_state = { call("app_list", { state = "dead" }) }
      out.bad_mode = { call("app_list", { mode = "eternal" }) }
      out.info = { call("app_info", { name = "tp_shop" }) }
      out.info_idle = { call("app_info", { name = "tp_idle" }) }
      out.info_unknown = { call("app_info", { name = "tp_nothing" }) }
      out.procs = call("app_processes", { name = "tp_shop" })
      out.procs_limit = #call("app_processes", { name = "tp_shop", limit = 1 })
      out.procs_limit0 = #call("app_processes", { name = "tp_shop", limit = 0 })
      out.procs_loaded = { call("app_processes", { name = "tp_idle" }) }
      out.procs_unknown = { call("app_processes", { name = "tp_nothing" }) }
      assert(halo.application.stop("tp_shop"))
      return out
    end)
    local shop
    for _, row in ipairs(r.all) do if row.name == "tp_shop" then shop = row end end
    assert.same({ name = "tp_shop", state = "running", mode = "transient", description = "the shop",
                  version = "2.1.0", uptime = 0, weight = 3, tags = { "web" }, processes = 1 }, shop)
    assert.same({ "tp_shop" }, r.running)
    assert.same({ "tp_idle" }, r.loaded)
    assert.same({ {}, "[]" }, r.stopped)
    assert.same({}, r.stopping)
    assert.same({ "tp_shop" }, r.mode)
    assert.same({ "tp_idle" }, r.name)
    assert.same({}, r.min_uptime)
    assert.same({ "tp_idle", "tp_shop" }, r.min_uptime_off)
    assert.is_nil(r.bad_state[1])
    assert.truthy(r.bad_state[2]:find("unknown application state 'dead' (loaded, running, stopping)", 1, true))
    assert.truthy(r.bad_mode[2]:find("unknown application mode 'eternal'", 1, true))
    local info, text = r.info[1], r.info[2]
    assert.equal("running", info.State)
    assert.same({ Name = "tp_shop", Release = "2.1.0", Commit = "", License = "" }, info.Version)
    assert.equal(1, #info.Group)
    assert.truthy(text:find('"Tags": [\n    "web"\n  ]', 1, true))
    local idle_text = r.info_idle[2]
    assert.truthy(idle_text:find('"Group": []', 1, true), idle_text)
    assert.truthy(idle_text:find('"Tags": []', 1, true))
    assert.truthy(idle_text:find('"Env": {}', 1, true))
    assert.truthy(idle_text:find('"Applications": []', 1, true))
    assert.same({ nil, "app_info: unknown application: tp_nothing" }, r.info_unknown)
    assert.equal(2, #r.procs) -- the member and the process it spawned
    assert.equal(1, r.procs_limit)
    assert.equal(2, r.procs_limit0)
    assert.same({ nil, "app_processes: application tp_idle is not running" }, r.procs_loaded)
    assert.same({ nil, "app_processes: unknown application: tp_nothing" }, r.procs_unknown)
  end)
end)

describe("mcp_tools event tools", function()
  it("event_list filters, sorts and limits; event_info", function()
    local r = helper.run(function()
      local producer = assert(halo.spawn({
        init = function()
          assert(halo.event.register("tp_active", { buffer = 2 }))
          assert(halo.event.register("tp_demand", { notify = true }))
          assert(halo.event.register("tp_idle", {}))
          assert(halo.event.register("tp_lonely", {}))
          assert(halo.event.register("tp_quiet", {}))
        end,
        handle_call = function(_, _, _, req)
          for _ = 1, req.n do assert(halo.event.publish(req.event, "m")) end
          return true
        end,
        handle_message = function() end,
      }, nil, { name = "tp_producer" }))
      local subscriber = assert(halo.spawn({
        init = function()
          halo.event.monitor("tp_active")
          halo.event.monitor("tp_quiet")
        end,
        handle_event = function() end,
      }))
      halo.call(producer, { event = "tp_active", n = 3 })
      halo.call(producer, { event = "tp_lonely", n = 5 })
      local function names(rows)
        local t = {}
        for i, row in ipairs(rows) do t[i] = row.Name end
        return t
      end
      local function q(args)
        args.name = args.name or "tp_"
        return names((call("event_list", args)))
      end
      local out = { producer = producer, subscriber = subscriber }
      for _, s in ipairs({ "active", "on_demand", "idle", "no_subscribers", "no_publishing" }) do
        out[s] = q({ utilization_state = s })
      end
      out.notify = q({ notify = true })
      out.no_notify = #q({ notify = false })
      out.buffer = q({ has_buffer = true })
      out.min_subs = q({ min_subscribers = 1, sort_by = "published" })
      out.max_subs0 = #q({ max_subscribers = 0 })
      out.min_pub = q({ min_published = 4 })
      out.max_pub0 = #q({ max_published = 0 })
      out.local_sent = q({ min_local_sent = 1 })
      out.remote_sent = q({ min_remote_sent = 1 })
      out.by_published = q({ sort_by = "published", limit = 2 })
      out.by_subscribers = q({ sort_by = "subscribers", limit = 0 })
      out.limit1 = #q({ limit = 1 })
      out.limit_neg = #q({ limit = -5 })
      out.producer_name = #q({ producer = "tp_prod" })
      out.producer_pid = #q({ producer = producer })
      out.producer_none = #q({ producer = "nobody" })
      local none, none_text = call("event_list", { name = "no such event" })
      out.none = { #none, none_text }
      out.info = { call("event_info", { name = "tp_active" }) }
      out.info_unknown = { call("event_info", { name = "tp_nothing" }) }
      out.owned = call("process_info", { pid = producer }).Events
      table.sort(out.owned)
      out.owned_none = select(2, call("process_info", { pid = subscriber }))
      return out
    end)
    assert.same({ "tp_active" }, r.active)
    assert.same({ "tp_demand" }, r.on_demand)
    assert.same({ "tp_idle" }, r.idle)
    assert.same({ "tp_lonely" }, r.no_subscribers)
    assert.same({ "tp_quiet" }, r.no_publishing)
    assert.same({ "tp_demand" }, r.notify)
    assert.equal(4, r.no_notify)
    assert.same({ "tp_active" }, r.buffer)
    assert.same({ "tp_active", "tp_quiet" }, r.min_subs)
    assert.equal(3, r.max_subs0)
    assert.same({ "tp_lonely" }, r.min_pub)
    assert.equal(3, r.max_pub0)
    assert.same({ "tp_active" }, r.local_sent)
    assert.same({}, r.remote_sent)
    assert.same({ "tp_lonely", "tp_active" }, r.by_published)
    assert.same({ "tp_active", "tp_quiet" }, { r.by_subscribers[1], r.by_subscribers[2] })
    assert.equal(5, #r.by_subscribers)
    assert.equal(1, r.limit1)
    assert.equal(5, r.limit_neg)
    assert.equal(5, r.producer_name)
    assert.equal(5, r.producer_pid)
    assert.equal(0, r.producer_none)
    assert.same({ 0, "[]" }, r.none)
    local info, text = r.info[1], r.info[2]
    assert.equal(3, info.MessagesPublished)
    assert.equal("active", info.UtilizationState)
    assert.equal(r.producer, info.Producer)
    assert.truthy(text:find('"Event": "Event#<%x+:tp_active>"'))
    -- unix ns: integers in the text (the reference's int64), never 1.79e+18
    assert.truthy(text:find('"CreatedAt": %d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d,'), text)
    assert.truthy(text:find('"LastPublishedAt": %d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d,'), text)
    assert.same({ nil, "event_info: unknown event" }, r.info_unknown)
    assert.same({ "tp_active", "tp_demand", "tp_idle", "tp_lonely", "tp_quiet" }, r.owned)
    assert.truthy(r.owned_none:find('"Events": []', 1, true))
  end)
end)

describe("mcp_tools fixtures spec/mcp/calls (process, application, event)", function()
  -- What a test node of spec/mcp/node.lua runs, as far as these fixtures look at it.
  local function test_node()
    local Echo = { handle_call = function(_, _, _, req) return { echo = req } end, handle_message = function() end,
                   handle_inspect = function() return { answer = "42" } end }
    local echo = assert(halo.spawn(Echo, nil, { name = "mcp_test_echo" }))
    local producer = assert(halo.spawn({
      init = function() assert(halo.event.register("mcp_test_event")) end,
      handle_call = function() return halo.event.publish("mcp_test_event", 1) end,
    }, nil, { name = "mcp_test_producer" }))
    assert(halo.spawn({ init = function() assert(halo.event.monitor("mcp_test_event")) end,
                        handle_event = function() end }, nil, { name = "mcp_test_subscriber" }))
    halo.call(producer, "publish")
    assert(halo.application.load({ name = "mcp_test_app", mode = "temporary",
      group = { { name = "mcp_test_sup", behavior = halo.supervisor.behavior, args = { strategy = "one_for_one",
        children = { { name = "mcp_test_worker", behavior = idle, restart = "permanent" } } } } } }))
    assert(halo.application.start("mcp_test_app"))
    return echo
  end

  local function resolve(v, pid)
    if type(v) == "string" then
      return (v:gsub("%$PID", function() return pid end):gsub("%$NAME", "mcp_test_echo"))
    end
    if type(v) == "table" then
      local out = {}
      for k, x in pairs(v) do out[k] = resolve(x, pid) end
      return out
    end
    return v
  end

  it("every entry gets the answer it expects (isError, JSON kind, fields, nonempty)", function()
    local entries = {}
    for _, group in ipairs({ "process", "application", "event" }) do
      local f = assert(io.open("spec/mcp/calls/" .. group .. ".json"))
      for _, e in ipairs(json.decode(f:read("*a"))) do entries[#entries + 1] = e end
      f:close()
    end
    local r = helper.run(function()
      local pid = test_node()
      local problems, seen, texts = {}, {}, {}
      for i, e in ipairs(entries) do
        local v, text = call(e.tool, resolve(e.args, pid))
        local what = ("#%d %s %s"):format(i, e.tool, json.encode(e.args))
        local ex = e.expect
        texts[#texts + 1] = { re = ex.text and resolve(ex.text, pid:gsub("%p", "\\%0")), text = text, what = what }
        if not ex.isError then seen[e.tool] = "ok" else seen[e.tool] = seen[e.tool] or "error only" end
        if (v == nil) ~= (ex.isError == true) then
          problems[#problems + 1] = what .. ": isError " .. tostring(v == nil) .. " " .. tostring(text)
        elseif ex.json then
          local doc = json.decode(text)
          local is_array = text:sub(1, 1) == "["
          if (ex.json == "array") ~= is_array then problems[#problems + 1] = what .. ": not " .. ex.json end
          if ex.nonempty and #doc == 0 then problems[#problems + 1] = what .. ": empty" end
          for _, row in ipairs(is_array and doc or { doc }) do
            for _, k in ipairs(ex.fields or {}) do
              if row[k] == nil then problems[#problems + 1] = what .. ": no field " .. k end
            end
          end
        end
      end
      halo.application.stop("mcp_test_app")
      return { problems = problems, seen = seen, texts = texts }
    end)
    -- expect.text is a JavaScript regex: checked with node when the machine has it
    if os.execute("command -v node >/dev/null 2>&1") == 0 then
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write(json.encode(r.texts))
      f:close()
      local p = io.popen("node -e 'const t = JSON.parse(require(\"fs\").readFileSync(process.argv[1]));" ..
        " for (const e of t) if (e.re && !new RegExp(e.re).test(e.text))" ..
        " console.log(e.what + \" /\" + e.re + \"/\");" ..
        " console.log(\"checked \" + t.length)' " .. path)
      local out = p:read("*a")
      p:close()
      os.remove(path)
      assert.equal("checked " .. #r.texts .. "\n", out)
    end
    assert.same({}, r.problems)
    for name in pairs(tools) do
      assert.truthy(r.seen[name], name .. " has no fixture")
      if name ~= "meta_inspect" then assert.equal("ok", r.seen[name], name .. " has no success fixture") end
    end
  end)
end)

describe("mcp_tools process, application and event tools through the MCP server", function()
  it("are listed in the reference's order and answer over HTTP, failures as isError", function()
    local port = helper.free_ports(1)
    local r = helper.run(function()
      local http = require("halo.http")
      local url, sid, id = ("http://127.0.0.1:%d/mcp"):format(port), nil, 0
      local function rpc(method, params)
        id = id + 1
        local res = assert(http.request({ url = url, method = "POST", content_type = "application/json",
          headers = { accept = "application/json, text/event-stream", ["mcp-session-id"] = sid },
          body = json.encode({ jsonrpc = "2.0", id = id, method = method, params = params }), timeout = 10000 }))
        sid = sid or res.headers["mcp-session-id"]
        return json.decode(res.body)
      end
      rpc("initialize", { protocolVersion = "2025-11-25", capabilities = json.object(),
                          clientInfo = { name = "spec", version = "1" } })
      local out = { names = {} }
      for _, t in ipairs(rpc("tools/list").result.tools) do
        if tools[t.name] then out.names[#out.names + 1] = t.name end
      end
      local function tool(name, args)
        local res = rpc("tools/call", { name = name, arguments = args or json.object() })
        return res.result and { res.result.isError == true, res.result.content[1].text } or { "rpc", res.error.message }
      end
      out.list = tool("process_list", { behavior = "no such behavior", state = "wait_response", limit = 0 })
      out.state = tool("process_state", { pid = halo.self() })
      out.unknown = tool("process_state", { pid = "<0.0.999999>" })
      out.bad_type = tool("process_list", { limit = "10" })
      out.bad_sort = tool("process_list", { sort_by = "size" })
      out.missing = tool("process_info", {})
      out.null = tool("event_list", { name = "no such event", notify = json.null })
      out.app = tool("app_info", { name = "mcp" })
      return out
    end, { mcp = { port = port, dir = "mcp_tools" }, timeout = 20000 })
    assert.same({ "process_list", "process_children", "process_info", "process_state", "process_lookup",
                  "process_inspect", "meta_inspect", "app_list", "app_info", "app_processes", "event_list",
                  "event_info" }, r.names)
    assert.same({ false, "[]" }, r.list)
    assert.same({ false, "wait response" }, r.state) -- the caller waits on its HTTP request
    assert.same({ true, "process_state: unknown process" }, r.unknown)
    assert.equal("rpc", r.bad_type[1])
    assert.truthy(r.bad_type[2]:find("'limit'", 1, true))
    assert.equal("rpc", r.bad_sort[1])
    assert.equal("rpc", r.missing[1])
    assert.same({ false, "[]" }, r.null)
    assert.is_false(r.app[1])
    assert.truthy(r.app[2]:find('"Name": "mcp"', 1, true))
  end)
end)
