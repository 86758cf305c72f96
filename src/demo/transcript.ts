// The demo's record of what it did: steps (numbered as in the lab assignment), each command with
// its output, log excerpts, checks with their evidence, timeline markers and the write rate.
// The terminal narration and the Markdown/HTML report are both rendered from it.

export type Entry =
  | { kind: 'text'; text: string }
  /** A command as a person would type it, and what it printed. */
  | { kind: 'command'; cmd: string; host?: string; output: string; ms: number; ok: boolean }
  /** Lines found in a log file, with where they came from. */
  | { kind: 'log'; source: string; lines: string[] }
  | { kind: 'table'; title: string; head: string[]; rows: string[][] };

export interface Step {
  /** The assignment's numbering: "1", "2.1", "2.2", "2.3", "3", or "summary". */
  id: string;
  title: string;
  /** What this step demonstrates, one sentence. */
  purpose: string;
  startedAt: number;
  endedAt?: number;
  entries: Entry[];
}

export interface Check {
  step: string;
  requirement: string;
  evidence: string;
  pass: boolean;
  /** Optional duration that the check measured. */
  ms?: number;
}

/** An event on the time axis of the write-rate chart. */
export interface Marker {
  t: number;
  label: string;
}

export interface DemoOutcome {
  /** The report's heading (default "pgarbiter demo report"; the soak reuses the renderer). */
  title?: string;
  ok: boolean;
  startedAt: number;
  endedAt: number;
  options: Record<string, unknown>;
  steps: Step[];
  checks: Check[];
  markers: Marker[];
  /** Acknowledged writes per second since `ackSeriesStart` (index 0 = first second). */
  ackSeries: number[];
  ackSeriesStart: number;
  /** The writer's accounting over the whole run. */
  loss: {
    synchronousCommit: string;
    acknowledged: number;
    failed: number;
    unknown: number;
    lost: number;
    longestWriteGapMs: number | null;
  } | null;
  timings: Record<string, number>;
}
