-- halo.http.serve over real sockets: curl and nc (Debian) run in the
-- background while the node serves (the node's loop must not block), and
-- halo's own client from inside the node. Every limit spec checks that its
-- counter moved.
local halo = require("halo")
local http = require("halo.http")
local helper = require("helper")

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir) == 0)
local seq = 0

local read = helper.read

-- Runs a shell command in the background; returns the path its output goes to
-- and the path that appears once it is done.
local function spawn_sh(cmd)
  seq = seq + 1
  local out = dir .. "/out" .. seq
  os.execute("((unset LD_PRELOAD; " .. cmd .. ") > " .. out .. " 2>&1; touch " .. out .. ".done 2>/dev/null) &")
  return out, out .. ".done"
end

-- Inside the node: runs cmd in the background and waits (timeout ms) for its output.
local function sh(cmd, timeout)
  local out, done = spawn_sh(cmd)
  assert(helper.wait_until(function() return read(done) ~= nil end, timeout or 5000), "timed out: " .. cmd)
  return read(out)
end

local function curl(port, args, timeout)
  return sh("curl -s --max-time 5 " .. args:gsub("URL", "http://127.0.0.1:" .. port), timeout)
end

-- raw bytes (printf format) to the server with nc; the answer comes back
local function nc(port, printf)
  return sh(("printf '%s' | nc -N 127.0.0.1 %d"):format(printf, port), 8000)
end

local function get(port, path, opts)
  opts = opts or {}
  opts.host, opts.port, opts.path = "127.0.0.1", port, path
  return http.request(opts)
end

describe("halo.http.serve", function()
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("serves static, Lua and C-less routes with 404, 405 + Allow and HEAD", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = {
        ["/hello"] = function(req) return "hello " .. req.query end,
        ["/echo"] = { methods = { "POST", "PUT" }, handler = function(req)
          return 201, req.method .. " " .. req.body, { ["content-type"] = "application/x-echo",
                                                         ["x-agent"] = req.headers["user-agent"] or "" }
        end },
      } }))
      assert.is_number(srv.port)
      assert.is_string(srv.pid)
      assert(srv:static("/health", 200, "application/json", '{"ok":true}'))
      local r = assert(get(srv.port, "/health"))
      assert.same({ 200, '{"ok":true}' }, { r.status, r.body })
      r = assert(get(srv.port, "/hello?a=1&b"))
      assert.same({ 200, "hello a=1&b" }, { r.status, r.body })
      r = assert(get(srv.port, "/echo", { method = "PUT", body = "x" }))
      assert.same({ 201, "PUT x" }, { r.status, r.body })
      r = assert(get(srv.port, "/nowhere"))
      assert.equal(404, r.status)
      local out = curl(srv.port, "-i -X DELETE URL/echo")
      assert.truthy(out:match("^HTTP/1.1 405"))
      assert.truthy(out:match("\r\nAllow: POST, PUT\r\n"))
      out = curl(srv.port, "-i -X DELETE URL/health")
      assert.truthy(out:match("\r\nAllow: GET, HEAD\r\n"))
      -- HEAD: the headers of GET, no body
      out = curl(srv.port, "-sI URL/health")
      assert.truthy(out:match("^HTTP/1.1 200"))
      assert.truthy(out:match("Content%-Length: 11\r\n"))
      assert.falsy(out:match("ok"))
      out = curl(srv.port, "-sI URL/hello")
      assert.truthy(out:match("Content%-Length: 6\r\n"), out)
      out = curl(srv.port, "-si -A agent007 -X POST --data-binary abc URL/echo")
      assert.truthy(out:match("\r\nx%-agent: agent007\r\n"))
      assert.truthy(out:lower():match("\r\ncontent%-type: application/x%-echo\r\n"))
      -- replaced static answer
      assert(srv:static("/health", 503, "text/plain", "down"))
      r = assert(get(srv.port, "/health"))
      assert.same({ 503, "down" }, { r.status, r.body })
      assert(srv:unroute("/health"))
      assert.equal(404, assert(get(srv.port, "/health")).status)
      local st = srv:stats()
      assert.equal(2, st.not_found)
      assert.equal(2, st.method_not_allowed)
      srv:close()
    end)
  end)

  it("reuses keep-alive connections and answers pipelined requests in order", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = {
        ["/slow"] = function() halo.sleep(100) return "slow" end,
        ["/fast"] = function() return "fast" end,
      } }))
      srv:static("/static", 200, "text/plain", "static")
      local out = curl(srv.port, "-v URL/fast URL/static URL/fast")
      assert.truthy(out:match("Re%-using existing connection"))
      assert.truthy(out:match("fast.*static.*fast"))
      local st = srv:stats()
      assert.equal(1, st.accepted)
      assert.equal(2, st.reused)
      -- halo's own client keeps its connection too
      assert(get(srv.port, "/fast"))
      assert(get(srv.port, "/static"))
      assert.equal(3, srv:stats().reused)
      -- four requests in one packet: a slow process route first, static and
      -- process answers after it, still in order
      out = nc(srv.port, "GET /slow HTTP/1.1\\r\\n\\r\\nGET /static HTTP/1.1\\r\\n\\r\\n"
        .. "GET /fast HTTP/1.1\\r\\n\\r\\nGET /static HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n")
      local bodies = {}
      for b in out:gmatch("\r\n\r\n(%l+)") do bodies[#bodies + 1] = b end
      assert.same({ "slow", "static", "fast", "static" }, bodies, out)
      assert.truthy(out:match("Connection: close\r\n\r\nstatic$"))
      -- HTTP/1.0: closed after the answer unless it asks for keep-alive
      out = nc(srv.port, "GET /fast HTTP/1.0\r\n\r\nGET /static HTTP/1.0\r\n\r\n")
      assert.truthy(out:match("^HTTP/1.1 200 OK\r\n.*Connection: close\r\n\r\nfast$"))
      out = nc(srv.port, "GET /fast HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /static HTTP/1.0\r\n\r\n")
      assert.truthy(out:match("Connection: keep%-alive\r\n\r\nfast.*Connection: close\r\n\r\nstatic$"))
      srv:close()
    end)
  end)

  it("takes chunked request bodies and Expect: 100-continue", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = {
        ["/echo"] = { methods = { "POST" }, handler = function(req)
          return 200, req.headers["transfer-encoding"] .. ":" .. req.body
        end },
      } }))
      local big = dir .. "/big"
      local f = io.open(big, "wb")
      f:write(string.rep("0123456789", 10000))
      f:close()
      local out = curl(srv.port, "-H 'Transfer-Encoding: chunked' -H 'Expect: 100-continue' --data-binary @" .. big
        .. " URL/echo")
      assert.equal("chunked:" .. string.rep("0123456789", 10000), out)
      srv:close()
    end)
  end)

  it("streams chunked answers and Server-Sent Events", function()
    helper.run(function()
      local gone
      local srv = assert(http.serve({ routes = {
        ["/events"] = function(_, res)
          res:sse()
          for i = 1, 3 do
            assert(res:event({ event = "tick", id = i, data = "line one\nline " .. i }))
            halo.sleep(10)
          end
          res:finish()
        end,
        ["/forever"] = function(_, res)
          res:sse()
          local i = 0
          while true do
            i = i + 1
            local ok, err = res:event({ data = i })
            if not ok then
              gone = err
              return
            end
            halo.sleep(5)
          end
        end,
        ["/chunks"] = function(_, res)
          res:start(200, { ["content-type"] = "text/plain" })
          res:write("a")
          res:write("bc")
        end,
      } }))
      local out = curl(srv.port, "-N -i URL/events")
      assert.truthy(out:lower():match("content%-type: text/event%-stream\r\n"))
      assert.truthy(out:lower():match("cache%-control: no%-cache\r\n"))
      assert.truthy(out:match("\r\n\r\nevent: tick\nid: 1\ndata: line one\ndata: line 1\n\n"
        .. "event: tick\nid: 2\ndata: line one\ndata: line 2\n\nevent: tick\nid: 3\n"))
      out = curl(srv.port, "-i URL/chunks")
      assert.truthy(out:match("Transfer%-Encoding: chunked\r\n"))
      assert.truthy(out:match("\r\n\r\nabc$"))
      local r = assert(get(srv.port, "/chunks"))
      assert.equal("abc", r.body)
      -- the client goes away: the next write says so
      out = curl(srv.port, "-N --max-time 0.2 URL/forever")
      assert.truthy(out:match("^data: 1\n\n"))
      assert(helper.wait_until(function() return gone ~= nil end))
      assert.truthy(gone:match("^ENOCONN"))
      srv:close()
    end)
  end)

  it("answers 400, 431 and 413 with a short text, and counts them", function()
    helper.run(function()
      local srv = assert(http.serve({ max_body = 1000, max_header = 2048, routes = {
        ["/echo"] = { methods = { "POST" }, handler = function(req) return #req.body .. "" end },
      } }))
      local out = nc(srv.port, "BLAH\\r\\n\\r\\n")
      assert.truthy(out:match("^HTTP/1.1 400 Bad Request\r\n.*Connection: close\r\n\r\nmalformed request\n$"))
      out = curl(srv.port, "-i -H 'X-Big: " .. string.rep("a", 3000) .. "' URL/echo")
      assert.truthy(out:match("^HTTP/1.1 431 .*request head too large\n$"))
      local r = assert(get(srv.port, "/echo", { body = string.rep("b", 5000) }))
      assert.same({ 413, "request body too large\n" }, { r.status, r.body })
      r = assert(get(srv.port, "/echo", { body = string.rep("b", 1000) }))
      assert.same({ 200, "1000" }, { r.status, r.body })
      local big = dir .. "/b2"
      local f = io.open(big, "wb")
      f:write(string.rep("x", 3000))
      f:close()
      out = curl(srv.port, "-i -H 'Transfer-Encoding: chunked' --data-binary @" .. big .. " URL/echo")
      assert.truthy(out:match("^HTTP/1.1 413"))
      local st = srv:stats()
      assert.same({ 1, 1, 2 }, { st.bad_requests, st.header_too_large, st.body_too_large })
      srv:close()
    end)
  end)

  it("answers 500 for a handler error, logs the traceback and serves the next request", function()
    local log = dir .. "/errors.log"
    helper.run(function()
      halo.log.remove_logger("default") -- the traceback goes to the file only
      assert(halo.log.add_logger("httpd_spec", { output = log, levels = { "error" } }))
      local srv = assert(http.serve({ routes = {
        ["/boom"] = function() error("kaboom") end,
        ["/ok"] = function() return "ok" end,
      } }))
      local out = curl(srv.port, "-i URL/boom URL/ok -v")
      assert.truthy(out:match("HTTP/1.1 500 Internal Server Error\r\n.-\r\n\r\ninternal server error\n"))
      assert.falsy(out:match("kaboom"))
      assert.truthy(out:match("Re%-using existing connection"))
      assert.truthy(out:match("\r\n\r\nok$"))
      assert.equal(1, srv:stats().handler_errors)
      assert.equal(1, srv:stats().accepted)
      halo.log.remove_logger("httpd_spec")
      srv:close()
    end, { log_level = "info" })
    local text = read(log)
    assert.truthy(text:match("kaboom"))
    assert.truthy(text:match("stack traceback"))
  end)

  it("cuts off slow heads (slowloris), slow bodies and idle connections", function()
    helper.run(function()
      local srv = assert(http.serve({ header_timeout = 300, body_timeout = 300, idle_timeout = 300, routes = {
        ["/echo"] = { methods = { "POST" }, handler = function(req) return req.body end },
      } }))
      -- one byte every 100 ms: the head is not complete within 300 ms
      local slow = "for c in G E T ' ' / e c h o; do printf %s \"$c\"; sleep 0.1; done"
      local out = sh(("(%s) | nc -N 127.0.0.1 %d"):format(slow, srv.port), 8000)
      assert.truthy(out:match("^HTTP/1.1 408 Request Timeout\r\n.*request head not received in time\n$"))
      out = sh(("(printf 'POST /echo HTTP/1.1\\r\\nContent-Length: 10\\r\\n\\r\\nab'; sleep 0.6) | nc -N 127.0.0.1 %d")
        :format(srv.port), 8000)
      assert.truthy(out:match("^HTTP/1.1 408 .*request body not received in time\n$"))
      -- a connection that says nothing at all
      sh(("sleep 0.6 | nc -N 127.0.0.1 %d"):format(srv.port), 8000)
      -- an idle keep-alive connection after its answer
      out = sh(("(printf 'POST /echo HTTP/1.1\\r\\nContent-Length: 2\\r\\n\\r\\nhi'; sleep 0.6) | nc -N 127.0.0.1 %d")
        :format(srv.port), 8000)
      assert.truthy(out:match("\r\n\r\nhi$"))
      local st = srv:stats()
      assert.equal(2, st.header_timeouts)
      assert.equal(1, st.body_timeouts)
      assert.equal(1, st.idle_timeouts)
      srv:close()
    end)
  end)

  it("refuses connections over the cap with 503", function()
    helper.run(function()
      local srv = assert(http.serve({ max_connections = 2 }))
      srv:static("/x", 200, "text/plain", "x")
      local holders = {}
      for i = 1, 2 do holders[i] = { spawn_sh(("sleep 2 | nc -q 0 127.0.0.1 %d"):format(srv.port)) } end
      assert(helper.wait_until(function() return srv:stats().connections == 2 end, 3000))
      local out = curl(srv.port, "-i URL/x")
      assert.truthy(out:match("^HTTP/1.1 503 .*too many connections\n$"))
      assert.equal(1, srv:stats().refused)
      srv:close()
    end)
  end)

  it("closes a connection whose reader leaves too much unsent", function()
    helper.run(function()
      local result
      local srv = assert(http.serve({ max_output = 65536, routes = {
        ["/flood"] = function(_, res)
          res:start(200)
          local chunk = string.rep("f", 16384)
          for _ = 1, 100000 do
            local ok, err = res:write(chunk)
            if not ok then
              result = err
              return
            end
            halo.yield()
          end
        end,
      } }))
      -- bash writes the request and never reads
      spawn_sh(("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; printf \"GET /flood HTTP/1.1\\r\\n\\r\\n\" >&3; sleep 3'")
        :format(srv.port))
      assert(helper.wait_until(function() return result ~= nil end, 5000))
      assert.truthy(result:match("^ENOCONN"))
      assert.equal(1, srv:stats().output_overflows)
      srv:close()
    end)
  end)

  it("runs each connection's handlers in its own process", function()
    helper.run(function()
      local waiting, conn_pid
      local srv = assert(http.serve({ routes = {
        ["/wait"] = function()
          waiting = halo.self()
          local _, msg = halo.receive(5000)
          return "released " .. tostring(msg)
        end,
        ["/fast"] = function() return "fast" end,
        ["/hang"] = function()
          conn_pid = halo.self()
          halo.receive()
        end,
      } }))
      local out1, done1 = spawn_sh(("curl -s --max-time 5 http://127.0.0.1:%d/wait"):format(srv.port))
      assert(helper.wait_until(function() return waiting ~= nil end))
      assert.equal("halo.http.connection", halo.process_info(waiting).Behavior)
      -- the first connection's handler waits; another connection is served meanwhile
      assert.equal("fast", assert(get(srv.port, "/fast")).body)
      assert.is_nil(read(done1))
      halo.send(waiting, "go")
      assert(helper.wait_until(function() return read(done1) ~= nil end))
      assert.equal("released go", read(out1))
      -- a handler process killed mid-request: 503, and the counter
      local out2, done2 = spawn_sh(("curl -s -i --max-time 5 http://127.0.0.1:%d/hang"):format(srv.port))
      assert(helper.wait_until(function() return conn_pid ~= nil end))
      halo.kill(conn_pid)
      assert(helper.wait_until(function() return read(done2) ~= nil end))
      assert.truthy(read(out2):match("^HTTP/1.1 503 .*handler gone\n$"))
      assert.equal(1, srv:stats().handler_gone)
      srv:close()
    end)
  end)

  it("serves 1000 concurrent connections", function()
    local ffi = require("ffi")
    pcall(ffi.cdef, "struct halo_rlimit { unsigned long cur, max; }; int getrlimit(int, struct halo_rlimit *); int setrlimit(int, const struct halo_rlimit *);")
    local rl = ffi.new("struct halo_rlimit")
    if ffi.C.getrlimit(7, rl) == 0 and rl.cur < 4096 and rl.max > rl.cur then
      rl.cur = rl.max
      ffi.C.setrlimit(7, rl)
    end
    helper.run(function()
      local N, arrived, peak = 1000, 0, 0
      local srv
      srv = assert(http.serve({ routes = {
        ["/together"] = function()
          arrived = arrived + 1
          -- nobody answers before all N are connected at once
          helper.wait_until(function() return arrived >= N end, 8000, 10)
          peak = math.max(peak, srv:stats().connections)
          return "ok"
        end,
      } }))
      local me, ok = halo.self(), 0
      for _ = 1, N do
        halo.spawn(function()
          local r = get(srv.port, "/together", { timeout = 10000 })
          halo.send(me, r and r.status == 200 and r.body == "ok")
        end)
      end
      for _ = 1, N do
        local _, good = halo.receive(15000)
        if good then ok = ok + 1 end
      end
      assert.equal(N, ok)
      assert.is_true(peak >= N)
      assert.is_true(srv:stats().accepted >= N)
      srv:close()
    end, { timeout = 30000 })
  end)

  it("closes gracefully: answers in flight finish, then nothing is accepted", function()
    helper.run(function()
      local started
      local srv = assert(http.serve({ routes = {
        ["/slow"] = function() started = true halo.sleep(200) return "finished" end,
      } }))
      local out, done = spawn_sh(("curl -s --max-time 5 http://127.0.0.1:%d/slow"):format(srv.port))
      assert(helper.wait_until(function() return started end))
      srv:close()
      assert(helper.wait_until(function() return read(done) ~= nil end))
      assert.equal("finished", read(out))
      local r, err = get(srv.port, "/slow")
      assert.is_nil(r)
      assert.truthy(err:match("refused"))
    end)
  end)

  it("answers 503 to requests still in handlers when the node stops", function()
    local out, done
    helper.run(function()
      local srv = assert(http.serve({ routes = { ["/hang"] = function() halo.receive() end } }))
      local started = false
      srv:route("/hang", function() started = true halo.receive() end)
      out, done = spawn_sh(("curl -s -i --max-time 5 http://127.0.0.1:%d/hang"):format(srv.port))
      assert(helper.wait_until(function() return started end))
    end)
    for _ = 1, 500 do
      if read(done) then break end
      os.execute("sleep 0.01")
    end
    assert.truthy(read(out):match("^HTTP/1.1 503 .*handler gone\n$"))
  end)

  it("reports a port in use and bad options", function()
    helper.run(function()
      local a = assert(http.serve({ name = "spec_web" }))
      assert.equal(a.pid, halo.whereis("spec_web"))
      assert.equal("halo.http.server", halo.process_info(a.pid).Behavior)
      local b, err = http.serve({ port = a.port })
      assert.is_nil(b)
      assert.truthy(err:match("EADDRINUSE"))
      assert.has_error(function() http.serve({ max_body = -1 }) end)
      assert.has_error(function() a:route("/x", function() end, { "BREW" }) end)
      assert.has_error(function() a:route("nope", function() end) end)
      assert.has_error(function() http.serve({ colour = "red" }) end)
      a:close()
    end)
  end)

  it("refuses handler headers that would break the head (NUL, CR, LF in names and values)", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = {
        ["/name"] = function() return 200, "x", { ["X-A\0\r\nInjected"] = "1" } end,
        ["/value"] = function() return 200, "x", { ["X-A"] = "a\0b" } end,
        ["/table"] = function() return 200, {} end,
      } }))
      local out = nc(srv.port, "GET /name HTTP/1.1\\r\\n\\r\\nGET /value HTTP/1.1\\r\\n\\r\\nGET /table HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n")
      assert.falsy(out:match("Injected"))
      assert.falsy(out:match("%z"))
      assert.falsy(out:match("table: "))
      local _, n = out:gsub("HTTP/1.1 500 Internal Server Error", "")
      assert.equal(3, n)
      assert.equal(3, srv:stats().handler_errors)
      srv:close()
    end)
  end)

  it("formats SSE events without letting a field inject another", function()
    helper.run(function()
      local errs = {}
      local srv = assert(http.serve({ routes = {
        ["/ev"] = function(_, res)
          res:sse()
          for _, bad in ipairs({ { event = "a\nid: evil" }, { id = "1\rdata: x" }, { retry = "5\n" }, { id = "a\0b" } }) do
            local ok, err = pcall(res.event, res, bad)
            errs[#errs + 1] = not ok and err or false
          end
          res:event({ event = "e", data = "x\rdata: y\r\nz" })
          res:finish()
        end,
      } }))
      local out = curl(srv.port, "-N URL/ev")
      assert.equal("event: e\ndata: x\ndata: data: y\ndata: z\n\n", out)
      assert.equal(4, #errs)
      for _, e in ipairs(errs) do assert.truthy(e and e:match("CR, LF")) end
      srv:close()
    end)
  end)

  it("writes a whole answer to a client that half-closed after its request", function()
    helper.run(function()
      local srv = assert(http.serve({}))
      local body = string.rep("x", 16 * 1024 * 1024)
      assert(srv:static("/big", 200, "text/plain", body))
      local out = sh(("printf 'GET /big HTTP/1.1\\r\\n\\r\\n' | nc -N 127.0.0.1 %d | wc -c"):format(srv.port), 8000)
      assert.equal(#body + #"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 16777216\r\n\r\n",
        tonumber(out))
      srv:close()
    end)
  end)

  it("does not cut off as idle a reader that drains a long answer, only one that stalls", function()
    helper.run(function()
      local srv = assert(http.serve({ idle_timeout = 200 }))
      local body = string.rep("x", 16 * 1024 * 1024)
      assert(srv:static("/big", 200, "text/plain", body))
      -- 1 MB every 50 ms: the answer takes longer than idle_timeout, yet moves; then idle, it closes
      local out = sh(("(printf 'GET /big HTTP/1.1\\r\\n\\r\\n'; sleep 3) | nc 127.0.0.1 %d | "
        .. "(n=0; while c=$(head -c 1048576 | wc -c); [ \"$c\" != 0 ]; do n=$((n+c)); sleep 0.05; done; echo $n)")
        :format(srv.port), 8000)
      assert.equal(#body + #"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 16777216\r\n\r\n",
        tonumber(out))
      assert.equal(1, srv:stats().idle_timeouts)
      -- a reader that stops reading is cut off
      spawn_sh(("(printf 'GET /big HTTP/1.1\\r\\n\\r\\n'; sleep 2) | nc 127.0.0.1 %d | sleep 2"):format(srv.port))
      assert(helper.wait_until(function() return srv:stats().idle_timeouts == 2 end, 3000))
      srv:close()
    end)
  end)

  it("cuts a stream off (no last chunk) when its handler raises, and counts it", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = {
        ["/s"] = function(_, res) res:start(200) res:write("part") error("mid-stream") end,
      } }))
      local out = nc(srv.port, "GET /s HTTP/1.1\\r\\n\\r\\n")
      assert.truthy(out:match("\r\n\r\n4\r\npart\r\n$"))
      assert.equal(1, srv:stats().handler_errors)
      srv:close()
    end)
  end)

  it("keeps the next request's answer when a handler raises after it answered", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = {
        ["/fin"] = function(_, res) res:finish() error("after the answer") end,
        ["/ok"] = function() return "ok" end,
      } }))
      local out = nc(srv.port, "GET /fin HTTP/1.1\\r\\n\\r\\nGET /ok HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n")
      assert.truthy(out:match("^HTTP/1.1 200 OK\r\n.-Content%-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n.*\r\n\r\nok$"))
      srv:close()
    end)
  end)

  it("answers HEAD on a streamed route with the head GET would get", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = {
        ["/s"] = function(_, res) res:start(200) assert(res:write("abc")) assert(res:finish()) end,
      } }))
      -- the handler's writes succeed (nothing is sent) and the next request is served
      local out = nc(srv.port, "HEAD /s HTTP/1.1\\r\\n\\r\\nGET /s HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n")
      assert.truthy(out:match("^HTTP/1.1 200 OK\r\n"))
      assert.falsy(out:match("Content%-Length"))
      assert.truthy(out:match("^HTTP/1.1 200 OK\r\n[^\n]*\r\nTransfer%-Encoding: chunked\r\n\r\n"
        .. "HTTP/1.1 200 OK\r\n.*\r\n\r\n3\r\nabc\r\n0\r\n\r\n$"))
      assert.equal(0, srv:stats().handler_errors)
      srv:close()
    end)
  end)

  it("takes absolute-form request targets", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = { ["/hello"] = function(req) return req.path .. " " .. req.query end,
                                                 ["/"] = function(req) return "root " .. req.query end } }))
      local out = nc(srv.port, ("GET http://127.0.0.1:%d/hello?a=1 HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n"):format(srv.port))
      assert.truthy(out:match("^HTTP/1.1 200 .*\r\n\r\n/hello a=1$"))
      out = nc(srv.port, "GET HTTP://h?b HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n")
      assert.truthy(out:match("^HTTP/1.1 200 .*\r\n\r\nroot b$"))
      srv:close()
    end)
  end)

  it("sends no body, chunked or not, on a streamed 204 or 304", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = {
        ["/none"] = function(req, res) res:start(tonumber(req.query)) res:write("x") res:finish() end,
        ["/ok"] = function() return "ok" end,
      } }))
      for _, status in ipairs({ 204, 304 }) do
        local out = nc(srv.port, ("GET /none?%d HTTP/1.1\\r\\n\\r\\nGET /ok HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n")
          :format(status))
        assert.truthy(out:match("^HTTP/1.1 " .. status .. " [^\r]*\r\n"))
        assert.falsy(out:match("Transfer%-Encoding"))
        assert.truthy(out:match("^[^\n]*\r\n.-\r\n\r\nHTTP/1.1 200 OK\r\n.*\r\n\r\nok$"))
      end
      srv:close()
    end)
  end)

  it("lets go of a large request body once its request is answered (the connection stays open)", function()
    helper.run(function()
      local srv = assert(http.serve({ routes = {
        ["/up"] = { methods = { "POST" }, handler = function(req) return 200, tostring(#req.body) end },
      } }))
      local res = assert(http.request({ host = "127.0.0.1", port = srv.port, path = "/up", method = "POST",
        body = string.rep("x", 1000000) }))
      assert.equal("1000000", res.body)
      local st = srv:stats()
      assert.equal(1, st.connections) -- the client keeps it alive
      assert.is_true(st.buffered < 65536, "still buffered: " .. st.buffered)
      srv:close()
    end)
  end)

  it("logs a failed serve once, without an error from its server process's terminate", function()
    local log = dir .. "/serve_fail.log"
    helper.run(function()
      halo.log.remove_logger("default")
      assert(halo.log.add_logger("serve_fail", { output = log, levels = { "error" } }))
      local srv, err = http.serve({ host = "not.an.address" })
      assert.is_nil(srv)
      assert.truthy(err:match("^EINCORRECT"), err)
      halo.log.remove_logger("serve_fail")
    end, { log_level = "info" })
    local text = read(log)
    assert.truthy(text:find("not an IP address", 1, true), text)
    assert.falsy(text:find("index is nil", 1, true), text)
  end)
end)
