/**
 * Admin listener (loopback by default): health, status, metrics and reload.
 * Kept apart from the proxy port so that it can never be reached through a route.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';

export interface AdminHandlers {
  status(): unknown;
  /** When given, GET /status answers with this instead (the --workers primary asks its workers). */
  statusAsync?(): Promise<unknown>;
  /** Prometheus text exposition; undefined until metrics are configured. */
  metrics?(): Promise<string>;
  reload(): Promise<{ ok: true; summary: string } | { ok: false; errors: string[] }>;
  /** Token POST /reload must present as a Bearer token; undefined: none required. */
  reloadToken(): string | undefined;
}

/** Constant-time comparison, so the token cannot be guessed byte by byte from response times. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return false;
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

export function createAdminServer(h: AdminHandlers): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = `${req.method} ${path}`;
    req.resume();
    switch (route) {
      case 'GET /healthz':
      case 'HEAD /healthz':
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case 'GET /status':
        if (h.statusAsync) {
          h.statusAsync().then(
            (s) => send(res, 200, 'application/json', `${JSON.stringify(s, null, 2)}\n`),
            (err: Error) => send(res, 500, 'text/plain; charset=utf-8', `${err.message}\n`),
          );
          return;
        }
        send(res, 200, 'application/json', `${JSON.stringify(h.status(), null, 2)}\n`);
        return;
      case 'GET /metrics':
        if (!h.metrics) {
          send(res, 404, 'text/plain; charset=utf-8', 'metrics not enabled\n');
          return;
        }
        h.metrics().then(
          (text) => send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', text),
          (err: Error) => send(res, 500, 'text/plain; charset=utf-8', `${err.message}\n`),
        );
        return;
      case 'POST /reload': {
        const token = h.reloadToken();
        if (token !== undefined && !tokenMatches(req.headers.authorization, token)) {
          res.setHeader('www-authenticate', 'Bearer realm="sluice-admin"');
          send(res, 401, 'application/json', `${JSON.stringify({ ok: false, errors: ['a valid Bearer token is required'] })}\n`);
          return;
        }
        h.reload().then(
          (r) => send(res, r.ok ? 200 : 400, 'application/json', `${JSON.stringify(r)}\n`),
          (err: Error) => send(res, 500, 'application/json', `${JSON.stringify({ ok: false, errors: [err.message] })}\n`),
        );
        return;
      }
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found: try /healthz, /status, /metrics, POST /reload\n');
    }
  });
}
