--- Spec helper: runs a test body as the entry process of a fresh node and
-- fails the spec when the node leaked processes, timers, Lua refs or
-- message records after it stopped, or when it ran into its deadline.
local halo = require("halo")

local helper = {}

--- Runs fn inside a node and returns what fn returned. opts go to halo.run
-- (default timeout 10 s; watchdog off so tests with long sleeps stay quiet).
function helper.run(fn, opts)
  opts = opts or {}
  opts.timeout = opts.timeout or 10000
  if opts.watchdog_ms == nil then opts.watchdog_ms = 0 end
  opts.log_level = opts.log_level or "panic"
  local result = {}
  local code, err, stats = halo.run(function()
    result = { fn() }
    halo.shutdown()
  end, opts)
  if err then error(err, 0) end
  assert(not stats.timed_out, "the node ran into its deadline (a process never finished)")
  assert(code == 0, "node exit code " .. tostring(code))
  helper.check_leaks(stats)
  return unpack(result, 1, table.maxn(result))
end

--- Fails unless a stopped node's stats show nothing left behind.
function helper.check_leaks(stats)
  local leaks = {}
  for _, k in ipairs({ "processes", "timers", "refs", "messages" }) do
    if stats[k] ~= 0 then leaks[#leaks + 1] = k .. "=" .. tostring(stats[k]) end
  end
  if stats.loop_closed ~= 1 then leaks[#leaks + 1] = "libuv loop not closed" end
  assert(#leaks == 0, "leak after node stop: " .. table.concat(leaks, ", "))
end

--- Polls pred every ms (default 5) until it is true or timeout_ms passes.
function helper.wait_until(pred, timeout_ms, ms)
  local deadline = halo.now() + (timeout_ms or 2000)
  while not pred() do
    if halo.now() > deadline then return false end
    halo.sleep(ms or 5)
  end
  return true
end

--- In a function process: waits (2 s at most) for the down message of pid,
-- skipping other messages; returns it.
function helper.await_down(pid)
  while true do
    local from, msg = halo.receive(2000)
    assert(from, "no down message for " .. pid)
    if halo.is_down(msg) and msg.pid == pid then return msg end
  end
end

-- Background halo nodes (other OS processes) for the cluster specs --------------

--- Kills OS process pid (SIGKILL) and waits (5 s at most) until it is gone;
-- a zombie counts as gone. Shell builtins only, without the sanitizer
-- preload: `ps` deadlocks under it.
function helper.kill(pid)
  os.execute("unset LD_PRELOAD; kill -KILL " .. pid .. " 2>/dev/null; i=0; while [ $i -lt 100 ] && [ -r /proc/" ..
    pid .. "/stat ]; do read -r x y st rest < /proc/" .. pid .. "/stat; [ \"$st\" = Z ] && break; " ..
    "i=$((i+1)); sleep 0.05; done")
end

--- A fresh temporary directory holding file `name` with `text` in it.
function helper.script_dir(name, text)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local f = assert(io.open(dir .. "/" .. name, "w"))
  f:write(text)
  f:close()
  return dir
end

--- Starts `cmd` (a shell command line) in the background with its output in
-- log; returns its OS process id.
function helper.spawn_os(cmd, log)
  local f = io.popen(("%s > %s 2>&1 & echo $!"):format(cmd, log))
  local pid = tonumber(f:read("*l"))
  f:close()
  return pid
end

--- Waits (blocking: it also runs outside any node) until file path exists
-- (with nonempty: and holds a byte: a writer's open and its write are two
-- steps), 3 s at most by default; false when it never came.
function helper.wait_file(path, tries, nonempty)
  for _ = 1, tries or 150 do
    local f = io.open(path)
    if f then
      local ok = not nonempty or f:read(1) ~= nil
      f:close()
      if ok then return true end
    end
    os.execute("sleep 0.02")
  end
  return false
end

--- A port for a registrar of a spec's own, drawn per run from 20000-29999,
-- so parallel runs on one machine (and a demo on 4499) do not collide.
local seeded = false
function helper.random_port()
  if not seeded then
    local f = io.open("/dev/urandom", "rb")
    local b = f and f:read(4) or ""
    if f then f:close() end
    local seed = os.time()
    for i = 1, #b do seed = seed * 256 + b:byte(i) end
    math.randomseed(seed % 2147483647)
    seeded = true
  end
  return math.random(20000, 29999)
end

--- n loopback ports nobody uses (from /proc/net/tcp*), drawn from 21000-29000.
function helper.free_ports(n)
  local used = {}
  for _, f in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    local h = io.open(f)
    if h then
      for line in h:lines() do
        local port = line:match("^%s*%d+:%s*%x+:(%x+)")
        if port then used[tonumber(port, 16)] = true end
      end
      h:close()
    end
  end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  local out = {}
  while #out < n do
    local p = math.random(21000, 29000)
    if not used[p] then
      used[p] = true
      out[#out + 1] = p
    end
  end
  return unpack(out)
end

--- Runs a shell command; returns its output (stderr too) followed by a last
-- line "rc=<exit status>".
function helper.sh(cmd)
  local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = f:read("*a")
  f:close()
  return out
end

--- The text of the file at path, or nil when it cannot be read.
function helper.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes text to the file at path (raises when it cannot).
function helper.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- Runs go tool pprof with args on path (HOME and the Go cache in a temp
-- dir: HOME may be unset); returns its output.
function helper.go_pprof(args, path)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir) == 0)
  local f = assert(io.popen(("HOME=%s GOCACHE=%s/cache GOFLAGS= go tool pprof %s %s 2>&1; rm -rf %s")
    :format(dir, dir, args, path, dir)))
  local out = f:read("*a")
  f:close()
  return out
end

--- Starts Debian's etcd (a single member named name) on loopback client_port
-- and peer_port with its data and log in dir, and waits (15 s at most,
-- blocking) until /health says true; returns its OS process id. Raises
-- with its log when it does not come up.
function helper.start_etcd(dir, name, client_port, peer_port)
  os.execute(("unset LD_PRELOAD; etcd --name %s --data-dir %s/etcd.data --listen-client-urls http://127.0.0.1:%d " ..
    "--advertise-client-urls http://127.0.0.1:%d --listen-peer-urls http://127.0.0.1:%d " ..
    "--initial-advertise-peer-urls http://127.0.0.1:%d --initial-cluster %s=http://127.0.0.1:%d " ..
    "--heartbeat-interval 50 --election-timeout 300 --logger zap --log-level warn " ..
    ">> %s/etcd.log 2>&1 & echo $! > %s/etcd.pid")
    :format(name, dir, client_port, client_port, peer_port, peer_port, name, peer_port, dir, dir))
  local pid = tonumber(helper.read(dir .. "/etcd.pid"))
  for _ = 1, 300 do
    local f = io.popen(("unset LD_PRELOAD; curl -s --max-time 1 http://127.0.0.1:%d/health"):format(client_port))
    local body = f:read("*a")
    f:close()
    if body:find('"health":"true"', 1, true) then return pid end
    os.execute("sleep 0.05")
  end
  if pid then helper.kill(pid) end
  error("etcd did not start: " .. (helper.read(dir .. "/etcd.log") or ""))
end

return helper
