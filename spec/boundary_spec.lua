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
end)
