--- halo benchmarks W1-W8 (../../shared/reference/perf-anchors.md section 6).
-- Runs as a node's entry: halo run bench/halo/bench.lua [--quick] [--only W1,W3]
-- Prints one JSON object per result on stdout; progress goes to stderr.
-- Protocol: one warm-up run, then 5 runs in this OS process; median, min, max.
local halo = require("halo")

local args = { ... }
local quick, only = false, nil
local i = 1
while i <= #args do
  local a = args[i]
  if a == "--quick" then quick = true
  elseif a == "--only" then only = {}; for w in args[i + 1]:gmatch("[^,]+") do only[w] = true end; i = i + 1
  elseif a == "--mem" then -- internal: one W7 measurement in a fresh node
    only = { W7 = true }; quick = args[i + 1]; i = i + 1
  elseif a == "--peer" then -- internal: the other node of W6r/W8 (args: our coordinator's node, port)
    only = { peer = args[i + 1], port = args[i + 2] }; i = i + 2
  else error("unknown argument " .. a) end
  i = i + 1
end
local RUNS = 5

local function log(...) io.stderr:write(string.format(...), "\n") end
local function scale(n) return quick and math.floor(n / 10) or n end

local function emit(id, metric, vals, better)
  table.sort(vals)
  local med = vals[math.floor((#vals + 1) / 2)]
  if #vals % 2 == 0 then med = (vals[#vals / 2] + vals[#vals / 2 + 1]) / 2 end
  io.stdout:write(string.format(
    '{"id":"%s","metric":"%s","median":%.2f,"min":%.2f,"max":%.2f,"runs":%d,"better":"%s","peer":"halo"}\n',
    id, metric, med, vals[1], vals[#vals], #vals, better or "lower"))
  io.stdout:flush()
end

-- Runs f once to warm up and RUNS times; f returns the figure (or a table of figures).
local function measure(name, f, runs)
  local warm = f()
  log("%s warm-up: %s", name, type(warm) == "table" and table.concat(warm, " / ") or tostring(warm))
  local all = {}
  for r = 1, runs or RUNS do
    local v = f()
    if type(v) ~= "table" then v = { v } end
    for k, x in ipairs(v) do all[k] = all[k] or {}; all[k][r] = x end
    log("%s run %d: %s", name, r, table.concat(v, " / "))
    collectgarbage()
  end
  return all
end

-- W1-W4 run twice: with a realistic message (a fresh table of three fields,
-- one a short string), the headline rows, and with a bare number, which
-- takes halo's FFI fast path (halo_send_number) and is the second line.
local MESSAGES = { { "record", true }, { "int", false } }
local function record(seq, tag) return { seq = seq, tag = tag, weight = 1.5 } end

local function await(n)
  for _ = 1, n do assert(halo.receive(120000), "benchmark timed out") end
end

-- W1: ping-pong -----------------------------------------------------------
local Pinger = { name = "bench.pinger" }
function Pinger:init(a) self.coord, self.limit, self.rec = a.coord, a.limit, a.rec end
function Pinger:handle_message(from, m)
  if m == "go" then halo.send(self.peer, self.rec and record(1, "ping") or 1); return end
  if type(m) == "string" then self.peer = m; return end
  local n = self.rec and m.seq or m
  if n >= self.limit then halo.send(self.coord, "done"); return end
  halo.send(from, self.rec and record(n + 1, "ping") or n + 1)
end

local function w1(pairs_n, rec)
  local total = scale(10000000)
  local per = math.floor(total / pairs_n)
  local me = halo.self()
  local as, bs = {}, {}
  for p = 1, pairs_n do
    as[p] = halo.spawn(Pinger, { coord = me, limit = per, rec = rec })
    bs[p] = halo.spawn(Pinger, { coord = me, limit = per, rec = rec })
    halo.send(as[p], bs[p])
    halo.send(bs[p], as[p])
  end
  halo.sleep(1)
  local t0 = halo.now()
  for p = 1, pairs_n do halo.send(as[p], "go") end
  await(pairs_n)
  local dt = halo.now() - t0
  for p = 1, pairs_n do halo.kill(as[p]); halo.kill(bs[p]) end
  return dt * 1e6 / (per * pairs_n)
end

-- W2: one-way flood --------------------------------------------------------
local Sink = { name = "bench.sink" }
function Sink:init(a) self.coord, self.limit, self.n = a.coord, a.limit, 0 end
function Sink:handle_message(_, _)
  local n = self.n + 1
  self.n = n
  if n == self.limit then halo.send(self.coord, "done") end
end

local function flood(sink, count, rec)
  return function()
    local send, yield = halo.send, halo.yield
    for k = 1, count do
      send(sink, rec and record(k, "item") or k)
      if k % 256 == 0 then yield() end
    end
  end
end

local function w2(npairs, count, rec)
  local me = halo.self()
  local sinks = {}
  for p = 1, npairs do sinks[p] = halo.spawn(Sink, { coord = me, limit = count }) end
  local t0 = halo.now()
  for p = 1, npairs do halo.spawn(flood(sinks[p], count, rec)) end
  await(npairs)
  local dt = halo.now() - t0
  for p = 1, npairs do halo.kill(sinks[p]) end
  return dt * 1e6 / (npairs * count)
end

-- W3: fan-in ----------------------------------------------------------------
local Fanin = { name = "bench.fanin" }
function Fanin:init(a) self.coord, self.limit, self.n, self.peak = a.coord, a.limit, 0, 0 end
function Fanin:handle_message(_, m)
  local age = halo.now() - (type(m) == "table" and m.at or m)
  if age > self.peak then self.peak = age end
  local n = self.n + 1
  self.n = n
  if n == self.limit then halo.send(self.coord, self.peak) end
end

local function w3(rec)
  local senders, per = 1000, scale(1000)
  local me = halo.self()
  local recv = halo.spawn(Fanin, { coord = me, limit = senders * per })
  local fns = {}
  for s = 1, senders do
    fns[s] = function()
      local send, now, yield = halo.send, halo.now, halo.yield
      for k = 1, per do
        send(recv, rec and { seq = k, tag = "stamp", at = now() } or now())
        if k % 100 == 0 then yield() end
      end
    end
  end
  local t0 = halo.now()
  for s = 1, senders do halo.spawn(fns[s]) end
  local _, peak = halo.receive(120000)
  local dt = halo.now() - t0
  halo.kill(recv)
  return { dt * 1e6 / (senders * per), peak }
end

-- W4: ring ------------------------------------------------------------------
local Ring = { name = "bench.ring" }
function Ring:init(a) self.coord = a end
function Ring:handle_message(_, m)
  if type(m) == "string" then self.next = m; return end
  local rec = type(m) == "table"
  local n = rec and m.seq or m
  if n == 0 then halo.send(self.coord, "done"); return end
  halo.send(self.next, rec and record(n - 1, "token") or n - 1)
end

local function w4(rec)
  local size, laps = 10000, quick and 10 or 100
  local me = halo.self()
  local ring = {}
  for k = 1, size do ring[k] = halo.spawn(Ring, me) end
  for k = 1, size do halo.send(ring[k], ring[k % size + 1]) end
  halo.sleep(1)
  local hops = size * laps
  local t0 = halo.now()
  halo.send(ring[1], rec and record(hops, "token") or hops)
  await(1)
  local dt = halo.now() - t0
  for k = 1, size do halo.kill(ring[k]) end
  return dt * 1e6 / hops
end

-- W5: spawn + terminate churn -------------------------------------------------
local function w5()
  local count = scale(1000000)
  local child = function() end
  local opts = { monitor = true }
  local spawn, receive = halo.spawn, halo.receive
  local t0 = halo.now()
  for _ = 1, count do
    spawn(child, nil, opts)
    receive()
  end
  return (halo.now() - t0) * 1e6 / count
end

-- W6: local call round trip -------------------------------------------------
local Echo = { name = "bench.echo" }
function Echo:handle_call(_, _, req) return req end

-- p50 and p99 from a histogram of ns (0-65535) and a list of larger values.
local function p50_p99(hist, over, count)
  table.sort(over)
  local function pct(p)
    local want, seen = math.ceil(count * p), 0
    for k = 0, 65535 do
      seen = seen + hist[k]
      if seen >= want then return k end
    end
    return over[want - seen] or over[#over]
  end
  return { pct(0.5), pct(0.99) }
end

local function w6()
  local count = scale(1000000)
  local server = halo.spawn(Echo)
  local hist, over = {}, {}
  local call, now, floor = halo.call, halo.now, math.floor
  for k = 0, 65535 do hist[k] = 0 end
  for k = 1, count do
    local t0 = now()
    call(server, k)
    local ns = floor((now() - t0) * 1e6)
    if ns < 65536 then hist[ns] = hist[ns] + 1 else over[#over + 1] = ns end
  end
  halo.kill(server)
  return p50_p99(hist, over, count)
end

-- W7: memory per idle process (a fresh node per size) -------------------------
local function w7(n)
  local Idle = {}
  collectgarbage(); collectgarbage()
  local m0 = halo.memory()
  local t0 = halo.now()
  for _ = 1, n do halo.spawn(Idle) end
  local spawn_ns = (halo.now() - t0) * 1e6 / n
  collectgarbage(); collectgarbage()
  local m1 = halo.memory()
  local heap = (m1.lua - m0.lua + m1.c_heap - m0.c_heap) / n
  local rss = (m1.rss - m0.rss) / n
  log("W7 %d: lua %.0f B, C %.0f B, rss %.0f B per process, spawn %.0f ns (cold)", n,
    (m1.lua - m0.lua) / n, (m1.c_heap - m0.c_heap) / n, rss, spawn_ns)
  return heap, rss
end

-- W6r and W8: a second halo node (another OS process) on loopback --------------
-- It serves an echo for calls and makes sinks on request; each sink tells
-- the coordinator (on the first node) when it has had its share.
local RemoteSink = { name = "bench.rsink" }
function RemoteSink:init(a) self.coord, self.limit, self.n = a.coord, a.limit, 0 end
function RemoteSink:handle_message()
  local n = self.n + 1
  self.n = n
  if n == self.limit then halo.send(self.coord, "done"); self.n = 0 end
end
local Sinks = { name = "bench.sinks" }
function Sinks:handle_call(_, _, req) -- {n, limit, coord} -> list of sink PIDs
  if self.made then for _, p in ipairs(self.made) do halo.kill(p) end end
  self.made = {}
  for k = 1, req[1] do self.made[k] = halo.spawn(RemoteSink, { coord = req[3], limit = req[2] }) end
  return self.made
end

if only and only.peer then
  halo.spawn(Echo, nil, { name = "echo" })
  halo.spawn(Sinks, nil, { name = "sinks" })
  assert(halo.net.connect(only.peer, "127.0.0.1:" .. only.port, 10000))
  halo.receive() -- until the first node kills us
  return
end

local peer_node, peer_os_pid
local function start_peer()
  if peer_node then return end
  local cookie = string.format("bench-%d-%d", os.time(), math.random(1e9))
  local port = halo.net.start({ cookie = cookie, listen = "127.0.0.1:0", registrar = "none" })
  local stat = io.open("/proc/self/stat")
  local self_exe = "/proc/" .. stat:read("*n") .. "/exe"
  stat:close()
  -- with BENCH_CPU=N this node is pinned to N; the peer gets the next CPU
  local cpu = os.getenv("BENCH_CPU")
  local pin = ""
  if cpu then pin = string.format("taskset -c %d ", (tonumber(cpu) + 1) % tonumber(io.popen("nproc"):read("*l"))) end
  local cmd = string.format("%s%s run --name benchpeer@localhost --cookie %s --listen 127.0.0.1:0 --registrar none --watchdog-ms 0 " ..
    "--log-level error %s --peer %s %d > /dev/null 2>&1 & echo $!", pin, self_exe, cookie, arg[0], halo.node_info().Name, port)
  peer_os_pid = tonumber(io.popen(cmd):read("*l"))
  peer_node = "benchpeer@localhost"
  local t0 = halo.now()
  local function up() -- connected, with its whole pool of links
    local p = halo.net.node(peer_node)
    return p and p.Connected and p.PoolLen == p.PoolSize
  end
  while not up() do
    assert(halo.now() - t0 < 10000, "the peer node did not connect")
    halo.sleep(10)
  end
end
local function stop_peer()
  if peer_os_pid then os.execute("kill " .. peer_os_pid .. " 2>/dev/null") end
end

local function w6r()
  local count = scale(100000)
  local server = halo.net.process_id("echo", peer_node)
  local hist, over = {}, {}
  local call, now, floor = halo.call, halo.now, math.floor
  for k = 0, 65535 do hist[k] = 0 end
  for k = 1, count do
    local t0 = now()
    assert(call(server, k))
    local ns = floor((now() - t0) * 1e6)
    if ns < 65536 then hist[ns] = hist[ns] + 1 else over[#over + 1] = ns end
  end
  return p50_p99(hist, over, count)
end

local PAYLOADS = { -- name, value, bytes counted for MB/s, messages
  { "int", 12345, 8, 1000000 }, { "100B", string.rep("x", 100), 100, 1000000 },
  { "1KB", string.rep("k", 1024), 1024, 1000000 }, { "10KB", string.rep("t", 10240), 10240, 200000 },
  { "200KB", string.rep("m", 204800), 204800, 10000 },
}

local function w8(npairs, payload, count)
  local per = math.floor(count / npairs)
  local me = halo.self()
  local sinks = assert(halo.call(halo.net.process_id("sinks", peer_node), { npairs, per, me }, 10000))
  local senders = {}
  for k = 1, npairs do
    senders[k] = halo.spawn(function()
      local _, go = halo.receive()
      local send, sink = halo.send, sinks[k]
      for j = 1, per do
        send(sink, payload)
        if j % 256 == 0 then halo.yield() end
      end
      return go
    end)
  end
  halo.sleep(1)
  local t0 = halo.now()
  for k = 1, npairs do halo.send(senders[k], "go") end
  await(npairs)
  local dt = halo.now() - t0
  return per * npairs / (dt / 1000)
end

local want = function(w) return not only or only[w] end

if only and only.W7 and type(quick) == "string" then -- a child node measuring one size
  local n = tonumber(quick)
  local heap, rss = w7(n)
  io.stdout:write(string.format("%f %f\n", heap, rss))
  halo.shutdown()
  return
end

log("halo bench: quick=%s nproc=%s", tostring(quick), io.popen("nproc"):read("*l"))
-- Each case of W1-W4 with both messages, the record row first.
local function both(id, metric, f)
  for _, m in ipairs(MESSAGES) do
    local mid = id .. "." .. m[1]
    emit(mid, metric, measure(mid, function() return f(m[2]) end)[1])
  end
end
if want("W1") then
  for _, p in ipairs({ 1, 10, 100, 10000 }) do
    both("W1.pairs=" .. p, "ns/msg", function(rec) return w1(p, rec) end)
  end
end
if want("W2") then
  both("W2.1to1", "ns/msg", function(rec) return w2(1, scale(3000000), rec) end)
  both("W2.2pairs", "ns/msg", function(rec) return w2(2, scale(1000000), rec) end)
end
if want("W3") then
  for _, m in ipairs(MESSAGES) do
    local id = "W3.fanin." .. m[1]
    local r = measure(id, function() return w3(m[2]) end)
    emit(id, "ns/msg", r[1])
    emit(id .. ".peak_latency", "ms", r[2])
  end
end
if want("W4") then both("W4.ring", "ns/hop", w4) end
if want("W5") then emit("W5.spawn", "ns/op", measure("W5.spawn", w5)[1]) end
if want("W6") then
  local r = measure("W6.local", w6)
  emit("W6.local.p50", "ns", r[1])
  emit("W6.local.p99", "ns", r[2])
end
if want("W6r") or want("W8") then start_peer() end
if want("W6r") then
  local r = measure("W6r.remote_call", w6r)
  emit("W6r.remote_call.p50", "ns", r[1])
  emit("W6r.remote_call.p99", "ns", r[2])
end
if want("W8") then
  for _, np in ipairs({ 1, 100 }) do
    for _, pl in ipairs(PAYLOADS) do
      local id = string.format("W8.%s.%dp", pl[1], np)
      local r = measure(id, function() return w8(np, pl[2], scale(pl[4])) end, 3)[1]
      emit(id, "msg/s", r, "higher")
      local mb = {}
      for k, v in ipairs(r) do mb[k] = v * pl[3] / 1e6 end
      emit(id .. ".MB", "MB/s", mb, "higher")
    end
  end
end
stop_peer()
if want("W7") then
  local sizes = quick and { 100000 } or { 100000, 1000000 }
  local stat = io.open("/proc/self/stat")
  local self_exe = "/proc/" .. stat:read("*n") .. "/exe" -- this halo binary, for the child nodes
  stat:close()
  for _, n in ipairs(sizes) do
    local label = n >= 1000000 and "1M" or math.floor(n / 1000) .. "k"
    local cmd = string.format("%s run --watchdog-ms 0 --log-level error %s --mem %d", self_exe, arg[0], n)
    local out = io.popen(cmd):read("*a")
    local heap, rss = out:match("(%S+) (%S+)")
    emit("W7.mem." .. label, "B/proc", { tonumber(heap) })
    emit("W7.rss." .. label, "B/proc", { tonumber(rss) })
  end
end
-- L1: halo's own figures (no Erlang peer): a log call below the active
-- level, and one that writes (to /dev/null through a plain logger).
if want("L1") then
  local n = scale(10000000)
  local function below()
    local debug_, t0 = halo.log.debug, halo.now()
    for i = 1, n do debug_("value %d", i) end
    return (halo.now() - t0) * 1e6 / n
  end
  halo.log.set_level("info")
  emit("L1.log_below_level", "ns/call", measure("L1.log_below_level", below)[1])
  assert(halo.log.remove_logger("default"))
  assert(halo.log.add_logger("devnull", { output = "/dev/null" }))
  local m = scale(200000)
  local function written()
    local info, t0 = halo.log.info, halo.now()
    for i = 1, m do info("value %d", i) end
    return (halo.now() - t0) * 1e6 / m
  end
  emit("L1.log_written", "ns/call", measure("L1.log_written", written)[1])
end
-- I1: halo.process_list per process scanned at 100k idle processes (the
-- MCP tool's cost before HTTP and JSON): sorted by mailbox with limit 20,
-- and a filter nothing passes.
if want("I1") then
  local n = scale(100000)
  local idle = { handle_message = function() end }
  local pids = {}
  for i = 1, n do pids[i] = assert(halo.spawn(idle)) end
  local scanned = halo.node_info().ProcessesTotal
  local function per_process(filter)
    return function()
      local reps, t0 = 20, halo.now()
      for _ = 1, reps do halo.process_list(filter) end
      return (halo.now() - t0) * 1e6 / reps / scanned
    end
  end
  emit("I1.sorted_limit20", "ns/proc",
    measure("I1.sorted_limit20", per_process({ sort_by = "mailbox", limit = 20 }))[1])
  emit("I1.filtered_none", "ns/proc",
    measure("I1.filtered_none", per_process({ min = { mailbox = 1 } }))[1])
  for _, pid in ipairs(pids) do halo.kill(pid) end
end
halo.shutdown()
