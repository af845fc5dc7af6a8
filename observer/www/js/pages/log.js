// Log: the live stream of the observed node (newest first), level toggles, text filter,
// pause/resume and the storm banner.

import { h, replace, clock, num, debounce } from "../dom.js";
import { subscribe } from "../data.js";

const LEVELS = ["trace", "debug", "info", "warning", "error", "panic"];
const levels = new Set(["info", "warning", "error", "panic"]);   // kept across visits
const BUFFER = 500;

export function mount(root, ctx) {
  let entries = [], paused = false, pending = 0, q = "", sub = null, seen = new Set();
  const toggles = h("span", { class: "toolbar" });
  const pause = h("button", { class: "btn", "data-testid": "log-pause", onclick: () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.classList.toggle("on", paused);
    if (!paused) { pending = 0; draw(); }
    status();
  } }, "Pause");
  const filter = h("input", { type: "search", placeholder: "filter: message, source, level…", "data-testid": "log-filter", size: 30 });
  filter.addEventListener("input", debounce(() => { q = filter.value.trim().toLowerCase(); draw(); }, 150));
  const banner = h("div", { class: "banner", hidden: true, "data-testid": "log-storm" });
  const info = h("span", { class: "dim" });
  const list = h("div", { class: "scroll log", "data-testid": "log-list" });
  replace(root, h("div", { class: "toolbar" }, h("h2", null, "Log"), toggles, h("span", { class: "spacer" }), info, filter, pause),
    banner, list);
  const fit = () => { list.style.height = Math.max(300, innerHeight - list.getBoundingClientRect().top - 20) + "px"; };
  addEventListener("resize", fit);
  requestAnimationFrame(fit);

  function drawToggles() {
    replace(toggles, LEVELS.map((l) => h("button", { class: "btn small lv-" + l + (levels.has(l) ? " on" : ""),
      "data-log-toggle": l, "aria-pressed": levels.has(l) ? "true" : "false", onclick: () => {
        if (levels.has(l)) levels.delete(l); else levels.add(l);
        entries = entries.filter((e) => levels.has(e.Level));
        drawToggles();
        resubscribe();
        draw();
      } }, l)));
  }

  function status() {
    info.textContent = `${entries.length} kept` + (paused && pending ? ` · ${pending} new while paused` : "");
  }

  function matches(e) {
    if (!q) return true;
    return [e.Message, e.Level, e.Name, e.PID, e.Behavior, e.Source].some((x) => x && String(x).toLowerCase().includes(q));
  }

  function draw() {
    status();
    if (paused) return;
    const shown = entries.filter(matches);
    list.replaceChildren(...(shown.length ? shown.map((e) => h("div", { class: "logrow", "data-log-level": e.Level },
      h("span", { class: "dim" }, clock(e.Time)), h("span", { class: "lv-" + e.Level }, e.Level),
      h("span", { class: "src", title: [e.PID, e.Name, e.Behavior, e.Source].filter(Boolean).join(" ") },
        e.PID ? h("a", { onclick: () => ctx.openProcess(e.PID) }, e.Name || e.PID) : (e.Source || e.Name || "node")),
      h("span", { class: "msg" }, e.Message))) : [h("div", { class: "empty" }, levels.size ? "no log entry yet" : "no level selected")]));
  }

  function resubscribe() {
    if (sub) sub.close();
    sub = null;
    if (!levels.size) return;
    sub = subscribe("log", { levels: LEVELS.filter((l) => levels.has(l)), limit: BUFFER }, (d) => {
      const fresh = [];
      for (const e of d.Entries) {
        const id = e.Seq ?? (e.Time + e.Message);
        if (seen.has(id)) continue;
        seen.add(id);
        fresh.push(e);
      }
      if (d.Suppressed > 0) {
        banner.hidden = false;
        banner.textContent = `Log storm: ${num(d.Suppressed)} messages suppressed in the last second (at most 200 a second are kept).`;
      } else banner.hidden = true;
      if (!fresh.length) return;
      fresh.sort((a, b) => (b.Seq ?? b.Time) - (a.Seq ?? a.Time));
      entries = fresh.concat(entries).slice(0, BUFFER);
      if (seen.size > BUFFER * 4) seen = new Set(entries.map((e) => e.Seq ?? (e.Time + e.Message)));
      if (paused) pending += fresh.length;
      draw();
    });
  }

  drawToggles();
  resubscribe();
  draw();
  return () => { if (sub) sub.close(); removeEventListener("resize", fit); };
}
