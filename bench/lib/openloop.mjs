// Open-loop HTTP/1.1 load generator with request classes (plain JS, no loader).
//
//   node bench/lib/openloop.mjs --url http://127.0.0.1:PORT/ --duration 10 \
//        --class premium=300 --class free=900 [--timeout-ms 10000]
//
// Each class sends at a fixed rate (requests/s) with header `x-tier: NAME`,
// regardless of how fast responses come back (open loop: no coordinated
// omission; latency is measured from the scheduled send time). After the
// duration it stops sending, waits for outstanding responses (up to the
// timeout) and prints one JSON object on stdout:
//   { durationS, classes: { NAME: { sent, ok, rejected, backendOverload,
//     otherStatus: {code: n}, errors, timeouts, p50ms, p99ms, okPerSec } } }
// okPerSec = 2xx responses / windowS (send phase + drain until the last response).
// rejected = 503/429 answered by the proxy; backendOverload = the fragile
// backend's own 503 (body "backend overload"), passed through.
import http from 'node:http';

const argv = process.argv.slice(2);
const opt = (n, d) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 ? argv[i + 1] : d;
};
const url = new URL(opt('url'));
const durationS = Number(opt('duration', '10'));
const timeoutMs = Number(opt('timeout-ms', '10000'));
const classes = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--class') {
    const [name, rate] = argv[i + 1].split('=');
    classes.push({ name, rate: Number(rate) });
  }
}
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 20000 });
const stats = {};
for (const c of classes) {
  stats[c.name] = { sent: 0, ok: 0, rejected: 0, backendOverload: 0, otherStatus: {}, errors: 0, timeouts: 0, lat: [] };
}
let outstanding = 0;
let lastDone = 0;
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function send(cls, scheduled) {
  const st = stats[cls];
  st.sent++;
  outstanding++;
  let finished = false;
  let timedOut = false;
  const done = () => {
    if (!finished) {
      finished = true;
      lastDone = nowMs();
      outstanding--;
    }
  };
  const req = http.request(
    { host: url.hostname, port: url.port, path: url.pathname, method: 'GET', agent, headers: { 'x-tier': cls } },
    (res) => {
      const code = res.statusCode ?? 0;
      let body = '';
      if (code !== 200) res.on('data', (d) => (body += d));
      else res.resume();
      res.on('end', () => {
        const lat = nowMs() - scheduled;
        if (code >= 200 && code < 300) {
          st.ok++;
          st.lat.push(lat);
        } else if (code === 503 && body.startsWith('backend overload')) st.backendOverload++;
        else if (code === 503 || code === 429) st.rejected++;
        else st.otherStatus[code] = (st.otherStatus[code] ?? 0) + 1;
        done();
      });
      res.on('error', () => {
        st.errors++;
        done();
      });
    },
  );
  req.setTimeout(timeoutMs, () => {
    timedOut = true;
    st.timeouts++;
    req.destroy(new Error('timeout'));
  });
  req.on('error', () => {
    if (!finished) {
      if (!timedOut) st.errors++;
      done();
    }
  });
  req.end();
}

const t0 = nowMs();
const end = t0 + durationS * 1000;
const next = classes.map(() => t0);
const timer = setInterval(() => {
  const now = nowMs();
  classes.forEach((c, i) => {
    const step = 1000 / c.rate;
    while (next[i] <= now && next[i] < end) {
      send(c.name, next[i]);
      next[i] += step;
    }
  });
  if (now >= end) {
    clearInterval(timer);
    const deadline = Date.now() + timeoutMs + 2000;
    const wait = setInterval(() => {
      if (outstanding === 0 || Date.now() > deadline) {
        clearInterval(wait);
        report();
      }
    }, 20);
  }
}, 1);

function pct(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function report() {
  // throughput is over the whole window in which responses arrived: the send
  // phase plus the drain of queued requests after it
  const windowS = Math.max(durationS, (lastDone - t0) / 1000);
  const out = { durationS, windowS, outstandingAtEnd: outstanding, classes: {} };
  for (const c of classes) {
    const st = stats[c.name];
    const sorted = Float64Array.from(st.lat).sort();
    const { lat, ...rest } = st;
    out.classes[c.name] = { ...rest, rate: c.rate, p50ms: pct(sorted, 0.5), p99ms: pct(sorted, 0.99), okPerSec: st.ok / windowS };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  agent.destroy();
  process.exit(0);
}
