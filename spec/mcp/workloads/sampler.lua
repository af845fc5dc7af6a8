-- For the sampler specs: mcp_test_logger logs every message it receives at
-- warning level ("mcp_test_logger: <message>"), so a passive sampler has a
-- log line to capture when a spec sends one (send_message).
local halo = require("halo")

local Logger = { name = "mcp_test.logger" }
function Logger:handle_message(_, msg) halo.log.warning("mcp_test_logger: %s", tostring(msg)) end
assert(halo.spawn(Logger, nil, { name = "mcp_test_logger" }))
