// Processes: a virtualised table of the top-N processes (server-side sort, filters and scope),
// aggregate message rates and the mailbox latency distribution.

import { h, replace, num, ns, secs, latClass, mbClass, stateClass, debounce } from "../dom.js";
import { subscribe } from "../data.js";
import { lineChart } from "../chart.js";

const COLS = [
  ["PID", "PID"], ["Name", "Name"], ["Behavior", "Behavior"], ["Application", "App"],
  ["MessagesIn", "In", "n"], ["MessagesOut", "Out", "n"], ["MessagesMailbox", "Mailbox", "n"],
  ["MailboxLatency", "Latency", "n"], ["RunningTime", "Running", "n"], ["InitTime", "Init", "n"],
  ["Wakeups", "Wakeups", "n"], ["Uptime", "Uptime", "n"], ["State", "State"],
];
const STATES = ["", "init", "sleep", "running", "wait response", "zombee"];
const BUCKETS = [[1e6, "<1ms"], [1e7, "1-10ms"], [1e8, "10-100ms"], [1e9, ".1-1s"], [5e9, "1-5s"],
  [3e10, "5-30s"], [6e10, "30-60s"], [Infinity, "60s+"]];
const ROW = 22, OVERSCAN = 12;
const COLUMNS = COLS.map((c) => c[0]).filter((k) => k !== "PID");   // only what the table shows: smaller snapshots

// Remembered across visits of the page (per browser tab).
const state = { sort: "MessagesMailbox", order: "desc", limit: 500, name: "", behavior: "", application: "",
  state: "", min_mailbox: "" };

export function mount(root, ctx, arg) {
  // arg from the URL (#/<node>/processes/<key>=<value>&...): filters set by a link elsewhere
  if (arg) {
    const q = new URLSearchParams(arg.includes("=") ? arg : "behavior=" + arg);
    for (const k of ["name", "behavior", "application", "state"]) state[k] = q.get(k) || "";
    state.min_mailbox = "";
  }
  let rows = [], sub = null, prevSum = null, prevT = 0;
  const inp = (key, attrs) => {
    const el = h("input", { ...attrs, value: state[key] });
    el.addEventListener("input", debounce(() => { state[key] = el.value.trim(); resubscribe(); }, 300));
    return el;
  };
  const filter = inp("name", { type: "search", placeholder: "name contains…", "data-testid": "process-filter", size: 18 });
  const beh = inp("behavior", { type: "search", placeholder: "behavior", size: 14, "data-testid": "process-behavior" });
  const app = inp("application", { type: "search", placeholder: "application", size: 14 });
  const minmb = inp("min_mailbox", { type: "number", placeholder: "min mailbox", min: 0, style: { width: "100px" } });
  const st = h("select", { onchange: () => { state.state = st.value; resubscribe(); } },
    STATES.map((s) => h("option", { value: s }, s || "any state")));
  st.value = state.state;
  const scope = h("select", { "data-testid": "process-scope", onchange: () => { state.limit = +scope.value; resubscribe(); } },
    [100, 500, 1000, 5000].map((n) => h("option", { value: n }, "top " + n)));
  scope.value = String(state.limit);
  const count = h("span", { class: "dim", "data-testid": "process-count" }, "");
  const rateChart = lineChart({ title: "Messages / s (scope aggregate)", series: ["in", "out"], height: 60 });
  const histo = h("div", { class: "bars" });

  const thead = h("tr", null, COLS.map(([k, label, cls]) => h("th", {
    class: "sortable " + (cls || ""), "data-sort": k, title: "sort by " + k, onclick: () => {
      if (state.sort === k) state.order = state.order === "desc" ? "asc" : "desc";
      else { state.sort = k; state.order = /^(PID|Name|Behavior|Application|State)$/.test(k) ? "asc" : "desc"; }
      resubscribe();
    } }, label)));
  const tbody = h("tbody");
  const WIDTHS = { PID: 138, Application: 100, State: 104, MessagesMailbox: 82, MailboxLatency: 70, RunningTime: 72, Wakeups: 74, Uptime: 70 };
  const table = h("table", { class: "t fixed", "data-testid": "process-table" },
    h("colgroup", null, COLS.map(([k, , cls]) => h("col", { style: { width: WIDTHS[k] ? WIDTHS[k] + "px" : cls ? "58px" : "auto" } }))),
    h("thead", null, thead), tbody);
  const scroller = h("div", { class: "scroll vtable" }, table);
  scroller.addEventListener("scroll", () => requestAnimationFrame(paint));

  replace(root,
    h("div", { class: "toolbar" }, h("h2", null, "Processes"), count, h("span", { class: "spacer" }),
      filter, beh, app, st, minmb, scope),
    h("div", { class: "grid", style: { gridTemplateColumns: "2fr 1fr" } },
      h("div", { class: "card" }, rateChart.el),
      h("div", { class: "card" }, h("div", { class: "chart" }, h("div", { class: "title" }, "Mailbox latency distribution (scope)")), histo)),
    scroller);
  // The table takes the rest of the viewport.
  const fit = () => { scroller.style.height = Math.max(300, innerHeight - scroller.getBoundingClientRect().top - 20) + "px"; paint(); };
  addEventListener("resize", fit);
  requestAnimationFrame(fit);

  function resubscribe() {
    for (const th of thead.children) {
      const on = th.dataset.sort === state.sort;
      th.classList.toggle("sorted", on);
      th.textContent = COLS.find((c) => c[0] === th.dataset.sort)[1] + (on ? (state.order === "desc" ? " ▼" : " ▲") : "");
    }
    if (sub) sub.close();
    prevSum = null;
    rateChart.clear();
    const args = { columns: COLUMNS, limit: state.limit, sort: state.sort, order: state.order, name: state.name,
      behavior: state.behavior, application: state.application, state: state.state,
      min_mailbox: state.min_mailbox === "" ? undefined : +state.min_mailbox };
    sub = subscribe("process_list", args, onData);
  }

  let seen = false, firstPaint = false;
  function onData(d, p) {
    seen = true;
    rows = d.Processes.slice();
    const k = state.sort, dir = state.order === "desc" ? -1 : 1;
    rows.sort((a, b) => {
      const x = a[k], y = b[k];
      if (typeof x === "number" && typeof y === "number") return (x - y) * dir;
      return String(x ?? "").localeCompare(String(y ?? ""), undefined, { numeric: true }) * dir;
    });
    count.textContent = `${num(rows.length)} shown · ${num(d.Matched ?? rows.length)} matched · ${num(d.Total ?? rows.length)} on node`;
    let sin = 0, sout = 0;
    const b = BUCKETS.map(() => 0);
    for (const r of rows) {
      sin += r.MessagesIn || 0; sout += r.MessagesOut || 0;
      const l = r.MailboxLatency;
      if (typeof l === "number" && l >= 0) b[BUCKETS.findIndex(([lim]) => l < lim)]++;
    }
    const t = p.time || Date.now();
    if (prevSum && t > prevT) {
      rateChart.push([Math.max(0, (sin - prevSum[0]) * 1000 / (t - prevT)), Math.max(0, (sout - prevSum[1]) * 1000 / (t - prevT))]);
    }
    prevSum = [sin, sout]; prevT = t;
    const max = Math.max(1, ...b);
    replace(histo, BUCKETS.map(([, label], i) => h("div", { class: "bar", title: `${label}: ${b[i]}` },
      h("span", null, num(b[i])), h("div", { style: { height: (b[i] / max) * 48 + "px",
        background: i < 1 ? "var(--ok)" : i < 2 ? "var(--warn)" : i < 3 ? "var(--orange)" : "var(--bad)" } }), label)));
    paint();
    if (!firstPaint && rows.length) {   // after the frame that shows the rows
      firstPaint = true;
      requestAnimationFrame(() => setTimeout(() => {
        if (window.__observer.lastPaint.process_list === undefined) window.__observer.lastPaint.process_list = performance.now();
      }, 0));
    }
  }

  // Rows are kept per PID and updated in place, so a click never lands on a replaced element.
  let cache = new Map();
  const topPad = h("tr", { class: "spacer-row" }), botPad = h("tr", { class: "spacer-row" });
  const empty = h("tr", null, h("td", { colspan: COLS.length, class: "empty" }, "loading…"));
  tbody.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-pid]");
    if (tr) ctx.openProcess(tr.dataset.pid);
  });

  function paint() {
    const top = scroller.scrollTop;
    const vis = Math.ceil((scroller.clientHeight || 600) / ROW);
    const from = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const to = Math.min(rows.length, from + vis + OVERSCAN * 2);
    const kids = [];
    topPad.style.height = from * ROW + "px";
    botPad.style.height = Math.max(0, rows.length - to) * ROW + "px";
    if (from > 0) kids.push(topPad);
    const next = new Map();
    for (let i = from; i < to; i++) {
      const r = rows[i];
      const tr = row(r, cache.get(r.PID));
      next.set(r.PID, tr);
      kids.push(tr);
    }
    cache = next;
    if (to < rows.length) kids.push(botPad);
    if (!rows.length) {
      empty.firstChild.textContent = sub && seen ? "no process matches" : "loading…";
      kids.push(empty);
    }
    const cur = tbody.children;
    if (cur.length !== kids.length || kids.some((k, i) => cur[i] !== k)) tbody.replaceChildren(...kids);
  }

  function set(td, text, cls) {
    if (td.textContent !== text) td.textContent = text;
    if (cls !== undefined && td.className !== cls) td.className = cls;
  }

  function row(r, tr) {
    const zombee = String(r.State).toLowerCase() === "zombee";
    if (!tr) {
      tr = h("tr", { class: "click" }, COLS.map(() => h("td")));
      tr.children[0].className = "mono";
    }
    tr.dataset.pid = r.PID;
    tr.dataset.name = r.Name || "";
    tr.dataset.state = r.State;
    tr.classList.toggle("zombee", zombee);
    const c = tr.children;
    set(c[0], r.PID);
    set(c[1], r.Name || ""); c[1].title = r.Name || "";
    set(c[2], r.Behavior || ""); c[2].title = r.Behavior || "";
    set(c[3], r.Application || "");
    set(c[4], num(r.MessagesIn), "n"); set(c[5], num(r.MessagesOut), "n");
    set(c[6], num(r.MessagesMailbox), "n " + mbClass(r.MessagesMailbox));
    set(c[7], ns(r.MailboxLatency), "n " + latClass(r.MailboxLatency));
    set(c[8], ns(r.RunningTime), "n"); set(c[9], ns(r.InitTime), "n");
    set(c[10], num(r.Wakeups), "n"); set(c[11], secs(r.Uptime), "n");
    set(c[12], r.State, stateClass(r.State));
    return tr;
  }

  resubscribe();
  return () => { if (sub) sub.close(); removeEventListener("resize", fit); };
}
