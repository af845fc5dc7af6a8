-- Writes seed inputs for the decoder fuzzer: encodings of assorted values.
--   LUA_CPATH=build/lua/?.so luajit fuzz/seeds.lua DIR
local core = require("halo.core")
local dir = assert(arg[1], "usage: seeds.lua DIR")
local values = {
  0, 1, -1, 127, 128, -33, 65536, 2 ^ 40, -2 ^ 40, 1.5, -0.0, 1 / 0, "", "abc", "\255\0\1",
  string.rep("x", 40), string.rep("y", 300), true, false,
  "<35DBD1C6.0.1001>", "Alias#<35DBD1C6.42.0.0>", "Ref#<0A0B0C0D.7.0.0>",
  {}, { 1, 2, 3 }, { a = 1, b = { c = { d = "e" } } }, { 1, 2, x = { true, false } },
  { [1] = "one", [3] = "three", [2.5] = 2.5 }, { { { { { { {} } } } } } },
}
for i, v in ipairs(values) do
  local f = assert(io.open(("%s/seed-%02d"):format(dir, i), "wb"))
  f:write(assert(core.codec.encode(v)))
  f:close()
end
for i, raw in ipairs({ "\199\9\4node@host", "\202\63\192\0\0", "\217\2hi", "\129\7\195" }) do
  local f = assert(io.open(("%s/foreign-%02d"):format(dir, i), "wb"))
  f:write(raw)
  f:close()
end
