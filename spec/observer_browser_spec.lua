-- The Observer in a real browser: Debian's chromium driven headless by
-- puppeteer-core (spec/observer, installed by `make test` with npm ci)
-- against a live cluster of OS processes on loopback: node1..3@localhost
-- running the scenarios (spec/observer/node.lua; node1 also serves MCP with
-- a token) and `halo observer` on observer@localhost, one cookie, an
-- embedded registrar of the spec's own. spec/observer/browser.mjs loads
-- every page and checks what a person sees (see its header); the checks
-- below make sure each of them ran.
local helper = require("helper")

local halo_bin = (os.getenv("HALO_BUILD") or "build") .. "/halo"
local NODES = { "node1@localhost", "node2@localhost", "node3@localhost" }

local sh = helper.sh

-- Waits (blocking, tries x 20 ms) until the file at path matches pattern;
-- the capture, or nil.
local function wait_match(path, pattern, tries)
  for _ = 1, tries do
    local m = (helper.read(path) or ""):match(pattern)
    if m then return m end
    os.execute("sleep 0.02")
  end
end

describe("the Observer in chromium against a three-node cluster", function()
  local dir, pids, c = nil, {}, {}

  setup(function()
    dir = helper.script_dir("README", "observer browser cluster\n")
    local reg = "embedded:" .. helper.random_port()
    c.mcp_port = helper.free_ports(1)
    c.token = "spec-" .. tostring(os.time())
    for i, name in ipairs(NODES) do
      local peers = {}
      for _, other in ipairs(NODES) do
        if other ~= name then peers[#peers + 1] = other end
      end
      local mcp = i == 1 and ("--mcp 127.0.0.1:%d --mcp-token %s"):format(c.mcp_port, c.token) or ""
      pids[#pids + 1] = helper.spawn_os(("%s run --name %s --cookie obsspec --listen 127.0.0.1:0 --registrar %s " ..
        "--log-level warning %s spec/observer/node.lua %s/ready%d %s"):format(halo_bin, name, reg, mcp, dir, i,
        table.concat(peers, " ")), ("%s/node%d.log"):format(dir, i))
    end
    pids[#pids + 1] = helper.spawn_os(("%s observer --name observer@localhost --cookie obsspec --registrar %s " ..
      "--port 0 --token %s"):format(halo_bin, reg, c.token), dir .. "/observer.log")
    for i, name in ipairs(NODES) do
      local ready = wait_match(("%s/ready%d"):format(dir, i), "^ready\n(<[^\n]+>)\n(<[^\n]+>)\n", 1000)
      assert(ready, name .. " not ready: " .. tostring(helper.read(("%s/node%d.log"):format(dir, i))))
      if i == 1 then
        c.victim, c.zombee = helper.read(dir .. "/ready1"):match("^ready\n(<[^\n]+>)\n(<[^\n]+>)\n")
      end
    end
    c.url = wait_match(dir .. "/observer.log", "observer: (http://127%.0%.0%.1:%d+/)", 1000)
    assert(c.url, "the observer node did not start: " .. tostring(helper.read(dir .. "/observer.log")))
  end)

  teardown(function()
    for _, pid in ipairs(pids) do helper.kill(pid) end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("shows every page, the zombee in red, evt_12 unsubscribed, a kill, the topology and a node switch", function()
    -- node without the sanitizer preload of the ASan run; 90 s at most if something wedges
    local out = sh(("unset LD_PRELOAD; timeout 90 node spec/observer/browser.mjs --url %s " ..
      "--nodes %s --victim '%s' --zombee '%s' --mcp http://127.0.0.1:%d/mcp --mcp-token %s")
      :format(c.url, table.concat(NODES, ","), c.victim, c.zombee, c.mcp_port, c.token))
    assert.truthy(out:find("observer_browser: ok\nrc=0", 1, true), out)
    for _, line in ipairs({
      "ok: loaded in %d+ ms: Live, observing node1@localhost",
      "ok: info: %d+ processes, zombee count %d+ in red",
      "ok: applications: the four scenarios listed as running",
      "ok: applications: the tree window of lifecycle_scenario shows %d+ processes",
      "ok: processes: zombee <[^>]+> listed in red",
      "ok: processes: the process window's stack tab shows the zombee's stack",
      "ok: processes: <[^>]+> killed through MCP %(\"process <[^>]+> killed\"%), row gone after %d+ ms",
      "ok: events: evt_12 shows 0 subscribers",
      "ok: network: peer rows for the other nodes; the topology graph shows every node",
      "ok: log: %d+ entries streamed",
      "ok: profiler: captured stacks",
      "ok: switch: header node2@localhost",
      "ok: %d+ snapshots received; no console error, page error or foreign request",
      "ok: the watchers catch a planted console error, page error and request to another origin",
      "screenshots: 1[0-9] in ",
    }) do
      assert.truthy(out:find(line), "missing: " .. line .. "\n" .. out)
    end
    local gone = tonumber(out:match("row gone after (%d+) ms"))
    assert.is_true(gone <= 2000, out)
  end)
end)
