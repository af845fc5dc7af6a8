-- MCP tools of the event group: event_list, event_info. Everything comes from
-- halo.event.list / info; the utilization state is the core's
-- (halo_event_utilization in core/event.c, shared with the metrics).
local halo = require("halo")
local json = require("halo.json")
local A = require("halo.mcp.toolargs")

local value = A.value

-- event_list arguments handed to halo.event.list as they are
local FILTERS = { "name", "producer", "notify", "has_buffer", "min_subscribers", "max_subscribers", "min_published",
                  "max_published", "min_local_sent", "min_remote_sent", "utilization_state", "sort_by" }

local function integer_prop(description) return { type = "integer", description = description } end

return {
  {
    name = "event_list",
    description = "Lists the events registered on this node: Name, Event (Event#<CRC:name>), Producer (PID), "
      .. "BufferSize, CurrentBuffer, Notify, Open, Subscribers, MessagesPublished, MessagesLocalSent, "
      .. "MessagesRemoteSent, CreatedAt and LastPublishedAt (unix ns, 0 = never) and UtilizationState: active "
      .. "(published and subscribed), on_demand (notify, not active), idle (neither), no_subscribers, "
      .. "no_publishing. Filters are ANDed; sort_by sorts descending and cuts to limit, without it the first "
      .. "limit matches are listed.",
    inputSchema = {
      type = "object",
      properties = {
        limit = integer_prop("maximum rows (default 100; 0 or negative: no limit)"),
        name = { type = "string", description = "substring of the event name (case-sensitive)" },
        producer = { type = "string", description = "substring of the producer's PID or registered name" },
        notify = { type = "boolean", description = "only events with (true) or without (false) notify" },
        has_buffer = { type = "boolean", description = "only events with (true) or without (false) a buffer" },
        min_subscribers = integer_prop("at least this many subscribers (0 counts)"),
        max_subscribers = integer_prop("at most this many subscribers (0: events nobody listens to)"),
        min_published = integer_prop("at least this many publications (off at 0)"),
        max_published = integer_prop("at most this many publications (0: never published)"),
        min_local_sent = integer_prop("at least this many deliveries to local subscribers (off at 0)"),
        min_remote_sent = integer_prop("at least this many messages sent to other nodes (off at 0)"),
        utilization_state = { type = "string",
                              enum = json.array({ "active", "on_demand", "idle", "no_subscribers", "no_publishing" }),
                              description = "only events in this utilization state" },
        sort_by = { type = "string", enum = json.array({ "subscribers", "published", "local_sent", "remote_sent" }),
                    description = "sort key, always descending" },
      },
    },
    handler = function(args)
      local filter = {}
      for _, k in ipairs(FILTERS) do filter[k] = value(args[k]) end
      local limit = value(args.limit) or 100
      filter.limit = limit > 0 and limit or -1
      return halo.event.list(filter)
    end,
  },
  {
    name = "event_info",
    description = "Information on one event registered on this node, with the fields of event_list (counters "
      .. "cumulative, times in unix ns).",
    inputSchema = { type = "object",
                    properties = { name = { type = "string", description = "event name" } },
                    required = json.array({ "name" }) },
    handler = function(args)
      local name = value(args.name)
      if not name then return nil, "event_info: unknown event" end
      local info, err = halo.event.info(name)
      if not info then return A.fail("event_info", err) end
      return info
    end,
  },
}
