--- halo.pool: a process that spreads its messages and calls over N workers.
--
--   local pool = assert(halo.pool.start({
--     size = 4,                    -- workers (default 3)
--     worker = "app.worker",       -- behavior table or module name
--     args = { ... },              -- init args of every worker
--     worker_mailbox_size = 100,   -- per worker; 0 = unlimited (default)
--     worker_options = { ... },    -- other spawn options of the workers
--     prefer_idle = true,          -- first a worker waiting for work with an empty
--                                  -- mailbox (a busy one is passed over), then round-robin
--   }, { name = "jobs" }))
--   halo.send(pool, job)           -- goes to one worker, round-robin
--   halo.call(pool, request)       -- the worker's reply comes straight back
--
-- Forwarding happens in C when a message is queued: it keeps the sender and
-- the call ref, skips workers that are gone or full, and when no worker can
-- take the message drops it, logs an error and counts it as unhandled (the
-- sender is not told, as in the reference). A worker that ends is replaced.
-- Exits, downs and inspect requests reach the pool process itself.
local halo = require("halo")
local core = require("halo.core")
local forward = core.pool.forward
local MSG_REGULAR, MSG_REQUEST, MSG_EVENT = core.process.MSG_REGULAR, core.process.MSG_REQUEST, core.process.MSG_EVENT

local M = {}

local Pool = { name = "halo.pool", kind = "pool" }
M.behavior = Pool

local SPEC_KEYS = { size = true, worker = true, args = true, worker_mailbox_size = true, worker_options = true,
                    prefer_idle = true }
local RESERVED = { name = true, link = true, link_parent = true, link_child = true, monitor = true,
                   mailbox_size = true }

--- Validates a pool spec; raises with a clear message on misuse.
function M.check(spec)
  if type(spec) ~= "table" then error("pool spec table expected", 3) end
  for k in pairs(spec) do
    if not SPEC_KEYS[k] then error(("pool spec: unknown field '%s'"):format(tostring(k)), 3) end
  end
  local wt = type(spec.worker)
  if wt ~= "table" and wt ~= "string" then error("pool spec: worker (a behavior table or module name) is required", 3) end
  if spec.size ~= nil and (type(spec.size) ~= "number" or spec.size % 1 ~= 0) then
    error("pool spec: size must be a whole number", 3)
  end
  local mb = spec.worker_mailbox_size
  if mb ~= nil and (type(mb) ~= "number" or mb < 0 or mb % 1 ~= 0) then
    error("pool spec: worker_mailbox_size must be a whole number >= 0", 3)
  end
  if spec.worker_options ~= nil then
    if type(spec.worker_options) ~= "table" then error("pool spec: worker_options must be a table", 3) end
    for k in pairs(spec.worker_options) do
      if RESERVED[k] then error(("pool spec: worker option '%s' is set by the pool"):format(k), 3) end
    end
  end
end

local function spawn_worker(self)
  local opts = { link_parent = true, monitor = true, mailbox_size = self.mailbox_size }
  for k, v in pairs(self.spec.worker_options or {}) do opts[k] = v end
  return halo.spawn(self.spec.worker, self.spec.args, opts)
end

function Pool:init(spec)
  M.check(spec)
  self.spec = spec
  self.size = (spec.size or 0) < 1 and 3 or spec.size
  self.mailbox_size = spec.worker_mailbox_size or 0
  local w = spec.worker
  self.worker_behavior = type(w) == "string" and w or (type(w.name) == "string" and w.name) or "behavior"
  local workers = {}
  for i = 1, self.size do
    local pid, err = spawn_worker(self)
    if not pid then error(("pool: worker %d failed to start: %s"):format(i, tostring(err)), 0) end
    workers[i] = pid
    assert(core.pool.set_workers(workers)) -- forwarding starts with the first worker
    if i == 1 and spec.prefer_idle then assert(core.pool.prefer_idle(true)) end
  end
end

-- Traffic that reached the pool itself: sent before its first worker was
-- up. It goes on to a worker now, sender and ref kept.
function Pool:handle_call(from, ref, req)
  forward(MSG_REQUEST, from, ref, req)
end

function Pool:handle_event(event, message, time)
  forward(MSG_EVENT, halo.self(), 0, { event = event, message = message, time = time })
end

-- A worker ended: start another in its place (a few tries, backing off; the
-- forwarding skips the empty slot meanwhile).
function Pool:handle_message(from, msg)
  if not halo.is_down(msg) or not msg.pid then
    forward(MSG_REGULAR, from, 0, msg)
    return
  end
  local delay = 50
  for attempt = 1, 6 do
    local pid, err = spawn_worker(self)
    if pid then
      core.pool.replace_worker(msg.pid, pid)
      return
    end
    halo.log("error", "pool: replacing worker %s failed (attempt %d): %s", msg.pid, attempt, tostring(err))
    halo.sleep(delay)
    delay = math.min(delay * 2, 2000)
  end
end

function Pool:handle_inspect()
  local info = core.pool.info(halo.self())
  local alive = 0
  for _, pid in ipairs(info.workers) do
    if halo.alive(pid) then alive = alive + 1 end
  end
  return {
    pool_size = tostring(self.size),
    worker_behavior = self.worker_behavior,
    worker_mailbox_size = tostring(self.mailbox_size),
    worker_restarts = ("%d"):format(info.restarts),
    workers_alive = tostring(alive),
    messages_forwarded = ("%d"):format(info.forwarded),
    messages_unhandled = ("%d"):format(info.unhandled),
  }
end

--- Spawns a pool; opts are its spawn options (name, ...). Returns its PID.
function M.start(spec, opts)
  M.check(spec)
  return halo.spawn(Pool, spec, opts)
end

--- The pool's workers and counters: { workers = {pid...}, forwarded, unhandled, restarts }.
function M.info(pool) return core.pool.info(pool) end

return M
