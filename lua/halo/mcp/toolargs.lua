--- halo.mcp.toolargs: argument helpers shared by the tool files of mcp_tools/.
--
--   local A = require("halo.mcp.toolargs")
--   local pid, err = A.pid(args.pid)        -- "<CRC.0.1001>" of this node, or nil, "incorrect PID format, ..."
--   local alias, err = A.alias(args.alias)  -- "Alias#<CRC.7.0.0>" of this node, or nil, "incorrect Alias format, ..."
--   A.value(args.limit)                     -- nil for an absent argument, JSON null and ""
--   A.fail("process_info", err)             -- nil, "process_info: unknown process"
--
-- PID and alias arguments are read as the reference reads them: the first
-- part (the node's CRC) is ignored and the identifier is this node's, so a
-- PID copied from a tool's output on this node (or with `node` set, on that
-- node) names the same process; brackets are optional.
local halo = require("halo")
local json = require("halo.json")

local M = {}

local null = json.null

--- The argument's value, or nil when it is absent, JSON null or "".
function M.value(v)
  if v == nil or v == null or v == "" then return nil end
  return v
end

-- "35DBD1C6": this node's CRC, from the calling process's PID.
local function crc()
  return halo.self():match("^<(%x+)%.")
end

-- The dot-separated parts of s without its brackets (and its prefix).
local function parts(s, prefix)
  if type(s) ~= "string" then return nil end
  if prefix and s:sub(1, #prefix) == prefix then s = s:sub(#prefix + 1) end
  s = s:gsub("^<", ""):gsub(">$", "")
  local out = {}
  for p in (s .. "."):gmatch("([^.]*)%.") do out[#out + 1] = p end
  return out
end

local function integer(p) return p:match("^%d+$") and #p <= 10 and tonumber(p) <= 4294967295 end

--- A PID argument as this node's PID string, or nil, the reference's parse error.
function M.pid(s)
  local p = parts(s)
  if not p or #p ~= 3 or not integer(p[2]) or not integer(p[3]) then
    return nil, "incorrect PID format, expected <crc.high.low>"
  end
  return ("<%s.%d.%d>"):format(crc(), tonumber(p[2]), tonumber(p[3]))
end

-- The digits of a 64-bit unsigned integer without leading zeros, or nil
-- (kept as text: a Lua number holds 53 bits).
local function integer64(p)
  if not p:match("^%d+$") then return nil end
  p = p:gsub("^0+(%d)", "%1")
  if #p > 20 or #p == 20 and p > "18446744073709551615" then return nil end
  return p
end

--- An alias argument as this node's alias string, or nil, the reference's parse error.
function M.alias(s)
  local p = parts(s, "Alias#")
  local id0 = p and #p == 4 and integer64(p[2])
  if not id0 or not integer(p[3]) or not integer(p[4]) then
    return nil, "incorrect Alias format, expected <crc.id0.id1.id2>"
  end
  return ("Alias#<%s.%s.%d.%d>"):format(crc(), id0, tonumber(p[3]), tonumber(p[4]))
end

--- The text of a halo error without its code ("ENOPROC: unknown process" -> "unknown process").
function M.message(err)
  return (tostring(err):gsub("^E%u+: ", ""))
end

--- nil, "<what>: <message>": a tool's failure in the reference's form.
function M.fail(what, err)
  return nil, what .. ": " .. M.message(err)
end

return M
