// Shared "many peers, one load generator, interleaved reps" measurement and table.
import { ProcSampler } from './proc.js';
import type { Peer } from './peers.js';
import { fmt, fmtS, MiB, summarize, type Summary } from './stats.js';
import type { LoadResult } from './tools.js';
import { errMsg, interleaved, type Ctx } from './types.js';

export interface PeerSlot {
  name: string;
  peer?: Peer;
  notRun?: string; // reason
}

export interface Sample extends LoadResult {
  peakRss: number;
  cpuSeconds: number;
}

export interface PeerStats {
  name: string;
  notRun?: string;
  rps: Summary;
  p50: Summary;
  p99: Summary;
  cpuUsPerReq: Summary;
  rssMiB: Summary;
  bytesPerSec: Summary;
  errors: number;
  samples: Sample[];
}

export async function startAll(ctx: Ctx, starters: [string, () => Promise<Peer>][]): Promise<PeerSlot[]> {
  const out: PeerSlot[] = [];
  for (const [name, start] of starters) {
    try {
      out.push({ name, peer: await start() });
      ctx.log(`  started ${name}`);
    } catch (e) {
      out.push({ name, notRun: errMsg(e) });
      ctx.log(`  NOT RUN ${name}: ${errMsg(e)}`);
    }
  }
  return out;
}

export async function stopAll(slots: PeerSlot[]): Promise<void> {
  for (const s of slots) await s.peer?.stop();
}

/** Warm up every peer once, then measure interleaved. A failing run marks the peer not-run. */
export async function measure(
  ctx: Ctx,
  slots: PeerSlot[],
  load: (peer: Peer, warmup: boolean) => Promise<LoadResult>,
  opts: { warmup?: boolean } = {},
): Promise<PeerStats[]> {
  for (const s of slots) {
    if (!s.peer || opts.warmup === false) continue;
    try {
      await load(s.peer, true);
    } catch (e) {
      s.notRun = `warm-up failed: ${errMsg(e)}`;
    }
  }
  const active = slots.filter((s) => s.peer && !s.notRun);
  const res = await interleaved(ctx.reps, active, async (s, rep): Promise<Sample | undefined> => {
    if (s.notRun) return undefined;
    const sampler = new ProcSampler(s.peer!.pid);
    try {
      const r = await load(s.peer!, false);
      const p = sampler.stop();
      ctx.log(`    rep ${rep + 1} ${s.name}: ${fmt(r.rps)} req/s p50 ${fmt(r.p50ms, 2)} ms p99 ${fmt(r.p99ms, 2)} ms rss ${fmt(p.peakRss / MiB, 1)} MiB errors ${r.errors}`);
      return { ...r, peakRss: p.peakRss, cpuSeconds: p.cpuSeconds };
    } catch (e) {
      sampler.stop();
      s.notRun = `failed in rep ${rep + 1}: ${errMsg(e)}`;
      ctx.log(`    ${s.name}: ${s.notRun}`);
      return undefined;
    }
  });
  return slots.map((s) => {
    const samples = (res.get(s) ?? []).filter((x): x is Sample => !!x);
    return {
      name: s.name,
      notRun: s.notRun,
      rps: summarize(samples.map((x) => x.rps)),
      p50: summarize(samples.map((x) => x.p50ms)),
      p99: summarize(samples.map((x) => x.p99ms)),
      cpuUsPerReq: summarize(samples.map((x) => (x.cpuSeconds / x.requests) * 1e6)),
      rssMiB: summarize(samples.map((x) => x.peakRss / MiB)),
      bytesPerSec: summarize(samples.map((x) => x.bytesPerSec)),
      errors: samples.reduce((a, x) => a + x.errors, 0),
      samples,
    };
  });
}

const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a');

export function throughputTable(stats: PeerStats[], directName: string, sluiceName: string): string[] {
  const direct = stats.find((s) => s.name === directName)?.rps.median ?? NaN;
  const sluice = stats.find((s) => s.name === sluiceName && !s.notRun)?.rps.median ?? NaN;
  const lines = [
    `| peer | req/s median (min–max) | ÷ ${directName} | ÷ ${sluiceName} | p50 ms | p99 ms | proxy CPU µs/req | peak RSS MiB | errors |`,
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of stats) {
    if (s.notRun && s.samples.length === 0) {
      lines.push(`| ${s.name} | not run: ${s.notRun.replace(/\|/g, '\\|')} | | | | | | | |`);
      continue;
    }
    lines.push(
      `| ${s.name}${s.notRun ? ` (incomplete: ${s.notRun.replace(/\|/g, '\\|')})` : ''} | ${fmtS(s.rps)} | ${ratio(s.rps.median, direct)} | ${ratio(s.rps.median, sluice)} | ${fmtS(s.p50, 2)} | ${fmtS(s.p99, 2)} | ${fmtS(s.cpuUsPerReq, 1)} | ${fmtS(s.rssMiB, 1)} | ${s.errors} |`,
    );
  }
  return lines;
}
