--- halo.cron: jobs on a five-field cron spec.
--
--   halo.cron.add("report", "*/15 9-17 * * 1-5", { send = "reporter" })
--   halo.cron.add("cleanup", "@daily", function(job, time) ... end)
--   halo.cron.add("poll", "@every 30s", { send = poller, message = "poll" })
--
-- Spec: minute (0-59) hour (0-23) day-of-month (1-31, L = last day)
-- month (1-12) day-of-week (1-7, Monday = 1 ... Sunday = 7; nL = last
-- weekday n of the month, n#k = k-th weekday n). Each field takes *, n, a-b,
-- */s, a-b/s and comma lists; * may not be combined with other items. When
-- both day fields are restricted a day matches either (as in cron).
-- Shorthands: @hourly (0 * * * *), @daily / @midnight (0 0 * * *), @weekly
-- (0 0 * * 7), @monthly (0 0 1 * *), @yearly / @annually (0 0 1 1 *), and
-- @every <duration> (30s, 5m, 1h30m: from the time the job was added).
--
-- Actions: { send = target, message = value } sends the message (default:
-- {kind = "cron", job = name, time = unix seconds}) to a PID or name; a
-- function runs in a new process as fn(job, time); its error becomes the
-- job's last error. A scheduler process (behavior halo.cron) lives while
-- there are jobs; it wakes at the next due time. For tests, set_clock(fn)
-- replaces the wall clock and advance(t) runs what is due up to t.
local halo = require("halo")
local core = require("halo.core")
local json = require("halo.json") -- lists carry its array mark: empty ones print []

local M = {}

-- Spec parsing ---------------------------------------------------------------------

local FIELDS = {
  { name = "minute", lo = 0, hi = 59 },
  { name = "hour", lo = 0, hi = 23 },
  { name = "day-of-month", lo = 1, hi = 31 },
  { name = "month", lo = 1, hi = 12 },
  { name = "day-of-week", lo = 1, hi = 7 },
}
local MACROS = {
  ["@hourly"] = "0 * * * *", ["@daily"] = "0 0 * * *", ["@midnight"] = "0 0 * * *",
  ["@weekly"] = "0 0 * * 7", ["@monthly"] = "0 0 1 * *", ["@yearly"] = "0 0 1 1 *", ["@annually"] = "0 0 1 1 *",
}

local function bad(fmt, ...) return nil, "ECRONSPEC: incorrect cron spec: " .. fmt:format(...), "ECRONSPEC" end

local function parse_duration(s)
  local total, rest = 0, s
  if rest == "" then return nil end
  while rest ~= "" do
    local num, unit, tail = rest:match("^(%d+)([hms])(.*)$")
    if not num then return nil end
    total = total + tonumber(num) * ({ h = 3600, m = 60, s = 1 })[unit]
    rest = tail
  end
  return total
end

-- One field into { set = {[v] = true}, any = bool, last = bool, nth = {...}, lastdow = {...} }.
local function parse_field(text, f, index)
  local r = { set = {}, any = false, last = false, nth = {}, lastdow = {} }
  if text == "*" then
    r.any = true
    for v = f.lo, f.hi do r.set[v] = true end
    return r
  end
  for item in (text .. ","):gmatch("([^,]*),") do
    if item == "" then return bad("empty item in %s field '%s'", f.name, text) end
    if item:find("*", 1, true) and item ~= "*" and not item:match("^%*/%d+$") then
      return bad("'%s' in the %s field", item, f.name)
    end
    if item == "*" then return bad("* combined with other items in the %s field '%s'", f.name, text) end
    local a, b, step
    if item:match("^%*/%d+$") then
      a, b, step = f.lo, f.hi, tonumber(item:match("/(%d+)$"))
    elseif index == 3 and item == "L" then
      r.last = true
    elseif index == 5 and item:match("^%d+L$") then
      local d = tonumber(item:match("^(%d+)"))
      if d < 1 or d > 7 then return bad("weekday %d out of 1-7 in '%s'", d, item) end
      r.lastdow[d] = true
    elseif index == 5 and item:match("^%d+#%d+$") then
      local d, k = item:match("^(%d+)#(%d+)$")
      d, k = tonumber(d), tonumber(k)
      if d < 1 or d > 7 then return bad("weekday %d out of 1-7 in '%s'", d, item) end
      if k < 1 or k > 5 then return bad("occurrence %d out of 1-5 in '%s'", k, item) end
      r.nth[#r.nth + 1] = { d, k }
    else
      local x, y, s = item:match("^(%d+)%-(%d+)/(%d+)$")
      if x then
        a, b, step = tonumber(x), tonumber(y), tonumber(s)
      else
        x, y = item:match("^(%d+)%-(%d+)$")
        if x then
          a, b, step = tonumber(x), tonumber(y), 1
        elseif item:match("^%d+$") then
          a = tonumber(item); b, step = a, 1
        else
          return bad("'%s' in the %s field", item, f.name)
        end
      end
    end
    if a then
      if a < f.lo or b > f.hi then return bad("%s out of %d-%d in the %s field", item, f.lo, f.hi, f.name) end
      if a > b then return bad("range %s runs backwards in the %s field", item, f.name) end
      if step < 1 then return bad("step 0 in '%s'", item) end
      for v = a, b, step do r.set[v] = true end
    end
  end
  return r
end

--- Parses a spec; returns a schedule or nil, "ECRONSPEC: incorrect cron spec: ...".
function M.parse(spec)
  if type(spec) ~= "string" then return bad("a string expected, got %s", type(spec)) end
  local s = spec:match("^%s*(.-)%s*$")
  local every = s:match("^@every%s+(%S+)$")
  if every then
    local secs = parse_duration(every)
    if not secs or secs < 1 then return bad("duration '%s' (use 30s, 5m, 1h30m)", every) end
    return { spec = spec, every = secs }
  end
  if s:sub(1, 1) == "@" then
    if not MACROS[s] then return bad("unknown shorthand '%s'", s) end
    s = MACROS[s]
  end
  local parts = {}
  for p in s:gmatch("%S+") do parts[#parts + 1] = p end
  if #parts ~= 5 then return bad("%d fields, expected 5 (minute hour day-of-month month day-of-week)", #parts) end
  local sched = { spec = spec }
  for i, f in ipairs(FIELDS) do
    local r, err, code = parse_field(parts[i], f, i)
    if not r then return nil, err, code end
    sched[i] = r
  end
  return sched
end

-- Matching ---------------------------------------------------------------------------

local function days_in_month(y, m)
  local d = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if m == 2 and (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then return 29 end
  return d[m]
end

local function day_matches(s, t) -- t: os.date table
  local dom, dow = s[3], s[5]
  local wday = (t.wday + 5) % 7 + 1 -- os.date: Sunday = 1; here Monday = 1 ... Sunday = 7
  local dim = days_in_month(t.year, t.month)
  local dom_ok = dom.set[t.day] or (dom.last and t.day == dim)
  local dow_ok = dow.set[wday] or (dow.lastdow[wday] and t.day + 7 > dim)
  for _, nk in ipairs(dow.nth) do
    if nk[1] == wday and math.floor((t.day - 1) / 7) + 1 == nk[2] then dow_ok = true end
  end
  if dom.any and dow.any then return true end
  if dom.any then return dow_ok end
  if dow.any then return dom_ok end
  return dom_ok or dow_ok
end

local function to_time(t, utc)
  if not utc then return os.time(t) end
  -- os.time reads a table as local time: correct by the zone offset at that time
  local lt = os.time(t)
  local u = os.date("!*t", lt)
  u.isdst = false
  return lt + (lt - os.time(u))
end

--- The first minute strictly after `after` (unix seconds) that matches;
-- nil when none in the next five years. utc: evaluate in UTC, not local time.
function M.next_time(sched, after, utc)
  if sched.every then return after + sched.every end
  local fmt = utc and "!*t" or "*t"
  local t = os.date(fmt, after - after % 60 + 60)
  local year0 = t.year
  while t.year <= year0 + 5 do
    if sched[4].set[t.month] and day_matches(sched, t) then
      for h = t.hour, 23 do
        if sched[2].set[h] then
          for m = (h == t.hour) and t.min or 0, 59 do
            if sched[1].set[m] then
              return to_time({ year = t.year, month = t.month, day = t.day, hour = h, min = m, sec = 0, isdst = nil }, utc)
            end
          end
        end
      end
    end
    -- next day at 00:00
    local n = to_time({ year = t.year, month = t.month, day = t.day + 1, hour = 0, min = 0, sec = 0 }, utc)
    t = os.date(fmt, n)
    t.hour, t.min = 0, 0
  end
  return nil
end

-- Registry and scheduler ---------------------------------------------------------------

local reg = { serial = nil }
local function registry()
  local s = core.node.serial()
  if reg.serial ~= s then reg = { serial = s, jobs = {}, order = {}, clock = nil, pid = nil, gen = 0 } end
  return reg
end

-- Unix seconds (fractional on the wall clock, so @every keeps its pace).
local function now_s() return reg.clock and reg.clock() or core.node.time_ns() / 1e9 end

local ZERO = "0001-01-01T00:00:00Z"

local function rfc3339(t, utc)
  if not t then return ZERO end
  if utc then return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end
  local z = os.date("%z", t)
  return os.date("%Y-%m-%dT%H:%M:%S", t) .. z:sub(1, 3) .. ":" .. z:sub(4, 5)
end

local function action_info(a)
  if type(a) == "function" then return "function" end
  return ("send to %s"):format(tostring(a.send))
end

local Cron = { name = "halo.cron", kind = "system" }

-- Runs one job for action time t (unix seconds).
local function run_job(self, job, t)
  job.last_run = t
  job.runs = job.runs + 1
  local a = job.action
  if type(a) == "function" then
    local pid, err = halo.spawn(function() a(job.name, t) end, nil, { monitor = true, behavior = "halo.cron.job" })
    if not pid then
      job.last_err = tostring(err)
    else
      self.running[pid] = job
      job.last_err = ""
    end
  else
    local msg = a.message
    if msg == nil then msg = { kind = "cron", job = job.name, time = t } end
    local ok, err = halo.send(a.send, msg)
    job.last_err = ok and "" or tostring(err)
  end
  if job.last_err == "" then
    halo.log.info("(cron) %s has completed (action time: %s)", job.name, rfc3339(t, job.utc))
  else
    halo.log.error("(cron) %s failed: %s", job.name, job.last_err)
  end
end

-- Runs every enabled job due at or before t, in time order; returns { {time, job}... }.
local function run_due(self, t)
  local fired = {}
  while true do
    local best, bt
    for _, name in ipairs(reg.order) do
      local j = reg.jobs[name]
      if j and not j.disabled and j.next and j.next <= t and (not bt or j.next < bt) then best, bt = j, j.next end
    end
    if not best then break end
    run_job(self, best, bt)
    fired[#fired + 1] = { time = bt, job = best.name }
    best.next = M.next_time(best.sched, bt, best.utc)
  end
  return fired
end

local function next_due()
  local bt
  for _, j in pairs(reg.jobs) do
    if not j.disabled and j.next and (not bt or j.next < bt) then bt = j.next end
  end
  return bt
end

-- Arms one wake-up at the next due time (real clock only).
local function arm(self)
  if reg.clock then return end
  if self.timer then halo.cancel_timer(self.timer) end
  self.timer = nil
  local t = next_due()
  if not t then return end
  reg.gen = reg.gen + 1
  local ms = math.max(0, math.ceil((t - now_s()) * 1000))
  self.timer = halo.send_after(halo.self(), { ["$cron_tick"] = reg.gen }, ms)
end

function Cron:init() self.running = {} end

-- The cron's figures: jobs, disabled ones, function jobs running now, runs
-- so far, and the next run (RFC 3339, "" when none) with its job names.
function Cron:handle_inspect()
  local total, disabled, runs, running = 0, 0, 0, 0
  for _, j in pairs(reg.jobs) do
    total, runs = total + 1, runs + j.runs
    if j.disabled then disabled = disabled + 1 end
  end
  for _ in pairs(self.running) do running = running + 1 end
  local info = M.info()
  return { jobs_total = tostring(total), jobs_disabled = tostring(disabled), jobs_running = tostring(running),
           runs_total = tostring(runs), next_run = info.Next, next_jobs = table.concat(info.Spool, ",") }
end

function Cron:handle_message(_, msg)
  if type(msg) ~= "table" then return end
  if msg["$cron_tick"] then
    if msg["$cron_tick"] ~= reg.gen then return end
    self.timer = nil
    run_due(self, now_s())
  elseif msg["$cron_changed"] then
    -- a job was added, removed, enabled or disabled
  elseif halo.is_down(msg) then
    local job = self.running[msg.pid]
    self.running[msg.pid] = nil
    if job and msg.reason ~= "normal" then
      job.last_err = tostring(msg.reason)
      halo.log.error("(cron) %s failed: %s", job.name, job.last_err)
    end
  end
  arm(self)
  if next(reg.jobs) == nil and next(self.running) == nil then return "normal" end
end

function Cron:handle_call(_, _, req)
  if req[1] == "advance" then
    local fired = run_due(self, req[2])
    return fired
  end
end

local function scheduler()
  local r = registry()
  if r.pid and halo.alive(r.pid) then return r.pid end
  r.pid = assert(halo.spawn(Cron, nil, { name = "halo_cron" }))
  return r.pid
end

local function poke()
  local r = registry()
  if r.pid and halo.process_state(r.pid) then halo.send(r.pid, { ["$cron_changed"] = true }) end
end

local ADD_KEYS = { location = true, disabled = true }

--- Adds a job. action: { send = target[, message = value] } or a function.
-- opts: location ("Local" (default) or "UTC"), disabled. Returns true or
-- nil, err (ETAKEN, ECRONSPEC).
function M.add(name, spec, action, opts)
  opts = opts or {}
  if type(name) ~= "string" or name == "" then error("job name (a non-empty string) expected", 2) end
  local at = type(action)
  if at ~= "function" and not (at == "table" and action.send ~= nil) then
    error("action must be a function or { send = target, message = ... }", 2)
  end
  for k in pairs(opts) do
    if not ADD_KEYS[k] then error(("unknown cron option '%s'"):format(tostring(k)), 2) end
  end
  local loc = opts.location or "Local"
  if loc ~= "Local" and loc ~= "UTC" then error("location must be 'Local' or 'UTC'", 2) end
  local r = registry()
  if r.jobs[name] then return core.node.error("ETAKEN", "cron job " .. name) end
  local sched, err, code = M.parse(spec)
  if not sched then return nil, err, code end
  local job = { name = name, spec = spec, sched = sched, action = action, utc = loc == "UTC", location = loc,
                disabled = opts.disabled and true or false, runs = 0, last_err = "" }
  job.next = M.next_time(sched, now_s(), job.utc)
  r.jobs[name] = job
  r.order[#r.order + 1] = name
  scheduler()
  poke()
  return true
end

--- Removes a job: true or nil, "EUNKNOWN: unknown".
function M.remove(name)
  local r = registry()
  if not r.jobs[name] then return core.node.error("EUNKNOWN", "cron job " .. tostring(name)) end
  r.jobs[name] = nil
  for i, n in ipairs(r.order) do
    if n == name then table.remove(r.order, i) break end
  end
  poke()
  return true
end

local function set_disabled(name, v)
  local r = registry()
  local j = r.jobs[name]
  if not j then return core.node.error("EUNKNOWN", "cron job " .. tostring(name)) end
  j.disabled = v
  if not v then j.next = M.next_time(j.sched, now_s(), j.utc) end
  poke()
  return true
end

function M.enable(name) return set_disabled(name, false) end
function M.disable(name) return set_disabled(name, true) end

local function job_info(j)
  return { Disabled = j.disabled, Name = j.name, Spec = j.spec, Location = j.location,
           ActionInfo = action_info(j.action), LastRun = rfc3339(j.last_run, j.utc), LastErr = j.last_err,
           Fallback = { Enable = false, Name = "", Tag = "" }, Next = rfc3339(j.next, j.utc), Runs = j.runs }
end

--- CronJobInfo of one job, or nil, "EUNKNOWN: unknown".
function M.job(name)
  local j = registry().jobs[name]
  if not j then return core.node.error("EUNKNOWN", "cron job " .. tostring(name)) end
  return job_info(j)
end

--- CronInfo: Next (the next run), Spool (enabled jobs due then), Jobs.
function M.info()
  local r = registry()
  local jobs, spool = json.array(), json.array()
  local t = next_due()
  for _, name in ipairs(r.order) do
    local j = r.jobs[name]
    jobs[#jobs + 1] = job_info(j)
    if t and not j.disabled and j.next == t then spool[#spool + 1] = name end
  end
  return { Next = rfc3339(t), Spool = spool, Jobs = jobs }
end

--- The runs planned in the next `seconds` (default 3600): { {Time, Jobs}... }.
function M.schedule(seconds)
  seconds = (seconds and seconds >= 1) and seconds or 3600
  local r = registry()
  local from = now_s()
  local stop = from + seconds
  local at = {}
  for _, name in ipairs(r.order) do
    local j = r.jobs[name]
    if not j.disabled then
      local t = M.next_time(j.sched, from - 1, j.utc)
      local n = 0
      while t and t <= stop and n < 10000 do
        at[t] = at[t] or json.array()
        table.insert(at[t], name)
        t = M.next_time(j.sched, t, j.utc)
        n = n + 1
      end
    end
  end
  local times = {}
  for t in pairs(at) do times[#times + 1] = t end
  table.sort(times)
  local out = json.array()
  for i, t in ipairs(times) do out[i] = { Time = rfc3339(t), Jobs = at[t] } end
  return out
end

--- Tests: replaces the wall clock (unix seconds) with fn; timers stop and
-- advance() drives the jobs. set_clock(nil) returns to the wall clock.
function M.set_clock(fn)
  local r = registry()
  r.clock = fn
  for _, j in pairs(r.jobs) do j.next = M.next_time(j.sched, now_s(), j.utc) end
  poke()
end

--- Tests: runs every job due up to unix time t (with set_clock); returns
-- the runs as { {time, job}... } in order.
function M.advance(t)
  registry()
  return halo.call(scheduler(), { "advance", t })
end

return M
