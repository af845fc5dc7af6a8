// The Observer in a real browser (Debian's chromium, headless, driven by
// puppeteer-core) against a live cluster: node1..3 running the scenarios
// (spec/observer/node.lua) and an observer node. spec/observer_browser_spec.lua
// starts the cluster and runs
//
//   node browser.mjs --url http://127.0.0.1:P/ --nodes node1@localhost,node2@localhost,node3@localhost \
//     --victim <PID on node1> --zombee <zombee PID on node1> --mcp http://127.0.0.1:M/mcp --mcp-token T \
//     [--shots DIR] [--chromium /usr/bin/chromium]
//
// It opens every page of the first node through the UI's test hooks only
// (OBSERVER_CONTRACT.md "UI test hooks"), checks what a person sees, kills
// the victim through node1's MCP endpoint (not the UI) and switches to the
// second node. Every check prints a line "ok: ..."; the last line is
// "observer_browser: ok", or "observer_browser: FAILED: why" (exit status 1)
// after a screenshot of the failing moment. Any console error, page error or
// request to another origin fails the run. Screenshots go to --shots
// (default spec/observer/screenshots, git-ignored).
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launch, parseArgs, until, watchedPage } from "./lib.mjs";

const args = parseArgs(process.argv.slice(2), {
  shots: join(dirname(fileURLToPath(import.meta.url)), "screenshots"), chromium: "/usr/bin/chromium",
});
for (const k of ["url", "nodes", "victim", "zombee", "mcp", "mcp-token"]) {
  if (typeof args[k] !== "string") throw new Error(`--${k} is required`);
}
const NODES = args.nodes.split(",");
const [N1, N2] = NODES;
const ORIGIN = new URL(args.url).origin;
const T = 8000; // ms for anything the UI shows after a snapshot (pushed every second)
mkdirSync(args.shots, { recursive: true });
for (const f of readdirSync(args.shots)) if (/^\d\d-.*\.png$/.test(f)) rmSync(join(args.shots, f)); // a previous run's

const problems = [];
let shot = 0;
const ok = (what) => console.log(`ok: ${what}`);

async function screenshot(page, name) {
  shot += 1;
  const path = join(args.shots, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

const isRed = (c) => c && c[0] > 150 && c[1] < 100;

// Clicks the element sel from the page's script (as soon as it exists).
const domClick = (page, sel) => until(page, `${sel} to click`, (s) => {
  const e = document.querySelector(s);
  e?.click();
  return !!e;
}, T, sel);

// Opens page `name` from the navigation and waits for its root.
async function open(page, name) {
  await domClick(page, `a[data-page="${name}"]`);
  await until(page, `page ${name}`, (n) => document.querySelector(`[data-page-root="${n}"]`), T, name);
  await until(page, `hash of page ${name}`, (n) => location.hash.endsWith(`/${n}`), T, name);
}

// Types text into the process filter (replacing what it held).
async function filterProcesses(page, text) {
  const sel = '[data-testid="process-filter"]';
  await page.$eval(sel, (e) => { e.value = ""; e.dispatchEvent(new Event("input", { bubbles: true })); });
  if (text) await page.type(sel, text);
}

// Scrolls the (virtualised) process table a screen at a time, wrapping
// around, until the row sel exists; then centres it.
async function scrollToRow(page, what, sel) {
  await until(page, what, (s) => {
    const row = document.querySelector(s);
    if (row) {
      row.scrollIntoView({ block: "center" });
      return true;
    }
    let el = document.querySelector("tr[data-pid]");
    while (el && !(el.scrollHeight > el.clientHeight + 1 && /auto|scroll/.test(getComputedStyle(el).overflowY))) {
      el = el.parentElement;
    }
    if (el) el.scrollTop = el.scrollTop + el.clientHeight >= el.scrollHeight - 1 ? 0 : el.scrollTop + el.clientHeight * 0.8;
    return false;
  }, T, sel);
}

// Clicks with the mouse at the centre of the element sel as it is now (rows
// are redrawn on every snapshot: an element handle may be gone by the click).
async function clickAt(page, sel) {
  const box = await until(page, `${sel} on screen`, (s) => {
    const r = document.querySelector(s)?.getBoundingClientRect();
    return r && r.width > 0 && { x: r.x + r.width / 2, y: r.y + r.height / 2 };
  }, T, sel);
  await page.mouse.click(box.x, box.y);
}

// Clicks sel until sel_after exists (a row redrawn between the button's
// down and up gets no click: a person clicks again), 5 times at most.
async function clickUntil(page, what, sel, selAfter) {
  for (let i = 1; ; i++) {
    await clickAt(page, sel);
    try {
      await until(page, what, (s) => !!document.querySelector(s), 1500, selAfter);
      return i;
    } catch (e) {
      if (i === 5) throw e;
    }
  }
}

// Closes the floating window sel with its close button.
async function closeWindow(page, sel) {
  await clickAt(page, `${sel} [data-close]`);
  await until(page, `${sel} closed`, (s) => !document.querySelector(s), T, sel);
}

// node1's MCP endpoint: initialize, then tools/call (the answer's text).
async function mcpCall(tool, toolArgs) {
  let sid;
  const rpc = async (id, method, params) => {
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream",
      authorization: `Bearer ${args["mcp-token"]}` };
    if (sid) headers["mcp-session-id"] = sid;
    const r = await fetch(args.mcp, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id, method, params }) });
    sid = sid ?? r.headers.get("mcp-session-id");
    const body = await r.text();
    const json = (r.headers.get("content-type") ?? "").includes("event-stream")
      ? JSON.parse(body.match(/^data: (.*)$/m)[1]) : JSON.parse(body);
    if (json.error) throw new Error(`MCP ${method}: ${json.error.message}`);
    return json.result;
  };
  await rpc(1, "initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "observer_browser", version: "1" } });
  const res = await rpc(2, "tools/call", { name: tool, arguments: toolArgs });
  const text = res.content?.[0]?.text ?? "";
  if (res.isError) throw new Error(`MCP ${tool}: ${text}`);
  return text;
}

// The info page's counts and the zombee count's colour, in one evaluation
// (the page may be rebuilt between two); when `want`, only once they show
// a zombee in red and a total.
function readInfo(want) {
  const num = (id) => Number(document.querySelector(`[data-testid="${id}"]`)?.textContent.replace(/\D/g, ""));
  const z = document.querySelector('[data-testid="count-zombee"]');
  const r = { zombees: num("count-zombee"), total: num("count-total"),
    color: z && getComputedStyle(z).color.match(/\d+/g).slice(0, 3).map(Number) };
  return !want || (r.zombees >= 1 && r.total > 0 && r.color[0] > 150 && r.color[1] < 100) ? r : false;
}

async function info(page) {
  await open(page, "info");
  let seen;
  try {
    seen = await until(page, "zombee count >= 1 in red and a process total", readInfo, T, true);
  } catch (e) {
    throw new Error(`${e.message}: the info page shows ${JSON.stringify(await page.evaluate(readInfo, false))}`);
  }
  ok(`info: ${seen.total} processes, zombee count ${seen.zombees} in red rgb(${seen.color})`);
  await screenshot(page, "info");
}

async function applications(page) {
  await open(page, "applications");
  for (const app of ["latency_scenario", "messaging_scenario", "lifecycle_scenario", "events_scenario"]) {
    await until(page, `${app} running`, (a) => document.querySelector(`tr[data-app="${a}"] [data-col="state"]`)
      ?.textContent.trim() === "running", T, app);
  }
  ok("applications: the four scenarios listed as running");
  await screenshot(page, "applications");
  // the supervision tree of lifecycle_scenario
  await domClick(page, 'tr[data-app="lifecycle_scenario"] [data-action="tree"]');
  const tree = await until(page, "the tree window of lifecycle_scenario", () => {
    const w = document.querySelector('[data-window="tree"]');
    const n = w && w.querySelectorAll("[data-tree-pid]").length;
    return n > 0 && w.querySelector('[data-testid="heatmap-mode"]') && n;
  }, T);
  ok(`applications: the tree window of lifecycle_scenario shows ${tree} processes and a heatmap selector`);
  await screenshot(page, "application-tree");
  await closeWindow(page, '[data-window="tree"]');
}

async function processes(page) {
  await open(page, "processes");
  await until(page, "process rows", () => document.querySelector("tr[data-pid]"), T);
  // the zombee: red, and its window's stack tab shows where it was killed
  const zsel = `tr[data-pid="${args.zombee}"]`;
  await scrollToRow(page, "the zombee's row", zsel);
  // what a person sees: the text of every cell of the row in red (read in one evaluation)
  const { cls, colors } = await until(page, "the zombee's row in state zombee", (s) => {
    const r = document.querySelector(s);
    return r?.dataset.state === "zombee" && { cls: r.classList.contains("zombee"),
      colors: [...r.querySelectorAll("td")].map((e) => getComputedStyle(e).color.match(/\d+/g).slice(0, 3).map(Number)) };
  }, T, zsel);
  const notRed = colors.filter((c) => !isRed(c));
  if (!cls || colors.length === 0 || notRed.length) {
    throw new Error(`the zombee row ${args.zombee}: class zombee ${cls}, cell colors ${JSON.stringify(colors)}`);
  }
  ok(`processes: zombee ${args.zombee} listed in red (${colors.length} cells, rgb(${colors[0]}))`);
  await screenshot(page, "processes-zombee");
  const wsel = `[data-window="process"][data-pid="${args.zombee}"]`;
  const clicks = await clickUntil(page, "the zombee's process window", `${zsel} td`, wsel);
  await domClick(page, `${wsel} [data-tab="stack"]`);
  const stack = await until(page, "the zombee's stack", (s) => {
    const t = document.querySelector(`${s} [data-testid="process-stack"]`)?.textContent ?? "";
    return t.includes("processPayloadDecompression") && t;
  }, T, wsel);
  ok(`processes: the process window's stack tab shows the zombee's stack (${stack.split("\n").length} lines, ` +
    `in processPayloadDecompression; the row took ${clicks} click${clicks > 1 ? "s" : ""})`);
  await screenshot(page, "process-window-stack");
  await closeWindow(page, wsel);

  // killed from outside the UI (node1's MCP endpoint): its row goes within 2 s
  await filterProcesses(page, "obs_victim");
  const vsel = `tr[data-pid="${args.victim}"]`;
  await until(page, "the victim's row", (s) => document.querySelector(s)?.dataset.name === "obs_victim", T, vsel);
  const answer = await mcpCall("process_kill", { pid: args.victim });
  const killed = Date.now();
  await until(page, "the killed victim's row gone within 2 s", (s) => !document.querySelector(s), 2000, vsel);
  ok(`processes: ${args.victim} killed through MCP ("${answer}"), row gone after ${Date.now() - killed} ms`);
  await filterProcesses(page, "");
  await until(page, "process rows again", () => document.querySelector("tr[data-pid]"), T);
  await screenshot(page, "processes");
}

async function events(page) {
  await open(page, "events");
  const subs = (name) => until(page, `${name}'s subscribers`, (n) => {
    const t = document.querySelector(`tr[data-event="${n}"] [data-col="subscribers"]`)?.textContent.trim();
    return t !== undefined && /^\d+$/.test(t) && t;
  }, T, name);
  const s12 = await subs("evt_12");
  if (s12 !== "0") throw new Error(`evt_12 shows ${s12} subscribers`);
  const s0 = await until(page, "evt_0 with subscribers", () => {
    const t = document.querySelector('tr[data-event="evt_0"] [data-col="subscribers"]')?.textContent.trim();
    return Number(t) > 0 && t;
  }, T);
  ok(`events: evt_12 shows 0 subscribers (evt_0 shows ${s0})`);
  await screenshot(page, "events");
}

async function network(page) {
  await open(page, "network");
  for (const n of NODES.filter((x) => x !== N1)) {
    await until(page, `peer row ${n}`, (x) => document.querySelector(`tr[data-peer="${x}"]`), T, n);
  }
  const topo = await until(page, "every node in the topology graph", (nodes) => {
    const svg = document.querySelector('svg[data-testid="topology"]');
    if (!svg || !nodes.every((n) => svg.querySelector(`[data-topology-node="${n}"]`))) return false;
    return { nodes: svg.querySelectorAll("[data-topology-node]").length, links: svg.querySelectorAll("[data-topology-link]").length };
  }, T, NODES);
  if (topo.links < NODES.length) throw new Error(`the topology graph has ${topo.links} links for ${NODES.length} meshed nodes`);
  ok(`network: peer rows for the other nodes; the topology graph shows every node (${topo.nodes} nodes, ${topo.links} links)`);
  await screenshot(page, "network");
}

async function log(page) {
  await open(page, "log");
  const { rows, toggles } = await until(page, "log rows, level toggles and a pause button", () => {
    const r = { rows: document.querySelectorAll("[data-log-level]").length,
      toggles: [...document.querySelectorAll("[data-log-toggle]")].map((e) => e.dataset.logToggle) };
    return r.rows > 0 && ["info", "warning", "error"].every((l) => r.toggles.includes(l)) &&
      document.querySelector('[data-testid="log-pause"]') && r;
  }, T);
  ok(`log: ${rows} entries streamed, level toggles ${toggles.join(" ")}, pause button`);
  await screenshot(page, "log");
}

async function profiler(page) {
  await open(page, "profiler");
  await clickAt(page, '[data-testid="stacks-capture"]');
  const { out, heap } = await until(page, "captured stacks (Lua frames), heap rows and the GC chart", () => {
    const t = document.querySelector('[data-testid="stacks-output"]')?.textContent ?? "";
    const n = document.querySelectorAll("tr[data-heap-fn]").length;
    return /\.lua:\d+/.test(t) && n > 0 && document.querySelector('[data-testid="gc-chart"]') && { out: t, heap: n };
  }, T);
  ok(`profiler: captured stacks (${out.length} characters), ${heap} heap rows, GC chart`);
  await screenshot(page, "profiler");
}

// Switching to the second node: the header, the switcher and the process
// table's PIDs (their first field is the node's) change.
async function switchNode(page) {
  await open(page, "processes");
  const crcOf = (pid) => pid.match(/^<([0-9A-F]+)\./i)[1];
  const before = crcOf(args.victim);
  await domClick(page, `[data-node-option="${N2}"]`);
  await until(page, `the header naming ${N2}`, (n) =>
    document.querySelector('[data-testid="observed-node"]')?.textContent.trim() === n, T, N2);
  const ps = await until(page, `the process table of ${N2}`, (crc) => {
    const p = [...document.querySelectorAll("tr[data-pid]")].map((r) => r.dataset.pid);
    return p.length > 0 && p.every((x) => !x.startsWith(`<${crc}.`)) && p;
  }, T, before);
  const [pids, first] = [ps.length, ps[0]];
  const hash = await page.evaluate(() => decodeURIComponent(location.hash));
  if (!hash.includes(N2)) throw new Error(`the URL did not follow the switch: ${hash}`);
  ok(`switch: header ${N2}, URL ${hash}, ${pids} rows with ${N2}'s PIDs (${first}, node1's were <${before}.*>)`);
  await screenshot(page, "switched");
}

// The watchers themselves: a page of the observer's origin that logs an
// error, throws and fetches from another origin (loopback, nothing leaves
// the machine) must give three problems.
async function watchers(browser) {
  const seen = [];
  const p = await watchedPage(browser, ORIGIN, seen);
  await p.goto(`${ORIGIN}/favicon.svg`);
  await p.evaluate(() => {
    console.error("observer_browser: a planted console error");
    setTimeout(() => { throw new Error("observer_browser: a planted page error"); }, 0);
    fetch("http://127.0.0.2:9/planted").catch(() => {});
  });
  const want = ["a planted console error", "a planted page error", "request to http://127.0.0.2:9/planted"];
  for (let i = 0; i < 100 && !want.every((w) => seen.some((x) => x.includes(w))); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await p.close();
  const missed = want.filter((w) => !seen.some((x) => x.includes(w)));
  if (missed.length) throw new Error(`the watchers missed: ${missed.join("; ")} (saw: ${seen.join("; ")})`);
  ok("the watchers catch a planted console error, page error and request to another origin");
}

const browser = await launch(args.chromium);
let page;
let rc = 0;
try {
  page = await watchedPage(browser, ORIGIN, problems);
  const t0 = Date.now();
  await page.goto(`${args.url.replace(/\/$/, "")}/#/${N1}/info`, { waitUntil: "domcontentloaded" });
  await until(page, `the header naming ${N1}`, (n) =>
    document.querySelector('[data-testid="observed-node"]')?.textContent.trim() === n, T, N1);
  await until(page, "Live", () => document.querySelector('[data-testid="live"]')?.textContent.trim() === "Live", T);
  const options = await until(page, "every node in the node switcher", (nodes) => {
    const o = [...document.querySelectorAll("[data-node-option]")].map((e) => `${e.dataset.nodeOption}:${e.dataset.connected}`);
    return nodes.every((n) => o.includes(`${n}:true`)) && o;
  }, T, NODES);
  ok(`loaded in ${Date.now() - t0} ms: Live, observing ${N1}, switcher ${options.join(" ")}`);
  for (const step of [info, applications, processes, events, network, log, profiler, switchNode]) {
    await step(page);
    if (problems.length) throw new Error(problems.join("; "));
  }
  const snaps = await page.evaluate(() => window.__observer?.snapshots);
  if (!(snaps > 0)) throw new Error(`window.__observer.snapshots is ${snaps}`);
  ok(`${snaps} snapshots received; no console error, page error or foreign request`);
  await watchers(browser);
  console.log(`screenshots: ${shot} in ${args.shots}`);
  console.log("observer_browser: ok");
} catch (e) {
  rc = 1;
  if (page) await screenshot(page, "failure").then((p) => console.log(`screenshot of the failure: ${p}`)).catch(() => {});
  console.log(`observer_browser: FAILED: ${e.message}${problems.length ? `\nproblems: ${problems.join("\n  ")}` : ""}`);
} finally {
  await browser.close();
}
process.exit(rc);
