--- Writes the docker demo's Grafana dashboards (deploy/grafana/dashboards/):
--   halo-cluster.json  the reference's "Ergo Cluster" panel by panel over halo_*
--   slowweb.json       the latency worker's slowweb_* metrics
--   build/halo run deploy/grafana/dashboards.lua [DIR]     (make -C deploy dashboards)
-- The JSON files are committed; spec/deploy_spec.lua checks they are what
-- this script writes and runs every query against a live cluster.
local json = require("halo.json")

local DS = { type = "prometheus", uid = "halo-prometheus" } -- provisioning/datasources/prometheus.yml
local F = 'node=~"$node"'
local RATE = "[$__rate_interval]"
local RANGE = "[${__range_s}s]"

-- The flame palette of the distribution panels, greenest (smallest bucket) first.
local FLAME = { "#73BF69", "#96D98D", "#C8F2C2", "#FADE2A", "#FFCB7D", "#FF9830", "#FA6400", "#F2495C",
                "#E02F44", "#C4162A", "#A01D1D", "#8B0000" }

local next_id = 0
local function id()
  next_id = next_id + 1
  return next_id
end

local function target(i, expr, legend, extra)
  local t = { datasource = DS, refId = string.char(64 + i), expr = expr, legendFormat = legend or "__auto",
              range = true }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function targets(list, extra)
  local out = {}
  for i, q in ipairs(list) do out[i] = target(i, q[1], q[2], extra) end
  return json.array(out)
end

local function color_overrides(list)
  local out = {}
  for _, q in ipairs(list) do
    if q.color then
      out[#out + 1] = { matcher = { id = "byName", options = q[2] },
                        properties = json.array({ { id = "color", value = { mode = "fixed", fixedColor = q.color } } }) }
    end
  end
  return json.array(out)
end

--- A timeseries panel: queries {expr, legend, color = fixed colour?}; o: w, h, unit, stack, fill, min, bars.
local function ts(title, queries, o)
  o = o or {}
  local custom = { lineInterpolation = "smooth", lineWidth = o.line or 1, fillOpacity = o.fill or 10,
                   showPoints = "never", spanNulls = true,
                   stacking = { mode = o.stack and "normal" or "none", group = "A" } }
  if o.step then custom.lineInterpolation = "stepAfter" end
  if o.gradient then custom.gradientMode = "opacity" end
  local defaults = { unit = o.unit or "short", custom = custom,
                     color = o.color and { mode = "fixed", fixedColor = o.color } or { mode = "palette-classic" } }
  if o.min then defaults.min = o.min end
  if o.decimals then defaults.decimals = o.decimals end
  return { type = "timeseries", title = title, datasource = DS, w = o.w or 12, h = o.h or 8,
           targets = targets(queries),
           fieldConfig = { defaults = defaults, overrides = color_overrides(queries) },
           options = { legend = { displayMode = o.table_legend and "table" or "list",
                                  placement = o.table_legend and "right" or "bottom",
                                  calcs = json.array(o.last and { "lastNotNull" } or {}) },
                       tooltip = { mode = "multi", sort = o.sort or "none" } } }
end

--- A distribution over the label range: one stacked series per bucket, largest first.
local function dist(title, family, ranges)
  local queries = {}
  for i, r in ipairs(ranges) do
    queries[i] = { ('sum(%s{%s, range="%s"})'):format(family, F, r), r, color = FLAME[#ranges - i + 1] }
  end
  return ts(title, queries, { stack = true, fill = 80, line = 0 })
end

local PROC_COLUMNS = { application = "Application", behavior = "Behavior", name = "Name", pid = "PID", node = "Node" }
local EVENT_COLUMNS = { event = "Event", producer = "Producer", node = "Node" }

--- A table of an instant query: label columns renamed, value column `value`, sorted.
local function tbl(title, expr, value, o)
  o = o or {}
  local cols = o.events and EVENT_COLUMNS or PROC_COLUMNS
  local order = o.events and { "event", "producer", "node" } or { "application", "behavior", "name", "pid", "node" }
  local rename, index = { Value = value }, {}
  for k, v in pairs(cols) do rename[k] = v end
  for i, k in ipairs(order) do index[k] = i - 1 end
  index.Value = #order
  return { type = "table", title = title, datasource = DS, w = o.w or 12, h = 8,
           targets = targets({ { expr } }, { instant = true, range = false, format = "table" }),
           fieldConfig = { defaults = { unit = o.unit or "short" }, overrides = json.array({}) },
           options = { showHeader = true, sortBy = json.array({ { displayName = value, desc = not o.asc } }) },
           transformations = json.array({ { id = "organize", options = {
             excludeByName = { Time = true, __name__ = true, endpoint = true, job = true, instance = true,
                               prometheus = true },
             indexByName = index, renameByName = rename } } }) }
end

local function top(title, family, value, o)
  return tbl(title, ("topk(50, max_over_time(%s{%s}%s))"):format(family, F, RANGE), value, o)
end

local function stat(title, expr, w, o)
  o = o or {}
  local steps = o.steps or { { color = o.color or "blue", value = json.null } }
  return { type = "stat", title = title, datasource = DS, w = w, h = o.h or 4,
           targets = targets({ { expr, o.legend } }),
           fieldConfig = { defaults = { unit = o.unit or "short", min = o.min, max = o.max,
                                        color = { mode = "thresholds" },
                                        thresholds = { mode = "absolute", steps = json.array(steps) } },
                           overrides = json.array({}) },
           options = { colorMode = "value", graphMode = "none", textMode = "auto",
                       reduceOptions = { calcs = json.array({ "lastNotNull" }), fields = "", values = false } } }
end

local function bargauge(title, expr, legend, o)
  return { type = "bargauge", title = title, datasource = DS, w = o.w or 12, h = 8,
           targets = targets({ { expr, legend } }),
           fieldConfig = { defaults = { unit = o.unit, min = o.min, max = o.max, color = { mode = "thresholds" },
                                        thresholds = { mode = "absolute", steps = json.array(o.steps) } },
                           overrides = json.array({}) },
           options = { orientation = "horizontal", displayMode = "gradient",
                       reduceOptions = { calcs = json.array({ "lastNotNull" }), fields = "", values = false } } }
end

local RED_FROM_1 = { { color = "green", value = json.null }, { color = "red", value = 1 } }
local STRENGTH = { { color = "blue", value = json.null }, { color = "semi-dark-blue", value = 25 },
                   { color = "light-orange", value = 60 }, { color = "orange", value = 90 } }

local function rate(family, filter) return ("rate(%s{%s%s}%s)"):format(family, F, filter or "", RATE) end
local function srate(family) return "sum(" .. rate(family) .. ")" end
local function byrate(family) return "sum by (node) (" .. rate(family) .. ")" end
local STUCK = ("count(halo_process_liveness_bottom{%s} < 0.001) OR vector(0)"):format(F)
local SUSPECT = ("count(halo_process_liveness_bottom{%s} < 0.01 and halo_process_liveness_bottom{%s} >= 0.001) OR vector(0)")
  :format(F, F)
local PEERS = "scalar(clamp_min(count(halo_connected_nodes_total) - 1, 1))"

local function compression_ratio(by)
  return ("%s(%s) / clamp_min(%s(%s), 1)"):format(by, rate("halo_remote_compressed_orig_bytes_sent_total"), by,
    rate("halo_remote_compressed_bytes_sent_total"))
end

-- Rows: {title, collapsed, panels}; the stat strip comes first, outside any row.
local STRIP = {
  stat("Total Processes", ("sum(halo_processes_total{%s})"):format(F), 4),
  stat("Running", ("sum(halo_processes_running{%s})"):format(F), 4, { color = "green" }),
  stat("Zombie", ("sum(halo_processes_zombie{%s})"):format(F), 2, { steps = RED_FROM_1 }),
  stat("Stuck", STUCK, 2, { steps = RED_FROM_1 }),
  stat("Memory Used", ("sum(halo_memory_used_bytes{%s})"):format(F), 4, { unit = "bytes" }),
  stat("Memory Alloc", ("sum(halo_memory_alloc_bytes{%s})"):format(F), 4, { unit = "bytes" }),
  stat("Total Nodes", ("count(halo_node_uptime_seconds{%s})"):format(F), 4, { color = "green" }),
}

local ROWS = {
  { "Mailbox Latency", false, {
    ts("Max Latency", { { ("max(halo_mailbox_latency_max_seconds{%s})"):format(F), "Max" } },
      { h = 4, unit = "s", color = "red", fill = 20, gradient = true, last = true }),
    ts("Stressed Processes", {
      { ('sum(halo_mailbox_latency_distribution{%s, range="1ms"})'):format(F), "< 1ms", color = "light-blue" },
      { ('sum(halo_mailbox_latency_distribution{%s, range!="1ms"})'):format(F), "≥ 1ms", color = "orange" } },
      { h = 4, stack = true, fill = 60 }),
    ts("Max Latency per Node", { { ("halo_mailbox_latency_max_seconds{%s}"):format(F), "{{node}}" } },
      { unit = "s", table_legend = true }),
    ts("Stressed Processes per Node", { { ("halo_mailbox_latency_processes{%s}"):format(F), "{{node}}" } }),
    dist("Latency Distribution", "halo_mailbox_latency_distribution",
      { "60s+", "60s", "30s", "10s", "5s", "1s", "500ms", "100ms", "50ms", "10ms", "5ms", "1ms" }),
    top("Top Stressed Processes", "halo_mailbox_latency_top_seconds", "Latency", { unit = "s" }),
    ts("Liveness Alerts (stuck callbacks)", { { STUCK, "Stuck (< 0.001)", color = "red" },
                                              { SUSPECT, "Suspect (< 0.01)", color = "orange" } },
      { step = true, line = 2, min = 0, decimals = 0 }),
    tbl("Liveness Details (stuck callbacks)", ("min_over_time(halo_process_liveness_bottom{%s}%s)"):format(F, RANGE),
      "Liveness", { asc = true }),
  } },
  { "Mailbox Depth", false, {
    ts("Max Depth", { { ("halo_mailbox_depth_max{%s}"):format(F), "{{node}}" } }),
    dist("Depth Distribution", "halo_mailbox_depth_distribution",
      { "10K+", "10K", "5K", "1K", "500", "100", "50", "10", "5", "1" }),
    top("Top Processes by Depth", "halo_mailbox_depth_top", "Depth", { w = 24 }),
  } },
  { "Events", true, {
    ts("Event Publish/Delivery Rate", {
      { srate("halo_events_published_total"), "Published", color = "blue" },
      { srate("halo_events_received_total"), "Received", color = "cyan" },
      { srate("halo_events_local_sent_total"), "Local Delivered", color = "green" },
      { srate("halo_events_remote_sent_total"), "Remote Sent", color = "orange" } }, { unit = "evt/s", last = true }),
    ts("Event Utilization", {
      { ('sum(halo_event_utilization{%s, state="active"})'):format(F), "Active", color = "#73BF69" },
      { ('sum(halo_event_utilization{%s, state="on_demand"})'):format(F), "On Demand", color = "#6E9FFF" },
      { ('sum(halo_event_utilization{%s, state="no_publishing"})'):format(F), "No Publishing", color = "#FADE2A" },
      { ('sum(halo_event_utilization{%s, state="no_subscribers"})'):format(F), "No Subscribers", color = "#FF9830" },
      { ('sum(halo_event_utilization{%s, state="idle"})'):format(F), "Idle", color = "#8F8F8F" } },
      { stack = true, fill = 60 }),
    ts("Event Publish Rate per Node", { { rate("halo_events_published_total"), "{{node}}" } }, { unit = "evt/s" }),
    ts("Event Delivery Rate per Node", { { rate("halo_events_local_sent_total"), "{{node}}" } }, { unit = "evt/s" }),
    ts("Registered Events per Node", { { ("halo_registered_events_total{%s}"):format(F), "{{node}}" } }),
    ts("Max Subscribers per Node", { { ("halo_event_subscribers_max{%s}"):format(F), "{{node}}" } }),
    top("Top Events by Subscribers", "halo_event_subscribers_top", "Subscribers", { events = true }),
    top("Top Events by Published", "halo_event_published_top", "Published", { events = true }),
    top("Top Events by Local Deliveries", "halo_event_local_sent_top", "Local Deliveries", { events = true }),
    top("Top Events by Remote Sent", "halo_event_remote_sent_top", "Remote Sent", { events = true }),
  } },
  { "Process Activity", true, {
    ts("Message Throughput (Cluster Total)", {
      { srate("halo_process_messages_in"), "In", color = "green" },
      { srate("halo_process_messages_out"), "Out", color = "blue" },
      { srate("halo_process_wakeups"), "Wakeups", color = "purple" } }, { unit = "msg/s" }),
    ts("Message Throughput per Node", {
      { rate("halo_process_messages_in"), "{{node}} in" },
      { rate("halo_process_messages_out"), "{{node}} out" },
      { rate("halo_process_wakeups"), "{{node}} wakeups" } }, { unit = "msg/s" }),
    top("Top Processes by Messages In", "halo_process_messages_in_top", "Messages In"),
    top("Top Processes by Messages Out", "halo_process_messages_out_top", "Messages Out"),
    ts("Drains per Node", { { rate("halo_process_messages_in") .. " / " .. rate("halo_process_wakeups"), "{{node}}" } }),
    top("Top Processes by Drains", "halo_process_drains_top", "Drains"),
    dist("Utilization Distribution", "halo_process_utilization_distribution",
      { "90%+", "90%", "75%", "50%", "25%", "10%", "5%", "1%" }),
    ts("Max Utilization per Node", { { ("halo_process_utilization_max{%s}"):format(F), "{{node}}" } },
      { unit = "percentunit" }),
    ts("Actor Running Time per Node", { { rate("halo_process_running_time_seconds"), "{{node}}" } }, { unit = "s/s" }),
    top("Top Processes by Utilization", "halo_process_utilization_top", "Utilization", { unit = "percentunit" }),
    ts("Delivery Errors (Cluster Total)", {
      { srate("halo_send_errors_local_total"), "Send Local", color = "orange" },
      { srate("halo_send_errors_remote_total"), "Send Remote", color = "red" },
      { srate("halo_call_errors_local_total"), "Call Local", color = "yellow" },
      { srate("halo_call_errors_remote_total"), "Call Remote", color = "dark-red" } }, { unit = "err/s" }),
    ts("Delivery Errors per Node", {
      { rate("halo_send_errors_local_total") .. " + " .. rate("halo_send_errors_remote_total"), "{{node}} send" },
      { rate("halo_call_errors_local_total") .. " + " .. rate("halo_call_errors_remote_total"), "{{node}} call" } },
      { unit = "err/s" }),
  } },
  { "Processes", true, {
    ts("Processes (total)", { { ("halo_processes_total{%s}"):format(F), "{{node}}" } }),
    ts("Processes (running)", { { ("halo_processes_running{%s}"):format(F), "{{node}}" } }),
    ts("Process Spawn Rate", { { rate("halo_processes_spawned_total"), "{{node}} spawned" },
                               { rate("halo_processes_spawn_failed_total"), "{{node}} failed" } }, { unit = "ops" }),
    ts("Process Termination Rate", { { rate("halo_processes_terminated_total"), "{{node}} terminated" } },
      { unit = "ops" }),
    bargauge("Init Time per Node", ("sort_desc(halo_process_init_time_max_seconds{%s})"):format(F), "{{node}}",
      { unit = "s", steps = { { color = "green", value = json.null }, { color = "yellow", value = 0.1 },
                              { color = "orange", value = 0.5 }, { color = "red", value = 1 } } }),
    top("Top Processes by Init Time", "halo_process_init_time_top_seconds", "Init Time", { unit = "s" }),
  } },
  { "Resources", true, {
    ts("CPU User Time per Node", { { rate("halo_cpu_user_seconds") .. (" / on(node) halo_cpu_cores{%s}"):format(F),
                                     "{{node}} user" } }, { unit = "percentunit", min = 0 }),
    ts("CPU System Time per Node", { { rate("halo_cpu_system_seconds") .. (" / on(node) halo_cpu_cores{%s}"):format(F),
                                       "{{node}} system" } }, { unit = "percentunit", min = 0 }),
    ts("Memory (OS:used)", { { ("halo_memory_used_bytes{%s}"):format(F), "{{node}}" } }, { unit = "bytes" }),
    ts("Memory (Runtime:alloc)", { { ("halo_memory_alloc_bytes{%s}"):format(F), "{{node}}" } }, { unit = "bytes" }),
  } },
  { "Logging", true, {
    ts("Log Messages Rate", {
      { "sum by (level) (" .. rate("halo_log_messages_total", ',level="debug"') .. ")", "debug", color = "blue" },
      { "sum by (level) (" .. rate("halo_log_messages_total", ',level="info"') .. ")", "info", color = "green" },
      { "sum by (level) (" .. rate("halo_log_messages_total", ',level="warning"') .. ")", "warning", color = "yellow" },
      { "sum by (level) (" .. rate("halo_log_messages_total", ',level="error"') .. ")", "error", color = "red" } },
      { unit = "ops", sort = "desc" }),
    ts("Log Messages per Node", { { rate("halo_log_messages_total", ',level!="trace",level!="panic"'),
                                    "{{node}} {{level}}" } }, { unit = "ops" }),
  } },
  { "Network", true, {
    ts("Network Messages", { { srate("halo_remote_messages_in_total"), "← In" },
                             { srate("halo_remote_messages_out_total"), "→ Out" } }, { unit = "msg/s" }),
    ts("Network Traffic", { { srate("halo_remote_bytes_in_total"), "← In" },
                            { srate("halo_remote_bytes_out_total"), "→ Out" } }, { unit = "Bps" }),
    ts("Network Messages per Node", { { byrate("halo_remote_messages_in_total"), "{{node}} ← in" },
                                      { byrate("halo_remote_messages_out_total"), "{{node}} → out" } }, { unit = "msg/s" }),
    ts("Network Traffic per Node", { { byrate("halo_remote_bytes_in_total"), "{{node}} ← in" },
                                     { byrate("halo_remote_bytes_out_total"), "{{node}} → out" } }, { unit = "Bps" }),
    ts("Network Messages Detail", { { rate("halo_remote_messages_in_total"), "{{node}} ← {{remote_node}}" },
                                    { rate("halo_remote_messages_out_total"), "{{node}} → {{remote_node}}" } },
      { unit = "msg/s" }),
    ts("Network Traffic Detail", { { rate("halo_remote_bytes_in_total"), "{{node}} ← {{remote_node}}" },
                                   { rate("halo_remote_bytes_out_total"), "{{node}} → {{remote_node}}" } },
      { unit = "Bps" }),
    ts("Compression Overview", {
      { compression_ratio("sum"), "Compression Ratio" },
      { srate("halo_remote_compressed_sent_total"), "Compressed msg/s" },
      { srate("halo_remote_compressed_sent_total") .. " / clamp_min(" .. srate("halo_remote_messages_out_total")
        .. ", 1) * 100", "% Messages Compressed" } }, { table_legend = true }),
    ts("Compression Ratio per Node", { { compression_ratio("sum by (node) "), "{{node}}" } }, { unit = "x", min = 0 }),
    ts("Fragmentation (Cluster Total)", {
      { srate("halo_remote_fragments_sent_total"), "Fragments Sent" },
      { srate("halo_remote_fragments_received_total"), "Fragments Received" },
      { srate("halo_remote_fragment_messages_sent_total"), "Messages Fragmented (sent)" },
      { srate("halo_remote_fragment_messages_received_total"), "Messages Reassembled" },
      { srate("halo_remote_fragment_timeouts_total"), "Assembly Timeouts" } }, { unit = "cps" }),
    ts("Fragmentation per Node", {
      { byrate("halo_remote_fragment_messages_sent_total"), "{{node}} fragmented (sent)" },
      { byrate("halo_remote_fragment_messages_received_total"), "{{node}} reassembled" },
      { byrate("halo_remote_fragment_timeouts_total"), "{{node}} timeouts" } }, { unit = "cps" }),
    stat("Connectivity Strength", ("avg(halo_connected_nodes_total{%s} / %s * 100)"):format(F, PEERS), 2,
      { h = 8, unit = "percent", min = 0, max = 100, steps = STRENGTH, legend = "Avg" }),
    bargauge("Nodes Connectivity Strength", ("sort_desc(halo_connected_nodes_total{%s} / %s * 100)"):format(F, PEERS),
      "{{node}}", { w = 10, unit = "percent", min = 0, max = 100, steps = STRENGTH }),
    ts("Connection Events", {
      { rate("halo_connections_established_total"), "{{node}} established", color = "green" },
      { rate("halo_connections_lost_total"), "{{node}} lost", color = "red" },
      { byrate("halo_acceptor_handshake_errors_total"), "{{node}} handshake errors", color = "orange" } },
      { unit = "events/s" }),
  } },
}

-- Places panels left to right on the 24-column grid from row y; returns the next free y.
local function place(panels, y)
  local x, row_h = 0, 0
  for _, p in ipairs(panels) do
    if x + p.w > 24 then
      x, y, row_h = 0, y + row_h, 0
    end
    p.id = id()
    p.gridPos = { x = x, y = y, w = p.w, h = p.h }
    p.w, p.h = nil, nil
    x, row_h = x + p.gridPos.w, math.max(row_h, p.gridPos.h)
  end
  return y + row_h
end

local function node_variable(metric)
  return { templating = { list = json.array({ {
    name = "node", label = "Node", type = "query", datasource = DS,
    query = { query = ("label_values(%s, node)"):format(metric), refId = "node" },
    definition = ("label_values(%s, node)"):format(metric),
    refresh = 2, multi = true, includeAll = true, allValue = ".*",
    current = { text = json.array({ "All" }), value = json.array({ "$__all" }) }, sort = 1 } }) } }
end

local function dashboard(uid, title, panels, metric)
  local d = { uid = uid, title = title, tags = json.array({ "halo" }), schemaVersion = 39, version = 1,
              editable = true, time = { from = "now-1h", to = "now" }, refresh = "10s",
              timezone = "browser", panels = json.array(panels), annotations = { list = json.array({}) } }
  for k, v in pairs(node_variable(metric)) do d[k] = v end
  return d
end

local function cluster()
  local panels, y = {}, place(STRIP, 0)
  for _, p in ipairs(STRIP) do panels[#panels + 1] = p end
  for _, r in ipairs(ROWS) do
    local title, collapsed, inner = r[1], r[2], r[3]
    local row = { type = "row", title = title, id = id(), collapsed = collapsed,
                  gridPos = { x = 0, y = y, w = 24, h = 1 }, panels = json.array({}) }
    panels[#panels + 1] = row
    y = place(inner, y + 1)
    if collapsed then
      row.panels = json.array(inner)
    else
      for _, p in ipairs(inner) do panels[#panels + 1] = p end
    end
  end
  return dashboard("halo-cluster", "halo cluster", panels, "halo_node_uptime_seconds")
end

local function slowweb()
  local by = 'sum by (node) (rate(%s{node=~"$node"%s}[1m]))'
  local requests = by:format("slowweb_requests_total", "")
  local quantile = 'histogram_quantile(%s, sum by (le, node) (rate(slowweb_request_duration_seconds_bucket{node=~"$node"}[1m])))'
  local panels = {
    ts("Request Rate", { { requests, "{{node}}" } }, { unit = "reqps", line = 2, gradient = true, fill = 15, last = true }),
    -- the error series exists once a request failed: 0 per node until then
    ts("Error Rate", { { by:format("slowweb_requests_total", ', status="error"') .. " or (" .. requests .. " * 0)",
                         "{{node}}" } },
      { unit = "reqps", color = "red", line = 2, gradient = true, fill = 15, last = true }),
    ts("Average Duration", { { by:format("slowweb_request_duration_seconds_sum", "") .. " / " ..
                               by:format("slowweb_request_duration_seconds_count", ""), "{{node}}" } },
      { unit = "s", line = 2, gradient = true, fill = 15, last = true }),
    ts("Duration Percentiles", { { quantile:format("0.50"), "p50 {{node}}" }, { quantile:format("0.95"), "p95 {{node}}" },
                                 { quantile:format("0.99"), "p99 {{node}}" } },
      { unit = "s", line = 2, gradient = true, fill = 10, last = true }),
  }
  place(panels, 0)
  return dashboard("slowweb-http", "slowweb HTTP", panels, "slowweb_requests_total")
end

local dir = ... or "deploy/grafana/dashboards"
for file, d in pairs({ ["halo-cluster.json"] = cluster(), ["slowweb.json"] = slowweb() }) do
  local f = assert(io.open(dir .. "/" .. file, "w"))
  f:write(json.encode(d, true), "\n")
  f:close()
end
