-- halo.http.request / halo.http.get against a real server: Debian's nginx
-- (with its echo module, package libnginx-mod-http-echo) on a free loopback
-- port, in a temporary prefix; killed in teardown. nginx reports its
-- connection serial number ($connection), so reuse is seen from both sides.
local halo = require("halo")
local core = require("halo.core")
local http = require("halo.http")
local helper = require("helper")

local CONF = [[
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
daemon off;
master_process off;
worker_processes 1;
error_log DIR/error.log warn;
pid DIR/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path DIR/tmp;
  proxy_temp_path DIR/tmp;
  fastcgi_temp_path DIR/tmp;
  uwsgi_temp_path DIR/tmp;
  scgi_temp_path DIR/tmp;
  keepalive_requests 10000;
  keepalive_timeout 60s;
  default_type text/plain;
  server {
    listen 127.0.0.1:PORT;
    location = /hello { return 200 "hello"; }
    location = /conn { return 200 "$connection $connection_requests"; }
    location = /echo { echo_read_request_body; echo -n "$request_method|$http_x_test|$http_x_n|$content_type|$request_body"; }
    location = /headers { add_header X-Multi a; add_header X-Multi b; add_header X-Case Yes; return 200 "ok"; }
    location = /nap { echo_sleep 0.2; echo -n "$connection"; }
    location = /slow { echo_sleep 0.5; echo -n "slow"; }
    location = /stall { echo_sleep 5; echo -n "late"; }
  }
}
]]

local dir, port, nginx_pid, base

describe("halo.http", function()
  setup(function()
    port = helper.free_ports(1)
    dir = helper.script_dir("nginx.conf", "")
    local f = assert(io.open(dir .. "/nginx.conf", "w"))
    f:write((CONF:gsub("DIR", dir):gsub("PORT", tostring(port))))
    f:close()
    os.execute("mkdir -p " .. dir .. "/tmp")
    nginx_pid = helper.spawn_os(("unset LD_PRELOAD; exec nginx -p %s -c %s/nginx.conf"):format(dir, dir),
      dir .. "/nginx.out")
    base = ("http://127.0.0.1:%d"):format(port)
    helper.run(function()
      assert(helper.wait_until(function()
        local res = http.get(base .. "/hello", { timeout = 500 })
        return res and res.status == 200
      end, 5000, 20), "nginx did not start: " .. (io.open(dir .. "/error.log") or io.open(dir .. "/nginx.out")):read("*a"))
    end)
  end)
  teardown(function()
    if nginx_pid then helper.kill(nginx_pid) end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("parses urls and refuses https, other schemes and malformed ones", function()
    assert.same({ "h", 80, "/" }, { http.parse_url("http://h") })
    assert.same({ "h", 8080, "/?x=1" }, { http.parse_url("HTTP://h:8080?x=1") })
    assert.same({ "::1", 81, "/a/b?q" }, { http.parse_url("http://[::1]:81/a/b?q#frag") })
    for _, bad in ipairs({ "https://h/", "ftp://h/", "h/path", "http://u:p@h/", "http://h:0/", "http://h:x/",
                           "http://:80/", "http://h:70000/" }) do
      local h, err, code = http.parse_url(bad)
      assert.is_nil(h, bad)
      assert.equal("EINCORRECT", code)
      assert.truthy(err:find(bad, 1, true), err)
    end
    assert.matches("https is not supported %(no TLS", select(2, http.parse_url("https://h/")))
    local r, sent = helper.run(function()
      return { http.get("https://127.0.0.1:" .. port .. "/hello") }, core.http.stats().connections
    end)
    assert.equal(0, sent)
    assert.same({ nil, "EINCORRECT: https is not supported (no TLS in halo's HTTP client): https://127.0.0.1:" ..
      port .. "/hello", "EINCORRECT" }, r)
  end)

  it("answers EINCORRECT for a url whose target has spaces or control characters (regression: raised)", function()
    local r = helper.run(function()
      local before = core.http.stats()
      local out = {}
      for i, u in ipairs({ base .. "/a b", base .. "/a\r\nX-Evil: 1", base .. "/?q=\t", base .. "/\127" }) do
        out[i] = { pcall(http.get, u) }
      end
      local after = core.http.stats()
      out.sent = after.connections - before.connections + after.reused - before.reused
      return out
    end)
    assert.equal(0, r.sent)
    for i = 1, 4 do
      assert.is_true(r[i][1], tostring(r[i][2]))
      assert.is_nil(r[i][2])
      assert.equal("EINCORRECT", r[i][4])
      assert.matches("^EINCORRECT: malformed url", r[i][3])
    end
  end)

  it("reuses one keep-alive connection per host:port for sequential requests", function()
    local bodies, before, after = helper.run(function()
      local before = core.http.stats()
      local out = {}
      for i = 1, 3 do
        local res = assert(http.get(base .. "/conn"))
        assert.equal(200, res.status)
        out[i] = res.body
      end
      return out, before, core.http.stats()
    end)
    local conn = bodies[1]:match("^(%d+) 1$")
    assert.truthy(conn, bodies[1])
    assert.same({ conn .. " 1", conn .. " 2", conn .. " 3" }, bodies) -- the server saw one connection
    assert.equal(1, after.connections - before.connections)
    assert.equal(2, after.reused - before.reused)
    assert.equal(1, after.idle)
  end)

  it("sends method, headers, body and content type and returns the response headers", function()
    local echo, hdrs = helper.run(function()
      local echo = assert(http.request({ url = base .. "/echo", method = "PUT", body = "payload",
                                         content_type = "text/x-spec", headers = { ["X-Test"] = "v 1", ["X-N"] = 7 } }))
      local hdrs = assert(http.request({ host = "127.0.0.1", port = port, path = "/headers" }))
      return echo, hdrs
    end)
    assert.equal(200, echo.status)
    assert.equal("PUT|v 1|7|text/x-spec|payload", echo.body)
    assert.equal("a, b", hdrs.headers["x-multi"]) -- repeated headers joined
    assert.equal("Yes", hdrs.headers["x-case"])   -- names lower-cased, values as sent
    assert.matches("^nginx", hdrs.headers.server)
    assert.equal("2", hdrs.headers["content-length"])
    assert.equal("ok", hdrs.body)
  end)

  it("refuses header injection before anything is sent", function()
    local r = helper.run(function()
      local before = core.http.stats()
      local out = {}
      for _, h in ipairs({ { ["X-Test"] = "a\r\nX-Evil: 1" }, { ["X-Test"] = "a\nb" }, { ["X Test"] = "a" },
                           { ["X-Test"] = "a\0b" }, { ["Content-Length"] = "3" } }) do
        out[#out + 1] = { http.get(base .. "/echo", { headers = h }) }
      end
      local after = core.http.stats()
      out.sent = after.connections - before.connections + after.reused - before.reused
      return out
    end)
    assert.equal(0, r.sent)
    for i = 1, 5 do
      assert.is_nil(r[i][1])
      assert.equal("EINCORRECT", r[i][3])
    end
    assert.equal('EINCORRECT: http: header "X-Test" refused: the value has CR, LF or another control character', r[1][2])
    assert.matches("CR, LF", r[2][2])
    assert.matches('"X Test" refused: the name is not an HTTP token', r[3][2])
    assert.matches("a NUL byte", r[4][2])
    assert.matches("the client sets it from the body", r[5][2])
  end)

  it("suspends only the calling process, whose mailbox keeps filling", function()
    local r = helper.run(function()
      local parent = halo.self()
      local caller = halo.spawn(function()
        local res, err = http.get(base .. "/slow")
        local got = {}
        for i = 1, 3 do got[i] = select(2, halo.receive(1000)) end
        halo.send(parent, { res = res, err = err, got = got })
      end)
      assert(helper.wait_until(function() return halo.process_state(caller) == "wait response" end))
      for i = 1, 3 do assert(halo.send(caller, "m" .. i)) end
      local out = { queued = halo.process_info(caller).MailboxQueues.Main, state = halo.process_state(caller) }
      out.other = assert(http.get(base .. "/hello")).body -- another process is not held up
      out.still = halo.process_state(caller)
      local _, msg = halo.receive(3000)
      out.msg = msg
      return out
    end)
    assert.equal(3, r.queued)
    assert.equal("wait response", r.state)
    assert.equal("hello", r.other)
    assert.equal("wait response", r.still)
    assert.equal(200, r.msg.res.status)
    assert.equal("slow", r.msg.res.body)
    assert.same({ "m1", "m2", "m3" }, r.msg.got)
  end)

  it("times out and the next request gets a fresh connection", function()
    local r = helper.run(function()
      local before = core.http.stats()
      local t0 = halo.now()
      local out = { http.get(base .. "/stall", { timeout = 150 }) }
      out.ms = halo.now() - t0
      out.stats = core.http.stats()
      out.next = assert(http.get(base .. "/hello")).body
      out.connections = core.http.stats().connections - before.connections
      return out
    end)
    assert.same({ nil, "ETIMEDOUT: timed out", "ETIMEDOUT" }, { r[1], r[2], r[3] })
    assert.is_true(r.ms >= 140, tostring(r.ms)) -- the loop's clock is a little behind halo.now
    assert.equal(0, r.stats.requests) -- the request is gone
    assert.equal("hello", r.next)
    assert.equal(2, r.connections) -- the timed-out connection was closed, not kept
    assert.equal(0, r.stats.active)
  end)

  it("rounds a timeout below 1 ms up instead of running without one (regression)", function()
    local r = helper.run(function()
      local out = { http.get(base .. "/stall", { timeout = 0.5 }) }
      out.left = core.http.stats().requests -- the request ended with the call, not later
      local ref = assert(core.http.start({ host = "127.0.0.1", port = port, path = "/stall", timeout = 0.5 }))
      local _, msg = halo.receive(3000)
      out.msg = msg and msg.ref == ref and msg.kind .. " " .. tostring(msg.code)
      out.after = core.http.stats().requests
      return out
    end)
    assert.same({ nil, "ETIMEDOUT: timed out", "ETIMEDOUT" }, { r[1], r[2], r[3] })
    assert.equal(0, r.left)
    assert.equal("http_error ETIMEDOUT", r.msg)
    assert.equal(0, r.after)
  end)

  it("refuses a NaN timeout (regression: taken as no timeout at all)", function()
    local r = helper.run(function()
      local out = { pcall(http.get, base .. "/hello", { timeout = 0 / 0 }) }
      out.left = core.http.stats().requests
      return out
    end)
    assert.is_false(r[1])
    assert.matches("timeout must be 0..86400000 ms", r[2])
    assert.equal(0, r.left)
  end)

  it("gives concurrent requests a connection each and keeps 64 idle", function()
    local N = 70
    local r = helper.run(function()
      core.http.stats() -- a fresh node: no clients yet
      local parent = halo.self()
      for _ = 1, N do
        halo.spawn(function()
          local res, err = http.get(base .. "/nap")
          halo.send(parent, res and res.body or err)
        end)
      end
      local conns = {}
      for i = 1, N do conns[i] = select(2, halo.receive(3000)) end
      local after = core.http.stats()
      assert(http.get(base .. "/hello"))
      return { conns = conns, after = after, last = core.http.stats() }
    end)
    local seen, distinct = {}, 0
    for _, c in ipairs(r.conns) do
      assert.matches("^%d+$", c)
      if not seen[c] then distinct = distinct + 1 end
      seen[c] = true
    end
    assert.equal(N, distinct) -- the server saw N connections
    assert.equal(N, r.after.connections)
    assert.equal(64, r.after.idle)
    assert.equal(0, r.after.active)
    assert.equal(N, r.last.connections) -- the next request took an idle one
    assert.equal(1, r.last.reused)
  end)
end)
