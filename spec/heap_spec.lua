local halo = require("halo")
local helper = require("helper")
local heap = require("halo.heap")

-- Allocates n tables of about 1 KB, keeping them in keep or in a ring of
-- 16 (so they escape: LuaJIT sinks allocations that never do); strings
-- differ from call to call (an equal one is interned, not allocated).
local calls = 0
local function heapGrowsHere(n, keep)
  local ring = {}
  calls = calls + 1
  local tag = string.rep("x", 900) .. calls .. ":"
  for i = 1, n do
    local t = { tag .. i, i, i + 1 }
    if keep then keep[#keep + 1] = t else ring[i % 16 + 1] = t end
  end
end

local function site(prof, name)
  local r = { inuse = 0, alloc = 0, n = 0 }
  for _, s in ipairs(prof.sites) do
    if s.name == name then
      r.inuse, r.alloc, r.n = r.inuse + s.inuse_bytes, r.alloc + s.alloc_bytes, r.n + 1
      r.file, r.line = s.file, s.line
    end
  end
  return r
end

describe("heap sampling", function()
  it("names the allocating function and line, and estimates live and cumulative bytes", function()
    local r = helper.run(function()
      assert.equal(512 * 1024, heap.rate())
      heap.rate(16 * 1024)
      local keep = {}
      local p = halo.spawn(function()
        heapGrowsHere(4000, keep) -- ~4 MB kept
        heapGrowsHere(4000)       -- ~4 MB dropped
        collectgarbage("collect")
        halo.receive()
      end)
      local prof
      assert(helper.wait_until(function()
        prof = heap.profile()
        return site(prof, "heapGrowsHere").alloc > 6e6
      end))
      local owners = prof.owners
      local text = heap.text({ filter = "heapGrowsHere" })
      local all = heap.text()
      local stats = heap.stats_text()
      halo.kill(p)
      return { s = site(prof, "heapGrowsHere"), owners = owners, pid = p, text = text, all = all,
               samples = prof.samples, stats = stats }
    end)
    assert.truthy(r.s.file:find("heap_spec.lua", 1, true))
    assert.truthy(r.s.line >= 10 and r.s.line <= 17, "line " .. r.s.line)
    -- 8 MB allocated, 4 MB kept: the estimates within sampling error
    assert.is_true(r.s.alloc > 6e6 and r.s.alloc < 13e6, "alloc " .. r.s.alloc)
    assert.is_true(r.s.inuse > 2.5e6 and r.s.inuse < 6.5e6, "inuse " .. r.s.inuse)
    local mine
    for _, o in ipairs(r.owners) do if o.pid == r.pid then mine = o end end
    assert.is_true(mine and mine.inuse_bytes > 2.5e6, "process attribution")
    assert.truthy(r.text:find("^heap profile: total inuse [%d.]+[KMG]?B, matched %d+ functions, showing %d+\n\n"))
    assert.truthy(r.text:find("\ninuse        alloc        function\n[%d.]+MB%s+[%d.]+MB%s+heapGrowsHere %(spec/heap_spec.lua:%d+%)\n"))
    assert.falsy(r.text:find("\ninuse        alloc        process\n", 1, true)) -- filtered out
    assert.truthy(r.all:find("\ninuse        alloc        process\n[%d.]+MB%s+[%d.]+MB%s+process " .. r.pid:gsub("%p", "%%%0")))
    local json = require("halo.json").decode(r.stats)
    assert.is_true(json.num_gc >= 1)
    assert.is_true(json.heap_alloc > 4e6 and json.total_alloc > 8e6 and json.sys > json.heap_inuse)
    assert.truthy(r.stats:find('^{\n  "goroutines": %d+,\n  "cpus"'))
  end)

  it("rate 0 stops sampling; a freed block leaves the live figures", function()
    local r = helper.run(function()
      heap.rate(0)
      local before = heap.profile().samples
      heapGrowsHere(3000)
      local off = heap.profile().samples - before
      heap.rate(4096)
      local keep = {}
      heapGrowsHere(2000, keep)
      local held = site(heap.profile(), "heapGrowsHere").inuse
      keep = nil
      collectgarbage("collect")
      collectgarbage("collect")
      local after = site(heap.profile(), "heapGrowsHere")
      return { off = off, held = held, after = after }
    end)
    assert.equal(0, r.off)
    assert.is_true(r.held > 1e6, "held " .. r.held)
    assert.is_true(r.after.inuse < r.held / 10, "after free " .. r.after.inuse)
    assert.is_true(r.after.alloc >= r.held)
  end)

  -- Samples taken while a foreign hook (debug.sethook) holds the hook slot
  -- wait unnamed; once it is gone, the next sample's hook must not name
  -- them with its own stack.
  it("leaves samples taken under a foreign hook unknown, not named after a later site", function()
    local r = helper.run(function()
      heap.rate(4096)
      debug.sethook(function() end, "", 1000000)
      heapGrowsHere(2000) -- ~2 MB
      debug.sethook()
      local function heapAfterHook()
        local t = {}
        for i = 1, 64 do t[i] = string.rep("z", 1000) .. i end -- ~64 KB
        return t
      end
      heapAfterHook()
      local prof = heap.profile()
      return { grows = site(prof, "heapGrowsHere"), after = site(prof, "heapAfterHook"),
               unknown = site(prof, "(unknown)") }
    end)
    assert.equal(0, r.grows.alloc)
    assert.is_true(r.unknown.alloc > 1e6, "unknown " .. r.unknown.alloc)
    assert.is_true(r.after.alloc < 1e6, "heapAfterHook " .. r.after.alloc)
  end)

  it("takes the run option heap_rate and survives an allocation-heavy load at rate 1", function()
    local r = helper.run(function()
      local rate = heap.rate()
      local procs = {}
      for k = 1, 4 do
        procs[k] = halo.spawn(function()
          local keep = {}
          for i = 1, 3000 do
            keep[i % 50 + 1] = { tostring(i), { i }, string.rep("y", i % 300) }
            if i % 500 == 0 then halo.sleep(1) end
          end
        end)
      end
      assert(helper.wait_until(function()
        for _, p in ipairs(procs) do if halo.process_state(p) then return false end end
        return true
      end, 5000))
      local prof = heap.profile()
      return { rate = rate, samples = prof.samples, dropped = prof.dropped, sites = #prof.sites }
    end, { heap_rate = 1 })
    assert.equal(1, r.rate)
    assert.is_true(r.samples > 20000, "samples " .. r.samples)
    assert.is_true(r.sites > 3)
  end)

  it("serves /debug/pprof/heap that go tool pprof opens", function()
    local path = os.tmpname()
    local status, ctype = helper.run(function()
      heap.rate(32 * 1024)
      local keep = {}
      heapGrowsHere(3000, keep)
      local radar = require("halo.radar")
      assert(radar.start({ port = 0 }))
      local _, port = radar.address()
      local res = assert(halo.http.request({ host = "127.0.0.1", port = port, path = "/debug/pprof/heap",
        timeout = 10000 }))
      local f = assert(io.open(path, "wb"))
      f:write(res.body)
      f:close()
      radar.stop()
      return res.status, res.headers["content-type"], keep
    end)
    assert.equal(200, status)
    assert.equal("application/octet-stream", ctype)
    local top = helper.go_pprof("-top -sample_index=inuse_space", path)
    assert.matches("Type: inuse_space", top, 1, true)
    local n, unit = top:match("\n%s*([%d.]+)([kM]B)%s+[%d.]+%%%s+[%d.]+%%%s+[%d.]+[kM]B%s+[%d.]+%%%s+heapGrowsHere\n")
    assert.is_truthy(n, top)
    local mb = tonumber(n) / (unit == "kB" and 1024 or 1)
    assert.is_true(mb > 1.5 and mb < 6, top)
    local alloc = helper.go_pprof("-top -sample_index=alloc_objects", path)
    assert.matches("Type: alloc_objects", alloc, 1, true)
    assert.matches("heapGrowsHere", alloc, 1, true)
    os.remove(path)
  end)
end)
