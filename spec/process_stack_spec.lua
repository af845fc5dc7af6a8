-- halo.process_stack (a process's Lua call stack) and what a zombee shows:
-- the function it was killed in, and a running time that ends at the kill.
local halo = require("halo")
local helper = require("helper")

describe("halo.process_stack", function()
  it("shows where a process waits, where a zombee was killed, and the caller's own stack", function()
    local r = helper.run(function()
      local out = {}
      local Parked = { name = "spec.parked" }
      function Parked:deeplyParked() halo.sleep(60000) end
      function Parked:handle_message() self:deeplyParked() end
      local idle = assert(halo.spawn({ name = "spec.idle", handle_message = function() end }))
      local parked = assert(halo.spawn(Parked))
      halo.send(parked, "go")
      halo.sleep(10)
      out.idle = halo.process_stack(idle)
      out.parked = halo.process_stack(parked)
      out.own = halo.process_stack(halo.self())
      halo.kill(parked)
      out.state = halo.process_state(parked)
      out.zombee = halo.process_stack(parked)
      local t1 = halo.process_list({ behavior = "spec.parked" })[1].RunningTime
      halo.sleep(50)
      out.grew = halo.process_list({ behavior = "spec.parked" })[1].RunningTime - t1
      halo.kill(idle)
      out.unknown = { halo.process_stack(idle) }
      return out
    end)
    assert.matches("stack traceback:", r.idle)
    assert.not_matches("deeplyParked", r.idle)
    assert.matches("in function 'deeplyParked'", r.parked)
    assert.matches("in function 'sleep'", r.parked)
    assert.matches("process_stack_spec.lua:%d+:", r.own)
    assert.equal("zombee", r.state)
    assert.matches("in function 'deeplyParked'", r.zombee)
    assert.equal(0, r.grew) -- a zombee never runs again: its running time ended at the kill
    assert.is_nil(r.unknown[1])
    assert.equal("ENOPROC", r.unknown[3])
  end)
end)
