--- bench/w13: compares two sets of bench/halo/bench.lua runs (JSON lines),
-- the best ns/msg of each case per file (on a shared machine other jobs only
-- ever slow a run down), and prints the throughput difference of the second
-- against the first (negative: the second costs that much), then the mean.
--   luajit bench/w13/compare.lua A_FILE B_FILE [A_LABEL B_LABEL]
local cjson = require("cjson")
local function load(path)
  local best, order = {}, {}
  for line in io.lines(path) do
    local r = cjson.decode(line)
    if r.metric == "ns/msg" then
      if not best[r.id] then order[#order + 1] = r.id end
      best[r.id] = math.min(best[r.id] or math.huge, r.min)
    end
  end
  return best, order
end
local a, order = load(arg[1])
local b = load(arg[2])
print(("%-24s %14s %14s %12s"):format("case", (arg[3] or "a") .. " ns/msg", (arg[4] or "b") .. " ns/msg", "throughput"))
local sum, n = 0, 0
for _, id in ipairs(order) do
  if b[id] then
    local d = (a[id] / b[id] - 1) * 100
    sum, n = sum + d, n + 1
    print(("%-24s %14.1f %14.1f %+11.1f%%"):format(id, a[id], b[id], d))
  end
end
if n > 0 then print(("%-24s %14s %14s %+11.1f%%"):format("mean", "", "", sum / n)) end
