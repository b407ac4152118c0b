// Plain JavaScript on purpose: peers run without a TypeScript loader so that
// their RSS and CPU figures are not inflated by one.
// Peer: bare `http2-proxy` (no scheduling), HTTP/1.1 inbound, or h2c inbound with --h2.
//   node bench/lib/peer-http2-proxy.mjs --target-port PORT [--port 0] [--h2]
// Prints `peer listening PORT` when ready. Upstream is HTTP/1.1 with Node's
// default global agent (keep-alive is on by default in Node >= 19).
import http from "node:http";
import http2 from "node:http2";
import proxy from "http2-proxy";
const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const targetPort = Number(arg("target-port"));
const onError = (err, _req, res) => {
  if (!err) return;
  try {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  } catch {
  }
};
const handler = (req, res) => {
  proxy.web(req, res, { hostname: "127.0.0.1", port: targetPort }, (err) => onError(err, req, res));
};
const server = args.includes("--h2") ? http2.createServer({ settings: { maxConcurrentStreams: 1e3 } }, handler) : http.createServer({ keepAliveTimeout: 6e4 }, handler);
server.listen(Number(arg("port", "0")), "127.0.0.1", () => {
  const addr = server.address();
  process.stdout.write(`peer listening ${typeof addr === "object" && addr ? addr.port : 0}
`);
});
process.on("SIGTERM", () => process.exit(0));
