--- halo.mcp.schema: the proxy parameters every tool schema gets, and the
-- JSON Schema subset the server enforces before a handler runs (type,
-- properties, required, enum, minimum, maximum, items.type,
-- additionalProperties = false). `default` and `description` are
-- documentation only.
local json = require("halo.json")

local M = {}

local null = json.null
local ARRAY = json.ARRAY

M.NODE = { type = "string",
           description = "Node to run the tool on (name@host); omit, or give this node's name, for a local call" }
M.TIMEOUT = { type = "integer",
              description = "Seconds to wait for a call to another node (default 30, clamped to 1..120)" }

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return setmetatable(c, getmetatable(t))
end

local TYPES = { string = true, integer = true, number = true, boolean = true, array = true, object = true,
                ["null"] = true }

local function valid_type(t)
  if type(t) == "string" then return TYPES[t] == true end
  if type(t) ~= "table" or #t == 0 then return false end
  for _, x in ipairs(t) do
    if not TYPES[x] then return false end
  end
  return true
end

-- Raises unless property schema p of name keeps to the enforced subset.
local function check_property(name, p)
  local at = "inputSchema.properties." .. name
  if p.type ~= nil and not valid_type(p.type) then error(at .. ".type must name JSON types", 0) end
  if p.enum ~= nil and type(p.enum) ~= "table" then error(at .. ".enum must be a list", 0) end
  for _, k in ipairs({ "minimum", "maximum" }) do
    if p[k] ~= nil and type(p[k]) ~= "number" then error(("%s.%s must be a number"):format(at, k), 0) end
  end
  if p.items ~= nil and (type(p.items) ~= "table" or (p.items.type ~= nil and not valid_type(p.items.type))) then
    error(at .. ".items must be a schema with JSON types", 0)
  end
end

--- A copy of a tool's inputSchema with `node` and `timeout` added (a
-- missing schema is a parameterless one); raises on a malformed schema or
-- one the enforced subset cannot check.
function M.inject(s)
  if s == nil then s = { type = "object", additionalProperties = false } end
  if type(s) ~= "table" then error("inputSchema must be a table", 0) end
  s = copy(s)
  s.type = s.type or "object"
  if s.type ~= "object" then error("inputSchema.type must be \"object\"", 0) end
  local props = json.object(s.properties and copy(s.properties) or {})
  for k, p in pairs(props) do
    if type(k) ~= "string" or type(p) ~= "table" then error("inputSchema.properties: name -> schema table expected", 0) end
    check_property(k, p)
  end
  props.node, props.timeout = M.NODE, M.TIMEOUT
  s.properties = props
  if s.required ~= nil then
    if type(s.required) ~= "table" then error("inputSchema.required must be a list", 0) end
    s.required = json.array(copy(s.required))
    for _, r in ipairs(s.required) do
      if type(r) ~= "string" then error("inputSchema.required must list names", 0) end
    end
  end
  return s
end

-- The JSON type of a decoded value: an empty table is both an array and an object.
local function kind(v)
  local t = type(v)
  if t == "string" or t == "boolean" then return t end
  if t == "number" then return v % 1 == 0 and "integer" or "number" end
  if v == null then return "null" end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == ARRAY then return "array" end
    local n = #v
    if n == 0 then return next(v) == nil and "empty" or "object" end
    local count = 0
    for _ in pairs(v) do count = count + 1 end
    return count == n and "array" or "object"
  end
  return t
end

local function fits(want, got)
  if type(want) == "table" then -- a list of types
    for _, w in ipairs(want) do
      if fits(w, got) then return true end
    end
    return false
  end
  if want == got then return true end
  if want == "number" then return got == "integer" end
  if got == "empty" then return want == "array" or want == "object" end
  return false
end

local function type_text(t) return type(t) == "table" and table.concat(t, " or ") or tostring(t) end

local function show(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  return json.encode(v)
end

--- Checks one argument's value v against its property schema p: nil or the message.
local function check(name, p, v)
  local k = kind(v)
  if p.type and not fits(p.type, k) then
    return ("argument '%s': expected %s, got %s"):format(name, type_text(p.type), k == "empty" and "object" or k)
  end
  if p.enum then
    local ok = false
    for _, e in ipairs(p.enum) do
      if e == v then ok = true break end
    end
    if not ok then
      local names = {}
      for i, e in ipairs(p.enum) do names[i] = tostring(e) end
      return ("argument '%s': expected one of %s, got %s"):format(name, table.concat(names, ", "), show(v))
    end
  end
  if type(v) == "number" then
    if p.minimum and v < p.minimum then return ("argument '%s': must be >= %s"):format(name, p.minimum) end
    if p.maximum and v > p.maximum then return ("argument '%s': must be <= %s"):format(name, p.maximum) end
  end
  if p.items and p.items.type and type(v) == "table" then
    for i, e in ipairs(v) do
      if not fits(p.items.type, kind(e)) then
        return ("argument '%s': item %d: expected %s, got %s"):format(name, i, p.items.type, kind(e))
      end
    end
  end
end

M.check = check

--- Checks args (a decoded JSON object, node/timeout already taken out)
-- against an injected schema. Returns nil when they fit, else the message
-- ("argument 'limit': expected integer, got string"). A JSON null for an
-- optional typed argument counts as absent and is removed from args.
function M.validate(s, args)
  local props, required = s.properties, {}
  for _, r in ipairs(s.required or {}) do
    if args[r] == nil then return ("argument '%s' is required"):format(r) end
    required[r] = true
  end
  local drop
  for k, v in pairs(args) do
    local p = props[k]
    if p == nil then
      if s.additionalProperties == false then return ("unknown argument '%s'"):format(tostring(k)) end
    elseif v == null and p.type and not fits(p.type, "null") then
      if required[k] then return ("argument '%s': expected %s, got null"):format(k, type_text(p.type)) end
      drop = drop or {}
      drop[#drop + 1] = k
    else
      local err = check(k, p, v)
      if err then return err end
    end
  end
  if drop then for _, k in ipairs(drop) do args[k] = nil end end
end

return M
