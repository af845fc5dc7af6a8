// The data layer: one SSE stream, subscriptions keyed by the server, POSTs to /api.
// Shape differences between the server and what the pages expect are fixed here (normalize).

import { pick } from "./dom.js";

const SNAPSHOT_TYPES = ["node_info", "process_list", "process_info", "process_inspect", "application_list",
  "application_tree", "event_list", "event_info", "network_info", "connection_list", "connection_info",
  "topology", "log", "heap"];

export const conn = {
  session: null, error: null, errorAt: 0, node: null, self: null, nodes: [], actions: false, version: "", live: false, rate: 0,
};

window.__observer = { snapshots: 0, lastPaint: {} };

const listeners = { connected: new Set(), cluster: new Set(), status: new Set() };
export function on(what, fn) { listeners[what].add(fn); return () => listeners[what].delete(fn); }
function emit(what, arg) { for (const fn of [...listeners[what]]) fn(arg); }

const subs = new Set();          // {type, args, cb, key, pending, dead}
const byKey = new Map();         // server key -> Set(sub)
const last = new Map();          // server key -> last payload (a snapshot may beat the subscribe answer)
let es = null, count = 0;

export function start() {
  es = new EventSource("/sse");
  es.addEventListener("connected", (e) => onConnected(JSON.parse(e.data)));
  es.addEventListener("cluster_update", (e) => {
    count++;
    conn.nodes = JSON.parse(e.data).nodes || [];
    emit("cluster", conn.nodes);
  });
  for (const t of SNAPSHOT_TYPES) es.addEventListener(t, (e) => onSnapshot(t, e.data));
  es.addEventListener("node_error", (e) => {
    count++;
    const d = JSON.parse(e.data);
    if (d.node && d.node !== conn.node) return;
    const set = d.key && byKey.get(d.key);
    if (set) {   // one view failed: tell its owner once per distinct reason
      for (const sub of set) {
        if (sub.lastError === d.error) continue;
        sub.lastError = d.error;
        if (sub.onError) sub.onError(new ApiError(d.error, 502));
      }
      return;
    }
    conn.error = d.error;
    conn.errorAt = Date.now();
    emit("status", conn);
  });
  es.onopen = () => setLive(true);
  es.onerror = () => setLive(false);
  setInterval(() => { conn.rate = count; count = 0; emit("status", conn); }, 1000);
}

function setLive(v) {
  if (conn.live === v) return;
  conn.live = v && !!conn.session;
  emit("status", conn);
}

function onConnected(d) {
  count++;
  const prev = conn.node;
  Object.assign(conn, { session: d.session, node: d.node, self: d.self, nodes: d.nodes || [],
    actions: !!d.actions, version: d.version || "" });
  conn.live = true;
  conn.error = null;
  byKey.clear();
  last.clear();
  for (const s of subs) { s.key = null; s.pending = false; }
  emit("connected", { changed: prev !== d.node, prev });
  emit("cluster", conn.nodes);
  emit("status", conn);
  for (const s of subs) if (!s.key && !s.pending) post(s);
}

function onSnapshot(type, raw) {
  count++;
  window.__observer.snapshots++;
  let p;
  try { p = JSON.parse(raw); } catch (err) { console.error("observer: bad snapshot", type, err); return; }
  if (p.node && conn.node && p.node !== conn.node) return;
  if (conn.error && Date.now() - conn.errorAt > 1500) { conn.error = null; emit("status", conn); }
  last.set(p.key, p);
  const set = byKey.get(p.key);
  if (set) for (const s of set) deliver(s, p);
}

// While a mouse button is down, snapshots wait (at most 1 s): a page that re-renders between
// mousedown and mouseup would otherwise swallow the click.
let held = 0;
const deferred = new Map();
addEventListener("pointerdown", () => { held = Date.now(); }, true);
for (const ev of ["pointerup", "pointercancel"]) addEventListener(ev, () => { held = 0; setTimeout(flush, 0); }, true);
function flush() {
  if (held && Date.now() - held < 1000) return;
  held = 0;
  const all = [...deferred];
  deferred.clear();
  for (const [s, p] of all) deliver(s, p);
}
setInterval(() => { if (held) flush(); }, 250);

function deliver(s, p) {
  if (s.dead) return;
  if (held && Date.now() - held < 1000) { deferred.set(s, p); return; }
  try {
    s.cb(normalize(s.type, p.data), p);
  } catch (err) {
    console.error("observer: rendering", s.type, err);
  }
}

async function post(s) {
  s.pending = true;
  const session = conn.session;
  let key;
  try {
    key = (await api("subscribe", { type: s.type, args: s.args || {} })).key;
  } catch (err) {
    s.pending = false;
    if (!s.dead && session === conn.session) s.onError ? s.onError(err) : notifyError(err);
    return;
  }
  s.pending = false;
  if (s.dead || session !== conn.session) {
    if (s.dead && session === conn.session && !byKey.has(key)) api("unsubscribe", { key }).catch(() => {});
    return;
  }
  s.key = key;
  if (!byKey.has(key)) byKey.set(key, new Set());
  byKey.get(key).add(s);
  const p = last.get(key);
  if (p) deliver(s, p);
}

// subscribe(type, args, cb) -> handle with .close(); cb(data, payload) on every snapshot.
export function subscribe(type, args, cb, onError) {
  const s = { type, args: clean(args), cb, onError, key: null, pending: false, dead: false };
  subs.add(s);
  if (conn.session) post(s);
  return { close: () => unsubscribe(s) };
}

function unsubscribe(s) {
  if (s.dead) return;
  s.dead = true;
  subs.delete(s);
  if (!s.key) return;
  const set = byKey.get(s.key);
  if (set) {
    set.delete(s);
    if (set.size === 0) {
      byKey.delete(s.key);
      last.delete(s.key);
      api("unsubscribe", { key: s.key }).catch(() => {});
    }
  }
}

function clean(args) {
  const o = {};
  for (const k in args || {}) {
    const v = args[k];
    if (v === undefined || v === null || v === "") continue;
    o[k] = v;
  }
  return o;
}

let errorSink = null;
export function onError(fn) { errorSink = fn; }
function notifyError(err) { if (errorSink) errorSink(err); }

export class ApiError extends Error {
  constructor(msg, status) { super(msg); this.status = status; }
}

// POST /api/<path>; resolves with data, rejects with ApiError (the server's text).
export async function api(path, body, headers) {
  const h = { "Content-Type": "application/json" };
  if (conn.session) h["X-Observer-Session"] = conn.session;
  Object.assign(h, headers || {});
  let res;
  try {
    res = await fetch("/api/" + path, { method: "POST", headers: h, body: JSON.stringify(body || {}) });
  } catch (err) {
    throw new ApiError("observer unreachable: " + err.message, 0);
  }
  let j = null;
  try { j = await res.json(); } catch (err) { j = null; }
  if (!res.ok || !j || j.error) throw new ApiError((j && j.error) || ("HTTP " + res.status), res.status);
  return j.data;
}

export function switchNode(node) { return api("switch", { node }); }

// ---- normalisation: one place for the server's data shapes ----

const LEVELS6 = ["trace", "debug", "info", "warning", "error", "panic"];

// The server's JSON encodes an empty list as {}: these keys always hold lists.
const LIST_KEYS = new Set(["Applications", "Tags", "Group", "Processes", "Events", "Entries", "Records", "Nodes",
  "Links", "Children", "Acceptors", "Routes", "ProxyRoutes", "Loggers", "Levels", "levels", "Aliases", "Metas",
  "LinksPID", "LinksProcessID", "LinksAlias", "LinksEvent", "LinksNode", "MonitorsPID", "MonitorsProcessID",
  "MonitorsAlias", "MonitorsEvent", "MonitorsNode", "Recent", "Jobs", "Cron", "EnabledSpawn",
  "EnabledApplicationStart", "Spool"]);

function lists(v, depth) {
  if (!v || typeof v !== "object" || depth > 12) return v;
  if (Array.isArray(v)) { for (const x of v) lists(x, depth + 1); return v; }
  for (const k in v) {
    const x = v[k];
    if (LIST_KEYS.has(k) && x && typeof x === "object" && !Array.isArray(x) && Object.keys(x).length === 0) v[k] = [];
    else if (x && typeof x === "object") lists(x, depth + 1);
  }
  return v;
}

function normalize(type, d) {
  if (!d || typeof d !== "object") return d;
  lists(d, 0);
  switch (type) {
    case "node_info": {
      if (!d.LogCounts && Array.isArray(d.LogMessages)) {
        d.LogCounts = {};
        d.LogMessages.forEach((n, i) => { d.LogCounts[LEVELS6[i] || i] = n; });
      }
      d.Uptime = pick(d, "Uptime");
      return d;
    }
    case "process_list":
      if (Array.isArray(d)) return { Total: d.length, Matched: d.length, Processes: d };
      d.Processes = d.Processes || [];
      return d;
    case "application_list": {
      const rows = Array.isArray(d) ? d : (d.Applications || []);
      return { Applications: rows.map(appRow) };
    }
    case "event_list": {
      const rows = Array.isArray(d) ? d : (d.Events || []);
      return { Events: rows.map(eventRow) };
    }
    case "event_info":
      return eventRow(d);
    case "connection_list": {
      const rows = Array.isArray(d) ? d : (d.Nodes || d.Connections || []);
      return { Nodes: rows.map(peerRow) };
    }
    case "connection_info":
      return d.Disconnected ? d : peerRow(d);
    case "log":
      d.Entries = (d.Entries || []).map((e) => ({ ...e, Level: String(e.Level || "").toLowerCase(),
        Time: typeof e.Time === "number" ? e.Time : (e.Timestamp ? e.Timestamp / 1e6 : Date.now()) }));
      return d;
    case "heap":
      d.Records = d.Records || [];
      return d;
    case "topology":
      d.Nodes = d.Nodes || [];
      d.Links = d.Links || [];
      return d;
    default:
      return d;
  }
}

function appRow(r) {
  const deps = pick(r, "Depends", "depends");
  return {
    ...r,
    Name: pick(r, "Name", "name"),
    State: pick(r, "State", "state"),
    Mode: pick(r, "Mode", "mode"),
    Uptime: pick(r, "Uptime", "uptime"),
    Description: pick(r, "Description", "description") || "",
    Processes: pick(r, "Processes", "processes") ?? (Array.isArray(r.Group) ? r.Group.length : undefined),
    Deps: deps ? (Array.isArray(deps) ? deps : deps.Applications || []) : [],
    Env: pick(r, "Env", "env") || {},
    VersionText: r.Version && typeof r.Version === "object" ? (r.Version.Release || "") : (r.Version || ""),
  };
}

function eventRow(r) {
  const pub = pick(r, "MessagesPublished", "Published") || 0;
  const loc = pick(r, "MessagesLocalSent", "LocalSent") || 0;
  const rem = pick(r, "MessagesRemoteSent", "RemoteSent") || 0;
  return { ...r, Published: pub, LocalSent: loc, RemoteSent: rem,
    Buffered: pick(r, "Buffered", "BufferSize") || 0,
    Fanout: pub > 0 ? (loc + rem) / pub : 0,
    Utilization: pick(r, "UtilizationState", "Utilization") || "" };
}

function peerRow(r) {
  return { ...r, Name: pick(r, "Name", "Node"), Uptime: pick(r, "ConnectionUptime", "Uptime"),
    Initiated: pick(r, "Initiated", "Dialed") };
}
