/**
 * Scheduler cost in isolation: enqueue + dequeue per operation with 10,000
 * requests held in queues, and the heap those 10,000 waiters take.
 *   node --import tsx bench/scheduler-ops.ts
 * Prints one JSON line (the runner's queue-scale scenario reads it).
 */
import { FakeClock } from '../src/clock.js';
import { parsePolicy, formatIssue } from '../src/policy/load.js';
import { Scheduler, type Job, type Permit } from '../src/schedule/scheduler.js';
import { Deque } from '../src/schedule/deque.js';

const r = parsePolicy(
  `upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    maxConcurrent: 8
routes:
  - upstream: up
classes:
  - { name: gold, priority: 0, weight: 3, queue: { size: 20000, timeout: 1h } }
  - { name: silver, priority: 0, weight: 1, queue: { size: 20000, timeout: 1h } }
  - { name: bronze, priority: 1, queue: { size: 20000, timeout: 1h } }
defaultClass: bronze
limits: { maxQueued: 100000 }
`,
  'bench.yaml',
);
if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
const policy = r.policy;
const up = policy.upstreams.get('up')!;

/** Jobs holding a slot, in grant order (a Deque: the bench must not add Array.shift costs). */
const running = new Deque<BenchJob>();

class BenchJob implements Job {
  queueEntry: Job['queueEntry'];
  permit: Permit | undefined;
  grant(p: Permit): void {
    this.permit = p;
    running.push(this);
  }
  reject(): void {}
}

function run(held: number, ops: number): { nsPerOp: number; heapPerWaiterBytes: number } {
  const s = new Scheduler(policy, new FakeClock());
  const classes = policy.classes;
  running.clear();
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  // Fill the 8 slots, then hold `held` waiters.
  for (let i = 0; i < held + 8; i++) s.submit(new BenchJob(), classes[i % 3]!, up);
  global.gc?.();
  const heapPerWaiterBytes = (process.memoryUsage().heapUsed - heap0) / held;
  // Steady state: each op releases one running request (which dispatches a waiter) and enqueues a new one.
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    running.shift()!.permit!.release();
    s.submit(new BenchJob(), classes[i % 3]!, up);
  }
  const ns = Number(process.hrtime.bigint() - t0) / ops;
  return { nsPerOp: ns, heapPerWaiterBytes };
}

run(1000, 20_000); // warm-up
const res = run(10_000, 200_000);
process.stdout.write(
  `${JSON.stringify({ held: 10_000, nsPerEnqueueDequeue: Math.round(res.nsPerOp), heapPerWaiterBytes: Math.round(res.heapPerWaiterBytes), gcExposed: typeof global.gc === 'function' })}\n`,
);
