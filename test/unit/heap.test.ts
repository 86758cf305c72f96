// src/util/heap.ts: a daemon's V8 settings, checked in a fresh node process each (flags are per process).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const HEAP = new URL('../../src/util/heap.js', import.meta.url).href;

/** Runs `body` as an ES module in a new node process (after `pre`), returns its output. */
function node(body: string, nodeArgs: string[] = []): string {
  const r = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', body], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

const HOT = `
function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += (i * 7) % 13; return s; }
let t = 0; for (let i = 0; i < 3000; i++) t += hot(1000);
console.log('sum', t);`;

test('leanV8: hot code is not optimized by TurboFan (it is without it)', () => {
  const optimized = (out: string) =>
    out.split('\n').filter((l) => /completed (compiling|optimizing)/.test(l));
  assert.ok(optimized(node(HOT, ['--trace-opt'])).length > 0, 'without leanV8 the hot function is optimized');
  const lean = node(`import { leanV8 } from '${HEAP}'; leanV8();${HOT}`, ['--trace-opt']);
  assert.match(lean, /sum 18000000/);
  assert.deepEqual(optimized(lean), []);
});

test('collectHeapEvery: the whole heap is collected on the interval, and the timer does not hold the process', () => {
  const majors = (collect: boolean) =>
    Number(
      node(`
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { collectHeapEvery } from '${HEAP}';
let majors = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++; }).observe({ entryTypes: ['gc'] });
${collect ? 'collectHeapEvery(100);' : ''}
const idle = setInterval(() => {}, 50);
setTimeout(() => { clearInterval(idle); setImmediate(() => console.log(majors)); }, 1050);`).trim(),
    );
  assert.equal(majors(false), 0, 'an idle process of this size has no full collection on its own');
  assert.ok(majors(true) >= 5, 'about one full collection every 100 ms');
});
