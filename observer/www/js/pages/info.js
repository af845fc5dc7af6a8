// Info: process counts (zombees red), counters, memory and CPU charts, uptime, log counts,
// loggers, cron jobs and the node's log level.

import { h, replace, num, bytes, secs } from "../dom.js";
import { conn, subscribe } from "../data.js";
import { act } from "../ui.js";
import { lineChart, rates } from "../chart.js";

const LEVELS = ["trace", "debug", "info", "warning", "error", "panic"];
const LEVEL_COLORS = { trace: "var(--grey)", debug: "var(--grey)", info: "var(--accent)", warning: "var(--warn)",
  error: "var(--bad)", panic: "var(--bad)" };

export function mount(root, ctx) {
  const procChart = lineChart({ title: "Processes", series: ["total", "running", "zombee"], height: 70,
    colors: ["#4fb3ff", "#3ecf72", "#f0443a"] });
  const memChart = lineChart({ title: "Memory", series: ["RSS", "Lua heap", "C heap"], height: 70, fmt: bytes });
  const cpuChart = lineChart({ title: "CPU (% of one core)", series: ["user", "system"], height: 70,
    fmt: (v) => v.toFixed(1) + "%" });
  const churnChart = lineChart({ title: "Spawned / terminated per second", series: ["spawned", "terminated"], height: 70 });
  const cpuRate = rates(), churnRate = rates();
  const procStats = h("div", { class: "stats" });
  const counters = h("div", { class: "stats" });
  const node = h("div");
  const logs = h("div", { class: "bars", style: { height: "90px" } });
  const loggers = h("div");
  const cron = h("div");
  const level = h("select", { "data-testid": "log-level", onchange: async () => {
    const want = level.value;
    const ok = await act("set_log_level", { level: want }, { confirm: "Set the node's log level to " + want + "?" });
    if (!ok) level.value = current.LogLevel || "info";
  } }, LEVELS.concat(["disabled"]).map((l) => h("option", { value: l }, l)));
  let current = {};

  replace(root,
    h("div", { class: "toolbar" }, h("h2", null, "Info")),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h3", null, "Processes"), procStats, procChart.el),
      h("div", { class: "card" }, h("h3", null, "Node"), node,
        h("div", { class: "toolbar", style: { marginTop: "8px" } }, h("label", null, "node log level", level))),
      h("div", { class: "card" }, h("h3", null, "Memory"), memChart.el),
      h("div", { class: "card" }, h("h3", null, "CPU"), cpuChart.el),
      h("div", { class: "card" }, h("h3", null, "Lifecycle"), churnChart.el),
      h("div", { class: "card" }, h("h3", null, "Log messages by level"), logs)),
    h("div", { class: "card" }, h("h3", null, "Counters"), counters),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h3", null, "Loggers"), loggers),
      h("div", { class: "card" }, h("h3", null, "Cron jobs"), cron)));

  // Stat tiles are built once and updated in place (a click never lands on a replaced element).
  const tiles = new Map();
  const stat = (k, v, attrs, cls) => {
    let t = tiles.get(k);
    if (!t) {
      t = { v: h("div", { class: "v", ...(attrs || {}) }), el: null };
      t.base = t.v.className;
      t.el = h("div", { class: "stat" }, t.v, h("div", { class: "k" }, k));
      tiles.set(k, t);
    }
    if (t.v.textContent !== v) t.v.textContent = v;
    t.v.className = t.base + (cls ? " " + cls : "");
    return t.el;
  };
  const keep = (box, els) => {
    if (els.length !== box.children.length || els.some((e, i) => box.children[i] !== e)) box.replaceChildren(...els);
  };

  const sub = subscribe("node_info", {}, (d, p) => {
    current = d;
    const t = p.time || Date.now();
    const z = d.ProcessesZombee || 0;
    keep(procStats, [
      stat("total", num(d.ProcessesTotal), { "data-testid": "count-total" }),
      stat("running", num(d.ProcessesRunning)),
      stat("sleep", num(d.ProcessesSleep)),
      stat("wait response", num(d.ProcessesWaitResponse)),
      stat("init", num(d.ProcessesInit)),
      stat("zombee", num(z), { "data-testid": "count-zombee", title: "list them", class: "v click",
        onclick: () => ctx.go("processes", "state=zombee") }, z > 0 ? "red" : "")]);
    procChart.push([d.ProcessesTotal, d.ProcessesRunning, z]);
    const mem = d.Memory || {};
    memChart.push([mem.rss ?? d.MemoryUsed, mem.lua ?? d.MemoryAlloc, mem.c_heap]);
    const cr = cpuRate([d.UserTime, d.SystemTime], t);
    if (cr[0] !== null) cpuChart.push(cr.map((v) => v / 1e7));   // ns per s -> % of a core
    const ch = churnRate([d.ProcessesSpawned, d.ProcessesTerminated], t);
    if (ch[0] !== null) churnChart.push(ch);
    const fw = d.Framework || {};
    replace(node, h("div", { class: "kv" },
      h("span", null, "name"), h("span", null, d.Name || ""),
      h("span", null, "uptime"), h("span", { "data-testid": "uptime" }, secs(d.Uptime)),
      h("span", null, "version"), h("span", null, d.Version || [fw.Name, fw.Release].filter(Boolean).join(" ")),
      h("span", null, "creation"), h("span", null, String(d.Creation ?? "–")),
      h("span", null, "memory used"), h("span", null, bytes(d.MemoryUsed)),
      h("span", null, "CPU user/system"), h("span", null, (d.UserTime / 1e9).toFixed(1) + " s / " + (d.SystemTime / 1e9).toFixed(1) + " s"),
      h("span", null, "timers"), h("span", null, num(d.Timers))));
    if (document.activeElement !== level) level.value = d.LogLevel || "info";
    level.disabled = !conn.actions;
    level.title = conn.actions ? "set the node's log level (needs the token)" : "actions are off (observer started without a token)";
    keep(counters, [
      stat("spawned", num(d.ProcessesSpawned)), stat("terminated", num(d.ProcessesTerminated)),
      stat("spawn failed", num(d.ProcessesSpawnFailed), null, d.ProcessesSpawnFailed ? "red" : ""),
      stat("names", num(d.RegisteredNames)), stat("aliases", num(d.RegisteredAliases)),
      stat("events", num(d.RegisteredEvents)), stat("published", num(d.EventsPublished)),
      stat("received", num(d.EventsReceived)), stat("local sent", num(d.EventsLocalSent)),
      stat("remote sent", num(d.EventsRemoteSent)),
      stat("send err local", num(d.SendErrorsLocal), null, d.SendErrorsLocal ? "red" : ""),
      stat("send err remote", num(d.SendErrorsRemote), null, d.SendErrorsRemote ? "red" : ""),
      stat("call err local", num(d.CallErrorsLocal), null, d.CallErrorsLocal ? "red" : ""),
      stat("call err remote", num(d.CallErrorsRemote), null, d.CallErrorsRemote ? "red" : ""),
      stat("late replies", num(d.LateReplies))]);
    const lc = d.LogCounts || {};
    const lv = LEVELS.filter((l) => l !== "trace" || lc.trace);
    const max = Math.max(1, ...lv.map((l) => lc[l] || 0));
    replace(logs, lv.map((l) => h("div", { class: "bar", "data-log-count": l, title: l + ": " + (lc[l] || 0) },
      h("span", null, num(lc[l] || 0)),
      h("div", { style: { height: ((lc[l] || 0) / max) * 60 + "px", background: LEVEL_COLORS[l] } }), l)));
    const lg = d.Loggers || [];
    replace(loggers, lg.length ? h("table", { class: "t" },
      h("thead", null, h("tr", null, h("th", null, "name"), h("th", null, "format"), h("th", null, "levels"), h("th", { class: "n" }, "records"))),
      h("tbody", null, lg.map((x) => h("tr", null, h("td", null, x.Name || x.name),
        h("td", null, x.Behavior || x.format || ""), h("td", { style: { whiteSpace: "normal" } }, (x.Levels || x.levels || []).join(" ")),
        h("td", { class: "n" }, num(x.Records ?? x.records))))))
      : h("div", { class: "empty" }, "no loggers"));
    const jobs = Array.isArray(d.Cron) ? d.Cron : (d.Cron && d.Cron.Jobs) || [];
    replace(cron, jobs.length ? h("table", { class: "t" },
      h("thead", null, h("tr", null, ["name", "spec", "action", "last run", "next", "runs", "last error"].map((c) => h("th", null, c)))),
      h("tbody", null, jobs.map((j) => h("tr", { class: j.Disabled ? "dim" : "" }, h("td", null, j.Name),
        h("td", { class: "mono" }, j.Spec || ""),
        h("td", null, typeof j.ActionInfo === "string" ? j.ActionInfo : JSON.stringify(j.ActionInfo || "")),
        h("td", null, j.LastRun || "–"), h("td", null, j.Next || "–"), h("td", { class: "n" }, num(j.Runs || 0)),
        h("td", { class: j.LastErr ? "red" : "" }, j.LastErr || "")))))
      : h("div", { class: "empty" }, "no cron jobs"));
  });
  return () => sub.close();
}
