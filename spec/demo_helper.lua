--- Spec helper for `halo demo` runs (spec/demo_spec.lua, spec/demo_etcd_spec.lua):
-- starting a demo in the background, waiting until its cluster formed,
-- reading its table, radar scrapes, stopping it.
local halo = require("halo")
local helper = require("helper")

local M = {}

M.halo_bin = (os.getenv("HALO_BUILD") or "build") .. "/halo"

--- A file's contents ("" when it cannot be read).
function M.read(path) return helper.read(path) or "" end

--- True while OS process pid exists and is not a zombie.
function M.alive(pid)
  local stat = M.read("/proc/" .. pid .. "/stat")
  return stat ~= "" and not stat:match("^%d+ %b() Z")
end

--- radar's /metrics text of the node on port, or nil (from a process).
function M.metrics(port)
  local res = halo.http.request({ host = "127.0.0.1", port = port, path = "/metrics", timeout = 2000 })
  return res and res.status == 200 and res.body or nil
end

--- The value of the first sample of body matching pattern (a Lua pattern
-- for the name and labels), or nil.
function M.metric(body, pattern)
  return tonumber(body and body:match("\n" .. pattern .. " ([%d.e+-]+)"))
end

--- Starts `halo demo ARGS --run-dir DIR` (made if missing) in the background (a shell waits
-- for it and writes its exit status to DIR/status) and waits (timeout_ms,
-- default 20000) until it says the cluster formed. Returns the demo: pid,
-- dir, out() (its output so far), cookie, nodes ({name, pid, port} per row
-- of its table), slowweb (its pid). Raises with the output when the
-- cluster did not form.
function M.start(dir, args, timeout_ms)
  os.execute("mkdir -p " .. dir)
  os.execute(("sh -c '%s demo %s --run-dir %s > %s/demo.out 2>&1 & echo $! > %s/demo.pid; " ..
    "wait $!; echo $? > %s/status' > /dev/null 2>&1 &"):format(M.halo_bin, args, dir, dir, dir, dir))
  assert(helper.wait_file(dir .. "/demo.pid", nil, true), "the demo did not start")
  local d = { pid = tonumber(M.read(dir .. "/demo.pid")), dir = dir, nodes = {} }
  d.out = function() return M.read(dir .. "/demo.out") end
  local formed = helper.run(function()
    return helper.wait_until(function() return d.out():find("cluster formed", 1, true) end, timeout_ms or 20000, 50)
  end, { timeout = (timeout_ms or 20000) + 5000 })
  assert(formed, "the cluster did not form:\n" .. d.out())
  for name, pid, port in d.out():gmatch("\n  (node%d+@localhost)%s+(%d+)%s+http://127%.0%.0%.1:(%d+)/metrics") do
    d.nodes[#d.nodes + 1] = { name = name, pid = tonumber(pid), port = tonumber(port) }
  end
  d.slowweb = tonumber(d.out():match("\n  slowweb%s+(%d+)"))
  d.cookie = d.out():match("cookie (demo%-%x+)")
  return d
end

--- SIGTERM to the demo; its exit status as a string once it exited
-- (15 s at most), or nil.
function M.stop(d)
  os.execute("kill -TERM " .. d.pid)
  for _ = 1, 750 do
    local status = M.read(d.dir .. "/status"):match("%d+")
    if status then return status end
    os.execute("sleep 0.02")
  end
end

return M
