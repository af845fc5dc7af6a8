local json = require("halo.json")
local cjson = require("cjson")
local ffi = require("ffi")

-- oracle: begin
-- halo.json's encoder as it was in Lua, kept only as the oracle the C encoder
-- must match byte for byte (bench/halo/json.lua loads it from here too).
local function make_oracle(ARRAY, OBJECT, null)
  local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                    ["\r"] = "\\r", ["\t"] = "\\t" }
  local byte, find, sub = string.byte, string.find, string.sub
  local function utf8_clean(s)
    local i, n, out, from = 1, #s, nil, 1
    while true do
      i = find(s, "[\128-\255]", i)
      if not i then break end
      local c, len = byte(s, i), 0
      if c >= 0xC2 and c <= 0xDF then len = 2 elseif c >= 0xE0 and c <= 0xEF then len = 3
      elseif c >= 0xF0 and c <= 0xF4 then len = 4 end
      local ok = len > 0 and i + len - 1 <= n
      for k = i + 1, ok and i + len - 1 or 0 do
        local b = byte(s, k)
        if b < 0x80 or b > 0xBF then ok = false break end
      end
      if ok then
        local c2 = byte(s, i + 1)
        ok = not ((c == 0xE0 and c2 < 0xA0) or (c == 0xED and c2 > 0x9F) or (c == 0xF0 and c2 < 0x90)
                  or (c == 0xF4 and c2 > 0x8F))
      end
      if ok then
        i = i + len
      else
        out = out or {}
        out[#out + 1] = sub(s, from, i - 1)
        out[#out + 1] = "\239\191\189"
        i = i + 1
        from = i
      end
    end
    if not out then return s end
    out[#out + 1] = sub(s, from)
    return table.concat(out)
  end
  local function escape(c)
    local b = byte(c)
    if b >= 128 then return utf8_clean(c) end
    local e = escapes[sub(c, 1, 1)] or ("\\u%04x"):format(b)
    if #c == 1 then return e end
    return e .. utf8_clean(sub(c, 2))
  end
  local function quote(s)
    return '"' .. s:gsub('[%c"\\\128-\255][\128-\191]*', escape) .. '"'
  end
  local floor, huge = math.floor, math.huge
  local function number(n)
    if n ~= n or n == huge or n == -huge then return "null" end
    if floor(n) == n and n >= -2^63 and n < 2^63 then return ("%.0f"):format(n) end
    local s = ("%.14g"):format(n)
    if tonumber(s) ~= n then s = ("%.17g"):format(n) end
    return s
  end
  local function is_list(t)
    local mt = getmetatable(t)
    if mt == ARRAY then return true end
    if mt == OBJECT then return false end
    local n = #t
    if n == 0 then return false end
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    return count == n
  end
  local function key_less(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    return a < b
  end
  local encode_value
  local function encode_table(t, out, pretty, indent, seen)
    if seen[t] then error("json: cycle in table", 0) end
    seen[t] = true
    local nl, inner, sep = "", "", ","
    if pretty then nl = "\n" .. indent; inner = nl .. "  " end
    if is_list(t) then
      local n = #t
      if n == 0 then out[#out + 1] = "[]" else
        out[#out + 1] = "["
        for i = 1, n do
          out[#out + 1] = (i > 1 and sep or "") .. inner
          encode_value(t[i], out, pretty, indent .. "  ", seen)
        end
        out[#out + 1] = nl .. "]"
      end
    else
      local keys = {}
      for k in pairs(t) do
        local tk = type(k)
        if tk == "string" or tk == "number" then keys[#keys + 1] = k end
      end
      table.sort(keys, key_less)
      if #keys == 0 then out[#out + 1] = "{}" else
        out[#out + 1] = "{"
        for i, k in ipairs(keys) do
          out[#out + 1] = (i > 1 and sep or "") .. inner .. quote(tostring(k)) .. (pretty and ": " or ":")
          encode_value(t[k], out, pretty, indent .. "  ", seen)
        end
        out[#out + 1] = nl .. "}"
      end
    end
    seen[t] = nil
  end
  encode_value = function(v, out, pretty, indent, seen)
    local tv = type(v)
    if tv == "string" then out[#out + 1] = quote(v)
    elseif tv == "number" then out[#out + 1] = number(v)
    elseif tv == "boolean" then out[#out + 1] = tostring(v)
    elseif tv == "table" then encode_table(v, out, pretty, indent, seen)
    elseif v == nil or v == null then out[#out + 1] = "null"
    elseif tv == "cdata" then
      out[#out + 1] = (tostring(v):gsub("U?LL$", ""))
    else
      out[#out + 1] = quote(tostring(v))
    end
  end
  return function(v, pretty)
    local out = {}
    encode_value(v, out, pretty, "", {})
    return table.concat(out)
  end
end
-- oracle: end

local oracle = make_oracle(json.ARRAY, getmetatable(json.object()), json.null)

local function nest(n) -- n tables, each holding the next
  local t = {}
  local top = t
  for _ = 2, n do t.x = {} t = t.x end
  return top
end

local function hole() -- { 1, nil, 3, 4 } with #t == 4
  local t = {}
  for i = 1, 4 do t[i] = i end
  t[2] = nil
  assert(#t == 4)
  return t
end

local proxy = newproxy(true)
getmetatable(proxy).__tostring = function() return "proxy\n" end

local FFFD = "\239\191\189"

-- { value, pretty, expected text }
local cases = {
  -- scalars
  { nil, false, "null" }, { json.null, false, "null" }, { true, false, "true" }, { false, true, "false" },
  { 0, false, "0" }, { -0.0, false, "-0" }, { 1, false, "1" }, { -42, false, "-42" }, { 1.5, false, "1.5" },
  { 2 ^ 53, false, "9007199254740992" }, { 2 ^ 53 + 2, false, "9007199254740994" },
  { -2 ^ 63, false, "-9223372036854775808" }, { 2 ^ 63, false, "9.2233720368547758e+18" },
  { 1e300, false, "1e+300" }, { 1e-7, false, "1e-07" }, { 0.1, false, "0.1" }, { 1 / 3, false, "0.33333333333333331" },
  { 123.456, false, "123.456" }, { -493408368688292.625, false, "-493408368688292.63" },
  { 0.125, false, "0.125" }, { 1.0000000000000002, false, "1.0000000000000002" }, { -2.5e-300, false, "-2.5e-300" },
  { 0 / 0, false, "null" }, { math.huge, false, "null" }, { -math.huge, false, "null" },
  { 123LL, false, "123" }, { -5LL, false, "-5" }, { 18446744073709551615ULL, false, "18446744073709551615" },
  { ffi.new("int64_t", 0), false, "0" }, { ffi.cast("void *", nil), false, "null" },
  -- strings: escapes and control characters
  { "", false, '""' }, { "plain text", false, '"plain text"' }, { 'a"b\\c/d', false, '"a\\"b\\\\c/d"' },
  { "\b\f\n\r\t", false, '"\\b\\f\\n\\r\\t"' }, { "\0\1\31\127 ~", false, '"\\u0000\\u0001\\u001f\\u007f ~"' },
  -- strings: UTF-8 kept, every byte of a malformed sequence replaced by U+FFFD
  { "\195\169\226\130\172\240\159\152\128\244\143\191\191", false, '"\195\169\226\130\172\240\159\152\128\244\143\191\191"' },
  { "\128", false, '"' .. FFFD .. '"' }, { "a\191b", false, '"a' .. FFFD .. 'b"' },
  { "\192\175", false, '"' .. FFFD:rep(2) .. '"' }, { "\193\191", false, '"' .. FFFD:rep(2) .. '"' },
  { "\224\128\128", false, '"' .. FFFD:rep(3) .. '"' }, { "\224\160\128", false, '"\224\160\128"' },
  { "\237\160\128", false, '"' .. FFFD:rep(3) .. '"' }, { "\237\159\191", false, '"\237\159\191"' },
  { "\240\143\191\191", false, '"' .. FFFD:rep(4) .. '"' }, { "\244\144\128\128", false, '"' .. FFFD:rep(4) .. '"' },
  { "\245\128\128\128", false, '"' .. FFFD:rep(4) .. '"' }, { "\255\254", false, '"' .. FFFD:rep(2) .. '"' },
  { "\226\130", false, '"' .. FFFD:rep(2) .. '"' }, { "\226\130A", false, '"' .. FFFD:rep(2) .. 'A"' },
  { "\226\130\172\128", false, '"\226\130\172' .. FFFD .. '"' }, { "\n\128\129", false, '"\\n' .. FFFD:rep(2) .. '"' },
  { '"\169', false, '"\\"' .. FFFD .. '"' }, { "\195", false, '"' .. FFFD .. '"' },
  { ("\226\130\172"):rep(2000), false, '"' .. ("\226\130\172"):rep(2000) .. '"' }, -- sequences across 4 KiB chunks
  { ("\1"):rep(5000), false, '"' .. ("\\u0001"):rep(5000) .. '"' },
  -- other types print as their tostring, quoted
  { proxy, false, '"proxy\\n"' },
  -- lists and objects
  { {}, false, "{}" }, { json.array(), false, "[]" }, { json.object(), false, "{}" }, { {}, true, "{}" },
  { { 1, "a", true }, false, '[1,"a",true]' }, { json.object({ 1, 2 }), false, '{"1":1,"2":2}' },
  { json.array(hole()), false, "[1,null,3,4]" }, { { 1, 2, x = 3 }, false, '{"1":1,"2":2,"x":3}' },
  { { [2] = "b", [1] = "a" }, false, '["a","b"]' }, { { a = json.null }, false, '{"a":null}' },
  { { b = 1, a = 2, [10] = 3, [2] = 4, [1.5] = 5, [-1] = 6 }, false, '{"-1":6,"1.5":5,"2":4,"10":3,"a":2,"b":1}' },
  { { ["10"] = "s", [10] = "n", ["9"] = "s9", ["B"] = 1, ["a"] = 2, ["\195\169"] = 3, ["ab"] = 4 }, false,
    '{"10":"n","10":"s","9":"s9","B":1,"a":2,"ab":4,"\195\169":3}' },
  { { [2 ^ 53] = 1, [0.1] = 2, [math.huge] = 3 }, false, '{"0.1":2,"9.007199254741e+15":1,"inf":3}' },
  { { [true] = 1, [{}] = 2, a = 3 }, false, '{"a":3}' }, { { [true] = 1 }, false, "{}" },
  { { ["\128"] = 1, ["a\n"] = 2 }, false, '{"a\\n":2,"' .. FFFD .. '":1}' },
  { setmetatable({}, { __tostring = function() return "no" end }), false, "{}" },
  { setmetatable({}, { __index = function(_, i) return i * 10 end, __len = function() return 9 end }), false, "{}" },
  -- pretty: Go's MarshalIndent layout
  { { 1, 2 }, true, "[\n  1,\n  2\n]" },
  { { a = {}, b = json.array(), c = { json.object() }, d = { { 1 } } }, true,
    '{\n  "a": {},\n  "b": [],\n  "c": [\n    {}\n  ],\n  "d": [\n    [\n      1\n    ]\n  ]\n}' },
  { { a = { b = { c = "d" } } }, false, '{"a":{"b":{"c":"d"}}}' },
  { { a = { b = { c = "d" } } }, true, '{\n  "a": {\n    "b": {\n      "c": "d"\n    }\n  }\n}' },
  { nest(200), false, ('{"x":'):rep(199) .. "{}" .. ("}"):rep(199) },
}

describe("halo.json encode", function()
  it("prints every case as expected", function()
    for i, c in ipairs(cases) do
      local got = json.encode(c[1], c[2])
      assert(got == c[3], ("case %d: expected %q, got %q"):format(i, c[3], got))
      local old = oracle(c[1], c[2])
      assert(old == got, ("case %d: the Lua encoder printed %q"):format(i, old))
    end
  end)

  it("prints functions and userdata as their tostring", function()
    local f = function() end
    assert.equal('"' .. tostring(f) .. '"', json.encode(f))
    assert.equal('{"f":"' .. tostring(print) .. '"}', json.encode({ f = print }))
    assert.equal('"' .. tostring(io.stdout) .. '"', json.encode(io.stdout))
  end)

  it("raises on a cycle and on tables nested deeper than 200, and keeps working after", function()
    local t = { a = {} }
    t.a.b = { t }
    assert.has_error(function() json.encode(t) end, "json: cycle in table")
    local shared = { 1 }
    assert.equal('{"a":[1],"b":[1]}', json.encode({ a = shared, b = shared })) -- twice is no cycle
    local ok, err = pcall(json.encode, nest(201))
    assert.is_false(ok)
    assert.equal("json: tables nested deeper than 200", err)
    local deep = json.array()
    for _ = 1, 10000 do deep = json.array({ deep }) end
    assert.is_false((pcall(json.encode, deep, true)))
    -- an error inside encoding (a __tostring raising) leaves the encoder usable
    local bad = newproxy(true)
    getmetatable(bad).__tostring = function() error("boom", 0) end
    assert.has_error(function() json.encode({ ("x"):rep(100000), bad }) end, "boom")
    assert.equal('["x"]', json.encode({ "x" }))
  end)

  it("lets a __tostring encode JSON while an encode runs", function()
    local inner = newproxy(true)
    getmetatable(inner).__tostring = function() return json.encode({ b = { 1, 2 } }, true) end
    local text = json.encode({ a = inner, c = "d" })
    assert.equal('{"a":"{\\n  \\"b\\": [\\n    1,\\n    2\\n  ]\\n}","c":"d"}', text)
  end)

  it("prints objects too large for the Lua stack (their keys go to a table) as the Lua encoder did", function()
    for _, n in ipairs({ 10, 3999, 4001, 9000 }) do
      local t = {}
      for i = 1, n do t[i % 3 == 0 and i or ("k" .. i)] = { i, { ["x" .. i] = i / 7 } } end
      for _, pretty in ipairs({ false, true }) do
        local text = json.encode({ t, { inner = t } }, pretty)
        assert(text == oracle({ t, { inner = t } }, pretty), "object of " .. n .. " keys")
      end
    end
  end)

  it("reads each value when it reaches it, as t[k] (a __tostring may change the table)", function()
    for _, n in ipairs({ 3, 5000 }) do
      local t = {}
      for i = 1, n do t["k" .. i] = i end
      local mutate = newproxy(true)
      getmetatable(mutate).__tostring = function()
        t.z1, t.z2 = "changed", nil
        collectgarbage()
        return "m"
      end
      t.a, t.z1, t.z2 = mutate, "orig", "dropped"
      local text = json.encode(t)
      assert.truthy(text:find('"a":"m"', 1, true))
      assert.truthy(text:find('"z1":"changed","z2":null}', 1, true), text:sub(-40))
    end
    local inherited = setmetatable({ 1, 2 }, { __index = function() return "inherited" end })
    inherited[2] = nil
    assert.equal(oracle(inherited), json.encode(inherited))
  end)

  it("uses the core's array mark", function()
    assert.equal(debug.getregistry()["halo.array_mt"], json.ARRAY)
    assert.equal("[]", json.encode(setmetatable({}, debug.getregistry()["halo.array_mt"])))
    assert.same({ a = { 1, 2 }, b = json.null }, json.decode(json.encode({ a = { 1, 2 }, b = json.null })))
    assert.equal(cjson.null, json.null)
  end)

  it("matches the Lua encoder on random values", function()
    math.randomseed(20261203)
    local rnd = math.random
    local bytes = { "a", "Z", " ", "/", '"', "\\", "\0", "\n", "\t", "\31", "\127", "\128", "\191", "\192",
                    "\193", "\194", "\195\169", "\223", "\224", "\224\160", "\237", "\237\159", "\237\160",
                    "\239", "\240", "\240\144", "\243", "\244", "\244\143", "\244\144", "\245", "\255",
                    "\226\130\172", "\240\159\152\128" }
    local function str()
      local n, out = rnd(0, 12), {}
      for i = 1, n do
        out[i] = rnd(4) == 1 and string.char(rnd(0, 255)) or bytes[rnd(#bytes)]
      end
      return table.concat(out)
    end
    local specials = { 0, -0.0, 1, -1, 2 ^ 31, 2 ^ 53, 2 ^ 53 + 1, 2 ^ 63, -2 ^ 63, 2 ^ 64, 0.1, 1e-7, 1e21,
                       1e300, 5e-324, 0 / 0, math.huge, -math.huge }
    local function num()
      local k = rnd(7)
      if k == 1 then return specials[rnd(#specials)] end
      if k == 6 then return rnd(1, 2 ^ 52) / 2 ^ rnd(1, 26) end -- often an 18-digit tie at %.17g
      if k == 2 then return rnd(-1000, 1000) end
      if k == 3 then return (rnd() - 0.5) * 10 ^ rnd(-20, 20) end
      if k == 4 then return rnd(-2 ^ 31, 2 ^ 31) * 2 ^ rnd(0, 40) end
      if k == 5 then return rnd(0, 100000) / 100 end
      return math.ldexp(rnd(), rnd(-1074, 1023))
    end
    local value
    local function tab(depth)
      local t, k, n = {}, rnd(8), rnd(0, 6)
      if k <= 3 then -- list, maybe marked
        for i = 1, n do t[i] = value(depth + 1) end
        if k == 2 then json.array(t) elseif k == 3 and rnd(2) == 1 then json.object(t) end
      elseif k == 4 then -- list with a hole
        for i = 1, n do if rnd(4) > 1 then t[i] = value(depth + 1) end end
      else -- keys of every kind
        for _ = 1, n do
          local kk = rnd(5)
          local key = kk <= 2 and str() or kk == 3 and num() or kk == 4 and rnd(1, 8) or (rnd(2) == 1)
          if key == key then t[key] = value(depth + 1) end
        end
        if k == 8 then json.object(t) end
      end
      return t
    end
    value = function(depth)
      local k = rnd(depth < 4 and 12 or 8)
      if k <= 2 then return str() end
      if k <= 4 then return num() end
      if k == 5 then return rnd(2) == 1 end
      if k == 6 then return json.null end
      if k == 7 then
        local c = rnd(3)
        if c == 1 then return ffi.new("int64_t", rnd(-2 ^ 31, 2 ^ 31) * rnd(1, 2 ^ 20)) end
        if c == 2 then return ffi.new("uint64_t", rnd(0, 2 ^ 31)) * 4294967296ULL end
        return proxy
      end
      if k == 8 then return rnd(3) == 1 and json.array() or {} end
      return tab(depth)
    end
    local compared = 0
    for i = 1, 4000 do
      local v = value(0)
      for _, pretty in ipairs({ false, true }) do
        local want, got = oracle(v, pretty), json.encode(v, pretty)
        if want ~= got then error(("value %d (pretty %s): Lua %q, C %q"):format(i, tostring(pretty), want, got)) end
        compared = compared + 1
      end
    end
    assert.equal(8000, compared)
  end)
end)
