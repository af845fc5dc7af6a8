--- W9 scrape: the node's Prometheus exposition (halo.metrics.expose, what
-- GET /metrics serves) at 1k, 10k and 100k processes.
--   halo run --watchdog-ms 0 --log-level error bench/halo/w9.lua [--quick] [--sizes 1000,10000]
-- The processes are realistic: four behaviors, one in ten registered under a
-- name, one in five in an application, every one has handled a message, and
-- one in a hundred is stuck in a call with 20 messages queued behind it.
-- Prints one JSON object per figure (median, min and max of the runs):
--   time per scrape in one go (ms), ns per process, bytes per scrape; then
--   scrapes as halo.metrics.expose makes them (steps of 8192 records, the
--   scraper yielding between them): the longest the loop is held by one step,
--   alone and during 2 s of scrapes every 50 ms while 100 W1 ping-pong pairs
--   run, and the longest gap a probe process (1 ms sleeps) sees then, next to
--   the same probe without scrapes.
local halo = require("halo")
local core = require("halo.core")
local cm = core.metrics

local args = { ... }
local sizes, runs = { 1000, 10000, 100000 }, 11
for i = 1, #args do
  if args[i] == "--quick" then sizes, runs = { 1000, 10000 }, 5 end
  if args[i] == "--sizes" then
    sizes = {}
    for s in args[i + 1]:gmatch("%d+") do sizes[#sizes + 1] = tonumber(s) end
  end
end

local function log(...) io.stderr:write(string.format(...), "\n") end

local function emit(id, metric, vals)
  table.sort(vals)
  local med = vals[math.floor((#vals + 1) / 2)]
  io.stdout:write(string.format('{"id":"%s","metric":"%s","median":%.3f,"min":%.3f,"max":%.3f,"runs":%d,"peer":"halo"}\n',
    id, metric, med, vals[1], vals[#vals], #vals))
  io.stdout:flush()
end

-- The population -------------------------------------------------------------------
local Staller = { name = "bench.w9.staller" } -- answers its calls only when told
function Staller:init() self.waiting = {} end
function Staller:handle_call(from, ref) self.waiting[#self.waiting + 1] = { from, ref } end
function Staller:handle_message(_, m)
  if m == "release" then
    for _, w in ipairs(self.waiting) do halo.reply(w[1], w[2], true) end
    self.waiting = {}
  end
end

local behaviors = {}
for i, name in ipairs({ "shop.cart", "shop.order", "web.session", "latency.worker" }) do
  local B = { name = name }
  function B:init(a) self.staller = a end
  function B:handle_message(_, m)
    if m == "hold" then halo.call(self.staller, "hold", 600000) end
  end
  behaviors[i] = B
end

local function populate(n, staller)
  local pids, held = {}, {}
  for i = 1, n do
    local opts = { behavior = behaviors[i % 4 + 1].name }
    if i % 10 == 0 then opts.name = "w9_" .. i end
    if i % 5 == 0 then opts.application = "shop" end
    pids[i] = assert(halo.spawn(behaviors[i % 4 + 1], staller, opts))
    halo.send(pids[i], i % 100 == 0 and "hold" or "tick")
    if i % 100 == 0 then held[#held + 1] = pids[i] end
    if i % 1000 == 0 then halo.yield() end
  end
  halo.sleep(20)
  for _, pid in ipairs(held) do
    for k = 1, 20 do halo.send(pid, k) end
  end
  return pids
end

local function depopulate(pids, staller)
  halo.send(staller, "release")
  halo.sleep(20)
  for i, pid in ipairs(pids) do
    halo.kill(pid)
    if i % 1000 == 0 then halo.yield() end
  end
  while halo.stats().processes > 3 do halo.sleep(10) end
end

-- Loop stalls: a probe sleeps 1 ms at a time and keeps the longest gap ----------------
local function probe_run(coord, ms)
  return halo.spawn(function()
    local t_end, last, worst = halo.now() + ms, halo.now(), 0
    while halo.now() < t_end do
      halo.sleep(1)
      local t = halo.now()
      if t - last > worst then worst = t - last end
      last = t
    end
    halo.send(coord, { "probe", worst })
  end)
end

local Pinger = { name = "bench.pinger" }
function Pinger:handle_message(from, m)
  if type(m) == "string" then
    if m == "stop" then return "normal" end
    self.peer = m
    return
  end
  if m == 0 then halo.send(self.peer, 1) else halo.send(from, m + 1) end
end

-- One scrape in steps; returns the text and the longest step (the loop hold), ms.
local CHUNK = 8192
local function scrape_steps()
  local worst, now = 0, halo.now
  local pass = cm.pass_start()
  while true do
    local t0 = now()
    local done = cm.pass_step(pass, CHUNK)
    local dt = now() - t0
    if dt > worst then worst = dt end
    if done then break end
    halo.yield()
  end
  local t0 = now()
  local text = cm.pass_finish(pass)
  return text, worst, now() - t0
end

local function stall(with_scrapes)
  local me, pairs = halo.self(), {}
  for p = 1, 100 do
    local a, b = halo.spawn(Pinger), halo.spawn(Pinger)
    halo.send(a, b)
    halo.send(b, a)
    halo.send(a, 0)
    pairs[p] = { a, b }
  end
  probe_run(me, 2000)
  local scrapes, worst_scrape, worst_finish = 0, 0, 0
  while true do
    local from, m = halo.receive(with_scrapes and 50 or nil)
    if type(m) == "table" and m[1] == "probe" then
      for _, p in ipairs(pairs) do halo.kill(p[1]); halo.kill(p[2]) end
      return m[2], scrapes, worst_scrape, worst_finish
    end
    if with_scrapes and not from then
      local _, hold, finish = scrape_steps()
      if hold > worst_scrape then worst_scrape = hold end
      if finish > worst_finish then worst_finish = finish end
      scrapes = scrapes + 1
    end
  end
end

-- The runs --------------------------------------------------------------------------
local staller = assert(halo.spawn(Staller))
for _, n in ipairs(sizes) do
  local label = n >= 1000 and math.floor(n / 1000) .. "k" or tostring(n)
  local pids = populate(n, staller)
  local total = halo.stats().processes
  local times, per, bytes, holds, finishes = {}, {}, {}, {}, {}
  cm.expose() -- warm-up
  for r = 1, runs do
    collectgarbage()
    local t0 = halo.now()
    local text = cm.expose()
    local dt = halo.now() - t0
    times[r], per[r], bytes[r] = dt, dt * 1e6 / total, #text
    collectgarbage()
    local _, hold, finish = scrape_steps()
    holds[r], finishes[r] = hold, finish
  end
  log("W9 %s: %d processes, scrape %.3f ms, %.1f ns/process, %d bytes, longest step %.3f ms, finish %.3f ms", label,
    total, times[1], per[1], bytes[1], holds[1], finishes[1])
  emit("W9.scrape." .. label, "ms", times)
  emit("W9.scrape." .. label .. ".per_process", "ns/proc", per)
  emit("W9.scrape." .. label .. ".bytes", "bytes", bytes)
  emit("W9.scrape." .. label .. ".longest_step", "ms", holds)
  emit("W9.scrape." .. label .. ".finish", "ms", finishes)
  local base, with, scrape_max, finish_max = {}, {}, {}, {}
  for r = 1, 3 do
    base[r] = stall(false)
    local s, count, worst, finish = stall(true)
    with[r], scrape_max[r], finish_max[r] = s, worst, finish
    log("W9 %s stall run %d: probe max gap %.2f ms without scrapes, %.2f ms with %d scrapes (longest step %.2f ms, finish %.2f ms)",
      label, r, base[r], s, count, worst, finish)
  end
  emit("W9.stall." .. label .. ".w1_only", "ms", base)
  emit("W9.stall." .. label .. ".w1_scraped", "ms", with)
  emit("W9.stall." .. label .. ".longest_step", "ms", scrape_max)
  emit("W9.stall." .. label .. ".longest_finish", "ms", finish_max)
  depopulate(pids, staller)
end
halo.kill(staller)
halo.shutdown()
