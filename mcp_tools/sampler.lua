-- MCP tools of the sampler group: sample_start, sample_listen, sample_read,
-- sample_stop, sample_list. The samplers themselves are halo.mcp.sampler's
-- processes; with `node` every tool runs on that node, so a sampler started
-- there is read, listed and stopped with the same `node`.
local json = require("halo.json")
local S = require("halo.mcp.sampler")

local function int(description) return { type = "integer", description = description } end

local LIMITS = ("duration_sec: seconds until capture ends, default %d (0 or negative also %d, never unlimited), "
  .. "at most %d. buffer_size: entries kept, default %d, at most %d and %d MB (the oldest are overwritten). At most "
  .. "%d samplers per node. linger_sec: "
  .. "seconds the data stays readable once capture ended (duration, count or max_errors), default %d, at most %d.")
  :format(S.DURATION_SEC.default, S.DURATION_SEC.default, S.DURATION_SEC.max, S.BUFFER_SIZE.default,
          S.BUFFER_SIZE.max, S.BUFFER_BYTES / 2 ^ 20, S.MAX_SAMPLERS, S.LINGER_SEC.default, S.LINGER_SEC.max)

local READ_DOC = "Read with sample_read(sampler_id, since): pass back the `sequence` it returned as `since` to get "
  .. "only newer entries, nothing skipped."

local function result(cfg, id, keys)
  local r = json.object({ sampler_id = id, mode = cfg.mode })
  for _, k in ipairs(keys) do r[k] = cfg[k] end
  return r
end

return {
  {
    name = "sample_start",
    description = "Starts an active sampler on this node: runs `tool` with `arguments` every interval_ms "
      .. "(default 5000, below 100 means 100), each run in a process of its own, and keeps each result object in a ring "
      .. "buffer, for duration_sec or until `count` successful samples (0: no count) or `max_errors` consecutive "
      .. "failures (0: failures never end it). " .. LIMITS .. " Answers the effective settings and the "
      .. "sampler_id. " .. READ_DOC .. " Example: tool=process_list arguments={sort_by: mailbox, limit: 5} "
      .. "interval_ms=2000 duration_sec=60. Note that halo can read any process's stack at once "
      .. "(pprof_goroutines shows sleeping processes too): polling until a process wakes is rarely needed.",
    inputSchema = {
      type = "object",
      properties = {
        tool = { type = "string", description = "the tool to run (any of tools/list except sample_start/listen)" },
        arguments = { description = "the tool's arguments: an object (or its JSON text); `node` inside is ignored, "
          .. "start the sampler with `node` instead" },
        interval_ms = int("milliseconds between samples (default 5000, min 100)"),
        count = int("stop after this many successful samples (default 0: no count)"),
        duration_sec = int("seconds of sampling (default 60, max 3600; 0 or negative: 60)"),
        buffer_size = int("entries kept (default 256, max 4096)"),
        max_errors = int("stop after this many consecutive failed samples (default 0: never)"),
        linger_sec = int("seconds the data stays readable after the end (default 30, max 3600)"),
      },
      required = json.array({ "tool" }),
      additionalProperties = false,
    },
    entry_check = function(args)
      local registry = require("halo.mcp.registry")
      if type(args.tool) == "string" and args.tool ~= "" and not registry.permitted(args.tool) then
        return "invalid params: unknown tool: " .. args.tool
      end
    end,
    handler = function(args)
      local cfg, err = S.active(args)
      if not cfg then return nil, err end
      local id, serr = S.spawn(cfg)
      if not id then return nil, serr end
      return result(cfg, id, { "tool", "interval_ms", "count", "duration_sec", "buffer_size", "max_errors",
                               "linger_sec" })
    end,
  },
  {
    name = "sample_listen",
    description = "Starts a passive sampler on this node: captures log records of the given levels "
      .. "(log_levels, any case; default info, warning, error, panic when no event is given; a record exists only "
      .. "if its source's log level lets it through) and/or every publication of `event` (and `events`) into a "
      .. "ring buffer, for duration_sec. " .. LIMITS .. " Answers the effective settings (log_levels as "
      .. "applied) and the sampler_id. " .. READ_DOC .. " Log entries: {time, level, message, type, source}; "
      .. "event entries: {event, message}.",
    inputSchema = {
      type = "object",
      properties = {
        log_levels = { type = "array", items = { type = "string" },
                       description = "levels to capture: trace, debug, info, warning, error, panic" },
        log_source = { type = "string", enum = json.array(S.SOURCES),
                       description = "only records of this source type (\"\": all; halo has process and node)" },
        event = { type = "string", description = "an event to capture publications of" },
        events = { type = "array", items = { type = "string" }, description = "more events, in the same sampler" },
        event_node = { type = "string", description = "the node owning the event(s) (default this node)" },
        duration_sec = int("seconds of capture (default 60, max 3600; 0 or negative: 60)"),
        buffer_size = int("entries kept (default 256, max 4096)"),
        linger_sec = int("seconds the data stays readable after the end (default 30, max 3600)"),
      },
      additionalProperties = false,
    },
    handler = function(args, ctx)
      local cfg, err = S.passive(args, ctx.node)
      if not cfg then return nil, err end
      local id, serr = S.spawn(cfg)
      if not id then return nil, serr end
      local r = result(cfg, id, { "duration_sec", "buffer_size", "linger_sec" })
      if cfg.log_levels then
        r.log_levels, r.log_source = json.array(cfg.log_levels), cfg.log_source
      end
      if cfg.events then
        r.event, r.event_node = cfg.events[1], cfg.event_node
        if #cfg.events > 1 then r.events = json.array(cfg.events) end
      end
      return r
    end,
  },
  {
    name = "sample_read",
    description = "Reads a sampler's entries with sequence > since (default 0: all kept), oldest first: "
      .. "{sampler_id, mode, tool (active), sequence (the last sequence assigned: pass it back as since), "
      .. "completed, status, reason (why capture ended), lost (entries after since already overwritten, when "
      .. "any), samples: [{sequence, timestamp (RFC 3339), data}]}. Active data is the tool's result object "
      .. "({content: [{type: text, text}]}). Works while running and while lingering.",
    inputSchema = {
      type = "object",
      properties = {
        sampler_id = { type = "string", description = "the id sample_start/sample_listen answered" },
        since = int("only entries after this sequence (default 0)"),
      },
      required = json.array({ "sampler_id" }),
      additionalProperties = false,
    },
    handler = function(args)
      return S.read(args.sampler_id, type(args.since) == "number" and args.since or 0)
    end,
  },
  {
    name = "sample_stop",
    description = "Stops a sampler at once (running or lingering) and answers its last entries, as sample_read "
      .. "does, with sequence > since (default: the entries no sample_read returned yet); the sampler and its "
      .. "buffer are gone afterwards.",
    inputSchema = {
      type = "object",
      properties = {
        sampler_id = { type = "string", description = "the sampler's id" },
        since = int("answer the entries after this sequence (default: those not read yet)"),
      },
      required = json.array({ "sampler_id" }),
      additionalProperties = false,
    },
    handler = function(args)
      return S.stop(args.sampler_id, type(args.since) == "number" and args.since or nil)
    end,
  },
  {
    name = "sample_list",
    description = "The samplers of this node ([] when none), each a map of strings: id, pid, mode, "
      .. "description (what it samples), status (running | completed, lingering <time> | completed), owner "
      .. "(this node), samples (\"<N> collected, buffer <kept>/<capacity>\"), uptime, deadline (end of "
      .. "capture, RFC 3339), remaining (while running), progress (\"<n>/<count> samples\" with a count), "
      .. "reason (why capture ended), errors (\"<n> consecutive\") and last_error.",
    inputSchema = { type = "object", properties = json.object(), additionalProperties = false },
    handler = function() return S.list() end,
  },
}
