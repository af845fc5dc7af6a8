// The supervision tree window of an application: heatmap modes mailbox / latency / utilization /
// throughput / state, folded sibling groups (+N pills leading to the filtered process table).

import { h, replace, num, ns } from "./dom.js";
import { conn, subscribe } from "./data.js";
import { openWindow } from "./ui.js";

const MODES = ["mailbox", "latency", "utilization", "throughput", "state", "kind"];
const STATE_COLORS = { sleep: "#2d4f3a", running: "#2f7d4a", init: "#55602a", "wait response": "#7a6420",
  zombee: "#8a2520", terminated: "#5a2a2a" };
const KIND_COLORS = { supervisor: "#2d4a6b", worker: "#35404d", system: "#4a3a5a", pool: "#3d5a4a" };

// green -> yellow -> red for 0..1
function heat(x) {
  x = Math.max(0, Math.min(1, x));
  const hue = 130 - 130 * x;
  return `hsl(${hue}, 55%, ${24 + x * 10}%)`;
}

export function openTree(app, ctx) {
  const w = openWindow({ id: "tree:" + app, title: "Supervision tree — " + app, link: "/" + conn.node + "/applications",
    attrs: { "data-window": "tree", "data-app": app }, width: 700, height: 560, onClose: () => sub.close() });
  if (w.existing) return w;
  let mode = "mailbox", last = null, prev = new Map(), prevT = 0, curT = 0;
  const sel = h("select", { "data-testid": "heatmap-mode", onchange: () => { mode = sel.value; draw(); } },
    MODES.map((m) => h("option", { value: m }, m)));
  const info = h("span", { class: "dim" });
  const legend = h("div", { class: "heat-legend" });
  const tree = h("div", { class: "tree", "data-testid": "app-tree" }, h("div", { class: "empty" }, "loading…"));
  replace(w.body, h("div", { class: "toolbar" }, h("label", null, "heatmap", sel), legend, h("span", { class: "spacer" }), info), tree);

  function value(n) {
    const p = prev.get(n.PID), dt = (curT - prevT) / 1000;
    switch (mode) {
      case "mailbox": return { x: Math.min(1, Math.log10(1 + (n.MessagesMailbox || 0)) / 3), t: num(n.MessagesMailbox || 0) };
      case "latency": {
        const l = n.MailboxLatency;
        if (typeof l !== "number" || l < 0) return { x: 0, t: "–" };
        return { x: Math.min(1, Math.log10(1 + l / 1e5) / 3), t: ns(l) };   // 0.1 ms .. 100 ms
      }
      case "utilization": {
        if (!p || !(dt > 0)) return { x: 0, t: "…" };
        const u = Math.max(0, (n.RunningTime - p.RunningTime) / (dt * 1e9));
        return { x: Math.min(1, Math.log10(1 + u * 1000) / 3), t: (u * 100).toFixed(1) + "%" };   // 0.1% .. 100%
      }
      case "throughput": {
        if (!p || !(dt > 0)) return { x: 0, t: "…" };
        const r = Math.max(0, (n.MessagesIn - p.MessagesIn) / dt);
        return { x: Math.min(1, Math.log10(1 + r) / 4), t: num(r) + "/s" };
      }
      case "state": return { c: STATE_COLORS[n.State] || "#35404d", t: n.State };
      default: return { c: KIND_COLORS[n.Kind] || "#35404d", t: n.Kind || "" };
    }
  }

  function node(n) {
    const v = value(n);
    const kids = n.Children || [];
    const label = h("span", { class: "tnode", "data-tree-pid": n.PID || undefined, "data-state": n.State,
      style: { background: v.c || heat(v.x) }, title: `${n.PID} ${n.Name || ""} ${n.Behavior || ""} (${n.State})`,
      onclick: () => n.PID && ctx.openProcess(n.PID) },
    h("span", { class: "nm" }, n.Name || n.Behavior || n.PID), h("span", { class: "fig mono" }, v.t),
    n.Kind === "supervisor" || n.Kind === "application" ? h("span", { class: "fig" }, n.Kind === "supervisor" ? "sup" : "app") : null);
    const items = kids.map((c) => node(c));
    if (n.Folded) {
      const beh = kids.length ? kids[kids.length - 1].Behavior : "";
      items.push(h("li", null, h("span", { class: "pill", "data-folded": n.Folded,
        title: "siblings folded: open them in the process table",
        onclick: () => ctx.go("processes", "application=" + encodeURIComponent(app) + "&behavior=" + encodeURIComponent(beh)) }, "+" + num(n.Folded) + " more" + (beh ? " " + beh : ""))));
    }
    return h("li", null, label, items.length ? h("ul", null, items) : null);
  }

  function draw() {
    if (mode === "state" || mode === "kind") {
      const m = mode === "state" ? STATE_COLORS : KIND_COLORS;
      replace(legend, Object.keys(m).map((k) => [h("span", { style: { background: m[k] } }), k]));
    } else {
      replace(legend, "low", [0, 0.25, 0.5, 0.75, 1].map((x) => h("span", { style: { background: heat(x) } })), "high");
    }
    if (!last) return;
    if (!last.Root) { replace(tree, h("div", { class: "empty" }, "no supervision tree (application not running?)")); return; }
    replace(tree, h("ul", null, node(last.Root)));
  }

  function count(n) { return 1 + (n.Folded || 0) + (n.Children || []).reduce((s, c) => s + count(c), 0); }
  function remember(n, m) { m.set(n.PID, n); (n.Children || []).forEach((c) => remember(c, m)); }

  const sub = subscribe("application_tree", { app, limit: 1000 }, (d, p) => {
    if (last && last.Root) { prev = new Map(); remember(last.Root, prev); prevT = curT; }
    last = d;
    curT = p.time || Date.now();
    info.textContent = d.Root ? num(count(d.Root)) + " processes" + (d.Truncated ? ", truncated " + d.Truncated : "") : "";
    draw();
  });
  draw();
  return w;
}
