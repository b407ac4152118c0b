// Soak load generator (plain JS, no loader): open-loop requests at a fixed rate
// whose clients give up at random stages.
//
//   node bench/lib/soakclient.mjs --port PORT --rate 800 --duration 30 [--seed 1]
//
// Each request picks one behaviour (weights in BEHAVIOURS):
//   complete        GET / (x-tier premium or free), read the whole answer (keep-alive agent)
//   abort-waiting   GET /, then destroy the socket 0–300 ms later (queued or in service)
//   abort-body      GET /big?size=1MiB, destroy the socket on the first body chunk
//   partial-headers connect, send half a request head, close 0–200 ms later
//   connect-close   connect and close without sending a byte
// After the duration it stops sending, waits up to 10 s for what is outstanding
// and prints one JSON object on stdout with counts per behaviour.
import http from 'node:http';
import net from 'node:net';

const argv = process.argv.slice(2);
const opt = (n, d) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 ? argv[i + 1] : d;
};
const port = Number(opt('port'));
const rate = Number(opt('rate', '800'));
const durationS = Number(opt('duration', '30'));
let seed = Number(opt('seed', '1')) >>> 0 || 1;
// xorshift32: reproducible and cheap
const rand = () => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 4294967296;
};
const BEHAVIOURS = [
  ['complete', 0.5],
  ['abort-waiting', 0.2],
  ['abort-body', 0.1],
  ['partial-headers', 0.1],
  ['connect-close', 0.1],
];
const stats = {};
for (const [b] of BEHAVIOURS) stats[b] = { started: 0, ok: 0, rejected: 0, backendOverload: 0, otherStatus: 0, errors: 0, aborted: 0 };
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });
let outstanding = 0;

function pick() {
  let x = rand();
  for (const [b, w] of BEHAVIOURS) {
    if (x < w) return b;
    x -= w;
  }
  return 'complete';
}

function finish(st, field) {
  st[field]++;
  outstanding--;
}

function httpReq(kind) {
  const st = stats[kind];
  let done = false;
  const end = (field) => {
    if (!done) {
      done = true;
      finish(st, field);
    }
  };
  const path = kind === 'abort-body' ? '/big?size=1048576' : '/';
  const req = http.request(
    { host: '127.0.0.1', port, path, method: 'GET', agent: kind === 'complete' ? agent : false, headers: { 'x-tier': rand() < 0.3 ? 'premium' : 'free' } },
    (res) => {
      const code = res.statusCode ?? 0;
      if (kind === 'abort-body' && code === 200) {
        res.once('data', () => {
          req.destroy();
          end('aborted');
        });
        res.on('error', () => {});
        return;
      }
      let body = '';
      if (code !== 200) res.on('data', (d) => (body += d));
      else res.resume();
      res.on('end', () => {
        if (code === 200) end('ok');
        else if (code === 503 && body.startsWith('backend overload')) end('backendOverload');
        else if (code === 503 || code === 429) end('rejected');
        else end('otherStatus');
      });
      res.on('error', () => end('errors'));
    },
  );
  req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  req.on('error', () => end('errors'));
  req.end();
  if (kind === 'abort-waiting') {
    setTimeout(() => {
      if (!done) {
        end('aborted');
        req.destroy();
      }
    }, rand() * 300);
  }
}

function rawReq(kind) {
  const st = stats[kind];
  const s = net.connect(port, '127.0.0.1');
  let done = false;
  const end = (field) => {
    if (!done) {
      done = true;
      finish(st, field);
    }
  };
  s.on('error', () => end('errors'));
  s.on('data', () => {});
  s.once('connect', () => {
    if (kind === 'connect-close') {
      s.destroy();
      end('aborted');
      return;
    }
    s.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nx-tier: fr');
    setTimeout(() => {
      s.destroy();
      end('aborted');
    }, rand() * 200);
  });
}

const nowMs = () => performance.now();
const t0 = nowMs();
const endAt = t0 + durationS * 1000;
const step = 1000 / rate;
let next = t0;
const timer = setInterval(() => {
  const now = nowMs();
  while (next <= now && next < endAt) {
    next += step;
    const kind = pick();
    stats[kind].started++;
    outstanding++;
    if (kind === 'partial-headers' || kind === 'connect-close') rawReq(kind);
    else httpReq(kind);
  }
  if (now >= endAt) {
    clearInterval(timer);
    const deadline = Date.now() + 12_000;
    const wait = setInterval(() => {
      if (outstanding <= 0 || Date.now() > deadline) {
        clearInterval(wait);
        process.stdout.write(`${JSON.stringify({ durationS, rate, outstandingAtEnd: outstanding, behaviours: stats })}\n`);
        agent.destroy();
        process.exit(0);
      }
    }, 20);
  }
}, 2);
