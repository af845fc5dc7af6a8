--- halo.codec: Lua values <-> MessagePack, the one codec of the wire, typed
-- messages and the MCP proxy (implemented in C: bindings/codec.c).
--   local bytes = assert(halo.codec.encode(value[, { max_depth = 64, max_size = 64 MiB }]))
--   local value, err = halo.codec.decode(bytes[, { max_depth = 64 }])  -- nil, nil: a decoded nil
-- Integral numbers in the int64 range are MessagePack ints, other numbers
-- float 64; strings that are canonical PIDs, aliases or refs travel as
-- halo's extension types and come back as the same strings; strings that are
-- not UTF-8 travel as bin. Sequences are arrays, other tables maps.
local core = require("halo.core")

return { encode = core.codec.encode, decode = core.codec.decode }
