--- halo.json: JSON text for tools and wire messages.
--
--   json.encode(v)               compact text
--   json.encode(v, true)         pretty: 2-space indent, "key": value (Go's MarshalIndent layout)
--   json.decode(text)            value, or nil, "EMALFORMED: ..." (JSON null decodes to json.null)
--   json.array(t)                marks t as a list: an empty one prints [] (returns t)
--   json.object(t)               marks t as a map: an empty one prints {} (returns t)
--   json.null                    the null value
--
-- lua-cjson decodes, but its encoder (Debian's 2.1.0) cannot print an empty
-- table as [] nor pretty-print, and sorts nothing; this encoder does both, with
-- object keys sorted so output is stable. A table is a list when it is marked
-- with json.array or its keys are exactly 1..#t; an unmarked empty table is an
-- object. Lists the core builds (process lists, links, ...) carry the array
-- mark: the core's array metatable is this module's. Bytes of a string that are not
-- UTF-8 print as U+FFFD; the decoder takes JSON only (no NaN, Infinity, 0x10).
local cjson = require("cjson")

local M = {}

local ARRAY = { __name = "json.array" }
local OBJECT = { __name = "json.object" }
M.null = cjson.null

do -- Lists built in C take this metatable (bindings/introspect.c hb_new_array).
  local reg = debug.getregistry()
  if reg["halo.array_mt"] == nil then reg["halo.array_mt"] = ARRAY end
  ARRAY = reg["halo.array_mt"]
end
M.ARRAY = ARRAY

function M.array(t)
  return setmetatable(t or {}, ARRAY)
end

function M.object(t)
  return setmetatable(t or {}, OBJECT)
end

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t" }
-- s with each byte that is not part of a well-formed UTF-8 sequence (a stray
-- continuation byte, an overlong form, a surrogate, past U+10FFFF, cut
-- short) replaced by U+FFFD, so the text is JSON whatever a string holds.
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

-- A character to escape, or a run of bytes >= 128 (checked as UTF-8); a
-- control character may lead a run of continuation bytes.
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
  -- integral values in int64's range print as integers (unix ns times pass 2^53;
  -- Go's decoder refuses 1.79e+18 for an int64)
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
  elseif v == nil or v == cjson.null then out[#out + 1] = "null"
  elseif tv == "cdata" then -- LuaJIT 64-bit integers: 123LL / 123ULL
    out[#out + 1] = (tostring(v):gsub("U?LL$", ""))
  else
    out[#out + 1] = quote(tostring(v))
  end
end

function M.encode(v, pretty)
  local out = {}
  encode_value(v, out, pretty, "", {})
  return table.concat(out)
end

local decoder = cjson.new()
decoder.decode_max_depth(64)
decoder.decode_invalid_numbers(false) -- NaN, Infinity and 0x10 are not JSON
function M.decode(text)
  if type(text) ~= "string" then return nil, "EMALFORMED: JSON text must be a string", "EMALFORMED" end
  local ok, v = pcall(decoder.decode, text)
  if not ok then return nil, "EMALFORMED: " .. tostring(v), "EMALFORMED" end
  return v
end

return M
