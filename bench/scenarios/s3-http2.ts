// Scenario 3: HTTP/2 inbound (cleartext, prior knowledge). h2load, 4 connections,
// 25 concurrent streams each = 100 concurrent streams. Upstreams are HTTP/1.1
// keep-alive to the same Node backend; "direct" is the same handler served by
// node:http2 directly.
import path from 'node:path';
import {
  oneClassPolicy,
  startBackend,
  startHaproxy,
  startHttp2Proxy,
  startNginx,
  startSluice,
  type Peer,
} from '../lib/peers.js';
import { measure, startAll, stopAll, throughputTable } from '../lib/throughput.js';
import { h2load, h2loadArgs } from '../lib/tools.js';
import type { Ctx, Scenario, Section } from '../lib/types.js';

const CLIENTS = 4;
const STREAMS = 25;

export const scenario: Scenario = {
  id: 'http2',
  title: '3. HTTP/2 inbound (h2load, 100 concurrent streams on 4 connections)',
  async run(ctx: Ctx): Promise<Section> {
    const duration = ctx.quick ? 1 : 10;
    const warm = ctx.quick ? 0 : 2;
    const backend = await startBackend();
    const h2backend = await startBackend({ h2: true });
    const notRun = (r: string) => async (): Promise<Peer> => {
      throw new Error(r);
    };
    const slots = await startAll(ctx, [
      [
        'direct-h2',
        async () => ({ name: 'direct-h2', port: h2backend.port, pid: h2backend.pid, command: `(no proxy) ${h2backend.command}`, stop: async () => {} }),
      ],
      ['nginx', () => startNginx(ctx.tmp, backend.port, { h2: true }, 'nginx-h2')],
      ['haproxy', () => startHaproxy(ctx.tmp, backend.port, { h2: true }, 'haproxy-h2')],
      ['http2-proxy', () => startHttp2Proxy(backend.port, { h2: true })],
      ['sluice', ctx.sluice.ok ? () => startSluice(ctx.tmp, oneClassPolicy(backend.port), 'sluice-h2') : notRun(ctx.sluice.reason!)],
    ]);
    const log = path.join(ctx.tmp, 'h2load.log');
    const commands = [backend.command, `# direct-h2: ${h2backend.command}`];
    const configs: Record<string, string> = {};
    for (const s of slots) {
      if (!s.peer || s.name === 'direct-h2') continue;
      commands.push(`# ${s.name}: ${s.peer.command}`);
      if (s.peer.config && s.name !== 'sluice') configs[`http2 / ${s.name}`] = s.peer.config;
    }
    commands.push(
      `# load, per peer: taskset -c 1 h2load ${h2loadArgs({ url: 'http://127.0.0.1:PORT/', clients: CLIENTS, streams: STREAMS, durationS: duration, warmupS: warm, logFile: 'h2load.log' }).join(' ')}`,
    );
    try {
      const stats = await measure(
        ctx,
        slots,
        (peer) => h2load({ url: `http://127.0.0.1:${peer.port}/`, clients: CLIENTS, streams: STREAMS, durationS: duration, warmupS: warm, logFile: log }),
        { warmup: false }, // h2load has its own --warm-up-time
      );
      const body = [
        `h2load, 1 thread, ${CLIENTS} connections × ${STREAMS} concurrent streams = ${CLIENTS * STREAMS} concurrent streams, h2c prior knowledge, ${warm} s warm-up + ${duration} s measured per run, ${ctx.reps} interleaved runs. p50/p99 are computed from h2load's per-request log (--log-file). Upstream from each proxy is HTTP/1.1 keep-alive to the Node backend; direct-h2 is the same backend handler on node:http2.`,
        'NGINX 1.22 serves cleartext HTTP/2 with `listen ... http2` (prior knowledge only; the newer `http2 on;` directive needs >= 1.25.1 and is not needed for this). HAProxy uses `bind ... proto h2`.',
        '',
        ...throughputTable(stats, 'direct-h2', 'sluice'),
      ];
      return { body, commands, configs };
    } finally {
      await stopAll(slots);
      await backend.server.stop();
      await h2backend.server.stop();
    }
  },
};
