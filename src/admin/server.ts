/**
 * Admin listener (loopback by default): liveness (/healthz), readiness
 * (/readyz), status, metrics, reload and the live dashboard.
 * Kept apart from the proxy port so that it can never be reached through a route.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AdminProtectable } from '../policy/ops.js';
import { DASHBOARD_HTML, chartJsSource } from './dashboard.js';

export type ReloadResult =
  | {
      ok: true;
      summary: string;
      /** Changes that cannot apply to a running process (listen, admin address); a restart applies them. */
      restartRequired?: string[];
    }
  | { ok: false; errors: string[] };

export interface AdminHandlers {
  status(): unknown;
  /** When given, GET /status answers with this instead (the --workers primary asks its workers). */
  statusAsync?(): Promise<unknown>;
  /** Prometheus text exposition; undefined until metrics are configured. */
  metrics?(): Promise<string>;
  reload(): Promise<ReloadResult>;
  /** The admin token (a Bearer token); undefined: none required anywhere. */
  reloadToken(): string | undefined;
  /** Endpoints that need the token when one is set. Default: reload only. */
  protectedEndpoints?(): ReadonlySet<AdminProtectable>;
  /**
   * Why sluice should not get traffic now (empty: ready): no policy yet,
   * draining, or an admission dependency down (readiness hooks). GET /readyz.
   */
  notReady?(): string[];
  /** JSON for GET /dashboard/data; undefined: no dashboard. */
  dashboardData?(): unknown;
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
    const guarded = guard(route);
    if (guarded !== undefined) {
      const token = h.reloadToken();
      const needed = h.protectedEndpoints?.() ?? DEFAULT_PROTECTED;
      if (token !== undefined && needed.has(guarded) && !tokenMatches(req.headers.authorization, token)) {
        res.setHeader('www-authenticate', 'Bearer realm="sluice-admin"');
        send(res, 401, 'application/json', `${JSON.stringify({ ok: false, errors: ['a valid Bearer token is required'] })}\n`);
        return;
      }
    }
    switch (route) {
      case 'GET /healthz':
      case 'HEAD /healthz':
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case 'GET /readyz':
      case 'HEAD /readyz': {
        const why = h.notReady?.() ?? [];
        if (why.length === 0) send(res, 200, 'text/plain; charset=utf-8', 'ready\n');
        else send(res, 503, 'text/plain; charset=utf-8', `not ready: ${why.join('; ')}\n`);
        return;
      }
      case 'GET /dashboard':
        if (!h.dashboardData) break;
        res.setHeader('content-security-policy', "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:");
        send(res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML);
        return;
      case 'GET /dashboard/chart.js':
        chartJsSource().then(
          (js) => send(res, 200, 'text/javascript; charset=utf-8', js),
          (err: Error) => send(res, 500, 'text/plain; charset=utf-8', `chart.js not found: ${err.message}\n`),
        );
        return;
      case 'GET /dashboard/data':
        if (!h.dashboardData) break;
        send(res, 200, 'application/json', JSON.stringify(h.dashboardData()));
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
        h.reload().then(
          (r) => send(res, r.ok ? 200 : 400, 'application/json', `${JSON.stringify(r)}\n`),
          (err: Error) => send(res, 500, 'application/json', `${JSON.stringify({ ok: false, errors: [err.message] })}\n`),
        );
        return;
      }
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found: try /healthz, /readyz, /status, /metrics, /dashboard, POST /reload\n');
  });
}

const DEFAULT_PROTECTED: ReadonlySet<AdminProtectable> = new Set(['reload']);

/** Which token-protectable endpoint a request is for (policy admin.requireToken). */
function guard(route: string): AdminProtectable | undefined {
  if (route === 'POST /reload') return 'reload';
  if (route === 'GET /status') return 'status';
  if (route === 'GET /metrics') return 'metrics';
  // The page and chart.js are static and public; the figures are not.
  if (route === 'GET /dashboard/data') return 'dashboard';
  return undefined;
}
