// Plain JavaScript on purpose (see backend.mjs). A backend with a concurrency knee:
//
//   node bench/lib/knee-backend.mjs [--port 0] [--knee 8] [--service-ms 20]
//
// Prints `backend listening PORT` when ready. A request's latency is fixed on
// arrival from the requests in progress n (itself included): service-ms while
// n <= knee, service-ms·(n/knee)² past it (contention: latency climbs steeply and
// throughput falls past the knee; capacity = knee·1000/service-ms req/s).
//   GET  /                 2-byte body after that latency
//   GET  /__stats          JSON: served, inFlight, knee, maxSince (max in flight since the
//                          last /__mark), p95Since (95th percentile of in flight sampled every 5 ms)
//   POST /__mark           starts a new observation period
//   POST /__knee?n=N       changes the knee (capacity scales with it)
import http from "node:http";
const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
let knee = Number(arg("knee", "8"));
const serviceMs = Number(arg("service-ms", "20"));
let inFlight = 0;
let served = 0;
let maxSince = 0;
let samples = [];
setInterval(() => samples.push(inFlight), 5).unref();
const server = http.createServer({ keepAliveTimeout: 6e4 }, (req, res) => {
  const url = req.url ?? "/";
  if (url.startsWith("/__stats")) {
    const sorted = samples.slice().sort((a, b) => a - b);
    const p95 = sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] : 0;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ served, inFlight, knee, maxSince, p95Since: p95 }));
    return;
  }
  if (url.startsWith("/__mark")) {
    maxSince = inFlight;
    samples = [];
    req.resume();
    res.writeHead(204);
    res.end();
    return;
  }
  if (url.startsWith("/__knee")) {
    knee = Number(/n=(\d+)/.exec(url)?.[1] ?? knee);
    req.resume();
    res.writeHead(204);
    res.end();
    return;
  }
  inFlight++;
  if (inFlight > maxSince) maxSince = inFlight;
  const n = inFlight;
  const ms = n <= knee ? serviceMs : serviceMs * (n / knee) ** 2;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    inFlight--;
  };
  res.on("close", finish);
  req.resume();
  setTimeout(() => {
    finish();
    served++;
    res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
    res.end("ok");
  }, ms);
});
server.listen(Number(arg("port", "0")), "127.0.0.1", () => {
  process.stdout.write(`backend listening ${server.address().port}\n`);
});
const stop = () => {
  server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
