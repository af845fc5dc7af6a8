-- `halo call` and halo.admin: a CLI that reaches a running node over the
-- cluster protocol. Node adminA runs latency_scenario from a temporary copy
-- of scenarios/ (--lua-path) with the admin switch (--admin); adminB runs
-- it without. The spec edits the copy of scenarios/latency.lua and reloads
-- it with `halo call`: a new version starts (its new description and its
-- new log line, a new worker); a syntax error leaves it running and the
-- CLI exits 1 with the Lua error. Refusals: no admin switch, an unknown
-- operation or wrong arguments (checked by the CLI, and by the service for
-- a request that skips it), an unknown node, a wrong cookie.
local halo = require("halo")
local helper = require("helper")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"
local COOKIE = "admin-spec-cookie"

local ENTRY = "local halo = require('halo'); assert(require('latency').start({ slowweb = '127.0.0.1:1' })); " ..
  "local f = io.open(..., 'w'); f:write('up'); f:close(); while true do halo.receive() end"

local function read(path) return helper.read(path) or "" end
local write = helper.write

describe("halo call", function()
  local dir, reg, pids = nil, nil, {}

  -- Runs `halo call ARGS` with the cookie in HALO_COOKIE; returns stdout,
  -- stderr, exit status.
  local function call(args, env)
    os.execute(("HALO_COOKIE=%s %s call --registrar embedded:%d %s > %s/out 2> %s/err; echo $? > %s/status")
      :format(env or COOKIE, halo_bin, reg, args, dir, dir, dir))
    return read(dir .. "/out"), read(dir .. "/err"), tonumber(read(dir .. "/status"))
  end

  local function start_node(name, admin)
    local ready = ("%s/%s.ready"):format(dir, name)
    pids[#pids + 1] = helper.spawn_os(("%s run --name %s@localhost --cookie %s --registrar embedded:%d " ..
      "--listen 127.0.0.1:0 --lua-path %s/sc %s --log-level info -e %q %s")
      :format(halo_bin, name, COOKIE, reg, dir, admin and "--admin" or "", ENTRY, ready), ("%s/%s.log"):format(dir, name))
    assert(helper.wait_file(ready, 500), name .. " did not start:\n" .. read(("%s/%s.log"):format(dir, name)))
  end

  setup(function()
    dir = helper.script_dir("README", "halo call spec\n")
    os.execute(("cp -r scenarios %s/sc"):format(dir))
    reg = helper.random_port()
    start_node("adminA", true)
    start_node("adminB", false)
  end)
  teardown(function()
    for _, pid in ipairs(pids) do helper.kill(pid) end
    os.execute("rm -rf " .. dir)
  end)

  it("reads a node: application.list, application.info, node_info", function()
    local out, err, status = call("adminA@localhost application.list")
    assert.are.equal(0, status, err)
    local states = {}
    for _, app in ipairs(require("cjson").decode(out)) do states[app.name] = app.state end
    assert.are.equal("running", states.latency_scenario)
    assert.are.equal("running", states.mcp) -- every networked CLI node runs mcp in agent mode
    out, err, status = call("adminB@localhost application.info latency_scenario")
    assert.are.equal(0, status, err)
    assert.truthy(out:find('"State": "running"', 1, true), out)
    out, err, status = call("adminA@localhost node_info")
    assert.are.equal(0, status, err)
    assert.are.equal("adminA@localhost", require("cjson").decode(out).Name)
  end)

  it("reloads an edited scenario; a syntax error leaves the old version running", function()
    local file = dir .. "/sc/latency.lua"
    local original = read(file)
    local before = require("cjson").decode((call("adminA@localhost application.info latency_scenario")))
    local v2 = original:gsub('description = "mailbox latency', 'description = "v2: mailbox latency')
      :gsub('"latency worker started on %%s"', '"latency worker v2 started on %%s"')
    assert.are_not.equal(original, v2)
    write(file, v2)
    local out, err, status = call("adminA@localhost application.reload latency_scenario")
    assert.are.equal(0, status, err)
    assert.are.equal("true\n", out)
    local after = require("cjson").decode((call("adminA@localhost application.info latency_scenario")))
    assert.are.equal("running", after.State)
    assert.truthy(after.Description:find("^v2: "), after.Description)
    assert.are_not.equal(before.Group[1], after.Group[1])
    local log = read(dir .. "/adminA.log")
    assert.truthy(log:find("latency worker v2 started on adminA@localhost", 1, true), log)
    assert.truthy(log:find("application latency_scenario reloaded", 1, true), log)

    write(file, v2 .. "\nlocal broken = \n")
    out, err, status = call("adminA@localhost application.reload latency_scenario")
    assert.are.equal(1, status, out)
    assert.are.equal("", out)
    assert.truthy(err:find("^halo call: adminA@localhost: application.reload: EMALFORMED: .*latency%.lua:%d+:"), err)
    local still = require("cjson").decode((call("adminA@localhost application.info latency_scenario")))
    assert.are.equal("running", still.State)
    assert.are.same(after.Group, still.Group) -- not even restarted
    assert.truthy(still.Description:find("^v2: "))
    write(file, original)
  end)

  it("refuses start, stop and reload on a node without --admin, and keeps serving reads", function()
    for _, op in ipairs({ "application.reload latency_scenario", "application.stop latency_scenario",
                          "application.start latency_scenario" }) do
      local out, err, status = call("adminB@localhost " .. op)
      assert.are.equal(1, status, out)
      assert.truthy(err:find("ENOTALLOWED: not allowed: " .. op:match("^%S+") .. " needs the node's admin switch",
        1, true), err)
    end
    local out = call("adminB@localhost application.info latency_scenario")
    assert.truthy(out:find('"State": "running"', 1, true), out)
  end)

  it("stops and starts an application on a node with --admin", function()
    local out, err, status = call("adminA@localhost application.stop latency_scenario")
    assert.are.equal(0, status, err)
    local info = call("adminA@localhost application.info latency_scenario")
    assert.truthy(info:find('"State": "loaded"', 1, true), info)
    -- lists stay lists in the JSON though the wire drops their marks: no members is []
    assert.truthy(info:find('"Group": []', 1, true), info)
    assert.truthy(info:find('"Tags": []', 1, true), info)
    assert.truthy(info:find('"Applications": []', 1, true), info)
    -- regression: a MODE went to halo.application.start as its timeout, and the start failed
    out, err, status = call("adminA@localhost application.start latency_scenario permanent")
    assert.are.equal(2, status, out)
    assert.truthy(err:find("halo call: application.start takes NAME\n", 1, true), err)
    out, err, status = call("adminA@localhost application.start latency_scenario")
    assert.are.equal(0, status, err)
    assert.truthy(call("adminA@localhost application.info latency_scenario"):find('"State": "running"', 1, true))
    out, err, status = call("adminA@localhost application.info no_such_app")
    assert.are.equal(1, status, out)
    assert.truthy(err:find("adminA@localhost: application.info: EAPPUNKNOWN", 1, true), err)
  end)

  it("names a bad operation, bad arguments, an unknown node and a wrong cookie", function()
    local _, err, status = call("adminA@localhost application.bogus x")
    assert.are.equal(2, status)
    assert.truthy(err:find("halo call: unknown operation 'application.bogus'", 1, true), err)
    assert.truthy(err:find("application.reload NAME", 1, true), err) -- the usage lists the operations
    _, err, status = call("adminA@localhost application.reload")
    assert.are.equal(2, status)
    assert.truthy(err:find("halo call: application.reload takes NAME", 1, true), err)
    -- regression: a timeout that is not a whole number of ms (nan, inf, 1e300) timed out at once
    for _, t in ipairs({ "nan", "inf", "1e300", "-1", "0", "1.5", "0x10" }) do
      _, err, status = call("--timeout " .. t .. " adminA@localhost node_info")
      assert.are.equal(2, status, t)
      assert.truthy(err:find("--timeout must be a whole number of ms from 1 to 2147483647", 1, true), err)
    end
    _, err, status = call("nosuch@localhost node_info")
    assert.are.equal(1, status)
    assert.truthy(err:find("halo call: nosuch@localhost: ENOROUTE: no route: nosuch@localhost is not registered " ..
      "with the embedded registrar at 127.0.0.1:" .. reg, 1, true), err)
    _, err, status = call("adminA@localhost node_info", "not-the-cookie")
    assert.are.equal(1, status)
    assert.truthy(err:find("halo call: adminA@localhost: ENOCONN", 1, true), err)
    assert.truthy(err:find("cookie", 1, true), err)
    _, err, status = call("adminA@localhost node_info", "''")
    assert.are.equal(2, status)
    assert.truthy(err:find("a cookie is required", 1, true), err)
  end)

  it("the service checks a request that did not come through the CLI", function()
    local answers = helper.run(function()
      assert(helper.wait_until(function() return halo.net.resolve("adminA@localhost") end, 5000, 10), "no route")
      local svc = halo.net.process_id("halo_remote", "adminA@localhost")
      local out = {}
      for _, req in ipairs({ { op = "admin", name = "os.execute", args = { "true" } },
                             { op = "admin", name = "application.info", args = { 1 } },
                             { op = "admin", name = "application.list", args = { "extra" } },
                             -- regression: a huge argument was logged (three times) and stalled the node
                             { op = "admin", name = "application.info", args = { ("x"):rep(1000000) } },
                             { op = "admin", name = ("y"):rep(1000000) } }) do
        local r, e = halo.call(svc, req, 5000)
        if not r then error("call: " .. tostring(e), 0) end
        out[#out + 1] = r[2]
      end
      return out
    end, { name = "adminspec@localhost", cookie = COOKIE, listen = "127.0.0.1:0", registrar = "embedded:" .. reg })
    assert.are.same({ "EINCORRECT: incorrect value or argument: unknown operation 'os.execute'",
                      "EINCORRECT: incorrect value or argument: arguments must be a list of strings",
                      "EINCORRECT: incorrect value or argument: application.list takes no arguments",
                      "EINCORRECT: incorrect value or argument: an argument holds at most 255 bytes",
                      "EINCORRECT: incorrect value or argument: unknown operation '" .. ("y"):rep(64) .. "...'" },
                    answers)
    local log = read(dir .. "/adminA.log")
    assert.is_nil(log:find(("x"):rep(256), 1, true), "the huge argument reached the log")
  end)
end)
