/**
 * The exchange ends exactly once whatever order its events arrive in, on a
 * simulated clock: client gone while held by a rate limit, shutdown while held,
 * client gone before the handler ran, settle called again afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';
import type { InboundRequest, InboundResponse, Outcome, RequestContext } from '../../../src/accept/context.js';
import { Pipeline, type Exchange } from '../../../src/pipeline/index.js';
import { FakeClock } from '../../../src/clock.js';
import { silentLogger } from '../../../src/telemetry/log.js';

function pipeline(clock: FakeClock, done: Outcome[]): Pipeline {
  const r = parsePolicy(
    `upstreams:
  - name: api
    targets: [http://127.0.0.1:1]
    maxConcurrent: 1
routes:
  - match: { pathPrefix: / }
    upstream: api
classes:
  - name: paced
    queue: { size: 10, timeout: 60s }
    rateLimit: { rate: 1, per: 10s, burst: 1, onLimit: queue, key: class }
defaultClass: paced
`,
    't.yaml',
  );
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return new Pipeline(r.policy, { clock, log: silentLogger, onDone: (ctx: RequestContext) => done.push(ctx.outcome!) });
}

interface Client {
  req: InboundRequest;
  res: InboundResponse & { statuses: number[] };
  socket: PassThrough;
}

function client(path: string): Client {
  const socket = Object.assign(new PassThrough(), { remoteAddress: '10.0.0.1' });
  const req = Object.assign(new PassThrough(), {
    method: 'GET',
    url: path,
    headers: { host: 'x' },
    httpVersionMajor: 1,
    httpVersion: '1.1',
    socket,
    complete: true,
  }) as unknown as InboundRequest;
  const statuses: number[] = [];
  const res = Object.assign(new PassThrough(), {
    statuses,
    headersSent: false,
    setHeader() {},
    writeHead(status: number) {
      statuses.push(status);
      (this as { headersSent: boolean }).headersSent = true;
    },
  }) as unknown as Client['res'];
  return { req, res, socket };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function only(p: Pipeline): Exchange {
  assert.equal(p.live.size, 1);
  return [...p.live][0]!;
}

test('a client gone while held by a rate limit: its token is refunded once, telemetry ends once', async () => {
  const clock = new FakeClock();
  const done: Outcome[] = [];
  const p = pipeline(clock, done);
  const limiter = p.admission.limiter(p.runtime.policy.defaultClass)!;
  limiter.local.take('paced', 0, { waitMs: 0, rejected: false, remaining: 0 }); // the burst is spent
  const a = client('/held');
  p.handle(a.req, a.res);
  await tick();
  const ex = only(p);
  assert.equal(ex.state, 'delayed');
  a.socket.destroy();
  await tick();
  assert.equal(ex.state, 'done');
  ex.settle('forwarded'); // late events change nothing
  ex.clientGone();
  assert.deepEqual(done, ['client_abort']);
  assert.equal(p.live.size, 0);
  // The refund: the next request waits one interval (10 s), not two.
  const b = client('/next');
  p.handle(b.req, b.res);
  await tick();
  const next = only(p);
  assert.equal(next.state, 'delayed');
  clock.advance(10_001);
  assert.notEqual(next.state, 'delayed', 'released after one interval');
  next.settle('client_abort');
  assert.equal(p.scheduler.status().inFlight, 0);
  assert.equal(p.scheduler.status().queued, 0);
  p.close();
});

test('shutdown answers a request held by a rate limit with 503, once', async () => {
  const clock = new FakeClock();
  const done: Outcome[] = [];
  const p = pipeline(clock, done);
  p.admission.limiter(p.runtime.policy.defaultClass)!.local.take('paced', 0, { waitMs: 0, rejected: false, remaining: 0 });
  const a = client('/held');
  p.handle(a.req, a.res);
  await tick();
  assert.equal(only(p).state, 'delayed');
  p.refuseWaiting('shutting down');
  p.refuseWaiting('shutting down');
  assert.deepEqual(a.res.statuses, [503]);
  assert.deepEqual(done, ['rejected']);
  assert.equal(p.scheduler.status().classes[0]!.rejected.shutting_down, 1);
  clock.advance(60_000);
  assert.equal(p.live.size, 0);
  assert.deepEqual(done, ['rejected'], 'the delay timer never fires for a settled exchange');
  p.close();
});

test('a client gone before the handler ran is settled at once and never queued', async () => {
  const clock = new FakeClock();
  const done: Outcome[] = [];
  const p = pipeline(clock, done);
  const a = client('/gone');
  a.socket.destroy();
  await tick();
  p.handle(a.req, a.res);
  await tick();
  assert.deepEqual(done, ['client_abort']);
  assert.equal(p.live.size, 0);
  const st = p.scheduler.status();
  assert.equal(st.classes[0]!.served, 0);
  assert.equal(st.inFlight + st.queued, 0);
  p.close();
});
