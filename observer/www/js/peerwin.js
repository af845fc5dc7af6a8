// The peer window: everything the observed node knows about one connection, with traffic charts.

import { h, replace, num, bytes, secs, kvGrid } from "./dom.js";
import { conn, subscribe } from "./data.js";
import { openWindow } from "./ui.js";
import { lineChart, rates } from "./chart.js";

export function openPeer(node, ctx) {
  const w = openWindow({ id: "peer:" + node, title: "Peer " + node, link: "/" + conn.node + "/peer/" + node,
    attrs: { "data-window": "peer", "data-peer": node }, width: 620, height: 560, onClose: () => sub.close() });
  if (w.existing) return w;
  const msg = lineChart({ title: "Messages / s", series: ["in", "out"], height: 60 });
  const byt = lineChart({ title: "Bytes / s", series: ["in", "out"], height: 60, fmt: bytes });
  const comp = lineChart({ title: "Compressed / fragments per s", series: ["compressed", "frag sent", "frag recv"], height: 60 });
  const r = rates();
  const head = h("div", { class: "stats" });
  const all = h("div");
  replace(w.body, h("div", { class: "toolbar" },
    h("button", { class: "btn small", onclick: () => ctx.switchTo(node) }, "Switch observer to this node")),
  head, msg.el, byt.el, comp.el, h("h3", null, "All figures"), all);
  const sub = subscribe("connection_info", { node }, (d, p) => {
    if (d.Disconnected) { w.el.classList.add("terminated"); w.setTitle("Peer " + node + " — disconnected"); return; }
    w.el.classList.remove("terminated");
    const x = r([d.MessagesIn, d.MessagesOut, d.BytesIn, d.BytesOut, d.CompressedSent, d.FragmentsSent, d.FragmentsReceived],
      p.time || Date.now());
    if (x[0] !== null) { msg.push([x[0], x[1]]); byt.push([x[2], x[3]]); comp.push([x[4], x[5], x[6]]); }
    const ratio = d.CompressedBytesSent ? (d.CompressedOrigBytesSent || 0) / d.CompressedBytesSent : null;
    replace(head, [["uptime", secs(d.Uptime)], ["msgs in", num(d.MessagesIn)], ["msgs out", num(d.MessagesOut)],
      ["bytes in", bytes(d.BytesIn)], ["bytes out", bytes(d.BytesOut)], ["reconnections", num(d.Reconnections || 0)],
      ["compression", ratio ? ratio.toFixed(2) + "×" : "–"],
      ["bytes saved", d.CompressedOrigBytesSent ? bytes(d.CompressedOrigBytesSent - d.CompressedBytesSent) : "–"]]
      .map(([k, v]) => h("div", { class: "stat" }, h("div", { class: "v" }, v), h("div", { class: "k" }, k))));
    replace(all, kvGrid(d));
  });
  return w;
}
