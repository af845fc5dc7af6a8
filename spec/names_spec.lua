local halo = require("halo")
local helper = require("helper")

local function await_down(match)
  while true do
    local from, msg = halo.receive(2000)
    assert(from, "no down message")
    if halo.is_down(msg) and match(msg) then return msg end
  end
end

-- Runs requests in its own process: {"register", name}, {"alias"}, ...
local agent = {
  init = function(self, args) self.log = args and args.log end,
  handle_call = function(self, from, ref, req)
    local op = req[1]
    if op == "register" then return { halo.register(req[2]) } end
    if op == "unregister" then return { halo.unregister(req[2]) } end
    if op == "alias" then return halo.alias() end
    if op == "unalias" then return { halo.unalias(req[2]) } end
    if op == "monitor" then return { halo.monitor(req[2]) } end
    if op == "link" then return { halo.link(req[2]) } end
  end,
  handle_message = function(self, from, msg)
    if msg == "stop" then return "stopped" end
    if self.log then self.log[#self.log + 1] = msg end
  end,
}

describe("registered names", function()
  it("register, whereis, send by name, unregister", function()
    local r = helper.run(function()
      local log = {}
      local p = assert(halo.spawn(agent, { log = log }))
      local out = {}
      out.reg = halo.call(p, { "register", "svc" })
      out.whereis = halo.whereis("svc")
      out.name = halo.process_info(p).Name
      out.registered = halo.node_info().RegisteredNames
      out.send = halo.send("svc", "by name")
      assert(helper.wait_until(function() return #log == 1 end))
      out.log = log[1]
      out.unreg = { halo.unregister("svc") }
      out.whereis2 = { halo.whereis("svc") }
      out.send2 = { halo.send("svc", "x") }
      out.unreg2 = { halo.unregister("svc") }
      out.name2 = halo.process_info(p).Name
      out.p = p
      halo.kill(p)
      return out
    end)
    assert.same({ true }, r.reg)
    assert.equal(r.p, r.whereis)
    assert.equal("svc", r.name)
    assert.equal(1, r.registered)
    assert.is_true(r.send)
    assert.equal("by name", r.log)
    assert.same({ true }, r.unreg)
    assert.same({ nil, "ENOPROC: unknown process", "ENOPROC" }, r.whereis2)
    assert.equal("ENOPROC", r.send2[3])
    assert.same({ nil, "ENAMEUNKNOWN: unknown name", "ENAMEUNKNOWN" }, r.unreg2)
    assert.equal("", r.name2)
  end)

  it("refuse a taken name and a second name with ETAKEN", function()
    local r = helper.run(function()
      local a = assert(halo.spawn(agent, nil, { name = "first" }))
      local b = assert(halo.spawn(agent))
      local out = {}
      out.taken = halo.call(b, { "register", "first" })
      out.second = halo.call(a, { "register", "other" })
      out.spawn = { halo.spawn(agent, nil, { name = "first" }) }
      out.whereis = halo.whereis("first") == a
      halo.kill(a)
      halo.kill(b)
      return out
    end)
    assert.same({ nil, "ETAKEN: resource is taken", "ETAKEN" }, r.taken)
    assert.equal("ETAKEN", r.second[3])
    assert.equal("ETAKEN", r.spawn[3])
    assert.is_true(r.whereis)
  end)

  it("die with the process and can be taken again", function()
    local r = helper.run(function()
      local a = assert(halo.spawn(agent, nil, { name = "reused" }))
      assert(halo.monitor(a))
      halo.send(a, "stop")
      await_down(function(m) return m.pid == a end)
      local out = { whereis = { halo.whereis("reused") }, names = halo.node_info().RegisteredNames }
      local b = assert(halo.spawn(agent, nil, { name = "reused" }))
      out.again = halo.whereis("reused") == b
      halo.kill(b)
      return out
    end)
    assert.equal("ENOPROC", r.whereis[3])
    assert.equal(0, r.names)
    assert.is_true(r.again)
  end)

  it("monitored by name fire 'unregistered' on unregister while the process lives", function()
    local r = helper.run(function()
      local a = assert(halo.spawn(agent, nil, { name = "watched" }))
      assert(halo.monitor("watched"))
      local mons = halo.process_info(halo.self()).MonitorsProcessID
      assert(halo.unregister("watched"))
      local down = await_down(function(m) return m.name == "watched" end)
      local out = { mons = mons, down = down, a = a, state = halo.process_state(a),
                    mons_after = halo.process_info(halo.self()).MonitorsProcessID }
      halo.kill(a)
      return out
    end)
    assert.same({ "watched" }, r.mons)
    assert.same({ kind = "down", pid = r.a, name = "watched", reason = "unregistered" }, r.down)
    assert.equal("sleep", r.state)
    assert.same({}, r.mons_after)
  end)

  it("monitored by name fire with the process's reason when it ends", function()
    local r = helper.run(function()
      local a = assert(halo.spawn(agent, nil, { name = "mortal" }))
      assert(halo.monitor("mortal"))
      halo.send("mortal", "stop")
      return await_down(function(m) return m.name == "mortal" end)
    end)
    assert.equal("mortal", r.name)
    assert.equal("stopped", r.reason)
  end)

  it("refuse a monitor on one's own name (ENOTALLOWED) and unknown names (ENOPROC)", function()
    local r = helper.run(function()
      local a = assert(halo.spawn(agent, nil, { name = "me" }))
      local out = { own = halo.call(a, { "monitor", "me" }), unknown = { halo.monitor("nobody") } }
      halo.kill(a)
      return out
    end)
    assert.equal("ENOTALLOWED", r.own[3])
    assert.equal("ENOPROC", r.unknown[3])
  end)

  it("may not look like a PID or an alias, neither by register nor by spawn", function()
    local r = helper.run(function()
      local b = { handle_message = function() end }
      return {
        reg = { pcall(halo.register, "<0.1.2>") },
        reg_alias = { pcall(halo.register, "Alias#<1.2.0.0>") },
        spawn = { pcall(halo.spawn, b, nil, { name = "<fake>" }) },
        spawn_alias = { pcall(halo.spawn, b, nil, { name = "Alias#x" }) },
        names = halo.node_info().RegisteredNames,
        total = halo.node_info().ProcessesTotal,
      }
    end)
    for _, k in ipairs({ "reg", "reg_alias", "spawn", "spawn_alias" }) do
      assert.is_false(r[k][1], k)
      assert.matches("may not look like a PID or an alias", r[k][2])
    end
    assert.equal(0, r.names)
    assert.equal(1, r.total)
  end)

  it("are found both ways by process_lookup", function()
    local r = helper.run(function()
      local a = assert(halo.spawn(agent, nil, { name = "lookup_me" }))
      local b = assert(halo.spawn(agent))
      local out = { a = a, pid = halo.process_lookup("lookup_me"), name = halo.process_lookup(a),
                    none = halo.process_lookup(b), unknown = { halo.process_lookup("nope") } }
      halo.kill(a)
      halo.kill(b)
      return out
    end)
    assert.equal(r.a, r.pid)
    assert.equal("lookup_me", r.name)
    assert.equal("", r.none)
    assert.equal("ENOPROC", r.unknown[3])
  end)
end)

describe("aliases", function()
  it("address the owner; unalias by a non-owner gives ENOTOWNER", function()
    local r = helper.run(function()
      local log = {}
      local a = assert(halo.spawn(agent, { log = log }))
      local b = assert(halo.spawn(agent))
      local alias = halo.call(a, { "alias" })
      local out = { alias = alias }
      out.aliases = halo.process_info(a).Aliases
      out.count = halo.node_info().RegisteredAliases
      out.send = halo.send(alias, "via alias")
      assert(helper.wait_until(function() return #log == 1 end))
      out.log = log[1]
      out.not_owner = halo.call(b, { "unalias", alias })
      out.owner = halo.call(a, { "unalias", alias })
      out.again = halo.call(a, { "unalias", alias })
      out.send2 = { halo.send(alias, "x") }
      out.aliases2 = halo.process_info(a).Aliases
      halo.kill(a)
      halo.kill(b)
      return out
    end)
    assert.matches("^Alias#<%x+%.%d+%.%d+%.%d+>$", r.alias)
    assert.same({ r.alias }, r.aliases)
    assert.equal(1, r.count)
    assert.is_true(r.send)
    assert.equal("via alias", r.log)
    assert.same({ nil, "ENOTOWNER: not an owner", "ENOTOWNER" }, r.not_owner)
    assert.same({ true }, r.owner)
    assert.equal("EALIASUNKNOWN", r.again[3])
    assert.equal("EALIASUNKNOWN", r.send2[3])
    assert.same({}, r.aliases2)
  end)

  it("die with the process; monitors on them fire", function()
    local r = helper.run(function()
      local a = assert(halo.spawn(agent))
      local a1, a2 = halo.call(a, { "alias" }), halo.call(a, { "alias" })
      assert(halo.monitor(a1))
      local mons = halo.process_info(halo.self()).MonitorsAlias
      halo.send(a, "stop")
      local down = await_down(function(m) return m.alias == a1 end)
      return { a1 = a1, mons = mons, down = down, send = { halo.send(a2, "x") },
               count = halo.node_info().RegisteredAliases }
    end)
    assert.same({ r.a1 }, r.mons)
    assert.equal("stopped", r.down.reason)
    assert.equal("EALIASUNKNOWN", r.send[3])
    assert.equal(0, r.count)
  end)

  it("fire 'unregistered' to their monitors on unalias", function()
    local r = helper.run(function()
      local a = assert(halo.spawn(agent))
      local al = halo.call(a, { "alias" })
      assert(halo.monitor(al))
      assert(halo.call(a, { "unalias", al })[1])
      local down = await_down(function(m) return m.alias == al end)
      local state = halo.process_state(a)
      halo.kill(a)
      return { down = down, state = state }
    end)
    assert.equal("unregistered", r.down.reason)
    assert.equal("sleep", r.state)
  end)
end)
