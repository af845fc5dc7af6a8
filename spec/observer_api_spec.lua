-- The Observer's JSON/SSE contract (/work/wt/OBSERVER_CONTRACT.md, README
-- "The Observer"): three test nodes (spec/mcp/node.lua) and an observer node
-- started with `halo observer`, spoken to with curl (without the sanitizer
-- preload) as a browser would: an SSE stream in the background, POSTs.
local json = require("halo.json")
local helper = require("helper")
local mcp_helper = require("mcp_helper")

local halo_bin = (os.getenv("HALO_BUILD") or "build") .. "/halo"

local function sh(cmd)
  local f = io.popen("unset LD_PRELOAD; " .. cmd)
  local out = f:read("*a")
  f:close()
  return out
end

local function now_ms() return tonumber(sh("date +%s%3N")) end

-- Polls pred (blocking, outside any node) every 50 ms until it is truthy or
-- timeout_ms passes; returns its value.
local function wait_for(pred, timeout_ms)
  local deadline = now_ms() + (timeout_ms or 5000)
  repeat
    local v = pred()
    if v then return v end
    os.execute("sleep 0.05")
  until now_ms() > deadline
  return pred()
end

local c, obs, url, dir
local TOKEN = "observer-spec-token"

-- The SSE messages in file: {id, event, data (decoded)} in order.
local function events(file)
  local out = {}
  local text = helper.read(file) or ""
  for block in text:gmatch("(.-)\n\n") do
    local e = {}
    for line in (block .. "\n"):gmatch("([^\n]*)\n") do
      local k, v = line:match("^(%a+): (.*)$")
      if k == "data" then e.data = json.decode(v) elseif k then e[k] = v end
    end
    if e.event then out[#out + 1] = e end
  end
  return out
end

local function of_type(file, t, key)
  local out = {}
  for _, e in ipairs(events(file)) do
    if e.event == t and (not key or e.data.key == key) then out[#out + 1] = e end
  end
  return out
end

local nstreams = 0
-- Opens /sse: {pid (curl's), file, sid, close()}.
local function open_stream()
  nstreams = nstreams + 1
  local s = { file = ("%s/sse%d.txt"):format(dir, nstreams) }
  s.pid = helper.spawn_os(("unset LD_PRELOAD; exec curl -sN %ssse"):format(url), s.file)
  local first = wait_for(function() return events(s.file)[1] end, 5000)
  assert(first and first.event == "connected", "no connected event: " .. tostring(helper.read(s.file)))
  s.sid = first.data.session
  s.connected = first.data
  function s.close() helper.kill(s.pid) end
  return s
end

-- POST path with body (a table, or raw text): status, decoded answer (or text).
local function post(path, body, headers)
  local bodyfile = dir .. "/body.json"
  helper.write(bodyfile, type(body) == "table" and json.encode(body) or body or "")
  local h = {}
  for k, v in pairs(headers or {}) do h[#h + 1] = ("-H '%s: %s'"):format(k, v) end
  local out = sh(("curl -s -o %s/answer -w '%%{http_code}' -X POST %s --data-binary @%s %s%s"):format(dir,
    table.concat(h, " "), bodyfile, url, path:sub(2)))
  local text = helper.read(dir .. "/answer") or ""
  return tonumber(out), json.decode(text) or text
end

local function session_post(s, path, body, headers)
  local h = { ["X-Observer-Session"] = s.sid }
  for k, v in pairs(headers or {}) do h[k] = v end
  return post(path, body, h)
end

local function subscribe(s, t, args)
  local status, r = session_post(s, "/api/subscribe", { type = t, args = args or json.object() })
  assert(status == 200, ("subscribe %s: %s %s"):format(t, tostring(status), json.encode(r)))
  return r.data.key
end

-- The latest snapshot of key (waits for one newer than `after` events).
local function snapshot(s, t, key, after)
  return wait_for(function()
    local list = of_type(s.file, t, key)
    if #list > (after or 0) then return list[#list] end
  end, 8000)
end

setup(function()
  c = mcp_helper.cluster(3)
  dir = c.dir
  local log = dir .. "/observer.log"
  obs = helper.spawn_os(("HALO_COOKIE=%s %s observer --port 0 --token %s --registrar %s --log-level warning"):format(
    c.cookie, halo_bin, TOKEN, c.registrar), log)
  url = wait_for(function() return (helper.read(log) or ""):match("observer: (http://%S+/)") end, 10000)
  assert(url, "the observer never listened: " .. tostring(helper.read(log)))
  -- the observer node finds the test nodes through the registrar
  local s = open_stream()
  local ok = wait_for(function()
    local nodes = {}
    for _, e in ipairs(events(s.file)) do
      if e.event == "connected" or e.event == "cluster_update" then nodes = e.data.nodes end
    end
    local n = 0
    for _, x in ipairs(nodes) do if x.name:match("^node%d@") then n = n + 1 end end
    return n == 3
  end, 10000)
  s.close()
  assert(ok, "the observer never saw the 3 nodes: " .. tostring(helper.read(s.file)))
end)

teardown(function()
  if obs then helper.kill(obs) end
  if c then c.stop() end
end)

describe("observer API", function()
  it("opens a session with the connected event of the contract", function()
    local s = open_stream()
    local d = s.connected
    assert.matches("^%x+$", d.session)
    assert.equals(32, #d.session)
    assert.equals(1, d.contract)
    assert.equals("observer@localhost", d.node)
    assert.equals("observer@localhost", d.self)
    assert.is_true(d.actions)
    assert.is_string(d.version)
    local names = {}
    for _, n in ipairs(d.nodes) do names[n.name] = n end
    assert.is_true(names["observer@localhost"].self)
    assert.is_not_nil(names["node2@localhost"])
    s.close()
  end)

  it("pushes a snapshot about every second while subscribed, and stops when the connection closes", function()
    local s = open_stream()
    local key = subscribe(s, "node_info")
    local list = wait_for(function()
      local l = of_type(s.file, "node_info", key)
      if #l >= 5 then return l end
    end, 10000)
    assert.is_not_nil(list, "fewer than 5 snapshots in 10 s")
    local span = list[5].data.time - list[1].data.time -- 4 intervals
    assert.is_true(span >= 2500 and span <= 6000, "4 intervals took " .. span .. " ms")
    for i = 2, #list do assert.is_true(tonumber(list[i].id) > tonumber(list[i - 1].id)) end
    assert.equals("observer@localhost", list[1].data.node)
    assert.equals("observer@localhost", list[1].data.data.Name)

    -- the session process runs while the stream is open, and is gone once it closed
    local watcher = open_stream()
    local wkey = subscribe(watcher, "process_list", { behavior = "halo.observer.session" })
    local function sessions()
      local snap = of_type(watcher.file, "process_list", wkey)
      local last = snap[#snap]
      local named = {}
      for _, p in ipairs(last and last.data.data.Processes or {}) do named[p.Name] = true end
      return last and last.data.data.Matched, named
    end
    local _, named = sessions()
    assert.is_true(named["observer_session_" .. s.sid])
    s.close()
    local before = #of_type(s.file, "node_info", key)
    local gone = wait_for(function()
      local n, names = sessions()
      return n == 1 and not names["observer_session_" .. s.sid] and names["observer_session_" .. watcher.sid]
    end, 5000)
    assert.is_true(gone, "the closed stream's session is still there")
    assert.equals(before, #of_type(s.file, "node_info", key)) -- nothing more reached the closed stream
    -- and so is its connection's process (the stream took the close: res:closed());
    -- the watcher's own stream is the one connection left
    local ckey = subscribe(watcher, "process_list", { behavior = "halo.http.connection" })
    local conns
    local one = wait_for(function()
      local snap = of_type(watcher.file, "process_list", ckey)
      conns = snap[#snap] and snap[#snap].data.data.Matched
      return conns == 1
    end, 5000)
    assert.is_true(one, "connection processes left: " .. tostring(conns))
    watcher.close()
  end)

  it("answers malformed and unknown requests with their statuses", function()
    local s = open_stream()
    local status, r = session_post(s, "/api/subscribe", '{"type": "node_info",')
    assert.equals(400, status)
    assert.matches("invalid JSON", r.error)
    status, r = session_post(s, "/api/subscribe", { type = "nope" })
    assert.equals(400, status)
    assert.matches("unknown subscription type", r.error)
    status, r = session_post(s, "/api/subscribe", { type = "process_list", args = { sort = "Colour" } })
    assert.equals(400, status)
    assert.matches("unknown sort column Colour", r.error)
    status, r = session_post(s, "/api/subscribe", { type = "process_info", args = { pid = "nope" } })
    assert.equals(400, status)
    assert.matches("pid", r.error)
    status, r = session_post(s, "/api/subscribe", { type = "application_tree", args = { app = "nope" } })
    assert.equals(400, status)
    assert.matches("EAPPUNKNOWN", r.error)
    status, r = post("/api/subscribe", { type = "node_info" })
    assert.equals(401, status)
    assert.matches("missing X%-Observer%-Session", r.error)
    status, r = post("/api/subscribe", { type = "node_info" }, { ["X-Observer-Session"] = string.rep("0", 32) })
    assert.equals(401, status)
    assert.matches("unknown", r.error)
    status = session_post(s, "/api/nope", {})
    assert.equals(404, status)
    status = session_post(s, "/api/do/nope", {})
    assert.equals(404, status)
    local big = '{"x":"' .. string.rep("a", 1100000) .. '"}'
    status = session_post(s, "/api/subscribe", big)
    assert.equals(413, status)
    s.close()
  end)

  it("acts only with the token, and never on system processes", function()
    local s = open_stream()
    local node2 = "node2@localhost"
    assert.equals(200, (session_post(s, "/api/switch", { node = node2 })))
    local echo = c.echo[node2]
    local status, r = session_post(s, "/api/do/kill", { pid = echo })
    assert.equals(403, status)
    assert.matches("token", r.error)
    status, r = session_post(s, "/api/do/kill", { pid = echo }, { Authorization = "Bearer wrong" })
    assert.equals(403, status)
    -- the system process halo_remote of node2
    local key = subscribe(s, "process_list", { name = "halo_remote" })
    local snap = snapshot(s, "process_list", key)
    local remote_pid = snap.data.data.Processes[1].PID
    status, r = session_post(s, "/api/do/kill", { pid = remote_pid }, { Authorization = "Bearer " .. TOKEN })
    assert.equals(403, status)
    assert.matches("system process", r.error)
    -- with the token: the echo process is killed and gone
    local ikey = subscribe(s, "process_info", { pid = echo })
    assert.equals("mcp_test_echo", snapshot(s, "process_info", ikey).data.data.Name)
    status, r = session_post(s, "/api/do/kill", { pid = echo }, { Authorization = "Bearer " .. TOKEN })
    assert.equals(200, status, json.encode(r))
    assert.is_true(r.ok)
    local dead = wait_for(function()
      local l = of_type(s.file, "process_info", ikey)
      return l[#l].data.data.State == "terminated" and l[#l]
    end, 5000)
    assert.is_truthy(dead)
    assert.equals(node2, dead.data.node)
    -- read-only actions need no token
    status, r = session_post(s, "/api/do/stack", { pid = remote_pid })
    assert.equals(200, status)
    assert.matches("traceback", r.data)
    s.close()
  end)

  it("switches the observed node, and refuses an unknown one without changing anything", function()
    local s = open_stream()
    local status, r = session_post(s, "/api/switch", { node = "node3@localhost" })
    assert.equals(200, status, json.encode(r))
    local list = wait_for(function()
      local l = of_type(s.file, "connected")
      if #l >= 2 then return l end
    end, 5000)
    assert.equals("node3@localhost", list[2].data.node)
    local key = subscribe(s, "node_info")
    local snap = snapshot(s, "node_info", key)
    assert.equals("node3@localhost", snap.data.node)
    assert.equals("node3@localhost", snap.data.data.Name)
    status, r = session_post(s, "/api/switch", { node = "ghost@localhost" })
    assert.equals(502, status)
    assert.matches("ghost@localhost", r.error)
    assert.equals(2, #of_type(s.file, "connected"))
    local n = #of_type(s.file, "node_info", key)
    snap = snapshot(s, "node_info", key, n) -- the subscription lives on, on node3
    assert.equals("node3@localhost", snap.data.data.Name)
    s.close()
  end)

  it("serves /sse and /api/ only to requests naming a loopback host (DNS rebinding)", function()
    local out = sh(("curl -s --max-time 3 -H 'Host: rebind.example:9911' -w ' %%{http_code}' %ssse"):format(url))
    assert.matches("forbidden: host rebind.example:9911 is not a loopback name", out)
    assert.matches(" 403$", out)
    out = sh(("curl -s --max-time 3 -H 'Origin: http://rebind.example' -w ' %%{http_code}' %ssse"):format(url))
    assert.matches(" 403$", out)
    local s = open_stream()
    local status, r = session_post(s, "/api/do/goroutines", {}, { Host = "rebind.example:9911" })
    assert.equals(403, status)
    assert.matches("not a loopback name", r.error)
    status = session_post(s, "/api/subscribe", { type = "node_info" }, { Origin = "http://rebind.example:9911" })
    assert.equals(403, status)
    status = session_post(s, "/api/subscribe", { type = "node_info" }, { Host = "localhost:9911",
      Origin = "http://localhost:9911" })
    assert.equals(200, status)
    s.close()
  end)

  it("reads a JSON null in args as absent, on a remote node too", function()
    local s = open_stream()
    assert.equals(200, (session_post(s, "/api/switch", { node = "node2@localhost" })))
    local status, r = session_post(s, "/api/subscribe",
      '{"type":"process_list","args":{"name":"halo_remote","limit":null,"sort":null}}')
    assert.equals(200, status, json.encode(r))
    assert.equals('process_list:{"name":"halo_remote"}', r.data.key)
    local snap = snapshot(s, "process_list", r.data.key)
    assert.equals("halo_remote", snap.data.data.Processes[1].Name)
    s.close()
  end)

  it("answers every subscription type with its documented shape from a remote node", function()
    local s = open_stream()
    local node = "node2@localhost"
    assert.equals(200, (session_post(s, "/api/switch", { node = node })))
    local sup_pid
    local subs = {
      node_info = { {}, function(d)
        assert.equals(node, d.Name)
        for _, k in ipairs({ "Stats", "Memory", "Loggers", "Cron", "LogCounts", "Uptime", "Version" }) do
          assert.is_not_nil(d[k], k)
        end
        assert.is_number(d.LogCounts.info)
        assert.equals("mcp_test_job", d.Cron[1].Name)
      end },
      process_list = { { sort = "MessagesIn", order = "desc", limit = 5 }, function(d)
        assert.is_true(d.Total >= d.Matched and d.Matched >= 5)
        assert.equals(5, #d.Processes)
        for i = 2, 5 do assert.is_true(d.Processes[i - 1].MessagesIn >= d.Processes[i].MessagesIn) end
      end },
      application_list = { {}, function(d)
        local names = {}
        for _, a in ipairs(d.Applications) do names[a.Name] = a end
        assert.equals("running", names.mcp_test_app.State)
      end },
      application_tree = { { app = "mcp_test_app" }, function(d)
        assert.equals("mcp_test_app", d.Root.Name)
        local sup = d.Root.Children[1]
        assert.equals("mcp_test_sup", sup.Name)
        sup_pid = sup.PID
        assert.equals("mcp_test_worker", sup.Children[1].Name)
        for _, k in ipairs({ "PID", "Behavior", "Kind", "MessagesMailbox", "MailboxLatency", "RunningTime", "State",
                             "Folded" }) do
          assert.is_not_nil(sup[k], k)
        end
      end },
      event_list = { { name = "mcp_test" }, function(d)
        assert.equals("mcp_test_event", d.Events[1].Name)
        assert.equals(1, d.Events[1].Subscribers)
      end },
      event_info = { { name = "mcp_test_event" }, function(d)
        assert.equals("mcp_test_event", d.Name)
        assert.same({}, d.Recent) -- without watch nothing subscribes
      end },
      network_info = { {}, function(d) assert.equals("enabled", d.Mode) end },
      connection_list = { {}, function(d)
        local names = {}
        for _, p in ipairs(d.Nodes) do names[p.Node or p.Name] = true end
        assert.is_true(names["node1@localhost"] and names["node3@localhost"])
      end },
      connection_info = { { node = "node1@localhost" }, function(d)
        assert.is_number(d.MessagesIn)
        assert.is_nil(d.Disconnected)
      end },
      topology = { {}, function(d)
        local nodes, links = {}, {}
        for _, n in ipairs(d.Nodes) do nodes[n] = true end
        for _, l in ipairs(d.Links) do links[l.from .. "-" .. l.to] = true end
        assert.is_true(nodes["node1@localhost"] and nodes["node2@localhost"] and nodes["node3@localhost"])
        assert.is_true(links["node1@localhost-node2@localhost"] and links["node2@localhost-node3@localhost"])
      end },
      log = { { levels = { "info", "warning", "error" } }, function(d)
        assert.is_table(d.Entries)
        assert.is_number(d.Suppressed)
      end },
      heap = { { limit = 5 }, function(d)
        assert.is_true(#d.Records <= 5)
        for _, k in ipairs({ "LuaHeap", "GCCycles", "GCCPUPercent", "LastGCPauseNs" }) do assert.is_not_nil(d[k], k) end
        if d.Records[1] then assert.is_string(d.Records[1].Function) end
      end },
    }
    local keys = {}
    for t, v in pairs(subs) do keys[t] = subscribe(s, t, v[1]) end
    for t, v in pairs(subs) do
      local snap = snapshot(s, t, keys[t])
      assert.is_not_nil(snap, "no " .. t .. " snapshot")
      assert.equals(node, snap.data.node)
      v[2](snap.data.data)
    end
    -- an empty list read from another node is still a JSON list
    assert.truthy((helper.read(s.file) or ""):find('"ProxyRoutes":[]', 1, true), "ProxyRoutes is not []")
    local status, r = session_post(s, "/api/do/app_tree", { app = "mcp_test_app" })
    assert.equals(200, status)
    assert.equals("mcp_test_sup", r.data.Root.Children[1].Name)
    assert.truthy((helper.read(dir .. "/answer") or ""):find('"Children":[]', 1, true), "a leaf's Children is not []")
    -- the per-process views, on the supervisor the tree showed
    local ikey = subscribe(s, "process_inspect", { pid = sup_pid })
    assert.is_string(snapshot(s, "process_inspect", ikey).data.data.strategy)
    local pkey = subscribe(s, "process_info", { pid = sup_pid })
    local info = snapshot(s, "process_info", pkey).data.data
    assert.equals("mcp_test_sup", info.Name)
    assert.matches("traceback", info.Stack)
    -- watching an event: its publications (one a second) show in Recent
    local wkey = subscribe(s, "event_info", { name = "mcp_test_event", watch = true })
    local seen = wait_for(function()
      local l = of_type(s.file, "event_info", wkey)
      return l[#l] and #l[#l].data.data.Recent > 0 and l[#l].data.data
    end, 5000)
    assert.is_truthy(seen, "no publication seen")
    assert.matches("seq", seen.Recent[1].message)
    assert.is_number(seen.Recent[1].time)
    -- the same subscription again is the same key
    assert.equals(pkey, subscribe(s, "process_info", { pid = sup_pid }))
    assert.equals(200, (session_post(s, "/api/unsubscribe", { key = pkey })))
    s.close()
  end)
end)

describe("observer API, ending a node's entry", function()
  it("refuses to exit or kill the entry process of the observed and of the observer's node", function()
    local s = open_stream()
    for _, node in ipairs({ "observer@localhost", "node2@localhost" }) do
      assert.equals(200, (session_post(s, "/api/switch", { node = node })))
      local key = subscribe(s, "process_list", { behavior = "entry" })
      local entry = snapshot(s, "process_list", key).data.data.Processes[1].PID
      for _, act in ipairs({ "kill", "exit" }) do
        local status, r = session_post(s, "/api/do/" .. act, { pid = entry, reason = "shutdown" },
          { Authorization = "Bearer " .. TOKEN })
        assert.equals(403, status, node .. " " .. act .. ": " .. json.encode(r))
        assert.matches("entry process", r.error)
      end
      local status, r = session_post(s, "/api/do/stack", { pid = entry }) -- both nodes still answer
      assert.equals(200, status, json.encode(r))
    end
    s.close()
  end)
end)

-- What the views and the observer application do inside one node.
describe("halo.inspect and the observer application", function()
  local halo = require("halo")
  local inspect = require("halo.inspect")

  local function count(behavior) return select(2, halo.process_list({ behavior = behavior })) end

  it("keeps at most 200 log records a second, and its tap ends when nobody reads", function()
    helper.run(function()
      halo.log.remove_logger("default")
      local idle = inspect.TAP_IDLE_MS
      inspect.TAP_IDLE_MS = 300
      assert.same({}, assert(inspect.view("log", {})).Entries) -- the first read starts the tap
      assert.equals(1, count("halo.inspect.tap"))
      for i = 1, 500 do halo.log.warning("storm %d", i) end
      local r
      assert(helper.wait_until(function()
        r = assert(inspect.view("log", { levels = { "warning" }, limit = 1000 }))
        local kept = 0
        for _, e in ipairs(r.Entries) do if e.Message:match("^storm %d+$") then kept = kept + 1 end end
        r.kept = kept
        return kept + r.SuppressedTotal == 500
      end, 3000, 10), "records lost: " .. tostring(r and r.kept) .. " kept, " .. tostring(r and r.SuppressedTotal))
      assert.is_true(r.kept >= 200 and r.kept <= 2 * inspect.STORM_CAP, r.kept .. " kept")
      assert.is_true(r.Suppressed > 0)
      assert.equals("warning", r.Entries[1].Level)
      assert.equals(halo.self(), r.Entries[1].PID)
      -- read after the last: nothing new, nothing more suppressed
      local again = assert(inspect.view("log", { after = r.Last, dropped = r.SuppressedTotal }))
      assert.same({}, again.Entries)
      assert.equals(0, again.Suppressed)
      assert(helper.wait_until(function() return count("halo.inspect.tap") == 0 end, 3000, 20), "the tap is still there")
      inspect.TAP_IDLE_MS = idle
    end, { log_level = "warning" })
  end)

  it("fails only the process_inspect view of a busy process, within its short timeout", function()
    helper.run(function()
      local me = halo.self()
      local busy = halo.spawn({ handle_message = function()
        halo.send(me, "inside")
        halo.sleep(1500)
      end, handle_inspect = function() return { a = "1" } end })
      halo.send(busy, "go")
      local _, msg = halo.receive(2000)
      assert.equals("inside", msg) -- the process is in its callback: it cannot answer an inspect now
      local data, err, code = inspect.view("process_inspect", { pid = busy })
      assert.is_nil(data)
      assert.equals("ETIMEDOUT", code)
      assert.matches("did not answer its inspect within " .. inspect.VIEW_INSPECT_TIMEOUT .. " ms", err)
      assert.is_true(inspect.VIEW_INSPECT_TIMEOUT < require("halo.observer.session").CALL_TIMEOUT)
      assert.same({ a = "1" }, assert(inspect.act("inspect", { pid = busy }))) -- the action waits longer
      halo.kill(busy)
    end)
  end)

  it("lists processes top-N by any column, filtered, with Total and Matched", function()
    helper.run(function()
      local pids = {}
      for i = 1, 40 do
        pids[i] = halo.spawn({ handle_message = function() halo.sleep(100000) end }, nil,
          { name = "obs_spec_" .. i })
        for _ = 1, i % 7 do halo.send(pids[i], "x") end
      end
      assert(helper.wait_until(function()
        return halo.process_list({ name = "obs_spec_6" })[1].MessagesMailbox == 5
      end, 2000, 5))
      local r = assert(inspect.view("process_list", { sort = "MessagesMailbox", limit = 3 }))
      assert.equals(3, #r.Processes)
      assert.is_true(r.Total >= 41 and r.Matched == r.Total)
      assert.equals(5, r.Processes[1].MessagesMailbox) -- the first of 6 queued: one is being handled
      r = assert(inspect.view("process_list", { name = "obs_spec_", sort = "Name", order = "asc", limit = 2 }))
      assert.equals(40, r.Matched)
      assert.same({ "obs_spec_1", "obs_spec_10" }, { r.Processes[1].Name, r.Processes[2].Name })
      r = assert(inspect.view("process_list", { name = "obs_spec_", sort = "PID", order = "desc", limit = 1 }))
      assert.equals(pids[40], r.Processes[1].PID)
      r = assert(inspect.view("process_list", { name = "obs_spec_", limit = 1, columns = { "Name", "State" } }))
      local keys = {}
      for k in pairs(r.Processes[1]) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({ "Name", "PID", "State" }, keys)
      r = assert(inspect.view("process_list", { name = "obs_spec_", min_mailbox = 5 }))
      assert.is_true(r.Matched >= 5)
      for _, p in ipairs(r.Processes) do assert.is_true(p.MessagesMailbox >= 5) end
      local none, err = inspect.view("process_list", { sort = "Colour" })
      assert.is_nil(none)
      assert.matches("^EINCORRECT: .*unknown sort column Colour", err)
      for _, pid in ipairs(pids) do halo.kill(pid) end
    end)
  end)

  it("folds large sibling groups in the application tree", function()
    helper.run(function()
      local W = { name = "obs_spec.worker", handle_message = function() end }
      local O = { name = "obs_spec.other", handle_message = function() end }
      local children = {}
      for i = 1, 30 do children[i] = { name = "w" .. i, behavior = W } end
      children[31] = { name = "o1", behavior = O }
      children[32] = { name = "o2", behavior = O }
      assert(halo.application.load({ name = "obs_spec_app", mode = "temporary", group = {
        { name = "obs_spec_sup", behavior = halo.supervisor.behavior, args = { strategy = "one_for_one",
          children = children } } } }))
      assert(halo.application.start("obs_spec_app"))
      local t = assert(inspect.view("application_tree", { app = "obs_spec_app" }))
      assert.equals("application", t.Root.Kind)
      assert.equals(33, t.Processes)
      local sup = t.Root.Children[1]
      assert.equals("obs_spec_sup", sup.Name)
      assert.equals(7, #sup.Children) -- 5 of the 30 workers and the 2 others
      assert.equals(25, sup.Folded)
      t = assert(inspect.view("application_tree", { app = "obs_spec_app", limit = 3 }))
      -- 30 read (sup, w1..w29): sup, w1, w2 shown, w3..w5 cut, w6..w29 folded, 3 never read
      assert.equals(24, t.Root.Children[1].Folded)
      assert.equals(3 + 3, t.Truncated)
      inspect.TREE_READ = 2 -- 2 x 3 processes read: sup, w1..w5; the rest counted as cut
      t = assert(inspect.view("application_tree", { app = "obs_spec_app", limit = 3 }))
      inspect.TREE_READ = 10
      assert.equals(33, t.Processes)
      assert.equals(0, t.Root.Children[1].Folded)
      assert.equals(3 + 27, t.Truncated)
      local none, err = inspect.view("application_tree", { app = "nope" })
      assert.is_nil(none)
      assert.matches("EAPPUNKNOWN", err)
      assert(halo.application.stop("obs_spec_app"))
      assert(halo.application.unload("obs_spec_app"))
    end)
  end)

  it("serves the files of www and refuses to act on its own and the system's processes", function()
    local www = helper.script_dir("index.html", "<!doctype html><title>o</title>")
    os.execute("mkdir -p " .. www .. "/js && echo 'export {}' > " .. www .. "/js/app.js && echo secret > " .. www ..
      "/.hidden")
    helper.run(function()
      local observer = require("halo.observer")
      local url = assert(observer.start({ port = 0, www = www }))
      local http = require("halo.http")
      local r = assert(http.get(url))
      assert.equals(200, r.status)
      assert.equals("text/html; charset=utf-8", r.headers["content-type"])
      assert.equals("no-cache", r.headers["cache-control"])
      r = assert(http.get(url .. "js/app.js"))
      assert.equals("text/javascript; charset=utf-8", r.headers["content-type"])
      assert.equals("export {}\n", r.body)
      for _, path in ipairs({ ".hidden", "../index.html", "nope.html", "api/nope" }) do
        assert.equals(404, assert(http.get(url .. path)).status, path)
      end
      assert.equals(405, assert(http.get(url .. "api/subscribe")).status)
      local _, err = inspect.act("kill", { pid = halo.whereis("observer_web") })
      assert.matches("^ENOTALLOWED: .*observer application", err)
      _, err = inspect.act("kill", { pid = halo.whereis("halo_applications") })
      assert.matches("^ENOTALLOWED: .*system process", err)
      _, err = inspect.act("app_stop", { name = "observer" })
      assert.matches("^ENOTALLOWED", err)
      assert(observer.stop())
    end)
    os.execute("rm -rf " .. www)
  end)

  it("caps the sessions and each session's subscriptions, and walks a www with a symlink loop once", function()
    local www = helper.script_dir("index.html", "<!doctype html><title>o</title>")
    os.execute("ln -s . " .. www .. "/loop && ln -s . " .. www .. "/loop2")
    local web, session = require("halo.observer.web"), require("halo.observer.session")
    local max_sessions, max_subs = web.MAX_SESSIONS, session.MAX_SUBSCRIPTIONS
    web.MAX_SESSIONS, session.MAX_SUBSCRIPTIONS = 1, 2
    local curl = {}
    helper.run(function()
      local observer = require("halo.observer")
      local url = assert(observer.start({ port = 0, www = www }))
      local http = require("halo.http")
      assert.equals(200, assert(http.get(url .. "index.html")).status)
      assert.equals(404, assert(http.get(url .. "loop/index.html")).status)
      local file = www .. "/.sse"
      curl[1] = helper.spawn_os(("unset LD_PRELOAD; exec curl -sN %ssse"):format(url), file)
      local sid
      assert(helper.wait_until(function()
        sid = (helper.read(file) or ""):match('"session":"(%x+)"')
        return sid ~= nil
      end, 5000, 20), "no session")
      local r = assert(http.get(url .. "sse"))
      assert.equals(503, r.status)
      assert.matches("too many sessions", r.body)
      local function sub(args)
        local a = assert(http.request({ method = "POST", url = url .. "api/subscribe", headers = {
          ["x-observer-session"] = sid }, body = json.encode({ type = "process_list", args = args }) }))
        return a.status, json.decode(a.body)
      end
      assert.equals(200, (sub({ name = "a" })))
      assert.equals(200, (sub({ name = "b" })))
      local status, a = sub({ name = "c" })
      assert.equals(429, status)
      assert.matches("too many subscriptions", a.error)
      assert.equals(200, (sub({ name = "a" }))) -- the same key again: a no-op
      -- a view whose data JSON cannot hold fails alone; the session lives on
      local cyclic = halo.spawn({ handle_message = function() end,
                                  handle_inspect = function() local t = { a = "1" } t.self = t return t end })
      local a = assert(http.request({ method = "POST", url = url .. "api/unsubscribe", headers = {
        ["x-observer-session"] = sid }, body = json.encode({ key = 'process_list:{"name":"b"}' }) }))
      assert.equals(200, a.status)
      a = assert(http.request({ method = "POST", url = url .. "api/subscribe", headers = {
        ["x-observer-session"] = sid }, body = json.encode({ type = "process_inspect", args = { pid = cyclic } }) }))
      assert.equals(400, a.status, a.body)
      assert.matches("JSON cannot hold", a.body)
      local _, err = inspect.act_json("inspect", { pid = cyclic })
      assert.matches("^EINCORRECT: .*JSON cannot hold", err)
      assert.equals(200, (sub({ name = "a" })))
      -- a session that ends without its stream's cleanup no longer counts
      halo.kill(halo.whereis("observer_session_" .. sid))
      assert(helper.wait_until(function() return web.sessions() == 0 end, 3000, 20))
      curl[2] = helper.spawn_os(("unset LD_PRELOAD; exec curl -sN %ssse"):format(url), file .. "2")
      assert(helper.wait_until(function() return (helper.read(file .. "2") or ""):match('"session"') end, 5000, 20),
        "no second session: " .. tostring(helper.read(file .. "2")))
      halo.kill(cyclic)
      helper.kill(curl[1])
      helper.kill(curl[2])
      assert(observer.stop())
    end)
    web.MAX_SESSIONS, session.MAX_SUBSCRIPTIONS = max_sessions, max_subs
    os.execute("rm -rf " .. www)
  end)
end)

describe("halo observer", function()
  it("refuses bad options with status 2 and a bad address with status 1", function()
    local out = sh(("%s observer --bogus 2>&1; echo status=$?"):format(halo_bin))
    assert.matches("unknown or incomplete option '%-%-bogus'", out)
    assert.matches("status=2", out)
    out = sh(("%s observer --help; echo status=$?"):format(halo_bin))
    assert.matches("usage: halo observer", out)
    assert.matches("status=0", out)
    out = sh(("%s run --observer 127.0.0.1:99999 -e 'return 1' 2>&1; echo status=$?"):format(halo_bin))
    assert.matches("%-%-observer: port out of range", out)
    assert.matches("status=1", out)
  end)
end)
