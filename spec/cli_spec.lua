-- The halo executable: exit codes, --help, SIGTERM, the watchdog.
local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"

local function sh(cmd)
  local f = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = f:read("*a")
  f:close()
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

describe("the halo binary", function()
  it("documents every run flag in --help", function()
    local out, code = sh(halo_bin .. " run --help")
    assert.equal(0, code)
    for _, flag in ipairs({ "--name", "--log-level", "--lua-path", "--watchdog-ms", "--watchdog-hard-ms", "-e" }) do
      assert.truthy(out:find(flag, 1, true), "missing " .. flag)
    end
  end)

  it("rejects an unknown option with status 2", function()
    local out, code = sh(halo_bin .. " run --bogus x.lua")
    assert.equal(2, code)
    assert.matches("unknown or incomplete option", out)
  end)

  it("passes arguments and exits with the shutdown code", function()
    local out, code = sh(halo_bin .. [[ run -e 'local a, b = ...; print(a .. b); require("halo").shutdown(3)' x y]])
    assert.equal(3, code)
    assert.matches("xy", out)
  end)

  it("exits 1 with a traceback when the entry fails", function()
    local out, code = sh(halo_bin .. [[ run -e 'error("kaboom")']])
    assert.equal(1, code)
    assert.matches("kaboom", out)
    assert.matches("stack traceback", out)
  end)

  it("uses --name for PIDs and node_info", function()
    local out, code = sh(halo_bin .. [[ run --name a@b -e 'print(require("halo").node_info().Name)']])
    assert.equal(0, code)
    assert.matches("a@b", out)
    local _, bad = sh(halo_bin .. [[ run --name nohost -e 'print(1)']])
    assert.equal(1, bad)
  end)

  it("stops on SIGTERM, terminating processes, with status 0", function()
    local script = [[
      local halo = require("halo")
      halo.spawn({ terminate = function() print("terminated cleanly") end })
      print("ready"); io.stdout:flush()
      halo.sleep(60000)
    ]]
    local f = io.open("/tmp/halo_sigterm_spec.lua", "w")
    f:write(script)
    f:close()
    local log = os.tmpname()
    -- the signal goes once the node says it is ready (5 s at most)
    local out, code = sh("(" .. halo_bin .. " run /tmp/halo_sigterm_spec.lua > " .. log .. " 2>&1 & p=$!; i=0; " ..
      "until grep -qx ready " .. log .. " || [ $i -ge 500 ]; do i=$((i+1)); sleep 0.01; done; " ..
      "kill -TERM $p; wait $p; st=$?; cat " .. log .. "; exit $st)")
    assert.equal(0, code)
    assert.matches("ready\n", out)
    assert.matches("terminated cleanly", out)
    os.remove("/tmp/halo_sigterm_spec.lua")
    os.remove(log)
  end)

  it("reports a slow callback once with its PID, name and behavior", function()
    local out, code = sh(halo_bin .. [[ run --watchdog-ms 100 -e '
      local halo = require("halo")
      local pid = halo.spawn({ name = "busy.behavior", handle_call = function()
        local t = halo.now(); while halo.now() - t < 400 do end; return 1 end }, nil, { name = "busy" })
      halo.call(pid, 1); halo.shutdown()']])
    assert.equal(0, code)
    local _, n = out:gsub("slow callback", "")
    assert.equal(1, n)
    assert.matches("'busy' busy.behavior has been running for", out)
  end)

  it("runs the shop example end to end", function()
    local out, code = sh(halo_bin .. " run --log-level error examples/shop.lua 1")
    assert.equal(0, code)
    local cjson = require("cjson")
    local tree = cjson.decode(out:match("tree: (%b{})"))
    assert.equal("shop_sup", tree.name)
    assert.equal(4, #tree.children)
    assert.equal(3, #tree.children[2].children) -- the pool's packers
    local orders = cjson.decode(out:match("orders: (%b{})"))
    assert.is_true(tonumber(orders.messages_forwarded) > 0)
    local ev = cjson.decode(out:match("event: (%b{})"))
    assert.equal("active", ev.state)
    assert.matches("shop stopped: loaded", out)
  end)

  it("reports a slow callback that keeps spawning", function()
    local out, code = sh(halo_bin .. [[ run --watchdog-ms 250 -e '
      local halo = require("halo")
      local pid = halo.spawn({ name = "spawner", handle_call = function()
        local t = halo.now()
        while halo.now() - t < 700 do
          halo.spawn(function() end)
          local u = halo.now(); while halo.now() - u < 20 do end
        end
        return 1 end })
      halo.call(pid, 1, 5000); halo.shutdown()']])
    assert.equal(0, code)
    assert.matches("slow callback: <[%x.]+%d> spawner has been running for", out)
  end)

  it("does not take a long batch of short callbacks for one slow callback", function()
    -- 20 queued messages of 30 ms each run in one scheduler batch (600 ms)
    -- whose callbacks share one clock reading; none of them passes 250 ms.
    local out, code = sh(halo_bin .. [[ run --watchdog-ms 250 -e '
      local halo = require("halo")
      local done = 0
      local pid = halo.spawn({ handle_message = function()
        local t = halo.now(); while halo.now() - t < 30 do end; done = done + 1 end })
      for i = 1, 20 do halo.send(pid, i) end
      while done < 20 do halo.sleep(10) end
      print("handled " .. done); halo.shutdown()']])
    assert.equal(0, code)
    assert.matches("handled 20", out)
    assert.not_matches("slow callback", out)
  end)
end)
