// The soak's output: a table per schedule and a summary for the terminal, and the HTML report
// (the demo's renderer: the write rate over time with the faults drawn on it).
import Table from 'cli-table3';
import { writeReport } from '../demo/report.js';
import type { DemoOutcome, Marker } from '../demo/transcript.js';
import type { ScheduleResult, SoakResult } from './run.js';

const s = (ms: number | null) => (ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`);

export const SCHEDULE_HEAD = [
  'schedule',
  'faults',
  'failovers',
  'fences',
  'acknowledged',
  'lost',
  'unknown',
  'longest write gap',
  'time to heal',
  'result',
];

function faultList(r: ScheduleResult): string {
  return r.faults
    .map(
      (f) =>
        `${f.kind}${f.host ? ` ${f.host}` : ''}${f.peer ? `-${f.peer}` : ''}${f.durationMs ? ` ${s(f.durationMs)}` : ''}${f.skipped ? ' (skipped)' : ''}${f.error ? ' (error)' : ''}`,
    )
    .join(', ');
}

export function scheduleCells(r: ScheduleResult): string[] {
  const result = r.violations.length
    ? `VIOLATION: ${r.violations.join('; ')}`
    : r.excused.length
      ? `ok (${r.excused.join('; ')})`
      : 'ok';
  return [
    String(r.index),
    faultList(r),
    String(r.failovers),
    String(r.fences),
    String(r.acknowledged),
    String(r.lost),
    String(r.unknown),
    s(r.longestWriteGapMs),
    s(r.healMs),
    result,
  ];
}

export interface SoakSummary {
  schedules: number;
  faults: number;
  failovers: number;
  fences: number;
  acknowledged: number;
  lost: number;
  unknown: number;
  longestWriteGapMs: number | null;
  longestHealMs: number | null;
  violations: number;
  minutes: number;
}

export function summarize(r: SoakResult): SoakSummary {
  const sum = (f: (x: ScheduleResult) => number) => r.schedules.reduce((a, x) => a + f(x), 0);
  const max = (f: (x: ScheduleResult) => number | null) =>
    r.schedules.reduce<number | null>((a, x) => {
      const v = f(x);
      return v === null ? a : a === null ? v : Math.max(a, v);
    }, null);
  return {
    schedules: r.schedules.length,
    faults: sum((x) => x.faults.filter((f) => !f.skipped).length),
    failovers: sum((x) => x.failovers),
    fences: sum((x) => x.fences),
    acknowledged: sum((x) => x.acknowledged),
    lost: sum((x) => x.lost),
    unknown: sum((x) => x.unknown),
    longestWriteGapMs: max((x) => x.longestWriteGapMs),
    longestHealMs: max((x) => x.healMs),
    violations: sum((x) => x.violations.length),
    minutes: Math.round((r.endedAt - r.startedAt) / 600) / 100,
  };
}

export function formatSoakTable(r: SoakResult): string {
  const t = new Table({
    head: SCHEDULE_HEAD,
    colWidths: [10, 44, 11, 8, 14, 6, 9, 10, 9, 30],
    wordWrap: true,
    style: { head: [], border: [] },
  });
  for (const x of r.schedules) t.push(scheduleCells(x));
  const m = summarize(r);
  const lines = [
    t.toString(),
    `summary: ${m.schedules} schedule(s), ${m.faults} faults, ${m.failovers} new terms, ${m.fences} fences in ${m.minutes} min; ` +
      `acknowledged ${m.acknowledged}, lost ${m.lost}, unknown ${m.unknown}; longest write gap ${s(m.longestWriteGapMs)}, ` +
      `longest time to heal ${s(m.longestHealMs)} (bound ${s(r.settings.healBoundMs)}); ` +
      `sync ${r.settings.sync}, timing ${r.settings.timing}, mode ${r.settings.mode}, lease ${r.settings.lease ?? 'on'}, seed ${r.settings.seed}`,
    m.violations === 0
      ? 'result: 0 violations'
      : `result: ${m.violations} VIOLATION(S)${r.stoppedEarly ? ' (the run stopped at the first)' : ''}`,
  ];
  return lines.join('\n');
}

/** The soak as the demo's report model: a step per schedule, a check per schedule, the faults
 *  as markers on the write-rate chart. */
export function soakOutcome(r: SoakResult): DemoOutcome {
  const markers: Marker[] = [];
  for (const x of r.schedules)
    for (const f of x.faults)
      if (!f.skipped)
        markers.push({
          t: f.startedAt,
          label: `s${x.index} ${f.kind}${f.host ? ` ${f.host}` : ''}${f.peer ? `-${f.peer}` : ''}`,
        });
  return {
    title: 'pgarbiter soak report',
    ok: r.violations === 0,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    options: { ...r.settings, plan: r.planFile },
    steps: r.schedules.map((x) => ({
      id: `s${x.index}`,
      title: `Schedule ${x.index}`,
      purpose: 'Faults drawn from the catalogue, alone and overlapping, with the writers on.',
      startedAt: x.startedAt,
      endedAt: x.endedAt,
      entries: [
        {
          kind: 'table',
          title: 'Faults',
          head: ['fault', 'host', 'peer', 'at', 'duration', 'what happened'],
          rows: x.faults.map((f) => [
            f.kind,
            f.host ?? '',
            f.peer ?? '',
            s(f.atMs),
            s(f.durationMs),
            f.error ? `error: ${f.error}` : f.note,
          ]),
        },
        { kind: 'table', title: 'Result', head: SCHEDULE_HEAD, rows: [scheduleCells(x)] },
      ],
    })),
    checks: r.schedules.map((x) => ({
      step: `s${x.index}`,
      requirement: 'no two primaries, no late ack, no promised loss, terms grow, heals in bound, daemons up',
      evidence: x.violations.length
        ? x.violations.join('; ')
        : `${x.acknowledged} acknowledged, ${x.lost} lost`,
      pass: x.violations.length === 0,
      ms: x.healMs ?? undefined,
    })),
    markers,
    ackSeries: r.ackSeries,
    ackSeriesStart: r.startedAt,
    loss: {
      synchronousCommit: r.settings.sync,
      acknowledged: summarize(r).acknowledged,
      failed: r.schedules.reduce((a, x) => a + x.failed, 0),
      unknown: summarize(r).unknown,
      lost: summarize(r).lost,
      longestWriteGapMs: summarize(r).longestWriteGapMs,
    },
    timings: {},
  };
}

export function writeSoakReport(r: SoakResult, dir: string) {
  return writeReport(soakOutcome(r), dir);
}
