-- The C/Lua boundary: the thread the bindings push on, registry keys,
-- spawns that fail half-way, the protected gate for hooks, interned names.
local halo = require("halo")
local helper = require("helper")
local build = os.getenv("HALO_BUILD") or "build"

-- Runs a script with the halo binary; returns its output and exit status.
local function run_script(text)
  local dir = helper.script_dir("main.lua", text)
  local f = io.popen(build .. "/halo run " .. dir .. "/main.lua 2>&1; echo \"exit=$?\"")
  local out = f:read("*a")
  f:close()
  os.execute("rm -rf " .. dir)
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

describe("the C/Lua boundary", function()
  -- Regression: the binding kept the last thread that called it; a terminate
  -- callback calling halo inside coroutine.wrap left it pointing at that
  -- coroutine, which a GC then freed before the next hook pushed on it.
  it("never pushes on a coroutine that a terminate callback left behind", function()
    local out, code = run_script([[
local halo = require("halo")
local gc = assert(halo.spawn(function()
  halo.receive()
  collectgarbage("collect")
  collectgarbage("collect")
  halo.send_after(halo.self(), { "released with the record" }, 10000)
end))
local p = assert(halo.spawn({
  handle_message = function() return "stop" end,
  terminate = function()
    coroutine.wrap(function() halo.send(gc, { "collect now" }) end)()
  end,
}))
assert(halo.monitor(gc))
halo.send(p, "stop")
local from, msg = halo.receive(2000)
assert(from and halo.is_down(msg), "gc process did not end")
print("survived")
]])
    assert.matches("survived", out)
    assert.equal(0, code, out)
  end)

  -- Regression: setenv freed the old key before reading its arguments; a
  -- raise left the process holding the freed key, which the next anchored
  -- value reused (and the key was freed twice at exit).
  it("leaves the environment as it was when setenv raises", function()
    local r = helper.run(function()
      halo.setenv("A", 1)
      local ok = pcall(halo.setenv, {}, 2)
      local sink = assert(halo.spawn({ handle_message = function() end }))
      halo.send(sink, { "a payload that must not become the environment" })
      local out = { ok = ok, a = halo.getenv("A"), all = halo.getenv() }
      halo.kill(sink)
      return out
    end)
    assert.is_false(r.ok)
    assert.equal(1, r.a)
    assert.same({ A = 1 }, r.all)
  end)

  -- The gate: a hook that runs out of memory ends the process it works for,
  -- is logged, and the node goes on.
  it("ends the watcher whose down message could not be built, and logs it", function()
    local log = os.tmpname()
    local r = helper.run(function()
      assert(halo.log.remove_logger("default"))
      assert(halo.log.add_logger("file", { output = log }))
      local svc = assert(halo.spawn({ handle_message = function() end }, nil, { name = "svc" }))
      local ready = false
      local w = assert(halo.spawn(function()
        assert(halo.monitor("svc"))
        ready = true
        while true do halo.receive() end
      end))
      assert(helper.wait_until(function() return ready end))
      assert(halo.monitor(w))
      require("halo.core").gate.test_fail_hook_allocs(1, "an exit or down message")
      assert(halo.unregister("svc"))
      local down = helper.await_down(w)
      local after = assert(halo.call(assert(halo.spawn({ handle_call = function() return "fine" end })), "?"))
      halo.kill(svc)
      return { reason = down.reason, after = after }
    end, { log_level = "error" })
    local f = assert(io.open(log))
    local text = f:read("*a")
    f:close()
    os.remove(log)
    assert.equal("out of memory", r.reason)
    assert.equal("fine", r.after)
    assert.matches("out of memory in an exit or down message: the process ends", text, 1, true)
  end)

  -- Regression: spawn raised after the record existed and left it in init,
  -- holding its name, so the node never stopped on its own.
  it("leaves nothing behind when spawn fails half-way", function()
    local beh = { handle_message = function() end }
    local r = helper.run(function()
      local before = halo.node_info()
      -- the environment is built while the coroutine and the PID string
      -- exist, where running out of memory would raise too
      local ok, err = pcall(halo.spawn, beh, nil, { name = "half", env = { [1] = "x" } })
      local after = halo.node_info()
      local again = assert(halo.spawn(beh, nil, { name = "half" }))
      halo.kill(again)
      return { ok = ok, err = err, before = before, after = after }
    end)
    assert.is_false(r.ok)
    assert.matches("env keys must be strings", r.err)
    assert.equal(r.before.ProcessesTotal, r.after.ProcessesTotal)
    assert.equal(0, r.after.ProcessesInit)
  end)

  it("stops the node on its own after a spawn failed half-way", function()
    local out, code = run_script([[
local halo = require("halo")
pcall(halo.spawn, { handle_message = function() end }, nil, { env = { [1] = "x" } })
print("entry done")
]])
    assert.matches("entry done", out)
    assert.equal(0, code, out)
  end)

  it("ends a process whose wake-up could not be prepared, and the node goes on", function()
    local r = helper.run(function()
      local s = assert(halo.spawn({ handle_call = function() end }))
      local c = assert(halo.spawn(function()
        halo.call(s, "never answered", 5000)
        return "called"
      end))
      assert(halo.monitor(c))
      assert(helper.wait_until(function() return halo.process_info(s).MessagesIn == 1 end))
      require("halo.core").gate.test_fail_hook_allocs(1, "a wake-up")
      assert(halo.exit(s, "gone at " .. halo.now())) -- a reason string never seen: building it allocates
      local down = helper.await_down(c)
      local q = assert(halo.spawn(function() halo.sleep(1) return "fine" end))
      assert(halo.monitor(q))
      return { down.reason, helper.await_down(q).reason }
    end)
    assert.same({ "out of memory", "fine" }, r)
  end)

  it("leaves no value behind on the spawner's stack when a copy is made", function()
    local r = helper.run(function()
      local a = halo.spawn(function() return "a reason" end) -- its reason is copied for the spawner
      local b = halo.spawn(function() error("failed") end)
      return { a, b }
    end)
    assert.matches("^<%x+%.0%.%d+>$", r[1])
    assert.matches("^<%x+%.0%.%d+>$", r[2])
  end)
end)

describe("spawn's Lua side", function()
  -- Regression: spawn read a behavior's name (and kind) through __index and
  -- popped it, then allocated the coroutine, PID string and instance before
  -- the core interned it: a collection in between freed a generated name.
  it("keeps a behavior name that __index generates alive until it is interned", function()
    local r = helper.run(function()
      local pause, stepmul = collectgarbage("setpause", 1), collectgarbage("setstepmul", 100000)
      local n, wrong = 0, {}
      local beh = setmetatable({ handle_message = function() end }, {
        __index = function(_, k)
          if k == "name" or k == "kind" then
            n = n + 1
            return k .. "-generated-" .. n .. string.rep("x", 40)
          end
        end,
      })
      for _ = 1, 500 do
        local p = assert(halo.spawn(beh, nil, { env = { A = string.rep("y", 100) } }))
        local info = halo.process_info(p)
        if not info.Behavior:match("^name%-generated%-%d+x+$") then wrong[#wrong + 1] = info.Behavior end
        if not info.Kind:match("^kind%-generated%-%d+x+$") then wrong[#wrong + 1] = info.Kind end
        halo.kill(p)
      end
      collectgarbage("setpause", pause)
      collectgarbage("setstepmul", stepmul)
      return { n = n, wrong = wrong }
    end)
    assert.equal(1000, r.n)
    assert.same({}, r.wrong)
  end)

  -- Regression: the PID string and the pooled coroutine were taken before
  -- the Lua side of a spawn was built; a GC finalizer that spawned meanwhile
  -- took that id (and coroutine), and the spawn returned another's PID.
  it("returns the spawned process's own PID when a finalizer spawns meanwhile", function()
    local r = helper.run(function()
      local inner, wrong = 0, {}
      local beh = { handle_call = function() return halo.self() end }
      for _ = 1, 10 do halo.spawn(function() end) end -- coroutines in the pool
      for _ = 1, 2000 do
        local u = newproxy(true)
        getmetatable(u).__gc = function() -- pcall: it may run after the node (another spec)
          if pcall(halo.spawn, function() end) then inner = inner + 1 end
        end
        u = nil
        local p = assert(halo.spawn(beh, nil, { env = { A = string.rep("z", 200) } }))
        local self, err = halo.call(p, "who")
        if self ~= p then wrong[#wrong + 1] = tostring(p) .. " is " .. tostring(self or err) end
        halo.kill(p)
      end
      collectgarbage()
      return { inner = inner, wrong = wrong }
    end)
    assert.is_true(r.inner > 0)
    assert.same({}, r.wrong)
  end)
end)
