// Scenario 11: slow clients against an upstream with maxConcurrent 8 (issue #10).
// 40 readers that never read 1 MB responses (slowhttptest -X style) and 64 uploads
// trickling a byte every 500 ms hold connections; meanwhile 200 ordinary GETs at
// concurrency 8 measure what is left for everyone else. sluice with its buffers
// (limits.buffering, timeouts.minBodyRate: the defaults) against sluice with them
// off (the behaviour before #10).
import net from 'node:net';
import { startBackend, startSluice, oneClassPolicy, type Peer } from '../lib/peers.js';
import { fmt } from '../lib/stats.js';
import { errMsg, type Ctx, type Scenario, type Section } from '../lib/types.js';

const SLOTS = 8;
const READERS = 40;
const UPLOADS = 64;
const GETS = 200;

interface Result {
  heldSlots: number;
  ok: number;
  failed: number;
  p50: number;
  p99: number;
}

async function attackAndMeasure(peer: Peer, quick: boolean): Promise<Result> {
  const socks: net.Socket[] = [];
  const open = (): net.Socket => {
    const s = net.connect(peer.port, '127.0.0.1');
    s.on('error', () => {});
    socks.push(s);
    return s;
  };
  for (let i = 0; i < READERS; i++) {
    const s = open();
    s.write(`GET /big?size=1000000&r=${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    s.pause();
  }
  for (let i = 0; i < UPLOADS; i++) open().write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\nab');
  const drip = setInterval(() => {
    for (const s of socks.slice(READERS)) if (s.writable) s.write('x');
  }, 500);
  try {
    await new Promise((r) => setTimeout(r, quick ? 1000 : 2000));
    const st = (await (await fetch(`http://127.0.0.1:${peer.admin}/status`)).json()) as { upstreams: { inFlight: number }[] };
    const heldSlots = st.upstreams[0]?.inFlight ?? 0;
    const lat: number[] = [];
    let failed = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < GETS) {
        next++;
        const t0 = performance.now();
        try {
          const ctl = AbortSignal.timeout(10_000);
          const r = await fetch(`http://127.0.0.1:${peer.port}/`, { signal: ctl });
          await r.arrayBuffer();
          if (r.status === 200) lat.push(performance.now() - t0);
          else failed++;
        } catch {
          failed++;
        }
      }
    };
    await Promise.all(Array.from({ length: SLOTS }, worker));
    lat.sort((a, b) => a - b);
    const q = (p: number): number => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! : NaN);
    return { heldSlots, ok: lat.length, failed, p50: q(0.5), p99: q(0.99) };
  } finally {
    clearInterval(drip);
    for (const s of socks) s.destroy();
  }
}

export const scenario: Scenario = {
  id: 'slow-clients',
  title: '14. Slow clients vs an upstream of 8 slots (stalled readers, trickling uploads)',
  async run(ctx: Ctx): Promise<Section> {
    const backend = await startBackend();
    const base = { maxConcurrent: SLOTS, queue: { size: 10000, timeout: '10s' }, timeout: '60s' };
    const on = oneClassPolicy(backend.port, { ...base, comment: 'slow clients, buffers on (defaults)' });
    const off = `${oneClassPolicy(backend.port, { ...base, comment: 'slow clients, buffers off (before #10)' })}limits: { buffering: { request: 0, response: 0 } }\ntimeouts: { minBodyRate: off }\n`;
    const rows: string[] = [];
    const commands = [backend.command];
    const configs: Record<string, string> = {};
    for (const [name, policy] of [
      ['sluice', on],
      ['sluice-unbuffered', off],
    ] as const) {
      let peer: Peer | undefined;
      try {
        peer = await startSluice(ctx.tmp, policy, name);
        commands.push(`# ${name}: ${peer.command}`);
        configs[`slow clients / ${name}`] = policy;
        const r = await attackAndMeasure(peer, ctx.quick);
        rows.push(`| ${name} | ${r.heldSlots} of ${SLOTS} | ${r.ok} | ${r.failed} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} |`);
      } catch (e) {
        rows.push(`| ${name} | error: ${errMsg(e)} | | | | |`);
      } finally {
        await peer?.stop();
      }
    }
    await backend.server.stop();
    return {
      body: [
        `${READERS} connections each GET a 1 MB response and never read it; ${UPLOADS} connections POST a 4000-byte body one byte every 500 ms. With those connected, ${GETS} ordinary GETs at concurrency ${SLOTS}. "held slots" is the upstream's in-flight count on /status just before the ordinary GETs start. One run per configuration (the attack is the measurement, not throughput).`,
        '',
        '| configuration | held slots | ordinary GETs ok | failed (10 s timeout, 503) | p50 ms | p99 ms |',
        '|---|---|---|---|---|---|',
        ...rows,
      ],
      commands,
      configs,
    };
  },
};
