/**
 * What one finished exchange tells an adaptive limit, from the request's
 * context: the pipeline passes the result to `Permit.release`.
 *
 * After Netflix concurrency-limits' listener outcomes: success (a latency
 * sample), dropped (the upstream showed overload) and ignore (nothing learned).
 * - response headers arrived with 503 or 429 from the upstream, or no headers
 *   within the upstream timeout (504): dropped;
 * - response headers arrived otherwise: a latency sample, time to headers;
 * - anything else (client went away first, connection refused or reset,
 *   rejected before forwarding): ignored, since it says nothing about load.
 */
import type { RequestContext } from '../../accept/context.js';
import type { ExchangeSample } from '../scheduler.js';

const DROPPED: ExchangeSample = Object.freeze({ kind: 'dropped' });

export function sampleOf(ctx: RequestContext, outcome: RequestContext['outcome'] = ctx.outcome): ExchangeSample | undefined {
  if (ctx.upstreamHeadersAt > 0) {
    if (ctx.status === 503 || ctx.status === 429) return DROPPED;
    return { kind: 'latency', rttMs: ctx.upstreamHeadersAt - ctx.upstreamStart };
  }
  return outcome === 'upstream_timeout' ? DROPPED : undefined;
}
