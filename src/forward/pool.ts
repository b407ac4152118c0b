/**
 * One pool per upstream: a keep-alive agent per target, the choice of a target
 * (sticky session, then the upstream's balance policy: see balance.ts and
 * sticky.ts), passive health (outlier ejection) and active health checks
 * (health.ts).
 *
 * Passive health: a target that fails `consecutiveFailures` times in a row
 * leaves the rotation for a back-off period that grows with each ejection, as
 * Envoy's outlier detection does. Active health: see health.ts. A target is
 * eligible when it is neither ejected nor failing its health check. When every
 * healthy target is ejected, the healthy ones are used anyway (panic mode);
 * when every target fails its health check, there is no target and the request
 * gets a fast 503 (NO_HEALTHY_UPSTREAM).
 *
 * Agents outlive policy reloads when the upstream's targets and pool settings
 * are unchanged; otherwise a new pool takes over health state and learned
 * sessions of the targets it shares with the old one.
 */
import type { Agent } from 'node:http';
import { ProxyError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../accept/context.js';
import type { HashKey, Target, UpstreamPolicy, UpstreamProtocol } from '../policy/types.js';
import { createAgent, createH1, createH2, sameTransport, type H1Target, type H2Target } from './clients/index.js';
import { createBalancer, type Balancer } from './balance.js';
import { HealthChecker, freshCheckState, sameHealthCheck, type CheckState } from './health.js';
import { SessionTable, appCookieFromResponse, appendSetCookie, requestCookie, stickyCookie, targetToken } from './sticky.js';

export class PooledTarget {
  /** HTTP/1.1: the undici pool most requests use (undefined for h2/h2c). */
  readonly h1: H1Target | undefined;
  /** HTTP/1.1 keep-alive agent for the requests undici does not take (https.Agent with the upstream's TLS settings for https:// targets). */
  readonly agent: Agent;
  /** The target's HTTP/2 session holder (protocol h2 or h2c); undefined for HTTP/1.1. */
  readonly h2: H2Target | undefined;
  consecutiveFailures = 0;
  /** Clock time until which the target is out of rotation (0: in rotation). */
  ejectedUntil = 0;
  /** Ejections so far; the next one lasts (ejections + 1) × base. Reset by a success after return. */
  ejections = 0;
  /** Requests in flight to this target (leastRequest reads it). */
  active = 0;
  /** Active health-check verdict (always true without healthCheck). */
  healthy = true;
  check: CheckState = freshCheckState();
  /** Opaque sticky-cookie value naming this target. */
  readonly token: string;

  constructor(
    readonly target: Target,
    ka: UpstreamPolicy['keepAlive'],
    upstreamName: string,
    protocol: UpstreamProtocol = 'http1',
    connectTimeoutMs = 5_000,
  ) {
    this.agent = createAgent(target, ka);
    this.h1 = createH1(target, protocol, ka, connectTimeoutMs);
    this.h2 = createH2(target, protocol, ka, connectTimeoutMs);
    this.token = targetToken(upstreamName, target.url);
  }

  get weight(): number {
    return this.target.weight;
  }
}

export interface TargetHealth {
  url: string;
  weight: number;
  ejected: boolean;
  consecutiveFailures: number;
  ejections: number;
  /** Requests in flight to the target. */
  active: number;
  /** Active health-check verdict (true without healthCheck). */
  healthy: boolean;
  /** Present with healthCheck. */
  check?: { passes: number; failures: number; lastStatus: number; lastError: string; runs: number; transitions: number };
}

/** How the target of a request was chosen (kept on the context for the response and explain). */
export interface TargetChoice {
  readonly member: PooledTarget;
  /** sticky: the session's target; balance: the upstream's policy (a sticky session moved here if `moved`); panic: every healthy target was ejected. */
  readonly how: 'sticky' | 'balance' | 'panic';
  /** The session pointed at a target that is ejected, unhealthy or gone. */
  readonly moved: boolean;
  /** Sticky cookie (or application cookie) value the request carried. */
  readonly session: string | undefined;
  /** Hash key (balance: hash); undefined when the request lacks it. */
  readonly hashKey: string | undefined;
}

const kChoice = Symbol('sluice.targetChoice');
type WithChoice = RequestContext & { [kChoice]?: TargetChoice };

/** The choice last made for this request (undefined before forwarding). */
export function choiceOf(ctx: RequestContext): TargetChoice | undefined {
  return (ctx as WithChoice)[kChoice];
}

/** The value balance: hash hashes, or undefined when the request lacks it. */
export function hashKeyOf(ctx: RequestContext, k: HashKey): string | undefined {
  switch (k.kind) {
    case 'ip':
      return ctx.clientIp || ctx.peer;
    case 'path':
      return ctx.path;
    case 'header': {
      const v = ctx.req.headers[k.name];
      return Array.isArray(v) ? v.join(',') : v;
    }
    case 'cookie':
      return requestCookie(ctx.req, k.name);
  }
}

/** Per-target rotation state of every pool, for the sluice_upstream_target_healthy gauge. */
export function targetsInRotation(pools: ReadonlyMap<string, UpstreamPool>): { upstream: string; target: string; healthy: boolean }[] {
  const out: { upstream: string; target: string; healthy: boolean }[] = [];
  for (const p of pools.values()) for (const t of p.health()) out.push({ upstream: p.upstream.name, target: t.url, healthy: t.healthy && !t.ejected });
  return out;
}

const MODE_STRICT = 0;
const MODE_PANIC = 1;

export class UpstreamPool {
  private readonly members: PooledTarget[];
  private readonly byUrl = new Map<string, number>();
  private readonly byToken = new Map<string, number>();
  private u: UpstreamPolicy;
  private balancer!: Balancer;
  private checker: HealthChecker | undefined;
  /** Learned application sessions (sticky: { appCookie }); shared with the pool that replaces this one. */
  readonly sessions: SessionTable;
  private closed = false;
  // Eligibility inputs, set before each balancer call (no per-request closure).
  private now = 0;
  private avoid: PooledTarget | undefined;
  private mode = MODE_STRICT;
  private readonly eligible = (i: number): boolean => {
    const m = this.members[i]!;
    return m !== this.avoid && m.healthy && (this.mode === MODE_PANIC || m.ejectedUntil <= this.now);
  };

  constructor(
    upstream: UpstreamPolicy,
    private readonly clock: Clock,
    previous?: UpstreamPool,
  ) {
    this.u = upstream;
    this.members = upstream.targets.map((t) => new PooledTarget(t, upstream.keepAlive, upstream.name, upstream.protocol, upstream.connectTimeoutMs));
    this.members.forEach((m, i) => {
      this.byUrl.set(m.target.url, i);
      this.byToken.set(m.token, i);
    });
    this.sessions = previous?.sessions ?? new SessionTable();
    if (previous) {
      // Health carries over for targets both pools share, so a reload does not resurrect a dead target.
      for (const m of this.members) {
        const old = previous.member(m.target.url);
        if (!old) continue;
        m.healthy = old.healthy;
        m.check = { ...old.check };
        m.ejectedUntil = old.ejectedUntil;
        m.ejections = old.ejections;
      }
    }
    this.configure(upstream);
  }

  get upstream(): UpstreamPolicy {
    return this.u;
  }

  /** A reload with the same targets: new balance, sticky and health-check settings apply at once. */
  set upstream(next: UpstreamPolicy) {
    this.u = next;
    this.configure(next);
  }

  get size(): number {
    return this.members.length;
  }

  private member(url: string): PooledTarget | undefined {
    const i = this.byUrl.get(url);
    return i === undefined ? undefined : this.members[i];
  }

  private configure(u: UpstreamPolicy): void {
    this.balancer = createBalancer(u.balance, this.members, this.members.map((m) => m.target.url));
    if (this.closed) return;
    if (this.checker && sameHealthCheck(this.checker.policy, u.healthCheck)) return;
    this.checker?.stop();
    this.checker = undefined;
    if (u.healthCheck) {
      this.checker = new HealthChecker(this.members, u.healthCheck, this.clock, undefined, u.protocol);
      this.checker.start();
    } else {
      for (const m of this.members) {
        m.healthy = true;
        m.check = freshCheckState();
      }
    }
  }

  /**
   * The target for a request: its sticky session's target while that one is
   * eligible, else the balance policy's choice. `avoid` (a target that just
   * refused this request) is skipped. Undefined when no target passes its
   * health check. The choice is remembered on the context (see choiceOf).
   */
  choose(ctx?: RequestContext, avoid?: PooledTarget): PooledTarget | undefined {
    this.now = this.clock.now();
    this.avoid = avoid;
    this.mode = MODE_STRICT;
    const u = this.u;
    const sticky = u.sticky;
    let session: string | undefined;
    let moved = false;
    if (sticky && ctx) {
      session = requestCookie(ctx.req, sticky.name);
      if (session !== undefined) {
        const i = sticky.kind === 'cookie' ? this.byToken.get(session) : this.byUrlOf(this.sessions.get(session));
        if (i !== undefined && this.eligible(i)) return this.remember(ctx, this.members[i]!, 'sticky', false, session, undefined);
        // An unknown application session is simply new; a sluice cookie that names no target means its target is gone.
        moved = i !== undefined || sticky.kind === 'cookie';
      }
    }
    const key = u.balance === 'hash' && ctx ? hashKeyOf(ctx, u.hashOn) : undefined;
    let i = this.balancer.pick(this.eligible, key);
    let how: TargetChoice['how'] = 'balance';
    if (i === -1) {
      this.mode = MODE_PANIC;
      i = this.balancer.pick(this.eligible, key);
      how = 'panic';
    }
    this.avoid = undefined;
    if (i === -1) return undefined;
    const m = this.members[i]!;
    return ctx ? this.remember(ctx, m, how, moved, session, key) : m;
  }

  /** Round-robin-like choice without a request (WebSocket fallback, tests): panics over all targets rather than fail. */
  pick(): PooledTarget {
    return this.choose() ?? this.members[0]!;
  }

  private byUrlOf(url: string | undefined): number | undefined {
    return url === undefined ? undefined : this.byUrl.get(url);
  }

  private remember(
    ctx: RequestContext,
    member: PooledTarget,
    how: TargetChoice['how'],
    moved: boolean,
    session: string | undefined,
    hashKey: string | undefined,
  ): PooledTarget {
    this.avoid = undefined;
    (ctx as WithChoice)[kChoice] = { member, how, moved, session, hashKey };
    return member;
  }

  /** Every target fails its active health check: requests would find no target. */
  allDown(): boolean {
    if (!this.checker) return false;
    for (const m of this.members) if (m.healthy) return false;
    return true;
  }

  /** The fast 503 of a request that finds no healthy target; Retry-After: the next round of checks. */
  noTargetError(ctx: RequestContext): ProxyError {
    return new ProxyError('NO_HEALTHY_UPSTREAM', `upstream '${this.u.name}': no target passes its health check`, {
      className: ctx.klass?.name,
      retryAfterMs: this.u.healthCheck?.intervalMs ?? 1000,
    });
  }

  /**
   * Response headers of an exchange with `member`: (re)sets the sticky cookie
   * when the request did not already name this target; learns application
   * sessions from Set-Cookie (or from the request's cookie when the response
   * sets none, so a session that moved stays on its new target).
   */
  onResponse(ctx: RequestContext, member: PooledTarget, headers: Record<string, string | string[] | undefined>): void {
    const sticky = this.u.sticky;
    if (!sticky) return;
    const choice = choiceOf(ctx);
    const session = choice?.session;
    if (sticky.kind === 'cookie') {
      if (session !== member.token) appendSetCookie(headers, stickyCookie(sticky, member.token));
      return;
    }
    // Wall-clock time on purpose: it is compared with the Expires date of a cookie.
    const change = appCookieFromResponse(headers['set-cookie'], sticky.name, Date.now());
    if (change?.kind === 'set') this.sessions.learn(change.value, member.target.url);
    else if (change?.kind === 'clear') {
      if (session !== undefined) this.sessions.forget(session);
    } else if (session !== undefined && (choice?.how !== 'sticky' || choice.member !== member)) {
      this.sessions.learn(session, member.target.url);
    }
  }

  /** The target answered (with anything but a gateway error). */
  succeeded(m: PooledTarget): void {
    m.consecutiveFailures = 0;
    if (m.ejections > 0 && m.ejectedUntil <= this.clock.now()) m.ejections = 0;
  }

  /** The target was refused, reset, timed out or answered 502/503/504. */
  failed(m: PooledTarget): void {
    const o = this.u.outlier;
    m.consecutiveFailures++;
    if (m.consecutiveFailures < o.consecutiveFailures || this.members.length < 2) return;
    const now = this.clock.now();
    const ejected = this.members.filter((x) => x.ejectedUntil > now).length;
    if (((ejected + 1) * 100) / this.members.length > o.maxEjectionPercent) return;
    m.ejections++;
    m.consecutiveFailures = 0;
    m.ejectedUntil = now + Math.min(o.maxEjectionMs, o.baseEjectionMs * m.ejections);
  }

  health(): TargetHealth[] {
    const now = this.clock.now();
    return this.members.map((m) => ({
      url: m.target.url,
      weight: m.target.weight,
      ejected: m.ejectedUntil > now,
      consecutiveFailures: m.consecutiveFailures,
      ejections: m.ejections,
      active: m.active,
      healthy: m.healthy,
      ...(this.checker ? { check: { ...m.check } } : {}),
    }));
  }

  /** Same targets and pool settings: the agents (and health) can be kept across a reload. */
  canServe(u: UpstreamPolicy): boolean {
    const a = this.u;
    return (
      a.targets.length === u.targets.length &&
      a.targets.every((t, i) => t.url === u.targets[i]!.url && t.weight === u.targets[i]!.weight) &&
      a.keepAlive.maxSockets === u.keepAlive.maxSockets &&
      a.keepAlive.maxFreeSockets === u.keepAlive.maxFreeSockets &&
      a.keepAlive.idleTimeoutMs === u.keepAlive.idleTimeoutMs &&
      sameTransport(a, u)
    );
  }

  /** No longer used by new requests: idle sockets close now, busy ones when their request ends. */
  retire(): void {
    this.stopChecks();
    for (const m of this.members) {
      m.h2?.retire();
      m.h1?.retire();
      m.agent.maxFreeSockets = 0;
      for (const list of Object.values(m.agent.freeSockets)) for (const s of list ?? []) s.destroy();
    }
  }

  /** Closes every socket, busy or not (shutdown). */
  close(): void {
    this.stopChecks();
    for (const m of this.members) {
      m.agent.destroy();
      m.h1?.destroy();
      m.h2?.destroy();
    }
  }

  private stopChecks(): void {
    this.closed = true;
    this.checker?.stop();
    this.checker = undefined;
  }
}
