// `pgarbiter test-loss`: the original cluster's data-loss tests, for real. For each cell (a fault
// and a synchronous_commit mode): a fresh lab, the writer at full speed through the multi-host
// DSN or HAProxy, the fault after a warm-up, the failover awaited where the fault calls for it, a
// few more seconds of writing, the writer stopped, its ledger checked against the (new) primary.
//
//   stop-standby     the standby's agent and PostgreSQL stop (no failover; sync writes stall until
//                    the primary drops synchronous replication after sync_stall_timeout)
//   stop-primary     the primary's agent and PostgreSQL stop (failover to the standby)
//   isolate-primary  the primary's network link goes down (failover; the old primary fences)
//
// "stop" is what `docker compose stop` did in the original: SIGTERM, SIGKILL after a grace period
// (pg_ctl stop -m fast: SIGINT to the postmaster, a fast shutdown, which is the stop signal of the official postgres container image); `kill` is kill -9 of both at once.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ArbiterView } from '../cluster/view.js';
import { SYNC_MODES, type SyncCommit } from '../config.js';
import {
  haproxyDsn,
  haproxyRoutesTo,
  isolate,
  type Lab,
  labDown,
  labUp,
  startHaproxy,
  stopMember,
} from '../lab/index.js';
import { signal } from '../lab/proc.js';
import type { HostName } from '../lab/topology.js';
import { isSyncMode } from '../postgres/settings.js';
import { UserError } from '../util/errors.js';
import { sleep } from '../util/exec.js';
import type { CheckReport } from '../workload/compare.js';
import { LedgerTail } from '../workload/ledger.js';
import {
  arbiterView,
  type CheckJson,
  checkLabLedger,
  grantTimeOf,
  type LabWriter,
  startLabWriter,
  type WriterOptions,
  waitFor,
  waitHealthy,
} from './lab-run.js';

export const FAULTS = ['stop-standby', 'stop-primary', 'isolate-primary'] as const;
export type Fault = (typeof FAULTS)[number];
/** The matrix of the original: its two modes. Any synchronous_commit value can be asked for. */
export const MATRIX_SYNC_MODES = ['off', 'remote_apply'] as const satisfies readonly SyncCommit[];
export const VIAS = ['multihost', 'haproxy'] as const;
export type Via = (typeof VIAS)[number];

export const TEST_LOSS_PREFIX = 'pgtl';
export const TEST_LOSS_SUBNET = '10.213.100.0/24';

export interface LossCommonOptions {
  /** Stop = SIGKILL of the node's agent and PostgreSQL at once, instead of SIGTERM + grace. */
  kill?: boolean;
  /** Seconds of writing after the fault has been handled (default 5). */
  seconds?: number;
  /** Seconds of writing before the fault (default 2). */
  warmupSeconds?: number;
  /** Writer sessions (default 8; full speed). */
  sessions?: number;
  via?: Via;
  prefix?: string;
  subnet?: string;
  /** Where ledgers go (default: the lab's client directory, removed with the lab). */
  ledgerDir?: string;
  /** Keep every ledger (default: only those of cells that failed). Needs ledgerDir. */
  keepLedgers?: boolean;
  /** Progress lines. */
  say?: (line: string) => void;
  signal?: AbortSignal;
  /** Where to run (default: the namespace lab `prefix` on `subnet`). */
  target?: LossTarget;
}

export interface LossCellOptions extends LossCommonOptions {
  fault: Fault;
  sync: SyncCommit;
  /** Leave the lab up after the cell (the matrix tears it down once at the end). */
  keepLab?: boolean;
}

export interface LossCellResult {
  fault: Fault;
  sync: SyncCommit;
  kill: boolean;
  via: Via;
  sessions: number;
  /** Does this cell promise that no acknowledged row is lost? */
  promisesNoLoss: boolean;
  acknowledged: number;
  failed: number;
  unknown: { count: number; committed: number; notCommitted: number; torn: number };
  lost: number;
  lostIds: string[];
  /** Lost acks whose COMMIT carried the "committed locally only" sync-rep warning. */
  lostWithSyncWarning: number;
  torn: number;
  unexpected: number;
  /** Longest time between two acknowledgements (whole run). */
  writeGapMs: number | null;
  /** Fault -> the arbiter granting the new term (failover faults only). */
  failoverMs: number | null;
  /** Fault -> the first acknowledgement after the longest pause that the fault caused. */
  resumedMs: number | null;
  acksBeforeFault: number;
  acksAfterFault: number;
  /** After an isolation, on targets that heal it: the old primary back as a streaming standby. */
  rejoin?: { ms: number; method: string | null };
  primaryBefore: string | null;
  primaryAfter: string | null;
  termBefore: number | null;
  termAfter: number | null;
  /** Why the cell failed: a broken promise, torn or unexpected rows, no acks. Empty = ok. */
  violations: string[];
  /** Set when the cell could not run to the end (the verdict is then missing). */
  error?: string;
  ok: boolean;
  ledger: string | null;
  seconds: number;
}

export interface LossMatrixOptions extends LossCommonOptions {
  faults?: readonly Fault[];
  /** The cells per mode, each fault with its own kill (default: every fault with `kill`). */
  cells?: readonly { fault: Fault; kill: boolean }[];
  syncs?: readonly SyncCommit[];
  /** Called after each cell (for progress). */
  onCell?: (r: LossCellResult) => void;
  /** Write the result here as JSON (after every cell with `partial: true`, then the final one). */
  jsonFile?: string;
}

export interface LossMatrixResult {
  startedAt: string;
  seconds: number;
  options: {
    kill: boolean;
    seconds: number;
    warmupSeconds: number;
    sessions: number;
    via: Via;
    prefix: string;
    subnet: string;
  };
  rows: LossCellResult[];
  /** Every cell ran and kept its promise. */
  ok: boolean;
  /** A cell that promised no loss lost acknowledged rows (or had torn/unexpected rows). */
  violated: boolean;
  aborted: boolean;
  /** Only in the files written while the matrix runs. */
  partial?: true;
}

// ---------------------------------------------------------------- targets

/** Where the cells run: the namespace lab (default) or the compose deployment (compose-target.ts).
 *  Everything else, the writer, the ledger, the check and the table, is the same code. */
export interface LossTarget {
  /** What a cell (re)builds, for the progress lines. */
  describe(sync: SyncCommit): string;
  /** A fresh cluster with this synchronous_commit (whatever was there is removed); its seconds. */
  up(sync: SyncCommit): Promise<number>;
  healthy(timeoutMs: number): Promise<{ primary: string; standby: string; term: number }>;
  /** The writer's target for the route; undefined: the multi-host DSN. Waits for HAProxy to
   *  route writes to `primary`. */
  writerDsn(via: Via, primary: string, signal?: AbortSignal): Promise<string | undefined>;
  address(member: string): string;
  /** Where ledgers go when the caller names no directory. */
  scratchDir(): string;
  startWriter(opts: WriterOptions): LabWriter;
  /** The fault on `member`; returns what was done, in one line. */
  stop(member: string, kill: boolean): Promise<string>;
  isolate(member: string): Promise<string>;
  /** Reconnects an isolated member (targets that check the rejoin after an isolation). */
  heal?(member: string): Promise<string>;
  arbiterView(): Promise<ArbiterView | null>;
  /** The old primary's agent status: rejoined as a streaming standby, and how (pg_rewind). */
  rejoinedAs?(member: string): Promise<{ streaming: boolean; method: string | null }>;
  checkLedger(ledger: string): Promise<CheckJson>;
  down(): Promise<void>;
}

/** The namespace lab as a target: a lab of its own (prefix, subnet), rebuilt for every cell. */
export function labTarget(prefix: string, subnet: string): LossTarget {
  let lab: Lab | undefined;
  const need = () => {
    if (!lab) throw new Error('the lab is not up');
    return lab;
  };
  return {
    describe: (sync) => `lab up (synchronous_commit=${sync}, default timing) as "${prefix}" on ${subnet}`,
    async up(sync) {
      await labDown(prefix);
      const up = await labUp({ prefix, subnet, sync, timing: 'default' });
      lab = up.lab;
      return up.seconds;
    },
    healthy: (timeoutMs) => waitHealthy(need(), timeoutMs),
    async writerDsn(via, primary, signal) {
      if (via !== 'haproxy') return undefined;
      const l = need();
      await startHaproxy(l);
      await waitUntil(`HAProxy routing writes to ${primary}`, 15_000, { signal }, async () => {
        const rw = await haproxyRoutesTo(l, 'primary');
        return rw.length === 1 && rw[0] === primary ? true : undefined;
      });
      return haproxyDsn(l, 'rw');
    },
    address: (member) => need().hosts[member as HostName].address,
    scratchDir: () => need().hosts.client.dir,
    startWriter: (o) => startLabWriter(need(), o),
    stop: (member, kill) => stopMember(need(), member as 'pg1' | 'pg2', { kill }),
    async isolate(member) {
      await isolate(need(), member as HostName, 'link-down');
      return `${member}'s link is down`;
    },
    arbiterView: () => arbiterView(need()),
    checkLedger: (ledger) => checkLabLedger(need(), ledger),
    async down() {
      lab = undefined;
      await labDown(prefix);
    },
  };
}

// ---------------------------------------------------------------- validation

export function parseFault(raw: string): Fault {
  if ((FAULTS as readonly string[]).includes(raw)) return raw as Fault;
  throw new UserError(`unknown fault "${raw}": use ${FAULTS.join(', ')}`);
}

export function parseSync(raw: string): SyncCommit {
  if ((SYNC_MODES as readonly string[]).includes(raw)) return raw as SyncCommit;
  throw new UserError(
    `unknown synchronous_commit mode "${raw}": use ${MATRIX_SYNC_MODES.join(' or ')} (or ${SYNC_MODES.filter((m) => !(MATRIX_SYNC_MODES as readonly string[]).includes(m)).join(', ')})`,
  );
}

export function parseVia(raw: string): Via {
  if ((VIAS as readonly string[]).includes(raw)) return raw as Via;
  throw new UserError(`unknown route "${raw}": use --via ${VIAS.join(' or ')}`);
}

/** A cell promises no loss when the mode waits for the standby, or when the primary survives. */
export function cellPromisesNoLoss(fault: Fault, sync: SyncCommit): boolean {
  return fault === 'stop-standby' || isSyncMode(sync);
}

function validateCommon(
  o: LossCommonOptions,
): Required<
  Pick<LossCommonOptions, 'seconds' | 'warmupSeconds' | 'sessions' | 'via' | 'prefix' | 'subnet' | 'kill'>
> {
  const seconds = o.seconds ?? 5;
  const warmupSeconds = o.warmupSeconds ?? 2;
  const sessions = o.sessions ?? 8;
  if (!(Number.isFinite(seconds) && seconds > 0 && seconds <= 3600))
    throw new UserError(`--seconds ${seconds}: give a number of seconds > 0 (at most 3600)`);
  if (!(Number.isFinite(warmupSeconds) && warmupSeconds >= 0 && warmupSeconds <= 600))
    throw new UserError(`warm-up ${warmupSeconds}: give a number of seconds >= 0`);
  if (!(Number.isInteger(sessions) && sessions >= 1 && sessions <= 256))
    throw new UserError(`--sessions ${sessions}: give a whole number from 1 to 256`);
  const via = parseVia(o.via ?? 'multihost');
  if (o.keepLedgers && !o.ledgerDir) throw new UserError('keeping ledgers needs a ledger directory');
  return {
    seconds,
    warmupSeconds,
    sessions,
    via,
    kill: o.kill ?? false,
    prefix: o.prefix ?? TEST_LOSS_PREFIX,
    subnet: o.subnet ?? TEST_LOSS_SUBNET,
  };
}

/** Fault -> end of the longest pause between acks that the fault caused (the pause spans it or follows it). */
export function resumedAfter(ackTimes: number[], faultAt: number): number | null {
  const t = [...ackTimes].sort((a, b) => a - b);
  let best: { gap: number; end: number } | null = null;
  for (let i = 1; i < t.length; i++) {
    const a = t[i - 1] as number;
    const b = t[i] as number;
    if (b <= faultAt) continue;
    if (!best || b - a > best.gap) best = { gap: b - a, end: b };
  }
  return best ? Math.max(0, best.end - faultAt) : null;
}

// ---------------------------------------------------------------- faults

// ---------------------------------------------------------------- one cell

class Aborted extends Error {
  /** The interrupted cell, as far as it got. */
  result?: LossCellResult;
  constructor() {
    super('interrupted');
    this.name = 'Aborted';
  }
}

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new Aborted();
}

async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    checkAbort(signal);
    await sleep(Math.min(200, end - Date.now()));
  }
  checkAbort(signal);
}

class WriterDied extends Error {}

/** The useful part of a dead writer's stderr: its error line(s), not its progress lines. */
export function writerFailure(code: number, stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const errs = lines.filter((l) => /error|Error|ERR_|FATAL|at .*\.js:\d+/.test(l) && !/^\[/.test(l));
  const pick = (errs.length ? errs : lines).slice(0, 3).join(' | ');
  return `the writer exited (${code})${pick ? `: ${pick.slice(0, 400)}` : ' without a message'}`;
}

/**
 * Polls `probe` until it returns a value, at most timeoutMs. Stops at once on abort and when the
 * writer died (those are not retried); other probe errors are retried and named at the timeout.
 */
async function waitUntil<T>(
  what: string,
  timeoutMs: number,
  o: { signal?: AbortSignal; writer?: LabWriter },
  probe: () => Promise<T | undefined>,
  everyMs = 200,
): Promise<T> {
  const guard = async () => {
    checkAbort(o.signal);
    if (o.writer && o.writer.proc.exitCode !== null) {
      const r = await o.writer.done;
      throw new WriterDied(`${writerFailure(r.code, r.stderr)} (while waiting for ${what})`);
    }
  };
  try {
    return await waitFor(what, timeoutMs, probe, everyMs, guard);
  } catch (e) {
    checkAbort(o.signal); // an abort during the last sleep is reported as such, not as a timeout
    throw e;
  }
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Runs one cell on a fresh lab. Never throws for a failed cell: the result says what happened. */
export async function runLossCell(opts: LossCellOptions): Promise<LossCellResult> {
  const c = validateCommon(opts);
  const fault = parseFault(opts.fault);
  const sync = parseSync(opts.sync);
  const t0 = Date.now();
  const tag = `[${sync} ${fault}${c.kill ? ' kill' : ''}]`;
  const say = (line: string) => opts.say?.(`${tag} ${line}`);
  const sig = opts.signal;
  const result: LossCellResult = {
    fault,
    sync,
    kill: c.kill,
    via: c.via,
    sessions: c.sessions,
    promisesNoLoss: cellPromisesNoLoss(fault, sync),
    acknowledged: 0,
    failed: 0,
    unknown: { count: 0, committed: 0, notCommitted: 0, torn: 0 },
    lost: 0,
    lostIds: [],
    lostWithSyncWarning: 0,
    torn: 0,
    unexpected: 0,
    writeGapMs: null,
    failoverMs: null,
    resumedMs: null,
    acksBeforeFault: 0,
    acksAfterFault: 0,
    primaryBefore: null,
    primaryAfter: null,
    termBefore: null,
    termAfter: null,
    violations: [],
    ok: false,
    ledger: null,
    seconds: 0,
  };
  let writer: LabWriter | undefined;
  let ledger: string | undefined;
  const target = opts.target ?? labTarget(c.prefix, c.subnet);
  try {
    checkAbort(sig);
    say(target.describe(sync));
    const upSeconds = await target.up(sync);
    checkAbort(sig);
    const h0 = await target.healthy(90_000);
    result.primaryBefore = h0.primary;
    result.termBefore = h0.term;
    say(`up in ${upSeconds.toFixed(1)} s: primary ${h0.primary}, standby ${h0.standby}, term ${h0.term}`);
    const dsn = await target.writerDsn(c.via, h0.primary, sig);
    if (c.via === 'haproxy') say(`HAProxy routes writes to ${h0.primary}`);

    const dir = opts.ledgerDir ?? target.scratchDir();
    mkdirSync(dir, { recursive: true });
    ledger = join(dir, `test-loss-${sync}-${fault}${c.kill ? '-kill' : ''}-${Date.now()}.jsonl`);
    writer = target.startWriter({ ledger, sessions: c.sessions, dsn });
    const tail = new LedgerTail(ledger);
    await waitUntil('the first acknowledgements', 20_000, { signal: sig, writer }, async () =>
      tail.acks().length > 0 ? true : undefined,
    );
    say(`writer: ${c.sessions} sessions at full speed via ${c.via}; warm-up ${c.warmupSeconds} s`);
    await pause(c.warmupSeconds * 1000, sig);
    checkAbort(sig);

    const victim = fault === 'stop-standby' ? h0.standby : h0.primary;
    const faultAt = Date.now();
    result.acksBeforeFault = tail.acks().length;
    if (fault === 'isolate-primary') {
      const what = await target.isolate(victim);
      say(`fault: ${what} (after ${result.acksBeforeFault} acks)`);
    } else {
      const what = await target.stop(victim, c.kill);
      say(`fault: ${c.kill ? 'killed' : 'stopped'} ${victim} in ${Date.now() - faultAt} ms: ${what}`);
    }

    if (fault === 'stop-standby') {
      // No failover: writes go on against the same primary once the sync stall is over.
      const primaryAddr = target.address(h0.primary);
      await waitUntil(
        'writes going on after the standby stopped',
        30_000,
        { signal: sig, writer },
        async () =>
          tail.acks(primaryAddr).filter((a) => a.t > faultAt + 1000).length >= 20 ? true : undefined,
      );
      result.primaryAfter = h0.primary;
      result.termAfter = (await target.arbiterView())?.record.term ?? null;
      const resumed = resumedAfter(
        tail.acks().map((a) => a.t),
        faultAt,
      );
      say(
        `writes go on against ${h0.primary} (resumed ${resumed === null ? '?' : secs(resumed)} after the fault)`,
      );
    } else {
      const v = await waitUntil(
        `the arbiter granting term ${h0.term + 1}`,
        45_000,
        { signal: sig, writer },
        async () => {
          const view = await target.arbiterView();
          return view && view.record.term > h0.term ? view : undefined;
        },
      );
      const grantAt = grantTimeOf(v, h0.term + 1);
      result.failoverMs = grantAt === null ? null : grantAt - faultAt;
      result.termAfter = v.record.term;
      result.primaryAfter = v.record.primary;
      const newAddr = target.address(v.record.primary);
      say(
        `failover: term ${v.record.term} granted to ${v.record.primary}${result.failoverMs === null ? '' : ` ${secs(result.failoverMs)} after the fault`}`,
      );
      await waitUntil(
        `acknowledged writes on ${v.record.primary}`,
        30_000,
        { signal: sig, writer },
        async () => (tail.acks(newAddr).filter((a) => a.t > faultAt).length >= 20 ? true : undefined),
      );
      say(`the new primary ${v.record.primary} takes writes`);
    }

    say(`writing ${c.seconds} s more`);
    await pause(c.seconds * 1000, sig);
    const summary = await writer.stop();
    writer = undefined;
    result.acksAfterFault = tail.acks().filter((a) => a.t > faultAt).length;
    result.resumedMs = resumedAfter(
      tail.acks().map((a) => a.t),
      faultAt,
    );
    say(
      `writer stopped: ${String(summary.acknowledged)} acknowledged; checking the ledger against the primary`,
    );

    const check = await target.checkLedger(ledger);
    fill(result, check.report);
    if (fault === 'isolate-primary' && target.heal && target.rejoinedAs) {
      const healedAt = Date.now();
      say(`heal: ${await target.heal(victim)}`);
      const rejoinedAs = target.rejoinedAs.bind(target);
      try {
        const how = await waitUntil(
          `${victim} rejoining as a streaming standby`,
          90_000,
          { signal: sig },
          async () => {
            const r = await rejoinedAs(victim);
            return r.streaming ? r : undefined;
          },
        );
        result.rejoin = { ms: Date.now() - healedAt, method: how.method };
        say(
          `${victim} rejoined as standby in ${secs(result.rejoin.ms)} (${how.method ?? 'no rewind needed'})`,
        );
      } catch (e) {
        checkAbort(sig);
        result.violations.push(
          `${victim} did not rejoin after the network came back: ${(e as Error).message}`,
        );
      }
    }
    say(
      `acknowledged ${result.acknowledged}, lost ${result.lost}, unknown ${result.unknown.count} ` +
        `(${result.unknown.committed} committed, ${result.unknown.notCommitted} not), write gap ${result.writeGapMs === null ? '-' : secs(result.writeGapMs)}` +
        (result.violations.length ? ` -- ${result.violations.join('; ')}` : ''),
    );
  } catch (e) {
    // An interrupt may also surface as a failed child process (it got the terminal's SIGINT too).
    const interrupted = e instanceof Aborted || sig?.aborted === true;
    result.error = interrupted ? 'interrupted' : (e as Error).message;
    say(`error: ${result.error}`);
    if (interrupted) {
      finish(result, t0);
      await cleanup(writer, opts.keepLab ? undefined : target);
      const err = e instanceof Aborted ? e : new Aborted();
      err.result = result;
      throw err;
    }
  }
  finish(result, t0);
  const keep = Boolean(opts.ledgerDir) && (opts.keepLedgers || !result.ok || result.lost > 0);
  if (ledger && keep && existsSync(ledger)) result.ledger = ledger;
  else if (ledger && opts.ledgerDir) rmSync(ledger, { force: true });
  await cleanup(writer, opts.keepLab ? undefined : target);
  return result;
}

function fill(r: LossCellResult, rep: CheckReport): void {
  r.acknowledged = rep.totals.acknowledged;
  r.failed = rep.totals.failed;
  r.unknown = {
    count: rep.unknown.count,
    committed: rep.unknown.committed,
    notCommitted: rep.unknown.notCommitted,
    torn: rep.unknown.torn,
  };
  r.lost = rep.lost.count;
  r.lostIds = rep.lost.ids;
  r.lostWithSyncWarning = rep.lost.withSyncWarning;
  r.torn = rep.torn.count;
  r.unexpected = rep.unexpected.count;
  r.writeGapMs = rep.longestWriteGap?.ms ?? null;
  if (r.acknowledged === 0) r.violations.push('no write was acknowledged');
  if (r.lost > 0 && r.promisesNoLoss)
    r.violations.push(`${r.lost} acknowledged row(s) lost although ${r.sync}/${r.fault} promises none`);
  if (r.torn > 0) r.violations.push(`${r.torn} torn transaction(s)`);
  if (r.unexpected > 0) r.violations.push(`${r.unexpected} failed transaction(s) present`);
}

function finish(r: LossCellResult, t0: number): void {
  r.ok = r.error === undefined && r.violations.length === 0;
  r.seconds = Math.round((Date.now() - t0) / 100) / 10;
}

async function cleanup(writer: LabWriter | undefined, target: LossTarget | undefined): Promise<void> {
  if (writer && writer.proc.exitCode === null && writer.proc.pid) {
    signal(writer.proc.pid, 'SIGKILL');
    await Promise.race([writer.done, sleep(5000)]);
  }
  if (target) await target.down();
}

// ---------------------------------------------------------------- the matrix

/** Every fault x every mode (default: the original's 3 x 2), one fresh lab per cell; torn down at the end. */
export async function runLossMatrix(opts: LossMatrixOptions = {}): Promise<LossMatrixResult> {
  const c = validateCommon(opts);
  const faults = (opts.faults ?? FAULTS).map(parseFault);
  const syncs = (opts.syncs ?? MATRIX_SYNC_MODES).map(parseSync);
  if (faults.length === 0 || syncs.length === 0) throw new UserError('test-loss: nothing to run');
  const t0 = Date.now();
  const rows: LossCellResult[] = [];
  let aborted = false;
  const target = opts.target ?? labTarget(c.prefix, c.subnet);
  const cells = opts.cells ?? faults.map((fault) => ({ fault, kill: c.kill }));
  const total = cells.length * syncs.length;
  const result = (): LossMatrixResult => ({
    startedAt: new Date(t0).toISOString(),
    seconds: Math.round((Date.now() - t0) / 100) / 10,
    options: {
      kill: c.kill,
      seconds: c.seconds,
      warmupSeconds: c.warmupSeconds,
      sessions: c.sessions,
      via: c.via,
      prefix: c.prefix,
      subnet: c.subnet,
    },
    rows,
    ok: !aborted && rows.length === total && rows.every((r) => r.ok),
    violated: rows.some((r) => r.violations.length > 0),
    aborted,
  });
  const save = (r: LossMatrixResult) => {
    if (!opts.jsonFile) return;
    mkdirSync(dirname(opts.jsonFile), { recursive: true });
    writeFileSync(opts.jsonFile, `${JSON.stringify(r, null, 2)}\n`);
  };
  try {
    for (const sync of syncs) {
      for (const { fault, kill } of cells) {
        try {
          const r = await runLossCell({ ...opts, target, fault, kill, sync, keepLab: true });
          rows.push(r);
          opts.onCell?.(r);
          save({ ...result(), partial: true });
        } catch (e) {
          if (!(e instanceof Aborted)) throw e;
          if (e.result) rows.push(e.result);
          aborted = true;
          break;
        }
      }
      if (aborted) break;
    }
  } finally {
    opts.say?.(opts.target ? 'tearing the cluster down' : `tearing the lab "${c.prefix}" down`);
    await target.down();
  }
  const final = result();
  save(final);
  return final;
}

export { Aborted as TestLossAborted };

// ---------------------------------------------------------------- presentation

const fmtS = (ms: number | null) =>
  ms === null ? '-' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;

/** One row of the original's table, as text cells. */
export function lossRowCells(r: LossCellResult): string[] {
  const unknown =
    r.unknown.count === 0
      ? '0'
      : `${r.unknown.count} (${r.unknown.committed} committed, ${r.unknown.notCommitted} not${r.unknown.torn ? `, ${r.unknown.torn} torn` : ''})`;
  const short = (t: string) => (t.length > 70 ? `${t.slice(0, 67)}...` : t);
  const result = r.error
    ? `ERROR: ${short(r.error)}`
    : r.violations.length
      ? `FAIL: ${short(r.violations.join('; '))}`
      : r.lost > 0
        ? 'loss (no promise)'
        : 'ok';
  return [
    r.sync,
    `${r.fault}${r.kill ? ' (kill -9)' : ''}`,
    r.error && r.acknowledged === 0 ? '-' : String(r.acknowledged),
    r.error && r.acknowledged === 0 ? '-' : String(r.lost),
    unknown,
    fmtS(r.writeGapMs),
    r.fault === 'stop-standby' ? 'none' : fmtS(r.failoverMs),
    result,
  ];
}

export const LOSS_TABLE_HEAD = [
  'mode',
  'fault',
  'acknowledged',
  'lost',
  'unknown (resolved)',
  'write gap',
  'failover',
  'result',
];
