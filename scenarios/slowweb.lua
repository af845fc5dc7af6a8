--- slowweb: the slow HTTP service the latency scenario calls.
--   halo run scenarios/slowweb.lua [[HOST:]PORT]     (or: halo slowweb [[HOST:]PORT])
-- GET /slow (any method) waits a uniformly random 3..14 ms on a timer (the
-- process sleeps, nothing blocks) and answers 200 "ok <ms>ms\n". Every other
-- path is 404. Default address 127.0.0.1:8080; the docker demo passes
-- 0.0.0.0:8080.
local halo = require("halo")

local addr = ...
local host, port = "127.0.0.1", 8080
if addr then
  local h, p = tostring(addr):match("^(.*):(%d+)$")
  if p then
    host, port = (h ~= "" and h or host), tonumber(p)
  elseif tostring(addr):match("^%d+$") then
    port = tonumber(addr)
  else
    io.stderr:write("slowweb: expected [HOST:]PORT, got '", tostring(addr), "'\n")
    return halo.shutdown(2)
  end
end

math.randomseed(halo.now() + os.time())

local function slow()
  local ms = math.random(3, 14)
  halo.sleep(ms)
  return 200, "ok " .. ms .. "ms\n", { ["content-type"] = "text/plain; charset=utf-8" }
end

local srv, err = halo.http.serve({ host = host, port = port, routes = { ["/slow"] = { handler = slow, methods = { "*" } } } })
if not srv then
  io.stderr:write("slowweb: cannot listen on ", host, ":", port, ": ", tostring(err), "\n")
  return halo.shutdown(1)
end
print(string.format("slowweb listening on %s:%d", host, srv.port))
io.stdout:flush()
while true do halo.receive() end
