--- The README's table of built-in metric families, made from the code
-- (halo.metrics.families()), so the two cannot drift.
--   build/halo run tools/metrics_table.lua write README.md   rewrites the table
--   build/halo run tools/metrics_table.lua check README.md   fails when it differs
-- Loaded with dofile (no arguments) it returns {render, splice}; spec/metrics_spec.lua
-- compares the README with render() that way.
local BEGIN, END = "<!-- metrics:begin -->", "<!-- metrics:end -->"

local M = {}

local function cell(s) return (s:gsub("|", "\\|")) end

--- Markdown rows for the catalogue.
function M.render(families)
  local out = {
    "| Family (reference: `ergo_*`) | Type | Labels besides `node` | Meaning |",
    "|---|---|---|---|",
  }
  for _, f in ipairs(families) do
    local labels = {}
    for i, l in ipairs(f.labels or {}) do labels[i] = "`" .. l .. "`" end
    if f.absent then
      out[#out + 1] = ("| `%s` | — | — | not exported: %s |"):format(f.name, cell(f.absent))
    else
      local meaning = f.help .. (f.note and (" — " .. f.note) or "")
      out[#out + 1] = ("| `%s` | %s | %s | %s |"):format(f.name, f.type, #labels > 0 and table.concat(labels, ", ") or "—",
        cell(meaning))
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- text with the part between the markers replaced by rows; nil when a marker is missing.
function M.splice(text, rows)
  local a = text:find(BEGIN, 1, true)
  local b = text:find(END, 1, true)
  if not a or not b or b < a then return nil end
  return text:sub(1, a + #BEGIN) .. rows .. text:sub(b)
end

local mode, path = ...
if not mode then return M end
local halo = require("halo")
local f = assert(io.open(path))
local text = f:read("*a")
f:close()
local new = assert(M.splice(text, M.render(halo.metrics.families())), path .. ": metrics markers missing")
if mode == "check" then
  if new ~= text then
    io.stderr:write(path .. ": the metrics table differs from the code (make metrics-table)\n")
    halo.shutdown(1)
    return
  end
elseif mode == "write" then
  if new ~= text then
    f = assert(io.open(path, "w"))
    f:write(new)
    f:close()
  end
else
  error("usage: metrics_table.lua write|check README.md")
end
halo.shutdown()
