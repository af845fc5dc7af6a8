local halo = require("halo")
local helper = require("helper")
local cron = require("halo.cron")

-- Unix seconds of a UTC time.
local function utc(y, mo, d, h, mi)
  local t = os.time({ year = y, month = mo, day = d, hour = h, min = mi, sec = 0 })
  local u = os.date("!*t", t)
  u.isdst = false
  return t + (t - os.time(u))
end

local function iso(t) return os.date("!%Y-%m-%d %H:%M %a", t) end

describe("halo.cron spec parsing", function()
  local next_cases = {
    -- spec, after, expected next (all UTC)
    { "*/15 * * * *", utc(2026, 1, 1, 0, 7), utc(2026, 1, 1, 0, 15) },
    { "*/15 * * * *", utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 0, 30) },
    { "0 9-17 * * 1-5", utc(2026, 1, 2, 17, 30), utc(2026, 1, 5, 9, 0) },   -- Friday evening -> Monday
    { "0 0 L * *", utc(2026, 2, 10, 0, 0), utc(2026, 2, 28, 0, 0) },
    { "0 0 L * *", utc(2028, 2, 10, 0, 0), utc(2028, 2, 29, 0, 0) },        -- leap year
    { "0 12 * * 5L", utc(2026, 1, 1, 0, 0), utc(2026, 1, 30, 12, 0) },      -- last Friday of January
    { "0 12 * * 1#2", utc(2026, 1, 1, 0, 0), utc(2026, 1, 12, 12, 0) },     -- second Monday
    { "0 0 13 * 5", utc(2026, 1, 1, 0, 0), utc(2026, 1, 2, 0, 0) },         -- the 13th OR a Friday
    { "0 0 13 * 5", utc(2026, 1, 10, 0, 0), utc(2026, 1, 13, 0, 0) },
    { "30 4 1,15 * *", utc(2026, 1, 1, 5, 0), utc(2026, 1, 15, 4, 30) },
    { "0 0 29 2 *", utc(2026, 3, 1, 0, 0), utc(2028, 2, 29, 0, 0) },
    { "5-10/5 1 * 1-6/5 *", utc(2026, 1, 1, 1, 5), utc(2026, 1, 1, 1, 10) },
    { "@hourly", utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 11, 0) },
    { "@daily", utc(2026, 1, 1, 10, 0), utc(2026, 1, 2, 0, 0) },
    { "@weekly", utc(2026, 1, 1, 10, 0), utc(2026, 1, 4, 0, 0) },           -- Sunday
    { "@monthly", utc(2026, 1, 1, 10, 0), utc(2026, 2, 1, 0, 0) },
    { "@yearly", utc(2026, 1, 1, 10, 0), utc(2027, 1, 1, 0, 0) },
    { "@every 90s", utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 10, 0) + 90 },
    { "@every 1h30m", utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 11, 30) },
  }
  for _, c in ipairs(next_cases) do
    it(("'%s' after %s"):format(c[1], iso(c[2])), function()
      local s = assert(cron.parse(c[1]))
      assert.equal(iso(c[3]), iso(cron.next_time(s, c[2], true)))
    end)
  end

  local bad_cases = {
    { "", "0 fields" },
    { "* * * *", "4 fields" },
    { "* * * * * *", "6 fields" },
    { "60 * * * *", "60 out of 0%-59 in the minute field" },
    { "* 24 * * *", "out of 0%-23 in the hour field" },
    { "* * 0 * *", "out of 1%-31 in the day%-of%-month field" },
    { "* * * 13 *", "out of 1%-12 in the month field" },
    { "* * * * 0", "out of 1%-7 in the day%-of%-week field" },
    { "*,5 * * * *", "%* combined with other items" },
    { "5-1 * * * *", "runs backwards" },
    { "*/0 * * * *", "step 0" },
    { "1,,2 * * * *", "empty item" },
    { "a * * * *", "'a' in the minute field" },
    { "* * * * 8#1", "weekday 8 out of 1%-7" },
    { "* * * * 1#6", "occurrence 6 out of 1%-5" },
    { "* * * * L", "'L' in the day%-of%-week field" },
    { "L * * * *", "'L' in the minute field" },
    { "@weekdays", "unknown shorthand '@weekdays'" },
    { "@every 0s", "duration '0s'" },
    { "@every 5x", "duration '5x'" },
  }
  for _, c in ipairs(bad_cases) do
    it(("rejects '%s'"):format(c[1]), function()
      local s, err, code = cron.parse(c[1])
      assert.is_nil(s)
      assert.equal("ECRONSPEC", code)
      assert.matches("^ECRONSPEC: incorrect cron spec: ", err)
      assert.matches(c[2], err)
    end)
  end
end)

describe("halo.cron jobs", function()
  it("fire on a test clock: messages, functions, errors, disable and remove", function()
    local T0 = utc(2026, 1, 5, 8, 59) + 30 -- Monday 08:59:30 UTC
    local r = helper.run(function()
      local clock = T0
      cron.set_clock(function() return clock end)
      local me = halo.self()
      local calls = {}
      assert(cron.add("every5", "*/5 * * * *", { send = me }, { location = "UTC" }))
      assert(cron.add("nine", "0 9 * * *", function(job, t) calls[#calls + 1] = { job, t } end, { location = "UTC" }))
      assert(cron.add("broken", "30 9 * * *", function() error("job failed") end, { location = "UTC" }))
      assert(cron.add("custom", "0 10 * * *", { send = me, message = "tick" }, { location = "UTC" }))
      local dup = { cron.add("every5", "* * * * *", { send = me }) }
      local badspec = { cron.add("bad", "99 * * * *", { send = me }) }
      local info0 = cron.info()
      local plan = cron.schedule(1800)
      clock = T0 + 3660 -- 10:00:30
      local fired = cron.advance(clock)
      local got = {}
      for _ = 1, 14 do
        local _, m = halo.receive(1000)
        got[#got + 1] = m
      end
      helper.wait_until(function() return cron.job("broken").LastErr ~= "" end)
      local out = { info0 = info0, plan = plan, fired = fired, got = got, calls = calls, dup = dup,
                    badspec = badspec, nine = cron.job("nine"), broken = cron.job("broken"),
                    every5 = cron.job("every5") }
      assert(cron.disable("every5"))
      clock = clock + 3600
      out.fired2 = cron.advance(clock)
      out.disabled = cron.job("every5").Disabled
      for _, n in ipairs({ "every5", "nine", "broken", "custom" }) do assert(cron.remove(n)) end
      out.gone = { cron.job("nine") }
      out.remove_again = { cron.remove("nine") }
      return out
    end)
    -- before running: the next run is 09:00 with every5 and nine in the spool
    assert.equal("2026-01-05T09:00:00Z", r.info0.Next:gsub("%+00:00$", "Z"))
    assert.same({ "every5", "nine" }, r.info0.Spool)
    assert.equal(4, #r.info0.Jobs)
    assert.equal("0001-01-01T00:00:00Z", r.info0.Jobs[1].LastRun)
    assert.equal("send to " .. "<", r.info0.Jobs[1].ActionInfo:sub(1, 9))
    -- the plan for the first 30 minutes: 09:00 (every5 + nine), then 09:05 ... 09:25
    assert.equal(6, #r.plan)
    assert.same({ "every5", "nine" }, r.plan[1].Jobs)
    -- every5 at 09:00 ... 10:00 (13), nine at 09:00, broken at 09:30, custom at 10:00;
    -- in time order, ties in the order the jobs were added
    assert.equal(16, #r.fired)
    assert.same({ time = utc(2026, 1, 5, 9, 0), job = "every5" }, r.fired[1])
    assert.same({ time = utc(2026, 1, 5, 9, 0), job = "nine" }, r.fired[2])
    assert.same({ time = utc(2026, 1, 5, 9, 30), job = "broken" }, r.fired[9])
    assert.same({ time = utc(2026, 1, 5, 10, 0), job = "every5" }, r.fired[15])
    assert.same({ time = utc(2026, 1, 5, 10, 0), job = "custom" }, r.fired[16])
    assert.equal(14, #r.got)
    assert.same({ kind = "cron", job = "every5", time = utc(2026, 1, 5, 9, 0) }, r.got[1])
    assert.equal("tick", r.got[14])
    assert.same({ { "nine", utc(2026, 1, 5, 9, 0) } }, r.calls)
    assert.equal("ETAKEN", r.dup[3])
    assert.equal("ECRONSPEC", r.badspec[3])
    assert.equal("", r.nine.LastErr)
    assert.equal("2026-01-05T09:00:00Z", r.nine.LastRun)
    assert.matches("job failed", r.broken.LastErr)
    assert.equal(13, r.every5.Runs)
    assert.equal("UTC", r.every5.Location)
    -- the next hour: every5 is disabled, the others are daily
    assert.same({}, r.fired2)
    assert.is_true(r.disabled)
    assert.equal("EUNKNOWN", r.gone[3])
    assert.equal("EUNKNOWN", r.remove_again[3])
  end)

  it("fires on the wall clock through the scheduler process", function()
    local r = helper.run(function()
      local me = halo.self()
      assert(cron.add("fast", "@every 1s", { send = me, message = "beat" }))
      local t0 = halo.now()
      local _, m = halo.receive(3000)
      local ms = halo.now() - t0
      local sched = halo.process_info(halo.whereis("halo_cron")).Behavior
      assert(cron.remove("fast"))
      return { m = m, ms = ms, sched = sched }
    end)
    assert.equal("beat", r.m)
    assert.is_true(r.ms > 500 and r.ms < 2500)
    assert.equal("halo.cron", r.sched)
  end)

  it("rejects a malformed job", function()
    helper.run(function()
      assert.has_error(function() cron.add("", "* * * * *", function() end) end, "job name (a non-empty string) expected")
      assert.has_error(function() cron.add("x", "* * * * *", 5) end)
      assert.has_error(function() cron.add("x", "* * * * *", function() end, { location = "Mars" }) end)
      assert.has_error(function() cron.add("x", "* * * * *", function() end, { when = 1 }) end)
    end)
  end)
end)
