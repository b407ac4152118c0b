/** `sluice explain`: which route, upstream and class a described request would get, and why. */
import { isIP } from 'node:net';
import type { OptionsSpec } from './cli/args.js';
import { loadPolicyFile, formatIssue } from './policy/load.js';
import { RequestContext, type InboundRequest, type InboundResponse } from './accept/context.js';
import { Runtime } from './pipeline.js';
import { systemClock } from './clock.js';
import { explainGateway } from './forward/explain-gateway.js';

/** Options of `sluice explain` (node:util parseArgs shape; parsed by the CLI). */
export const EXPLAIN_OPTIONS = {
  config: { type: 'string', short: 'c' },
  method: { type: 'string', default: 'GET' },
  path: { type: 'string', default: '/' },
  header: { type: 'string', short: 'H', multiple: true, default: [] as string[] },
  ip: { type: 'string', default: '127.0.0.1' },
  json: { type: 'boolean', default: false },
} satisfies OptionsSpec;

export interface ExplainArgs {
  config?: string | undefined;
  method: string;
  path: string;
  header: string[];
  ip: string;
  json: boolean;
}

export async function explain(values: ExplainArgs, fail: (msg: string, code?: number) => never): Promise<void> {
  if (!values.config) fail('explain: --config FILE is required', 2);
  if (isIP(values.ip) === 0) fail(`explain: --ip: expected an IPv4 or IPv6 address, got ${JSON.stringify(values.ip)}`, 2);
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(values.method)) fail(`explain: --method: not an HTTP method token: ${JSON.stringify(values.method)}`, 2);
  if (!values.path.startsWith('/')) fail(`explain: --path: expected an origin-form path starting with '/', got ${JSON.stringify(values.path)}`, 2);
  const r = await loadPolicyFile(values.config);
  if (!r.ok) fail(r.issues.map(formatIssue).join('\n'));

  const headers: Record<string, string> = {};
  for (const h of values.header) {
    const i = h.indexOf(':');
    if (i <= 0) fail(`-H: expected 'Name: value', got ${JSON.stringify(h)}`, 2);
    const name = h.slice(0, i).trim().toLowerCase();
    const value = h.slice(i + 1).trim();
    headers[name] = headers[name] !== undefined ? `${headers[name]}, ${value}` : value;
  }
  headers.host ??= 'localhost';
  const req = { method: values.method.toUpperCase(), url: values.path, headers, socket: { remoteAddress: values.ip } };
  const ctx = new RequestContext(req as unknown as InboundRequest, {} as InboundResponse, 0, r.policy.pathNormalization);
  const rt = new Runtime(r.policy, undefined, systemClock);
  // A target the proxy refuses (pathNormalization) never reaches routing.
  const d = ctx.targetError === undefined ? await rt.decide(ctx) : undefined;
  const id = rt.identity ? await rt.identity.check(ctx.req) : undefined;
  const out = {
    request: { method: ctx.method, path: values.path, normalizedPath: ctx.path, host: ctx.host, clientIp: ctx.clientIp || values.ip },
    route: ctx.route?.name ?? null,
    upstream: ctx.route?.upstream.name ?? null,
    targets: ctx.route?.upstream.targets.map((t) => t.url) ?? [],
    class: d?.klass.name ?? null,
    priority: d?.klass.priority ?? null,
    rule: d ? d.rule : ctx.targetError !== undefined ? `refused with 400: ${ctx.targetError}` : 'no route matched: the request would get 404',
    identity: id === undefined ? undefined : id.verified ? { verified: true, claims: id.claims } : { verified: false, reason: id.reason },
    ...(d ? await explainGateway(ctx, rt.identity, rt.pools.get(ctx.route!.upstream.name)!) : {}),
  };
  rt.close();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  const lines = [
    `request:  ${out.request.method} ${out.request.host}${out.request.path} from ${out.request.clientIp}`,
    `route:    ${out.route ?? '(none: 404)'}`,
    `upstream: ${out.upstream ?? '-'}${out.targets.length ? ` (${out.targets.join(', ')})` : ''}`,
    `class:    ${out.class ?? '-'}${out.priority !== null ? ` (priority ${out.priority})` : ''}`,
    `rule:     ${out.rule}`,
  ];
  if (out.identity) lines.push(`identity: ${out.identity.verified ? 'verified JWT' : `JWT not accepted: ${out.identity.reason}`}`);
  if (out.access) lines.push(`access:   ${out.access.decision}${out.access.status ? ` ${out.access.status}` : ''} (${out.access.rule})`);
  if (out.target) lines.push(`target:   ${out.target.url ?? '(none: 503)'} (${out.target.reason})`);
  if (out.rewrite) lines.push(`rewrite:  ${out.rewrite.path}${out.rewrite.headers.length ? `; ${out.rewrite.headers.join('; ')}` : ''}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
