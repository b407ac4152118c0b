/**
 * Policy keys for operating sluice: access logging, how much of sluice's
 * internals its answers expose, and which admin endpoints need the token.
 * Schema pieces are spliced into the one schema (schema.ts); `compileOps`
 * resolves defaults for the frozen Policy (compile.ts).
 *
 * ```yaml
 * log: { access: true, accessSample: 1 }   # one info line per request; sample: fraction logged
 * errors: { debug: false }                 # true: problem+json details name the upstream target address
 * serverTiming: all                        # all | trusted (peers in trustedProxies) | off
 * admin: { token: ..., requireToken: [reload, status, metrics, dashboard] }   # default [reload]
 * ```
 */
import { Type, type Static } from '@sinclair/typebox';

export const LogSchema = Type.Object(
  {
    access: Type.Optional(Type.Boolean({ description: 'One JSON line per request at info level (method, path, status, class, route, upstream target, protocol, bytes, queue and upstream ms, outcome, trace and request id). Default true.' })),
    accessSample: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Fraction of requests logged (0..1); errors (status 5xx and rejections) are always logged. Default 1.' })),
  },
  { additionalProperties: false, description: 'Logging.' },
);

export const ErrorsSchema = Type.Object(
  {
    debug: Type.Optional(Type.Boolean({ description: 'true: the answers sluice gives itself name the upstream target address (e.g. "127.0.0.1:3000 unreachable: ECONNREFUSED"). Logs always do. Default false.' })),
  },
  { additionalProperties: false, description: 'What the problem+json answers reveal.' },
);

export const ServerTimingSchema = Type.Union([Type.Literal('all'), Type.Literal('trusted'), Type.Literal('off')], {
  description: 'Server-Timing (queue and upstream durations) on forwarded responses: all, trusted (only to peers in trustedProxies), off. Default all.',
  errorMessage: 'all, trusted or off',
});

export const ADMIN_PROTECTABLE = ['reload', 'status', 'metrics', 'dashboard'] as const;
export const RequireTokenSchema = Type.Array(
  Type.Union(ADMIN_PROTECTABLE.map((n) => Type.Literal(n)), { errorMessage: ADMIN_PROTECTABLE.join(', ') }),
  { description: 'Admin endpoints that need "Authorization: Bearer <token>" when a token is set: reload, status, metrics, dashboard. Default [reload].' },
);

export type AdminProtectable = (typeof ADMIN_PROTECTABLE)[number];

/** Compiled operating settings (part of Policy). */
export interface OpsPolicy {
  readonly log: { readonly access: boolean; readonly accessSample: number };
  readonly errors: { readonly debug: boolean };
  readonly serverTiming: Static<typeof ServerTimingSchema>;
  /** Admin endpoints that need the token (when one is set). */
  readonly adminRequireToken: ReadonlySet<AdminProtectable>;
}

export function compileOps(raw: {
  log?: Static<typeof LogSchema>;
  errors?: Static<typeof ErrorsSchema>;
  serverTiming?: Static<typeof ServerTimingSchema>;
  admin?: { requireToken?: AdminProtectable[] };
}): OpsPolicy {
  return {
    log: Object.freeze({ access: raw.log?.access ?? true, accessSample: raw.log?.accessSample ?? 1 }),
    errors: Object.freeze({ debug: raw.errors?.debug ?? false }),
    serverTiming: raw.serverTiming ?? 'all',
    adminRequireToken: new Set(raw.admin?.requireToken ?? ['reload']),
  };
}
