// Hand-written SVG line charts over a rolling 60 s history (61 points at ~1 s).

import { h, num } from "./dom.js";

const COLORS = ["#4fb3ff", "#ffb347", "#3ecf72", "#f0443a", "#c38bff", "#e6c229"];
const W = 600;

// lineChart({title, series: ["in", "out"], height, fmt, testid}) -> {el, push(values), clear()}
export function lineChart(o) {
  const H = o.height || 80;
  const fmt = o.fmt || num;
  const points = 61;
  const hist = o.series.map(() => []);
  const lines = o.series.map((_, i) => h("svg:polyline", { fill: "none", stroke: o.colors?.[i] || COLORS[i % 6],
    "stroke-width": "1.6", "vector-effect": "non-scaling-stroke", "stroke-linejoin": "round" }));
  const grid = [1, 2, 3].map((q) => h("svg:line", { x1: 0, x2: W, y1: (H * q) / 4, y2: (H * q) / 4,
    stroke: "currentColor", "stroke-opacity": "0.12", "vector-effect": "non-scaling-stroke" }));
  const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", height: H,
    "data-testid": o.testid, class: "chart-svg" }, grid, lines);
  const maxEl = h("span", null, "");
  const legend = h("div", { class: "legend" });
  const el = h("div", { class: "chart" }, h("div", { class: "title" }, h("span", null, o.title || ""), maxEl),
    svg, legend);
  function render() {
    let max = 0;
    for (const s of hist) for (const v of s) if (v > max) max = v;
    const top = max > 0 ? max * 1.1 : 1;
    hist.forEach((s, i) => {
      const off = points - s.length;
      lines[i].setAttribute("points", s.map((v, j) =>
        `${((off + j) * W) / (points - 1)},${(H - (v / top) * (H - 2) - 1).toFixed(1)}`).join(" "));
    });
    maxEl.textContent = max > 0 ? "max " + fmt(max) : "";
    legend.replaceChildren(...o.series.map((name, i) => {
      const s = hist[i];
      const v = s.length ? s[s.length - 1] : null;
      return h("span", null, h("i", { style: { background: o.colors?.[i] || COLORS[i % 6] } }),
        name + " ", h("b", null, v === null ? "–" : fmt(v)));
    }));
  }
  render();
  return {
    el,
    push(values) {
      values.forEach((v, i) => {
        if (v === null || v === undefined || !isFinite(v)) return;
        hist[i].push(v);
        if (hist[i].length > points) hist[i].shift();
      });
      render();
    },
    clear() { hist.forEach((s) => { s.length = 0; }); render(); },
  };
}

// A tracker of counters: rates(obj, ["A","B"], time) -> per-second rates since the last call.
export function rates() {
  let prev = null, prevT = 0;
  return (vals, t) => {
    const out = vals.map((v, i) => {
      if (!prev || !(t > prevT) || typeof prev[i] !== "number" || typeof v !== "number") return null;
      return Math.max(0, ((v - prev[i]) * 1000) / (t - prevT));
    });
    prev = vals;
    prevT = t;
    return out;
  };
}
