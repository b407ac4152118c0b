/**
 * Exponentially decayed event rate (events per second), used to turn a queue
 * length into an honest Retry-After instead of a constant.
 */
export class DrainRate {
  private rate = 0;
  private last = -1;

  /** @param halfLifeMs how quickly old observations fade. Default 2000 ms. */
  constructor(private readonly halfLifeMs = 2000) {}

  /** Records one dequeue at time now (ms). */
  tick(now: number): void {
    this.decay(now);
    // Each event adds ln2/halfLife per ms of "mass", so a steady r/s converges to r.
    this.rate += (Math.LN2 / this.halfLifeMs) * 1000;
  }

  perSecond(now: number): number {
    this.decay(now);
    return this.rate;
  }

  /** Milliseconds until `ahead` requests drain at the observed rate; `fallbackMs` when nothing drained lately. */
  etaMs(ahead: number, now: number, fallbackMs: number): number {
    const r = this.perSecond(now);
    if (r < 0.01) return fallbackMs;
    return ((ahead + 1) / r) * 1000;
  }

  private decay(now: number): void {
    if (this.last >= 0 && now > this.last) this.rate *= Math.pow(0.5, (now - this.last) / this.halfLifeMs);
    this.last = now;
  }
}
