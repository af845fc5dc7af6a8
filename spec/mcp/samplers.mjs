// The sampler tools through the official MCP TypeScript SDK (spec/mcp_sampler_spec.lua runs it against its
// cluster), on the entry node and proxied through `node`:
//   active:  sample_start (process_list every 100 ms) -> sample_read(since=0) -> sample_read(since=<sequence>)
//            -> sample_list -> sample_stop; the sequences seen over the reads and the stop are 1..N, no gap.
//   passive: sample_listen (warning logs + mcp_test_event) captures a log line it provokes (send_message to
//            mcp_test_logger) and a publication of mcp_test_event.
//
//   node samplers.mjs --url http://127.0.0.1:PORT/mcp --token T --local node1@localhost --remote node2@localhost
//
// Prints one line per check; exits 1 on any failure.
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const { values: opt } = parseArgs({
  options: { url: { type: "string" }, token: { type: "string", default: "" }, local: { type: "string" },
             remote: { type: "string" } },
});
const failures = [];
const fail = (what) => { failures.push(what); console.log(`FAIL ${what}`); };
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

const client = new Client({ name: "halo-samplers", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(opt.url),
  { requestInit: { headers: opt.token ? { Authorization: `Bearer ${opt.token}` } : {} } }));

// Calls a tool; the decoded JSON of its text (or the text), throws on isError.
async function call(name, args) {
  const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 30000 });
  const text = r.content[0].text;
  if (r.isError) throw new Error(`${name} ${JSON.stringify(args)}: ${text}`);
  try { return JSON.parse(text); } catch { return text; }
}

// Polls sample_read(since) until pred holds (5 s at most).
async function readUntil(id, node, since, pred) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await call("sample_read", { sampler_id: id, since, node });
    if (pred(r)) return r;
    if (Date.now() > deadline) throw new Error(`sampler ${id} on ${node}: condition never met`);
    await sleep(50);
  }
}

async function active(node) {
  const st = await call("sample_start", { node, tool: "process_list", arguments: { sort_by: "mailbox", limit: 5 },
                                          interval_ms: 100, duration_sec: 5 });
  const seqs = [];
  const first = await readUntil(st.sampler_id, node, 0, (r) => r.sequence >= 2);
  seqs.push(...first.samples.map((s) => s.sequence));
  const rows = JSON.parse(first.samples[0].data.content[0].text);
  if (!Array.isArray(rows) || !rows[0]?.PID) fail(`${node}: a sample holds no process_list rows`);
  const second = await readUntil(st.sampler_id, node, first.sequence, (r) => r.samples.length >= 2);
  seqs.push(...second.samples.map((s) => s.sequence));
  const entry = (await call("sample_list", { node })).find((s) => s.id === st.sampler_id);
  if (!entry || entry.owner !== node || entry.status !== "running") {
    fail(`${node}: sample_list does not show the running sampler: ${JSON.stringify(entry)}`);
  }
  const stop = await call("sample_stop", { node, sampler_id: st.sampler_id });
  seqs.push(...stop.samples.map((s) => s.sequence));
  const gap = seqs.findIndex((s, i) => s !== i + 1);
  if (gap >= 0) fail(`${node}: sequences over read, read(since), stop are not 1..N: ${seqs.join(",")}`);
  console.log(`active on ${node}: ${seqs.length} samples over 2 reads and the stop, sequences 1..${seqs.length}`);
}

async function passive(node) {
  const st = await call("sample_listen", { node, log_levels: ["warning"], event: "mcp_test_event", duration_sec: 5 });
  const mark = `sdk-${Math.random().toString(16).slice(2)}`;
  await call("send_message", { node, to: "mcp_test_logger", message: mark });
  const r = await readUntil(st.sampler_id, node, 0, (x) =>
    x.samples.some((s) => s.data.message === `mcp_test_logger: ${mark}`) && x.samples.some((s) => s.data.event));
  const ev = r.samples.find((s) => s.data.event).data.event;
  if (ev !== `'mcp_test_event'@'${node}'`) fail(`${node}: event entry names ${ev}`);
  await call("sample_stop", { node, sampler_id: st.sampler_id });
  console.log(`passive on ${node}: log line and ${ev} captured`);
}

try {
  for (const node of [opt.local, opt.remote]) {
    await active(node);
    await passive(node);
  }
} catch (e) {
  fail(e.message);
}
await client.close();
console.log(`samplers: ${failures.length === 0 ? "ok" : `${failures.length} failure(s)`}`);
process.exit(failures.length === 0 ? 0 : 1);
