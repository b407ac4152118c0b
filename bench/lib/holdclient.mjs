// Opens N concurrent GET requests (one connection each) as fast as it can and
// keeps them open until they finish or --hold-s passes (plain JS, no loader).
//   node bench/lib/holdclient.mjs --port P --n 10000 --hold-s 10
// Prints progress lines `opened N` and finally one JSON line:
//   { opened, connectErrors, responses: {status: n}, pendingAtEnd }
import http from 'node:http';

const argv = process.argv.slice(2);
const opt = (n, d) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 ? argv[i + 1] : d;
};
const port = Number(opt('port'));
const n = Number(opt('n', '10000'));
const holdS = Number(opt('hold-s', '10'));
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
let opened = 0;
let connectErrors = 0;
let pending = 0;
const responses = {};
const reqs = [];
function one() {
  pending++;
  const req = http.get({ host: '127.0.0.1', port, path: '/', agent, headers: { 'x-tier': 'free' } }, (res) => {
    res.resume();
    res.on('end', () => {
      responses[res.statusCode] = (responses[res.statusCode] ?? 0) + 1;
      pending--;
    });
  });
  req.on('socket', (s) => s.once('connect', () => opened++));
  req.on('error', () => {
    connectErrors++;
    pending--;
  });
  reqs.push(req);
}
let i = 0;
(function batch() {
  for (let k = 0; k < 500 && i < n; k++, i++) one();
  if (i < n) setImmediate(batch);
  else process.stdout.write(`issued ${n}\n`);
})();
setTimeout(() => {
  const out = { opened, connectErrors, responses, pendingAtEnd: pending };
  process.stdout.write(JSON.stringify(out) + '\n');
  for (const r of reqs) r.destroy();
  process.exit(0);
}, holdS * 1000);
