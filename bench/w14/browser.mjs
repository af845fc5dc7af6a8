// W14's browser side (bench/w14/run starts the nodes): the Observer in
// Debian's chromium (puppeteer-core from spec/observer) against a node with
// 100k processes. Prints, no assertions:
//  1. first process-table paint: --paints fresh pages opened on
//     /#/<node>/processes; ms from navigation start until the first
//     tr[data-pid] exists (a MutationObserver in the page) and the UI's own
//     window.__observer.lastPaint.process_list;
//  2. the size of each SSE snapshot the UI receives (bytes of the data line,
//     by event, from the DevTools protocol's EventSource messages) while one
//     page visits every page for 3.5 s;
//  3. the observed node's (and the observer node's) CPU over --seconds with 0,
//     1 and 2 browsers connected (each its own chromium on the processes page):
//     utime + stime from /proc/<pid>/stat.
//   node browser.mjs --url http://127.0.0.1:P/ --node node1@localhost --pid OSPID --observer-pid OSPID
//     [--seconds 30] [--paints 5] [--chromium /usr/bin/chromium]
import { readFileSync } from "node:fs";
import { launch, parseArgs, until, watchedPage } from "../../spec/observer/lib.mjs";

const args = parseArgs(process.argv.slice(2), { seconds: "30", paints: "5", chromium: "/usr/bin/chromium" });
const ORIGIN = new URL(args.url).origin;
const PAGE = `${args.url.replace(/\/$/, "")}/#/${args.node}/processes`;
const SECONDS = Number(args.seconds);
const TICK = 100; // clock ticks per second (getconf CLK_TCK on Linux)
const problems = [];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / TICK; // utime, stime: fields 14 and 15
};
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};
const fmt = (x, d = 1) => (x === undefined || x === null ? "-" : Number(x).toFixed(d));

// A page on the processes page of the node; resolves once its first row is painted.
async function openProcesses(browser) {
  const page = await watchedPage(browser, ORIGIN, problems);
  await page.evaluateOnNewDocument(() => {
    new MutationObserver((_, obs) => {
      if (document.querySelector("tr[data-pid]")) {
        window.__w14FirstRow = performance.now();
        obs.disconnect();
      }
    }).observe(document, { childList: true, subtree: true });
  });
  const sizes = {};
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  cdp.on("Network.eventSourceMessageReceived", (m) => {
    (sizes[m.eventName] ??= []).push(Buffer.byteLength(m.data, "utf8"));
  });
  await page.goto(PAGE, { waitUntil: "domcontentloaded" });
  const firstRow = await until(page, "the first process row", () => window.__w14FirstRow, 60000);
  const ui = await page.evaluate(() => window.__observer?.lastPaint?.process_list);
  const total = await page.evaluate(() => document.querySelector('[data-testid="count-total"]')?.textContent ?? null);
  return { page, firstRow, ui, sizes, total };
}

// CPU of the observed and the observer node over SECONDS (after a 3 s settle).
async function measure(label) {
  await sleep(3000);
  const a = [cpu(args.pid), cpu(args["observer-pid"])];
  const t = Date.now();
  await sleep(SECONDS * 1000);
  const s = (Date.now() - t) / 1000;
  const r = [(cpu(args.pid) - a[0]) / s * 100, (cpu(args["observer-pid"]) - a[1]) / s * 100];
  console.log(`cpu ${label}: observed node ${fmt(r[0], 2)} % of a core, observer node ${fmt(r[1], 2)} % (${fmt(s)} s)`);
  return r;
}

const browsers = [];
try {
  // 1. first paint
  const b = await launch(args.chromium);
  browsers.push(b);
  const rows = [], uis = [];
  let sizes;
  for (let i = 0; i < Number(args.paints); i++) {
    const p = await openProcesses(b);
    rows.push(p.firstRow);
    if (p.ui !== undefined) uis.push(p.ui);
    console.log(`paint ${i + 1}: first row ${fmt(p.firstRow)} ms, window.__observer.lastPaint.process_list ${fmt(p.ui)} ms` +
      (p.total ? `, total shown ${p.total.trim()}` : ""));
    if (i === Number(args.paints) - 1) { // a few snapshots of every page for the sizes
      for (const name of ["processes", "info", "applications", "events", "network", "log", "profiler"]) {
        await p.page.$eval(`a[data-page="${name}"]`, (e) => e.click());
        await sleep(3500);
      }
      sizes = p.sizes;
    }
    await p.page.close();
  }
  const r = stats(rows);
  console.log(`first process-table paint (navigation -> first tr[data-pid]): median ${fmt(r.median)} ms, ` +
    `min ${fmt(r.min)}, max ${fmt(r.max)} (${r.n} loads)`);
  if (uis.length) {
    const u = stats(uis);
    console.log(`window.__observer.lastPaint.process_list: median ${fmt(u.median)} ms, min ${fmt(u.min)}, max ${fmt(u.max)}`);
  }
  // 2. snapshot sizes
  for (const [event, xs] of Object.entries(sizes).sort()) {
    const s = stats(xs);
    console.log(`sse ${event}: ${s.n} messages, bytes median ${s.median}, min ${s.min}, max ${s.max}`);
  }
  await b.close();
  browsers.length = 0;

  // 3. CPU per connected browser
  const c0 = await measure("0 browsers");
  const open1 = await launch(args.chromium);
  browsers.push(open1);
  await openProcesses(open1);
  const c1 = await measure("1 browser");
  const open2 = await launch(args.chromium);
  browsers.push(open2);
  await openProcesses(open2);
  const c2 = await measure("2 browsers");
  console.log(`cpu per browser (observed node): ${fmt(c1[0] - c0[0], 2)} % (1st), ${fmt((c2[0] - c0[0]) / 2, 2)} % ` +
    "(mean of 2) of a core");
  console.log(`cpu per browser (observer node): ${fmt(c1[1] - c0[1], 2)} % (1st), ${fmt((c2[1] - c0[1]) / 2, 2)} % ` +
    "(mean of 2) of a core");
  if (problems.length) console.log(`problems seen in the pages:\n  ${problems.join("\n  ")}`);
} finally {
  for (const b of browsers) await b.close().catch(() => {});
}
