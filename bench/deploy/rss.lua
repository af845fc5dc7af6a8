--- bench/deploy/run: RSS of every process of deploy/'s topology run locally
-- after N seconds, the peak, and the compose memory limit.
local deploy = require("deploy_helper")
local helper = require("helper")

local seconds = tonumber(arg[1]) or 120
local dir = helper.script_dir("README", "bench/deploy run directory\n")
local ok, t = pcall(deploy.start, dir)
if not ok then
  io.stderr:write("bench/deploy: ", tostring(t), "\n")
  os.exit(1)
end
local started, peak = os.time(), {}
local names = {}
for _, name in ipairs(t.order) do
  if t.pids[name] then names[#names + 1] = name end
end
names[#names + 1] = "etcd"
names[#names + 1] = "prometheus"
while os.time() - started < seconds do
  for _, name in ipairs(names) do
    local rss = deploy.rss(t.pids[name]) or 0
    peak[name] = math.max(peak[name] or 0, rss)
  end
  os.execute("sleep 1")
end
print(("deploy topology after %d s (%s%s)"):format(os.time() - started, deploy.halo_bin,
  t.observer and "" or "; no observer: this build has no `halo observer`"))
print(("  %-12s %10s %10s %10s %6s"):format("service", "RSS MB", "peak MB", "limit MB", "of limit"))
for _, name in ipairs(names) do
  local rss = deploy.rss(t.pids[name])
  local limit = deploy.bytes(t.compose.services[name].mem_limit)
  print(("  %-12s %10.1f %10.1f %10d %5.0f%%"):format(name, (rss or 0) / 2 ^ 20, peak[name] / 2 ^ 20, limit / 2 ^ 20,
    100 * (rss or 0) / limit))
end
deploy.stop(t)
os.execute("rm -rf " .. dir)
