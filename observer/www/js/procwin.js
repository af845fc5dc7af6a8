// The process window: overview (stats, message-rate chart, mailbox queues, environment),
// relations, inspect (auto-refresh), stack, and the actions send / exit / kill.

import { h, replace, num, ns, secs, bytes, latClass, mbClass, stateClass, toast } from "./dom.js";
import { conn, subscribe } from "./data.js";
import { openWindow, act, modal, query } from "./ui.js";
import { lineChart, rates } from "./chart.js";

const SYSTEM_APPS = ["system", "observer"];

export function openProcess(pid, ctx) {
  const w = openWindow({ id: "process:" + pid, title: pid, link: "/" + conn.node + "/process/" + pid,
    attrs: { "data-window": "process", "data-pid": pid }, width: 640, height: 560,
    onClose: () => { sub.close(); if (isub) isub.close(); clearInterval(stackTimer); } });
  if (w.existing) return w;
  let info = null, tab = "overview", isub = null, stackTimer = null, dead = false, moreSig = "";
  const chart = lineChart({ title: "Messages / s", series: ["in", "out"], height: 70 });
  const tr = rates();
  const actions = h("div", { class: "toolbar" });
  const tabs = h("div", { class: "tabs" }, ["overview", "relations", "inspect", "stack"].map((t) =>
    h("button", { "data-tab": t, class: t === tab ? "active" : "", onclick: () => show(t) }, t)));
  const panes = {
    overview: h("div", { "data-pane": "overview" }),
    relations: h("div", { "data-pane": "relations", hidden: true }),
    inspect: h("div", { "data-pane": "inspect", hidden: true }),
    stack: h("div", { "data-pane": "stack", hidden: true }),
  };
  const stats = h("div", { class: "stats" });
  const queues = h("div");
  const more = h("div");
  panes.overview.append(stats, chart.el, queues, more);
  replace(w.body, actions, tabs, Object.values(panes));

  // inspect tab
  const inspOut = h("div", { "data-testid": "process-inspect" }, h("div", { class: "empty" }, "loading…"));
  const auto = h("input", { type: "checkbox", checked: true, onchange: () => setAuto(auto.checked) });
  panes.inspect.append(h("div", { class: "toolbar" },
    h("label", null, auto, "auto-refresh"),
    h("button", { class: "btn small", onclick: async () => { if (!dead) renderInspect(await query("inspect", { pid })); } }, "Refresh")),
  inspOut);
  function renderInspect(m) {
    if (m === null || m === undefined) return;
    if (m.State === "terminated" && Object.keys(m).length === 1) {
      replace(inspOut, h("div", { class: "empty" }, "the process has terminated"));
      return;
    }
    const keys = typeof m === "object" ? Object.keys(m) : [];
    if (!keys.length) {
      replace(inspOut, h("div", { class: "empty" },
        "This process has no inspect output. Give its behavior a handle_inspect callback returning a map of figures."));
      return;
    }
    replace(inspOut, h("div", { class: "kv mono" }, keys.sort().flatMap((k) => [h("span", null, k),
      h("span", null, typeof m[k] === "object" ? JSON.stringify(m[k]) : String(m[k]))])));
  }
  function setAuto(on) {
    if (isub) { isub.close(); isub = null; }
    if (on && !dead) isub = subscribe("process_inspect", { pid }, renderInspect);
  }

  // stack tab
  const stackOut = h("pre", { class: "stack", "data-testid": "process-stack" }, "");
  panes.stack.append(h("div", { class: "toolbar" },
    h("button", { class: "btn small", onclick: refreshStack }, "Refresh"),
    h("span", { class: "dim" }, "where the process is now (halo can always show it)")), stackOut);
  async function refreshStack() {
    if (dead) return;
    const t = await query("stack", { pid });
    if (typeof t === "string") stackOut.textContent = t;
    else if (t) stackOut.textContent = t.Stack || t.stack || JSON.stringify(t, null, 2);
  }

  function show(t) {
    tab = t;
    for (const b of tabs.children) b.classList.toggle("active", b.dataset.tab === t);
    for (const k in panes) panes[k].hidden = k !== t;
    if (t === "inspect" && !isub && auto.checked) setAuto(true);
    if (t !== "inspect" && isub) { isub.close(); isub = null; }
    if (t === "stack" && !stackOut.textContent) {
      if (info && info.Stack) stackOut.textContent = info.Stack; else refreshStack();
    }
  }

  function renderActions() {
    const sys = !!info && (info.Kind === "system" || SYSTEM_APPS.includes(info.Application)
      || /^(observer|halo_|mcp)/.test(info.Name || ""));
    const off = !info || !conn.actions || dead || sys;
    const why = !conn.actions ? "actions are off (observer started without a token)" :
      sys ? "a system or observer process" : "";
    replace(actions,
      h("span", { class: "chip " + stateClass(info && info.State), "data-testid": "process-state" }, info ? info.State : "…"),
      info && info.Name ? h("b", null, info.Name) : null,
      h("span", { class: "dim" }, info ? info.Behavior : ""),
      h("span", { class: "spacer" }),
      h("button", { class: "btn small", disabled: off, title: why, "data-action": "send", onclick: doSend }, "Send…"),
      h("button", { class: "btn small", disabled: off, title: why, "data-action": "exit", onclick: doExit }, "Exit…"),
      h("button", { class: "btn small danger", disabled: off, title: why, "data-action": "kill", onclick: () =>
        act("kill", { pid }, { confirm: "Kill " + pid + "?", detail: (info && info.Name || "") + " " +
          (info && info.Behavior || "") + " — it ends at once, without terminate.", ok: "Kill" }) }, "Kill"));
  }
  async function doSend() {
    const text = await modal({ title: "Send a message to " + pid, text: "JSON value", ok: "Next",
      input: { multiline: true, value: '"hello"' } });
    if (text === null) return;
    let message;
    try { message = JSON.parse(text); } catch (err) { toast("not JSON: " + err.message, true); return; }
    act("send", { pid, message }, { confirm: "Send to " + pid + "?", detail: text, ok: "Send" });
  }
  async function doExit() {
    const reason = await modal({ title: "Send exit to " + pid, text: "reason", ok: "Next", input: { value: "normal" } });
    if (reason === null) return;
    act("exit", { pid, reason }, { confirm: "Exit " + pid + " with reason " + reason + "?", ok: "Send exit" });
  }

  // The process's log level: a select while actions are on, else the text.
  const lvl = h("select", { "data-testid": "process-log-level", onchange: async () => {
    const want = lvl.value;
    const ok = await act("set_log_level", { pid, level: want }, { confirm: "Set the log level of " + pid + " to " + want + "?" });
    if (!ok && info) lvl.value = info.LogLevel;
  } }, ["trace", "debug", "info", "warning", "error", "panic", "disabled"].map((l) => h("option", { value: l }, l)));
  function levelSelect(v) {
    if (!conn.actions || dead) return v || "–";
    if (document.activeElement !== lvl) lvl.value = v || "info";
    return lvl;
  }

  const pidLink = (p) => h("a", { onclick: () => ctx.openProcess(p) }, p);
  function list(title, xs, link) {
    if (!xs || !xs.length) return null;
    return [h("h3", null, title), h("div", { class: "toolbar mono" },
      xs.map((x) => link && typeof x === "string" && x.startsWith("<") ? pidLink(x) :
        h("span", { class: "chip" }, typeof x === "object" ? JSON.stringify(x) : String(x))))];
  }

  function render(d, p) {
    if (d.State === "terminated" && !d.PID) {
      dead = true;
      w.el.classList.add("terminated");
      w.el.dataset.state = "terminated";
      w.setTitle(pid + " — terminated");
      if (info) info.State = "terminated";
      setAuto(false);
      renderActions();
      return;
    }
    info = d;
    w.el.dataset.state = d.State;
    w.setTitle((d.Name ? d.Name + " " : "") + pid);
    renderActions();
    const r = tr([d.MessagesIn, d.MessagesOut], p.time || Date.now());
    if (r[0] !== null) chart.push(r);
    const qs = d.MailboxQueues || {};
    const mb = Math.max(d.MessagesMailbox ?? 0, d.MailboxSize ?? 0, (qs.Main || 0) + (qs.System || 0) + (qs.Urgent || 0) + (qs.Log || 0));
    replace(stats, [
      ["Msgs in", num(d.MessagesIn)], ["Msgs out", num(d.MessagesOut)],
      ["Mailbox", h("span", { class: mbClass(mb) }, num(mb))],
      ["Latency", h("span", { class: latClass(d.MailboxLatency) }, ns(d.MailboxLatency))],
      ["Wakeups", num(d.Wakeups)], ["Uptime", secs(d.Uptime)], ["Running", ns(d.RunningTime)],
      ["Init", ns(d.InitTime)], ["In state", ns(d.StateTime)], ["Memory", bytes(d.MemoryAllocated)],
      ["Drain", num(d.Drain)],
    ].map(([k, v]) => h("div", { class: "stat" }, h("div", { class: "v" }, v), h("div", { class: "k" }, k))));
    const q = d.MailboxQueues || {};
    replace(queues, h("h3", null, "Mailbox queues"), h("table", { class: "t" },
      h("thead", null, h("tr", null, h("th", null, "queue"), h("th", { class: "n" }, "size"), h("th", { class: "n" }, "latency"))),
      h("tbody", null, ["Main", "System", "Urgent", "Log"].map((k) => h("tr", null, h("td", null, k),
        h("td", { class: "n " + mbClass(q[k]) }, num(q[k] ?? 0)),
        h("td", { class: "n " + latClass(q["Latency" + k]) }, ns(q["Latency" + k])))))));
    const env = d.Env || {};
    const sig = JSON.stringify([d.Parent, d.Leader, d.Application, d.Kind, d.LogLevel, d.MessagePriority, d.TrapExit, env, conn.actions]);
    if (sig !== moreSig) { moreSig = sig; replace(more,
      h("h3", null, "Process"),
      h("div", { class: "kv" },
        h("span", null, "parent"), d.Parent ? pidLink(d.Parent) : h("span", null, "–"),
        h("span", null, "leader"), d.Leader ? pidLink(d.Leader) : h("span", null, "–"),
        h("span", null, "application"), h("span", null, d.Application || "–"),
        h("span", null, "kind"), h("span", null, d.Kind || "–"),
        h("span", null, "log level"), h("span", null, levelSelect(d.LogLevel)),
        h("span", null, "priority"), h("span", null, d.MessagePriority || "–"),
        h("span", null, "trap exit"), h("span", null, String(!!d.TrapExit))),
      h("h3", { style: { marginTop: "8px" } }, "Environment"),
      Object.keys(env).length ? h("div", { class: "kv mono" }, Object.keys(env).sort().flatMap((k) =>
        [h("span", null, k), h("span", null, typeof env[k] === "object" ? JSON.stringify(env[k]) : String(env[k]))]))
        : h("div", { class: "empty" }, "no environment")); }
    replace(panes.relations,
      list("Links (PID)", d.LinksPID, true), list("Links (process id)", d.LinksProcessID),
      list("Links (alias)", d.LinksAlias), list("Links (event)", d.LinksEvent), list("Links (node)", d.LinksNode),
      list("Monitors (PID)", d.MonitorsPID, true), list("Monitors (process id)", d.MonitorsProcessID),
      list("Monitors (alias)", d.MonitorsAlias), list("Monitors (event)", d.MonitorsEvent),
      list("Monitors (node)", d.MonitorsNode), list("Aliases", d.Aliases), list("Events produced", d.Events),
      list("Meta processes", d.Metas),
      [d.LinksPID, d.LinksProcessID, d.LinksAlias, d.LinksEvent, d.LinksNode, d.MonitorsPID, d.MonitorsProcessID,
        d.MonitorsAlias, d.MonitorsEvent, d.MonitorsNode, d.Aliases, d.Events, d.Metas].some((x) => x && x.length)
        ? null : h("div", { class: "empty" }, "no links, monitors, aliases or events"));
    if (d.Stack && tab === "stack" && stackAuto.checked) stackOut.textContent = d.Stack;
    else if (d.Stack && !stackOut.textContent) stackOut.textContent = d.Stack;
  }
  const stackAuto = h("input", { type: "checkbox", checked: true });
  panes.stack.firstChild.append(h("label", { class: "dim" }, stackAuto, "follow"));

  renderActions();
  const sub = subscribe("process_info", { pid }, render, (err) => {
    toast(pid + ": " + err.message, true);
  });
  return w;
}
