// Issue 12 part 4: the dashboard in a real browser (Debian's chromium through playwright-core,
// no downloaded browser). The dashboard server runs in this process on the machine's loopback;
// the page starts a writer, isolates pg1 with its button, and must show pg2 primary and pg1
// fenced; then heals pg1 and must show it rejoined (standby, streaming). A wrong token changes
// nothing. Screenshots of each state go to ARTIFACTS (the path is printed).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type Dashboard, startDashboard } from '../../src/dashboard/server.js';
import { labIdentity, needsRoot, testPort, useLab } from './fixture.js';

const ID = labIdentity({ prefix: 'pgdb', subnet: '10.213.190.0/24' });
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = process.env.PGARBITER_DASHBOARD_ARTIFACTS ?? '/tmp/pgarbiter-dashboard-artifacts';

let dash: Dashboard | undefined;
let browser: Browser | undefined;
let page: Page;

/** Waits until the node table shows `want` for each node and field (role, state, fenced). */
/** Waits in the page until the expression (page JavaScript, as text: this file is compiled
 *  without the DOM's types) is true. */
async function until(expr: string, timeoutMs: number): Promise<void> {
  await page.waitForFunction(expr, undefined, { timeout: timeoutMs, polling: 250 });
}

/** Waits until the node table shows `want` for each node and field (role, state, fenced). */
async function pageShows(want: Record<string, Record<string, string>>, timeoutMs: number): Promise<void> {
  const checks = Object.entries(want).flatMap(([node, fields]) =>
    Object.entries(fields).map(
      ([f, v]) =>
        `document.querySelector(${JSON.stringify(`#node-${node} [data-field=${f}]`)})?.textContent === ${JSON.stringify(v)}`,
    ),
  );
  try {
    await until(checks.join(' && '), timeoutMs);
  } catch (e) {
    const rows = await page.locator('#nodes').innerText();
    throw new Error(
      `the page did not show ${JSON.stringify(want)} in ${timeoutMs} ms; it shows:\n${rows}\n${e}`,
    );
  }
}

async function press(name: string): Promise<void> {
  await page.getByRole('button', { name, exact: true }).click();
  await until(
    `document.getElementById('result')?.textContent?.startsWith(${JSON.stringify(`${name}:`)})`,
    60_000,
  );
  const result = (await page.locator('#result').textContent()) ?? '';
  assert.notEqual(await page.locator('#result').getAttribute('class'), 'err', result);
}

async function shot(name: string): Promise<string> {
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
  return file;
}

describe('dashboard in a browser', { skip: needsRoot || (!existsSync(CHROMIUM) && 'needs chromium') }, () => {
  useLab(ID, {
    timing: 'fast',
    ready: async () => {
      mkdirSync(ARTIFACTS, { recursive: true });
      dash = await startDashboard({ prefix: ID.prefix, port: testPort(18280) });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-dev-shm-usage'],
      });
      page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${dash.url}#token=${dash.token}`);
    },
    teardown: async () => {
      await browser?.close().catch(() => {});
      await dash?.close();
    },
  });

  test('the page shows the healthy lab', async () => {
    await pageShows(
      { pg1: { role: 'primary', fenced: 'no' }, pg2: { role: 'standby', state: 'streaming' } },
      30_000,
    );
    assert.equal(await page.locator('#link-pg1').getAttribute('data-state'), 'up');
    await press('start writer');
    await until(`/[1-9]\\d* committed/.test(document.getElementById('writer')?.textContent ?? '')`, 20_000);
    await shot('1-healthy');
  });

  test('a wrong token is refused and changes nothing', async () => {
    const r = await page.evaluate(async (url) => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' },
        body: JSON.stringify({ action: 'isolate', host: 'pg2' }),
      });
      return { status: res.status, body: (await res.json()) as { error: string } };
    }, `${dash!.url}api/action`);
    assert.equal(r.status, 401);
    assert.match(r.body.error, /bad token/);
  });

  test('isolate pg1: the page shows pg2 primary and pg1 fenced', async () => {
    const t0 = Date.now();
    await press('isolate pg1');
    await until(`document.getElementById('link-pg1')?.getAttribute('data-state') === 'cut'`, 15_000);
    await pageShows({ pg2: { role: 'primary', state: 'running (rw)' }, pg1: { fenced: 'yes' } }, 60_000);
    console.log(`failover shown after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await until(`/arbiter grant/.test(document.getElementById('events')?.textContent ?? '')`, 15_000);
    await shot('2-pg1-isolated');
  });

  test('heal pg1: the page shows pg1 rejoined as a streaming standby', async () => {
    const t0 = Date.now();
    await press('heal pg1');
    await pageShows(
      { pg1: { role: 'standby', state: 'streaming', fenced: 'no' }, pg2: { role: 'primary' } },
      90_000,
    );
    console.log(`rejoin shown after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(await page.locator('#link-pg1').getAttribute('data-state'), 'up');
    await until(`/pg1 rejoin/.test(document.getElementById('events')?.textContent ?? '')`, 15_000);
    await shot('3-pg1-rejoined');
    await press('stop writer');
  });
});
