// Profiler: process stacks captured on demand and grouped, heap top-N, GC pressure chart.

import { h, replace, num, bytes, debounce } from "../dom.js";
import { subscribe } from "../data.js";
import { query } from "../ui.js";
import { lineChart, rates } from "../chart.js";

export function mount(root, ctx) {
  const filter = h("input", { type: "search", placeholder: "stack contains…", size: 18 });
  const exclude = h("input", { type: "search", placeholder: "exclude…", size: 14 });
  const out = h("div", { "data-testid": "stacks-output" }, h("div", { class: "empty" },
    "Capture walks every process's stack in one pass (the node's loop is held ~1 ms per 1k processes)."));
  const capture = h("button", { class: "btn", "data-testid": "stacks-capture", onclick: async () => {
    capture.disabled = true;
    const t = await query("goroutines", { filter: filter.value || undefined, exclude: exclude.value || undefined, debug: 1 });
    capture.disabled = false;
    if (t !== null) renderStacks(typeof t === "string" ? t : (t.text || JSON.stringify(t, null, 2)));
  } }, "Capture");

  function renderStacks(text) {
    const blocks = text.split(/\n\s*\n/).filter((b) => b.trim());
    const head = blocks.length && /^goroutine profile/.test(blocks[0]) ? blocks.shift() : "";
    replace(out, head ? h("div", { class: "dim mono", style: { marginBottom: "6px" } }, head) : null,
      blocks.map((b, i) => {
        const lines = b.split("\n");
        const first = lines[0];
        const pids = (lines.find((l) => l.startsWith("# pids:")) || "").replace("# pids:", "").trim();
        const labels = lines.find((l) => l.startsWith("# labels:")) || "";
        const frame = lines.find((l) => /^#\t/.test(l)) || lines.find((l, j) => j > 0 && !l.startsWith("#")) || "";
        const pidLinks = (pids.match(/<[^>]+>/g) || []).slice(0, 10).map((p) => h("a", { class: "mono",
          onclick: (e) => { e.preventDefault(); ctx.openProcess(p); } }, p + " "));
        return h("details", { class: "group", open: i < 3 },
          h("summary", null, h("b", { class: "mono" }, first), " ", h("span", { class: "dim mono" }, frame.replace(/^#\t/, "").split("\t")[0]),
            " ", h("span", { class: "dim" }, labels.replace("# labels:", ""))),
          pidLinks.length ? h("div", { style: { padding: "0 8px" } }, pidLinks) : null,
          h("pre", null, lines.slice(1).filter((l) => !l.startsWith("# pids:") && !l.startsWith("# labels:")).join("\n")));
      }));
  }

  const gc = lineChart({ title: "GC cycles / s", series: ["cycles/s"], height: 70, testid: "gc-chart" });
  const allocChart = lineChart({ title: "Allocation / s (GC pressure)", series: ["allocated", "freed"], height: 70, fmt: bytes });
  const heapChart = lineChart({ title: "Heap", series: ["Lua heap", "sampled in use"], height: 70, fmt: bytes });
  const ar = rates();
  const gcr = rates();
  const heapFilter = h("input", { type: "search", placeholder: "function contains…", size: 18 });
  let heapQ = "", last = null, heapPaused = false;
  heapFilter.addEventListener("input", debounce(() => { heapQ = heapFilter.value.toLowerCase(); if (last) drawHeap(last); }, 150));
  const pauseHeap = h("button", { class: "btn small", onclick: () => {
    heapPaused = !heapPaused; pauseHeap.textContent = heapPaused ? "Resume" : "Pause"; pauseHeap.classList.toggle("on", heapPaused);
  } }, "Pause");
  const figs = h("div", { class: "kv" });
  const tbody = h("tbody");
  replace(root,
    h("div", { class: "toolbar" }, h("h2", null, "Profiler")),
    h("div", { class: "grid" }, h("div", { class: "card" }, gc.el, figs), h("div", { class: "card" }, allocChart.el),
      h("div", { class: "card" }, heapChart.el)),
    h("div", { class: "card" }, h("div", { class: "toolbar" }, h("h3", { style: { margin: 0 } }, "Process stacks (grouped)"),
      h("span", { class: "spacer" }), filter, exclude, capture), h("div", { style: { marginTop: "8px" } }, out)),
    h("div", { class: "card" }, h("div", { class: "toolbar" }, h("h3", { style: { margin: 0 } }, "Heap (live, top 100 sites)"),
      h("span", { class: "spacer" }), heapFilter, pauseHeap),
    h("div", { class: "scroll", style: { maxHeight: "420px", marginTop: "8px" } }, h("table", { class: "t", "data-testid": "heap-table" },
      h("thead", null, h("tr", null, ["function", "inuse", "inuse objects", "alloc", "alloc objects"].map((c, i) =>
        h("th", { class: i ? "n" : "" }, c)))), tbody))));

  function drawHeap(d) {
    const recs = d.Records.filter((r) => !heapQ || String(r.Function).toLowerCase().includes(heapQ));
    tbody.replaceChildren(...recs.map((r) => h("tr", { "data-heap-fn": r.Function },
      h("td", { class: "mono", title: r.Function }, r.Function), h("td", { class: "n" }, bytes(r.Inuse)),
      h("td", { class: "n" }, num(r.InuseObjects)), h("td", { class: "n" }, bytes(r.Alloc)), h("td", { class: "n" }, num(r.AllocObjects)))));
    if (!recs.length) tbody.replaceChildren(h("tr", null, h("td", { colspan: 5, class: "empty" }, "no sampled allocation yet")));
  }

  const sub = subscribe("heap", { limit: 100 }, (d, p) => {
    const t = p.time || Date.now();
    const [cyc] = gcr([d.GCCycles], t);
    if (cyc !== null) gc.push([cyc]);
    const al = ar([d.Allocated, d.Freed], t);
    if (al[0] !== null) allocChart.push(al);
    heapChart.push([d.LuaHeap, d.TotalInuse]);
    replace(figs, h("span", null, "Lua heap"), h("span", null, bytes(d.LuaHeap)),
      h("span", null, "GC cycles"), h("span", null, num(d.GCCycles)),
      h("span", null, "allocated / freed"), h("span", null, bytes(d.Allocated) + " / " + bytes(d.Freed)),
      h("span", null, "RSS"), h("span", null, bytes(d.RSS)),
      h("span", null, "sample rate"), h("span", null, d.Rate ? "1 per " + bytes(d.Rate) : "off"));
    last = d;
    if (!heapPaused) drawHeap(d);
  });
  return () => sub.close();
}
