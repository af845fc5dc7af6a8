// DOM building, formatting and small UI helpers shared by every page.

// h("div", {class: "x", "data-pid": p, onclick: f}, child, "text", [more])
export function h(tag, attrs, ...kids) {
  const svg = tag.startsWith("svg:");
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
                 : document.createElement(tag);
  if (attrs) {
    for (const k in attrs) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "class") el.setAttribute("class", v);
      else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
      else if (k === "value" && !svg) el.value = v;
      else if (k === "checked" && !svg) el.checked = !!v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids) {
    if (k === undefined || k === null || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else if (k instanceof Node) el.appendChild(k);
    else el.appendChild(document.createTextNode(String(k)));
  }
}

export function replace(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
  return el;
}

export function num(n) {
  if (n === undefined || n === null || n === "") return "–";
  if (typeof n !== "number") return String(n);
  if (!isFinite(n)) return String(n);
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(Math.abs(n) >= 1e7 ? 1 : 2) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1);
}

export function bytes(n) {
  if (typeof n !== "number") return "–";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : 1)) + " " + u[i];
}

// nanoseconds -> "12 µs", "3.4 ms", "2.1 s"
export function ns(v) {
  if (typeof v !== "number") return "–";
  if (v < 0) return "disabled";
  if (v < 1e3) return Math.round(v) + " ns";
  if (v < 1e6) return (v / 1e3).toFixed(v < 1e4 ? 1 : 0) + " µs";
  if (v < 1e9) return (v / 1e6).toFixed(v < 1e7 ? 1 : 0) + " ms";
  return (v / 1e9).toFixed(v < 1e10 ? 2 : 1) + " s";
}

// seconds -> "45s", "12m 3s", "3h 4m", "2d 5h"
export function secs(s) {
  if (typeof s !== "number" || s < 0) return "–";
  s = Math.floor(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

export function clock(ms) {
  const d = new Date(ms);
  return d.toISOString().slice(11, 23);
}

// Latency colouring as the reference: <1 ms green, <=10 ms yellow, <=50 ms orange, else red.
export function latClass(v) {
  if (typeof v !== "number" || v < 0) return "dim";
  if (v < 1e6) return "lat-ok";
  if (v <= 1e7) return "lat-warn";
  if (v <= 5e7) return "lat-orange";
  return "lat-bad";
}

export function mbClass(n) {
  if (!n) return "mb-0";
  return n > 100 ? "mb-bad" : "mb-mid";
}

export function stateClass(s) {
  s = String(s || "").toLowerCase();
  if (s === "zombee" || s === "terminated") return "st-" + s;
  if (s === "running") return "st-running";
  if (s.startsWith("wait")) return "st-wait";
  if (s === "stopped") return "st-stopped";
  return "";
}

// The first present field among names (the server may use either spelling).
export function pick(o, ...names) {
  if (!o) return undefined;
  for (const n of names) if (o[n] !== undefined && o[n] !== null) return o[n];
  return undefined;
}

export function toast(text, bad) {
  const box = document.getElementById("toasts");
  const t = h("div", { class: "toast" + (bad ? " bad" : "") }, text);
  box.appendChild(t);
  setTimeout(() => t.remove(), bad ? 7000 : 3500);
}

export function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

// A key/value grid of the scalar fields of an object.
export function kvGrid(o, skip) {
  const kids = [];
  for (const k of Object.keys(o || {}).sort()) {
    if (skip && skip.includes(k)) continue;
    const v = o[k];
    if (v !== null && typeof v === "object") continue;
    kids.push(h("span", null, k), h("span", null, typeof v === "number" ? num(v) : String(v)));
  }
  return h("div", { class: "kv" }, kids);
}

// Rate of a counter between two snapshots (per second), null without a previous one.
export function rate(prev, cur, dtMs) {
  if (typeof prev !== "number" || typeof cur !== "number" || !(dtMs > 0)) return null;
  return Math.max(0, (cur - prev) * 1000 / dtMs);
}
