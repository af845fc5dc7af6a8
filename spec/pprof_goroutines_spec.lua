-- pprof_goroutines (mcp_tools/pprof_goroutines.lua over halo.stacks and
-- bindings/stacks.c) inside a real node: processes parked in known
-- functions in every kind of wait, a zombee, the tool's own worker; the
-- dump's blocks, labels, C wait frames, markers, grouping, filter, exclude,
-- limit, pid mode and header counts; the radar listener's
-- /debug/pprof/goroutine.
package.path = "scenarios/?.lua;" .. package.path
local halo = require("halo")
local helper = require("helper")

local tool = assert(loadfile("mcp_tools/pprof_goroutines.lua"))()[1]

-- Calls the handler as the MCP server does: text, or nil, error text.
local function call(args)
  local text, err = tool.handler(args or {}, { tool = tool.name, node = halo.node_info().Name, pid = halo.self(),
                                               timeout = 30 })
  return text, err
end

-- The header line of a dump's text and its blocks.
local function blocks(text)
  local head, rest = text:match("^([^\n]*)\n\n?(.*)$")
  local out = {}
  for b in (rest .. "\n"):gmatch("(.-\n)\n") do
    if not b:find("^%[%.%.%. ") then out[#out + 1] = b end -- the "more not shown" line
  end
  return head, out
end

local function block_of(text, needle)
  local _, bs = blocks(text)
  for _, b in ipairs(bs) do if b:find(needle, 1, true) then return b end end
end

-- The tool's text (errors raise).
local function stacks_text(args) return assert(call(args)) end

local function id(pid) return tonumber(pid:match("%.(%d+)>$")) end

describe("pprof_goroutines", function()
  it("shows every process's stack: waits named, labelled, grouped, filtered, by PID", function()
    local r = helper.run(function()
      local out = {}
      -- an HTTP server whose route answers late: a client request waits meanwhile
      local srv = assert(require("halo.http").serve({ host = "127.0.0.1", port = 0, routes = {
        ["/slow"] = function() halo.sleep(3000) return "late" end } }))
      assert(halo.application.load({ name = "spec_stacks_app", mode = "temporary", group = {
        { name = "spec_app_worker", behavior = { name = "spec.appworker", handle_message = function() end } } } }))
      assert(halo.application.start("spec_stacks_app"))
      local silent = assert(halo.spawn({ name = "spec.silent", handle_call = function() end }))
      local B = { name = "spec.parked" }
      function B:stacksSleepsHere() halo.sleep(60000) end
      function B:stacksCallsHere() halo.call(silent, "never answered", 60000) end
      function B:stacksFetchesHere()
        halo.http.request({ host = "127.0.0.1", port = srv.port, path = "/slow", timeout = 60000 })
      end
      function B:stacksInspectsHere() halo.inspect(out.sleeper, nil, 60000) end -- busy in its callback
      function B:stacksSpawnsHere()
        halo.spawn({ name = "spec.slowinit", init = function() halo.sleep(60000) end }, nil, { init_timeout = 60000 })
      end
      function B:handle_message(_, m)
        if m == "sleep" then self:stacksSleepsHere() elseif m == "call" then self:stacksCallsHere()
        elseif m == "inspect" then self:stacksInspectsHere() elseif m == "spawn" then self:stacksSpawnsHere()
        else self:stacksFetchesHere() end
      end
      out.sleeper = assert(halo.spawn(B, nil, { name = "spec_sleeper" }))
      out.caller = assert(halo.spawn(B))
      out.fetcher = assert(halo.spawn(B))
      halo.send(out.sleeper, "sleep")
      halo.send(out.caller, "call")
      halo.send(out.fetcher, "fetch")
      out.inspector = assert(halo.spawn(B))
      out.spawner = assert(halo.spawn(B))
      halo.send(out.inspector, "inspect")
      halo.send(out.spawner, "spawn")
      out.receiver = assert(halo.spawn(function()
        local function stacksParkedHere() local _ = halo.receive() end
        stacksParkedHere()
      end))
      for _ = 1, 12 do assert(halo.spawn({ name = "spec.many", handle_message = function() end })) end
      out.zombee = assert(halo.spawn(require("lifecycle").ZombieChild))
      halo.send(out.zombee, "block")
      assert(helper.wait_until(function()
        local st = halo.process_state
        return st(out.caller) == "wait response" and st(out.fetcher) == "wait response"
          and st(out.inspector) == "wait response" and st(out.spawner) == "wait response"
          and st(out.sleeper) == "running" and st(out.zombee) == "running"
      end))
      halo.kill(out.zombee)
      out.zstate = halo.process_state(out.zombee)
      out.silent = silent
      out.total = halo.node_info().ProcessesTotal
      out.all = call({ limit = 0 })
      out.default = call({ filter = "ProcessRun", exclude = "toolPprof" })
      out.limited = call({ filter = "ProcessRun", exclude = "toolPprof", limit = 3 })
      out.own = call({ filter = "toolPprofGoroutines" })
      out.none = call({ filter = "toolPprofGoroutines", exclude = "toolPprof" })
      out.grouped = call({ debug = 1, limit = 0 })
      out.grouped_many = call({ debug = 1, filter = "spec.many" })
      out.pid = call({ pid = out.sleeper })
      out.pid_zombee = call({ pid = out.zombee:gsub("^<%x+", "<0") }) -- any CRC, brackets optional
      out.by_name = call({ pid = "spec_sleeper" })
      out.unknown = { call({ pid = "<0.0.999999>" }) }
      out.invalid = { call({ pid = "nope" }) }
      -- the radar listener's text
      assert(require("halo.radar").start({ host = "127.0.0.1", port = 0 }))
      local host, port = require("halo.radar").address()
      local base = ("http://%s:%d/debug/pprof/goroutine"):format(host, port)
      out.http2 = assert(halo.http.request({ url = base .. "?debug=2", timeout = 5000 }))
      out.http1 = assert(halo.http.request({ url = base, timeout = 5000 }))
      halo.application.stop("spec_stacks_app")
      require("halo.radar").stop()
      srv:close()
      return out
    end, { log_level = "panic" })

    -- every process, sleeping and waiting ones included, one block each
    local head, all = blocks(r.all)
    assert.equal(("goroutine profile: total %d, showing %d"):format(r.total, r.total), head)
    assert.equal(r.total, #all)
    for _, b in ipairs(all) do
      assert.matches('^goroutine %d+ %[[a-z ]+%]:\n# labels: {"pid":"<%x+%.0%.%d+>"', b)
      assert.matches("\nhalo%.ProcessRun\n\tbindings/gate%.c\n$", b)
    end

    local sleeper = block_of(r.all, r.sleeper)
    assert.equal(("goroutine %d [running]:\n"):format(id(r.sleeper)) ..
      ('# labels: {"pid":"%s", "name":"spec_sleeper", "behavior":"spec.parked"}\n'):format(r.sleeper),
      sleeper:match("^.-\n.-\n"))
    assert.matches("\n%[C%] halo_process_sleep%(%d+ ms%)\n\tcore/timer%.c\nsleep\n\t[^\n]*lua/halo/init%.lua:%d+\n" ..
      "stacksSleepsHere\n\t[^\n]*pprof_goroutines_spec%.lua:%d+\nhandle_message\n\t[^\n]*\nhalo%.dispatch\n" ..
      "\t[^\n]*lua/halo/init%.lua:%d+\nhalo%.ProcessRun\n", sleeper)

    local caller = block_of(r.all, "stacksCallsHere")
    assert.matches("^goroutine %d+ %[wait response%]:\n", caller)
    assert.matches("\n%[C%] halo_process_waitResponse%(call " .. r.silent:gsub("%p", "%%%0") .. ", %d+ ms%)\n" ..
      "\tcore/process%.c\ncall\n", caller)

    local inspector = block_of(r.all, "stacksInspectsHere")
    assert.matches("\n%[C%] halo_process_waitResponse%(inspect " .. r.sleeper:gsub("%p", "%%%0") .. ", %d+ ms%)\n" ..
      "\tcore/process%.c\ninspect\n", inspector)
    local spawner = block_of(r.all, "stacksSpawnsHere")
    assert.matches("^goroutine %d+ %[wait response%]:\n[^\n]*\n" ..
      "%[C%] halo_process_waitSpawn%(<%x+%.0%.%d+>, %d+ ms%)\n\tcore/process%.c\nspawn\n", spawner)
    local slowinit = block_of(r.all, '"behavior":"spec.slowinit"')
    assert.matches("^goroutine %d+ %[init%]:\n", slowinit)
    assert.matches(slowinit:match("^goroutine (%d+)"), spawner:match("waitSpawn%(<%x+%.0%.(%d+)>"))

    local fetcher = block_of(r.all, "stacksFetchesHere")
    assert.matches("^goroutine %d+ %[wait response%]:\n", fetcher)
    assert.matches("\n%[C%] halo_http_waitResponse%(%d+ ms%)\n\tbindings/http%.c\n", fetcher)

    local receiver = block_of(r.all, "stacksParkedHere")
    assert.matches("^goroutine %d+ %[sleep%]:\n", receiver)
    assert.matches("\n%[C%] halo_process_receive%(%)\n\tcore/mailbox%.c\nreceive\n\t[^\n]*init%.lua:%d+\n" ..
      "stacksParkedHere\n", receiver)

    local worker = block_of(r.all, "spec_app_worker")
    assert.matches('"name":"spec_app_worker", "behavior":"spec.appworker", "application":"spec_stacks_app"}', worker)

    assert.equal("zombee", r.zstate)
    local zombee = block_of(r.all, r.zombee)
    assert.matches("^goroutine %d+ %[zombee%]:\n", zombee)
    assert.matches('"behavior":"lifecycle.zombieChild"', zombee)
    assert.matches("\nprocessPayloadDecompression\n\t[^\n]*scenarios/lifecycle%.lua:%d+\n", zombee)

    -- the markers: every actor but the worker running the tool
    head = blocks(r.default)
    assert.equal(("goroutine profile: total %d, matched %d, showing %d"):format(r.total, r.total - 1,
      math.min(50, r.total - 1)), head)
    head, all = blocks(r.limited)
    assert.equal(("goroutine profile: total %d, matched %d, showing 3"):format(r.total, r.total - 1), head)
    assert.equal(3, #all)
    assert.matches(("\n\n%%[%%.%%.%%. %d more matched goroutines not shown%%]\n$"):format(r.total - 4), r.limited)
    head, all = blocks(r.own)
    assert.equal(("goroutine profile: total %d, matched 1, showing 1"):format(r.total), head)
    assert.matches("^goroutine %d+ %[running%]:\n", all[1])
    assert.matches("\ntoolPprofGoroutines\n\t[^\n]*mcp_tools/pprof_goroutines%.lua:%d+\nhandler\n", all[1])
    assert.equal(("goroutine profile: total %d, matched 0, showing 0\n"):format(r.total), r.none)

    -- debug=1: identical stacks grouped, largest group first, the first 10 PIDs listed
    head, all = blocks(r.grouped)
    assert.matches(("^goroutine profile: total %d, showing %%d+$"):format(r.total), head)
    assert.matches("^12 @ %[sleep%]\n# pids:" .. (" <%x+%.0%.%d+>"):rep(10) .. " %(2 more%)\n" ..
      '# labels: {"behavior":"spec.many"}\n#\t%[C%] halo_process_receive%(%)\tcore/mailbox%.c\n', all[1])
    assert.matches("#\thalo%.ProcessRun\tbindings/gate%.c\n$", all[1])
    local n = 0
    for _, b in ipairs(all) do n = n + tonumber(b:match("^(%d+) @")) end
    assert.equal(r.total, n)
    assert.matches("^goroutine profile: total %d+, matched 1, showing 1\n\n12 @ ", r.grouped_many)

    -- pid mode: the one block, sleeping or not, any CRC
    assert.equal((sleeper:gsub("%d+ ms%)", ""):gsub("\n$", "")), (r.pid:gsub("%d+ ms%)", "")))
    assert.matches("^goroutine %d+ %[zombee%]:\n[^\n]*" .. r.zombee:gsub("%p", "%%%0"), r.pid_zombee)
    assert.equal(r.pid:match("^[^\n]*\n[^\n]*\n"), r.by_name:match("^[^\n]*\n[^\n]*\n"))
    assert.is_nil(r.unknown[1])
    assert.matches("^no process <%x+%.0%.999999> on node halo@localhost: it never existed or has terminated",
      r.unknown[2])
    assert.equal("invalid pid: incorrect PID format, expected <crc.high.low>", r.invalid[2])

    -- the radar listener
    assert.equal(200, r.http2.status)
    assert.matches("^goroutine profile: total %d+, showing %d+\n\ngoroutine ", r.http2.body)
    assert.matches("\nstacksSleepsHere\n", r.http2.body)
    assert.matches("^goroutine profile: total %d+, showing %d+\n\n12 @ %[sleep%]\n", r.http1.body)
  end)

  -- A chunk name or a function's name may hold any byte: a newline in a frame
  -- would end the block early or forge another goroutine's header.
  it("keeps hostile chunk and function names on their frame's lines", function()
    local text, n = helper.run(function()
      local f = assert(load("local halo, parent = ... return function() _G['evil\\n\\ngoroutine 7 [running]:'] = function() halo.send(parent, 'parked') halo.sleep(60000) end "
        .. "_G['evil\\n\\ngoroutine 7 [running]:']() end", "@chunk\n\ngoroutine 8 [running]:\n# labels: {}"))(halo, halo.self())
      local pid = halo.spawn(f)
      assert(select(2, halo.receive(5000)) == "parked") -- sent right before it parks
      local t = stacks_text({ pid = pid })
      local all = stacks_text({ limit = 0 })
      halo.kill(pid)
      _G["evil\n\ngoroutine 7 [running]:"] = nil
      local _, count = all:gsub("\ngoroutine %d+ %[", "")
      return t, { count, tonumber(all:match("^goroutine profile: total (%d+)")), all }
    end)
    assert.is_nil(text:find("\n\n", 1, true), text)
    assert.is_nil(text:find("goroutine 8", 1, true) and text:find("\ngoroutine 8", 1, true), text)
    assert.is_nil(text:find("\ngoroutine 7", 1, true), text)
    assert.equal(n[2], n[1], n[3])
  end)
end)
