/**
 * Wiring: a policy file → listener, pipeline and admin server, with reload
 * and graceful shutdown. The CLI and the tests drive sluice through this.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from './clock.js';
import { loadPolicyFile, formatIssue } from './policy/load.js';
import type { Policy } from './policy/types.js';
import { Listener } from './accept/server.js';
import { TlsListener, type ProxyListener } from './accept/tls.js';
import { createAdminServer } from './admin/server.js';
import { Pipeline } from './pipeline.js';
import { silentLogger, type Logger } from './telemetry/log.js';
import { Telemetry } from './telemetry/index.js';
import { STORE_CONNECT_WAIT_MS } from './admit/index.js';
import { targetsInRotation } from './forward/pool.js';
import { AccessLog, withByteCounts } from './telemetry/access-log.js';
import { LiveStats } from './telemetry/live.js';
import { TargetHealthWatch } from './telemetry/target-health.js';
import { logTracingStart, watchExportFailures, tracingTarget } from './telemetry/tracing-log.js';
import { restartRequired } from './policy/restart.js';
import type { ReloadResult } from './admin/server.js';
import type { DashboardData } from './admin/dashboard.js';
import { createCluster, ClusterJoinError, withClusterShares, type LeaseClient } from './cluster/index.js';
import { observeCluster } from './cluster/metrics.js';

export interface SluiceOptions {
  /** Overrides policy listen.port (0: ephemeral). */
  port?: number;
  /** Overrides policy admin.port (0: ephemeral). */
  adminPort?: number;
  log?: Logger;
  clock?: Clock;
  /** Environment read for OTEL_* tracing settings. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** false: no admin listener (a worker of --workers; the primary serves admin). Default true. */
  admin?: boolean;
  /** Worker number (from 1) when running as a worker of --workers N. */
  worker?: number;
}

export interface Addresses {
  proxy: { host: string; port: number };
  /** Every listener in policy order (the first is `proxy`); url is http:// or https://. */
  listeners: { url: string; host: string; port: number; tls: boolean }[];
  /** Undefined when started with admin: false (a --workers worker: the primary serves admin). */
  admin: { host: string; port: number } | undefined;
}

export function summarize(p: Policy): string {
  return `${p.upstreams.size} upstream(s), ${p.routes.length} route(s), ${p.classes.length} class(es), default class '${p.defaultClass.name}'`;
}

export class Sluice {
  readonly pipeline: Pipeline;
  readonly telemetry: Telemetry;
  /** One per policy listen entry; tls is set for TLS listeners (their certificates reload). */
  private readonly listeners: { server: ProxyListener; tls: TlsListener | undefined }[];
  private readonly admin: Server | undefined;
  /** Shares of cluster-wide caps; undefined when caps are this process's own. */
  readonly cluster: LeaseClient | undefined;
  private readonly log: Logger;
  private policy: Policy;
  private stopping: Promise<void> | undefined;
  /** The policy the listeners were bound with: reloads cannot move them. */
  private readonly bound: Policy;
  private readonly live: LiveStats;
  private readonly healthWatch: TargetHealthWatch;
  private started = false;
  /**
   * Readiness hooks: each returns why sluice should not take traffic now, or
   * undefined. E.g. an admission store that must be up (failClosed Redis).
   */
  private readonly readinessChecks: (() => string | undefined)[] = [
    // failClosed rate limits in Redis: not ready until the store made its first connection (issue 16.5).
    () => (this.pipeline.admission.isReady() ? undefined : 'rate-limit store not connected yet (failClosed)'),
  ];

  private constructor(policy: Policy, private readonly opts: SluiceOptions) {
    this.policy = policy;
    this.bound = policy;
    this.log = opts.log ?? silentLogger;
    const clock = opts.clock ?? systemClock;
    this.telemetry = new Telemetry({ clock, env: opts.env, legacyMetricNames: policy.telemetry.legacyMetricNames });
    this.live = new LiveStats(clock);
    const access = new AccessLog(this.log, clock, () => this.policy);
    this.pipeline = new Pipeline(policy, {
      clock,
      log: this.log,
      hooks: withByteCounts(this.telemetry.forwardHooks),
      onDone: (ctx) => {
        this.telemetry.onDone(ctx);
        this.live.record(ctx);
        access.record(ctx);
      },
      onShapedBytes: this.telemetry.onShapedBytes,
    });
    const shareWait = observeCluster(this.telemetry.metrics, () => this.cluster?.status());
    this.cluster = createCluster(policy, {
      sink: this.pipeline.scheduler,
      clock,
      log: this.log,
      ...(opts.worker !== undefined ? { worker: opts.worker } : {}),
      onShareWait: shareWait,
    });
    this.healthWatch = new TargetHealthWatch(
      { targets: () => [...this.pipeline.runtime.pools].map(([name, pool]) => [name, pool.health()] as [string, ReturnType<typeof pool.health>]) },
      this.log,
      clock,
    );
    this.telemetry.observe(() => this.pipeline.scheduler.status());
    this.telemetry.metrics.observeTargets(() => targetsInRotation(this.pipeline.runtime.pools));
    const handlers = { request: this.pipeline.handle, upgrade: this.pipeline.upgrade };
    const listenerOptions = {
      maxHeaderSize: policy.limits.maxHeaderSize,
      headersTimeoutMs: policy.timeouts.requestHeadersMs,
      keepAliveTimeoutMs: policy.timeouts.keepAliveMs,
      maxConcurrentStreams: policy.limits.http2MaxConcurrentStreams,
    };
    this.listeners = policy.listeners.map((l) => {
      const tls = l.tls ? new TlsListener(handlers, listenerOptions, l.tls, this.log) : undefined;
      return { server: tls ?? new Listener(handlers, listenerOptions, this.log), tls };
    });
    this.admin = opts.admin === false ? undefined : createAdminServer({
      status: () => this.status(),
      metrics: () => this.telemetry.metrics.text(),
      reload: () => this.reload(),
      reloadToken: () => this.policy.admin.token,
      protectedEndpoints: () => this.policy.adminRequireToken,
      notReady: () => this.notReady(),
      dashboardData: () => this.dashboardData(),
    });
  }

  static async fromFile(file: string, opts: SluiceOptions = {}): Promise<Sluice> {
    const r = await loadPolicyFile(file);
    if (!r.ok) throw new PolicyLoadError(r.issues.map(formatIssue));
    return new Sluice(r.policy, opts);
  }

  static fromPolicy(policy: Policy, opts: SluiceOptions = {}): Sluice {
    return new Sluice(policy, opts);
  }

  async start(): Promise<Addresses> {
    const p = this.policy;
    const env = this.opts.env ?? process.env;
    await this.telemetry.startTracing();
    logTracingStart(this.log, env);
    if (tracingTarget(env)) watchExportFailures(this.log, this.opts.clock ?? systemClock);
    // failClosed limits in Redis: accept traffic once the store is connected, or after a bounded wait (issue 16.5).
    await this.pipeline.admission.whenReady(STORE_CONNECT_WAIT_MS);
    if (this.cluster) {
      // Caps differ from the cluster's: refuse to serve rather than overrun the others' caps.
      const refused = await this.cluster.join();
      if (refused !== undefined) {
        await this.cluster.stop();
        throw new ClusterJoinError(refused);
      }
      this.cluster.start();
    }
    const listeners: Addresses['listeners'] = [];
    for (const [i, l] of this.listeners.entries()) {
      const want = p.listeners[i]!;
      const a = await l.server.listen(i === 0 ? (this.opts.port ?? want.port) : want.port, want.host);
      const host = a.host.includes(':') ? `[${a.host}]` : a.host;
      listeners.push({ ...a, tls: l.tls !== undefined, url: `${l.tls ? 'https' : 'http'}://${host}:${a.port}` });
    }
    const proxy = { host: listeners[0]!.host, port: listeners[0]!.port };
    const server = this.admin;
    const admin = server
      ? await new Promise<{ host: string; port: number }>((resolve, reject) => {
          server.once('error', reject);
          server.listen(this.opts.adminPort ?? p.admin.port, p.admin.host, () => {
            const a = server.address() as AddressInfo;
            resolve({ host: a.address, port: a.port });
          });
        })
      : undefined;
    this.healthWatch.start();
    this.started = true;
    if (admin && p.admin.token === undefined && !isLoopback(admin.host)) {
      this.log.warn({ admin: `${admin.host}:${admin.port}` }, 'admin listener is reachable beyond loopback and has no token: set admin.token and admin.requireToken');
    }
    return { proxy, admin, listeners };
  }

  /** The policy in force (the latest that loaded). */
  currentPolicy(): Policy {
    return this.policy;
  }

  /** Adds a readiness condition (GET /readyz answers 503 while it returns a reason). */
  addReadinessCheck(check: () => string | undefined): void {
    this.readinessChecks.push(check);
  }

  /** Reasons not to send traffic here; empty: ready. */
  notReady(): string[] {
    const why: string[] = [];
    if (!this.started) why.push('starting: no policy serving yet');
    if (this.pipeline.draining) why.push('draining: shutting down');
    for (const c of this.readinessChecks) {
      const r = c();
      if (r) why.push(r);
    }
    return why;
  }

  dashboardData(): DashboardData {
    const s = this.pipeline.scheduler.status();
    const pools = this.pipeline.runtime.pools;
    return {
      at: Date.now(),
      classes: s.classes.map((k) => ({ ...k, ...this.live.figures(k.name) })),
      upstreams: s.upstreams.map((u) => ({ ...u, targets: pools.get(u.name)?.health() ?? [] })),
    };
  }

  status(): unknown {
    const s = this.pipeline.scheduler.status();
    const pools = this.pipeline.runtime.pools;
    const upstreams = s.upstreams.map((u) => ({ ...u, targets: pools.get(u.name)?.health() ?? [] }));
    // bufferedBytes: request and response buffers held now (limits.buffering.budget); 0 when idle.
    const bufferedBytes = this.pipeline.budget.inUse;
    if (!this.cluster) return { policy: this.policy.source, ...s, upstreams, bufferedBytes };
    return { policy: this.policy.source, ...withClusterShares(s.classes, upstreams, this.cluster), inFlight: s.inFlight, queued: s.queued, bufferedBytes };
  }

  /** Re-reads the policy file. Invalid: the old policy keeps serving. */
  async reload(): Promise<ReloadResult> {
    const r = await loadPolicyFile(this.policy.source);
    if (!r.ok) {
      const errors = r.issues.map(formatIssue);
      this.log.error({ errors }, 'policy reload rejected; keeping the current policy');
      return { ok: false, errors };
    }
    const pending = restartRequired(this.bound, r.policy, this.opts);
    const before = this.policy;
    this.policy = r.policy;
    this.pipeline.apply(r.policy);
    this.applyListeners(r.policy);
    this.cluster?.update(r.policy);
    if (r.policy.cluster?.redis !== before.cluster?.redis) pending.push('cluster.store');
    const summary = summarize(r.policy);
    if (pending.length > 0) {
      this.log.warn({ summary, restartRequired: pending }, 'policy reloaded, but some changes need a restart');
      return { ok: true, summary, restartRequired: pending };
    }
    this.log.info({ summary }, 'policy reloaded');
    return { ok: true, summary };
  }

  /** Reload: TLS listeners take the re-read certificates; address changes need a restart. */
  private applyListeners(p: Policy): void {
    this.listeners.forEach((l, i) => {
      const next = p.listeners[i];
      if (l.tls && next?.tls) l.tls.update(next.tls);
    });
    const was = this.listeners.map((l) => (l.tls ? 'tls' : 'tcp')).join();
    const now = p.listeners.map((l) => (l.tls ? 'tls' : 'tcp')).join();
    if (was !== now) this.log.warn({ listeners: now }, 'listen entries changed: new listeners take effect on restart');
  }

  /**
   * Graceful stop: stop accepting, let in-flight and queued work finish within
   * the grace period, answer what is left with 503, close everything. Runs once.
   */
  stop(graceMs = this.policy.shutdown.graceMs): Promise<void> {
    this.stopping ??= this.doStop(graceMs);
    return this.stopping;
  }

  private async doStop(graceMs: number): Promise<void> {
    // First: /readyz turns 503 so load balancers stop sending new work here.
    this.pipeline.draining = true;
    this.healthWatch.stop();
    const closed = Promise.all(this.listeners.map((l) => l.server.stopAccepting()));
    for (const l of this.listeners) l.server.closeIdle();
    this.log.info({ graceMs }, 'draining: no new connections; finishing in-flight and queued requests');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      const s = this.pipeline.scheduler.status();
      if (s.inFlight === 0 && s.queued === 0 && this.pipeline.live.size === 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const left = this.pipeline.scheduler.status();
    if (left.inFlight > 0 || left.queued > 0) this.log.warn({ inFlight: left.inFlight, queued: left.queued }, 'grace period over');
    // Everything still waiting (queued, held by a rate limit, reading its body) is answered 503.
    this.pipeline.refuseWaiting('sluice is shutting down');
    // Let the 503s just written reach their clients before the sockets are torn down.
    await new Promise((r) => setTimeout(r, 50));
    for (const l of this.listeners) l.server.destroyAll();
    await closed;
    // Nothing of ours is in flight any more: give the shares back at once.
    await this.cluster?.stop();
    const admin = this.admin;
    if (admin) {
      await new Promise<void>((r) => admin.close(() => r()));
      admin.closeAllConnections();
    }
    this.pipeline.runtime.close();
    this.pipeline.close();
    // Last: spans of the requests finished above are flushed to the exporter.
    await this.telemetry.shutdown().catch((err: unknown) => this.log.warn({ err }, 'telemetry shutdown failed'));
  }
}

function isLoopback(host: string): boolean {
  return host === '::1' || host.startsWith('127.') || host === 'localhost' || host === '::ffff:127.0.0.1';
}

export { ClusterJoinError } from './cluster/index.js';

export class PolicyLoadError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join('\n'));
    this.name = 'PolicyLoadError';
  }
}
