/** The demo's HTML report in headless Chromium: FIFO and sluice on one shared axis per chart, charts readable at 1280 and 1920 px. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { ROOT, runCli } from '../helpers/sluice.js';
import { launchChromium, updateScreenshots } from '../helpers/browser.js';

interface ChartFacts {
  width: number;
  height: number;
  scales: string[];
  labels: string[];
  points: number;
}

test('demo report: one full-width chart each for latency and throughput, FIFO and sluice premium on the same y-axis', async () => {
  const r = await runCli(['demo', '--duration', '2', '--premium-rate', '40', '--free-rate', '500']);
  assert.equal(r.code, 0, r.stderr);
  const file = /HTML report: (\S+)/.exec(r.stdout)?.[1];
  assert.ok(file, r.stdout);
  const browser = await launchChromium();
  try {
    for (const width of [1280, 1920]) {
      const page = await browser.newPage({ viewport: { width, height: 1000 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(pathToFileURL(file).href);
      await page.waitForFunction('window.charts && window.charts.p99 && window.charts.ok');
      const facts = (await page.evaluate(`Object.fromEntries(Object.entries(window.charts).map(([id, c]) => [id, {
        width: c.canvas.getBoundingClientRect().width, height: c.canvas.getBoundingClientRect().height,
        scales: Object.keys(c.scales).sort(), labels: c.data.datasets.map((d) => d.label),
        points: c.data.datasets.reduce((n, d) => n + d.data.length, 0) }]))`)) as Record<'p99' | 'ok', ChartFacts>;
      for (const id of ['p99', 'ok'] as const) {
        const f = facts[id];
        assert.ok(f.width >= 1000 && f.width <= 1200, `${id} at ${width}px: width ${f.width}`);
        assert.ok(f.height >= 300, `${id} at ${width}px: height ${f.height}`);
        assert.deepEqual(f.scales, ['x', 'y'], `${id}: one shared y-axis for both runs`);
        for (const l of ['FIFO premium', 'sluice premium', 'FIFO free', 'sluice free']) assert.ok(f.labels.includes(l), `${id}: ${l} in ${f.labels.join(', ')}`);
        assert.ok(f.points >= 8, `${id}: ${f.points} points`);
      }
      const p99Box = await page.locator('#p99').boundingBox();
      const okBox = await page.locator('#ok').boundingBox();
      assert.ok(p99Box && okBox && okBox.y > p99Box.y + p99Box.height - 1, 'stacked, not squeezed side by side');
      if (width === 1280) {
        await page.screenshot({ path: updateScreenshots ? join(ROOT, 'docs', 'demo-report.png') : join(tmpdir(), 'sluice-demo-report.png'), fullPage: true });
      }
      assert.deepEqual(errors, []);
      await page.close();
    }
  } finally {
    await browser.close();
  }
});
