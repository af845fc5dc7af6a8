--- halo.message: named message shapes, declared by the code that accepts them.
--
--   halo.message.define("latency/MessagePing", { Seq = "integer" })
--   halo.message.list("ping")          --> { "latency/MessagePing" }
--   halo.message.info("MessagePing")   --> { type_name = "latency/MessagePing", kind = "table",
--                                              fields = { { name = "Seq", type = "integer" } } }
--   halo.message.build("MessagePing", { Seq = "3" })  --> { type = "MessagePing", Seq = 3 }
--
-- halo messages are plain Lua values; a shape is documentation that tools
-- can act on (the MCP tools message_types, message_type_info, send_message
-- and call_process). A message built from a shape is a table whose `type`
-- is the short name (the part after the last "/"), as the scenarios' own
-- messages are. Field types: string, integer, number, boolean, table (a
-- map), list, any. Every field is optional; a key the shape does not
-- declare is refused. Names are looked up exactly (a leading "#" is
-- ignored), then by short name (the first of the sorted full names).
-- Defining a name again replaces its shape (a reloaded module does that).
local json = require("halo.json")

local M = {}

local FIELD_TYPES = { string = true, integer = true, number = true, boolean = true, table = true, list = true,
                      any = true }

local shapes = {} -- full name -> { type_name, short, fields = { {name, type}... sorted }, types = {name -> type} }

--- Declares (or replaces) message shape name with fields {field = type}.
function M.define(name, fields)
  if type(name) ~= "string" or not name:match("^[%w_.%-/]+$") or name:match("/$") then
    error("message name: letters, digits, _ . - and / expected", 2)
  end
  if type(fields) ~= "table" then error("fields: a table of field = type expected", 2) end
  local list, types = {}, {}
  for k, t in pairs(fields) do
    if type(k) ~= "string" or k == "type" then error("field names are strings other than 'type'", 2) end
    if not FIELD_TYPES[t] then
      error(("field %s: type string, integer, number, boolean, table, list or any expected"):format(k), 2)
    end
    list[#list + 1] = { name = k, type = t }
    types[k] = t
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  shapes[name] = { type_name = name, short = name:match("([^/]+)$"), fields = list, types = types }
  return true
end

--- Removes shape name; true when it existed.
function M.undefine(name)
  local had = shapes[name] ~= nil
  shapes[name] = nil
  return had
end

local function sorted_names()
  local names = {}
  for n in pairs(shapes) do names[#names + 1] = n end
  table.sort(names)
  return names
end

--- The full names of the shapes, sorted; with filter, those that contain it
-- (plain text, case-insensitive).
function M.list(filter)
  local out, f = {}, filter and filter ~= "" and filter:lower()
  for _, n in ipairs(sorted_names()) do
    if not f or n:lower():find(f, 1, true) then out[#out + 1] = n end
  end
  return out
end

local function find(name)
  if type(name) ~= "string" then return nil end
  name = name:gsub("^#", "")
  if shapes[name] then return shapes[name] end
  local suffix = "/" .. name
  for _, n in ipairs(sorted_names()) do
    if n:sub(-#suffix) == suffix then return shapes[n] end
  end
end

local function unknown(name) return nil, ("EUNKNOWN: unknown message type %s"):format(tostring(name)), "EUNKNOWN" end

--- { type_name, kind = "table", fields = { {name, type}... } } of shape name
-- (full or short), or nil, "EUNKNOWN: ...", "EUNKNOWN".
function M.info(name)
  local s = find(name)
  if not s then return unknown(name) end
  local fields = {}
  for i, f in ipairs(s.fields) do fields[i] = { name = f.name, type = f.type } end
  return { type_name = s.type_name, kind = "table", fields = fields }
end

local function is_list(v)
  if getmetatable(v) == json.ARRAY then return true end
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  return count == n
end

local function text(v)
  if type(v) == "table" then return json.encode(v) end
  if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2^53 then return ("%d"):format(v) end
  return tostring(v)
end

local function lua_kind(v)
  if type(v) == "table" then return is_list(v) and next(v) ~= nil and "list" or "table" end
  return type(v)
end

-- The value of a field of type t made from v, or nil, reason.
local function convert(t, v)
  if t == "any" then return v end
  if t == "string" then return text(v) end
  if t == "integer" or t == "number" then
    local n = type(v) == "number" and v or type(v) == "string" and tonumber(v)
    if not n then return nil, "expected " .. t .. ", got " .. lua_kind(v) end
    if t == "integer" then n = n >= 0 and math.floor(n) or math.ceil(n) end
    return n
  end
  if t == "boolean" then
    if type(v) == "boolean" then return v end
    if v == "true" then return true elseif v == "false" then return false end
    return nil, "expected boolean, got " .. (type(v) == "string" and ("string %q"):format(v) or lua_kind(v))
  end
  if type(v) ~= "table" or (t == "list") ~= is_list(v) and next(v) ~= nil then
    return nil, "expected " .. t .. ", got " .. lua_kind(v)
  end
  return v
end

--- A message of shape name built from data (a map of its fields; values
-- are converted: anything to string, numbers and numeric strings to
-- integer (truncated) or number, booleans and "true"/"false" to boolean).
-- Returns the message, or nil, "EUNKNOWN: ..." when there is no such shape,
-- or nil, "EINCORRECT: <why>" when data does not fit it.
function M.build(name, data)
  local s = find(name)
  if not s then return unknown(name) end
  if data == nil then data = {} end
  if type(data) ~= "table" or (is_list(data) and next(data) ~= nil) then
    return nil, "EINCORRECT: expected a map of fields, got " .. lua_kind(data), "EINCORRECT"
  end
  local msg = { type = s.short }
  for k, v in pairs(data) do
    if k == "type" then
      if v ~= s.short and v ~= s.type_name then
        return nil, ("EINCORRECT: field type: %s expected, got %s"):format(s.short, text(v)), "EINCORRECT"
      end
    else
      local t = s.types[k]
      if not t then return nil, ("EINCORRECT: unknown field '%s'"):format(tostring(k)), "EINCORRECT" end
      local cv, why = convert(t, v)
      if cv == nil then return nil, ("EINCORRECT: field %s: %s"):format(k, why), "EINCORRECT" end
      msg[k] = cv
    end
  end
  return msg
end

return M
