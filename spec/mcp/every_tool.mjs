// The official MCP TypeScript SDK against a live halo cluster (spec/mcp_client_spec.lua starts it):
// lists the tools, compiles every inputSchema as JSON Schema 2020-12 (ajv), runs every fixture of
// calls/*.json on the entry node and proxied through `node` to another node, and checks the SDK-level
// behaviour: a session id issued, sent back and ended by DELETE, a wrong or missing token refused, and
// notifications/tools/list_changed on the GET stream when a tool file is added.
//
//   node every_tool.mjs --url http://127.0.0.1:PORT/mcp --token T --local node1@localhost \
//     --remote node2@localhost --cluster '{"node1@localhost":{"pid":"<..>","peer":"node3@localhost"},...}' \
//     [--tools-dir DIR] [--calls DIR]
//
// --cluster gives, per executing node, the placeholders' values: $PID (mcp_test_echo's PID there) and
// $PEER (another node of the cluster connected to it). --tools-dir is the directory the entry node
// loads its tools from (a scratch copy: a tool file is added to it and removed again).
// Prints a summary; exits 1 on any failure.
import { readFileSync, readdirSync, writeFileSync, rmSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import Ajv2020 from "ajv/dist/2020.js";

const here = dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({
  options: {
    url: { type: "string" }, token: { type: "string", default: "" }, local: { type: "string" },
    remote: { type: "string" }, cluster: { type: "string", default: "{}" },
    "tools-dir": { type: "string" }, calls: { type: "string", default: join(here, "calls") },
  },
});
for (const k of ["url", "local", "remote"]) {
  if (!opt[k]) { console.error(`every_tool: --${k} is required`); process.exit(2); }
}
const cluster = JSON.parse(opt.cluster);
const CALL_TIMEOUT_MS = 60000;

const failures = [];
const fail = (what, why, text) => failures.push({ what, why, text });

// A fetch that records each request's method and Mcp-Session-Id header.
function recordingFetch(log) {
  return async (url, init = {}) => {
    const headers = new Headers(init.headers);
    log.push({ method: init.method || "GET", session: headers.get("mcp-session-id") });
    return fetch(url, init);
  };
}

function transport(token, log = []) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return new StreamableHTTPClientTransport(new URL(opt.url),
    { requestInit: { headers }, fetch: recordingFetch(log), reconnectionOptions: {
      maxReconnectionDelay: 1000, initialReconnectionDelay: 200, reconnectionDelayGrowFactor: 1.5, maxRetries: 2 } });
}

function newClient() { return new Client({ name: "halo-every-tool", version: "1.0.0" }); }

// Placeholders of a fixture's arguments ($NODE, $PEER, $PID, $NAME), resolved for the node that
// executes the call; expect.text gets them too, escaped as regex literals.
function resolve(value, node) {
  if (typeof value === "string") {
    const c = cluster[node] || {};
    return value.replaceAll("$NODE", node).replaceAll("$PEER", c.peer ?? "")
      .replaceAll("$PID", c.pid ?? "").replaceAll("$NAME", "mcp_test_echo");
  }
  if (Array.isArray(value)) return value.map((v) => resolve(v, node));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, node)]));
  }
  return value;
}

// A fixture's expect.text with the placeholders resolved for node, as regex literals.
function expectText(text, node) {
  const esc = (v) => String(v ?? "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const c = cluster[node] || {};
  return text.replaceAll("$NODE", esc(node)).replaceAll("$PEER", esc(c.peer)).replaceAll("$PID", esc(c.pid))
    .replaceAll("$NAME", "mcp_test_echo");
}

// What is wrong with a result against a fixture's expectation (null: nothing).
function check(expect, result) {
  const text = (result.content || []).filter((c) => c.type === "text").map((c) => c.text).join("");
  if (!Array.isArray(result.content) || result.content.length !== 1 || result.content[0].type !== "text") {
    return "result is not exactly one text content item";
  }
  if (!!result.isError !== !!expect.isError) {
    return expect.isError ? "expected isError, got a result" : "isError result";
  }
  if (expect.text !== undefined && !new RegExp(expect.text).test(text)) return `text does not match /${expect.text}/`;
  if (expect.json) {
    let v;
    try { v = JSON.parse(text); } catch (e) { return `not JSON: ${e.message}`; }
    const isArray = Array.isArray(v);
    if (expect.json === "array" && !isArray) return "JSON is not an array";
    if (expect.json === "object" && (isArray || v === null || typeof v !== "object")) return "JSON is not an object";
    if (expect.nonempty && !(isArray && v.length > 0)) return "array is empty";
    for (const row of isArray ? v : [v]) {
      const missing = (expect.fields || []).filter((f) => row === null || typeof row !== "object" || !(f in row));
      if (missing.length) return `missing field(s) ${missing.join(", ")}`;
    }
  }
  return null;
}

async function callTool(client, name, args) {
  try {
    return await client.callTool({ name, arguments: args }, undefined, { timeout: CALL_TIMEOUT_MS });
  } catch (e) {
    if (e instanceof McpError) return { protocolError: `JSON-RPC error ${e.code}: ${e.message}` };
    return { protocolError: `${e.name}: ${e.message}` };
  }
}

async function main() {
  const log = [];
  const t = transport(opt.token, log);
  const client = newClient();
  await client.connect(t);

  // a session id issued by initialize and sent back on every later request
  const session = t.sessionId;
  if (!session) fail("session", "initialize issued no Mcp-Session-Id", "");

  const listed = (await client.listTools()).tools;
  const names = listed.map((x) => x.name);
  console.log(`tools listed: ${names.length}`);

  // every inputSchema compiles as JSON Schema 2020-12 and carries the proxy parameters
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  let compiled = 0;
  for (const tool of listed) {
    const s = tool.inputSchema;
    try {
      ajv.compile(s);
      compiled++;
    } catch (e) {
      fail(tool.name, "inputSchema does not compile as JSON Schema 2020-12", e.message);
      continue;
    }
    if (s.type !== "object") fail(tool.name, "inputSchema type is not object", JSON.stringify(s));
    for (const p of ["node", "timeout"]) {
      if (!s.properties || !s.properties[p]) fail(tool.name, `inputSchema lacks '${p}'`, JSON.stringify(s));
    }
  }
  console.log(`schemas compiled: ${compiled}`);

  // the fixtures, every listed tool covered
  const files = readdirSync(opt.calls).filter((f) => f.endsWith(".json")).sort();
  const fixtures = [];
  for (const f of files) {
    for (const fx of JSON.parse(readFileSync(join(opt.calls, f), "utf8"))) fixtures.push({ ...fx, file: f });
  }
  console.log(`fixture files: ${files.join(" ")}`);
  const covered = new Set(fixtures.map((f) => f.tool));
  for (const n of names) if (!covered.has(n)) fail(n, "listed tool has no fixture in calls/*.json", "");

  let local = 0, proxied = 0, skipped = 0;
  const called = new Set();
  for (const fx of fixtures) {
    if (!names.includes(fx.tool)) { // a typo, or a tool file that did not load
      skipped++;
      fail(fx.tool, `fixture in ${fx.file} names a tool the server does not list`, "");
      continue;
    }
    const runs = [];
    if (fx.local !== false) runs.push({ where: opt.local, args: resolve(fx.args || {}, opt.local) });
    if (fx.remote !== false) {
      runs.push({ where: opt.remote, args: { ...resolve(fx.args || {}, opt.remote), node: opt.remote } });
    }
    for (const run of runs) {
      const r = await callTool(client, fx.tool, run.args);
      called.add(fx.tool);
      if (run.where === opt.local) local++; else proxied++;
      const what = `${fx.tool} on ${run.where} (${fx.file}, args ${JSON.stringify(run.args)})`;
      if (r.protocolError) { fail(what, "protocol error", r.protocolError); continue; }
      const expect = { ...(fx.expect || {}) };
      if (typeof expect.text === "string") expect.text = expectText(expect.text, run.where);
      const why = check(expect, r);
      if (why) fail(what, why, (r.content || []).map((c) => c.text).join(""));
    }
  }
  console.log(`calls made: ${local} local, ${proxied} proxied (${skipped} fixtures of unlisted tools)`);
  console.log(`tools called: ${names.filter((n) => called.has(n)).length} of ${names.length}`);

  const sessions = log.slice(1).map((r) => r.session);
  if (session && sessions.some((s) => s !== session)) {
    fail("session", "a request after initialize did not carry the session id", JSON.stringify(sessions));
  }
  console.log(`session: ${session ? "issued" : "none"}, sent back on ${sessions.filter((s) => s === session).length}` +
    ` of ${sessions.length} requests`);

  // notifications/tools/list_changed on the GET stream when a tool file is added
  if (client.getServerCapabilities()?.tools?.listChanged && opt["tools-dir"]) {
    const changed = new Promise((res) => client.setNotificationHandler(ToolListChangedNotificationSchema, () => res(true)));
    const file = join(opt["tools-dir"], "every_tool_probe.lua");
    writeFileSync(file, `return { { name = "every_tool_probe", description = "Answers probe (test tool).",
      inputSchema = { type = "object", properties = require("halo.json").object(), additionalProperties = false },
      handler = function() return "probe" end } }\n`);
    try {
      const got = await Promise.race([changed, new Promise((res) => setTimeout(() => res(false), 10000))]);
      if (!got) fail("list_changed", "no notifications/tools/list_changed within 10 s of adding a tool file", "");
      const after = (await client.listTools()).tools.map((x) => x.name);
      if (!after.includes("every_tool_probe")) fail("list_changed", "the added tool is not listed", after.join(" "));
      const r = await callTool(client, "every_tool_probe", {});
      if (r.protocolError || r.content?.[0]?.text !== "probe") {
        fail("list_changed", "the added tool did not answer", r.protocolError || JSON.stringify(r));
      }
      console.log(`list_changed: ${got ? "received" : "missing"}`);
    } finally {
      rmSync(file, { force: true });
    }
  } else {
    console.log("list_changed: not checked (no listChanged capability or no --tools-dir)");
  }
  await t.terminateSession().catch((e) => fail("session", "DELETE failed", e.message));
  await client.close();
  // the ended session is refused (404: the client must initialize again)
  const gone = await fetch(opt.url, { method: "POST", body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream",
               "mcp-session-id": session ?? "", ...(opt.token ? { authorization: `Bearer ${opt.token}` } : {}) } });
  if (gone.status !== 404) fail("session", `a request in the ended session got HTTP ${gone.status}, not 404`, "");
  else console.log("session: ended by DELETE (then 404)");

  // a wrong token and no token: connect raises
  for (const [label, token] of [["wrong token", `${opt.token}x`], ["no token", ""]]) {
    if (!opt.token) break;
    const c = newClient();
    let raised = null;
    try { await c.connect(transport(token)); } catch (e) { raised = e; }
    await c.close().catch(() => {});
    if (!raised) fail("auth", `${label}: connect succeeded`, "");
    else if (!/401/.test(`${raised.code} ${raised.message}`)) fail("auth", `${label}: not refused with 401`, raised.message);
    else console.log(`auth: ${label} refused (401)`);
  }

  for (const f of failures) console.log(`FAIL ${f.what}: ${f.why}${f.text ? `\n  text: ${f.text}` : ""}`);
  console.log(`every_tool: ${failures.length === 0 ? "ok" : `${failures.length} failure(s)`}`);
  process.exit(failures.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`every_tool: aborted: ${e.stack || e}`);
  process.exit(1);
});
