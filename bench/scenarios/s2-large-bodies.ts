// Scenario 2: large bodies. 10 MiB downloads and 10 MiB uploads through each peer.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  directPeer,
  oneClassPolicy,
  startBackend,
  startHaproxy,
  startHttp2Proxy,
  startHttpProxy,
  startNginx,
  startSluice,
  type Peer,
} from '../lib/peers.js';
import { fmtS, MiB, summarize } from '../lib/stats.js';
import { measure, startAll, stopAll, type PeerStats } from '../lib/throughput.js';
import { wrk, wrkArgs } from '../lib/tools.js';
import type { Ctx, Scenario, Section } from '../lib/types.js';

const SIZE = 10 * MiB;
const CONNS = 4;

export const scenario: Scenario = {
  id: 'large-bodies',
  title: '2. Large bodies (10 MiB downloads and uploads)',
  async run(ctx: Ctx): Promise<Section> {
    const duration = ctx.quick ? 1 : 10;
    const warm = 1;
    const backend = await startBackend();
    const lua = path.join(ctx.tmp, 'upload-10MiB.lua');
    writeFileSync(lua, `-- POST a 10 MiB body\nwrk.method = "POST"\nwrk.path = "/upload"\nwrk.headers["Content-Type"] = "application/octet-stream"\nwrk.body = string.rep("u", ${SIZE})\n`);
    const notRun = (r: string) => async (): Promise<Peer> => {
      throw new Error(r);
    };
    const slots = await startAll(ctx, [
      ['direct', async () => directPeer(backend)],
      ['nginx', () => startNginx(ctx.tmp, backend.port, {}, 'nginx-large')],
      ['haproxy', () => startHaproxy(ctx.tmp, backend.port, {}, 'haproxy-large')],
      ['http-proxy', () => startHttpProxy(backend.port)],
      ['http2-proxy', () => startHttp2Proxy(backend.port)],
      ['sluice', ctx.sluice.ok ? () => startSluice(ctx.tmp, oneClassPolicy(backend.port), 'sluice-large') : notRun(ctx.sluice.reason!)],
    ]);
    const commands = [backend.command];
    for (const s of slots) if (s.peer) commands.push(`# ${s.name}: ${s.peer.command}`);
    commands.push(
      `# download, per peer: taskset -c 1 wrk ${wrkArgs({ url: `http://127.0.0.1:PORT/big?size=${SIZE}`, connections: CONNS, durationS: duration, timeoutS: 30 }).join(' ')}`,
      `# upload, per peer:   taskset -c 1 wrk ${wrkArgs({ url: 'http://127.0.0.1:PORT/upload', connections: CONNS, durationS: duration, timeoutS: 30, script: 'upload-10MiB.lua' }).join(' ')}`,
      `# upload-10MiB.lua: wrk.method = "POST"; wrk.path = "/upload"; wrk.body = string.rep("u", ${SIZE})`,
    );
    try {
      ctx.log('  downloads');
      const down = await measure(
        ctx,
        slots,
        (peer, w) => wrk({ url: `http://127.0.0.1:${peer.port}/big?size=${SIZE}`, connections: CONNS, durationS: w ? warm : duration, timeoutS: 30 }),
        { warmup: !ctx.quick },
      );
      for (const s of slots) if (s.notRun && s.peer) s.notRun = undefined; // give uploads their own chance
      ctx.log('  uploads');
      const up = await measure(ctx, slots, (peer, w) =>
        wrk({ url: `http://127.0.0.1:${peer.port}/upload`, connections: CONNS, durationS: w ? warm : duration, timeoutS: 30, script: lua }),
        { warmup: !ctx.quick },
      );
      const mibs = (st: PeerStats, upload: boolean): string =>
        fmtS(summarize(st.samples.map((x) => (upload ? (x.rps * SIZE) / MiB : x.bytesPerSec / MiB))), 0);
      const cell = (st: PeerStats | undefined, upload: boolean): [string, string] => {
        if (!st || (st.notRun && st.samples.length === 0)) return [`not run: ${(st?.notRun ?? 'unknown').replace(/\|/g, '\\|')}`, ''];
        return [`${mibs(st, upload)}${st.errors ? ` (${st.errors} errors)` : ''}`, fmtS(st.rssMiB, 1)];
      };
      const body = [
        `wrk, 1 thread, ${CONNS} keep-alive connections, ${duration} s per run${ctx.quick ? " (quick mode: no warm-up)" : ` after a ${warm} s warm-up per peer`}, ${ctx.reps} interleaved runs. Download: GET of a 10 MiB body the backend streams in 64 KiB chunks (MiB/s from wrk's Transfer/sec). Upload: POST of a 10 MiB body the backend reads and discards (MiB/s = completed uploads/s × 10 MiB). RSS is the peak of the proxy process tree, sampled every 200 ms.`,
        'NGINX runs with its default `proxy_buffering on` for downloads (it may spool to a temp file) and `proxy_request_buffering off` for uploads.',
        '',
        '| peer | download MiB/s | peak RSS MiB (download) | upload MiB/s | peak RSS MiB (upload) |',
        '|---|---|---|---|---|',
      ];
      for (const s of slots) {
        const [d, dr] = cell(down.find((x) => x.name === s.name), false);
        const [u, ur] = cell(up.find((x) => x.name === s.name), true);
        body.push(`| ${s.name} | ${d} | ${dr} | ${u} | ${ur} |`);
      }
      return { body, commands };
    } finally {
      await stopAll(slots);
      await backend.server.stop();
    }
  },
};
