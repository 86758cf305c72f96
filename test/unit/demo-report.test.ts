import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { formatSummaryTable, renderHtml, renderMarkdown, writeReport } from '../../src/demo/report.js';
import type { DemoOutcome, Step } from '../../src/demo/transcript.js';

const T0 = Date.parse('2026-03-02T10:00:00.000Z');

function step(id: string, title: string, at: number, entries: Step['entries']): Step {
  return {
    id,
    title,
    purpose: `Demonstrates ${title.toLowerCase()}.`,
    startedAt: T0 + at,
    endedAt: T0 + at + 4000,
    entries,
  };
}

const COMMANDS: { cmd: string; host?: string; output: string }[] = [
  { cmd: 'ip -br addr', host: 'pg1', output: 'veth-pg1 UP 10.77.0.11/24' },
  {
    cmd: "psql -h 10.77.0.12 -c 'insert into customers values (1)'",
    output: 'ERROR:  cannot execute INSERT in a read-only transaction',
  },
  {
    cmd: 'psql -c "select application_name from pg_stat_activity"',
    host: 'client',
    output: 'writer-1\nwriter-2\nwriter-3',
  },
  { cmd: 'pgarbiter lab isolate pg1', output: 'pg1: link veth-pg1 down' },
  {
    cmd: 'grep -h FATAL logs/pg2.log',
    output: '<script>alert("x")</script> FATAL: could not receive data from WAL stream',
  },
  { cmd: 'pgarbiter switchover --to pg1', output: 'switchover complete in 2.1 s' },
];

function outcome(): DemoOutcome {
  const cmd = (i: number) => ({ kind: 'command' as const, ...COMMANDS[i]!, ms: 120 + i, ok: true });
  return {
    ok: false,
    startedAt: T0,
    endedAt: T0 + 95_000,
    options: { mode: 'link', manual: false, report: './pgarbiter-report' },
    steps: [
      step('1', 'Configuration', 0, [
        { kind: 'text', text: 'Three hosts on one bridge.' },
        cmd(0),
        cmd(1),
        {
          kind: 'table',
          title: 'Hosts',
          head: ['host', 'address', 'role'],
          rows: [
            ['pg1', '10.77.0.11', 'primary'],
            ['pg2', '10.77.0.12', 'standby | hot'],
          ],
        },
      ]),
      step('2.1', 'Client sessions', 10_000, [cmd(2)]),
      step('2.2', 'Primary isolated', 20_000, [cmd(3)]),
      step('2.3', 'Errors and failover', 30_000, [
        cmd(4),
        {
          kind: 'log',
          source: 'pg2/postgresql.log',
          lines: ['FATAL:  terminating walreceiver due to timeout'],
        },
        { kind: 'log', source: 'agent-pg1.log', lines: ['lost arbiter and peer: fencing'] },
      ]),
      step('3', 'Rejoin and switchover', 50_000, [cmd(5)]),
    ],
    checks: [
      {
        step: '1',
        requirement: 'RO on the standby',
        evidence: 'INSERT refused: read-only transaction',
        pass: true,
      },
      {
        step: '2.1',
        requirement: 'At least 3 client sessions',
        evidence: '3 application_names in pg_stat_activity',
        pass: true,
      },
      { step: '2.3', requirement: 'Automatic failover', evidence: 'pg2 promoted', pass: true, ms: 6400 },
      {
        step: '3',
        requirement: 'Roles restored by switchover',
        evidence: 'pg1 is still a standby',
        pass: false,
        ms: 2100,
      },
    ],
    markers: [
      { t: T0 + 25_000, label: 'fault' },
      { t: T0 + 31_500, label: 'failover' },
      { t: T0 + 55_000, label: 'rejoin' },
      { t: T0 + 70_000, label: 'switchover' },
    ],
    ackSeries: [0, 140, 152, 148, 0, 0, 0, 131, 137, 139, 143, 150],
    ackSeriesStart: T0 + 20_000,
    loss: {
      synchronousCommit: 'remote_apply',
      acknowledged: 12345,
      failed: 17,
      unknown: 2,
      lost: 0,
      longestWriteGapMs: 6400,
    },
    timings: { failover: 6400, switchover: 2100 },
  };
}

test('Markdown holds every step heading, command, output and the summary with PASS/FAIL', () => {
  const o = outcome();
  const md = renderMarkdown(o);
  for (const s of o.steps) {
    assert.ok(md.includes(`## Step ${s.id} — ${s.title}`), `heading of step ${s.id}`);
    assert.ok(md.includes(s.purpose), `purpose of step ${s.id}`);
  }
  for (const c of COMMANDS) {
    assert.ok(md.includes(c.cmd), `command ${c.cmd}`);
    for (const line of c.output.split('\n')) assert.ok(md.includes(line), `output ${line}`);
  }
  assert.ok(md.includes('## Summary'));
  assert.ok(md.indexOf('## Summary') < md.indexOf('## Step 1'), 'summary comes first');
  assert.match(md, /\| 1 \| RO on the standby \| INSERT refused: read-only transaction \| \*\*PASS\*\* \|/);
  assert.match(
    md,
    /\| 3 \| Roles restored by switchover \| pg1 is still a standby \| \*\*FAIL\*\* \| 2\.10 s \|/,
  );
  assert.ok(md.includes('standby \\| hot'), 'pipes in cells are escaped');
  assert.ok(md.includes('Log excerpt from `pg2/postgresql.log`'));
  assert.ok(md.includes('FATAL:  terminating walreceiver due to timeout'));
  assert.ok(md.includes('| acknowledged but lost | 0 |'));
  assert.ok(md.includes('| synchronous_commit | remote_apply |'));
  assert.ok(md.includes('| longest gap without a committed write | 6.40 s |'));
  for (const m of ['fault', 'failover', 'rejoin', 'switchover'])
    assert.ok(md.includes(`<- ${m}`), `marker ${m}`);
  assert.ok(md.includes('| mode | link |'));
  // Every fence is closed.
  assert.equal((md.match(/^```/gm) ?? []).length % 2, 0);
});

test('HTML is self-contained, escapes outputs and embeds Chart.js, the series and the markers', () => {
  const o = outcome();
  const html = renderHtml(o);
  assert.ok(html.startsWith('<!doctype html>'));
  assert.doesNotMatch(html, /<script[^>]*\ssrc=/i);
  assert.doesNotMatch(html, /<link[^>]*href=/i);
  assert.doesNotMatch(html, /<img[^>]*src=/i);
  assert.doesNotMatch(html, /url\(\s*['"]?(https?:)?\/\//i);
  assert.doesNotMatch(html, /sourceMappingURL/);
  // The output's <script> is escaped; the only raw <script> tags are ours.
  assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'));
  assert.ok(!html.includes('<script>alert('));
  assert.equal((html.match(/<script>/g) ?? []).length, 2);
  assert.equal((html.match(/<\/script>/g) ?? []).length, 2);
  // Chart.js's UMD bundle, inline.
  assert.ok(html.includes('Chart.js v4'), 'Chart.js banner');
  assert.ok(html.length > 150_000, 'the bundle itself is embedded');
  assert.ok(html.includes('new Chart('));
  assert.ok(html.includes('afterDraw'));
  // Series and markers (x in seconds since ackSeriesStart).
  assert.ok(html.includes('{"x":2,"y":152}'));
  assert.ok(html.includes('{"x":5,"label":"fault"}'));
  assert.ok(html.includes('{"x":11.5,"label":"failover"}'));
  assert.ok(html.includes('{"x":50,"label":"switchover"}'));
  assert.ok(html.includes('<td>2</td><td>152</td>'), 'fallback table of the series');
  for (const s of o.steps) assert.ok(html.includes(`Step ${s.id} — ${s.title}`));
  for (const c of COMMANDS) assert.ok(html.includes(c.host ? `${c.host}$ ` : '$ '));
  assert.ok(html.includes('<span class="fail">FAIL</span>'));
  assert.ok(html.includes('<span class="pass">PASS</span>'));
});

test('the page runs the real Chart.js and the plugin draws a labelled vertical line per marker', () => {
  const html = renderHtml(outcome());
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
  assert.equal(scripts.length, 2);
  // A canvas whose 2D context records every call; without `window` Chart.js uses its basic platform.
  const calls: [string, ...unknown[]][] = [];
  const ctx: Record<string | symbol, unknown> = new Proxy({} as Record<string | symbol, unknown>, {
    get: (t, k) =>
      k in t
        ? t[k]
        : k === 'measureText'
          ? (s: string) => ({ width: s.length * 6 })
          : (...args: unknown[]) => calls.push([String(k), ...args]),
    set: (t, k, v) => {
      t[k] = v;
      return true;
    },
  });
  const canvas = { width: 1000, height: 340, style: {}, getContext: () => ctx };
  ctx.canvas = canvas;
  const sandbox: Record<string, unknown> = { document: { getElementById: () => canvas } };
  sandbox.self = sandbox;
  runInNewContext(`${scripts[0]}\n;${scripts[1]}`, sandbox);
  const labels = calls.filter(
    (c) => c[0] === 'fillText' && ['fault', 'failover', 'rejoin', 'switchover'].includes(String(c[1])),
  );
  assert.deepEqual(
    labels.map((c) => c[1]),
    ['fault', 'failover', 'rejoin', 'switchover'],
  );
  // One dashed line per marker, left to right, inside the canvas.
  const xs = calls
    .filter((c) => c[0] === 'moveTo')
    .slice(-4)
    .map((c) => c[1] as number);
  assert.ok(
    xs.every((x, i) => x > 0 && x <= 1000 && (i === 0 || x > xs[i - 1]!)),
    `marker lines at ${xs}`,
  );
});

test('marker labels cannot break out of the inline script', () => {
  const o = outcome();
  o.markers.push({ t: T0 + 30_000, label: '</script><b>x' });
  const html = renderHtml(o);
  assert.equal((html.match(/<\/script>/g) ?? []).length, 2);
  assert.ok(html.includes('\\u003c/script>\\u003cb>x'));
});

test('writeReport writes report.md, report.html and outcome.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-report-'));
  try {
    const target = join(dir, 'nested', 'report');
    const o = outcome();
    const paths = writeReport(o, target);
    assert.equal(paths.markdown, join(target, 'report.md'));
    assert.equal(paths.html, join(target, 'report.html'));
    assert.ok(readFileSync(paths.markdown, 'utf8').includes('## Step 2.3 — Errors and failover'));
    assert.ok(readFileSync(paths.html, 'utf8').includes('new Chart('));
    assert.ok(existsSync(join(target, 'outcome.json')));
    assert.deepEqual(JSON.parse(readFileSync(join(target, 'outcome.json'), 'utf8')), o);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the terminal summary table is plain text with every check', () => {
  const t = formatSummaryTable(outcome());
  assert.ok(!t.includes('\u001b['), 'no colours');
  assert.match(t, /RO on the standby/);
  assert.match(t, /PASS/);
  assert.match(t, /FAIL/);
  assert.match(t, /6\.40 s/);
});
