// Closed-loop WebSocket echo with node's `ws`: the native peer of rtbench's WebSocket clients.
//
//   node ws_echo.mjs --url ws://127.0.0.1:PORT/ws --connections 1 --warmup 1 --duration 4 \
//       --payload '"rtbench-rtbench-"'
//
// Each connection sends rtbench's echo envelope ({"op":"echo","id":N,"ts":T,"payload":P},
// the bytes servers/protocol.py encode_request makes), waits for the reply, checks it is an
// ok echo of that id, and sends the next. Round trips are timed with process.hrtime.bigint.
// Prints one JSON line per event, like rtbench's load generator:
//   {"event":"phase","phase":"measure"}   when the warm-up ends
//   {"event":"phase","phase":"drain"}     when the measured window ends
//   {"event":"done", count, errors, p50_us, p99_us, window_s, rate_per_s, ...}
// Exits 1 with a message on stderr when it cannot run, 2 for a non-loopback URL.

import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import WebSocket from "ws";

const require = createRequire(import.meta.url);
const WS_VERSION = require("ws/package.json").version;

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    connections: { type: "string", default: "1" },
    warmup: { type: "string", default: "1" },
    duration: { type: "string", default: "4" },
    payload: { type: "string", default: '""' },
    "max-messages": { type: "string", default: "1000000" },
    timeout: { type: "string", default: "5" },
  },
});

function fail(message, code = 1) {
  process.stderr.write(`ws_echo: ${message}\n`);
  process.exit(code);
}

function number(name, min) {
  const value = Number(opts[name]);
  if (!Number.isFinite(value) || value < min) fail(`--${name} must be a number >= ${min}`);
  return value;
}

if (!opts.url) fail("--url is required");
let target;
try {
  target = new URL(opts.url);
} catch {
  fail(`--url is not a URL: ${JSON.stringify(opts.url)}`);
}
// Traffic stays on this machine: loopback only.
const host = target.hostname.replace(/^\[|\]$/g, "");
if (!(host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host))) {
  fail(`refusing non-loopback target ${JSON.stringify(opts.url)}`, 2);
}
const connections = Math.floor(number("connections", 1));
const warmupNs = BigInt(Math.round(number("warmup", 0) * 1e9));
const durationNs = BigInt(Math.round(number("duration", 0.001) * 1e9));
const maxMessages = Math.floor(number("max-messages", 1));
const timeoutMs = number("timeout", 0.001) * 1000;
try {
  JSON.parse(opts.payload);
} catch {
  fail("--payload must be a JSON value");
}
const payload = opts.payload;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const clock = process.hrtime.bigint;
const start = clock();
const warmupEnd = start + warmupNs;
const end = warmupEnd + durationNs;
const latencies = [];
const errors = {};
let nextId = 1;
let budget = maxMessages;
let measureStarted = 0n;
let measureEnded = 0n;

function countError(code) {
  errors[code] = (errors[code] || 0) + 1;
}

// The phase lines let the caller read both processes' CPU over the measured window only.
// Each is printed once: by its timer, or after the loops end if a busy loop held the timer.
function markMeasure() {
  if (measureStarted) return;
  measureStarted = clock();
  emit({ event: "phase", phase: "measure" });
}
function markDrain() {
  if (measureEnded) return;
  markMeasure();
  measureEnded = clock();
  emit({ event: "phase", phase: "drain" });
}
const measureTimer = setTimeout(markMeasure, Number(warmupNs / 1_000_000n));
const drainTimer = setTimeout(markDrain, Number((warmupNs + durationNs) / 1_000_000n));

// Reply timeouts are swept by one interval rather than a timer per message, so the peer
// spends nothing per round trip beyond the send, the parse and the clock reads.
const inFlight = new Set();
const timeoutNs = BigInt(Math.round(timeoutMs * 1e6));
const sweeper = setInterval(() => {
  const now = clock();
  for (const conn of inFlight) if (now - conn.sent > timeoutNs) conn.finish("timeout");
}, Math.min(250, timeoutMs));

function runConnection() {
  return new Promise((resolve) => {
    const ws = new WebSocket(opts.url, { perMessageDeflate: false });
    let id = 0;
    let finished = false;
    const conn = { sent: 0n, finish: null };
    const finish = (error) => {
      if (finished) return;
      finished = true;
      if (error) countError(error);
      inFlight.delete(conn);
      ws.removeAllListeners("message");
      ws.close();
      resolve();
    };
    const sendNext = () => {
      const now = clock();
      if (now >= end || budget <= 0) return finish(null);
      budget -= 1;
      id = nextId++;
      conn.sent = clock();
      ws.send(`{"op":"echo","id":${id},"ts":${conn.sent},"payload":${payload}}`);
    };
    conn.finish = finish;
    ws.on("open", () => {
      inFlight.add(conn);
      sendNext();
    });
    ws.on("error", (err) => finish(`error:${err.code || err.message}`));
    // The server closing before the end is an error, as for rtbench's clients.
    ws.on("close", () => finish(clock() < end ? "closed" : null));
    ws.on("message", (data) => {
      const received = clock();
      const sent = conn.sent;
      let reply;
      try {
        reply = JSON.parse(data);
      } catch {
        reply = null;
      }
      const measured = sent >= warmupEnd && sent < end;
      if (!reply || reply.ok !== true || reply.id !== id) {
        if (measured) countError(reply ? (reply.ok !== true ? "error_reply" : "id_mismatch") : "bad_reply");
      } else if (measured) {
        latencies.push(Number(received - sent));
      }
      sendNext();
    });
  });
}

function percentile(sorted, q) {
  // Nearest rank, as rtbench's lag percentiles: the value at index q * (n - 1).
  return sorted.length ? sorted[Math.floor(q * (sorted.length - 1))] : null;
}

const hardStop = setTimeout(
  () => fail("connections did not finish within the run's deadline"),
  Number((warmupNs + durationNs) / 1_000_000n) + timeoutMs + 2000,
);

await Promise.all(Array.from({ length: connections }, runConnection));
clearTimeout(measureTimer);
clearTimeout(drainTimer);
clearTimeout(hardStop);
clearInterval(sweeper);
markDrain();
// Replies count when their request left in [warmupEnd, end): that is the window, cut
// short when every connection stopped early (errors, message budget).
const windowS = Number((measureEnded < end ? measureEnded : end) - warmupEnd) / 1e9;
latencies.sort((a, b) => a - b);
const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
emit({
  event: "done",
  count: latencies.length,
  errors: errorCount,
  errors_by_code: errors,
  p50_us: latencies.length ? percentile(latencies, 0.5) / 1000 : null,
  p99_us: latencies.length ? percentile(latencies, 0.99) / 1000 : null,
  window_s: windowS,
  rate_per_s: windowS > 0 ? latencies.length / windowS : null,
  connections,
  node: process.version,
  ws: WS_VERSION,
});
