import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Deque } from '../../../src/schedule/deque.js';

test('deque behaves like an array used as a double-ended queue', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.integer(), fc.constant('shift'), fc.constant('pop'))), (ops) => {
      const d = new Deque<number>(2);
      const model: number[] = [];
      for (const op of ops) {
        if (op === 'shift') assert.equal(d.shift(), model.shift());
        else if (op === 'pop') assert.equal(d.pop(), model.pop());
        else {
          d.push(op);
          model.push(op);
        }
        assert.equal(d.length, model.length);
        assert.equal(d.peek(), model[0]);
      }
      assert.deepEqual([...d], model);
    }),
  );
});
