--- `halo demo`: a cluster of scenario nodes and slowweb on loopback, each
-- an OS process this node starts (halo.child), watches and restarts.
--
--   halo demo [--nodes N] [--base-port P] [--log-level L]
--             [--registrar etcd://HOST:PORT] [--cluster NAME] [--run-dir DIR]
--
-- Ports from the base P (default 9100): node i's radar P+i, slowweb P+98,
-- the embedded registrar P+99 (TCP and UDP). A node observer@localhost
-- serves the Observer on 127.0.0.1:9911 (--observer-port; its actions take
-- the token the demo prints). Each node runs
-- scenarios/demo_node.lua; its log (and slowweb's) goes to a file in the
-- run directory (default $TMPDIR/halo-demo.<pid>). The nodes get the
-- cookie in HALO_COOKIE (not in argv, which every user can read) and run
-- with --admin: `halo call` may reload their scenarios. The demo's own node has
-- no network: it polls each radar over HTTP. SIGINT or SIGTERM stops the
-- demo's node, and the node's stop stops every child (halo.child).
local halo = require("halo")

local M = {}

local usage = [[
usage: halo demo [options]

Starts on loopback N nodes node1@localhost .. nodeN@localhost (separate OS
processes, one cookie, the embedded registrar) running radar and the four
scenario applications, and slowweb. It prints what runs where, shows the
cluster forming, restarts a node that exits, and stops everything on
Ctrl-C or SIGTERM (exit status 0). The nodes run with --admin: `halo call`
(with the cookie the table shows) reloads a scenario edited on disk.

options:
  --nodes N              nodes to start (default 5, at most 50)
  --base-port P          node i's metrics on P+i, slowweb on P+98, the
                         embedded registrar on P+99 (default 9100)
  --log-level LEVEL      the nodes' log level (default debug)
  --registrar etcd://H:P use etcd there instead of the embedded registrar
  --cluster NAME         the etcd registrar's cluster (default halo-demo)
  --mcp-port P           node1 serves MCP on http://127.0.0.1:P/mcp (default 9922;
                         0: none); the other nodes answer its proxied calls
  --observer-port P      observer@localhost serves the Observer on
                         http://127.0.0.1:P/ (default 9911; 0: no observer node)
  --run-dir DIR          the nodes' log files (default $TMPDIR/halo-demo.<pid>)
  -h, --help             this text
]]

local partial = false -- a progress line without its newline is on the terminal

local function out(fmt, ...)
  local s = fmt:format(...)
  if partial and s:sub(1, 1) ~= "\r" then s = "\n" .. s end
  partial = s:sub(-1) ~= "\n"
  io.stdout:write(s)
  io.stdout:flush()
end

local function parse(args)
  local o = { nodes = 5, base_port = 9100, log_level = "debug", cluster = "halo-demo", mcp_port = 9922,
              observer_port = 9911 }
  local i = 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    if a == "-h" or a == "--help" then
      io.stdout:write(usage)
      return nil, 0
    end
    local key = ({ ["--nodes"] = "nodes", ["--base-port"] = "base_port", ["--log-level"] = "log_level",
                   ["--registrar"] = "registrar", ["--cluster"] = "cluster", ["--run-dir"] = "run_dir",
                   ["--mcp-port"] = "mcp_port", ["--observer-port"] = "observer_port" })[a]
    if not key or v == nil then
      io.stderr:write(("halo demo: unknown or incomplete option '%s'\n\n%s"):format(tostring(a), usage))
      return nil, 2
    end
    o[key] = v
    i = i + 2
  end
  o.nodes, o.base_port, o.mcp_port = tonumber(o.nodes), tonumber(o.base_port), tonumber(o.mcp_port)
  o.observer_port = tonumber(o.observer_port)
  local err
  if not o.nodes or o.nodes < 1 or o.nodes > 50 or o.nodes % 1 ~= 0 then
    err = "--nodes must be 1..50"
  elseif not o.base_port or o.base_port < 1 or o.base_port + 99 > 65535 or o.base_port % 1 ~= 0 then
    err = "--base-port must be 1..65436"
  elseif not o.mcp_port or o.mcp_port < 0 or o.mcp_port > 65535 or o.mcp_port % 1 ~= 0 then
    err = "--mcp-port must be 0..65535"
  elseif not o.observer_port or o.observer_port < 0 or o.observer_port > 65535 or o.observer_port % 1 ~= 0 then
    err = "--observer-port must be 0..65535"
  elseif not ({ trace = 1, debug = 1, info = 1, warning = 1, error = 1, panic = 1, disabled = 1 })[o.log_level] then
    err = "--log-level must be trace, debug, info, warning, error, panic or disabled"
  elseif o.registrar and not o.registrar:match("^etcd://[^:]+:%d+$") then
    err = "--registrar must be etcd://HOST:PORT"
  end
  if err then
    io.stderr:write("halo demo: ", err, "\n")
    return nil, 2
  end
  return o
end

local function my_pid()
  local f = io.open("/proc/self/stat")
  local pid = f and f:read("*n")
  if f then f:close() end
  return pid or os.time()
end

local function cookie()
  return "demo-" .. assert(require("halo.core").node.random_hex(6))
end

--- Run by each child of the demo: blocks the calling process until the
-- demo (OS process parent_pid) is no longer this OS process's parent, then
-- stops the node. A demo killed by SIGKILL or SIGHUP (its terminal closed)
-- cannot stop its children, which run in sessions of their own; they stop
-- themselves within a second.
function M.until_orphaned(parent_pid)
  while true do
    halo.receive(1000)
    local f = io.open("/proc/self/stat")
    local ppid = f and tonumber(f:read("*a"):match("^%d+ %b() %S+ (%d+)"))
    if f then f:close() end
    if ppid ~= parent_pid then
      halo.log.warning("the demo (pid %d) is gone: stopping", parent_pid)
      return halo.shutdown(0)
    end
  end
end

-- Children ------------------------------------------------------------------------

-- Starts (or restarts) child c; true, or false after reporting why not.
local function start(c)
  local os_pid, ref = halo.child.spawn({ file = c.file, args = c.args, output = c.log, env = c.env })
  if not os_pid then
    out("halo demo: cannot start %s: %s\n", c.name, tostring(ref))
    return false
  end
  c.os_pid, c.ref, c.started = os_pid, ref, halo.now()
  return true
end

local function children(o, halo_bin)
  local entry = package.searchpath("demo_node", package.path)
  if not entry then error("halo demo: scenarios/demo_node.lua is not on the module search path", 0) end
  local slowweb, demo_pid = "127.0.0.1:" .. (o.base_port + 98), tostring(my_pid())
  -- slowweb as `halo slowweb` runs it, and stopping once the demo is gone
  local slowweb_entry = "local addr, demo = ...; local halo = require('halo'); " ..
    "halo.spawn(function() require('halo.demo').until_orphaned(tonumber(demo)) end); " ..
    "return assert(loadfile(package.searchpath('slowweb', package.path)))(addr)"
  local list = { {
    name = "slowweb", file = halo_bin, log = o.run_dir .. "/slowweb.log",
    args = { "run", "--log-level", "warning", "-e", slowweb_entry, slowweb, demo_pid },
    url = "http://" .. slowweb .. "/slow",
  } }
  local registrar = o.registrar or ("embedded:" .. (o.base_port + 99))
  for i = 1, o.nodes do
    local name, port = ("node%d@localhost"):format(i), o.base_port + i
    local args = { "run", "--name", name, "--registrar", registrar, "--admin",
                   "--metrics", "127.0.0.1:" .. port, "--log-level", o.log_level }
    if o.registrar then
      args[#args + 1] = "--cluster"
      args[#args + 1] = o.cluster
    end
    local mcp
    if i == 1 and o.mcp_port > 0 then
      args[#args + 1] = "--mcp"
      args[#args + 1] = "127.0.0.1:" .. o.mcp_port
      mcp = ("http://127.0.0.1:%d/mcp"):format(o.mcp_port)
    end
    args[#args + 1] = entry
    args[#args + 1] = slowweb
    args[#args + 1] = demo_pid
    -- the cookie in the environment: argv is world-readable (/proc/PID/cmdline), environ is not
    list[#list + 1] = { name = name, file = halo_bin, args = args, port = port, env = { HALO_COOKIE = o.cookie },
                        log = ("%s/node%d.log"):format(o.run_dir, i),
                        url = ("http://127.0.0.1:%d/metrics"):format(port), mcp = mcp }
  end
  if o.observer_port > 0 then -- the Observer's node: only the observer (and the mcp agent), stopping with the demo
    local args = { "run", "--name", "observer@localhost", "--registrar", registrar, "--log-level", "info",
                   "--observer", "127.0.0.1:" .. o.observer_port }
    if o.registrar then
      args[#args + 1] = "--cluster"
      args[#args + 1] = o.cluster
    end
    args[#args + 1] = "-e"
    args[#args + 1] = "require('halo.demo').until_orphaned(tonumber((...)))"
    args[#args + 1] = demo_pid
    local url = ("http://127.0.0.1:%d/"):format(o.observer_port)
    list[#list + 1] = { name = "observer@localhost", file = halo_bin, args = args, log = o.run_dir .. "/observer.log",
                        env = { HALO_COOKIE = o.cookie, HALO_OBSERVER_TOKEN = o.observer_token }, url = "-",
                        observer = url }
  end
  return list
end

local function table_of(list, o)
  out("halo demo: %d node%s on loopback, cookie %s, registrar %s\n", o.nodes, o.nodes > 1 and "s" or "",
    o.cookie, o.registrar or ("embedded 127.0.0.1:" .. (o.base_port + 99)))
  out("  %-18s %-8s %-34s %-30s %-24s %s\n", "what", "pid", "url", "mcp", "observer", "log")
  for _, c in ipairs(list) do
    out("  %-18s %-8d %-34s %-30s %-24s %s\n", c.name, c.os_pid or 0, c.url, c.mcp or "-", c.observer or "-", c.log)
  end
  if o.observer_port > 0 then
    out("observer: http://127.0.0.1:%d/ (actions token %s)\n", o.observer_port, o.observer_token)
  end
  out("logs: tail -f %s/node1.log (colours: less -R); stop: Ctrl-C\n", o.run_dir)
  out("reload an edited scenario: HALO_COOKIE=%s %s call %snode1@localhost application.reload latency_scenario\n",
    o.cookie, o.halo_bin, o.registrar and ("--registrar %s --cluster %s "):format(o.registrar, o.cluster)
      or ("--registrar embedded:%d "):format(o.base_port + 99))
end

-- Watching --------------------------------------------------------------------------

-- The node's connected peers from its radar, or nil when it does not answer.
local function peers(c)
  local res = halo.http.request({ host = "127.0.0.1", port = c.port, path = "/metrics", timeout = 1000 })
  if not res or res.status ~= 200 then return nil end
  return tonumber(res.body:match("\nhalo_connected_nodes_total{[^}]*} (%d+)")) or 0
end

-- Reports the exit of child c and restarts it (after a pause that grows
-- while it keeps exiting within 10 s of its start).
local function on_exit(c, msg)
  local how = msg.signal ~= 0 and ("signal " .. msg.signal) or ("status " .. msg.status)
  local quick = halo.now() - c.started < 10000
  c.fails = quick and (c.fails or 0) + 1 or 0
  local pause = math.min(30000, 500 * 2 ^ math.max(0, c.fails - 1))
  out("halo demo: %s (pid %d) exited with %s; restarting in %.1f s (log %s)\n", c.name, msg.os_pid, how,
    pause / 1000, c.log)
  c.os_pid, c.ref, c.restart_at = nil, nil, halo.now() + pause
end

local function restart_due(list)
  for _, c in ipairs(list) do
    if not c.ref and c.restart_at and halo.now() >= c.restart_at then
      if start(c) then
        c.restart_at = nil
        out("halo demo: %s restarted, pid %d\n", c.name, c.os_pid)
      else
        c.restart_at = halo.now() + 5000
      end
    end
  end
end

-- Takes the child-exit messages that came in, waiting up to ms for one
-- (less when a restart falls due sooner).
local function drain(list, ms)
  for _, c in ipairs(list) do
    if c.restart_at then ms = math.max(0, math.min(ms, math.ceil(c.restart_at - halo.now()))) end
  end
  local from, msg = halo.receive(ms)
  while from do
    if halo.child.is_exit(msg) then
      for _, c in ipairs(list) do
        if c.ref == msg.ref then on_exit(c, msg) end
      end
    end
    from, msg = halo.receive(0)
  end
  restart_due(list)
end

local function watch(list, o)
  local rc = os.execute("test -t 1")
  local tty = rc == 0 or rc == true -- LuaJIT answers 0, 5.2-style builds true
  local t0, last, formed = halo.now(), nil, false
  while true do
    local joined = 0
    for _, c in ipairs(list) do
      if c.port and c.ref then
        local n = peers(c)
        if n and n >= o.nodes - 1 then joined = joined + 1 end
      end
    end
    if joined ~= last then
      last = joined
      local line = ("cluster: %d/%d nodes joined (%.1f s)"):format(joined, o.nodes, (halo.now() - t0) / 1000)
      if tty and not formed then out("\r%s\027[K", line) else out("%s\n", line) end
      if joined == o.nodes and not formed then
        formed = true
        out("halo demo: cluster formed; Ctrl-C stops it\n")
      end
    end
    drain(list, formed and 2000 or 250)
  end
end

--- The entry of `halo demo`: halo_bin is the halo executable, then the
-- command line's options.
function M.main(halo_bin, ...)
  local o, code = parse({ ... })
  if not o then return halo.shutdown(code) end
  o.cookie, o.halo_bin = cookie(), halo_bin
  o.observer_token = assert(require("halo.core").node.random_hex(8))
  o.run_dir = o.run_dir or ("%s/halo-demo.%d"):format(os.getenv("TMPDIR") or "/tmp", my_pid())
  os.execute("mkdir -p '" .. o.run_dir:gsub("'", "'\\''") .. "'")
  local list = children(o, halo_bin)
  for _, c in ipairs(list) do
    if not start(c) then return halo.shutdown(1) end
  end
  table_of(list, o)
  -- says what happens when Ctrl-C or SIGTERM stops this node (the node's
  -- stop terminates it before this entry process, whose end stops the children)
  halo.spawn({ terminate = function(_, reason)
    if reason == "shutdown" then out("halo demo: stopping %d processes (SIGTERM, SIGKILL after 5 s)\n", #list) end
  end })
  watch(list, o)
end

return M
