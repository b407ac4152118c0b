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
import { createAdminServer } from './admin/server.js';
import { Pipeline } from './pipeline.js';
import { silentLogger, type Logger } from './telemetry/log.js';
import { Telemetry } from './telemetry/index.js';
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
  /** Undefined when started with admin: false. */
  admin: { host: string; port: number } | undefined;
}

export function summarize(p: Policy): string {
  return `${p.upstreams.size} upstream(s), ${p.routes.length} route(s), ${p.classes.length} class(es), default class '${p.defaultClass.name}'`;
}

export class Sluice {
  readonly pipeline: Pipeline;
  readonly telemetry: Telemetry;
  /** Shares of cluster-wide caps; undefined when caps are this process's own. */
  readonly cluster: LeaseClient | undefined;
  private readonly listener: Listener;
  private readonly admin: Server | undefined;
  private readonly log: Logger;
  private policy: Policy;
  private stopping: Promise<void> | undefined;

  private constructor(policy: Policy, private readonly opts: SluiceOptions) {
    this.policy = policy;
    this.log = opts.log ?? silentLogger;
    const clock = opts.clock ?? systemClock;
    this.telemetry = new Telemetry({ clock, env: opts.env });
    this.pipeline = new Pipeline(policy, {
      clock,
      log: this.log,
      hooks: this.telemetry.forwardHooks,
      onDone: this.telemetry.onDone,
      onShapedBytes: this.telemetry.onShapedBytes,
    });
    this.telemetry.observe(() => this.pipeline.scheduler.status());
    const shareWait = observeCluster(this.telemetry.metrics, () => this.cluster?.status());
    this.cluster = createCluster(policy, {
      sink: this.pipeline.scheduler,
      clock,
      log: this.log,
      ...(opts.worker !== undefined ? { worker: opts.worker } : {}),
      onShareWait: shareWait,
    });
    this.listener = new Listener(
      { request: this.pipeline.handle, upgrade: this.pipeline.upgrade },
      {
        maxHeaderSize: policy.limits.maxHeaderSize,
        headersTimeoutMs: policy.timeouts.requestHeadersMs,
        keepAliveTimeoutMs: policy.timeouts.keepAliveMs,
        maxConcurrentStreams: policy.limits.http2MaxConcurrentStreams,
      },
      this.log,
    );
    this.admin = opts.admin === false ? undefined : createAdminServer({
      status: () => this.status(),
      metrics: () => this.telemetry.metrics.text(),
      reload: () => this.reload(),
      reloadToken: () => this.policy.admin.token,
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
    await this.telemetry.startTracing();
    if (this.cluster) {
      // Caps differ from the cluster's: refuse to serve rather than overrun the others' caps.
      const refused = await this.cluster.join();
      if (refused !== undefined) {
        await this.cluster.stop();
        throw new ClusterJoinError(refused);
      }
      this.cluster.start();
    }
    const proxy = await this.listener.listen(this.opts.port ?? p.listen.port, p.listen.host);
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
    return { proxy, admin };
  }

  status(): unknown {
    const s = this.pipeline.scheduler.status();
    const pools = this.pipeline.runtime.pools;
    const upstreams = s.upstreams.map((u) => ({ ...u, targets: pools.get(u.name)?.health() ?? [] }));
    if (!this.cluster) return { policy: this.policy.source, ...s, upstreams };
    return { policy: this.policy.source, ...withClusterShares(s.classes, upstreams, this.cluster), inFlight: s.inFlight, queued: s.queued };
  }

  /** Re-reads the policy file. Invalid: the old policy keeps serving. */
  async reload(): Promise<{ ok: true; summary: string } | { ok: false; errors: string[] }> {
    const r = await loadPolicyFile(this.policy.source);
    if (!r.ok) {
      const errors = r.issues.map(formatIssue);
      this.log.error({ errors }, 'policy reload rejected; keeping the current policy');
      return { ok: false, errors };
    }
    const before = this.policy;
    this.policy = r.policy;
    this.pipeline.apply(r.policy);
    this.cluster?.update(r.policy);
    if (r.policy.cluster?.redis !== before.cluster?.redis) this.log.warn('cluster.store changed: takes effect at the next restart');
    const summary = summarize(r.policy);
    this.log.info({ summary }, 'policy reloaded');
    return { ok: true, summary };
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
    const closed = this.listener.stopAccepting();
    this.pipeline.draining = true;
    this.listener.closeIdle();
    this.log.info({ graceMs }, 'draining: no new connections; finishing in-flight and queued requests');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      const s = this.pipeline.scheduler.status();
      if (s.inFlight === 0 && s.queued === 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const left = this.pipeline.scheduler.status();
    if (left.inFlight > 0 || left.queued > 0) this.log.warn({ inFlight: left.inFlight, queued: left.queued }, 'grace period over');
    this.pipeline.scheduler.rejectAll('SHUTTING_DOWN', 'sluice is shutting down');
    // Let the 503s just written reach their clients before the sockets are torn down.
    await new Promise((r) => setTimeout(r, 50));
    this.listener.destroyAll();
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

export { ClusterJoinError } from './cluster/index.js';

export class PolicyLoadError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join('\n'));
    this.name = 'PolicyLoadError';
  }
}
