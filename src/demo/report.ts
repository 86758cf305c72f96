// The demo's report: the same DemoOutcome rendered as Markdown, as one self-contained HTML page
// (inline CSS, Chart.js embedded inline, no external URL) and as the terminal's summary table.
// A teacher must be able to check every requirement of the assignment from the report alone.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Table from 'cli-table3';
import { chartJs } from '../util/chartjs.js';
import type { Check, DemoOutcome, Entry, Step } from './transcript.js';

// ---------------------------------------------------------------------------------------------
// Shared helpers

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

const iso = (ms: number) => new Date(ms).toISOString();
const verdict = (pass: boolean) => (pass ? 'PASS' : 'FAIL');
const stepHeading = (s: Step) => (/^\d/.test(s.id) ? `Step ${s.id} — ${s.title}` : s.title);
const stepDuration = (s: Step) => (s.endedAt === undefined ? '' : formatMs(s.endedAt - s.startedAt));
const optionValue = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
/** Seconds since the start of the write series, for a point in time. */
const seriesSeconds = (o: DemoOutcome, t: number) => (t - o.ackSeriesStart) / 1000;
const commandLine = (e: Extract<Entry, { kind: 'command' }>) => `${e.host ?? ''}$ ${e.cmd}`;

function lossRows(o: DemoOutcome): [string, string][] {
  const l = o.loss;
  if (!l) return [];
  return [
    ['synchronous_commit', l.synchronousCommit],
    ['acknowledged (committed) writes', String(l.acknowledged)],
    ['failed writes (error returned to the client)', String(l.failed)],
    ['unknown outcome (connection lost during commit)', String(l.unknown)],
    ['acknowledged but lost', String(l.lost)],
    [
      'longest gap without a committed write',
      l.longestWriteGapMs === null ? 'n/a' : formatMs(l.longestWriteGapMs),
    ],
  ];
}

function markerRows(o: DemoOutcome): [string, string, string][] {
  return [...o.markers]
    .sort((a, b) => a.t - b.t)
    .map((m) => [iso(m.t), `${seriesSeconds(o, m.t).toFixed(1)} s`, m.label]);
}

// ---------------------------------------------------------------------------------------------
// Markdown

/** A fence longer than any run of backticks in the text. */
function fenced(text: string, lang = ''): string {
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${lang}\n${text.replace(/\n+$/, '')}\n${fence}`;
}

/** Prose outside code blocks: no raw HTML. */
const mdText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const mdCell = (s: string) =>
  mdText(s).replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');

function mdTable(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map(mdCell).join(' | ')} |`;
  return [line(head), `|${head.map(() => ' --- ').join('|')}|`, ...rows.map(line)].join('\n');
}

function checkRow(c: Check): string[] {
  return [c.step, c.requirement, c.evidence, `**${verdict(c.pass)}**`, formatMs(c.ms)];
}

function mdEntry(e: Entry): string {
  switch (e.kind) {
    case 'text':
      return mdText(e.text);
    case 'command': {
      const status = `${e.ok ? 'ok' : 'failed'}, ${formatMs(e.ms)}${e.host ? `, on ${e.host}` : ''}`;
      return `${fenced(`${commandLine(e)}\n${e.output || '(no output)'}`, 'console')}\n\n_(${status})_`;
    }
    case 'log':
      return `Log excerpt from \`${e.source}\`:\n\n${fenced(e.lines.join('\n') || '(no lines)', 'text')}`;
    case 'table':
      return `**${e.title}**\n\n${mdTable(e.head, e.rows)}`;
  }
}

/** The write series as text: one line per second, a bar, and the markers at their second. */
function textSeries(o: DemoOutcome): string {
  const max = Math.max(1, ...o.ackSeries);
  const at = new Map<number, string[]>();
  for (const m of o.markers) {
    const s = Math.max(0, Math.floor(seriesSeconds(o, m.t)));
    at.set(s, [...(at.get(s) ?? []), m.label]);
  }
  const seconds = Math.max(o.ackSeries.length, ...[...at.keys()].map((s) => s + 1));
  const lines: string[] = [];
  for (let s = 0; s < seconds; s++) {
    const n = o.ackSeries[s];
    const bar = '#'.repeat(Math.round(((n ?? 0) / max) * 40));
    const labels = at.get(s);
    const line = `${String(s).padStart(4)} s ${String(n ?? '-').padStart(6)}  ${bar.padEnd(40)}`;
    lines.push(`${line}${labels ? `  <- ${labels.join('; ')}` : ''}`.trimEnd());
  }
  return lines.join('\n');
}

export function renderMarkdown(o: DemoOutcome): string {
  const out: string[] = [];
  const passed = o.checks.filter((c) => c.pass).length;
  out.push(`# ${o.title ?? 'pgarbiter demo report'} — ${o.ok ? 'PASS' : 'FAIL'}`);
  out.push(
    `Run from ${iso(o.startedAt)} to ${iso(o.endedAt)} (${formatMs(o.endedAt - o.startedAt)}); ` +
      `${passed} of ${o.checks.length} checks passed.`,
  );
  const opts = Object.entries(o.options);
  if (opts.length > 0)
    out.push(
      '## Options',
      mdTable(
        ['option', 'value'],
        opts.map(([k, v]) => [k, optionValue(v)]),
      ),
    );

  out.push(
    '## Summary',
    mdTable(['Step', 'Requirement', 'Evidence', 'Result', 'Timing'], o.checks.map(checkRow)),
  );

  for (const step of o.steps) {
    out.push(`## ${mdText(stepHeading(step))}`);
    out.push(`_${mdText(step.purpose)}_`);
    out.push(
      `Started ${iso(step.startedAt)}${step.endedAt === undefined ? '' : `, took ${stepDuration(step)}`}.`,
    );
    for (const e of step.entries) out.push(mdEntry(e));
    const checks = o.checks.filter((c) => c.step === step.id);
    if (checks.length > 0) {
      out.push(`**Checks for step ${step.id}**`);
      out.push(
        mdTable(
          ['Requirement', 'Evidence', 'Result', 'Timing'],
          checks.map((c) => checkRow(c).slice(1)),
        ),
      );
    }
  }

  out.push('## Data-loss accounting');
  out.push(o.loss ? mdTable(['measure', 'value'], lossRows(o)) : 'The writer did not report its accounting.');

  out.push('## Timeline');
  out.push(`Committed writes per second, from ${iso(o.ackSeriesStart)} (second 0).`);
  out.push(
    markerRows(o).length > 0 ? mdTable(['time', 'since second 0', 'event'], markerRows(o)) : 'No events.',
  );
  out.push(fenced(`second  acks/s\n${textSeries(o)}`, 'text'));

  const timings = Object.entries(o.timings);
  if (timings.length > 0) {
    out.push(
      '## Timings',
      mdTable(
        ['measure', 'duration'],
        timings.map(([k, v]) => [k, formatMs(v)]),
      ),
    );
  }
  return `${out.join('\n\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// HTML

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const CSS = `
body{font:15px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1100px;margin:0 auto;padding:1.5rem}
h1{margin-top:0}h2{border-bottom:1px solid #ccd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;background:#fff}
th,td{border:1px solid #ccd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#e9ecf2}
pre{background:#1e2430;color:#e6e9ef;padding:.7rem;overflow-x:auto;border-radius:4px;font-size:13px}
.cmd{color:#9fd2ff}.meta,.purpose{color:#556}.purpose{font-style:italic}
.pass{color:#0a7a2f;font-weight:bold}.fail{color:#b3141b;font-weight:bold}
.chart{background:#fff;border:1px solid #ccd;padding:.5rem;height:340px;position:relative}
`;

function htmlTable(head: string[], rows: string[][], raw = false): string {
  const cell = (s: string) => (raw ? s : escapeHtml(s));
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c) => `<td>${cell(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>`;
}

function htmlChecks(checks: Check[], withStep: boolean): string {
  const head = ['Step', 'Requirement', 'Evidence', 'Result', 'Timing'];
  const rows = checks.map((c) => [
    escapeHtml(c.step),
    escapeHtml(c.requirement),
    escapeHtml(c.evidence),
    `<span class="${c.pass ? 'pass' : 'fail'}">${verdict(c.pass)}</span>`,
    escapeHtml(formatMs(c.ms)),
  ]);
  return withStep
    ? htmlTable(head, rows, true)
    : htmlTable(
        head.slice(1),
        rows.map((r) => r.slice(1)),
        true,
      );
}

function htmlEntry(e: Entry): string {
  switch (e.kind) {
    case 'text':
      return `<p>${escapeHtml(e.text)}</p>`;
    case 'command': {
      const status = `${e.ok ? 'ok' : 'failed'}, ${formatMs(e.ms)}${e.host ? `, on ${e.host}` : ''}`;
      return (
        `<pre><span class="cmd">${escapeHtml(commandLine(e))}</span>\n${escapeHtml(e.output || '(no output)')}</pre>` +
        `<p class="meta">(${escapeHtml(status)})</p>`
      );
    }
    case 'log':
      return `<p>Log excerpt from <code>${escapeHtml(e.source)}</code>:</p><pre>${escapeHtml(e.lines.join('\n') || '(no lines)')}</pre>`;
    case 'table':
      return `<p><strong>${escapeHtml(e.title)}</strong></p>${htmlTable(e.head, e.rows)}`;
  }
}

/** JSON for a <script> element: no "<" that could close it. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

function htmlChart(o: DemoOutcome): string {
  const data = {
    points: o.ackSeries.map((y, x) => ({ x, y })),
    markers: [...o.markers]
      .sort((a, b) => a.t - b.t)
      .map((m) => ({ x: seriesSeconds(o, m.t), label: m.label })),
  };
  const seriesTable = htmlTable(
    ['second', 'committed writes'],
    o.ackSeries.map((n, s) => [String(s), String(n)]),
  );
  return `<div class="chart"><canvas id="acks" role="img" aria-label="Committed writes per second over time"></canvas></div>
<noscript><p>The chart needs JavaScript; the series is in the table below.</p></noscript>
<details><summary>Series as a table</summary>${seriesTable}</details>
<script>${chartJs()}</script>
<script>
(function () {
  var DATA = ${scriptJson(data)};
  var markerLines = {
    id: 'markerLines',
    afterDraw: function (chart) {
      var a = chart.chartArea, x = chart.scales.x, ctx = chart.ctx;
      ctx.save();
      ctx.font = '12px system-ui, sans-serif';
      DATA.markers.forEach(function (m, i) {
        var px = x.getPixelForValue(m.x);
        if (px < a.left - 1 || px > a.right + 1) return;
        ctx.strokeStyle = '#b3141b'; ctx.fillStyle = '#b3141b'; ctx.setLineDash([5, 4]);
        ctx.beginPath(); ctx.moveTo(px, a.top); ctx.lineTo(px, a.bottom); ctx.stroke();
        ctx.fillText(m.label, Math.min(px + 4, a.right - ctx.measureText(m.label).width), a.top + 14 + (i % 4) * 15);
      });
      ctx.restore();
    }
  };
  var maxX = Math.max(DATA.points.length - 1, 1, Math.max.apply(null, DATA.markers.map(function (m) { return m.x; }).concat([0])));
  new Chart(document.getElementById('acks'), {
    type: 'line',
    data: { datasets: [{ label: 'committed writes per second', data: DATA.points, borderColor: '#2563eb',
      backgroundColor: 'rgba(37,99,235,.15)', fill: true, pointRadius: 0, borderWidth: 1.5, stepped: true }] },
    options: { animation: false, maintainAspectRatio: false, parsing: false,
      scales: { x: { type: 'linear', min: 0, max: maxX, title: { display: true, text: 'seconds since the writer started' } },
        y: { beginAtZero: true, title: { display: true, text: 'committed writes / s' } } } },
    plugins: [markerLines]
  });
})();
</script>`;
}

export function renderHtml(o: DemoOutcome): string {
  const passed = o.checks.filter((c) => c.pass).length;
  const title = `${o.title ?? 'pgarbiter demo report'} — ${o.ok ? 'PASS' : 'FAIL'}`;
  const b: string[] = [];
  b.push(
    `<h1>${escapeHtml(o.title ?? 'pgarbiter demo report')} — <span class="${o.ok ? 'pass' : 'fail'}">${o.ok ? 'PASS' : 'FAIL'}</span></h1>`,
  );
  b.push(
    `<p class="meta">Run from ${iso(o.startedAt)} to ${iso(o.endedAt)} (${formatMs(o.endedAt - o.startedAt)}); ` +
      `${passed} of ${o.checks.length} checks passed.</p>`,
  );
  const opts = Object.entries(o.options);
  if (opts.length > 0)
    b.push(
      '<h2>Options</h2>',
      htmlTable(
        ['option', 'value'],
        opts.map(([k, v]) => [k, optionValue(v)]),
      ),
    );
  b.push('<h2>Summary</h2>', htmlChecks(o.checks, true));
  b.push('<h2>Committed writes per second</h2>', htmlChart(o));

  for (const step of o.steps) {
    b.push(`<section id="step-${escapeHtml(step.id)}"><h2>${escapeHtml(stepHeading(step))}</h2>`);
    b.push(`<p class="purpose">${escapeHtml(step.purpose)}</p>`);
    b.push(
      `<p class="meta">Started ${iso(step.startedAt)}${step.endedAt === undefined ? '' : `, took ${stepDuration(step)}`}.</p>`,
    );
    for (const e of step.entries) b.push(htmlEntry(e));
    const checks = o.checks.filter((c) => c.step === step.id);
    if (checks.length > 0)
      b.push(`<p><strong>Checks for step ${escapeHtml(step.id)}</strong></p>`, htmlChecks(checks, false));
    b.push('</section>');
  }

  b.push('<h2>Data-loss accounting</h2>');
  b.push(
    o.loss
      ? htmlTable(['measure', 'value'], lossRows(o))
      : '<p>The writer did not report its accounting.</p>',
  );
  b.push('<h2>Timeline</h2>', `<p>Second 0 of the chart is ${iso(o.ackSeriesStart)}.</p>`);
  b.push(
    markerRows(o).length > 0
      ? htmlTable(['time', 'since second 0', 'event'], markerRows(o))
      : '<p>No events.</p>',
  );
  const timings = Object.entries(o.timings);
  if (timings.length > 0) {
    b.push(
      '<h2>Timings</h2>',
      htmlTable(
        ['measure', 'duration'],
        timings.map(([k, v]) => [k, formatMs(v)]),
      ),
    );
  }

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${b.join('\n')}
</main>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// Files and terminal

export function writeReport(o: DemoOutcome, dir: string): { markdown: string; html: string } {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true });
  const markdown = join(abs, 'report.md');
  const html = join(abs, 'report.html');
  writeFileSync(markdown, renderMarkdown(o));
  writeFileSync(html, renderHtml(o));
  writeFileSync(join(abs, 'outcome.json'), `${JSON.stringify(o, null, 2)}\n`);
  return { markdown, html };
}

/** The summary table for the terminal: plain text, no colours. */
export function formatSummaryTable(o: DemoOutcome): string {
  const t = new Table({
    head: ['Step', 'Requirement', 'Evidence', 'Result', 'Timing'],
    colWidths: [6, 34, 50, 8, 10],
    wordWrap: true,
    style: { head: [], border: [] },
  });
  for (const c of o.checks) t.push([c.step, c.requirement, c.evidence, verdict(c.pass), formatMs(c.ms)]);
  return t.toString();
}
