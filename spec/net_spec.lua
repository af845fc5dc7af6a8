-- Two real halo processes over real TCP: the spec's node (a@localhost) and a
-- second `halo` started in the background (b@localhost) that runs an echo.
local halo = require("halo")
local helper = require("helper")
local cjson = require("cjson")

local build = os.getenv("HALO_BUILD") or "build"
local halo_bin = build .. "/halo"

local B_SCRIPT = [[
local halo = require("halo")
local info = halo.net.info()
local echo = halo.spawn({
  handle_message = function(_, from, msg) halo.send(from, { echo = msg, node = "b" }) end,
  handle_call = function(_, from, ref, req)
    if req == "slow" then halo.sleep(300) end
    if req == "victim" then -- a process that ends with the reason it is sent
      return halo.spawn({ handle_message = function(_, _, why) return why end })
    end
    if req == "victim_fn" then -- one whose reason cannot travel
      return halo.spawn({ handle_message = function() return { f = print } end })
    end
    if req == "poke_me" then return { halo.exit(from, "poke") } end
    if req == "alias" then return halo.alias() end
    if req == "net_info" then return halo.net.info() end
    if req == "send_big" then -- 40 MB in 1 KB fragments: long enough to be cut off
      halo.net.configure({ fragment_size = 1024 })
      halo.spawn(function() halo.sleep(50); halo.send(from, string.rep("y", 40000000)) end) -- after the reply
      return true
    end
    return { reply = req, from = from }
  end,
}, nil, { name = "echo" })
-- sink: checks that each sender's numbered messages (run * 100000 + i) come in order
local seen, runs = {}, {}
halo.spawn({
  handle_message = function(_, from, n)
    local run, i = math.floor(n / 100000), n % 100000
    local r = runs[run] or { count = 0, bad = 0, senders = 0 }
    runs[run] = r
    local key = from .. "/" .. run
    r.count = r.count + 1
    if not seen[key] then r.senders = r.senders + 1 end
    if (seen[key] or 0) + 1 ~= i then r.bad = r.bad + 1 end
    seen[key] = i
  end,
  handle_call = function(_, _, _, run) return runs[run] or { count = 0, bad = 0, senders = 0 } end,
}, nil, { name = "sink" })
local f = io.open(arg[1], "w"); f:write(info.Acceptors[1].Port, " ", echo, "\n"); f:close()
halo.receive()
]]

-- Starts node b with cookie (listening on `listen`, default any free port);
-- returns its port, its echo PID, a stop function and its OS process id.
local function start_b(cookie, listen)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local script, out = dir .. "/b.lua", dir .. "/b.out"
  local f = assert(io.open(script, "w"))
  f:write(B_SCRIPT)
  f:close()
  os.execute(("%s run --name b@localhost --cookie %s --listen %s --registrar none --log-level error %s %s > %s/b.log 2>&1 & echo $! > %s/b.pid")
    :format(halo_bin, cookie, listen or "127.0.0.1:0", script, out, dir, dir))
  local port, echo
  for _ = 1, 200 do
    local r = io.open(out)
    if r then
      port, echo = r:read("*n"), r:read("*l")
      r:close()
      if port and echo then break end
    end
    os.execute("sleep 0.02")
  end
  assert(port and echo, "node b did not start")
  local pid = io.open(dir .. "/b.pid"):read("*n")
  return port, echo:match("%S+"), function(hard) -- hard: SIGKILL, no goodbyes
    os.execute("kill -CONT " .. pid .. " 2>/dev/null; kill " .. (hard and "-KILL " or "") .. pid .. " 2>/dev/null")
    -- wait until it is gone (its port free again), at most 5 s; a zombie
    -- counts as gone (nobody may be reaping it here). Only shell builtins
    -- and sleep, without the sanitizer preload the ASan run sets.
    os.execute("unset LD_PRELOAD; i=0; while [ $i -lt 100 ] && [ -r /proc/" .. pid .. "/stat ]; do " ..
      "read -r x y st rest < /proc/" .. pid .. "/stat; [ \"$st\" = Z ] && break; i=$((i+1)); sleep 0.05; done")
    os.execute("rm -rf " .. dir)
  end, pid
end

local function a(fn, cookie, name)
  return helper.run(fn, { name = name or "a@localhost", cookie = cookie or "secret", listen = "127.0.0.1:0",
                          registrar = "none" })
end

describe("the transport", function()
  local port, echo, stop
  setup(function() port, echo, stop = start_b("secret") end)
  teardown(function() stop() end)

  it("sends, receives and calls between two halo processes", function()
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      assert(halo.send(echo, { hello = "world", n = 1.5, list = { 1, 2, 3 }, me = halo.self() }))
      local from, msg = halo.receive(2000)
      local reply = halo.call(echo, "question", 2000)
      local slow = { halo.call(echo, "slow", 50) } -- times out; the late reply is dropped
      assert(helper.wait_until(function() return halo.node_info().LateReplies >= 1 end, 2000))
      local info = halo.net.info()
      return { from = from, msg = msg, reply = reply, me = halo.self(), peer = halo.net.node("b@localhost"),
               info = info, slow = slow, late = halo.node_info().LateReplies }
    end)
    assert.equal(echo, r.from)
    assert.same({ hello = "world", n = 1.5, list = { 1, 2, 3 }, me = r.me }, r.msg.echo)
    assert.equal("b", r.msg.node)
    assert.same({ reply = "question", from = r.me }, r.reply)
    assert.equal("ETIMEDOUT", r.slow[3])
    assert.equal(1, r.late)
    assert.is_true(r.peer.Connected)
    assert.is_true(r.peer.Dialed)
    assert.equal(3, r.peer.MessagesOut)
    assert.equal(3, r.peer.MessagesIn)
    assert.is_true(r.peer.BytesIn > 0 and r.peer.BytesOut > 0)
    assert.equal("enabled", r.info.Mode)
    assert.same({ "b@localhost" }, r.info.Nodes)
    assert.equal("b@localhost", r.peer.Node)
    local dsn = "127.0.0.1:" .. port -- a pool of three links, all dialed by a
    assert.same({ dsn, dsn, dsn }, r.peer.PoolDSN)
    assert.equal(3, r.peer.PoolLen)
    assert.equal(3, r.peer.PoolSize)
    assert.is_true(r.peer.Uptime >= r.peer.ConnectionUptime) -- b's age came in the handshake
    assert.equal("HNP:R1", r.peer.ProtoVersion)
    assert.equal(1, r.info.ConnectionsEstablished)
    assert.equal(0, r.info.HandshakeErrors)
  end)

  it("sends to a name registered on the other node", function()
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      local to = halo.net.process_id("echo", "b@localhost")
      assert(halo.send(to, "by name"))
      local from, msg = halo.receive(2000)
      local called = halo.call(to, "call by name", 2000)
      local nobody = { halo.send(halo.net.process_id("nobody", "b@localhost"), 1) } -- not told, as in the reference
      local t0 = halo.now()
      local nobody_call = { halo.call(halo.net.process_id("nobody", "b@localhost"), 1, 3000) }
      nobody_call.ms = halo.now() - t0
      local local_name = { halo.send(halo.net.process_id("nope", "a@localhost"), 1) }
      local offline = { halo.send(halo.net.process_id("echo", "z@localhost"), 1) }
      -- peers refuse inspect frames, so the caller is refused at once
      local inspect, inspect_name = { halo.inspect(from) }, { halo.inspect(to) }
      return { to = to, from = from, msg = msg, nobody = nobody, local_name = local_name, offline = offline,
               called = called, nobody_call = nobody_call, me = halo.self(), inspect = inspect,
               inspect_name = inspect_name }
    end)
    assert.matches("^<%x%x%x%x%x%x%x%x%.echo>$", r.to)
    assert.equal(echo, r.from)
    assert.equal("by name", r.msg.echo)
    assert.same({ true }, r.nobody)
    assert.same({ reply = "call by name", from = r.me }, r.called)
    assert.equal("ENOPROC", r.nobody_call[3]) -- a call is answered at once, as in Erlang
    assert.is_true(r.nobody_call.ms < 1000)
    assert.equal("ENOPROC", r.local_name[3])
    assert.equal("ENOCONN", r.offline[3])
    assert.equal("ENOTALLOWED", r.inspect[3])
    assert.equal("ENOTALLOWED", r.inspect_name[3])
  end)

  it("compresses large messages of a process that asks, and only those", function()
    local big = string.rep("halo compresses this line well. ", 4000) -- 128 KB
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      local before = halo.net.node("b@localhost")
      assert(halo.send(echo, big)) -- not asked for: plain
      local _, m1 = halo.receive(3000)
      local plain = halo.net.node("b@localhost")
      assert(halo.net.compress(true))
      assert(halo.send(echo, big))
      local _, m2 = halo.receive(3000)
      assert(halo.send(echo, "small")) -- under the threshold: plain
      halo.receive(3000)
      local after = halo.net.node("b@localhost")
      local me = halo.self()
      halo.spawn(function() -- the spawn option does the same
        assert(halo.send(echo, big))
        local _, m = halo.receive(3000)
        halo.send(me, m)
      end, nil, { compress = true })
      local _, m3 = halo.receive(3000)
      return { m1 = m1, m2 = m2, m3 = m3, before = before, plain = plain, after = after,
               spawned = halo.net.node("b@localhost") }
    end)
    assert.equal(big, r.m1.echo)
    assert.equal(big, r.m2.echo)
    assert.equal(0, r.plain.CompressedSent)
    assert.equal(1, r.after.CompressedSent)
    assert.equal(big, r.m3.echo)
    assert.equal(2, r.spawned.CompressedSent)
    assert.is_true(r.after.CompressedBytesSent < r.after.CompressedOrigBytesSent / 10)
    assert.is_true(r.after.CompressedOrigBytesSent > 128000)
    -- b's echo does not compress its answer: the bytes on the wire show it
    assert.is_true(r.after.BytesOut - r.plain.BytesOut < 20000)
  end)

  it("connects on first use to a node a registrar knows, and drops what cannot be delivered", function()
    local core = require("halo.core")
    local r = a(function()
      assert(core.net.route_set("b@localhost", "127.0.0.1", port)) -- as a registrar would
      -- sent at once, while the dial is still under way: held, then delivered
      assert(halo.send(echo, "before the link"))
      local from, msg = halo.receive(3000)
      local reply = halo.call(halo.net.process_id("echo", "b@localhost"), "and a call", 3000)
      -- a node whose route leads nowhere: accepted, then dropped and counted
      local closed = 1 -- nothing listens on port 1
      assert(core.net.route_set("z@localhost", "127.0.0.1", closed))
      local to_z = { halo.send("<" .. ("%08X"):format(core.net.crc32("z@localhost")) .. ".0.1000>", "lost") }
      assert(helper.wait_until(function() return halo.net.info().PendingDropped >= 1 end, 3000))
      core.net.route_del("z@localhost")
      return { from = from, msg = msg, reply = reply, to_z = to_z, info = halo.net.info(),
               nodes = halo.net.nodes(), resolved = halo.net.resolve("b@localhost") }
    end)
    assert.equal(echo, r.from)
    assert.equal("before the link", r.msg.echo)
    assert.equal("and a call", r.reply.reply)
    assert.same({ true }, r.to_z)
    assert.equal(1, r.info.PendingDropped)
    assert.same({ "b@localhost" }, r.nodes)
    assert.equal(port, r.resolved.Port)
  end)

  it("sends and calls to an alias of a process on the other node", function()
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      local alias = halo.call(echo, "alias", 2000)
      assert(halo.send(alias, "via alias"))
      local from, msg = halo.receive(2000)
      local reply = halo.call(alias, "call via alias", 2000)
      local bogus = alias:gsub("^(Alias#<%x+%.)(%d+)", "%19999")
      local t0 = halo.now()
      local unknown = { halo.call(bogus, "nobody", 3000) }
      unknown.ms = halo.now() - t0
      return { alias = alias, from = from, msg = msg, reply = reply, unknown = unknown }
    end)
    assert.matches("^Alias#<%x+%.%d+%.%d+%.%d+>$", r.alias)
    assert.equal(echo, r.from)
    assert.equal("via alias", r.msg.echo)
    assert.equal("call via alias", r.reply.reply)
    assert.equal("ENOPROC", r.unknown[3]) -- an unknown alias there: answered at once, as for names
    assert.is_true(r.unknown.ms < 1000)
  end)

  for run, when in ipairs({ "once the pool is up", "from before the first link" }) do
  it("keeps each sender's messages in order over a pool of three links, " .. when, function()
    local r = a(function()
      local sink = halo.net.process_id("sink", "b@localhost")
      if run == 1 then
        assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
        assert(helper.wait_until(function() return halo.net.node("b@localhost").PoolLen == 3 end, 3000))
      else -- the senders start while the session opens: held by sender, then sent on their links
        assert(require("halo.core").net.route_set("b@localhost", "127.0.0.1", port))
      end
      for _ = 1, 30 do -- 30 senders spread over the links, 2000 messages each
        halo.spawn(function()
          for i = 1, 2000 do
            assert(halo.send(sink, run * 100000 + i))
            if i % 100 == 0 then halo.yield() end
          end
        end)
      end
      local now
      assert(helper.wait_until(function()
        now = halo.call(sink, run, 2000)
        return now and now.count >= 60000
      end, 10000))
      return { now = now, peer = halo.net.node("b@localhost") }
    end)
    assert.same({ count = 60000, bad = 0, senders = 30 }, r.now)
    assert.equal(3, r.peer.PoolLen)
  end)
  end

  it("fragments messages over 65000 bytes and reassembles them", function()
    local big = {}
    for i = 1, 50000 do big[i] = string.char(i * 7919 % 251) end -- not compressible
    big = table.concat(big):rep(4) -- 200 KB
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      local before = halo.net.node("b@localhost")
      assert(halo.send(echo, big))
      local _, m1 = halo.receive(3000)
      local reply = halo.call(echo, big, 3000) -- a call and its reply, both in pieces
      assert(halo.net.compress(true)) -- compressed first: small enough to go whole
      assert(halo.send(echo, string.rep("z", 300000)))
      local _, m3 = halo.receive(3000)
      return { m1 = m1, reply = reply, m3 = m3, before = before, after = halo.net.node("b@localhost") }
    end)
    assert.equal(big, r.m1.echo)
    assert.equal(big, r.reply.reply)
    assert.equal(300000, #r.m3.echo)
    local d = function(k) return r.after[k] - r.before[k] end
    assert.equal(2, d("FragmentMessagesSent")) -- the 200 KB send and call
    assert.equal(8, d("FragmentsSent")) -- 4 pieces each
    assert.equal(3, d("FragmentMessagesRecv")) -- the echo, the reply, the 300 KB echo
    assert.equal(13, d("FragmentsReceived"))
    assert.equal(0, r.after.FragmentTimeouts)
    assert.equal(1, d("CompressedSent"))
  end)

  it("refuses a wrong cookie on both sides and keeps serving", function()
    local r = a(function()
      local res = { halo.net.connect("b@localhost", "127.0.0.1:" .. port, 2000) }
      return { res = res, info = halo.net.info(), send = { halo.send(echo, 1) } }
    end, "not-the-cookie")
    assert.is_nil(r.res[1])
    assert.equal("ENOCONN", r.res[3])
    assert.matches("b@localhost at 127.0.0.1:%d+: .*cookie", r.res[2])
    assert.equal(1, r.info.HandshakeErrors)
    assert.equal("ENOCONN", r.send[3])
    -- b still serves a node with the right cookie
    local ok = a(function() return halo.net.connect("b@localhost", "127.0.0.1:" .. port) end)
    assert.is_true(ok)
  end)

  it("gives no proof to a node that answers under another name", function()
    local r = a(function() return { halo.net.connect("x@localhost", "127.0.0.1:" .. port, 2000) } end)
    assert.is_nil(r[1])
    assert.matches("answered as b@localhost, not x@localhost", r[2])
  end)

  it("rejects a node that takes b's name", function()
    local r = a(function()
      return { halo.net.connect("b@localhost", "127.0.0.1:" .. port, 2000) }
    end, "secret", "b@localhost")
    assert.is_nil(r[1])
    assert.equal("ENOCONN", r[3])
  end)

  it("survives garbage on the wire and a peer that vanishes mid-frame, and counts both", function()
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      local before = halo.call(echo, "net_info", 2000)
      -- garbage: a huge length, then random bytes; then half a frame and a hang-up
      assert(os.execute(("bash -c \"exec 3<>/dev/tcp/127.0.0.1/%d; printf '\\377\\377\\377\\377garbage' >&3; exec 3>&-\""):format(port)) == 0)
      assert(os.execute(("bash -c \"exec 3<>/dev/tcp/127.0.0.1/%d; printf '\\000\\000\\000\\100\\001\\001' >&3; exec 3>&-\""):format(port)) == 0)
      local after
      assert(helper.wait_until(function()
        after = halo.call(echo, "net_info", 2000)
        return after.HandshakeErrors >= before.HandshakeErrors + 2
      end, 3000), "b did not count the two broken handshakes")
      assert(halo.send(echo, "still there?"))
      local _, msg = halo.receive(2000)
      return { msg = msg, before = before, after = after }
    end)
    assert.equal("still there?", r.msg.echo)
    assert.equal(1, r.after.ProtocolErrors - r.before.ProtocolErrors) -- the oversized frame
    assert.equal(2, r.after.HandshakeErrors - r.before.HandshakeErrors) -- it, and the hang-up mid-frame
    assert.equal(r.before.ConnectionsLost, r.after.ConnectionsLost) -- a's session was not touched
  end)

  it("reports what cannot travel", function()
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      return { fn = { halo.send(echo, { f = print }) }, other = { halo.send("<00ABCDEF.0.5>", 1) },
               errors = halo.node_info().SendErrorsRemote }
    end)
    assert.is_nil(r.fn[1])
    assert.matches("cannot encode a function", r.fn[2])
    assert.equal("ENOCONN", r.other[3])
    assert.equal(2, r.errors)
  end)

  it("re-dials a peer that went away and counts the reconnection", function()
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      assert(helper.wait_until(function() return halo.net.node("b@localhost").PoolLen == 3 end, 3000))
      stop() -- b goes away ...
      assert(helper.wait_until(function() return not halo.net.node("b@localhost").Connected end, 3000))
      local p2, echo2
      p2, echo2, stop = start_b("secret", "127.0.0.1:" .. port) -- ... and comes back on the same port
      assert(helper.wait_until(function() return halo.net.node("b@localhost").PoolLen == 3 end, 5000))
      assert(halo.send(echo2, "again"))
      local _, msg = halo.receive(2000)
      echo = echo2
      return { msg = msg, peer = halo.net.node("b@localhost"), info = halo.net.info(), p2 = p2 }
    end)
    assert.equal(port, r.p2)
    assert.equal("again", r.msg.echo)
    assert.equal(3, r.peer.Reconnections) -- each link of the pool replaced
    assert.equal(1, r.info.ConnectionsLost)
    assert.equal(2, r.info.ConnectionsEstablished)
  end)
end)

describe("links and monitors across nodes", function()
  it("deliver downs and exits, unknown processes and demonitors", function()
    local port, echo, stop = start_b("secret")
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      local out = {}
      -- monitor: a down with the remote reason; the relation shows, then goes
      local v1 = halo.call(echo, "victim")
      assert(halo.monitor(v1))
      out.monitors = halo.process_info(halo.self()).MonitorsPID
      halo.send(v1, "died on purpose")
      local _, down = halo.receive(2000)
      out.down, out.v1 = down, v1
      out.after = halo.process_info(halo.self()).MonitorsPID
      -- link from a process that traps exits
      local v2 = halo.call(echo, "victim")
      local got = {}
      local watcher = assert(halo.spawn(function()
        halo.trap_exit(true)
        assert(halo.link(v2))
        got.linked = true
        local _, m = halo.receive(2000)
        got.exit = m
      end))
      assert(helper.wait_until(function() return got.linked end))
      halo.send(v2, "linked end")
      assert(helper.wait_until(function() return got.exit end, 2000))
      out.exit, out.v2 = got.exit, v2
      -- a PID that does not exist there
      assert(halo.monitor(v1))
      local _, gone = halo.receive(2000)
      out.gone = gone
      -- demonitor: nothing arrives
      local v3 = halo.call(echo, "victim")
      assert(halo.monitor(v3))
      assert(halo.demonitor(v3))
      out.demonitor_again = { halo.demonitor(v3) }
      halo.send(v3, "quiet")
      out.quiet = { halo.receive(300) }
      -- an exit signal to a remote process
      local v4 = halo.call(echo, "victim")
      assert(halo.monitor(v4))
      assert(halo.exit(v4, "bye"))
      local _, d4 = halo.receive(2000)
      out.d4 = d4
      -- a reason that cannot travel still ends the monitor
      local v6 = halo.call(echo, "victim_fn")
      assert(halo.monitor(v6))
      halo.send(v6, "go")
      local _, d6 = halo.receive(2000)
      out.d6 = d6
      -- halo.exit from a process this one links to: the link stays
      local w = {}
      assert(halo.spawn(function()
        halo.trap_exit(true)
        assert(halo.link(echo))
        halo.call(echo, "poke_me")
        local _, m = halo.receive(1000)
        w.msg = m
        w.links = halo.process_info(halo.self()).LinksPID
        w.unlink = { halo.unlink(echo) }
      end))
      assert(helper.wait_until(function() return w.unlink end, 3000))
      out.w = w
      -- the link goes: monitors of its processes end with "no connection"
      local v5 = halo.call(echo, "victim")
      assert(halo.monitor(v5))
      stop(true)
      local _, lost = halo.receive(5000)
      out.lost, out.v5 = lost, v5
      return out
    end)
    assert.same({ r.v1 }, r.monitors)
    assert.same({ kind = "down", pid = r.v1, reason = "died on purpose" }, r.down)
    assert.same({}, r.after)
    assert.same({ kind = "exit", pid = r.v2, reason = "linked end" }, r.exit)
    assert.same({ kind = "down", pid = r.v1, reason = "unknown process" }, r.gone)
    assert.equal("ETARGETUNKNOWN", r.demonitor_again[3])
    assert.equal("ETIMEDOUT", r.quiet[3])
    assert.equal("bye", r.d4.reason)
    assert.same({ kind = "down", pid = r.v5, reason = "no connection" }, r.lost)
    assert.equal("unsendable reason", r.d6.reason)
    assert.same({ kind = "exit", pid = echo, reason = "poke" }, r.w.msg)
    assert.same({ echo }, r.w.links)
    assert.same({ true }, r.w.unlink)
  end)
end)

describe("node identity", function()
  it("keeps the first of two nodes that share a name", function()
    local p1, echo1, stop1 = start_b("secret")
    local p2, _, stop2 = start_b("secret")
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. p1))
      local core = require("halo.core")
      local id = assert(core.net.connect("127.0.0.1:" .. p2)) -- the other b
      local second
      assert(helper.wait_until(function()
        local done, why = core.net.dial(id)
        if done ~= false then second = { done, why } end
        return second ~= nil
      end, 3000))
      assert(halo.send(echo1, "first"))
      local _, msg = halo.receive(2000)
      return { second = second, msg = msg, info = halo.net.info() }
    end)
    stop1()
    stop2()
    assert.is_nil(r.second[1])
    assert.matches("a node of that name is connected already", r.second[2])
    assert.equal("first", r.msg.echo)
    assert.equal(0, r.info.ConnectionsLost)
  end)

  it("refuses a bad listen address before starting anything", function()
    local ok, err = pcall(halo.run, function() end, { cookie = "x", listen = "nonsense" })
    assert.is_false(ok)
    assert.matches("listen address must be host:port", err)
    assert.equal(7, helper.run(function() return 7 end)) -- the Lua state is still fine
  end)
end)

describe("simultaneous connects", function()
  -- Each node holds its loop (a blocking wait) until both dials exist, so
  -- each reads the other's HELLO while its own dial is still handshaking:
  -- c dials a while a is held, then holds itself until a has dialed c.
  local C_SCRIPT = [[
local halo = require("halo")
local core = require("halo.core")
local dir, aport = arg[1], tonumber(arg[2])
local id = assert(core.net.connect("127.0.0.1:" .. aport, "a@localhost"))
local echo = halo.spawn({
  handle_message = function(_, from, msg) halo.send(from, { echo = msg }) end,
  handle_call = function() return { info = halo.net.info(), dial = { core.net.dial(id) } } end,
})
local out = io.open(dir .. "/c.tmp", "w"); out:write(halo.net.info().Acceptors[1].Port, " ", echo, "\n"); out:close()
os.rename(dir .. "/c.tmp", dir .. "/c.out")
os.execute("unset LD_PRELOAD; i=0; while [ ! -e " .. dir .. "/a.dialed ] && [ $i -lt 500 ]; do i=$((i+1)); sleep 0.01; done")
halo.receive()
]]

  it("settle on one session when both dials are under way at once", function()
    local core = require("halo.core")
    local dir = helper.script_dir("c.lua", C_SCRIPT)
    local pid
    local r = a(function()
      local aport = halo.net.info().Acceptors[1].Port
      pid = helper.spawn_os(("%s run --name c@localhost --cookie secret --listen 127.0.0.1:0 --registrar none " ..
        "--log-level error %s/c.lua %s %d"):format(halo_bin, dir, dir, aport), dir .. "/c.log")
      -- blocking on purpose: c's dial waits in our accept queue until ours exists
      assert(helper.wait_file(dir .. "/c.out", 500), "node c did not start")
      local o = io.open(dir .. "/c.out")
      local port, echo = o:read("*n"), o:read("*l"):match("%S+")
      o:close()
      local id = assert(core.net.connect("127.0.0.1:" .. port, "c@localhost"))
      io.open(dir .. "/a.dialed", "w"):close()
      assert(helper.wait_until(function()
        local p = halo.net.node("c@localhost")
        return p and p.PoolLen == 3 and core.net.dial(id)
      end, 5000))
      local replies = 0
      for i = 1, 5 do
        assert(halo.send(echo, i))
        local _, msg = halo.receive(1000)
        if msg and msg.echo == i then replies = replies + 1 end
      end
      return { replies = replies, peer = halo.net.node("c@localhost"), info = halo.net.info(),
               c = halo.call(echo, "info", 2000) }
    end)
    helper.kill(pid)
    os.execute("rm -rf " .. dir)
    assert.equal(5, r.replies)
    assert.is_true(r.peer.Connected)
    assert.is_true(r.peer.Dialed) -- the smaller name's dial went on ...
    assert.equal(1, r.info.SimultaneousConnects) -- ... after a told c's to yield
    assert.equal(1, r.c.info.SimultaneousConnects) -- and c's gave way to a's
    assert.same({ true }, r.c.dial) -- c's dial counts as connected, through a's session
    for _, info in ipairs({ r.info, r.c.info }) do
      assert.equal(0, info.ConnectionsLost)
      assert.equal(1, info.ConnectionsEstablished)
      assert.equal(0, info.HandshakeErrors)
    end
  end)
end)

describe("fragments", function()
  it("of a message whose sender died are dropped after the timeout and counted", function()
    local port, echo, stop, pid = start_b("secret")
    local r = a(function()
      halo.net.configure({ max_message = 48000000 }) -- over the 16 MB default: advertised when connecting
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      local cfg = halo.net.configure({ fragment_timeout_ms = 1000 })
      local bad = { halo.net.configure({ compress_threshold = 100 }) }
      assert(halo.call(echo, "send_big", 10000))
      assert(helper.wait_until(function() return halo.net.node("b@localhost").FragmentsReceived > 0 end, 5000))
      os.execute("kill -KILL " .. pid) -- mid-message
      assert(helper.wait_until(function() return halo.net.node("b@localhost").FragmentTimeouts >= 1 end, 5000))
      return { peer = halo.net.node("b@localhost"), cfg = cfg, bad = bad }
    end)
    stop(true)
    assert.equal(1000, r.cfg.fragment_timeout_ms)
    assert.equal(65000, r.cfg.fragment_size)
    assert.equal("EINCORRECT", r.bad[3])
    assert.equal(1, r.peer.FragmentTimeouts)
    assert.equal(0, r.peer.FragmentMessagesRecv)
  end)
end)

describe("halo.net.info()", function()
  it("reports the configured settings and limits, not fixed values", function()
    local r = a(function()
      local before = halo.net.info()
      local cfg = halo.net.configure({ fragment_size = 0, keepalive_ms = 2500, max_message = 1048576,
                                       max_assembly_bytes = 4194304, keepalive_misses = 5 })
      return { before = before, after = halo.net.info(), cfg = cfg,
               bad = { halo.net.configure({ max_assembly_bytes = 100 }) } }
    end)
    assert.equal(16 * 1024 * 1024, r.before.Settings.max_message) -- the default limit
    assert.equal(16 * 1024 * 1024, r.before.MaxMessageSize)
    assert.equal(64 * 1024 * 1024, r.before.Settings.max_assembly_bytes)
    assert.is_true(r.before.Flags.EnableFragmentation)
    assert.equal(1, r.before.Flags.EnableSoftwareKeepAlive)
    assert.equal(0, r.before.MessagesRefused)
    assert.equal(0, r.before.DecompressRefused)
    assert.is_false(r.after.Flags.EnableFragmentation)
    assert.equal(3, r.after.Flags.EnableSoftwareKeepAlive) -- 2.5 s, rounded up
    assert.equal(1048576, r.after.MaxMessageSize)
    assert.same(r.cfg, r.after.Settings)
    assert.equal(5, r.cfg.keepalive_misses)
    assert.equal(4194304, r.cfg.max_assembly_bytes)
    assert.equal("EINCORRECT", r.bad[3])
  end)
end)

describe("halo.net.info() on a networked node", function()
  it("is core.net.info(): one table, with the flags, allow-lists, routes and registrar kept in C", function()
    local r = a(function()
      local core = require("halo.core")
      local before = core.net.info()
      halo.remote.enable_spawn("worker", { name = "Worker" }, "x@h", "c@h")
      halo.remote.enable_application_start("shop")
      halo.remote.set_flags({ spawn = false })
      assert(core.net.route_set("c@localhost", "127.0.0.1", 4321))
      core.net.set_registrar({ Server = "127.0.0.1:2379", Version = "ETCD Client:R1" }) -- as halo.etcd does
      local c, h = core.net.info(), halo.net.info()
      core.net.set_registrar(nil)
      return { same = halo.net.info == core.net.info, before = before, c = c, h = h, after = core.net.info() }
    end)
    assert.is_true(r.same)
    assert.same(r.c, r.h)
    assert.is_true(r.before.Flags.EnableRemoteSpawn)
    assert.same({}, r.before.EnabledSpawn)
    assert.same({}, r.before.Routes)
    assert.is_nil(r.before.Registrar) -- --registrar none
    assert.is_false(r.c.Flags.EnableRemoteSpawn)
    assert.is_true(r.c.Flags.EnableRemoteApplicationStart)
    assert.same({ { Name = "worker", Behavior = "Worker", Nodes = { "c@h", "x@h" } } }, r.c.EnabledSpawn)
    assert.same({ { Name = "shop", Nodes = {} } }, r.c.EnabledApplicationStart)
    assert.same({ { Match = "c@localhost", Host = "127.0.0.1", Port = 4321, Weight = 0, UseResolver = true,
                    UseCustomCookie = false, UseCustomCert = false, HandshakeVersion = "HHS:R1",
                    ProtoVersion = "HNP:R1" } }, r.c.Routes)
    assert.same(r.c.Flags, r.c.Acceptors[1].Flags)
    assert.same({}, r.c.ProxyRoutes)
    assert.same({ Server = "127.0.0.1:2379", Version = "ETCD Client:R1" }, r.c.Registrar)
    assert.is_nil(r.after.Registrar)
  end)
end)

describe("a stranger's handshake", function()
  it("cannot forge log lines, drive a terminal or break the JSON log with the name it gives", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local r = helper.run(function()
      assert(halo.log.remove_logger("default")) -- the spec's output stays quiet
      assert(halo.log.add_logger("plain", { format = "plain", output = dir .. "/plain.log" }))
      assert(halo.log.add_logger("json", { format = "json", output = dir .. "/json.log" }))
      local port = halo.net.info().Acceptors[1].Port
      -- HELLO naming itself with C1 CSI, ESC, a newline and a byte that is not UTF-8, then a PROOF of zeros
      local name = "\194\1552J\27[31m\n2026-01-01T00:00:00.000000 [error] forged\255@x"
      local function be(n, k)
        local t = {}
        for i = k - 1, 0, -1 do t[#t + 1] = string.char(math.floor(n / 2 ^ (8 * i)) % 256) end
        return table.concat(t)
      end
      local hello = "\1\1\0" .. string.char(#name) .. name .. string.rep("N", 16) .. be(1, 8)
      local proof = "\3" .. string.rep("\0", 44)
      local f = assert(io.open(dir .. "/wire", "wb"))
      f:write(be(#hello, 4), hello, be(#proof, 4), proof)
      f:close()
      assert(os.execute(("unset LD_PRELOAD; bash -c 'cat %s/wire > /dev/tcp/127.0.0.1/%d'"):format(dir, port)) == 0)
      for _ = 1, 150 do
        if halo.net.info().HandshakeErrors > 0 then break end
        halo.sleep(20)
      end
      return { errors = halo.net.info().HandshakeErrors }
    end, { name = "a@localhost", cookie = "secret", listen = "127.0.0.1:0", registrar = "none", log_level = "warning" })
    local function read(file)
      local f = assert(io.open(dir .. "/" .. file, "rb"))
      local t = {}
      for l in f:lines() do if l:find("does not match", 1, true) then t[#t + 1] = l end end
      f:close()
      return t
    end
    local plain, json = read("plain.log"), read("json.log")
    os.execute("rm -rf " .. dir)
    assert.equal(1, r.errors)
    assert.equal(1, #plain)
    assert.truthy(plain[1]:find("connection with \\xc2\\x9b2J\\x1b[31m\\n2026-01-01T00:00:00.000000 [error] forged\\xff@x failed",
      1, true))
    assert.equal(1, #json)
    assert.is_nil(json[1]:find("[\27\255]"))
    assert.is_nil(json[1]:find("\194\155", 1, true))
    local msg = cjson.decode(json[1]).message
    assert.truthy(msg:find("with \194\1552J\27[31m\n2026-01-01T00:00:00.000000 [error] forged\239\191\189@x failed", 1, true))
  end)
end)

describe("the transport's keep-alive", function()
  it("notices a peer that stops answering, without any traffic, and gets it back", function()
    local port, echo, stop, pid = start_b("secret")
    local r = a(function()
      assert(halo.net.connect("b@localhost", "127.0.0.1:" .. port))
      assert(helper.wait_until(function() return halo.net.node("b@localhost").PoolLen == 3 end, 3000))
      os.execute("kill -STOP " .. pid) -- frozen: its socket stays open, nothing comes back
      local t0 = halo.now()
      -- a monitor asked meanwhile gets no confirmation: the lost peer ends the wait
      local mon = {}
      halo.spawn(function()
        mon.result = { halo.monitor(echo) }
        mon.ms = halo.now() - t0
        local _, down = halo.receive(1000)
        mon.down = down
      end)
      assert(helper.wait_until(function() return not halo.net.node("b@localhost").Connected end, 8000))
      local ms = halo.now() - t0
      assert(helper.wait_until(function() return mon.down end, 2000))
      os.execute("kill -CONT " .. pid)
      assert(helper.wait_until(function() return halo.net.node("b@localhost").PoolLen == 3 end, 8000))
      return { ms = ms, peer = halo.net.node("b@localhost"), mon = mon }
    end)
    stop()
    assert.is_true(r.ms >= 2000 and r.ms < 6000, "noticed after " .. r.ms .. " ms")
    assert.same({ true }, r.mon.result)
    assert.is_true(r.mon.ms < 4500, "the monitor waited " .. r.mon.ms .. " ms")
    assert.equal("no connection", r.mon.down.reason)
    assert.equal(3, r.peer.Reconnections)
  end)
end)
