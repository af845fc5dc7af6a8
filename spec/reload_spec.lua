-- halo.application.reload: an application's modules read again from disk
-- and the application restarted; a module that does not load changes nothing.
local halo = require("halo")
local helper = require("helper")

-- A module whose answer is `version`; `extra` is more Lua code in it.
local function module_text(version, extra)
  return ([[
local M = {}
M.Echo = { name = "reload.echo" }
function M.Echo:handle_call(_, _, req) return { version = %q, req = req } end
function M.application(env)
  return { name = "reloadable", modules = { "reload_mod" }, env = env,
           group = { { name = "echo", behavior = M.Echo } } }
end
%s
return M
]]):format(version, extra or "")
end

local dir, old_path

local function write(text)
  local f = assert(io.open(dir .. "/reload_mod.lua", "w"))
  f:write(text)
  f:close()
end

describe("halo.application.reload", function()
  before_each(function()
    dir = helper.script_dir("reload_mod.lua", module_text("v1"))
    old_path = package.path
    package.path = dir .. "/?.lua;" .. package.path
    package.loaded.reload_mod = nil
  end)
  after_each(function()
    package.path = old_path
    package.loaded.reload_mod = nil
    os.execute("rm -rf " .. dir)
  end)

  it("restarts the application with the code on disk, and keeps the old one when the new does not load", function()
    local r = helper.run(function()
      local out = {}
      local mod = require("reload_mod")
      assert(halo.application.load(mod.application({ region = "eu" })))
      assert(halo.application.start("reloadable"))
      local pid1 = halo.whereis("echo")
      out.v1 = halo.call("echo", "a")
      write(module_text("v2"))
      out.reload = { halo.application.reload("reloadable") }
      out.pid_changed = halo.whereis("echo") ~= pid1
      out.v2 = halo.call("echo", "b")
      out.env = halo.application.info("reloadable").Env
      out.loaded_is_new = package.loaded.reload_mod ~= mod
      -- a syntax error: nothing stops, v2 keeps running
      local pid2 = halo.whereis("echo")
      write(module_text("v3", "local x = = 1"))
      out.syntax = { halo.application.reload("reloadable") }
      out.same_pid = halo.whereis("echo") == pid2
      out.still_v2 = halo.call("echo", "c")
      -- an error while loading: the same
      write(module_text("v3", "error('boom at load')"))
      out.runtime = { halo.application.reload("reloadable") }
      out.same_pid2 = halo.whereis("echo") == pid2
      -- a new spec that names another application
      write(module_text("v3"):gsub('name = "reloadable"', 'name = "other"'))
      out.renamed = { halo.application.reload("reloadable") }
      -- a stopped application is reloaded but not started
      assert(halo.application.stop("reloadable"))
      write(module_text("v4"))
      out.stopped = { halo.application.reload("reloadable") }
      out.state = halo.application.info("reloadable").State
      assert(halo.application.start("reloadable"))
      out.v4 = halo.call("echo", "d")
      out.unknown = { halo.application.reload("nope") }
      assert(halo.application.load({ name = "plain", group = { { behavior = mod.Echo } } }))
      out.no_modules = { halo.application.reload("plain") }
      assert(halo.application.stop("reloadable"))
      return out
    end)
    assert.equal("v1", r.v1.version)
    assert.same({ true }, r.reload)
    assert.is_true(r.pid_changed)
    assert.equal("v2", r.v2.version)
    assert.equal("eu", r.env.REGION) -- the spec was rebuilt from the running one's env
    assert.is_true(r.loaded_is_new)
    assert.is_nil(r.syntax[1])
    assert.equal("EMALFORMED", r.syntax[3])
    assert.matches("reload_mod.lua:%d+: unexpected symbol near '='", r.syntax[2])
    assert.is_true(r.same_pid)
    assert.equal("v2", r.still_v2.version)
    assert.equal("EMALFORMED", r.runtime[3])
    assert.matches("boom at load", r.runtime[2])
    assert.is_true(r.same_pid2)
    assert.equal("EINCORRECT", r.renamed[3])
    assert.matches("names other, not reloadable", r.renamed[2])
    assert.same({ true }, r.stopped)
    assert.equal("loaded", r.state)
    assert.equal("v4", r.v4.version)
    assert.equal("EAPPUNKNOWN", r.unknown[3])
    assert.equal("EINCORRECT", r.no_modules[3])
  end)
end)
