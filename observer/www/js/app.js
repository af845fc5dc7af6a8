// Entry: header, node switcher, hash routing (#/<node>/<page>[/<arg>]) and page mounting.

import { h, replace, toast } from "./dom.js";
import { conn, on, onError, start, switchNode } from "./data.js";
import { closeAllWindows } from "./ui.js";
import { openProcess } from "./procwin.js";
import { openPeer } from "./peerwin.js";
import * as info from "./pages/info.js";
import * as applications from "./pages/applications.js";
import * as processes from "./pages/processes.js";
import * as events from "./pages/events.js";
import * as network from "./pages/network.js";
import * as log from "./pages/log.js";
import * as profiler from "./pages/profiler.js";

const enc = (s) => encodeURIComponent(s).replace(/%40/g, "@");
const PAGES = { info, applications, processes, events, network, log, profiler };
const pageEl = document.getElementById("page");
let mounted = null;   // {page, node, unmount}
let wanted = parseHash();

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return { node: parts[0] || null, page: parts[1] || "info", arg: parts.slice(2).join("/") || null };
}

export function go(page, arg) {
  const node = conn.node || wanted.node || "";
  const target = "#/" + enc(node) + "/" + page + (arg ? "/" + enc(arg) : "");
  if (location.hash !== target) location.hash = target;
  else route();
}

export const ctx = {
  go,
  openProcess: (pid) => openProcess(pid, ctx),
  openPeer: (node) => openPeer(node, ctx),
  switchTo: (node) => doSwitch(node),
  params: {},
};

let switching = null;
async function doSwitch(node) {
  if (!node || node === conn.node || node === switching) return;
  switching = node;
  try {
    await switchNode(node);
  } catch (err) {
    switching = null;
    toast("cannot switch to " + node + ": " + err.message, true);
    if (conn.node) history.replaceState(null, "", "#/" + enc(conn.node) + "/" + wanted.page);
  }
}

function route() {
  wanted = parseHash();
  let page = wanted.page;
  let openPid = null, openPeerNode = null;
  if (page === "process") { page = "processes"; openPid = wanted.arg; }
  if (page === "peer") { page = "network"; openPeerNode = wanted.arg; }
  if (!PAGES[page]) page = "info";
  if (!conn.session) return;
  if (wanted.node && wanted.node === switching) return;
  if (wanted.node && wanted.node !== conn.node) { doSwitch(wanted.node); return; }
  if (!wanted.node) {
    history.replaceState(null, "", "#/" + enc(conn.node) + "/" + page);
  }
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === page);
    a.href = "#/" + enc(conn.node) + "/" + a.dataset.page;
  }
  const pageArg = openPid || openPeerNode ? null : wanted.arg;
  if (!mounted || mounted.page !== page || mounted.node !== conn.node || (pageArg && mounted.arg !== pageArg)) {
    if (mounted) mounted.unmount();
    const root = h("div", { class: "page", "data-page-root": page });
    replace(pageEl, root);
    const un = PAGES[page].mount(root, ctx, pageArg);
    mounted = { page, node: conn.node, arg: pageArg, unmount: un || (() => {}) };
  }
  if (openPid) ctx.openProcess(openPid);
  if (openPeerNode) ctx.openPeer(openPeerNode);
}

function renderNodes() {
  const q = document.getElementById("node-search").value.trim().toLowerCase();
  const list = [...conn.nodes];
  if (conn.node && !list.some((n) => n.name === conn.node)) list.unshift({ name: conn.node, connected: true });
  list.sort((a, b) => (b.self - a.self) || a.name.localeCompare(b.name));
  replace(document.getElementById("node-list"), list.filter((n) => !q || n.name.toLowerCase().includes(q)).map((n) =>
    h("li", { "data-node-option": n.name, "data-connected": n.connected ? "true" : "false",
      class: n.name === conn.node ? "current" : "", title: n.connected ? "connected" : "not connected",
      onclick: () => doSwitch(n.name) },
    h("span", { class: "dot" + (n.connected ? " up" : "") }), n.name, n.self ? h("span", { class: "dim" }, " (observer)") : null)));
}

function renderStatus() {
  const live = document.getElementById("live");
  live.textContent = conn.live ? "Live" : "Disconnected";
  live.className = "live " + (conn.live ? "on" : "off");
  document.getElementById("observed-node").textContent = conn.node || "…";
  document.getElementById("observer-self").textContent = conn.self && conn.self !== conn.node ? "via " + conn.self : "";
  const ne = document.getElementById("node-error");
  ne.hidden = !conn.error;
  pageEl.classList.toggle("stale", !!conn.error);
  ne.textContent = conn.error ? "read failed" : "";
  ne.title = conn.error || "";
  document.getElementById("sse-rate").textContent = conn.rate + " msg/s";
  const a = document.getElementById("actions-state");
  a.textContent = conn.actions ? "actions on" : "read-only";
  a.className = "chip " + (conn.actions ? "warn" : "");
  a.title = conn.actions ? "mutating actions need the observer token" : "started without a token: actions are off";
  document.getElementById("version").textContent = conn.version ? "halo " + conn.version : "";
}

on("connected", ({ changed }) => {
  if (changed) {
    closeAllWindows();
    if (mounted) { mounted.unmount(); mounted = null; }
  }
  const requested = switching;
  switching = null;
  const w = parseHash();
  // A new session (first load, observer restarted) starts on the observer's node: go back to the URL's.
  if (w.node && w.node !== conn.node && requested !== conn.node) { doSwitch(w.node).then(route); return; }
  if (w.node !== conn.node) {
    const page = w.page === "process" ? "processes" : w.page === "peer" ? "network" : w.page;
    history.replaceState(null, "", "#/" + enc(conn.node) + "/" + page);
  }
  route();
});
on("cluster", renderNodes);
on("status", renderStatus);
onError((err) => toast(err.message, true));
addEventListener("hashchange", route);
document.getElementById("node-search").addEventListener("input", renderNodes);
document.getElementById("theme-toggle").addEventListener("click", () => {
  const root = document.documentElement;
  root.dataset.theme = root.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem("halo-observer-theme", root.dataset.theme);
});
document.documentElement.dataset.theme = localStorage.getItem("halo-observer-theme") || "dark";
setInterval(() => {
  document.getElementById("clock").textContent = new Date().toISOString().slice(11, 19) + " UTC";
}, 1000);
renderStatus();
start();
