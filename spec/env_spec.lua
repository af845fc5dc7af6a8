local halo = require("halo")
local helper = require("helper")

-- Answers {"get", key}, {"getall"}, {"set", key, value} and {"spawn", opts}
-- (a child of the same behavior) from inside its own process.
local envy = {
  handle_call = function(self, from, ref, req)
    if req[1] == "get" then return { halo.getenv(req[2]) } end
    if req[1] == "getall" then return halo.getenv() end
    if req[1] == "set" then halo.setenv(req[2], req[3]) return true end
    if req[1] == "spawn" then return (halo.spawn(getmetatable(self).__index, nil, req[2])) end
  end,
}

describe("the environment", function()
  it("comes from the env option with keys upper-cased, read case-insensitively", function()
    local r = helper.run(function()
      local p = assert(halo.spawn(envy, nil, { env = { db_host = "h1", Port = 5432 } }))
      local out = {
        lower = halo.call(p, { "get", "db_host" }),
        upper = halo.call(p, { "get", "DB_HOST" }),
        mixed = halo.call(p, { "get", "pOrT" }),
        missing = halo.call(p, { "get", "nope" }),
        all = halo.call(p, { "getall" }),
        info = halo.process_info(p).Env,
        entry = { halo.getenv("DB_HOST") },
        entry_all = halo.getenv(),
      }
      halo.kill(p)
      return out
    end)
    assert.same({ "h1" }, r.lower)
    assert.same({ "h1" }, r.upper)
    assert.same({ 5432 }, r.mixed)
    assert.same({}, r.missing)
    assert.same({ DB_HOST = "h1", PORT = 5432 }, r.all)
    assert.same({ DB_HOST = "h1", PORT = 5432 }, r.info)
    assert.is_nil(r.entry[1])
    assert.same({}, r.entry_all)
  end)

  it("is inherited by children, with the child's env option layered on top", function()
    local r = helper.run(function()
      local p = assert(halo.spawn(envy, nil, { env = { a = "parent", b = "parent" } }))
      local c1 = halo.call(p, { "spawn" })
      local c2 = halo.call(p, { "spawn", { env = { b = "child", c = "child" } } })
      local g = halo.call(c1, { "spawn", { name = "grandchild" } })
      local out = {
        c1 = halo.call(c1, { "getall" }),
        c2 = halo.call(c2, { "getall" }),
        g = halo.call(g, { "getall" }),
      }
      for _, x in ipairs({ g, c2, c1, p }) do halo.kill(x) end
      return out
    end)
    assert.same({ A = "parent", B = "parent" }, r.c1)
    assert.same({ A = "parent", B = "child", C = "child" }, r.c2)
    assert.same({ A = "parent", B = "parent" }, r.g)
  end)

  it("is a copy: setenv changes only the process that calls it", function()
    local r = helper.run(function()
      local p = assert(halo.spawn(envy, nil, { env = { shared = "v0" } }))
      local c = halo.call(p, { "spawn" })
      assert(halo.call(c, { "set", "shared", "child" }))
      assert(halo.call(c, { "set", "new_key", 1 }))
      local out = { p1 = halo.call(p, { "getall" }), c1 = halo.call(c, { "getall" }) }
      assert(halo.call(p, { "set", "Shared", "parent" }))
      out.p2 = halo.call(p, { "getall" })
      out.c2 = halo.call(c, { "getall" })
      -- A child spawned after the change sees the new value.
      local c3 = halo.call(p, { "spawn" })
      out.c3 = halo.call(c3, { "getall" })
      assert(halo.call(c, { "set", "shared", nil }))
      out.deleted = halo.call(c, { "getall" })
      halo.setenv("entry_key", "e")
      out.entry = halo.getenv("ENTRY_KEY")
      for _, x in ipairs({ c3, c, p }) do halo.kill(x) end
      return out
    end)
    assert.same({ SHARED = "v0" }, r.p1)
    assert.same({ SHARED = "child", NEW_KEY = 1 }, r.c1)
    assert.same({ SHARED = "parent" }, r.p2)
    assert.same({ SHARED = "child", NEW_KEY = 1 }, r.c2)
    assert.same({ SHARED = "parent" }, r.c3)
    assert.same({ NEW_KEY = 1 }, r.deleted)
    assert.equal("e", r.entry)
  end)

  it("rejects an env option that is not a table", function()
    local ok, err = helper.run(function()
      return pcall(halo.spawn, envy, nil, { env = "x=1" })
    end)
    assert.is_false(ok)
    assert.matches("env", err)
  end)
end)
