--- Ping-pong: pairs of processes bounce a counter; a reporter prints their
-- live counters once a second from the introspection API.
--   halo run examples/pingpong.lua [pairs] [seconds]   (Ctrl-C stops it)
local halo = require("halo")

local pairs_n = tonumber((...)) or 4
local seconds = tonumber((select(2, ...)))

local Player = { name = "example.player" }

function Player:init(peer) self.peer = peer end

function Player:handle_message(from, msg)
  if msg.peer then -- the partner's PID arrives once, before the ball
    self.peer = msg.peer
  elseif msg.ball then
    -- pace the pairs so the counters move at a readable rate
    halo.send_after(self.peer, { ball = msg.ball + 1 }, msg.ball % 100 == 0 and 50 or 0)
  end
end

local Reporter = { name = "example.reporter" }

function Reporter:init() halo.send_after(halo.self(), "tick", 1000) end

local function ms(ns) return string.format("%.2f", ns / 1e6) end

function Reporter:handle_message(_, _)
  local rows = halo.process_list({ behavior = "example.player", sort_by = "messages_in" })
  local info = halo.node_info()
  io.write(string.format("\n%s  up %ds  processes %d  spawned %d  terminated %d\n",
    info.Name, info.Uptime, info.ProcessesTotal, info.ProcessesSpawned, info.ProcessesTerminated))
  io.write(string.format("%-20s %-12s %-8s %9s %9s %7s %11s %11s %8s %6s\n", "PID", "Name", "State",
    "MsgIn", "MsgOut", "Mbox", "Latency ms", "Running ms", "Wakeups", "Drain"))
  for _, p in ipairs(rows) do
    io.write(string.format("%-20s %-12s %-8s %9d %9d %7d %11s %11s %8d %6.2f\n", p.PID, p.Name,
      p.State, p.MessagesIn, p.MessagesOut, p.MessagesMailbox, ms(p.MailboxLatency),
      ms(p.RunningTime), p.Wakeups, p.Drain))
  end
  io.flush()
  halo.send_after(halo.self(), "tick", 1000)
end

for i = 1, pairs_n do
  local a = halo.spawn_register("ping" .. i, Player)
  local b = halo.spawn_register("pong" .. i, Player, a)
  halo.send(a, { peer = b })
  halo.send(a, { ball = 0 })
end
halo.spawn_register("reporter", Reporter)
print(string.format("%d pairs ping-ponging; counters every second; Ctrl-C to stop", pairs_n))
if seconds then
  halo.sleep(seconds * 1000)
  halo.shutdown()
end
