// Events: totals, a table of every event (producer, subscribers, publications, fan-out,
// utilization) and the live event window.

import { h, replace, num, clock, debounce } from "../dom.js";
import { conn, subscribe } from "../data.js";
import { openWindow } from "../ui.js";
import { lineChart, rates } from "../chart.js";

const UTIL = { idle: "dim", active: "st-running", "no subscribers": "lat-orange", "no_subscribers": "lat-orange",
  "on demand": "lat-warn", "on_demand": "lat-warn", overloaded: "lat-bad" };

export function mount(root, ctx) {
  let q = "", prev = new Map(), prevT = 0, last = null;
  const cards = h("div", { class: "stats" });
  const filter = h("input", { type: "search", placeholder: "event name contains…", "data-testid": "event-filter" });
  filter.addEventListener("input", debounce(() => { q = filter.value.trim().toLowerCase(); if (last) render(last); }, 200));
  const onlyNoSubs = h("input", { type: "checkbox", onchange: () => last && render(last) });
  const tbody = h("tbody");
  const cols = [["Name", "Event"], ["Producer", "Producer"], ["Subscribers", "Subs", "n"], ["Published", "Published", "n"],
    ["Rate", "Pub/s", "n"], ["LocalSent", "Local sent", "n"], ["RemoteSent", "Remote sent", "n"], ["Fanout", "Fan-out", "n"],
    ["Buffered", "Buffer", "n"], ["Notify", "Notify"], ["Utilization", "Utilization"]];
  replace(root,
    h("div", { class: "toolbar" }, h("h2", null, "Events"), h("span", { class: "spacer" }),
      h("label", null, onlyNoSubs, "without subscribers"), filter),
    h("div", { class: "card" }, cards),
    h("div", { class: "scroll" }, h("table", { class: "t", "data-testid": "event-table" },
      h("thead", null, h("tr", null, cols.map(([, l, c]) => h("th", { class: c || "" }, l)))), tbody)));

  function render(d) {
    const evs = d.Events.filter((e) => (!q || String(e.Name).toLowerCase().includes(q)) &&
      (!onlyNoSubs.checked || !e.Subscribers));
    const sum = (k) => d.Events.reduce((s, e) => s + (e[k] || 0), 0);
    replace(cards, [["events", d.Events.length], ["subscribers", sum("Subscribers")], ["published", sum("Published")],
      ["pub/s", sum("Rate")], ["local sent", sum("LocalSent")], ["remote sent", sum("RemoteSent")]].map(([k, v]) =>
      h("div", { class: "stat" }, h("div", { class: "v" }, num(v)), h("div", { class: "k" }, k))));
    tbody.replaceChildren(...evs.map((e) => h("tr", { "data-event": e.Name, class: "click",
      onclick: () => openEvent(e.Name, ctx) },
    h("td", null, h("b", null, e.Name)),
    h("td", { class: "mono" }, e.Producer ? h("a", { onclick: (ev) => { ev.stopPropagation(); ctx.openProcess(e.Producer); } }, e.Producer) : "–"),
    h("td", { class: "n" + (e.Subscribers ? "" : " lat-orange"), "data-col": "subscribers" }, String(e.Subscribers || 0)),
    h("td", { class: "n" }, num(e.Published)), h("td", { class: "n" }, e.Rate === undefined ? "…" : num(e.Rate)),
    h("td", { class: "n" }, num(e.LocalSent)), h("td", { class: "n" }, num(e.RemoteSent)),
    h("td", { class: "n" }, e.Fanout ? e.Fanout.toFixed(1) : "–"),
    h("td", { class: "n" }, num(e.Buffered)), h("td", null, e.Notify ? "yes" : "no"),
    h("td", { class: UTIL[e.Utilization] || "" }, String(e.Utilization).replace("_", " ")))));
    if (!evs.length) tbody.replaceChildren(h("tr", null, h("td", { colspan: cols.length, class: "empty" }, "no events")));
  }

  const sub = subscribe("event_list", { limit: 500 }, (d, p) => {
    const t = p.time || Date.now();
    for (const e of d.Events) {
      const was = prev.get(e.Name);
      if (was !== undefined && t > prevT) e.Rate = Math.max(0, (e.Published - was) * 1000 / (t - prevT));
    }
    prev = new Map(d.Events.map((e) => [e.Name, e.Published]));
    prevT = t;
    last = d;
    render(d);
  });
  return () => sub.close();
}

export function openEvent(name, ctx) {
  const w = openWindow({ id: "event:" + name, title: "Event " + name, attrs: { "data-window": "event", "data-event-name": name },
    link: "/" + conn.node + "/events", width: 600, height: 480, onClose: () => sub.close() });
  if (w.existing) return w;
  const chart = lineChart({ title: "Publications / s", series: ["published", "local sent", "remote sent"], height: 60 });
  const r = rates();
  const kv = h("div", { class: "kv" });
  const recent = h("div", { class: "mono", "data-testid": "event-recent" });
  replace(w.body, kv, chart.el, h("h3", null, "Recent publications (while watched)"), recent);
  const sub = subscribe("event_info", { name, watch: true }, (d, p) => {
    if (d.State === "terminated" || d.Closed) { w.el.classList.add("terminated"); w.setTitle("Event " + name + " — gone"); return; }
    const x = r([d.Published, d.LocalSent, d.RemoteSent], p.time || Date.now());
    if (x[0] !== null) chart.push(x);
    replace(kv,
      h("span", null, "producer"), d.Producer ? h("a", { class: "mono", onclick: () => ctx.openProcess(d.Producer) }, d.Producer) : h("span", null, "–"),
      h("span", null, "subscribers"), h("span", { "data-col": "subscribers" }, String(d.Subscribers || 0)),
      h("span", null, "published"), h("span", null, num(d.Published)),
      h("span", null, "local / remote sent"), h("span", null, num(d.LocalSent) + " / " + num(d.RemoteSent)),
      h("span", null, "utilization"), h("span", null, String(d.Utilization)),
      h("span", null, "notify / buffer"), h("span", null, (d.Notify ? "yes" : "no") + " / " + num(d.BufferSize || 0) +
        " (holding " + num(d.CurrentBuffer || 0) + ")"),
      h("span", null, "open"), h("span", null, d.Open ? "yes (anyone may publish)" : "no (producer only)"));
    const rec = (d.Recent || []).slice().reverse();
    replace(recent, rec.length ? rec.map((m) => h("div", { class: "logrow", style: { gridTemplateColumns: "90px 1fr" } },
      h("span", { class: "dim" }, typeof m.time === "number" ? clock(m.time) : String(m.time ?? m.Time ?? "")),
      h("span", { class: "msg" }, String(m.message ?? m.Message ?? JSON.stringify(m)))))
      : h("div", { class: "empty" }, d.Subscribers ? "waiting for a publication…" :
        "no publication seen yet (a Notify producer may publish only while it has subscribers)"));
  }, (err) => {
    w.el.classList.add("terminated");
    replace(kv, h("span", null, "error"), h("span", { class: "red" }, err.message));
  });
  return w;
}
