-- W10's halo server: a static /health/live (answered on the loop) and a Lua
-- handler /ok (a process per connection), on the port given as arg[1].
local halo = require("halo")
local http = require("halo.http")
local srv = assert(http.serve{ port = tonumber(arg[1]), routes = { ["/ok"] = function() return "ok" end } })
srv:static("/health/live", 200, "application/json", '{"status":"ok"}')
io.stdout:write("ready ", srv.port, "\n")
io.stdout:flush()
halo.receive()
