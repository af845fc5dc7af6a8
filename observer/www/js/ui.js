// Floating windows, modal dialogs and the token-guarded actions.

import { h, replace, toast } from "./dom.js";
import { api, conn } from "./data.js";

const wins = new Map();   // id -> window record
let z = 100, cascade = 0;

// openWindow({id, title, attrs, width, height, onClose}) -> {el, body, head, setTitle, close, focus}
// An already open window with the same id is focused and returned with .existing = true.
export function openWindow(o) {
  const had = wins.get(o.id);
  if (had) { had.restore(); had.focus(); had.existing = true; return had; }
  const title = h("span", { class: "title" }, o.title);
  const body = h("div", { class: "win-body" });
  const w = {};
  const head = h("div", { class: "win-head" }, title,
    h("button", { title: "copy link", onclick: () => copyLink(o.link) }, "↗"),
    h("button", { title: "minimise", onclick: () => w.minimize() }, "_"),
    h("button", { title: "maximise", onclick: () => el.classList.toggle("max") }, "□"),
    h("button", { title: "close", "data-close": true, onclick: () => w.close() }, "×"));
  const n = cascade++ % 8;
  const el = h("div", { class: "win", ...(o.attrs || {}), style: {
    left: 260 + n * 28 + "px", top: 60 + n * 28 + "px", width: (o.width || 620) + "px",
    height: (o.height || 520) + "px", zIndex: ++z } }, head, body);
  Object.assign(w, {
    id: o.id, el, body, head,
    setTitle: (t) => { title.textContent = t; listWindows(); },
    titleText: () => title.textContent,
    focus: () => { el.style.zIndex = ++z; },
    minimize: () => { el.classList.add("min"); listWindows(); },
    restore: () => { el.classList.remove("min"); listWindows(); },
    close: () => {
      if (!wins.has(o.id)) return;
      wins.delete(o.id);
      el.remove();
      listWindows();
      if (o.onClose) o.onClose();
    },
  });
  el.addEventListener("mousedown", w.focus);
  drag(head, el);
  document.getElementById("windows").appendChild(el);
  wins.set(o.id, w);
  listWindows();
  return w;
}

export function closeAllWindows() { for (const w of [...wins.values()]) w.close(); }

function copyLink(link) {
  if (!link) return;
  const url = location.origin + location.pathname + "#" + link;
  if (navigator.clipboard) navigator.clipboard.writeText(url).then(() => toast("link copied"), () => toast(url));
  else toast(url);
}

function listWindows() {
  const ul = document.getElementById("window-list");
  replace(ul, [...wins.values()].map((w) => h("li", {
    title: "show", onclick: () => { w.restore(); w.focus(); },
    class: w.el.classList.contains("min") ? "minimized" : "" },
    (w.el.classList.contains("min") ? "▸ " : "") + w.titleText())));
}

function drag(handle, el) {
  handle.addEventListener("mousedown", (e) => {
    if (e.target.tagName === "BUTTON" || el.classList.contains("max")) return;
    const sx = e.clientX - el.offsetLeft, sy = e.clientY - el.offsetTop;
    const move = (m) => {
      el.style.left = Math.max(0, m.clientX - sx) + "px";
      el.style.top = Math.max(0, m.clientY - sy) + "px";
    };
    const up = () => { removeEventListener("mousemove", move); removeEventListener("mouseup", up); };
    addEventListener("mousemove", move);
    addEventListener("mouseup", up);
    e.preventDefault();
  });
}

// modal({title, text, input: {type, value, placeholder, multiline}, ok, danger}) -> Promise<value|true|null>
export function modal(o) {
  return new Promise((resolve) => {
    let input = null;
    if (o.input) {
      input = o.input.multiline
        ? h("textarea", { rows: 6, placeholder: o.input.placeholder || "", "data-testid": "modal-input" })
        : h("input", { type: o.input.type || "text", autocomplete: o.input.type === "password" ? "current-password" : "off",
          placeholder: o.input.placeholder || "",
          "data-testid": "modal-input" });
      input.value = o.input.value || "";
    }
    const done = (v) => { back.remove(); resolve(v); };
    const okBtn = h("button", { type: "button", class: "btn" + (o.danger ? " danger" : ""), "data-testid": "modal-ok",
      onclick: () => done(input ? input.value : true) }, o.ok || "OK");
    const back = h("div", { class: "modal-back", onclick: (e) => { if (e.target === back) done(null); } },
      h("form", { class: "modal", "data-testid": "modal", onsubmit: (e) => { e.preventDefault(); okBtn.click(); } },
        h("h2", null, o.title), o.text ? h("div", null, o.text) : null,
        o.input && o.input.type === "password" ? h("input", { type: "text", name: "username", autocomplete: "username",
          value: "observer", hidden: true }) : null, input,
        h("div", { class: "row" }, h("button", { type: "button", class: "btn", "data-testid": "modal-cancel",
          onclick: () => done(null) }, "Cancel"), okBtn)));
    back.addEventListener("keydown", (e) => {
      if (e.key === "Escape") done(null);
    });
    document.body.appendChild(back);
    (input || okBtn).focus();
  });
}

const TOKEN = "halo-observer-token";

// A mutating action: confirmation (when asked), the token (asked once per browser session), POST.
export async function act(action, args, opts = {}) {
  if (!conn.actions) {
    toast("actions are off: the observer was started without a token", true);
    return null;
  }
  if (opts.confirm && !(await modal({ title: opts.confirm, text: opts.detail, ok: opts.ok || "Confirm",
    danger: true }))) return null;
  for (let attempt = 0; attempt < 2; attempt++) {
    let token = sessionStorage.getItem(TOKEN);
    if (!token) {
      token = await modal({ title: "Observer token", text: "Actions need the token the observer was started with.",
        input: { type: "password", placeholder: "token" }, ok: "Use token" });
      if (!token) return null;
      sessionStorage.setItem(TOKEN, token);
    }
    try {
      const r = await api("do/" + action, args, { Authorization: "Bearer " + token });
      toast(action + ": done");
      return r ?? true;
    } catch (err) {
      if (err.status === 403 && /token/i.test(err.message) && attempt === 0) {
        sessionStorage.removeItem(TOKEN);
        toast(err.message, true);
        continue;
      }
      toast(action + ": " + err.message, true);
      return null;
    }
  }
  return null;
}

// A read-only one-shot call (stack, goroutines, inspect, app_tree).
export async function query(action, args) {
  try {
    return await api("do/" + action, args);
  } catch (err) {
    toast(action + ": " + err.message, true);
    return null;
  }
}
