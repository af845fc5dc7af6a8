-- halo.child: OS processes owned by halo processes, with real programs.
local halo = require("halo")
local helper = require("helper")

local function gone(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local stat = f:read("*a")
  f:close()
  return stat:match("^%d+ %b() Z") ~= nil
end

local function await_exit(ref)
  while true do
    local from, msg = halo.receive(5000)
    assert(from, "no child_exit message")
    if halo.child.is_exit(msg) and msg.ref == ref then return msg end
  end
end

describe("halo.child", function()
  it("reports the exit status and signal to the owner, with the output in a file", function()
    local dir = helper.script_dir("x", "")
    local msg1, msg2, pid1, out = helper.run(function()
      local pid, ref = assert(halo.child.spawn({ file = "sh", args = { "-c", "echo hello; exit 7" }, output = dir .. "/out" }))
      local m1 = await_exit(ref)
      local _, ref2 = assert(halo.child.spawn({ file = "sleep", args = { "30" } }))
      assert.are.equal(1, #halo.child.list())
      assert(halo.child.kill(ref2, "TERM"))
      local m2 = await_exit(ref2)
      assert.are.same({}, halo.child.list())
      return m1, m2, pid, io.open(dir .. "/out"):read("*a")
    end)
    os.execute("rm -rf " .. dir)
    assert.are.same({ kind = "child_exit", ref = msg1.ref, os_pid = pid1, status = 7, signal = 0 }, msg1)
    assert.are.equal(15, msg2.signal)
    assert.are.equal("hello\n", out)
  end)

  it("gives the child env's variables on top of the node's environment, and not in its argv", function()
    local dir = helper.script_dir("x", "")
    local msg, pid, cmdline, out = helper.run(function()
      local pid, ref = assert(halo.child.spawn({ file = "sh", output = dir .. "/out",
        args = { "-c", 'echo "$HALO_SPEC_SECRET $HOME ${LANG-unset}-${PATH:+path}"; sleep 0.3' },
        env = { HALO_SPEC_SECRET = "s3cret", HOME = "/elsewhere" } }))
      local f = assert(io.open("/proc/" .. pid .. "/cmdline"))
      local cmd = f:read("*a")
      f:close()
      assert.has_error(function() halo.child.spawn({ file = "true", env = { "A=B" } }) end,
        "child: env must be a table of strings NAME = VALUE")
      assert.has_error(function() halo.child.spawn({ file = "true", env = { ["A=B"] = "C" } }) end,
        "child: env name 'A=B' is empty or holds '='")
      -- regression: a NUL cut the entry short, so "A\0B" set A (and "B\0C" gave B the value B)
      assert.has_error(function() halo.child.spawn({ file = "true", env = { ["A\0B"] = "C" } }) end,
        "child: env name 'A' holds a NUL")
      assert.has_error(function() halo.child.spawn({ file = "true", env = { A = "B\0C" } }) end,
        "child: env value of 'A' holds a NUL")
      return await_exit(ref), pid, cmd, nil
    end)
    out = io.open(dir .. "/out"):read("*a")
    os.execute("rm -rf " .. dir)
    assert.are.equal(0, msg.status, out)
    assert.truthy(pid > 0)
    assert.is_nil(cmdline:find("s3cret", 1, true), cmdline)
    assert.are.equal("s3cret /elsewhere " .. (os.getenv("LANG") or "unset") .. "-path\n", out)
  end)

  it("stops a child when its owner ends and when the node stops", function()
    local by_owner, by_node = helper.run(function()
      local owner = halo.spawn(function()
        local pid = assert(halo.child.spawn({ file = "sleep", args = { "30" } }))
        halo.send(halo.getenv("parent"), pid)
      end, nil, { env = { parent = halo.self() } })
      assert(owner)
      local _, pid = halo.receive(5000)
      assert(helper.wait_until(function() return gone(pid) end, 5000, 10), "the owner's child outlived it")
      return pid, assert(halo.child.spawn({ file = "sleep", args = { "30" } }))
    end)
    assert.is_true(gone(by_owner))
    assert.is_true(gone(by_node)) -- the node's run returned only after it exited
  end)

  -- regression: a zombee's record lasts until its wait ends (forever for a
  -- sleep that never ends), and its children lasted as long
  it("stops the children of an owner killed inside a callback (a zombee) at once", function()
    local state, os_pid, stopped = helper.run(function()
      local me = halo.self()
      local owner = assert(halo.spawn(function()
        halo.send(me, assert(halo.child.spawn({ file = "sleep", args = { "30" } })))
        halo.sleep(60000)
      end))
      local _, pid = halo.receive(5000)
      assert(halo.kill(owner))
      local st = halo.process_info(owner).State
      return st, pid, helper.wait_until(function() return gone(pid) end, 5000, 10)
    end)
    assert.are.equal("zombee", state)
    assert.is_true(stopped, "the zombee's child still runs: " .. os_pid)
  end)

  it("delivers the exit to an owner whose main queue is full", function()
    local kinds = helper.run(function()
      local owner = halo.spawn(function()
        local _, ref = assert(halo.child.spawn({ file = "true" }))
        assert(halo.send(halo.self(), "filler")) -- the main queue (size 1) is full
        assert.is_nil(halo.send(halo.self(), "one too many"))
        halo.sleep(300) -- the child exits meanwhile
        local got = {}
        for _ = 1, 2 do
          local _, m = halo.receive(2000)
          got[#got + 1] = halo.child.is_exit(m) and m.ref == ref and "exit" or tostring(m)
        end
        table.sort(got)
        halo.send(halo.getenv("parent"), got)
      end, nil, { mailbox_size = 1, env = { parent = halo.self() } })
      assert(owner)
      local _, got = halo.receive(5000)
      return got
    end)
    assert.are.same({ "exit", "filler" }, kinds)
  end)

  it("answers errors for a program that cannot run and an unknown child, and raises on misuse", function()
    helper.run(function()
      local pid, err, code = halo.child.spawn({ file = "/nonexistent/halo-none" })
      assert.is_nil(pid)
      assert.are.equal("ENOENT", code)
      assert.truthy(err:find("cannot run /nonexistent/halo-none", 1, true))
      -- an output file that cannot be opened says so, with the open's own code
      pid, err, code = halo.child.spawn({ file = "true", output = "/nonexistent/dir/out" })
      assert.is_nil(pid)
      assert.are.equal("ENOENT", code)
      assert.truthy(err:find("(output /nonexistent/dir/out)", 1, true), err)
      local ok, kerr = halo.child.kill(12345678, "TERM")
      assert.is_nil(ok)
      assert.truthy(kerr:find("^ETARGETUNKNOWN"))
      assert.has_error(function() halo.child.spawn({}) end, "child: file is required")
      assert.has_error(function() halo.child.spawn({ file = "sh", args = { 1 } }) end)
      assert.has_error(function() halo.child.kill(1, "BOGUS") end)
    end)
  end)
end)
