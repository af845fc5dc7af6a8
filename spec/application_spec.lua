local halo = require("halo")
local helper = require("helper")

-- A member that logs its start, may spawn a helper child, and ends on request.
local function member(log, tag)
  return {
    name = "spec.member",
    init = function(self, args)
      log[#log + 1] = "start " .. tag
      self.region = halo.getenv("REGION")
      if args and args.child then
        self.child = assert(halo.spawn({ name = "spec.member_child", handle_message = function() end }))
      end
    end,
    handle_message = function(_, _, msg)
      if msg == "crash" then error("member crashed") end
      if msg == "done" then return "normal" end
    end,
    handle_call = function(self, _, _, req)
      if req == "region" then return self.region or "none" end
      if req == "child" then return self.child end
    end,
    terminate = function(_, reason) log[#log + 1] = "stop " .. tag .. " " .. tostring(reason) end,
  }
end

local function app(name, log, extra)
  local spec = {
    name = name, description = name .. " app", version = "1.0.0",
    group = {
      { behavior = member(log, name .. ".a"), name = name .. "_a", args = { child = true } },
      { behavior = member(log, name .. ".b"), name = name .. "_b" },
    },
  }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return spec
end

describe("halo.application", function()
  it("starts members in order, tags their processes, and stops them newest first", function()
    local r = helper.run(function()
      local log = {}
      assert(halo.application.load(app("shop", log, { env = { region = "eu" }, weight = 5, tags = { "web" } })))
      local loaded = halo.application.info("shop")
      assert(halo.application.start("shop"))
      local a = halo.whereis("shop_a")
      local child = halo.call(a, "child")
      local out = {
        loaded = loaded, running = halo.application.info("shop"),
        app_of_member = halo.process_info(a).Application,
        app_of_child = halo.process_info(child).Application,
        region = halo.call(a, "region"),
        list = halo.application.list(), running_only = halo.application.list({ state = "running" }),
        none = halo.application.list({ name = "zzz" }),
        procs = halo.application.processes("shop"),
        tree = halo.application.tree("shop"),
        again = { halo.application.start("shop") },
        unload = { halo.application.unload("shop") },
        a = a, child = child,
      }
      for i = #log, 1, -1 do if i > 2 then log[i] = nil end end
      assert(halo.application.stop("shop"))
      out.log = log
      out.stopped = halo.application.info("shop")
      out.stop_again = { halo.application.stop("shop") }
      out.procs_stopped = { halo.application.processes("shop") }
      return out
    end)
    assert.equal("loaded", r.loaded.State)
    assert.equal("running", r.running.State)
    assert.equal("temporary", r.running.Mode)
    assert.equal("shop app", r.running.Description)
    assert.same({ Name = "shop", Release = "1.0.0", Commit = "", License = "" }, r.running.Version)
    assert.equal(5, r.running.Weight)
    assert.same({ "web" }, r.running.Tags)
    assert.same({ REGION = "eu" }, r.running.Env)
    assert.equal(2, #r.running.Group)
    assert.equal(r.a, r.running.Group[1])
    assert.equal("shop", r.app_of_member)
    assert.equal("shop", r.app_of_child)
    assert.equal("eu", r.region)
    assert.equal(1, #r.list)
    assert.same({ name = "shop", state = "running", mode = "temporary", description = "shop app",
                  version = "1.0.0", uptime = 0, weight = 5, tags = { "web" }, processes = 2 }, r.list[1])
    assert.equal(1, #r.running_only)
    assert.same({}, r.none)
    assert.equal(3, #r.procs)
    assert.equal("shop", r.tree.name)
    assert.equal(2, #r.tree.children)
    assert.equal(r.a, r.tree.children[1].pid)
    assert.equal(r.child, r.tree.children[1].children[1].pid)
    assert.equal("spec.member_child", r.tree.children[1].children[1].behavior)
    assert.equal("EAPPRUNNING", r.again[3])
    assert.equal("EAPPRUNNING", r.unload[3])
    assert.same({ "start shop.a", "start shop.b", "stop shop.b shutdown", "stop shop.a shutdown" }, r.log)
    assert.equal("loaded", r.stopped.State)
    assert.same({}, r.stopped.Group)
    assert.equal("EAPPSTATE", r.stop_again[3])
    assert.equal("EAPPSTATE", r.procs_stopped[3])
  end)

  it("starts dependencies first and reports missing or circular ones", function()
    local r = helper.run(function()
      local log = {}
      assert(halo.application.load(app("db", log)))
      assert(halo.application.load(app("web", log, { depends = { "db" } })))
      assert(halo.application.load(app("x", log, { depends = { "y" } })))
      assert(halo.application.load(app("y", log, { depends = { "x" } })))
      assert(halo.application.load(app("lonely", log, { depends = { "ghost" } })))
      local out = { web = { halo.application.start("web") }, order = { table.unpack(log) },
                    db = halo.application.info("db").State,
                    circ = { halo.application.start("x") }, missing = { halo.application.start("lonely") },
                    unknown = { halo.application.start("nope") } }
      halo.application.stop("web")
      halo.application.stop("db")
      return out
    end)
    assert.same({ true }, r.web)
    assert.same({ "start db.a", "start db.b", "start web.a", "start web.b" }, r.order)
    assert.equal("running", r.db)
    assert.equal("EAPPDEPENDS", r.circ[3])
    assert.matches("circular", r.circ[2])
    assert.equal("EAPPDEPENDS", r.missing[3])
    assert.matches("ghost", r.missing[2])
    assert.equal("EAPPUNKNOWN", r.unknown[3])
  end)

  it("temporary: keeps running through member ends until the last one is gone", function()
    local r = helper.run(function()
      local log = {}
      assert(halo.application.load(app("t", log)))
      assert(halo.application.start("t"))
      halo.send(halo.whereis("t_a"), "crash")
      assert(helper.wait_until(function() return #halo.application.info("t").Group == 1 end))
      local mid = halo.application.info("t").State
      halo.send(halo.whereis("t_b"), "done")
      assert(helper.wait_until(function() return halo.application.info("t").State == "loaded" end))
      return { mid = mid }
    end)
    assert.equal("running", r.mid)
  end)

  it("transient: a normal end keeps it, an abnormal one stops it", function()
    local r = helper.run(function()
      local log = {}
      assert(halo.application.load(app("tr", log, { mode = "transient" })))
      assert(halo.application.start("tr"))
      halo.send(halo.whereis("tr_b"), "done")
      halo.sleep(20)
      local after_normal = halo.application.info("tr").State
      local a = halo.whereis("tr_a")
      halo.send(a, "crash")
      assert(helper.wait_until(function() return halo.application.info("tr").State == "loaded" end))
      return { after_normal = after_normal, log = log }
    end)
    assert.equal("running", r.after_normal)
    assert.matches("^stop tr.a .*member crashed", r.log[#r.log])
  end)

  it("permanent: any member's end stops the application and the node", function()
    local log = {}
    local code = halo.run(function()
      assert(halo.application.load(app("core", log, { mode = "permanent" })))
      assert(halo.application.start("core"))
      halo.send(halo.whereis("core_b"), "done") -- even a normal end
      halo.sleep(5000)
    end, { log_level = "disabled", watchdog_ms = 0, timeout = 3000 })
    assert.equal(1, code)
    assert.same({ "start core.a", "start core.b", "stop core.b normal", "stop core.a shutdown" }, log)
  end)

  it("fails a start whose member fails, leaving nothing behind", function()
    local r = helper.run(function()
      local log = {}
      local spec = app("bad", log)
      spec.group[2].behavior = { init = function() error("no config") end }
      assert(halo.application.load(spec))
      local res = { halo.application.start("bad") }
      return { res = res, state = halo.application.info("bad").State, log = log, a = halo.whereis("bad_a") }
    end)
    assert.is_nil(r.res[1])
    assert.equal("EINIT", r.res[3])
    assert.equal("loaded", r.state)
    assert.is_nil(r.a)
    assert.same({ "start bad.a", "stop bad.a shutdown" }, r.log)
  end)

  it("answers a start that queued behind the stop of the last running application", function()
    local r = helper.run(function()
      local log = {}
      assert(halo.application.load(app("A", log)))
      assert(halo.application.load(app("B", log)))
      assert(halo.application.start("A"))
      local res = {}
      assert(halo.spawn(function() res.stop = { halo.application.stop("A") } end))
      assert(halo.spawn(function() res.start = { halo.application.start("B", 2000) } end))
      assert(helper.wait_until(function() return res.stop and res.start end, 3000))
      local state = halo.application.info("B").State
      halo.application.stop("B")
      return { res = res, state = state }
    end)
    assert.same({ true }, r.res.stop)
    assert.same({ true }, r.res.start)
    assert.equal("running", r.state)
  end)

  it("rejects malformed specs and duplicate names", function()
    local cases = {
      { {}, "name %(a non%-empty string%) is required" },
      { { name = "a" }, "group %(a list of members%) is required" },
      { { name = "a", group = {}, mode = "forever" }, "mode must be" },
      { { name = "a", group = { { behavior = 1 } } }, "behavior must be" },
      { { name = "a", group = { { behavior = {}, options = { application = "b" } } } }, "set by the application" },
      { { name = "a", group = {}, depends = "b" }, "depends must be a list" },
      { { name = "a", group = {}, colour = 1 }, "unknown field 'colour'" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(halo.application.load, c[1])
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
    local r = helper.run(function()
      return { first = { halo.application.load({ name = "dup", group = { { behavior = {} } } }) },
               second = { halo.application.load({ name = "dup", group = { { behavior = {} } } }) },
               empty = { halo.application.load({ name = "empty", group = {} }) } }
    end)
    assert.same({ true }, r.first)
    assert.equal("ETAKEN", r.second[3])
    assert.equal("EAPPEMPTY", r.empty[3])
  end)

  -- Regression: a record freed while it sat in the run queue at shutdown was
  -- never recycled nor freed (280 bytes; LeakSanitizer fails the ASan run).
  it("stops a node whose application still runs without leaving anything behind", function()
    local r = helper.run(function()
      local W = { name = "w" }
      function W:init() end
      assert(halo.application.load({ name = "left_running", group = { { name = "w1", behavior = W } } }))
      assert(halo.application.start("left_running"))
      return halo.application.info("left_running").State
    end)
    assert.equal("running", r)
  end)
end)
