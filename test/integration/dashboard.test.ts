/** GET /dashboard in headless Chromium: the numbers on the page move while load runs through the proxy. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startBackend } from '../helpers/backend.js';
import { ROOT, startSluice } from '../helpers/sluice.js';
import { getJson, waitFor } from '../helpers/net.js';
import { launchChromium, updateScreenshots } from '../helpers/browser.js';

test('the live dashboard shows queued, in flight, rates and latencies per class, and upstream in flight against its cap', async () => {
  const backend = await startBackend({ delayMs: 60 });
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${backend.url}]
    maxConcurrent: 4
routes:
  - match: { pathPrefix: / }
    upstream: app
classes:
  - name: premium
    priority: 0
    reserve: 1
    match: { headers: { x-tier: premium } }
  - name: free
    priority: 1
    queue: { size: 20, timeout: 2s }
defaultClass: free
`);
  const browser = await launchChromium();
  let stop = false;
  const load: Promise<void>[] = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('requestfailed', (r) => errors.push(`${r.url()} ${r.failure()?.errorText}`));
    await page.goto(`${s.admin}/dashboard`);
    await page.waitForFunction('Number(document.body.dataset.updates || 0) >= 1', undefined, { timeout: 10_000 });
    const cell = (cls: string, field: string): Promise<string> =>
      page.locator(`#classes tr[data-class="${cls}"] td[data-field="${field}"]`).innerText();
    assert.equal(await cell('free', 'queued'), '0');
    assert.equal(await cell('free', 'okPerSec'), '0');
    assert.equal(await cell('premium', 'totalP99'), '–');
    const cap = await page.locator('#upstreams tr[data-upstream="app"] td[data-field="inFlight"]').innerText();
    assert.match(cap, /0 \/ 4/);

    // Load: 12 free and 2 premium clients in closed loops, beyond the upstream's 4 slots.
    const client = async (tier: string): Promise<void> => {
      while (!stop) {
        const r = await fetch(`${s.url}/work`, { headers: { 'x-tier': tier } }).catch(() => undefined);
        await r?.text();
      }
    };
    for (let i = 0; i < 12; i++) load.push(client('free'));
    for (let i = 0; i < 2; i++) load.push(client('premium'));

    const seen = { queued: false, inFlight: false, cap: false };
    await waitFor(async () => {
      if (Number(await cell('free', 'queued')) > 0) seen.queued = true;
      if (Number(await cell('free', 'inFlight')) > 0) seen.inFlight = true;
      if (/^[1-4] \/ 4/.test(await page.locator('#upstreams tr[data-upstream="app"] td[data-field="inFlight"]').innerText())) seen.cap = true;
      return seen.queued && seen.inFlight && seen.cap && Number(await cell('premium', 'okPerSec')) > 0 && Number(await cell('free', 'okPerSec')) > 0;
    }, 20_000, 'the page to show load');
    assert.ok(Number(await cell('free', 'totalP99')) > 50, 'latency includes the backend\'s 60 ms');
    assert.ok(Number(await cell('free', 'queueP99')) >= Number(await cell('premium', 'queueP99')), 'free waits at least as long as premium');
    assert.match(await page.locator('#upstreams tr[data-upstream="app"] td[data-field="targets"]').innerText(), new RegExp(`${backend.url} ok`));
    // A few more seconds of load, so that the charts (and the screenshot) show lines.
    await new Promise((r) => setTimeout(r, 5000));
    // The charts draw something: canvases of real size.
    const box = await page.locator('#c-ok').boundingBox();
    assert.ok(box && box.width > 300 && box.height > 150, JSON.stringify(box));
    await page.screenshot({ path: updateScreenshots ? join(ROOT, 'docs', 'dashboard.png') : join(await import('node:os').then((o) => o.tmpdir()), 'sluice-dashboard.png'), fullPage: true });
    assert.deepEqual(errors, []);
    stop = true;
    await Promise.all(load);
    await waitFor(async () => {
      const st = await getJson<{ inFlight: number; queued: number }>(`${s.admin}/status`);
      return st.inFlight === 0 && st.queued === 0;
    }, 5000, 'in flight and queued back to zero');
    await waitFor(async () => (await cell('free', 'queued')) === '0' && (await cell('free', 'inFlight')) === '0', 5000, 'the page to show zero again');
  } finally {
    stop = true;
    await Promise.all(load);
    await browser.close();
    await s.stop();
    await backend.close();
  }
});

test('a protected dashboard: without the token the page says how to open it; with #token=... it shows the figures', async () => {
  const backend = await startBackend();
  const token = 'dashboard-token-0123456789';
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${backend.url}]
routes:
  - upstream: app
admin: { token: ${token}, requireToken: [dashboard] }
`);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`${s.admin}/dashboard`);
    await page.waitForFunction("document.getElementById('state').textContent.includes('401')", undefined, { timeout: 10_000 });
    assert.match(await page.locator('#state').innerText(), /not connected: HTTP 401: open \/dashboard#token=/);
    await (await fetch(`${s.url}/x`)).text();
    await page.goto(`${s.admin}/dashboard#token=${token}`);
    await page.reload();
    await page.waitForFunction('Number(document.body.dataset.updates || 0) >= 1', undefined, { timeout: 10_000 });
    assert.match(await page.locator('#state').innerText(), /^live/);
    assert.equal(await page.locator('#classes tr[data-class="default"] td[data-field="name"]').innerText(), 'default');
    await waitFor(async () => {
      const st = await getJson<{ inFlight: number; queued: number }>(`${s.admin}/status`);
      return st.inFlight === 0 && st.queued === 0;
    }, 5000, 'in flight and queued back to zero');
  } finally {
    await browser.close();
    await s.stop();
    await backend.close();
  }
});
