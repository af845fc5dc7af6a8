-- The sampler tools (mcp_tools/sampler.lua, halo.mcp.sampler) over the MCP
-- HTTP endpoint of a two-node test cluster (spec/mcp/node.lua; node1 serves
-- /mcp, node2 is reached through `node`). Each fix of the reference's
-- sampler quirks (mcp-tools.md §7) has a check that its behaviour would fail.
local halo = require("halo")
local json = require("halo.json")
local helper = require("helper")
local mcp_helper = require("mcp_helper")

local N1, N2 = "node1@localhost", "node2@localhost"

describe("MCP samplers", function()
  local c

  setup(function() c = mcp_helper.cluster(2) end)
  teardown(function() if c then c.stop() end end)

  -- Runs fn(call) in a node; call(tool, args) -> text, isError.
  local function with_client(fn)
    helper.run(function()
      local client = mcp_helper.client(c.port, { authorization = "Bearer " .. c.token })
      client.init()
      fn(function(tool, args)
        local r = client.call(tool, args and json.object(args) or nil)
        assert(r and r.result, "no result for " .. tool .. ": " .. json.encode(r))
        return r.result.content[1].text, r.result.isError == true
      end)
    end, { timeout = 30000 })
  end

  local function ok(call, tool, args)
    local text, is_error = call(tool, args)
    assert(not is_error, tool .. " failed: " .. text)
    return json.decode(text) or text
  end

  -- Polls sample_read until pred(answer) holds (5 s at most); returns the answer.
  local function read_until(call, id, pred, node, since)
    local r
    assert.is_true(helper.wait_until(function()
      r = ok(call, "sample_read", { sampler_id = id, node = node, since = since })
      return pred(r)
    end, 5000, 50), "sampler " .. id .. " never got there")
    return r
  end

  local function completed(r) return r.completed end

  local function listed(call, id, node)
    for _, s in ipairs(ok(call, "sample_list", { node = node })) do
      if s.id == id then return s end
    end
  end

  it("takes exactly count samples, lingers readable, lists the real collected count (Q-COUNT, Q-COLLECTED)", function()
    with_client(function(call)
      local st = ok(call, "sample_start", { tool = "process_list", arguments = { sort_by = "mailbox", limit = 5 },
                                            interval_ms = 100, count = 3, duration_sec = 5 })
      assert.matches("^mcp_sampler_%x%x%x%x%x%x%x%x$", st.sampler_id)
      assert.same({ 100, 3, 5, 256, "active" }, { st.interval_ms, st.count, st.duration_sec, st.buffer_size, st.mode })
      local r = read_until(call, st.sampler_id, completed)
      assert.equal(3, #r.samples)   -- the reference stops after 2
      assert.equal(3, r.sequence)   -- the last sequence assigned
      for i, s in ipairs(r.samples) do
        assert.equal(i, s.sequence)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:]+%.%d+Z$", s.timestamp)
        local rows = json.decode(s.data.content[1].text)
        assert.is_true(#rows >= 1 and #rows <= 5 and rows[1].MessagesMailbox ~= nil)
      end
      assert.equal("count reached", r.reason)
      assert.matches("^completed, lingering %d+s$", r.status)
      local l = listed(call, st.sampler_id)
      assert.equal("3 collected, buffer 3/256", l.samples) -- the reference prints 4
      assert.equal("3/3 samples", l.progress)
      assert.equal("process_list(limit=5, sort_by=mailbox) every 100ms", l.description)
      assert.equal(N1, l.owner)
      assert.matches("^completed, lingering", l.status)
      assert.is_nil(l.remaining)
      ok(call, "sample_stop", { sampler_id = st.sampler_id })
    end)
  end)

  it("reads incrementally without losing an entry when since is the returned sequence (Q-SEQ)", function()
    with_client(function(call)
      local st = ok(call, "sample_start", { tool = "node_info", interval_ms = 100, count = 12, duration_sec = 5 })
      local seen, since, reads = {}, 0, 0
      while true do
        local r = ok(call, "sample_read", { sampler_id = st.sampler_id, since = since })
        reads = reads + 1
        for _, s in ipairs(r.samples) do seen[#seen + 1] = s.sequence end
        if #r.samples > 0 then assert.equal(r.sequence, r.samples[#r.samples].sequence) end
        since = r.sequence
        if r.completed then break end
        halo.sleep(150)
      end
      assert.is_true(reads >= 3, "too few incremental reads: " .. reads)
      assert.equal(12, #seen)
      for i, s in ipairs(seen) do assert.equal(i, s) end -- the reference skips one per read
      local again = ok(call, "sample_read", { sampler_id = st.sampler_id, since = since })
      assert.same({}, again.samples)
      assert.equal("[]", call("sample_read", { sampler_id = st.sampler_id, since = since })
        :match('"samples": (%[%])'))
      ok(call, "sample_stop", { sampler_id = st.sampler_id })
    end)
  end)

  it("lingers after the duration, then ends; clamps duration, interval, buffer and linger (Q-DUR, Q-INT, Q-BUF)", function()
    with_client(function(call)
      local st = ok(call, "sample_start", { tool = "node_info", interval_ms = 10, duration_sec = 1, buffer_size = 2,
                                            linger_sec = 1 })
      assert.equal(100, st.interval_ms)    -- the reference makes it 5000
      assert.equal(1, st.linger_sec)
      local r = read_until(call, st.sampler_id, completed)
      assert.equal("duration expired", r.reason) -- the reference ends at once, its data gone
      assert.equal(2, #r.samples)
      assert.is_true(r.sequence >= 5, "too few samples in 1 s at 100 ms: " .. r.sequence)
      assert.equal(r.sequence - 2, r.lost)
      local l = listed(call, st.sampler_id)
      assert.equal(("%d collected, buffer 2/2"):format(r.sequence), l.samples)
      -- after linger_sec it is gone
      assert.is_true(helper.wait_until(function()
        local _, is_error = call("sample_read", { sampler_id = st.sampler_id })
        return is_error
      end, 3000, 100))
      assert.is_nil(listed(call, st.sampler_id))
      local text, is_error = call("sample_read", { sampler_id = st.sampler_id })
      assert.is_true(is_error)
      assert.equal(("sampler %s not found or not responding: unknown process"):format(st.sampler_id), text)
      for _, case in ipairs({ { 0, 60 }, { -5, 60 }, { 99999, 3600 } }) do
        local s = ok(call, "sample_start", { tool = "node_info", duration_sec = case[1], buffer_size = 100000 })
        assert.equal(case[2], s.duration_sec) -- never unlimited
        assert.equal(4096, s.buffer_size)     -- the reference has no maximum
        ok(call, "sample_stop", { sampler_id = s.sampler_id })
      end
    end)
  end)

  it("stops at once and hands back the entries no read returned (Q-STOP)", function()
    with_client(function(call)
      local st = ok(call, "sample_start", { tool = "node_info", interval_ms = 100, duration_sec = 5 })
      local first = read_until(call, st.sampler_id, function(r) return r.sequence >= 2 end)
      halo.sleep(300)
      local stop = ok(call, "sample_stop", { sampler_id = st.sampler_id })
      assert.equal("stopped", stop.status)
      assert.is_true(#stop.samples >= 1)
      assert.equal(first.sequence + 1, stop.samples[1].sequence)
      assert.equal(stop.sequence, stop.samples[#stop.samples].sequence)
      local text, is_error = call("sample_read", { sampler_id = st.sampler_id })
      assert.is_true(is_error)
      assert.matches("not found or not responding: unknown process$", text)
      text, is_error = call("sample_stop", { sampler_id = st.sampler_id })
      assert.is_true(is_error)
      assert.equal(("sampler %s not found: unknown process"):format(st.sampler_id), text)
    end)
  end)

  it("ends after max_errors consecutive failures and shows the last error", function()
    with_client(function(call)
      local st = ok(call, "sample_start", { tool = "process_info", arguments = '{"pid": "<0.0.999999>"}',
                                            interval_ms = 100, max_errors = 3, duration_sec = 5 })
      local r = read_until(call, st.sampler_id, completed)
      assert.equal("3 consecutive errors", r.reason)
      assert.same({}, r.samples)
      local l = listed(call, st.sampler_id)
      assert.equal("3 consecutive", l.errors)
      assert.matches("unknown process", l.last_error)
      ok(call, "sample_stop", { sampler_id = st.sampler_id })
    end)
  end)

  it("refuses what cannot be sampled and unknown ids", function()
    with_client(function(call)
      local cases = {
        { "sample_start", { tool = "no_such_tool" }, "^invalid params: unknown tool: no_such_tool$" },
        { "sample_start", { tool = "" }, "^tool is required$" },
        { "sample_start", { tool = "sample_start" }, "^invalid params: tool sample_start cannot be sampled$" },
        { "sample_start", { tool = "process_list", arguments = { limit = "x" } },
          "^invalid params: arguments of process_list: argument 'limit'" },
        { "sample_listen", { log_levels = { "loud" } }, "^invalid params: unknown log level 'loud'" },
        { "sample_listen", { event = "no_such_event" },
          "^failed to spawn sampler: cannot monitor event 'no_such_event': unknown event$" },
        { "sample_read", { sampler_id = "mcp_sampler_00000000" },
          "^sampler mcp_sampler_00000000 not found or not responding: unknown process$" },
        { "sample_read", { sampler_id = "mcp" }, "^sampler mcp not found or not responding: unknown process$" },
        { "sample_stop", { sampler_id = "mcp_sampler_00000000" }, "^sampler mcp_sampler_00000000 not found: unknown process$" },
      }
      for _, case in ipairs(cases) do
        local text, is_error = call(case[1], case[2])
        assert.is_true(is_error, case[1] .. " " .. json.encode(case[2]) .. ": " .. text)
        assert.matches(case[3], text)
      end
      -- the failed event subscription left no logger behind
      for _, lg in ipairs(ok(call, "loggers_list")) do assert.is_nil(lg.name:match("^mcp_sampler_")) end
    end)
  end)

  it("captures log records and event publications in one passive sampler, then lingers (Q-LISTEN, Q-LOGGER)", function()
    with_client(function(call)
      local d = ok(call, "sample_listen", {})
      assert.same({ "info", "warning", "error", "panic" }, d.log_levels) -- the reference echoes null
      ok(call, "sample_stop", { sampler_id = d.sampler_id })
      local st = ok(call, "sample_listen", { log_levels = { "ERROR", "warning" }, event = "mcp_test_event",
                                             duration_sec = 2, buffer_size = 1024, linger_sec = 5 })
      assert.same({ "warning", "error" }, st.log_levels)
      assert.same({ "mcp_test_event", 1024, "passive" }, { st.event, st.buffer_size, st.mode })
      local names = {}
      for _, lg in ipairs(ok(call, "loggers_list")) do names[lg.name] = true end
      assert.is_true(names[st.sampler_id], "no logger named after the sampler")
      local mark = "mark-" .. tostring(math.random(1e9))
      ok(call, "send_message", { to = "mcp_test_logger", message = mark })
      local function has(r)
        local log, event
        for _, s in ipairs(r.samples) do
          if s.data.message == "mcp_test_logger: " .. mark then log = s.data end
          if s.data.event then event = s.data end
        end
        return log and event, log, event
      end
      local r = read_until(call, st.sampler_id, has)
      local _, log, event = has(r)
      assert.same({ "warning", "process" }, { log.level, log.type })
      assert.matches("^<[%x.]+> %('mcp_test_logger'%) mcp_test.logger$", log.source)
      assert.equal("'mcp_test_event'@'node1@localhost'", event.event)
      assert.is_number(event.message.seq)
      assert.equal("listen: log [warning, error] + event 'mcp_test_event'@'node1@localhost'",
        listed(call, st.sampler_id).description)
      r = read_until(call, st.sampler_id, completed) -- the reference's passive samplers never complete
      assert.equal("duration expired", r.reason)
      assert.matches("^completed, lingering", r.status)
      names = {}
      for _, lg in ipairs(ok(call, "loggers_list")) do names[lg.name] = true end
      assert.is_nil(names[st.sampler_id], "the logger outlived the capture")
      ok(call, "sample_stop", { sampler_id = st.sampler_id })
    end)
  end)

  it("runs on another node through node, read, listed and stopped there", function()
    with_client(function(call)
      local st = ok(call, "sample_start", { node = N2, tool = "process_list", interval_ms = 100, duration_sec = 5,
                                            arguments = { sort_by = "mailbox", limit = 5 } })
      local r = read_until(call, st.sampler_id, function(x) return x.sequence >= 2 end, N2)
      local rows = json.decode(r.samples[1].data.content[1].text)
      assert.matches("^<", rows[1].PID)
      assert.equal(N2, listed(call, st.sampler_id, N2).owner)
      assert.is_nil(listed(call, st.sampler_id))          -- node1 has no such sampler
      local _, is_error = call("sample_read", { sampler_id = st.sampler_id })
      assert.is_true(is_error)
      local lst = ok(call, "sample_listen", { node = N2, log_levels = { "warning" }, event = "mcp_test_event",
                                              event_node = N1, duration_sec = 5 })
      local mark = "remote-" .. tostring(math.random(1e9))
      ok(call, "send_message", { node = N2, to = "mcp_test_logger", message = mark })
      read_until(call, lst.sampler_id, function(x)
        local log, event = false, false
        for _, s in ipairs(x.samples) do
          if s.data.message == "mcp_test_logger: " .. mark then log = true end
          if s.data.event == "'mcp_test_event'@'node1@localhost'" then event = true end
        end
        return log and event
      end, N2)
      local stop = ok(call, "sample_stop", { node = N2, sampler_id = st.sampler_id })
      assert.equal("stopped", stop.status)
      ok(call, "sample_stop", { node = N2, sampler_id = lst.sampler_id })
      assert.same({}, ok(call, "sample_list", { node = N2 }))
    end)
  end)

  it("keeps anything else sent to it as an entry", function()
    with_client(function(call)
      local st = ok(call, "sample_listen", { event = "mcp_test_event", duration_sec = 5 })
      ok(call, "send_message", { to = st.sampler_id, message = { ping = 1 } })
      local r = read_until(call, st.sampler_id, function(x)
        for _, s in ipairs(x.samples) do if s.data.from then return true end end
      end)
      for _, s in ipairs(r.samples) do
        if s.data.from then assert.same({ "table", 1 }, { s.data.type, s.data.message.ping }) end
      end
      ok(call, "sample_stop", { sampler_id = st.sampler_id })
    end)
  end)

  it("works through the official MCP SDK, locally and proxied (spec/mcp/samplers.mjs)", function()
    local f = io.popen(("unset LD_PRELOAD; timeout 60 node spec/mcp/samplers.mjs --url http://127.0.0.1:%d/mcp " ..
      "--token %s --local %s --remote %s 2>&1; echo \"rc=$?\""):format(c.port, c.token, N1, N2))
    local out = f:read("*a")
    f:close()
    assert.truthy(out:find("samplers: ok\nrc=0", 1, true), out)
    for _, node in ipairs({ N1, N2 }) do
      local n = tonumber(out:match("active on " .. node:gsub("%p", "%%%0") .. ": (%d+) samples"))
      assert.is_true(n and n >= 4, out)
      assert.truthy(out:find(("passive on %s: log line and 'mcp_test_event'@'%s' captured"):format(node, node), 1,
        true), out)
    end
  end)
end)

describe("MCP samplers in one node", function()
  it("run a tool only when the node's read-only mode and allowed tools let it", function()
    local port = helper.free_ports(1)
    local allowed = { "sample_start", "sample_read", "sample_stop", "node_info", "send_message" }
    helper.run(function()
      local dispatch = require("halo.mcp.dispatch")
      local function call(tool, args)
        local rep = dispatch.call({ mcp = "call", tool = tool, args = args }, halo.node_info().Name, halo.self())
        local r = json.decode(assert(rep.result, rep.error))
        return r.content[1].text, r.isError == true
      end
      local text, is_error = call("sample_start", { tool = "process_list" })
      assert.is_true(is_error)
      assert.equal("invalid params: unknown tool: process_list", text) -- not in the allowed tools
      text, is_error = call("sample_start", { tool = "send_message", arguments = { to = "x", message = 1 } })
      assert.is_true(is_error)
      assert.equal("invalid params: unknown tool: send_message", text) -- an action tool, read-only node
      text = call("sample_start", { tool = "node_info", interval_ms = 100, count = 2, duration_sec = 2 })
      local id = json.decode(text).sampler_id
      assert.is_true(helper.wait_until(function() return json.decode(call("sample_read", { sampler_id = id })).completed end,
        3000, 20))
      local r = json.decode(call("sample_stop", { sampler_id = id, since = 0 }))
      assert.equal(2, #r.samples)
      assert.equal(halo.node_info().Name, json.decode(r.samples[1].data.content[1].text).Name)
      assert.is_nil(halo.whereis(id))
    end, { mcp = { port = port, read_only = true, allowed = allowed }, timeout = 10000 })
  end)
end)

describe("MCP samplers, edge cases in one node", function()
  local function call(tool, args, entry)
    local dispatch = require("halo.mcp.dispatch")
    local rep = dispatch.call({ mcp = "call", tool = tool, args = json.object(args or {}), entry = entry },
      halo.node_info().Name, halo.self())
    local r = json.decode(assert(rep.result, rep.error))
    return r.content[1].text, r.isError == true
  end

  it("refuse, at a read-only entry, to start a sampler elsewhere on a tool the entry refuses (Q-SEC3)", function()
    helper.run(function()
      local text, is_error = call("sample_start", { tool = "send_message", node = "other@localhost",
                                                    arguments = { to = "x", message = 1 } }, true)
      assert.is_true(is_error)
      assert.equal("invalid params: unknown tool: send_message", tostring(text)) -- was proxied: no such node to refuse it
      text, is_error = call("sample_start", { tool = "node_info", node = "other@localhost" }, true)
      assert.is_true(is_error)
      assert.matches("^remote call to 'other@localhost' failed", text) -- a permitted tool is still proxied
    end, { mcp = { port = helper.free_ports(1), read_only = true }, timeout = 10000 })
  end)

  it("read from a negative since as from 0, print a zero uptime as 0s, cap the samplers of a node", function()
    helper.run(function()
      local S = require("halo.mcp.sampler")
      local id = json.decode(call("sample_start", { tool = "node_info", interval_ms = 100, count = 2 })).sampler_id
      assert.is_true(helper.wait_until(function()
        return json.decode(call("sample_read", { sampler_id = id })).completed end, 3000, 20))
      local r = json.decode(call("sample_read", { sampler_id = id, since = -5 }))
      assert.equal(2, #r.samples)
      assert.is_nil(r.lost) -- nothing was overwritten; a negative since counted phantom entries
      r = json.decode(call("sample_read", { sampler_id = id, since = 1e15 }))
      assert.equal(0, #r.samples)
      assert.equal("0s", S.go_duration(0))
      assert.equal("1m0s", S.go_duration(60000))
      call("sample_stop", { sampler_id = id })
      local ids = {}
      for i = 1, S.MAX_SAMPLERS do
        local text, is_error = call("sample_listen", { log_levels = { "panic" }, duration_sec = 10 })
        assert.is_false(is_error, text)
        ids[i] = json.decode(text).sampler_id
      end
      local text, is_error = call("sample_start", { tool = "node_info" })
      assert.is_true(is_error)
      assert.equal(("failed to spawn sampler: too many samplers on this node (%d); stop one with sample_stop")
        :format(S.MAX_SAMPLERS), text)
      call("sample_stop", { sampler_id = ids[1] })
      text, is_error = call("sample_start", { tool = "node_info", count = 1 })
      assert.is_false(is_error, text)
      ids[1] = json.decode(text).sampler_id
      for _, x in ipairs(ids) do call("sample_stop", { sampler_id = x }) end
    end, { mcp = { port = helper.free_ports(1) }, timeout = 20000 })
  end)
  it("answer reads, lists and stops while the sampled tool is slow (the tool runs in a process of its own)", function()
    helper.run(function()
      local S = require("halo.mcp.sampler")
      assert(halo.spawn({ handle_call = function() end }, nil, { name = "mcp_never_answers" }))
      local id = json.decode(call("sample_start", { tool = "call_process", interval_ms = 100,
        arguments = { to = "mcp_never_answers", request = "ping" } })).sampler_id
      local ticker
      assert.is_true(helper.wait_until(function()
        ticker = halo.process_list({ behavior = S.TICK_BEHAVIOR })[1]
        return ticker ~= nil
      end, 3000, 20), "no process runs the sample")
      local t0 = halo.now()
      local r = json.decode(call("sample_read", { sampler_id = id }))
      assert.equal(0, r.sequence)
      local listed = json.decode(call("sample_list"))
      assert.equal(1, #listed)
      assert.equal("running", listed[1].status)
      r = json.decode(call("sample_stop", { sampler_id = id }))
      assert.equal("stopped", r.status)
      assert.is_true(halo.now() - t0 < 1000, "a slow tool held the sampler") -- each call waited 5 s before
      assert.is_true(helper.wait_until(function() -- killed inside its call: a zombee until the call's timeout
        for _, p in ipairs(halo.process_list({ behavior = S.TICK_BEHAVIOR })) do
          if p.State ~= "zombee" then return false end
        end
        return true
      end, 1000, 10), "the sample's process lives on")
    end, { mcp = { port = helper.free_ports(1) }, timeout = 20000 })
  end)
  it("bound a buffer's bytes too: big entries push the oldest out before the entry count does", function()
    helper.run(function()
      local S = require("halo.mcp.sampler")
      local saved = S.BUFFER_BYTES
      S.BUFFER_BYTES = 10000
      local id = json.decode(call("sample_listen", { log_levels = { "panic" }, buffer_size = 256 })).sampler_id
      for i = 1, 10 do halo.send(id, { n = i, pad = ("x"):rep(3000) }) end
      local r
      assert.is_true(helper.wait_until(function()
        r = json.decode(call("sample_read", { sampler_id = id }))
        return r.sequence == 10
      end, 2000, 10))
      S.BUFFER_BYTES = saved
      assert.is_true(#r.samples >= 1 and #r.samples <= 3, "kept " .. #r.samples .. " entries of 3 KB in 10 KB")
      assert.equal(10, r.samples[#r.samples].data.message.n) -- the newest stay
      assert.equal(10 - #r.samples, r.lost)
      local l = json.decode(call("sample_list"))[1]
      assert.equal(("10 collected, buffer %d/256"):format(#r.samples), l.samples)
      call("sample_stop", { sampler_id = id })
    end, { mcp = { port = helper.free_ports(1) }, timeout = 20000 })
  end)
  it("draw another id when the random one is taken", function()
    helper.run(function()
      local core = require("halo.core")
      local random_hex, ids = core.node.random_hex, { "deadbeef", "cafef00d" }
      assert(halo.spawn({ handle_message = function() end }, nil, { name = "mcp_sampler_deadbeef" }))
      core.node.random_hex = function() return table.remove(ids, 1) or random_hex(4) end
      local text, is_error = call("sample_listen", { log_levels = { "panic" } })
      core.node.random_hex = random_hex
      assert.is_false(is_error, text)
      assert.equal("mcp_sampler_cafef00d", json.decode(text).sampler_id)
      call("sample_stop", { sampler_id = "mcp_sampler_cafef00d" })
    end, { mcp = { port = helper.free_ports(1) }, timeout = 20000 })
  end)
  it("free the node's CPU profile when a sample running pprof_cpu is stopped", function()
    helper.run(function()
      local id = json.decode(call("sample_start", { tool = "pprof_cpu", arguments = { duration = 10 } })).sampler_id
      assert.is_true(helper.wait_until(function() return require("halo.cpuprof").running() end, 3000, 10))
      call("sample_stop", { sampler_id = id })
      local text, is_error = call("pprof_cpu", { duration = 1 })
      assert.is_false(is_error, text) -- was "a CPU profile is already running" for the profile's 10 s + 5 s
      assert.matches("^CPU profile: 1 seconds", text)
    end, { mcp = { port = helper.free_ports(1) }, timeout = 20000 })
  end)
  it("print timestamps to the microsecond a double's nanoseconds can hold", function()
    local S = require("halo.mcp.sampler")
    assert.equal("2026-12-03T11:36:12.970005Z", S.rfc3339_ns(1796297772970004992)) -- was .970004992: noise
    assert.equal("1970-01-01T00:00:11.000000Z", S.rfc3339_ns(10999999900))
  end)
end)
