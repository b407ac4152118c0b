/**
 * Semantic checks and defaults: what a JSON schema cannot say (units, references,
 * unique names, regexes, CIDRs, reserves) and the resolved, frozen `Policy`.
 */
import type { AdaptivePolicy, QueuePolicy, ClassPolicy, Policy, RoutePolicy, UpstreamPolicy, RateLimitPolicy, BandwidthPolicy, Target, HostRewrite, TlsClientPolicy } from './types.js';
import { isValidAuthority } from '../accept/host.js';
import { parseCidr, parseDuration, parseRate, parseSize, type Cidr } from './units.js';
import type { PolicyIssue, Positions, LoadResult } from './load.js';
import { referencedPath, referencedPaths } from './files.js';
import { compileListeners, compileUpstreamTransport } from './tls.js';
import type { RawPolicy, RawClass, RawUpstream, RawValueMatcher, RawClassMatch, RawRoute } from './schema.js';
import * as gw from './gateway.js';
import { compileOps } from './ops.js';

type Path = (string | number)[];

const DEFAULTS = {
  listen: { host: '127.0.0.1', port: 8080 },
  admin: { host: '127.0.0.1', port: 9901 },
  upstreamTimeout: '30s',
  connectTimeout: '5s',
  upstreamIdle: '60s',
  timeouts: { requestHeaders: '10s', requestBodyIdle: '30s', keepAlive: '5s', requestBody: '5m', minBodyRate: '1KiB/s', minBodyRateWindow: '10s' },
  buffering: { request: 64 * 1024, response: 1024 * 1024, budget: 64 * 1024 * 1024 },
  keepAlive: { maxSockets: 256, maxFreeSockets: 64, idleTimeout: '30s' },
  outlier: { consecutiveFailures: 5, baseEjectionTime: '10s', maxEjectionTime: '5m', maxEjectionPercent: 50 },
  queue: { size: 1000, timeout: '5s' },
  standing: { target: '5ms', interval: '100ms' },
  adaptive: { min: 3, max: 1000, initial: 20, tolerance: 1.25, smoothing: 0.5, window: '100ms', probeInterval: '15s' },
  maxHeaderSize: 16 * 1024,
  maxQueued: 10_000,
  maxUrlLength: 8192,
  http2MaxConcurrentStreams: 128,
  shutdownGrace: '30s',
  implicitClass: 'default',
} as const;

class Checker {
  readonly issues: PolicyIssue[] = [];
  constructor(private readonly pos: Positions) {}

  fail(path: Path, message: string, atKey = false): void {
    this.issues.push(this.pos.issue(path, message, atKey));
  }

  duration(text: string | undefined, fallback: string, path: Path): number {
    const v = parseDuration(text ?? fallback);
    if (v === undefined) {
      this.fail(path, `must be a duration such as 250ms, 5s or 1m, got ${JSON.stringify(text)}`);
      return 0;
    }
    return v;
  }

  size(text: string | number | undefined, path: Path): number | undefined {
    if (text === undefined) return undefined;
    const v = parseSize(text);
    if (v === undefined) this.fail(path, `must be a size such as 64KiB or 1MiB, got ${JSON.stringify(text)}`);
    return v;
  }

  rate(text: string | undefined, path: Path): number | undefined {
    if (text === undefined) return undefined;
    const v = parseRate(text);
    if (v === undefined) this.fail(path, `must be a rate such as 1MiB/s, got ${JSON.stringify(text)}`);
    return v;
  }

  cidrs(list: readonly string[] | undefined, path: Path): Cidr[] {
    const out: Cidr[] = [];
    (list ?? []).forEach((c, i) => {
      const v = parseCidr(c);
      if (v === undefined) this.fail([...path, i], `not an IP address or CIDR: ${JSON.stringify(c)}`);
      else out.push(v);
    });
    return out;
  }

  regex(src: string, path: Path): void {
    try {
      new RegExp(src);
    } catch (err) {
      this.fail(path, `invalid regular expression: ${(err as Error).message}`);
    }
  }

  valueMap(map: Record<string, RawValueMatcher> | undefined, path: Path): void {
    for (const [k, v] of Object.entries(map ?? {})) {
      if (typeof v === 'object' && !Array.isArray(v) && 'regex' in v) this.regex(v.regex, [...path, k, 'regex']);
    }
  }

  unique(names: readonly string[], path: (i: number) => Path, what: string): void {
    const seen = new Map<string, number>();
    names.forEach((n, i) => {
      const first = seen.get(n);
      if (first !== undefined) this.fail(path(i), `duplicate ${what} name '${n}' (first defined at index ${first})`);
      else seen.set(n, i);
    });
  }
}

function compileTarget(
  spec: string | { url: string; weight?: number },
  c: Checker,
  path: Path,
  tlsFor?: (hostname: string) => TlsClientPolicy | undefined,
): Target {
  const url = typeof spec === 'string' ? spec : spec.url;
  const weight = typeof spec === 'string' ? 1 : (spec.weight ?? 1);
  try {
    const u = new URL(url);
    const https = u.protocol === 'https:';
    const port = u.port === '' ? (https ? 443 : 80) : Number(u.port);
    const hostname = u.hostname.replace(/^\[|\]$/g, '');
    const tls = tlsFor?.(hostname);
    return Object.freeze({ url: `${https ? 'https' : 'http'}://${u.host}`, hostname, port, weight, ...(tls ? { tls } : {}) });
  } catch {
    c.fail(path, `not a valid http://HOST:PORT target: ${JSON.stringify(url)}`);
    return { url, hostname: '', port: 0, weight };
  }
}

function compileHostRewrite(v: string | undefined, c: Checker, p: Path): HostRewrite {
  if (v === undefined) return CLIENT_HOST;
  if (v === 'target') return TARGET_HOST;
  if (!isValidAuthority(v) || v === '') c.fail(p, `hostRewrite must be "target" or a host[:port], got ${JSON.stringify(v)}`);
  return Object.freeze({ kind: 'value', value: v });
}

const CLIENT_HOST: HostRewrite = Object.freeze({ kind: 'client' });
const TARGET_HOST: HostRewrite = Object.freeze({ kind: 'target' });


/** maxConcurrent (fixed, unlimited or auto) and the adaptive knobs. */
function compileConcurrency(u: RawUpstream, c: Checker, p: Path, reserved: number): { maxConcurrent: number; adaptive?: AdaptivePolicy } {
  if (u.maxConcurrent !== 'auto' && u.adaptive === undefined) return { maxConcurrent: u.maxConcurrent ?? Infinity };
  if (typeof u.maxConcurrent === 'number') {
    c.fail([...p, 'adaptive'], `adaptive needs maxConcurrent: auto or no maxConcurrent (got ${u.maxConcurrent})`);
  }
  const a = u.adaptive ?? {};
  // The limit never falls below min, so min must leave a shared slot beside the reserves.
  const min = a.min ?? Math.max(DEFAULTS.adaptive.min, reserved + 1);
  if (min <= reserved) {
    c.fail([...p, 'adaptive', 'min'], `class reserves sum to ${reserved}, so adaptive.min must be at least ${reserved + 1} (got ${min})`);
  }
  const max = a.max ?? Math.max(DEFAULTS.adaptive.max, min);
  if (max < min) c.fail([...p, 'adaptive', 'max'], `max (${max}) is below min (${min})`);
  const adaptive: AdaptivePolicy = Object.freeze({
    min,
    max,
    initial: Math.min(max, Math.max(min, a.initial ?? DEFAULTS.adaptive.initial)),
    tolerance: a.tolerance ?? DEFAULTS.adaptive.tolerance,
    smoothing: a.smoothing ?? DEFAULTS.adaptive.smoothing,
    windowMs: c.duration(a.window, DEFAULTS.adaptive.window, [...p, 'adaptive', 'window']),
    probeIntervalMs: c.duration(a.probeInterval, DEFAULTS.adaptive.probeInterval, [...p, 'adaptive', 'probeInterval']),
  });
  return { maxConcurrent: max, adaptive };
}

function compileQueue(k: RawClass, c: Checker, p: Path): QueuePolicy {
  const q = k.queue ?? {};
  const codel = q.codel
    ? Object.freeze({
        targetMs: c.duration(q.codel.target, DEFAULTS.standing.target, [...p, 'queue', 'codel', 'target']),
        intervalMs: c.duration(q.codel.interval, DEFAULTS.standing.interval, [...p, 'queue', 'codel', 'interval']),
      })
    : undefined;
  const standing =
    codel ??
    Object.freeze({
      targetMs: c.duration(undefined, DEFAULTS.standing.target, []),
      intervalMs: c.duration(undefined, DEFAULTS.standing.interval, []),
    });
  return Object.freeze({
    size: q.size ?? DEFAULTS.queue.size,
    timeoutMs: c.duration(q.timeout, DEFAULTS.queue.timeout, [...p, 'queue', 'timeout']),
    ...(codel ? { codel } : {}),
    lifo: q.lifo ?? 'off',
    standing,
  });
}

function compileUpstream(u: RawUpstream, i: number, c: Checker, file: string, files: ReadonlyMap<string, string>, reserved: number): UpstreamPolicy {
  const p: Path = ['upstreams', i];
  const ka = u.keepAlive ?? {};
  const od = u.outlierDetection ?? {};
  const transport = compileUpstreamTransport(u, i, file, files, (path, m) => c.fail(path, m));
  return Object.freeze({
    name: u.name,
    targets: Object.freeze(u.targets.map((t, j) => compileTarget(t, c, [...p, 'targets', j], transport.tlsFor))),
    protocol: transport.protocol,
    ...compileConcurrency(u, c, p, reserved),
    timeoutMs: c.duration(u.timeout, DEFAULTS.upstreamTimeout, [...p, 'timeout']),
    connectTimeoutMs: c.duration(u.connectTimeout, DEFAULTS.connectTimeout, [...p, 'connectTimeout']),
    idleTimeoutMs: c.duration(u.idleTimeout, DEFAULTS.upstreamIdle, [...p, 'idleTimeout']),
    hostRewrite: compileHostRewrite(u.hostRewrite, c, [...p, 'hostRewrite']),
    outlier: Object.freeze({
      consecutiveFailures: od.consecutiveFailures ?? DEFAULTS.outlier.consecutiveFailures,
      baseEjectionMs: c.duration(od.baseEjectionTime, DEFAULTS.outlier.baseEjectionTime, [...p, 'outlierDetection', 'baseEjectionTime']),
      maxEjectionMs: c.duration(od.maxEjectionTime, DEFAULTS.outlier.maxEjectionTime, [...p, 'outlierDetection', 'maxEjectionTime']),
      maxEjectionPercent: od.maxEjectionPercent ?? DEFAULTS.outlier.maxEjectionPercent,
    }),
    keepAlive: Object.freeze({
      maxSockets: ka.maxSockets ?? DEFAULTS.keepAlive.maxSockets,
      maxFreeSockets: ka.maxFreeSockets ?? DEFAULTS.keepAlive.maxFreeSockets,
      idleTimeoutMs: c.duration(ka.idleTimeout, DEFAULTS.keepAlive.idleTimeout, [...p, 'keepAlive', 'idleTimeout']),
    }),
    ...compileGatewayUpstream(u, c, p),
  });
}

function compileGatewayUpstream(u: RawUpstream, c: Checker, p: Path): Pick<UpstreamPolicy, 'balance' | 'hashOn' | 'sticky' | 'healthCheck'> {
  gw.checkBalance(u, c, p);
  const sticky = gw.compileSticky(u.sticky, c, [...p, 'sticky']);
  const healthCheck = gw.compileHealthCheck(u.healthCheck, c, [...p, 'healthCheck']);
  return {
    balance: u.balance ?? 'roundRobin',
    hashOn: gw.compileHashOn(u.hashOn),
    ...(sticky ? { sticky } : {}),
    ...(healthCheck ? { healthCheck } : {}),
  };
}

function compileGatewayRoute(r: RawRoute, c: Checker, p: Path, hasIdentity: boolean): Partial<RoutePolicy> {
  const rewrite = gw.compileRewrite(r.rewrite, c, [...p, 'rewrite']);
  const requestHeaders = gw.compileRequestHeaders(r.requestHeaders, c, [...p, 'requestHeaders']);
  const responseHeaders = gw.compileResponseHeaders(r.responseHeaders, c, [...p, 'responseHeaders']);
  const access = gw.compileAccess(r.access, c, [...p, 'access'], hasIdentity);
  return {
    ...(rewrite ? { rewrite } : {}),
    ...(requestHeaders ? { requestHeaders } : {}),
    ...(responseHeaders ? { responseHeaders } : {}),
    ...(access ? { access } : {}),
  };
}

function checkClassMatch(m: RawClassMatch | undefined, c: Checker, p: Path): void {
  if (!m) return;
  c.valueMap(m.headers, [...p, 'headers']);
  c.valueMap(m.cookies, [...p, 'cookies']);
  c.valueMap(m.query, [...p, 'query']);
  c.valueMap(m.jwtClaims, [...p, 'jwtClaims']);
  if (m.pathRegex !== undefined) c.regex(m.pathRegex, [...p, 'pathRegex']);
  c.cidrs(m.clientIp, [...p, 'clientIp']);
  const cc = m.clientCert;
  if (cc) for (const k of ['subject', 'cn', 'san'] as const) if (cc[k] !== undefined) c.valueMap({ [k]: cc[k] }, [...p, 'clientCert']);
}

function compileRateLimit(r: RawClass['rateLimit'], c: Checker, p: Path): RateLimitPolicy | undefined {
  if (!r) return undefined;
  const perMs = c.duration(r.per, '1s', [...p, 'per']);
  const burst = r.burst ?? Math.max(1, Math.ceil(r.rate));
  // The GCRA runs in integer µs below 2^53 (src/admit/gcra.ts): burst × per/rate must stay under 2^51 µs (~71 years).
  if ((burst * perMs * 1000) / r.rate > 2 ** 51) c.fail(p, `burst × per / rate is ${Math.round((burst * perMs) / r.rate / 86_400_000)} days; at most about 71 years`);
  return Object.freeze({
    rate: r.rate,
    perMs,
    burst,
    key: r.key ?? 'ip',
    onLimit: r.onLimit ?? 'reject',
    ipv6Prefix: r.ipv6Prefix ?? 64,
    ...(r.store ? { store: Object.freeze({ redis: r.store.redis, failClosed: r.store.failClosed ?? false }) } : {}),
  });
}

function compileBandwidth(b: RawClass['bandwidth'], c: Checker, p: Path): BandwidthPolicy | undefined {
  if (!b) return undefined;
  const burst = c.size(b.burst, [...p, 'burst']);
  return Object.freeze({
    download: c.rate(b.download, [...p, 'download']),
    upload: c.rate(b.upload, [...p, 'upload']),
    perRequest: Object.freeze({
      download: c.rate(b.perRequest?.download, [...p, 'perRequest', 'download']),
      upload: c.rate(b.perRequest?.upload, [...p, 'perRequest', 'upload']),
    }),
    ...(burst !== undefined ? { burst } : {}),
  });
}

function compileClass(k: RawClass, i: number, c: Checker, hasIdentity = false): ClassPolicy {
  const p: Path = ['classes', i];
  const access = gw.compileAccess(k.access, c, [...p, 'access'], hasIdentity);
  checkClassMatch(k.match, c, [...p, 'match']);
  const rateLimit = compileRateLimit(k.rateLimit, c, [...p, 'rateLimit']);
  const bandwidth = compileBandwidth(k.bandwidth, c, [...p, 'bandwidth']);
  return Object.freeze({
    name: k.name,
    index: i,
    priority: k.priority ?? 0,
    weight: k.weight ?? 1,
    match: k.match ? Object.freeze(k.match) : undefined,
    concurrency: k.concurrency ?? Infinity,
    reserve: k.reserve ?? 0,
    maxBodySize: c.size(k.maxBodySize, [...p, 'maxBodySize']) ?? Infinity,
    queue: compileQueue(k, c, p),
    ...(rateLimit ? { rateLimit } : {}),
    ...(bandwidth ? { bandwidth } : {}),
    ...(access ? { access } : {}),
  });
}

export function compilePolicy(raw: RawPolicy, file: string, pos: Positions, files: ReadonlyMap<string, string>): LoadResult {
  const c = new Checker(pos);

  c.unique(raw.upstreams.map((u) => u.name), (i) => ['upstreams', i, 'name'], 'upstream');
  const upstreams = new Map<string, UpstreamPolicy>();
  const rawReserved = (raw.classes ?? []).reduce((s, k) => s + (k.reserve ?? 0), 0);
  raw.upstreams.forEach((u, i) => {
    if (!upstreams.has(u.name)) upstreams.set(u.name, compileUpstream(u, i, c, file, files, rawReserved));
  });

  const maxBodySize = c.size(raw.limits?.maxBodySize, ['limits', 'maxBodySize']) ?? Infinity;
  const routeNames = raw.routes.map((r, i) => r.name ?? `route-${i}`);
  c.unique(routeNames, (i) => ['routes', i, 'name'], 'route');
  const routes: RoutePolicy[] = [];
  raw.routes.forEach((r, i) => {
    const upstream = upstreams.get(r.upstream);
    if (!upstream) {
      const known = [...upstreams.keys()].join(', ');
      c.fail(['routes', i, 'upstream'], `no upstream named '${r.upstream}' (upstreams: ${known})`);
      return;
    }
    c.valueMap(r.match?.headers, ['routes', i, 'match', 'headers']);
    const own = c.size(r.maxBodySize, ['routes', i, 'maxBodySize']) ?? Infinity;
    routes.push(
      Object.freeze({
        name: routeNames[i]!, index: i, match: Object.freeze(r.match ?? {}), upstream, maxBodySize: Math.min(own, maxBodySize),
        ...compileGatewayRoute(r, c, ['routes', i], raw.identity?.jwt !== undefined),
      }),
    );
  });

  const rawClasses = raw.classes ?? [];
  c.unique(rawClasses.map((k) => k.name), (i) => ['classes', i, 'name'], 'class');
  let classes = rawClasses.map((k, i) => compileClass(k, i, c, raw.identity?.jwt !== undefined));
  let defaultClass: ClassPolicy | undefined;
  if (classes.length === 0) {
    if (raw.defaultClass !== undefined && raw.defaultClass !== DEFAULTS.implicitClass) {
      c.fail(['defaultClass'], `no class named '${raw.defaultClass}': no classes are defined`);
    }
    defaultClass = compileClass({ name: DEFAULTS.implicitClass }, 0, c);
    classes = [defaultClass];
  } else if (raw.defaultClass === undefined) {
    c.fail([], "missing required key 'defaultClass' (required when classes are defined)");
  } else {
    defaultClass = classes.find((k) => k.name === raw.defaultClass);
    if (!defaultClass) {
      c.fail(['defaultClass'], `no class named '${raw.defaultClass}' (classes: ${classes.map((k) => k.name).join(', ')})`);
    }
  }

  // Reserved slots come out of every upstream's maxConcurrent; at least one must stay shared.
  const reserved = classes.reduce((s, k) => s + k.reserve, 0);
  if (reserved > 0) {
    for (const [i, u] of raw.upstreams.entries()) {
      // Adaptive upstreams are checked against adaptive.min in compileConcurrency.
      if (typeof u.maxConcurrent !== 'number' || u.adaptive) continue;
      if (reserved >= u.maxConcurrent) {
        const at = rawClasses.findIndex((k) => (k.reserve ?? 0) > 0);
        c.fail(
          ['classes', at, 'reserve'],
          `class reserves sum to ${reserved}, which leaves no shared slot of upstream '${u.name}' (maxConcurrent ${u.maxConcurrent}, index ${i})`,
        );
      }
    }
  }

  c.cidrs(raw.trustedProxies, ['trustedProxies']);
  const trustedProxies = [...(raw.trustedProxies ?? [])];
  const maxHeaderSize = c.size(raw.limits?.maxHeaderSize, ['limits', 'maxHeaderSize']) ?? DEFAULTS.maxHeaderSize;

  let identity: Policy['identity'];
  if (raw.identity?.jwt) {
    const j = raw.identity.jwt;
    const sources = [j.secret, j.secretFile, j.jwksFile].filter((s) => s !== undefined).length;
    if (sources !== 1) c.fail(['identity', 'jwt'], 'give exactly one of secret, secretFile or jwksFile');
    (j.algorithms ?? []).forEach((a, i) => {
      if (!/^(HS|RS|PS|ES)(256|384|512)$|^EdDSA$/.test(a)) c.fail(['identity', 'jwt', 'algorithms', i], `unknown JWT algorithm '${a}'`);
    });
    let secret = j.secret;
    let jwks: { keys: unknown[] } | undefined;
    if (j.secretFile !== undefined) {
      const text = files.get(referencedPath(file, j.secretFile));
      if (text === undefined) c.fail(['identity', 'jwt', 'secretFile'], `cannot read ${j.secretFile}`);
      else secret = text.trim();
    }
    if (j.jwksFile !== undefined) {
      const text = files.get(referencedPath(file, j.jwksFile));
      if (text === undefined) c.fail(['identity', 'jwt', 'jwksFile'], `cannot read ${j.jwksFile}`);
      else {
        try {
          const parsed = JSON.parse(text) as { keys?: unknown };
          if (!Array.isArray(parsed.keys)) throw new Error('no "keys" list');
          jwks = { keys: parsed.keys };
        } catch (err) {
          c.fail(['identity', 'jwt', 'jwksFile'], `${j.jwksFile} is not a JWKS: ${(err as Error).message}`);
        }
      }
    }
    identity = Object.freeze({
      jwt: Object.freeze({
        header: (j.header ?? 'authorization').toLowerCase(),
        ...(j.cookie !== undefined ? { cookie: j.cookie } : {}),
        ...(secret !== undefined ? { secret: new TextEncoder().encode(secret) } : {}),
        ...(jwks !== undefined ? { jwks } : {}),
        ...(j.issuer !== undefined ? { issuer: j.issuer } : {}),
        ...(j.audience !== undefined ? { audience: j.audience } : {}),
        ...(j.algorithms !== undefined ? { algorithms: Object.freeze([...j.algorithms]) } : {}),
      }),
    });
  }

  let adminToken = raw.admin?.token;
  if (raw.admin?.tokenFile !== undefined) {
    const text = files.get(referencedPath(file, raw.admin.tokenFile));
    if (raw.admin.token !== undefined) c.fail(['admin', 'tokenFile'], 'give token or tokenFile, not both');
    else if (text === undefined) c.fail(['admin', 'tokenFile'], `cannot read ${raw.admin.tokenFile}`);
    else if (text.trim().length < 16) c.fail(['admin', 'tokenFile'], `${raw.admin.tokenFile}: the token must be at least 16 characters`);
    else adminToken = text.trim();
  }
  if (raw.admin?.requireToken !== undefined && adminToken === undefined) {
    c.fail(['admin', 'requireToken'], 'requireToken needs admin.token or admin.tokenFile: without a token nothing would be protected', true);
  }
  if ((raw.trustedHeaders?.length ?? 0) > 0 && (raw.trustedProxies?.length ?? 0) === 0) {
    c.fail(['trustedHeaders'], 'trustedHeaders needs trustedProxies: with no trusted peer these headers would always be removed');
  }

  const listeners = compileListeners(raw.listen, file, files, (path, m) => c.fail(path, m));
  if (classes.some((k) => k.match?.clientCert) && !listeners.some((l) => l.tls?.clientCa)) {
    const at = rawClasses.findIndex((k) => k.match?.clientCert);
    c.fail(['classes', at, 'match', 'clientCert'], 'match.clientCert needs a TLS listener with clientCa (listen.tls.clientCa)');
  }

  let cluster: Policy['cluster'];
  if (raw.cluster) {
    const k = raw.cluster;
    const leaseTtlMs = c.duration(k.leaseTtl, '2s', ['cluster', 'leaseTtl']);
    const renewIntervalMs = c.duration(k.renewInterval, '100ms', ['cluster', 'renewInterval']);
    if (renewIntervalMs < 10) c.fail(['cluster', 'renewInterval'], 'must be at least 10ms');
    // A lease must survive a few missed renewals, else one slow reply hands a live share away.
    else if (leaseTtlMs < 4 * renewIntervalMs) c.fail(['cluster', 'leaseTtl'], `must be at least 4 × renewInterval (${4 * renewIntervalMs} ms)`);
    cluster = Object.freeze({ redis: k.store.redis, ...(k.instance !== undefined ? { instance: k.instance } : {}), leaseTtlMs, renewIntervalMs });
  }

  if (c.issues.length > 0 || !defaultClass) return { ok: false, issues: c.issues };

  const policy: Policy = Object.freeze({
    source: file,
    listen: Object.freeze({ host: listeners[0]!.host, port: listeners[0]!.port }),
    listeners: Object.freeze(listeners),
    admin: Object.freeze({
      host: raw.admin?.host ?? DEFAULTS.admin.host,
      port: raw.admin?.port ?? DEFAULTS.admin.port,
      ...(adminToken !== undefined ? { token: adminToken } : {}),
    }),
    trustedHeaders: Object.freeze((raw.trustedHeaders ?? []).map((h) => h.toLowerCase())),
    trustedProxies: Object.freeze(trustedProxies),
    ...(identity ? { identity } : {}),
    pathNormalization: Object.freeze({
      mergeSlashes: raw.pathNormalization?.mergeSlashes ?? true,
      escapedSlashes: raw.pathNormalization?.escapedSlashes ?? 'reject',
    }),
    telemetry: Object.freeze({ legacyMetricNames: raw.telemetry?.legacyMetricNames ?? false }),
    files: Object.freeze(referencedPaths(raw, file)),
    ...(cluster ? { cluster } : {}),
    limits: Object.freeze({
      maxConcurrent: raw.limits?.maxConcurrent ?? Infinity,
      maxQueued: raw.limits?.maxQueued ?? DEFAULTS.maxQueued,
      maxHeaderSize,
      maxBodySize,
      maxUrlLength: raw.limits?.maxUrlLength ?? DEFAULTS.maxUrlLength,
      http2MaxConcurrentStreams: raw.limits?.http2MaxConcurrentStreams ?? DEFAULTS.http2MaxConcurrentStreams,
      buffering: Object.freeze({
        request: c.size(raw.limits?.buffering?.request, ['limits', 'buffering', 'request']) ?? DEFAULTS.buffering.request,
        response: c.size(raw.limits?.buffering?.response, ['limits', 'buffering', 'response']) ?? DEFAULTS.buffering.response,
        budget: c.size(raw.limits?.buffering?.budget, ['limits', 'buffering', 'budget']) ?? DEFAULTS.buffering.budget,
      }),
    }),
    shutdown: Object.freeze({ graceMs: c.duration(raw.shutdown?.grace, DEFAULTS.shutdownGrace, ['shutdown', 'grace']) }),
    timeouts: Object.freeze({
      requestHeadersMs: c.duration(raw.timeouts?.requestHeaders, DEFAULTS.timeouts.requestHeaders, ['timeouts', 'requestHeaders']),
      requestBodyIdleMs: c.duration(raw.timeouts?.requestBodyIdle, DEFAULTS.timeouts.requestBodyIdle, ['timeouts', 'requestBodyIdle']),
      keepAliveMs: c.duration(raw.timeouts?.keepAlive, DEFAULTS.timeouts.keepAlive, ['timeouts', 'keepAlive']),
      requestBodyMs: c.duration(raw.timeouts?.requestBody, DEFAULTS.timeouts.requestBody, ['timeouts', 'requestBody']),
      minBodyRate:
        raw.timeouts?.minBodyRate === 'off'
          ? 0
          : (c.rate(raw.timeouts?.minBodyRate ?? DEFAULTS.timeouts.minBodyRate, ['timeouts', 'minBodyRate']) ?? 0),
      minBodyRateWindowMs: c.duration(raw.timeouts?.minBodyRateWindow, DEFAULTS.timeouts.minBodyRateWindow, ['timeouts', 'minBodyRateWindow']),
    }),
    upstreams,
    routes: Object.freeze(routes),
    classes: Object.freeze(classes),
    defaultClass,
    ...compileOps(raw),
  });
  return { ok: true, policy };
}
