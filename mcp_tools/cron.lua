-- MCP tools of the cron group: the node's cron jobs as halo.cron reports
-- them. Times are RFC 3339 in the job's location (Local or UTC), to the
-- second; "0001-01-01T00:00:00Z" means never. Fallback is the reference's
-- field: halo has no fallback jobs, so it is always disabled.
local json = require("halo.json")
local cron = require("halo.cron")

local function text(err) return (tostring(err):gsub("^E%u+: ", "")) end

return {
  {
    name = "cron_info",
    description = "The node's cron scheduler: Next (time of the next run), Spool (names of the jobs due then) "
      .. "and Jobs (CronJobInfo of every job, as cron_job returns it). Jobs is [] when the node has none.",
    inputSchema = { type = "object", properties = json.object(), additionalProperties = false },
    handler = function() return cron.info() end,
  },
  {
    name = "cron_job",
    description = "CronJobInfo of one cron job: Name, Spec (five-field crontab spec or @shorthand), Location "
      .. "(Local or UTC), Disabled, ActionInfo (what it does), LastRun (time of the last run), LastErr (the "
      .. "last run's error, empty when it succeeded), Fallback, and halo's Next (time of the next run) and "
      .. "Runs (count of runs since the job was added).",
    inputSchema = { type = "object", properties = { name = { type = "string", description = "Job name." } },
                    required = json.array({ "name" }), additionalProperties = false },
    handler = function(args)
      local info, err = cron.job(args.name)
      if not info then return nil, "cron_job: " .. text(err) end
      return info
    end,
  },
  {
    name = "cron_schedule",
    description = "The runs planned from now over the next duration_seconds seconds (default 3600; below 1 "
      .. "means 3600): a list of {Time, Jobs} in time order, Jobs naming the enabled jobs due at that time "
      .. "(at most 10000 runs per job). [] when nothing runs in that window.",
    inputSchema = {
      type = "object",
      properties = {
        duration_seconds = { type = "integer", default = 3600,
                             description = "Window length in seconds (default 3600; values below 1 mean 3600)." },
      },
      additionalProperties = false,
    },
    handler = function(args)
      local d = args.duration_seconds
      return cron.schedule(type(d) == "number" and d >= 1 and d or 3600)
    end,
  },
}
