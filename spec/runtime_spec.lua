local halo = require("halo")
local helper = require("helper")

describe("a node", function()
  it("runs the entry as a process and returns its results", function()
    local pid, state = helper.run(function()
      return halo.self(), halo.process_state(halo.self())
    end)
    assert.matches("^<%x%x%x%x%x%x%x%x%.0%.1001>$", pid)
    assert.equal("running", state)
  end)

  it("spawns a behavior and answers calls", function()
    local counter = {
      init = function(self, start) self.n = start end,
      handle_call = function(self, from, ref, add)
        self.n = self.n + add
        return self.n
      end,
    }
    local a, b = helper.run(function()
      local pid = assert(halo.spawn(counter, 10))
      return halo.call(pid, 5), halo.call(pid, 1)
    end)
    assert.equal(15, a)
    assert.equal(16, b)
  end)

  it("gives its registry keys back when it stops", function()
    -- Anchored messages, PID strings and coroutines live at registry keys the
    -- node reserves; a second node of the same size must reuse them all.
    local reg = debug.getregistry()
    local function busy()
      helper.run(function()
        local sink = halo.spawn(function() halo.sleep(20) end)
        for i = 1, 3000 do
          halo.spawn(function() halo.send(sink, { i }) end, nil, { monitor = true })
        end
        for _ = 1, 3000 do halo.receive() end
      end)
    end
    busy()
    local after_first = #reg
    busy()
    assert.equal(after_first, #reg)
  end)

  it("reports an error in the entry with a traceback", function()
    local code, err = halo.run(function() error("boom") end, { log_level = "disabled", watchdog_ms = 0 })
    assert.equal(1, code)
    assert.matches("boom", err)
    assert.matches("stack traceback", err)
  end)
end)
