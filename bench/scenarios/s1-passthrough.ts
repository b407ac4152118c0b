// Scenario 1: pass-through. 1 KiB responses, keep-alive, 64 connections (wrk).
import { startOtlpReceiver } from '../lib/otlp-receiver.js';
import {
  directPeer,
  multiClassPolicy,
  oneClassPolicy,
  startBackend,
  startHaproxy,
  startHttp2Proxy,
  startHttpProxy,
  startNginx,
  startSluice,
  type Peer,
} from '../lib/peers.js';
import { fmt } from '../lib/stats.js';
import { measure, startAll, stopAll, throughputTable } from '../lib/throughput.js';
import { wrk, wrkArgs } from '../lib/tools.js';
import type { Ctx, Scenario, Section } from '../lib/types.js';

// Targets from issue 6. kind 'approx': met if measured >= 80% of the figure;
// kind 'range': met if measured >= the low end.
const TARGETS: Record<string, { text: string; low: number; kind: 'approx' | 'range' }> = {
  direct: { text: '~41k', low: 41_000, kind: 'approx' },
  nginx: { text: '25–53k', low: 25_000, kind: 'range' },
  haproxy: { text: '28–45k', low: 28_000, kind: 'range' },
  'http-proxy': { text: '~9.5k', low: 9_500, kind: 'approx' },
  'http2-proxy': { text: '~9.2k', low: 9_200, kind: 'approx' },
};

/**
 * The peers log nothing per request (NGINX `access_log off`, HAProxy without a `log` line, the
 * Node peers have no log): the sluice rows run with `log: { access: false }` to compare the same
 * work, and one more row keeps sluice's default access log on to show what it costs.
 */
const NO_ACCESS_LOG = 'log: { access: false }\n';
const ACCESS_LOG_PEER = 'sluice-multiclass + access log';

export const scenario: Scenario = {
  id: 'passthrough',
  title: '1. Pass-through (1 KiB, keep-alive, 64 connections)',
  async run(ctx: Ctx): Promise<Section> {
    const duration = ctx.quick ? 1 : 10;
    const warm = ctx.quick ? 1 : 3;
    const backend = await startBackend();
    const rx = await startOtlpReceiver();
    const sluiceReason = ctx.sluice.ok ? undefined : ctx.sluice.reason;
    const notRun = (r: string) => async (): Promise<Peer> => {
      throw new Error(r);
    };
    const otelEnv = {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${rx.port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_SERVICE_NAME: 'sluice-bench',
    };
    const slots = await startAll(ctx, [
      ['direct', async () => directPeer(backend)],
      ['nginx', () => startNginx(ctx.tmp, backend.port)],
      ['haproxy', () => startHaproxy(ctx.tmp, backend.port)],
      ['http-proxy', () => startHttpProxy(backend.port)],
      ['http2-proxy', () => startHttp2Proxy(backend.port)],
      ['sluice', sluiceReason ? notRun(sluiceReason) : () => startSluice(ctx.tmp, oneClassPolicy(backend.port) + NO_ACCESS_LOG, 'sluice')],
      ['sluice-multiclass', sluiceReason ? notRun(sluiceReason) : () => startSluice(ctx.tmp, multiClassPolicy(backend.port) + NO_ACCESS_LOG, 'sluice-multiclass')],
      [ACCESS_LOG_PEER, sluiceReason ? notRun(sluiceReason) : () => startSluice(ctx.tmp, multiClassPolicy(backend.port), 'sluice-multiclass-log')],
      ['sluice-traced', sluiceReason ? notRun(sluiceReason) : () => startSluice(ctx.tmp, oneClassPolicy(backend.port) + NO_ACCESS_LOG, 'sluice-traced', otelEnv)],
    ], { quickOnly: ['direct', 'nginx', 'haproxy', 'http2-proxy', 'sluice', 'sluice-multiclass', ACCESS_LOG_PEER, 'sluice-traced'] });
    const commands: string[] = [backend.command];
    const configs: Record<string, string> = {};
    for (const s of slots) {
      if (!s.peer) continue;
      commands.push(`# ${s.name}: ${s.peer.command}`);
      if (s.peer.config) configs[`pass-through / ${s.name}`] = s.peer.config;
    }
    commands.push(`# load, per peer: taskset -c 1 wrk ${wrkArgs({ url: 'http://127.0.0.1:PORT/', connections: 64, durationS: duration }).join(' ')}`);
    try {
      const stats = await measure(ctx, slots, (peer, warmup) =>
        wrk({ url: `http://127.0.0.1:${peer.port}/`, connections: 64, durationS: warmup ? warm : duration }),
        { warmup: !ctx.quick },
      );
      const body: string[] = [
        `wrk, 1 thread, 64 keep-alive connections, ${duration} s per run${ctx.quick ? ' (quick mode: no warm-up)' : ` after a ${warm} s warm-up per peer`}, ${ctx.reps} interleaved runs per peer.`,
        'Response: 1 KiB body from the Node backend. "proxy CPU µs/req" is the user+system CPU time of the proxy process tree (for direct: the backend) divided by the requests wrk completed.',
        `The sluice rows run with \`log: { access: false }\`, as the other peers log nothing per request (NGINX \`access_log off\`, HAProxy without a \`log\` line); "${ACCESS_LOG_PEER}" is the multi-class policy with sluice's default access log (one JSON line per request to stdout, buffered).`,
        '',
        ...throughputTable(stats, 'direct', 'sluice'),
        '',
        `sluice-traced exports to a local OTLP/HTTP receiver; the receiver got ${rx.requests} export requests (${fmt(rx.bytes / 1024, 0)} KiB) during the whole scenario${
          rx.requests > 0 ? '' : slots.find((x) => x.name === 'sluice-traced')?.peer ? ' — i.e. no spans were exported, so that row measures sluice with OTEL_* set but not a working exporter' : ' (the sluice-traced row was not run)'
        }.`,
        '',
        'Targets from the issue (met: at least 80% of a "~" figure, or at least the low end of a range):',
        '',
        '| peer | target req/s | measured median | verdict |',
        '|---|---|---|---|',
      ];
      for (const [name, t] of Object.entries(TARGETS)) {
        const s = stats.find((x) => x.name === name);
        const m = s?.rps.median ?? NaN;
        const need = t.kind === 'approx' ? t.low * 0.8 : t.low;
        const verdict = !Number.isFinite(m) ? 'not measured' : m >= need ? 'met' : `**missed** (${((m / t.low) * 100).toFixed(0)}% of ${t.text})`;
        body.push(`| ${name} | ${t.text} | ${fmt(m)} | ${verdict} |`);
      }
      body.push('', ...leanPathTargets(stats));
      return { body, commands, configs };
    } finally {
      await stopAll(slots);
      await backend.server.stop();
      await rx.close();
    }
  },
};

/**
 * Issue #12's lean-request-path targets, from the same run: multi-class sluice against bare
 * http2-proxy (req/s >= 1.0x, CPU per request <= 1.1x, p99 no worse) and tracing on against off
 * (req/s >= 0.85x).
 */
function leanPathTargets(stats: { name: string; rps: { median: number }; cpuUsPerReq: { median: number }; p99: { median: number } }[]): string[] {
  const get = (n: string) => stats.find((x) => x.name === n);
  const bare = get('http2-proxy');
  const multi = get('sluice-multiclass');
  const plain = get('sluice');
  const traced = get('sluice-traced');
  const ratio = (a: number | undefined, b: number | undefined): number => (a !== undefined && b !== undefined && b > 0 ? a / b : NaN);
  const row = (what: string, target: string, value: number, ok: (v: number) => boolean, unit = '×'): string =>
    `| ${what} | ${target} | ${Number.isFinite(value) ? `${fmt(value, 2)}${unit}` : 'not measured'} | ${!Number.isFinite(value) ? 'n/a' : ok(value) ? 'met' : '**missed**'} |`;
  const rps = ratio(multi?.rps.median, bare?.rps.median);
  const cpu = ratio(multi?.cpuUsPerReq.median, bare?.cpuUsPerReq.median);
  const p99 = ratio(multi?.p99.median, bare?.p99.median);
  const trace = ratio(traced?.rps.median, plain?.rps.median);
  return [
    'Targets of issue #12 (lean request path), medians of this run:',
    '',
    '| figure | target | measured | verdict |',
    '|---|---|---|---|',
    row('sluice-multiclass req/s ÷ http2-proxy req/s', '≥ 1.0× (longer goal 1.5×)', rps, (v) => v >= 1.0),
    row('sluice-multiclass CPU µs/req ÷ http2-proxy CPU µs/req', '≤ 1.1×', cpu, (v) => v <= 1.1),
    row('sluice-multiclass p99 ÷ http2-proxy p99 (64 connections)', '≤ 1.0×', p99, (v) => v <= 1.0),
    row('sluice-traced req/s ÷ sluice req/s', '≥ 0.85×', trace, (v) => v >= 0.85),
  ];
}
