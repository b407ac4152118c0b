/**
 * Target health in the log at the default level: one `warn` when a target
 * starts failing (consecutive failures), one when it is ejected (outlier
 * detection), one when it recovers (answering again, back in rotation). When
 * both happen within one interval, only the ejection is logged. Like
 * Envoy's outlier event log, but on pino. Read from the pools' health() once
 * per `intervalMs`, so it costs nothing on the request path; a failure that
 * heals within one interval is not reported.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { TargetHealth } from '../forward/pool.js';
import type { Logger } from './log.js';

type State = 'ok' | 'failing' | 'ejected';

export interface HealthSource {
  /** upstream name → its targets' health. */
  targets(): Iterable<[upstream: string, health: readonly TargetHealth[]]>;
}

export class TargetHealthWatch {
  private readonly states = new Map<string, State>();
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(
    private readonly source: HealthSource,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    if (this.stopped || this.timer) return;
    this.timer = this.clock.setTimer(this.tick, this.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One look at every target; logs the transitions. Public for tests. */
  readonly check = (): void => {
    const seen = new Set<string>();
    for (const [upstream, targets] of this.source.targets()) {
      for (const t of targets) {
        const key = `${upstream} ${t.url}`;
        seen.add(key);
        // After an ejection ends, `ejections` stays > 0 until the target's first success: not yet recovered.
        // A target failing its active health check is out of rotation like an ejected one.
        const now: State = t.ejected || !t.healthy ? 'ejected' : t.consecutiveFailures > 0 || t.ejections > 0 ? 'failing' : 'ok';
        const was = this.states.get(key) ?? 'ok';
        if (now === was) continue;
        this.states.set(key, now);
        const fields = { upstream, target: t.url, consecutiveFailures: t.consecutiveFailures, ejections: t.ejections };
        if (now === 'ejected') {
          this.log.warn(fields, t.healthy ? 'target ejected: out of rotation after consecutive failures' : 'target unhealthy: out of rotation after failing its health check');
        }
        else if (now === 'failing' && was === 'ok') this.log.warn(fields, 'target failing');
        else if (now === 'ok') this.log.warn(fields, 'target recovered');
        // ejected → failing (back in rotation, not yet answering): no new line; 'recovered' follows a success.
      }
    }
    for (const k of this.states.keys()) if (!seen.has(k)) this.states.delete(k);
  };

  private readonly tick = (): void => {
    this.timer = undefined;
    if (this.stopped) return;
    try {
      this.check();
    } finally {
      this.start();
    }
  };
}
