--- lifecycle_scenario: constant spawn/terminate churn and exactly one
-- zombee per node.
--
--   lifecycle_scenario        (temporary)
--   ├── lifecycle_sup         lifecycle.lifecycleSup  simple_one_for_one, 1000 restarts / 5 s
--   │   └── <anon> x N        lifecycle.child         permanent, N = 10..100 started once
--   └── zombie_maker          lifecycle.zombieMaker
--       └── <anon>            lifecycle.zombieChild   parked in processPayloadDecompression, killed: zombee
--
-- A child's init sleeps 0..999 ms inside the supervisor's callback (the
-- supervisor waits for it: the node's highest utilization), then dies after
-- 1..30 s and is restarted. Times are ms.
--   require("lifecycle").start({ children = { 3, 5 } })   -- options override the defaults
local halo = require("halo")
local scenario = require("scenario")

local M = {}

M.NAME = "lifecycle_scenario"

M.defaults = {
  start_after = 3000,        -- the supervisor starts its children
  children = { 10, 100 },    -- how many
  init_sleep = { 0, 999 },   -- each child's init
  lifetime = { 1000, 30000 }, -- each child's life
  zombie_after = 5000,       -- the zombie child is spawned and blocked
  kill_after = 2000,         -- then killed
}

local REASON = "lifecycle child: random termination"

-- lifecycle.child ------------------------------------------------------------

local Child = { name = "lifecycle.child" }
M.Child = Child

function Child:init(o)
  halo.sleep(scenario.draw(o.init_sleep))
  halo.send_after(halo.self(), "die", scenario.draw(o.lifetime))
end

function Child:handle_message(_, msg)
  if msg == "die" then
    halo.log.warning("lifecycle child %s: terminating", halo.self())
    return REASON
  end
end

function Child:terminate(reason)
  if reason ~= "shutdown" then halo.log.error("lifecycle child %s terminated: %s", halo.self(), tostring(reason)) end
end

-- lifecycle_sup --------------------------------------------------------------

M.Sup = scenario.supervisor("lifecycle.lifecycleSup", {
  init = function(self, o)
    self.o = o
    halo.send_after(halo.self(), "start_children", o.start_after)
  end,
  handle_message = function(self, _, msg)
    if msg ~= "start_children" then return false end
    local n = scenario.draw(self.o.children)
    halo.log.info("lifecycle supervisor starting %d children", n)
    for _ = 1, n do
      local pid, err = self:start_child("lifecycle_child", self.o)
      if not pid then halo.log.warning("lifecycle supervisor: start child failed: %s", tostring(err)) end
    end
    return true
  end,
})

-- the zombie -----------------------------------------------------------------

local ZombieChild = { name = "lifecycle.zombieChild" }
M.ZombieChild = ZombieChild

-- Never returns: the process stays inside its callback, so a kill leaves a
-- zombee whose stack shows this function.
function ZombieChild:processPayloadDecompression()
  while true do halo.sleep(2 ^ 40) end
end

function ZombieChild:handle_message(_, msg)
  if msg == "block" then self:processPayloadDecompression() end
end

local ZombieMaker = { name = "lifecycle.zombieMaker" }
M.ZombieMaker = ZombieMaker

function ZombieMaker:init(o)
  self.o = o
  halo.log.info("zombie maker started on %s", scenario.node())
  halo.send_after(halo.self(), "spawn", o.zombie_after)
end

-- One zombee per node run: a restarted (or reloaded) application finds the
-- one it made before and makes no other.
local function have_zombee()
  return #halo.process_list({ behavior = ZombieChild.name, state = "zombee", limit = 1 }) > 0
end

function ZombieMaker:handle_message(_, msg)
  if msg == "spawn" then
    if have_zombee() then
      halo.log.info("zombie maker: this node has its zombie already")
      return
    end
    local pid, err = halo.spawn(ZombieChild)
    if not pid then
      halo.log.warning("zombie maker: spawn failed: %s", tostring(err))
      return
    end
    halo.log.info("zombie maker: spawned zombie child %s, sending block message", pid)
    halo.send(pid, "block")
    halo.send_after(halo.self(), { kill = pid }, self.o.kill_after)
  elseif type(msg) == "table" and msg.kill then
    halo.log.error("zombie maker: child %s is not responding", msg.kill)
    halo.log.warning("zombie maker: killing blocked child %s", msg.kill)
    halo.kill(msg.kill)
  end
end

-- the application ------------------------------------------------------------

--- The application spec; opts override M.defaults (kept as its env, so a
-- reload builds the same).
function M.application(opts)
  local o = scenario.options(M.NAME, M.defaults, opts)
  local sup = { strategy = "simple_one_for_one", intensity = 1000, period = 5,
                children = { { name = "lifecycle_child", behavior = Child, restart = "permanent" } } }
  return {
    name = M.NAME, mode = "temporary", modules = { "scenario", "lifecycle" }, env = o,
    description = "spawn/terminate churn and one zombee per node",
    group = {
      { name = "lifecycle_sup", behavior = M.Sup, args = { spec = sup, options = o } },
      { name = "zombie_maker", behavior = ZombieMaker, args = o },
    },
  }
end

--- Loads and starts the application.
function M.start(opts) return scenario.start(M.application(opts)) end

return M
