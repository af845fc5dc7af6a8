--- bench/w13/cpu, interleaved: W1 (ping-pong, 1 and 100 pairs) and W3
-- (fan-in, 1000 senders) as bench/halo/bench.lua runs them, each run once
-- without and once with a CPU profile at the default rate, alternating in
-- one node (so the machine's other jobs weigh on both modes alike); per run
-- the node's CPU time (os.clock) per message, the median of --runs (7).
--   halo run --watchdog-ms 0 --log-level error bench/w13/cpu/interleaved.lua [--runs N] [--quick]
local halo = require("halo")
local cpuprof = require("halo.cpuprof")

local args, runs, scale = { ... }, 7, 1
for i, a in ipairs(args) do
  if a == "--runs" then runs = tonumber(args[i + 1]) end
  if a == "--quick" then scale = 0.2 end
end

local function record(seq, tag) return { seq = seq, tag = tag, weight = 1.5 } end
local function await(n) for _ = 1, n do assert(halo.receive(120000), "benchmark timed out") end end

local Pinger = { name = "bench.pinger" }
function Pinger:init(a) self.coord, self.limit, self.rec = a.coord, a.limit, a.rec end
function Pinger:handle_message(from, m)
  if m == "go" then halo.send(self.peer, self.rec and record(1, "ping") or 1); return end
  if type(m) == "string" then self.peer = m; return end
  local n = self.rec and m.seq or m
  if n >= self.limit then halo.send(self.coord, "done"); return end
  halo.send(from, self.rec and record(n + 1, "ping") or n + 1)
end

-- W1 with pairs_n pairs; returns the messages and the body that runs them.
local function w1(pairs_n, rec)
  local per = math.floor(1000000 * scale / pairs_n)
  return per * pairs_n, function()
    local me, as, bs = halo.self(), {}, {}
    for p = 1, pairs_n do
      as[p] = halo.spawn(Pinger, { coord = me, limit = per, rec = rec })
      bs[p] = halo.spawn(Pinger, { coord = me, limit = per, rec = rec })
      halo.send(as[p], bs[p])
      halo.send(bs[p], as[p])
    end
    for p = 1, pairs_n do halo.send(as[p], "go") end
    await(pairs_n)
    for p = 1, pairs_n do halo.kill(as[p]); halo.kill(bs[p]) end
  end
end

local Fanin = { name = "bench.fanin" }
function Fanin:init(a) self.coord, self.limit, self.n = a.coord, a.limit, 0 end
function Fanin:handle_message()
  self.n = self.n + 1
  if self.n == self.limit then halo.send(self.coord, "done") end
end

local function w3(rec)
  local senders, per = 1000, math.floor(500 * scale)
  return senders * per, function()
    local recv = halo.spawn(Fanin, { coord = halo.self(), limit = senders * per })
    for _ = 1, senders do
      halo.spawn(function()
        local send, now, yield = halo.send, halo.now, halo.yield
        for k = 1, per do
          send(recv, rec and { seq = k, tag = "stamp", at = now() } or now())
          if k % 100 == 0 then yield() end
        end
      end)
    end
    await(1)
    halo.kill(recv)
  end
end

local function cpu_ns_per_msg(n, body)
  collectgarbage()
  local c0 = os.clock()
  body()
  return (os.clock() - c0) * 1e9 / n
end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

local cases = {
  { "W1.pairs=1.record", w1(1, true) }, { "W1.pairs=1.int", w1(1, false) },
  { "W1.pairs=100.record", w1(100, true) }, { "W1.pairs=100.int", w1(100, false) },
  { "W3.fanin.record", w3(true) }, { "W3.fanin.int", w3(false) },
}
print(("%-22s %14s %14s %12s %9s"):format("case", "plain ns/msg", "profiled", "throughput", "samples"))
local sum = 0
for _, c in ipairs(cases) do
  local name, n, body = c[1], c[2], c[3]
  cpu_ns_per_msg(n, body) -- warm-up
  local plain, prof, samples = {}, {}, 0
  for r = 1, runs do
    plain[r] = cpu_ns_per_msg(n, body)
    assert(cpuprof.start({ seconds = 600 }))
    prof[r] = cpu_ns_per_msg(n, body)
    samples = samples + assert(cpuprof.stop()).samples
  end
  local p, q = median(plain), median(prof)
  local d = (p / q - 1) * 100
  sum = sum + d
  print(("%-22s %14.1f %14.1f %+11.1f%% %9d"):format(name, p, q, d, samples))
end
print(("%-22s %14s %14s %+11.1f%%"):format("mean", "", "", sum / #cases))
halo.shutdown()
