// Plain JavaScript on purpose: peers run without a TypeScript loader so that
// their RSS and CPU figures are not inflated by one.
// Peer: npm `http-proxy` with a keep-alive agent, no scheduling.
//   node bench/lib/peer-http-proxy.mjs --target http://127.0.0.1:PORT [--port 0]
// Prints `peer listening PORT` when ready.
import http from "node:http";
import httpProxy from "http-proxy";
const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const target = arg("target");
if (!target) throw new Error("--target is required");
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ target, agent, xfwd: false });
proxy.on("error", (_err, _req, res) => {
  const r = res;
  if (!r.headersSent) r.writeHead(502);
  r.end();
});
const server = http.createServer({ keepAliveTimeout: 6e4 }, (req, res) => proxy.web(req, res));
server.listen(Number(arg("port", "0")), "127.0.0.1", () => {
  const addr = server.address();
  process.stdout.write(`peer listening ${typeof addr === "object" && addr ? addr.port : 0}
`);
});
process.on("SIGTERM", () => process.exit(0));
