// Network: mode, acceptors and flags, registrar, peers with traffic charts, and the topology graph.

import { h, replace, num, bytes, secs } from "../dom.js";
import { conn, subscribe } from "../data.js";
import { lineChart } from "../chart.js";

export function mount(root, ctx) {
  const overview = h("div");
  const acceptors = h("div");
  const tbody = h("tbody");
  const msgChart = lineChart({ title: "Messages / s (all peers)", series: ["in", "out"], height: 60 });
  const byteChart = lineChart({ title: "Bytes / s (all peers)", series: ["in", "out"], height: 60, fmt: bytes });
  const compChart = lineChart({ title: "Compressed / fragmented messages / s", series: ["compressed", "fragments sent", "fragments recv"], height: 60 });
  const topo = h("div", null, h("div", { class: "empty" }, "loading…"));
  replace(root,
    h("div", { class: "toolbar" }, h("h2", null, "Network")),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h3", null, "Node"), overview),
      h("div", { class: "card", style: { gridColumn: "span 2" } }, h("h3", null, "Acceptors"), acceptors)),
    h("div", { class: "grid" }, h("div", { class: "card" }, msgChart.el), h("div", { class: "card" }, byteChart.el),
      h("div", { class: "card" }, compChart.el)),
    h("div", { class: "card" }, h("h3", null, "Connected nodes"), h("div", { class: "scroll" },
      h("table", { class: "t", "data-testid": "peer-table" }, h("thead", null, h("tr", null,
        ["Node", "Direction", "Uptime", "Msgs in", "Msgs out", "Bytes in", "Bytes out", "Compressed", "Fragments",
          "Pool", "Reconnections"].map((c, i) => h("th", { class: i > 1 ? "n" : "" }, c)))), tbody))),
    h("div", { class: "card" }, h("h3", null, "Topology (the cluster mesh as the observer sees it)"), topo));

  const subs = [];
  subs.push(subscribe("network_info", {}, (d) => {
    const reg = d.Registrar || {};
    replace(overview, h("div", { class: "kv" },
      h("span", null, "mode"), h("span", null, String(d.Mode ?? "–")),
      h("span", null, "registrar"), h("span", null, d.RegistrarServer || reg.Server ||
        (d.CustomRegistrar === false || !d.CustomRegistrar ? "embedded" : String(d.CustomRegistrar))),
      reg.Version || d.RegistrarVersion ? [h("span", null, "registrar version"), h("span", null, reg.Version || d.RegistrarVersion)] : null,
      h("span", null, "handshake / proto"), h("span", null, (d.HandshakeVersion || "–") + " / " + (d.ProtoVersion || "–")),
      h("span", null, "max message size"), h("span", null, d.MaxMessageSize ? bytes(d.MaxMessageSize) : "unlimited"),
      h("span", null, "connections up / lost"), h("span", null, num(d.ConnectionsEstablished) + " / " + num(d.ConnectionsLost)),
      h("span", null, "handshake / protocol errors"), h("span", { class: d.HandshakeErrors || d.ProtocolErrors ? "red" : "" },
        num(d.HandshakeErrors) + " / " + num(d.ProtocolErrors)),
      h("span", null, "refused / pending dropped"), h("span", null, num(d.MessagesRefused) + " / " + num(d.PendingDropped)),
      h("span", null, "routes"), h("span", null, num((d.Routes || []).length) + " static, " + num((d.ProxyRoutes || []).length) + " proxy")));
    const acc = d.Acceptors || [];
    replace(acceptors, acc.length ? h("table", { class: "t" },
      h("thead", null, h("tr", null, ["address", "TLS", "versions", "flags"].map((c) => h("th", null, c)))),
      h("tbody", null, acc.map((a) => {
        const f = a.Flags || {};
        return h("tr", null, h("td", { class: "mono" }, (a.Host || a.Interface || "") + ":" + (a.Port ?? "")),
          h("td", null, a.TLS ? "TLS" : "plain"),
          h("td", null, (a.HandshakeVersion || d.HandshakeVersion || "") + " " + (a.ProtoVersion || d.ProtoVersion || "")),
          h("td", { style: { whiteSpace: "normal", maxWidth: "none" } }, Object.keys(f).sort().map((k) =>
            h("span", { class: "chip " + (f[k] ? "ok" : ""), title: k + ": " + (f[k] ? "on" : "off"),
              style: { marginRight: "3px", display: "inline-block" } }, k.replace(/^Enable(.)/, "$1")))));
      }))) : h("div", { class: "empty" }, "no acceptor (this node does not listen)"));
  }));

  let prev = null, prevT = 0;
  subs.push(subscribe("connection_list", {}, (d, p) => {
    const t = p.time || Date.now();
    const sum = (k) => d.Nodes.reduce((s, n) => s + (n[k] || 0), 0);
    const cur = ["MessagesIn", "MessagesOut", "BytesIn", "BytesOut", "CompressedSent", "FragmentsSent", "FragmentsReceived"].map(sum);
    if (prev && t > prevT) {
      const r = cur.map((v, i) => Math.max(0, (v - prev[i]) * 1000 / (t - prevT)));
      msgChart.push([r[0], r[1]]); byteChart.push([r[2], r[3]]); compChart.push([r[4], r[5], r[6]]);
    }
    prev = cur; prevT = t;
    const rows = d.Nodes.slice().sort((a, b) => String(a.Name).localeCompare(String(b.Name)));
    tbody.replaceChildren(...rows.map((n) => h("tr", { "data-peer": n.Name, class: "click", onclick: () => ctx.openPeer(n.Name) },
      h("td", null, h("b", null, n.Name)), h("td", { class: "dim" }, n.Initiated === undefined ? "" : n.Initiated ? "outgoing" : "incoming"),
      h("td", { class: "n" }, secs(n.Uptime)), h("td", { class: "n" }, num(n.MessagesIn)), h("td", { class: "n" }, num(n.MessagesOut)),
      h("td", { class: "n" }, bytes(n.BytesIn)), h("td", { class: "n" }, bytes(n.BytesOut)),
      h("td", { class: "n" }, num(n.CompressedSent)), h("td", { class: "n" }, num((n.FragmentsSent || 0) + (n.FragmentsReceived || 0))),
      h("td", { class: "n" }, n.PoolSize ? num(n.PoolLen ?? n.PoolSize) + "/" + num(n.PoolSize) : "–"),
      h("td", { class: "n" + (n.Reconnections ? " lat-orange" : "") }, num(n.Reconnections || 0)))));
    if (!rows.length) tbody.replaceChildren(h("tr", null, h("td", { colspan: 11, class: "empty" }, "no connected node")));
  }));

  subs.push(subscribe("topology", {}, (d) => replace(topo, topology(d, ctx))));
  return () => subs.forEach((s) => s.close());
}

// Nodes on a circle, one line per link; the observed node filled, the observer ringed orange.
export function topology(d, ctx) {
  const W = 720, H = 360, cx = W / 2, cy = H / 2, R = Math.min(W, H) / 2 - 50;
  const names = [...new Set([...(d.Nodes || []), ...(d.Links || []).flatMap((l) => [l.from, l.to])])].sort();
  const pos = new Map(names.map((n, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, names.length);
    return [n, names.length === 1 ? [cx, cy] : [cx + R * Math.cos(a), cy + R * Math.sin(a)]];
  }));
  const seen = new Set();
  const links = [];
  for (const l of d.Links || []) {
    const k = [l.from, l.to].sort().join("|");
    if (seen.has(k) || !pos.has(l.from) || !pos.has(l.to)) continue;
    seen.add(k);
    const [x1, y1] = pos.get(l.from), [x2, y2] = pos.get(l.to);
    links.push(h("svg:line", { x1, y1, x2, y2, "data-topology-link": k }, h("svg:title", null, l.from + " ↔ " + l.to)));
  }
  const nodes = names.map((n) => {
    const [x, y] = pos.get(n);
    const deg = [...seen].filter((k) => k.split("|").includes(n)).length;
    return h("svg:g", { "data-topology-node": n, class: (n === conn.node ? "self " : "") + (n === conn.self ? "observer" : ""),
      transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`, onclick: () => ctx.switchTo(n) },
    h("svg:title", null, `${n}: ${deg} link(s)${n === conn.node ? " (observed)" : " — click to observe"}`),
    h("svg:circle", { r: 14 }), h("svg:text", { y: 30 }, n));
  });
  const missing = names.length * (names.length - 1) / 2 - seen.size;
  return h("div", null,
    h("svg:svg", { class: "topo", viewBox: `0 0 ${W} ${H}`, "data-testid": "topology" }, links, nodes),
    h("div", { class: "dim" }, `${names.length} nodes, ${seen.size} links` +
      (missing > 0 && names.length > 1 ? ` — ${missing} pair(s) not connected (full mesh would be ${names.length * (names.length - 1) / 2})` : " — full mesh")));
}
