-- Writes seed inputs for the transport fuzzer: streams of well-formed
-- frames (a handshake, messages, a compressed one, a fragmented one).
--   luajit fuzz/frame_seeds.lua DIR
local bit = require("bit")
local dir = assert(arg[1], "usage: frame_seeds.lua DIR")

local function be(n, bytes)
  local t = {}
  for i = bytes - 1, 0, -1 do t[#t + 1] = string.char(bit.band(math.floor(n / 2 ^ (8 * i)), 255)) end
  return table.concat(t)
end
local function frame(type, body) return be(#body + 1, 4) .. string.char(type) .. body end
local function name(s) return string.char(#s) .. s end
local nonce, creation = string.rep("\90", 16), be(42, 8)
local function msg(type, kind, queue, payload, target)
  return frame(type, be(kind, 2) .. string.char(queue) .. be(7, 8) .. be(1001, 8) .. be(0, 8)
    .. (target and name(target) or "") .. payload)
end
local zipped = "\0\0\0\64" .. ("789c4b4c4a4e494d4bcf48249306002fad1921"):gsub("%x%x",
  function(h) return string.char(tonumber(h, 16)) end)
local whole = string.char(16) .. be(0, 2) .. string.char(2) .. be(7, 8) .. be(1001, 8) .. be(0, 8)
  .. string.rep("m", 3000)
local frags = {}
for off = 0, #whole - 1, 1000 do
  frags[#frags + 1] = frame(20, be(9, 8) .. be(#whole, 4) .. be(off, 4) .. whole:sub(off + 1, off + 1000))
end

local seeds = {
  hello = frame(1, "\1\0" .. name("raw@localhost") .. nonce .. creation),
  join = frame(1, "\1\1" .. name("raw@localhost") .. nonce .. creation .. nonce),
  challenge = frame(2, name("a@localhost") .. nonce .. creation),
  reject = frame(5, "the dialer's proof does not match our cookie"),
  ready = frame(8, "\2" .. nonce .. nonce) .. frame(6, ""),
  msgs = msg(16, 0, 2, "\163abc") .. msg(17, 8, 0, "\192") .. msg(19, 0, 2, "\192", "echo")
    .. msg(16, 3 + 256, 0, "\165normal"),
  zipped = msg(16 + 128, 0, 2, zipped),
  frags = table.concat(frags),
}
for k, v in pairs(seeds) do
  local f = assert(io.open(("%s/seed-%s"):format(dir, k), "wb"))
  f:write(v)
  f:close()
end
