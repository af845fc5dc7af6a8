-- halo.metrics: custom families (validation, updates, owners, top-N), the
-- Prometheus exposition, and the built-in halo_* families after real
-- activity on one node and across two real halo processes.
local halo = require("halo")
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"

-- Exposition parsing ---------------------------------------------------------------

local function parse_labels(s)
  local labels, i = {}, 1
  while i <= #s do
    local name, at = s:match("^([%w_]+)=\"()", i)
    assert(name, "bad label pairs: " .. s)
    local buf = {}
    i = at
    while true do
      local c = s:sub(i, i)
      if c == "\\" then
        local n = s:sub(i + 1, i + 1)
        buf[#buf + 1] = n == "n" and "\n" or n
        i = i + 2
      elseif c == '"' then
        i = i + 1
        break
      else
        buf[#buf + 1] = c
        i = i + 1
      end
    end
    labels[name] = table.concat(buf)
    if s:sub(i, i) == "," then i = i + 1 end
  end
  return labels
end

-- Samples of one metric name: { {labels = {...}, value = n, line = "..."}, ... }
local function samples(text, name)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local n, l, v = line:match("^([%w_:]+){(.*)} (%S+)$")
    if n == name then
      out[#out + 1] = { labels = parse_labels(l), value = tonumber(v) or (v == "+Inf" and math.huge) or v, line = line }
    end
  end
  return out
end

local function value(text, name, match)
  for _, s in ipairs(samples(text, name)) do
    local ok = true
    for k, v in pairs(match or {}) do
      if s.labels[k] ~= v then ok = false end
    end
    if ok then return s.value end
  end
end

local function run(fn, opts) return helper.run(fn, opts) end

describe("custom metrics", function()
  it("expose counters, gauges and histograms in the text format", function()
    local text = run(function()
      local m = halo.metrics
      local c = assert(m.counter({ name = "jobs_total", help = "Jobs done.", labels = { "status", "kind" } }))
      assert(c:inc("ok", "b"))
      assert(c:add(2.5, "ok", "a"))
      assert(c:add(1, 'quote"back\\slash\nnewline', "a"))
      local g = assert(m.gauge({ name = "temp_celsius", help = "Temperature\nnow \\ here." }))
      assert(g:set(21.5))
      assert(g:add(-0.25))
      local h = assert(m.histogram({ name = "wait_seconds", help = "Waits.", labels = { "op" }, buckets = { 0.01, 0.1, 1 } }))
      for _, v in ipairs({ 0.005, 0.05, 0.05, 0.5, 5 }) do assert(h:observe(v, "get")) end
      local d = assert(m.histogram({ name = "default_seconds", help = "Default buckets." }))
      assert(d:observe(0.3))
      assert(m.gauge({ name = "never_set", help = "No series." }))
      local inf = assert(m.gauge({ name = "edge", help = "Edges.", labels = { "k" } }))
      inf:set(math.huge, "a"); inf:set(-math.huge, "b"); inf:set(0 / 0, "c"); inf:set(1234567890123, "d")
      return m.expose()
    end)
    -- HELP and TYPE, label pairs sorted by name with node among them, series by label values
    assert.truthy(text:find("# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\n" ..
      'jobs_total{kind="a",node="halo@localhost",status="ok"} 2.5\n' ..
      'jobs_total{kind="a",node="halo@localhost",status="quote\\"back\\\\slash\\nnewline"} 1\n' ..
      'jobs_total{kind="b",node="halo@localhost",status="ok"} 1\n', 1, true))
    assert.truthy(text:find("# HELP temp_celsius Temperature\\nnow \\\\ here.\n# TYPE temp_celsius gauge\n" ..
      'temp_celsius{node="halo@localhost"} 21.25\n', 1, true))
    -- cumulative buckets, +Inf, _sum and _count
    assert.truthy(text:find("# TYPE wait_seconds histogram\n" ..
      'wait_seconds_bucket{node="halo@localhost",op="get",le="0.01"} 1\n' ..
      'wait_seconds_bucket{node="halo@localhost",op="get",le="0.1"} 3\n' ..
      'wait_seconds_bucket{node="halo@localhost",op="get",le="1"} 4\n' ..
      'wait_seconds_bucket{node="halo@localhost",op="get",le="+Inf"} 5\n' ..
      'wait_seconds_sum{node="halo@localhost",op="get"} 5.605\n' ..
      'wait_seconds_count{node="halo@localhost",op="get"} 5\n', 1, true))
    -- Prometheus' default buckets
    local les = {}
    for _, s in ipairs(samples(text, "default_seconds_bucket")) do les[#les + 1] = s.labels.le end
    assert.same({ "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf" }, les)
    -- a family without series prints nothing
    assert.falsy(text:find("never_set", 1, true))
    assert.truthy(text:find('edge{k="a",node="halo@localhost"} +Inf\nedge{k="b",node="halo@localhost"} -Inf\n' ..
      'edge{k="c",node="halo@localhost"} NaN\nedge{k="d",node="halo@localhost"} 1234567890123\n', 1, true))
    -- families sorted by name
    local names = {}
    for n in text:gmatch("# TYPE (%S+)") do names[#names + 1] = n end
    local sorted = { unpack(names) }
    table.sort(sorted)
    assert.same(sorted, names)
  end)

  it("refuses bad definitions and a second registration with clear errors", function()
    local r = run(function()
      local m = halo.metrics
      local out = {}
      local function try(kind, def) out[#out + 1] = select(2, m[kind](def)) end
      try("counter", { name = "1abc", help = "h" })
      try("counter", { name = "a-b", help = "h" })
      try("counter", { name = "halo_mine", help = "h" })
      try("counter", { name = "x_total", help = "h", labels = { "a", "a" } })
      try("counter", { name = "x_total", help = "h", labels = { "node" } })
      try("counter", { name = "x_total", help = "h", labels = { "__meta" } })
      try("counter", { name = "x_total", help = "h", labels = { "bad-label" } })
      try("histogram", { name = "x_seconds", help = "h", labels = { "le" } })
      try("histogram", { name = "x_seconds", help = "h", buckets = { 1, 0.5 } })
      try("histogram", { name = "x_seconds", help = "h", buckets = { 1, 1 } })
      try("histogram", { name = "x_seconds", help = "h", buckets = { 1, math.huge } })
      try("counter", { name = "x_total" })
      try("top", { name = "x_top", help = "h", n = 0 })
      try("top", { name = "x_top", help = "h", order = "sideways" })
      try("counter", { name = "x_total\0tail", help = "h" })
      try("counter", { name = "y_total", help = "h", labels = { "a\0b" } })
      assert(m.counter({ name = "x_total", help = "h" }))
      try("gauge", { name = "x_total", help = "h" })
      out.unregister_builtin = { m.unregister("halo_processes_total") }
      out.unregister_unknown = { m.unregister("nope") }
      return out
    end)
    local want = {
      'EINCORRECT: invalid metric name "1abc"', 'EINCORRECT: invalid metric name "a-b"',
      'EINCORRECT: metric "halo_mine" is reserved for internal use', 'duplicate label name "a"',
      'label name "node" is reserved', 'label name "__meta" is reserved', 'invalid label name "bad-label"',
      'label name "le" is reserved for histogram buckets', "buckets must be strictly increasing",
      "buckets must be strictly increasing", "buckets must be finite", "help text is required", "n must be 1..10000",
      "order must be max or min", 'EINCORRECT: invalid metric name "x_total\\0tail"',
      'EINCORRECT: metric "y_total": invalid label name "a\\0b"', 'ETAKEN: metric "x_total" is already registered',
    }
    for i, w in ipairs(want) do
      assert.is_string(r[i])
      assert.truthy(r[i]:find(w, 1, true), r[i] .. " does not say " .. w)
    end
    assert.truthy(r.unregister_builtin[2]:find('metric "halo_processes_total" is reserved for internal use', 1, true))
    assert.equal("EUNKNOWN", r.unregister_unknown[3])
  end)

  it("raises on a wrong number of label values and refuses a wrong update", function()
    local r = run(function()
      local c = assert(halo.metrics.counter({ name = "c_total", help = "h", labels = { "a", "b" } }))
      local g = assert(halo.metrics.gauge({ name = "g", help = "h" }))
      local out = {}
      out.few = { pcall(c.inc, c, "x") }
      out.many = { pcall(c.add, c, 1, "x", "y", "z") }
      out.negative = { c:add(-1, "x", "y") }
      out.observe = { g:observe(1) }
      out.table_value = { pcall(c.add, c, 1, "x", {}) }
      out.errors = halo.metrics.stats().update_errors
      return out
    end)
    assert.is_false(r.few[1])
    assert.truthy(r.few[2]:find('metric "c_total" has 2 label values, got 1', 1, true))
    assert.is_false(r.many[1])
    assert.truthy(r.negative[2]:find('counter "c_total" cannot decrease', 1, true))
    assert.truthy(r.observe[2]:find('metric "g" is a gauge: no observe', 1, true))
    assert.is_false(r.table_value[1])
    assert.equal(2, r.errors)
  end)

  it("raises on a top_n outside 1..10000, NaN included", function()
    local r = run(function()
      local out = {}
      for _, n in ipairs({ -1, 10001, 0 / 0 }) do
        out[#out + 1] = select(2, pcall(halo.metrics.expose, { top_n = n }))
        out[#out + 1] = select(2, pcall(halo.metrics.configure, { top_n = n }))
      end
      return out
    end)
    assert.equal(6, #r)
    for _, e in ipairs(r) do assert.truthy(tostring(e):find("top_n must be 1..10000", 1, true), tostring(e)) end
  end)

  it("removes a process's families when it ends; later updates are refused and counted", function()
    local r = run(function()
      local me, out = halo.self(), {}
      local owner = halo.spawn(function()
        local c = assert(halo.metrics.counter({ name = "owned_total", help = "Owned." }))
        c:inc()
        halo.send(me, c)
        halo.receive()
      end)
      local _, c = halo.receive(2000)
      out.before = halo.metrics.expose():find("owned_total", 1, true) ~= nil
      assert(halo.monitor(owner))
      halo.send(owner, "end")
      helper.await_down(owner)
      out.after = halo.metrics.expose():find("owned_total", 1, true) ~= nil
      out.errors0 = halo.metrics.stats().update_errors
      out.update = { c:inc() }
      out.errors1 = halo.metrics.stats().update_errors
      out.families = halo.metrics.stats().families
      out.again = halo.metrics.counter({ name = "owned_total", help = "Mine now." }) ~= nil
      return out
    end)
    assert.is_true(r.before)
    assert.is_false(r.after)
    assert.is_nil(r.update[1])
    assert.equal("EUNKNOWN", r.update[3])
    assert.equal(r.errors0 + 1, r.errors1)
    assert.equal(0, r.families)
    assert.is_true(r.again)
  end)

  it("refuse a family's handle from an earlier node of the same Lua state", function()
    local old = run(function() return assert(halo.metrics.counter({ name = "first_total", help = "h" })) end)
    local r = run(function()
      assert(halo.metrics.counter({ name = "second_total", help = "h" }))
      local out = { update = { old:inc() }, slow = { require("halo.core").metrics.add(old.id, 1) } }
      out.text = halo.metrics.expose()
      return out
    end)
    assert.equal("EUNKNOWN", r.update[3])
    assert.equal("EUNKNOWN", r.slow[3])
    assert.is_nil(r.text:find("second_total{", 1, true))
  end)

  it("keeps the N best of an interval and shows them after flush_top", function()
    local r = run(function()
      local m = halo.metrics
      local t = assert(m.top({ name = "slowest_seconds", help = "Slowest.", labels = { "req" }, n = 3 }))
      local b = assert(m.top({ name = "fastest_seconds", help = "Fastest.", labels = { "req" }, n = 2, order = "min" }))
      local out = {}
      for i, v in ipairs({ 5, 1, 7, 3, 7, 9, 2 }) do
        t:observe(v, "r" .. i)
        b:observe(v, "r" .. i)
      end
      out.before = m.expose()
      assert(m.flush_top())
      out.first = m.expose()
      assert(m.flush_top("slowest_seconds"))
      out.second = m.expose()
      out.unknown = { m.flush_top("nope") }
      return out
    end)
    assert.falsy(r.before:find("slowest_seconds", 1, true))
    local got = {}
    for _, s in ipairs(samples(r.first, "slowest_seconds")) do got[s.labels.req] = s.value end
    assert.same({ r3 = 7, r5 = 7, r6 = 9 }, got)
    got = {}
    for _, s in ipairs(samples(r.first, "fastest_seconds")) do got[s.labels.req] = s.value end
    assert.same({ r2 = 1, r7 = 2 }, got)
    assert.falsy(r.second:find("slowest_seconds{", 1, true)) -- an empty interval shows nothing
    assert.truthy(r.second:find("fastest_seconds{", 1, true))
    assert.equal("EUNKNOWN", r.unknown[3])
  end)
end)

describe("built-in families", function()
  it("describe every reference family in the catalogue", function()
    local fams = run(function() return halo.metrics.families() end)
    assert.equal(73, #fams)
    local by = {}
    for _, f in ipairs(fams) do
      local want = "gauge"
      if f.name:match("_total$") then
        local instant = { halo_processes_total = 1, halo_applications_total = 1, halo_registered_names_total = 1,
                          halo_registered_aliases_total = 1, halo_registered_events_total = 1,
                          halo_connected_nodes_total = 1 }
        want = instant[f.name] and "untyped" or "counter"
      end
      assert.equal(want, f.type, f.name)
      assert.truthy(f.name:match("^halo_[a-z_]+$"))
      assert.truthy(#f.help > 0)
      by[f.name] = f
    end
    assert.same({ "pid", "name", "application", "behavior" }, by.halo_mailbox_depth_top.labels)
    assert.same({ "event", "producer" }, by.halo_event_subscribers_top.labels)
    assert.same({ "remote_node" }, by.halo_remote_bytes_in_total.labels)
    assert.same({ "acceptor" }, by.halo_acceptor_handshake_errors_total.labels)
    assert.same({ "range" }, by.halo_process_utilization_distribution.labels)
    assert.same({}, by.halo_node_uptime_seconds.labels)
  end)

  it("are the table in the README (tools/metrics_table.lua, make metrics-table)", function()
    local gen = dofile("tools/metrics_table.lua")
    local rows = gen.render(run(function() return halo.metrics.families() end))
    local f = assert(io.open("README.md"))
    local readme = f:read("*a")
    f:close()
    assert.equal(readme, gen.splice(readme, rows), "README's metrics table differs from the code: make metrics-table")
    -- the check mode of the generator notices a drift
    local copy = os.tmpname()
    f = assert(io.open(copy, "w"))
    f:write((readme:gsub("| `halo_cpu_cores` |", "| `halo_cpu_count` |")))
    f:close()
    local rc = os.execute(halo_bin .. " run tools/metrics_table.lua check " .. copy .. " 2>/dev/null")
    os.remove(copy)
    assert.is_true(rc ~= 0 and rc ~= true, "the check passed a drifted table")
  end)

  it("report activity: counters, a backed-up mailbox, latency, utilization, events, applications", function()
    local r = run(function()
      local out = {}
      out.t0 = halo.metrics.expose()
      for _ = 1, 5 do
        local p = halo.spawn({ handle_message = function() end })
        halo.kill(p)
      end
      -- a process stuck in its callback for 1.2 s with 30 messages queued behind it
      local stuck = assert(halo.spawn({ name = "spec.stuck", handle_message = function(_, _, m)
        if m == "block" then halo.sleep(1200) end
      end }, nil, { name = "stuck_one", application = "" }))
      halo.send(stuck, "block")
      halo.sleep(5)
      for i = 1, 30 do halo.send(stuck, i) end
      -- events in each utilization state
      local me = halo.self()
      local function producer(name, opts, publish)
        return halo.spawn(function()
          assert(halo.event.register(name, opts))
          halo.send(me, "registered")
          halo.receive()
          if publish then halo.event.publish(name, "x") end
          halo.send(me, "published")
          halo.receive()
        end)
      end
      local evs = {
        active = producer("ev_active", nil, true), on_demand = producer("ev_on_demand", { notify = true }, false),
        idle = producer("ev_idle", nil, false), no_subscribers = producer("ev_nosubs", nil, true),
        no_publishing = producer("ev_nopub", nil, false),
      }
      for _ = 1, 5 do assert(select(2, halo.receive(2000)) == "registered") end
      assert(halo.event.monitor("ev_active"))
      assert(halo.event.monitor("ev_nopub"))
      for _, p in pairs(evs) do halo.send(p, "go") end
      local published = 0
      while published < 5 do -- the publication of ev_active comes here too
        local from, m = halo.receive(2000)
        assert(from, "no word from the producers")
        if m == "published" then published = published + 1 end
      end
      assert(halo.application.load({ name = "spec_app", group = { { behavior = { handle_message = function() end } } } }))
      assert(halo.application.load({ name = "spec_idle", group = { { behavior = { handle_message = function() end } } } }))
      assert(halo.application.start("spec_app"))
      assert(helper.wait_until(function() return halo.process_info(stuck).Uptime >= 1 end, 3000))
      out.t1 = halo.metrics.expose()
      out.t1_top3 = halo.metrics.expose({ top_n = 1 })
      out.stuck = stuck
      out.node = halo.node_info().Name
      halo.kill(stuck)
      for _, p in pairs(evs) do halo.kill(p) end
      assert(halo.application.stop("spec_app"))
      out.t2 = halo.metrics.expose()
      return out
    end)
    local t0, t1 = r.t0, r.t1
    -- every series carries the node label
    for line in t1:gmatch("[^\n]+") do
      if not line:find("^#") then assert.truthy(line:find('node="' .. r.node .. '"', 1, true), line) end
    end
    assert.is_true(value(t1, "halo_processes_spawned_total") >= value(t0, "halo_processes_spawned_total") + 5)
    assert.is_true(value(t1, "halo_processes_terminated_total") >= value(t0, "halo_processes_terminated_total") + 5)
    local who = { pid = r.stuck, name = "stuck_one", behavior = "spec.stuck", application = "" }
    assert.equal(30, value(t1, "halo_mailbox_depth_top", who))
    assert.equal(30, value(t1, "halo_mailbox_depth_max"))
    assert.equal(1, value(t1, "halo_mailbox_depth_distribution", { range = "50" }))
    assert.equal(10, #samples(t1, "halo_mailbox_depth_distribution")) -- every bucket, zeros included
    assert.equal(12, #samples(t1, "halo_mailbox_latency_distribution"))
    assert.equal(8, #samples(t1, "halo_process_utilization_distribution"))
    local lat = value(t1, "halo_mailbox_latency_top_seconds", who)
    assert.is_true(lat > 0.5 and lat < 5, tostring(lat))
    assert.is_true(value(t1, "halo_mailbox_latency_processes") >= 1)
    local in_buckets = 0
    for _, s in ipairs(samples(t1, "halo_mailbox_latency_distribution")) do in_buckets = in_buckets + s.value end
    assert.equal(value(t1, "halo_mailbox_latency_processes"), in_buckets)
    assert.equal(1, value(t1, "halo_mailbox_latency_distribution", { range = lat <= 1 and "1s" or "5s" }))
    -- the stuck process has been inside its callback for its whole life
    assert.is_true(value(t1, "halo_process_utilization_top", who) > 0.5)
    assert.is_true(value(t1, "halo_process_utilization_max") > 0.5)
    -- events: one in each state, producers as labels
    for _, st in ipairs({ "active", "on_demand", "idle", "no_subscribers", "no_publishing" }) do
      assert.equal(1, value(t1, "halo_event_utilization", { state = st }), st)
    end
    assert.equal(1, value(t1, "halo_event_subscribers_max"))
    assert.equal(5, #samples(t1, "halo_event_subscribers_top")) -- zero subscribers included
    assert.equal(2, #samples(t1, "halo_event_published_top")) -- only > 0
    assert.equal(1, value(t1, "halo_event_local_sent_top", { event = "ev_active" }))
    assert.is_nil(value(t1, "halo_event_remote_sent_top"))
    assert.equal(5, value(t1, "halo_registered_events_total"))
    assert.is_true(value(t1, "halo_events_published_total") >= 2)
    assert.equal(2, value(t1, "halo_applications_total"))
    assert.equal(1, value(t1, "halo_applications_running"))
    assert.equal(0, value(r.t2, "halo_applications_running"))
    -- top_n bounds every top family
    for _, f in ipairs({ "halo_process_messages_in_top", "halo_process_wakeups_top", "halo_event_subscribers_top" }) do
      assert.equal(1, #samples(r.t1_top3, f))
    end
    -- gone processes leave the tops; the node and runtime rows make sense
    assert.is_nil(value(r.t2, "halo_mailbox_depth_top", { pid = r.stuck }))
    assert.is_true(value(t1, "halo_memory_used_bytes") > 1e6)
    assert.is_true(value(t1, "halo_memory_alloc_bytes") > 1e5)
    assert.is_true(value(t1, "halo_cpu_cores") >= 1)
    assert.is_true(value(t1, "halo_cpu_user_seconds") > 0)
    assert.is_true(value(t1, "halo_node_uptime_seconds") >= 1)
    assert.equal(0, value(t1, "halo_connected_nodes_total"))
    assert.is_nil(value(t1, "halo_connections_established_total")) -- no network
  end)

  it("are read in steps: other processes run meanwhile, and those that end leave the tops", function()
    local r = run(function()
      local out, pids = {}, {}
      for i = 1, 40 do
        pids[i] = halo.spawn({ handle_message = function() end }, nil, { name = "w" .. i })
        halo.send(pids[i], i)
      end
      halo.sleep(10)
      -- told before expose, it can only run while expose yields: it ends every other worker
      out.killer_ran = false
      local killer = halo.spawn(function()
        halo.receive()
        for i = 2, 40, 2 do halo.kill(pids[i]) end
        out.killer_ran = true
      end)
      halo.send(killer, "go")
      out.text = halo.metrics.expose({ chunk = 3 })
      out.ran_during = out.killer_ran
      out.pids = pids
      out.alive = #halo.process_list({ name = "w" })
      return out
    end)
    assert.is_true(r.ran_during)
    local seen = {}
    for _, s in ipairs(samples(r.text, "halo_process_messages_in_top")) do seen[s.labels.pid] = true end
    for i = 1, 40 do
      if i % 2 == 0 then assert.is_nil(seen[r.pids[i]], "ended process " .. i .. " in the top") end
    end
    assert.equal(20, r.alive)
    assert.is_true(value(r.text, "halo_processes_total") >= 20)
  end)

  it("pass promtool check metrics", function()
    local text = run(function()
      local h = assert(halo.metrics.histogram({ name = "slowweb_request_duration_seconds", help = "HTTP request duration to slowweb.",
        buckets = { 0.001, 0.005, 0.01, 0.015, 0.02, 0.05, 0.1 } }))
      h:observe(0.009)
      local c = assert(halo.metrics.counter({ name = "slowweb_requests_total", help = "Requests to slowweb.", labels = { "status" } }))
      c:inc("ok")
      local t = assert(halo.metrics.top({ name = "busiest", help = "Busiest.", labels = { "who" } }))
      t:observe(3, "me")
      halo.metrics.flush_top()
      local p = halo.spawn({ handle_message = function() halo.sleep(50) end }, nil, { name = "backlog" })
      for i = 1, 5 do halo.send(p, i) end
      return halo.metrics.expose()
    end)
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write(text)
    f:close()
    local pipe = io.popen("promtool check metrics < " .. file .. " 2>&1; echo rc=$?")
    local out = pipe:read("*a")
    pipe:close()
    os.remove(file)
    assert.equal("rc=0\n", out)
    -- the reference's gauges named _total would fail the linter: cumulative ones are
    -- counters, instant counts untyped
    assert.truthy(text:find("# TYPE halo_processes_spawned_total counter\n", 1, true))
    assert.truthy(text:find("# TYPE halo_processes_total untyped\n", 1, true))
    assert.truthy(text:find("# TYPE halo_processes_running gauge\n", 1, true))
    assert.truthy(text:find('slowweb_request_duration_seconds_bucket{node="halo@localhost",le="0.01"} 1', 1, true))
  end)

  it("stay valid for promtool with names that are not UTF-8", function()
    local text = run(function()
      local p = halo.spawn({ handle_message = function() halo.sleep(50) end }, nil,
        { name = "bad\255name\"\\\n", behavior = "beh\192\175" })
      for i = 1, 3 do halo.send(p, i) end
      assert(halo.event.register("ev\237\160\128\n"))
      local c = assert(halo.metrics.counter({ name = "hostile_total", help = "Help \255.", labels = { "v" } }))
      assert(c:inc("\254\226\130"))
      assert(c:inc("caf\195\169"))
      return halo.metrics.expose()
    end)
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write(text)
    f:close()
    local pipe = io.popen("promtool check metrics < " .. file .. " 2>&1; echo rc=$?")
    local out = pipe:read("*a")
    pipe:close()
    os.remove(file)
    assert.equal("rc=0\n", out)
    local R = "\239\191\189" -- U+FFFD for each byte that is not UTF-8
    assert.truthy(value(text, "halo_mailbox_depth_top", { name = "bad" .. R .. 'name"\\\n', behavior = "beh" .. R .. R }))
    assert.truthy(text:find('event="ev' .. R .. R .. R .. '\\n"', 1, true))
    assert.equal(1, value(text, "hostile_total", { v = R .. R .. R }))
    assert.equal(1, value(text, "hostile_total", { v = "caf\195\169" }))
    assert.truthy(text:find("# HELP hostile_total Help " .. R .. ".\n", 1, true))
  end)
end)

-- Two real halo processes: the spec's node (a@localhost) and b@localhost.
local B_SCRIPT = [[
local halo = require("halo")
halo.spawn({
  init = function() assert(halo.event.register("ticks")) end,
  handle_message = function(_, _, m) halo.event.publish("ticks", m) end,
}, nil, { name = "ticker" })
halo.spawn({ handle_call = function(_, _, _, req) return req end }, nil, { name = "echo" })
local f = io.open(arg[1], "w"); f:write(halo.net.info().Acceptors[1].Port, "\n"); f:close()
halo.receive()
]]

describe("built-in families on a two-node cluster", function()
  local dir, pid, port
  setup(function()
    dir = helper.script_dir("b.lua", B_SCRIPT)
    pid = helper.spawn_os(("%s run --name b@localhost --cookie mx --listen 127.0.0.1:0 --registrar none --log-level error %s/b.lua %s/b.out")
      :format(halo_bin, dir, dir), dir .. "/b.log")
    assert(helper.wait_file(dir .. "/b.out", nil, true), "node b did not start")
    local f = io.open(dir .. "/b.out")
    port = f:read("*n")
    f:close()
  end)
  teardown(function()
    helper.kill(pid)
    os.execute("rm -rf " .. dir)
  end)

  it("show the peer, its counters and the events received from it", function()
    local r = helper.run(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      local echo = halo.net.process_id("echo", "b@localhost")
      for i = 1, 10 do assert(halo.call(echo, i, 3000) == i) end
      assert(halo.event.monitor("ticks", "b@localhost"))
      local ticker = halo.net.process_id("ticker", "b@localhost")
      halo.send(ticker, "t1")
      halo.send(ticker, "t2")
      for _ = 1, 2 do assert(halo.receive(3000)) end
      return { text = halo.metrics.expose(), info = halo.net.info() }
    end, { name = "a@localhost", cookie = "mx", listen = "127.0.0.1:0", registrar = "none" })
    local t, peer = r.text, { remote_node = "b@localhost", node = "a@localhost" }
    assert.equal(1, value(t, "halo_connected_nodes_total"))
    assert.is_true(value(t, "halo_connections_established_total") >= 1)
    assert.equal(0, value(t, "halo_connections_lost_total"))
    assert.is_true(value(t, "halo_remote_messages_out_total", peer) >= 13)
    assert.is_true(value(t, "halo_remote_messages_in_total", peer) >= 12)
    assert.is_true(value(t, "halo_remote_bytes_out_total", peer) > 0)
    assert.is_true(value(t, "halo_remote_bytes_in_total", peer) > 0)
    assert.is_true(value(t, "halo_remote_node_uptime_seconds", peer) >= 0)
    for _, f in ipairs({ "halo_remote_fragments_sent_total", "halo_remote_fragment_messages_sent_total",
                         "halo_remote_fragments_received_total", "halo_remote_fragment_messages_received_total",
                         "halo_remote_fragment_timeouts_total", "halo_remote_compressed_sent_total",
                         "halo_remote_compressed_bytes_sent_total", "halo_remote_compressed_orig_bytes_sent_total",
                         "halo_remote_decompressed_recv_total", "halo_remote_decompressed_bytes_recv_total",
                         "halo_remote_decompressed_orig_recv_total" }) do
      assert.equal(0, value(t, f, peer), f)
    end
    assert.equal(2, value(t, "halo_events_received_total"))
    local acc = r.info.Acceptors[1]
    assert.equal(0, value(t, "halo_acceptor_handshake_errors_total", { acceptor = acc.Host .. ":" .. acc.Port }))
  end)
end)
