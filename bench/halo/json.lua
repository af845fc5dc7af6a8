--- halo.json's encoder: ns per process row of halo.process_list{limit = N}
-- pretty-encoded (what MCP process_list returns), the C encoder next to the
-- Lua encoder it replaced (the oracle kept in spec/json_spec.lua).
--   halo run --watchdog-ms 0 --log-level error bench/halo/json.lua [--sizes 20,1000,10000]
-- Prints one JSON object per figure (median, min and max of the runs).
local halo = require("halo")
local json = require("halo.json")

local args = { ... }
local sizes = { 20, 1000, 10000 }
for i = 1, #args do
  if args[i] == "--sizes" then
    sizes = {}
    for s in args[i + 1]:gmatch("%d+") do sizes[#sizes + 1] = tonumber(s) end
  end
end

local function log(...) io.stderr:write(string.format(...), "\n") end

local function oracle()
  local f = assert(io.open("spec/json_spec.lua", "rb"), "run from the repository root")
  local src = f:read("*a")
  f:close()
  local chunk = assert(src:match("%-%- oracle: begin\n(.-)%-%- oracle: end"), "no oracle in spec/json_spec.lua")
  local make = assert(loadstring(chunk .. "\nreturn make_oracle", "=oracle"))()
  return make(json.ARRAY, getmetatable(json.object()), json.null)
end
local old_encode = oracle()

local function stats(xs)
  table.sort(xs)
  return xs[math.ceil(#xs / 2)], xs[1], xs[#xs]
end

local function emit(id, unit, xs)
  local med, min, max = stats(xs)
  print(json.encode({ id = id, unit = unit, median = med, min = min, max = max }))
end

local Idle = { name = "bench.json.idle" }
function Idle:handle_message() end

local total = 0
for _, n in ipairs(sizes) do total = math.max(total, n) end
local pids = {}
for i = 1, total do
  local opts = {}
  if i % 10 == 0 then opts.name = "bench_json_" .. i end
  if i % 5 == 0 then opts.application = "shop" end
  pids[i] = assert(halo.spawn(Idle, nil, opts))
  halo.send(pids[i], "tick")
  if i % 1000 == 0 then halo.yield() end
end
halo.sleep(20)

for _, n in ipairs(sizes) do
  local rows = halo.process_list({ limit = n })
  assert(old_encode(rows, true) == json.encode(rows, true), "the encoders disagree")
  local bytes = #json.encode(rows, true)
  local reps = math.max(1, math.floor(20000 / n))
  local per = { old = {}, new = {} }
  for r = 1, 7 do
    for name, enc in pairs({ old = old_encode, new = json.encode }) do
      local t0 = os.clock() -- CPU time: the machine is shared
      for _ = 1, reps do enc(rows, true) end
      per[name][r] = (os.clock() - t0) * 1e9 / reps / #rows
    end
  end
  local old_med, new_med = stats(per.old), stats(per.new)
  log("json %d rows (%d bytes pretty): Lua %.0f ns/row, C %.0f ns/row (%.1fx), C %.3f ms per call", #rows, bytes,
    old_med, new_med, old_med / new_med, new_med * #rows / 1e6)
  emit("json.process_rows." .. n .. ".lua", "ns/row", per.old)
  emit("json.process_rows." .. n .. ".c", "ns/row", per.new)
end

for i, pid in ipairs(pids) do
  halo.kill(pid)
  if i % 1000 == 0 then halo.yield() end
end
halo.shutdown()
