// Soak schedules: random but reproducible fault timelines. A schedule is drawn from a seeded PRNG
// (the same seed and index give the same schedule), generated before the run and saved as JSON,
// so a run that finds a violation can be replayed fault for fault. Pure: no I/O, no clock.
import { TIMING_PROFILES, type TimingProfile } from '../config.js';
import { prng } from '../util/prng.js';

/** Targets are roles, resolved to a host when the fault starts (the primary moves during a run). */
export type Role = 'primary' | 'standby' | 'arbiter';
export const ROLES: readonly Role[] = ['primary', 'standby', 'arbiter'];
export type NodeRole = 'primary' | 'standby';

export type FaultSpec =
  /** The host cut off the network (the run's --mode), healed at the end. */
  | { kind: 'isolate'; target: Role }
  /** Every frame between two members dropped (both directions). */
  | { kind: 'partition'; target: Role; peer: Role }
  /** Every frame from `target` to `peer` dropped; the other direction passes. */
  | { kind: 'one-way'; target: Role; peer: Role }
  /** A share of the frames to and from a host dropped at random. */
  | { kind: 'loss'; target: Role; percent: number }
  /** SIGSTOP of every process of the host, SIGCONT at the end. */
  | { kind: 'freeze'; target: Role }
  /** PostgreSQL stopped (pg_ctl -m fast) or kill -9; its agent starts it again. */
  | { kind: 'stop-postgres' | 'kill-postgres'; target: NodeRole }
  /** The member's daemon (an agent, or the arbiter) stopped or kill -9, started at the end. */
  | { kind: 'stop-daemon' | 'kill-daemon'; target: Role }
  /** The primary isolated, and the arbiter kill -9 and restarted `delayMs` later, about when it
   *  would grant the failover; the primary is healed at the end. */
  | { kind: 'arbiter-restart-in-failover'; delayMs: number; downMs: number }
  /** Operator actions: a switchover, maintenance mode on (off at the end), a forced failover. */
  | { kind: 'switchover' }
  | { kind: 'maintenance' }
  | { kind: 'force-failover' };

export type FaultKind = FaultSpec['kind'];

export type Fault = FaultSpec & {
  /** Start, ms after the schedule's start. */
  atMs: number;
  /** How long the fault lasts (0 for one-shot operator actions). */
  durationMs: number;
};

export interface Schedule {
  /** Position in the run (with the seed, what generated it). */
  index: number;
  faults: Fault[];
}

export interface SoakPlan {
  format: 'pgarbiter-soak-plan';
  version: 1;
  seed: number;
  sync: string;
  timing: TimingProfile;
  mode: 'link-down' | 'subnet';
  /** The primary's kernel-side lease in the soaked lab (absent in older plans: on). */
  lease?: 'on' | 'off';
  schedules: Schedule[];
}

export const PLAN_FORMAT = 'pgarbiter-soak-plan';

/** The PRNG seed of schedule `index` of a run seeded `seed` (FNV-1a of both): schedules are
 *  independent, so schedule 7 is the same whether or not 0..6 ran. */
export function scheduleSeed(seed: number, index: number): number {
  let h = 0x811c9dc5;
  for (const ch of `${seed}:${index}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

// ---------------------------------------------------------------- generation

/** Relative weights of the catalogue: network faults most often, operator actions least. */
const WEIGHTS: [FaultKind, number][] = [
  ['isolate', 10],
  ['partition', 10],
  ['one-way', 6],
  ['loss', 5],
  ['freeze', 7],
  ['stop-postgres', 4],
  ['kill-postgres', 5],
  ['stop-daemon', 4],
  ['kill-daemon', 6],
  ['arbiter-restart-in-failover', 3],
  ['switchover', 3],
  ['maintenance', 2],
  ['force-failover', 2],
];

export interface GenerateOptions {
  timing: TimingProfile;
  /** Faults per schedule (default 1..4). */
  minFaults?: number;
  maxFaults?: number;
  /** Window in which faults start, ms (default 12 000). */
  windowMs?: number;
}

/**
 * One schedule. Faults start at random times in the window, so they overlap or leave gaps;
 * each lasts either shorter than the failover timeout (nothing should happen) or longer (a
 * failover may), half the time each.
 */
export function generateSchedule(seed: number, index: number, o: GenerateOptions): Schedule {
  const rnd = prng(scheduleSeed(seed, index));
  const t = TIMING_PROFILES[o.timing];
  const between = (lo: number, hi: number) => lo + rnd() * (hi - lo);
  const int = (lo: number, hi: number) => Math.floor(between(lo, hi + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const total = WEIGHTS.reduce((s, [, w]) => s + w, 0);
  const drawKind = (): FaultKind => {
    let x = rnd() * total;
    for (const [k, w] of WEIGHTS) {
      x -= w;
      if (x < 0) return k;
    }
    return 'isolate';
  };
  const pair = (): [Role, Role] => {
    const a = pick(ROLES);
    return [a, pick(ROLES.filter((r) => r !== a))];
  };
  const duration = () =>
    Math.round(
      rnd() < 0.5
        ? between(0.2, 0.8) * t.failover_timeout // shorter than the timeouts
        : between(1.3, 3.5) * t.failover_timeout, // long enough for a failover
    );
  const n = int(o.minFaults ?? 1, o.maxFaults ?? 4);
  const window = o.windowMs ?? 12_000;
  const faults: Fault[] = [];
  for (let i = 0; i < n; i++) {
    const kind = drawKind();
    const atMs = Math.round(between(0, window));
    let spec: FaultSpec;
    switch (kind) {
      case 'isolate':
      case 'freeze':
      case 'stop-daemon':
      case 'kill-daemon':
        spec = { kind, target: pick(ROLES) };
        break;
      case 'partition':
      case 'one-way': {
        const [target, peer] = pair();
        spec = { kind, target, peer };
        break;
      }
      case 'loss':
        spec = { kind, target: pick(ROLES), percent: int(20, 70) };
        break;
      case 'stop-postgres':
      case 'kill-postgres':
        spec = { kind, target: pick(['primary', 'standby'] as const) };
        break;
      case 'arbiter-restart-in-failover':
        spec = {
          kind,
          delayMs: Math.round(between(0.7, 1.3) * t.failover_timeout),
          downMs: Math.round(between(200, 2000)),
        };
        break;
      default:
        spec = { kind };
    }
    const one = kind === 'switchover' || kind === 'force-failover';
    const dur =
      kind === 'arbiter-restart-in-failover'
        ? Math.max(duration(), (spec as { delayMs: number }).delayMs + 3000)
        : one
          ? 0
          : duration();
    faults.push({ ...spec, atMs, durationMs: dur });
  }
  faults.sort((a, b) => a.atMs - b.atMs);
  return { index, faults };
}

export function generatePlan(
  seed: number,
  count: number,
  settings: Omit<SoakPlan, 'format' | 'version' | 'seed' | 'schedules'>,
): SoakPlan {
  const schedules = Array.from({ length: count }, (_, i) =>
    generateSchedule(seed, i, { timing: settings.timing }),
  );
  return { format: PLAN_FORMAT, version: 1, seed, ...settings, schedules };
}

/** How long the faults of a schedule take, start of the first to end of the last. */
export const scheduleLengthMs = (s: Schedule) => Math.max(0, ...s.faults.map((f) => f.atMs + f.durationMs));

/** One line per fault, for tables and logs: "isolate primary 4.2 s @1.3 s". */
export function describeFault(f: Fault, host?: string): string {
  let what: string;
  switch (f.kind) {
    case 'partition':
      what = `partition ${f.target} x ${f.peer}`;
      break;
    case 'one-way':
      what = `one-way ${f.target} -> ${f.peer}`;
      break;
    case 'loss':
      what = `loss ${f.percent}% ${f.target}`;
      break;
    case 'arbiter-restart-in-failover':
      what = `isolate primary + arbiter kill/restart at ${(f.delayMs / 1000).toFixed(1)} s`;
      break;
    case 'switchover':
    case 'maintenance':
    case 'force-failover':
      what = f.kind;
      break;
    default:
      what = `${f.kind} ${f.target}`;
  }
  const dur = f.durationMs > 0 ? ` ${(f.durationMs / 1000).toFixed(1)} s` : '';
  return `${what}${host ? ` (${host})` : ''}${dur} @${(f.atMs / 1000).toFixed(1)} s`;
}

/** Checks a plan read from a file (a replay): a clear error for anything else. */
export function validatePlan(v: unknown, source: string): SoakPlan {
  const p = v as Partial<SoakPlan> | null;
  if (!p || typeof p !== 'object' || p.format !== PLAN_FORMAT)
    throw new Error(`${source} is not a soak plan (no "format": "${PLAN_FORMAT}")`);
  if (p.version !== 1) throw new Error(`${source}: plan version ${p.version} is not supported (expected 1)`);
  if (!Array.isArray(p.schedules) || p.schedules.length === 0)
    throw new Error(`${source}: the plan has no schedules`);
  const kinds = new Set(WEIGHTS.map(([k]) => k));
  for (const s of p.schedules) {
    if (!Number.isInteger(s?.index) || !Array.isArray(s.faults))
      throw new Error(`${source}: a schedule lacks its index or faults`);
    for (const f of s.faults)
      if (!kinds.has(f?.kind) || !Number.isFinite(f.atMs) || !Number.isFinite(f.durationMs))
        throw new Error(`${source}: schedule ${s.index} has a fault that is not valid: ${JSON.stringify(f)}`);
  }
  if (!Number.isInteger(p.seed)) throw new Error(`${source}: the plan lacks its seed`);
  if (p.timing !== 'default' && p.timing !== 'fast')
    throw new Error(`${source}: timing must be default or fast`);
  if (p.mode !== 'link-down' && p.mode !== 'subnet')
    throw new Error(`${source}: mode must be link-down or subnet`);
  if (typeof p.sync !== 'string') throw new Error(`${source}: the plan lacks its sync mode`);
  if (p.lease !== undefined && p.lease !== 'on' && p.lease !== 'off')
    throw new Error(`${source}: lease must be on or off`);
  return p as SoakPlan;
}
