local codec = require("halo.codec")

-- Deep equality that tells -0 from 0 and treats NaN as equal to NaN.
local function same(a, b, seen)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if a ~= a then return b ~= b end
    return a == b and (a ~= 0 or 1 / a == 1 / b)
  end
  if type(a) ~= "table" then return a == b end
  seen = seen or {}
  if seen[a] then return seen[a] == b end
  seen[a] = b
  for k, v in pairs(a) do
    if not same(v, b[k], seen) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

-- A seeded generator of random Lua values of every kind the codec carries.
local function generator(seed)
  local x = seed
  local function rnd(n) -- xorshift32, 1..n
    x = bit.bxor(x, bit.lshift(x, 13)); x = bit.bxor(x, bit.rshift(x, 17)); x = bit.bxor(x, bit.lshift(x, 5))
    return (x % n + n) % n + 1
  end
  local specials = { 0, -0.0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2 ^ 31, -2 ^ 31, 2 ^ 32,
                     2 ^ 53, -2 ^ 53, 2 ^ 63 - 2 ^ 10, -2 ^ 63, 0.5, -1.25, 1e300, -1e-300, math.huge, -math.huge,
                     0 / 0, 3.14159 }
  local ids = { "<35DBD1C6.0.1001>", "<00000000.0.0>", "<FFFFFFFF.0.18446744073709551615>",
                "Alias#<35DBD1C6.42.0.0>", "Ref#<0A0B0C0D.7.0.0>",
                "<35dbd1c6.0.5>", "35DBD1C6.0.5", "<35DBD1C6.0.05>", "Alias#35DBD1C6.1.0.0" } -- the last four are not canonical
  local value
  local function str()
    local k = rnd(6)
    if k == 1 then return ids[rnd(#ids)] end
    local n = ({ 0, 5, 31, 32, 300, 2000 })[rnd(k == 2 and 6 or 4)]
    local t = {}
    for i = 1, n do t[i] = string.char(rnd(256) - 1) end
    if k == 3 then for i = 1, n do t[i] = string.char(32 + rnd(90)) end end -- ASCII
    if k == 4 and n > 0 then t[1] = "\xc3\xa9" end -- UTF-8 é
    return table.concat(t)
  end
  function value(depth)
    local k = rnd(depth > 0 and 9 or 6)
    if k == 1 then return rnd(2) == 1 end
    if k == 2 then return specials[rnd(#specials)] end
    if k == 3 then return (rnd(2000000) - 1000000) * (rnd(2) == 1 and 1 or 0.001) end
    if k <= 5 then return str() end
    if k == 6 then return rnd(1000) end
    local t = {}
    if k == 7 then -- a sequence
      for i = 1, rnd(20) - 1 do t[i] = value(depth - 1) end
    elseif k == 8 then -- a map
      for _ = 1, rnd(10) do
        local key = rnd(3) == 1 and rnd(100) or (rnd(2) == 1 and str() or rnd(2) == 1)
        if key == key then t[key] = value(depth - 1) end
      end
    else -- array part plus map part
      for i = 1, rnd(5) do t[i] = value(depth - 1) end
      t.extra = value(depth - 1)
      t[2.5] = "fraction key"
    end
    return t
  end
  return value
end

describe("halo.codec", function()
  it("round-trips 1500 random values exactly", function()
    local gen = generator(12345)
    for i = 1, 1500 do
      local v = gen(4)
      local s = assert(codec.encode(v))
      local back, err = codec.decode(s)
      assert(err == nil, err)
      if not same(v, back) then error(("value %d did not round-trip: %s"):format(i, hex(s):sub(1, 200))) end
      -- and again from the decoded copy (map order may differ, the values may not)
      assert(same(back, codec.decode(codec.encode(back))), "second round trip differs")
    end
  end)

  it("carries long strings and binaries (str 32, bin 32, array 32)", function()
    local big = string.rep("abcdefgh", 10000)            -- 80000 bytes of UTF-8
    local bin = string.rep("\255\0", 40000)
    local arr = {}
    for i = 1, 70000 do arr[i] = i % 7 end
    local s = assert(codec.encode({ big, bin, arr }))
    assert.equal("93", hex(s:sub(1, 1)))
    local back = codec.decode(s)
    assert.equal(big, back[1])
    assert.equal(bin, back[2])
    assert.equal(70000, #back[3])
    assert.equal(70000 % 7, back[3][70000])
    assert.equal("db", hex(codec.encode(big):sub(1, 1)))
    assert.equal("c6", hex(codec.encode(bin):sub(1, 1)))
    assert.equal("dd", hex(codec.encode(arr):sub(1, 1)))
  end)

  it("keeps integers and doubles apart on the wire", function()
    assert.equal("01", hex(codec.encode(1)))
    assert.equal("ff", hex(codec.encode(-1)))
    assert.equal("cd0100", hex(codec.encode(256)))
    assert.equal("cf0000000100000000", hex(codec.encode(2 ^ 32)))
    assert.equal("ceffffffff", hex(codec.encode(2 ^ 32 - 1)))
    assert.equal("cb3ff8000000000000", hex(codec.encode(1.5)))
    assert.equal("cb8000000000000000", hex(codec.encode(-0.0)))
    assert.equal("d3" .. "8000000000000000", hex(codec.encode(-2 ^ 63)))
    assert.equal("cb43e0000000000000", hex(codec.encode(2 ^ 63))) -- beyond int64: a double
  end)

  it("carries PIDs, aliases and refs as extensions and other strings as str or bin", function()
    assert.equal("c70c01" .. "35dbd1c6" .. "00000000000003e9", hex(codec.encode("<35DBD1C6.0.1001>")))
    assert.equal("c70c03", hex(codec.encode("Alias#<35DBD1C6.42.0.0>")):sub(1, 6))
    assert.equal("c70c02", hex(codec.encode("Ref#<0A0B0C0D.7.0.0>")):sub(1, 6))
    assert.equal("ae3c33356462643163362e302e353e", hex(codec.encode("<35dbd1c6.0.5>"))) -- not canonical: a str
    -- the creation of the node's run (20 bytes) is read, and the string stays the same
    assert.equal("<35DBD1C6.0.1001>", codec.decode("\199\20\1\53\219\209\198" .. ("\0"):rep(6) .. "\3\233" ..
      "\1\2\3\4\5\6\7\8"))
    assert.is_nil((codec.decode("\199\16\1" .. ("\0"):rep(16)))) -- neither 12 nor 20 bytes
    assert.equal("a3616263", hex(codec.encode("abc")))
    assert.equal("c402fffe", hex(codec.encode("\255\254"))) -- not UTF-8: bin
    assert.equal("a2c3a9", hex(codec.encode("é")))
  end)

  it("encodes sequences as arrays and everything else as maps", function()
    assert.equal("90", hex(codec.encode({})))
    assert.equal("93010203", hex(codec.encode({ 1, 2, 3 })))
    assert.equal("81a161" .. "01", hex(codec.encode({ a = 1 })))
    assert.equal(0x82, codec.encode({ [1] = "x", [3] = "y" }):byte(1)) -- a hole: a map
    local t = codec.decode(codec.encode({ [1] = "x", [3] = "y" }))
    assert.same({ [1] = "x", [3] = "y" }, t)
  end)

  it("decodes values from other encoders: float 32, ext atoms, str 8, map with int keys", function()
    assert.equal(1.5, codec.decode("\202\63\192\0\0")) -- 0xca float32 1.5
    assert.equal("node@host", codec.decode("\199\9\4node@host")) -- ext 4: atom
    assert.equal("hi", codec.decode("\217\2hi")) -- str 8
    assert.same({ [7] = true }, codec.decode("\129\7\195"))
    local v, err = codec.decode("\192")
    assert.is_nil(v)
    assert.is_nil(err) -- a decoded nil
  end)

  it("refuses what it cannot encode, too deep, too large, with clear errors", function()
    local cases = {
      { function() end, "EINCORRECT: .*cannot encode a function" },
      { { coroutine.create(function() end) }, "cannot encode a thread" },
      { io.stdout, "cannot encode a userdata" },
    }
    for _, c in ipairs(cases) do
      local s, err, code = codec.encode(c[1])
      assert.is_nil(s)
      assert.matches(c[2], err)
      assert.is_string(code)
    end
    local cyc = {}
    cyc.self = cyc
    local s, err, code = codec.encode(cyc)
    assert.is_nil(s)
    assert.equal("EMALFORMED", code)
    assert.matches("nested too deep %(or a table that contains itself%)", err)
    local deep = {}
    local at = deep
    for _ = 1, 10 do at[1] = {}; at = at[1] end
    assert.is_nil(codec.encode(deep, { max_depth = 5 }))
    assert.is_string(codec.encode(deep, { max_depth = 20 }))
    s, err, code = codec.encode(string.rep("x", 1000), { max_size = 100 })
    assert.is_nil(s)
    assert.equal("ETOOLARGE", code)
    assert.matches("size limit", err)
    assert.has_error(function() codec.encode(1, { max_depth = 0 }) end)
  end)

  it("refuses malformed input and keeps nothing of it", function()
    local bad = {
      { "", "truncated" },
      { "\193", "reserved byte 0xc1" },
      { "\147\1\2", "container longer than the data" }, -- array of 3 with 2 elements
      { "\146\1\205\1", "truncated number" },
      { "\221\255\255\255\255", "container longer than the data" },
      { "\129\192\1", "map key is nil" },
      { "\129\203\127\248\0\0\0\0\0\0\1", "map key is NaN" },
      { "\1\2", "trailing bytes" },
      { "\199\12\99" .. string.rep("\0", 12), "unknown extension type 99" },
      { "\199\3\1abc", "identifier extension of the wrong size" },
      { "\219\255\255\255\255abc", "truncated string" },
    }
    for _, c in ipairs(bad) do
      local v, err, code = codec.decode(c[1])
      assert.is_nil(v)
      assert.equal("EMALFORMED", code)
      assert.matches(c[2], err)
    end
    local nested = string.rep("\145", 70) .. "\192"
    assert.is_nil(codec.decode(nested))
    assert.is_table(codec.decode(nested, { max_depth = 100 }))
    assert.equal("ETOOLARGE", select(3, codec.decode(string.rep("a", 50), { max_size = 10 })))
  end)

  it("never crashes on random bytes", function()
    local gen = generator(777)
    local x = 99
    for _ = 1, 20000 do
      x = (x * 1103515245 + 12345) % 2147483648
      local n = x % 40
      local t = {}
      for i = 1, n do
        x = (x * 1103515245 + 12345) % 2147483648
        t[i] = string.char(x % 256)
      end
      codec.decode(table.concat(t)) -- any result, no crash
    end
    -- truncations of real encodings
    for _ = 1, 200 do
      local s = codec.encode(gen(3))
      for cut = 0, #s - 1, math.max(1, math.floor(#s / 17)) do
        local v, err = codec.decode(s:sub(1, cut))
        assert(v == nil and err, "a truncated encoding decoded")
      end
    end
  end)
end)
