/**
 * One registry of the answers sluice gives itself. Each code has a stable name,
 * an HTTP status and a problem type; stage code throws or returns `ProxyError`s
 * and the accept stage turns them into RFC 9457 problem+json responses.
 */
export const ErrorCodes = {
  NO_ROUTE: { status: 404, title: 'No route matches the request' },
  RATE_LIMITED: { status: 429, title: 'Rate limit exceeded' },
  QUEUE_FULL: { status: 503, title: 'Queue full' },
  SHED: { status: 503, title: 'Shed for a higher-priority request' },
  QUEUE_TIMEOUT: { status: 503, title: 'Waited too long in the queue' },
  SHUTTING_DOWN: { status: 503, title: 'Proxy is shutting down' },
  UPSTREAM_UNREACHABLE: { status: 502, title: 'Upstream unreachable' },
  UPSTREAM_RESET: { status: 502, title: 'Upstream reset the connection' },
  UPSTREAM_TIMEOUT: { status: 504, title: 'Upstream timed out' },
  UPSTREAM_TLS: { status: 502, title: 'Upstream TLS handshake failed' },
  HEADERS_TOO_LARGE: { status: 431, title: 'Request headers too large' },
  BODY_TOO_LARGE: { status: 413, title: 'Request body too large' },
  URI_TOO_LONG: { status: 414, title: 'Request target too long' },
  BAD_REQUEST: { status: 400, title: 'Bad request' },
  REQUEST_TIMEOUT: { status: 408, title: 'Request body stalled' },
  UNAUTHORIZED: { status: 401, title: 'A valid identity is required' },
  FORBIDDEN: { status: 403, title: 'Client address not allowed' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed on this route' },
  NO_HEALTHY_UPSTREAM: { status: 503, title: 'No healthy upstream target' },
  TRANSFER_CODING_NOT_IMPLEMENTED: { status: 501, title: 'Transfer coding not implemented' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

export interface ProxyErrorOptions {
  /** Class the request was in when it failed, if it got that far. */
  className?: string;
  /** Milliseconds after which a retry may succeed (Retry-After). */
  retryAfterMs?: number;
  /** Extra response headers (e.g. RateLimit). */
  headers?: Record<string, string>;
  cause?: unknown;
}

export class ProxyError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly className: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, detail: string, opts: ProxyErrorOptions = {}) {
    super(detail, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ProxyError';
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.className = opts.className;
    this.retryAfterMs = opts.retryAfterMs;
    this.headers = opts.headers;
  }

  /** RFC 9457 body. `type` is a stable URN so clients can branch on it. */
  toProblem(): Record<string, unknown> {
    const body: Record<string, unknown> = {
      type: `urn:sluice:error:${this.code.toLowerCase().replace(/_/g, '-')}`,
      title: ErrorCodes[this.code].title,
      status: this.status,
      detail: this.message,
    };
    if (this.className !== undefined) body.class = this.className;
    return body;
  }

  /** Retry-After in whole seconds, at least 1 (RFC 9110 allows only integers). */
  retryAfterSeconds(): number | undefined {
    if (this.retryAfterMs === undefined) return undefined;
    return Math.max(1, Math.ceil(this.retryAfterMs / 1000));
  }
}
