import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { watch, unwatch, type Watcher } from '../../../src/pipeline/client-watch.js';

function watcher(): Watcher & { calls: number } {
  const w = { calls: 0, clientGone: () => void w.calls++ };
  return w;
}

test('every request pending on a connection hears its close, through one listener', async () => {
  const socket = new PassThrough();
  const ws = [watcher(), watcher(), watcher()];
  for (const w of ws) assert.equal(watch(socket, w), true);
  assert.equal(socket.listenerCount('close'), 1, 'one listener however many requests are pipelined');
  unwatch(socket, ws[0]!); // finished normally
  socket.destroy();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(ws.map((w) => w.calls), [0, 1, 1]);
});

test('a connection or stream already closed is reported at once, nothing registered', async () => {
  const socket = new PassThrough();
  socket.destroy();
  const w = watcher();
  assert.equal(watch(socket, w), false);
  assert.equal(watch(undefined, w), false);
  await new Promise((r) => setImmediate(r));
  assert.equal(w.calls, 0);
});
