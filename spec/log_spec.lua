local halo = require("halo")
local helper = require("helper")
local cjson = require("cjson")

local function tmpfile(tag)
  local path = os.tmpname() .. "." .. tag
  os.remove(path)
  return path
end

local function lines(path)
  local out = {}
  local f = io.open(path)
  if not f then return out end
  for l in f:lines() do out[#out + 1] = l end
  f:close()
  return out
end

describe("halo.log", function()
  it("filters by the source's level and counts what it produces", function()
    local r = helper.run(function()
      assert(halo.log.remove_logger("default")) -- keep the test output quiet
      local before = halo.node_info().LogMessages
      local pid = assert(halo.spawn({
        handle_call = function(_, _, _, req)
          halo.log.info("info %d", 1)
          halo.log.warning("warning %s", "two")
          halo.log("error", "error three")
          return { halo.log.enabled("info"), halo.log.enabled("warning") }
        end,
      }, nil, { log_level = "warning" }))
      local en = halo.call(pid, "go")
      local after = halo.node_info().LogMessages
      local lvl = halo.log.level(pid)
      assert(halo.log.set_level("debug", pid))
      halo.kill(pid)
      return { before = before, after = after, en = en, lvl = lvl, bad = { pcall(halo.log, "loud", "x") } }
    end)
    -- LogMessages: trace, debug, info, warning, error, panic
    assert.equal(r.before[3], r.after[3])
    assert.equal(r.before[4] + 1, r.after[4])
    assert.equal(r.before[5] + 1, r.after[5])
    assert.same({ false, true }, r.en)
    assert.equal("warning", r.lvl)
    assert.is_false(r.bad[1])
    assert.matches("unknown log level 'loud'", r.bad[2])
  end)

  it("writes plain, color and JSON lines to loggers, each with its own levels", function()
    local plain, color, json = tmpfile("log"), tmpfile("log"), tmpfile("jsonl")
    local r = helper.run(function()
      assert(halo.log.remove_logger("default"))
      assert(halo.log.add_logger("plain", { output = plain }))
      assert(halo.log.add_logger("color", { format = "color", output = color, levels = { "error" } }))
      assert(halo.log.add_logger("json", { format = "json", output = json, levels = { "warning", "error" } }))
      local dup = { halo.log.add_logger("json", { output = json }) }
      local pid = assert(halo.spawn({
        name = "spec.logging",
        handle_call = function()
          halo.log.info("hello")
          halo.log.warning("careful: \"quoted\"\nnext")
          halo.log.error("broken")
          return true
        end,
      }, nil, { name = "talker" }))
      halo.call(pid, "go")
      local loggers = halo.log.loggers()
      local info = halo.node_info().Loggers
      assert(halo.log.remove_logger("plain"))
      halo.log.error("after removal")
      local out = { pid = pid, dup = dup, loggers = loggers, info = info,
                    gone = { halo.log.remove_logger("plain") } }
      halo.kill(pid)
      return out
    end, { log_level = "info" })
    local p, c, j = lines(plain), lines(color), lines(json)
    os.remove(plain); os.remove(color); os.remove(json)
    assert.equal("ETAKEN", r.dup[3])
    assert.equal("EUNKNOWN", r.gone[3])
    assert.equal(3, #p) -- info, warning (its newline escaped: one line), error; nothing after removal
    assert.matches(': careful: "quoted"\\nnext$', p[2])
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:]+%.%d+ %[info%] " .. r.pid:gsub("%p", "%%%0") ..
      " 'talker' spec%.logging: hello$", p[1])
    assert.equal(2, #c) -- error only: "broken", then the entry's "after removal"
    assert.matches("\27%[1;31m%[error%]", c[1])
    assert.matches("broken", c[1])
    assert.equal(3, #j) -- warning, error, error after removal
    local w = cjson.decode(j[1])
    assert.equal("warning", w.level)
    assert.equal("careful: \"quoted\"\nnext", w.message)
    assert.same({ type = "process", pid = r.pid, name = "talker", behavior = "spec.logging", node = w.source.node },
      w.source)
    assert.is_true(w.time > 1.6e18)
    local n = cjson.decode(j[3])
    assert.equal("process", n.source.type) -- the entry process
    assert.equal("after removal", n.message)
    local names = {}
    for _, l in ipairs(r.loggers) do names[l.name] = l end
    assert.same({ "error" }, names.color.levels)
    assert.equal("json", names.json.format)
    assert.equal(3, #r.info)
    assert.equal("plain", r.info[1].Name)
  end)

  it("streams records to a subscribed process, filtered by level and source", function()
    local r = helper.run(function()
      assert(halo.log.remove_logger("default"))
      local got = {}
      local function talker(name)
        return assert(halo.spawn({
          handle_message = function(_, _, msg) halo.log(msg[1], msg[2]) end,
        }, nil, { name = name }))
      end
      local a, b = talker("a"), talker("b")
      local sub = assert(halo.spawn({
        init = function() assert(halo.log.subscribe({ levels = { "warning", "error" }, source = "a" })) end,
        handle_log = function(_, rec) got[#got + 1] = rec end,
        handle_message = function() halo.log.error("my own error") end,
      }))
      local all = assert(halo.spawn(function()
        assert(halo.log.subscribe({ name = "everything" }))
        local n = 0
        while n < 3 do
          local _, rec = halo.receive(1000)
          if rec and rec.kind == "log" then n = n + 1; got[#got + 1] = { all = rec.message } end
        end
      end))
      halo.send(a, { "info", "a info" })
      halo.send(a, { "error", "a error" })
      halo.send(b, { "error", "b error" })
      halo.send(sub, "log something yourself")
      assert(helper.wait_until(function() return #got == 4 end))
      local dup = { halo.spawn(function() return halo.log.subscribe({ name = "everything" }) end) }
      local before = #halo.log.loggers()
      halo.kill(sub)
      local after = #halo.log.loggers()
      local out = { got = got, a = a, before = before, after = after }
      halo.kill(a); halo.kill(b); halo.kill(all)
      return out
    end, { log_level = "info" })
    local mine = {}
    for _, g in ipairs(r.got) do
      if g.kind == "log" then mine[#mine + 1] = g end
    end
    assert.equal(1, #mine)
    assert.equal("a error", mine[1].message)
    assert.equal("error", mine[1].level)
    assert.equal(r.a, mine[1].source.pid)
    assert.equal("a", mine[1].source.name)
    assert.equal(r.before - 1, r.after) -- the subscriber's logger went with it
  end)

  it("keeps a disabled log call cheap: no formatting below the level", function()
    local r = helper.run(function()
      local calls = 0
      local costly = setmetatable({}, { __tostring = function() calls = calls + 1; return "x" end })
      halo.log.set_level("error")
      for _ = 1, 1000 do halo.log.debug("%s", costly) end
      return calls
    end)
    assert.equal(0, r)
  end)

  it("does not pass records of logger processes to other logger processes", function()
    local r = helper.run(function()
      assert(halo.log.remove_logger("default"))
      local seen = { 0, 0, 0 }
      local subs = {}
      for i = 1, 3 do
        subs[i] = assert(halo.spawn({
          init = function() assert(halo.log.subscribe({ levels = { "info" } })) end,
          handle_log = function(_, rec)
            seen[i] = seen[i] + 1
            halo.log.info("logger %d saw: %s", i, rec.message) -- would echo forever without the rule
          end,
        }))
      end
      halo.log.info("one record")
      halo.sleep(50)
      for i = 1, 3 do halo.kill(subs[i]) end
      return seen
    end, { log_level = "info" })
    assert.same({ 1, 1, 1 }, r)
  end)
end)
