import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { runCli } from '../helpers/sluice.js';

test('sluice demo runs both phases, prints the comparison and writes the HTML report', async () => {
  const r = await runCli(['demo', '--duration', '2', '--premium-rate', '40', '--free-rate', '400']);
  assert.equal(r.code, 0, r.stderr);
  for (const row of [/FIFO \(one class\)\s+premium\s+\d+/, /FIFO \(one class\)\s+free\s+\d+/, /sluice \(policies\/demo\.yaml\)\s+premium\s+\d+/, /sluice \(policies\/demo\.yaml\)\s+free\s+\d+/]) {
    assert.match(r.stdout, row);
  }
  const peak = /backend peak concurrency: FIFO (\d+), sluice (\d+) \(limit 8\)/.exec(r.stdout);
  assert.ok(peak, r.stdout);
  assert.ok(Number(peak[1]) <= 8 && Number(peak[2]) <= 8, 'the fragile backend is protected in both phases');
  const html = /HTML report: (\S+)/.exec(r.stdout)![1]!;
  const page = await readFile(html, 'utf8');
  assert.match(page, /<canvas|new Chart\(/);
  assert.match(page, /"premium"/);
});
