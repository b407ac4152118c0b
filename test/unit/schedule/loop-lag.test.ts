import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loopLagReader } from '../../../src/schedule/limit/loop-lag.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('loop lag reads about 0 on an idle loop (the histogram resolution is not a delay)', async () => {
  const read = loopLagReader();
  read();
  await sleep(300);
  const idle = read();
  // Generous: a loaded test machine delays timers a little, never by the 10 ms resolution on average.
  assert.ok(idle >= 0 && idle < 5, `idle loop lag ${idle} ms`);
});

test('loop lag rises when the loop is blocked', async () => {
  const read = loopLagReader();
  await sleep(50);
  read();
  for (let i = 0; i < 5; i++) {
    const until = performance.now() + 60;
    while (performance.now() < until); // block the loop 60 ms
    await sleep(1);
  }
  const busy = read();
  assert.ok(busy > 5, `blocked loop lag ${busy} ms`);
});
