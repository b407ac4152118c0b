// Plain JavaScript on purpose: peers run without a TypeScript loader so that
// their RSS and CPU figures are not inflated by one.
// Benchmark backend: a small Node HTTP server (HTTP/1.1, optionally h2c).
//
//   node bench/lib/backend.mjs [--port 0] [--h2] [--fragile --slots N --service-ms MS]
//
// Prints `backend listening PORT` when ready.
//   GET  /            1 KiB body (any path not listed below)
//   GET  /big?size=N  streams N bytes (default 10 MiB) from a preallocated buffer
//   POST /upload      consumes the body, answers with the byte count
//   GET  /__stats     JSON: served, maxConcurrency, overloadRejected, inFlight
//   POST /__reset     resets the counters
// Fragile mode: at most --slots requests are served at once, each takes
// --service-ms; a request arriving while all slots are busy is answered 503
// immediately and counted (overloadRejected). maxConcurrency is what it saw.
import http from "node:http";
import http2 from "node:http2";
const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const port = Number(arg("port", "0"));
const fragile = args.includes("--fragile");
const h2 = args.includes("--h2");
const slots = Number(arg("slots", "8"));
const serviceMs = Number(arg("service-ms", "20"));
const ONE_KIB = Buffer.alloc(1024, "x");
const CHUNK = Buffer.alloc(64 * 1024, "y");
let inFlight = 0;
let maxConcurrency = 0;
let served = 0;
let overloadRejected = 0;
// Fragile mode: slot refill gaps. Each freed slot's time is queued; the next
// admitted request is matched with the oldest unmatched one: the gap is how long
// a slot stood idle between two requests (under overload, the proxy's refill latency).
let freedAt = [];
let gaps = [];
/** TCP connections accepted (a proxy that reuses its upstream connections opens few). */
let connections = 0;
function sendBig(res, size) {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(size) });
  let left = size;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      const ok = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
      if (!ok) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  pump();
}
function handler(req, res) {
  const url = req.url ?? "/";
  if (url.startsWith("/__stats")) {
    const g = Float64Array.from(gaps).sort();
    const q = (p) => (g.length ? Math.round(g[Math.min(g.length - 1, Math.floor(p * g.length))] * 1000) / 1000 : null);
    const refillGapMs = { n: g.length, mean: g.length ? Math.round((g.reduce((a, b) => a + b, 0) / g.length) * 1000) / 1000 : null, p50: q(0.5), p90: q(0.9), p99: q(0.99) };
    const body = JSON.stringify({ served, maxConcurrency, overloadRejected, inFlight, slots: fragile ? slots : null, refillGapMs, connections });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
    return;
  }
  if (url.startsWith("/__reset")) {
    served = 0;
    maxConcurrency = 0;
    overloadRejected = 0;
    freedAt = [];
    gaps = [];
    connections = 0;
    req.resume();
    res.writeHead(204);
    res.end();
    return;
  }
  if (req.method === "POST" || req.method === "PUT") {
    let n = 0;
    req.on("data", (c) => {
      n += c.length;
    });
    req.on("end", () => {
      served++;
      const body = JSON.stringify({ received: n });
      res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
      res.end(body);
    });
    return;
  }
  if (url.startsWith("/big")) {
    const m = /size=(\d+)/.exec(url);
    served++;
    sendBig(res, m ? Number(m[1]) : 10 * 1024 * 1024);
    return;
  }
  if (fragile) {
    if (inFlight >= slots) {
      overloadRejected++;
      res.writeHead(503, { "content-type": "text/plain", "content-length": "17" });
      res.end("backend overload\n");
      return;
    }
    inFlight++;
    if (inFlight > maxConcurrency) maxConcurrency = inFlight;
    const t = performance.now();
    // Freed slots older than 1 s were idle for want of work, not refill latency.
    while (freedAt.length && t - freedAt[0] > 1000) freedAt.shift();
    if (freedAt.length) gaps.push(t - freedAt.shift());
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      inFlight--;
      freedAt.push(performance.now());
    };
    res.on("close", finish);
    setTimeout(() => {
      finish();
      served++;
      res.writeHead(200, { "content-type": "text/plain", "content-length": String(ONE_KIB.length) });
      res.end(ONE_KIB);
    }, serviceMs);
    return;
  }
  inFlight++;
  if (inFlight > maxConcurrency) maxConcurrency = inFlight;
  inFlight--;
  served++;
  res.writeHead(200, { "content-type": "text/plain", "content-length": "1024" });
  res.end(ONE_KIB);
}
const server = h2 ? http2.createServer({ settings: { maxConcurrentStreams: 1e3 } }, handler) : http.createServer({ keepAliveTimeout: 6e4 }, handler);
server.on("connection", () => connections++);
if (!h2) {
  server.headersTimeout = 65e3;
  server.maxHeadersCount = 100;
}
server.listen(port, "127.0.0.1", () => {
  const addr = server.address();
  const p = typeof addr === "object" && addr ? addr.port : port;
  process.stdout.write(`backend listening ${p}
`);
});
const stop = () => {
  server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
