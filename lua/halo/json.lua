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
-- table as [] nor pretty-print, and sorts nothing; the encoder (C, core.json)
-- does both, with object keys sorted so output is stable (numbers first, then
-- strings in byte order; a number key prints as its tostring). A table is a
-- list when it is marked with json.array or its keys are exactly 1..#t; an
-- unmarked empty table is an object. Lists the core builds (process lists,
-- links, ...) carry the array mark: the core's array metatable is this
-- module's. Bytes of a string that are not UTF-8 print as U+FFFD; a cycle or
-- tables nested deeper than 200 raise. The decoder takes JSON only (no NaN,
-- Infinity, 0x10).
local cjson = require("cjson")
local core = require("halo.core")

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

-- The encoder is C (bindings/json.c); it calls back here for cdata only.
local function cdata_text(v) -- LuaJIT 64-bit integers: 123LL / 123ULL
  if v == nil or v == M.null then return "null" end
  return (tostring(v):gsub("U?LL$", ""))
end
core.json.setup(ARRAY, OBJECT, M.null, cdata_text)
M.encode = core.json.encode

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
