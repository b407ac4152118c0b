/**
 * Active health checks (Envoy HTTP health checker, HAProxy `option httpchk`):
 * every `interval` each target gets `GET path`; no answer within `timeout`, a
 * connection error or a status outside `expectStatus` is a failure.
 * `unhealthyThreshold` failures in a row take the target out of rotation,
 * `healthyThreshold` passes in a row bring it back. Targets start healthy and
 * are checked at once (a dead target is known within one timeout).
 *
 * Checks speak the upstream's protocol (Envoy's health checker uses the
 * cluster's codec): HTTP/1.1 through their own agent (one socket per target),
 * h2/h2c through one HTTP/2 session per target of their own. They run outside the
 * scheduler: they never hold a slot of maxConcurrent nor a rate-limit token,
 * and never count as requests in metrics. They work next to the passive
 * outlier detection of pool.ts: a target is used only when both agree.
 */
import { Agent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Clock, TimerHandle } from '../clock.js';
import { tlsConnectOptions } from './clients/tls.js';
import { H2Target } from './clients/h2.js';
import type { HealthCheckPolicy, Target, UpstreamProtocol } from '../policy/types.js';

/** What a checker reads and writes on each target (PooledTarget). */
export interface Checked {
  readonly target: Target;
  healthy: boolean;
  check: CheckState;
}

export interface CheckState {
  /** Passes in a row (reset by a failure). */
  passes: number;
  /** Failures in a row (reset by a pass). */
  failures: number;
  /** Status of the last answer, 0 when none came. */
  lastStatus: number;
  /** Reason of the last failure ('' after a pass). */
  lastError: string;
  /** Checks run so far. */
  runs: number;
  /** Times the target changed state. */
  transitions: number;
}

export function freshCheckState(): CheckState {
  return { passes: 0, failures: 0, lastStatus: 0, lastError: '', runs: 0, transitions: 0 };
}

export class HealthChecker {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
  /** https:// targets: the TLS settings travel with each request (they are part of the agent's socket key). */
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
  private readonly timers = new Map<Checked, TimerHandle>();
  private readonly inFlight = new Set<ClientRequest>();
  /** h2/h2c upstreams: the checks' own session per target, kept open between checks. */
  private readonly sessions = new Map<Checked, H2Target>();
  private stopped = false;

  constructor(
    private readonly members: readonly Checked[],
    readonly policy: HealthCheckPolicy,
    private readonly clock: Clock,
    /** Called after a target changes state. */
    private readonly onChange: (m: Checked) => void = () => {},
    /** The upstream's protocol, which the checks speak. */
    private readonly protocol: UpstreamProtocol = 'http1',
  ) {}

  start(): void {
    // Spread the first checks a little so that many targets are not probed in one burst.
    this.members.forEach((m, i) => this.schedule(m, Math.min(i * 5, this.policy.intervalMs)));
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    for (const r of this.inFlight) r.destroy();
    this.inFlight.clear();
    this.agent.destroy();
    this.httpsAgent.destroy();
    for (const h2 of this.sessions.values()) h2.destroy();
    this.sessions.clear();
  }

  private schedule(m: Checked, ms: number): void {
    if (this.stopped) return;
    this.timers.set(m, this.clock.setTimer(() => this.run(m), ms));
  }

  private run(m: Checked): void {
    this.timers.delete(m);
    if (this.stopped) return;
    const p = this.policy;
    let done = false;
    const finish = (status: number, error: string): void => {
      if (done) return;
      done = true;
      timer.cancel();
      this.inFlight.delete(req);
      this.record(m, status, error);
      this.schedule(m, p.intervalMs);
    };
    const req = this.open(m);
    this.inFlight.add(req);
    const timer = this.clock.setTimer(() => {
      finish(0, `no answer within ${p.timeoutMs} ms`);
      req.destroy();
    }, p.timeoutMs);
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      res.on('error', () => {});
      res.resume();
      // Judged on the status; the body is drained so the socket can be reused, but
      // a body that never ends must not hold the check's only socket.
      const drain = this.clock.setTimer(() => res.destroy(), p.timeoutMs);
      res.once('close', () => drain.cancel());
      finish(status, this.passes(status) ? '' : `status ${status}`);
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish(0, err.code ?? err.message));
    req.end();
  }

  private open(m: Checked): ClientRequest {
    const t = m.target;
    const options = {
      hostname: t.hostname,
      port: t.port,
      method: 'GET',
      path: this.policy.path,
      headers: { host: `${t.hostname}:${t.port}`, 'user-agent': 'sluice-health-check', accept: '*/*' },
    };
    if (this.protocol !== 'http1') {
      let h2 = this.sessions.get(m);
      if (!h2) {
        // Idle between checks is one interval: keep the session a few intervals past that.
        h2 = new H2Target(t, { idleTimeoutMs: Math.max(3 * this.policy.intervalMs, 10_000), connectTimeoutMs: this.policy.timeoutMs });
        this.sessions.set(m, h2);
      }
      return h2.request(options);
    }
    const tls = t.tls;
    return (tls ? httpsRequest : request)({ ...options, ...(tls ? { ...tlsConnectOptions(tls), agent: this.httpsAgent } : { agent: this.agent }) });
  }

  passes(status: number): boolean {
    for (const [a, b] of this.policy.expect) if (status >= a && status <= b) return true;
    return false;
  }

  private record(m: Checked, status: number, error: string): void {
    const s = m.check;
    s.runs++;
    s.lastStatus = status;
    s.lastError = error;
    if (error === '') {
      s.passes++;
      s.failures = 0;
      if (!m.healthy && s.passes >= this.policy.healthyThreshold) this.flip(m, true);
    } else {
      s.failures++;
      s.passes = 0;
      if (m.healthy && s.failures >= this.policy.unhealthyThreshold) this.flip(m, false);
    }
  }

  private flip(m: Checked, healthy: boolean): void {
    m.healthy = healthy;
    m.check.transitions++;
    this.onChange(m);
  }
}

/** Same settings: a running checker can be kept across a reload. */
export function sameHealthCheck(a: HealthCheckPolicy | undefined, b: HealthCheckPolicy | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    a.path === b.path &&
    a.intervalMs === b.intervalMs &&
    a.timeoutMs === b.timeoutMs &&
    a.healthyThreshold === b.healthyThreshold &&
    a.unhealthyThreshold === b.unhealthyThreshold &&
    JSON.stringify(a.expect) === JSON.stringify(b.expect)
  );
}
