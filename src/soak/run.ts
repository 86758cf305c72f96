// `pgarbiter soak`: runs a plan of fault schedules against a lab with writers on, and checks every
// schedule (src/soak/checker.ts). One lab for the run; each schedule starts from a healthy cluster,
// plays its faults, waits for the cluster to heal, stops the writers and checks their ledgers.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { TIMING_PROFILES } from '../config.js';
import {
  configPath,
  haproxyDsn,
  hostArgv,
  type IsolateMode,
  type Lab,
  labDown,
  labUp,
  readLab,
  selfArgv,
  stateDir,
} from '../lab/index.js';
import { PG_HOSTS } from '../lab/topology.js';
import {
  checkLabLedger,
  type LabWriter,
  multiHostDsn,
  startLabWriter,
  waitFor,
} from '../scenario/lab-run.js';
import { UserError } from '../util/errors.js';
import { sleep } from '../util/exec.js';
import { longestGap } from '../workload/compare.js';
import { readLedger, type TxEntry } from '../workload/ledger.js';
import {
  acksAfterNewerTerm,
  healthyIn,
  judgeSchedule,
  mergeTerms,
  type Sample,
  type TermGrant,
  termsFromArbiterLog,
  termsFromSamples,
  type Window,
} from './checker.js';
import { type AppliedFault, Nemesis, type Roles } from './nemesis.js';
import type { Schedule, SoakPlan } from './schedule.js';

export interface SoakOptions {
  plan: SoakPlan;
  prefix: string;
  subnet: string;
  /** Where the plan, the result, kept ledgers and replay files go. */
  outDir: string;
  /** Stop starting schedules after this long (ms); the plan is the upper bound. */
  durationMs?: number;
  /** After the faults heal: how long the cluster may take to be healthy again. */
  healBoundMs: number;
  /** Run on after a violation (counting it) instead of stopping. */
  keepGoing: boolean;
  /** Keep the lab after a run without violations. */
  keep: boolean;
  keepLedgers: boolean;
  say: (line: string) => void;
  onSchedule?: (r: ScheduleResult) => void;
  signal?: AbortSignal;
}

export interface ScheduleResult {
  index: number;
  startedAt: number;
  endedAt: number;
  faults: {
    kind: string;
    host: string | null;
    peer: string | null;
    atMs: number;
    durationMs: number;
    startedAt: number;
    endedAt: number | null;
    note: string;
    skipped: boolean;
    error?: string;
  }[];
  /** New terms granted during the schedule (failovers, switchovers, forced failovers). */
  failovers: number;
  fences: number;
  acknowledged: number;
  /** Transactions that failed before or at COMMIT (the writer saw an error: not acknowledged). */
  failed: number;
  lost: number;
  unknown: number;
  longestWriteGapMs: number | null;
  /** Last fault's end to a healthy cluster; null = not within the bound. */
  healMs: number | null;
  /** Both nodes answering clients as writable primaries at once (sampled). */
  dualPrimary: Window[];
  lateAcks: number;
  termBefore: number | null;
  termAfter: number | null;
  violations: string[];
  excused: string[];
  /** Written when the schedule broke an invariant: `pgarbiter soak --replay FILE`. */
  replayFile?: string;
  ledgers: string[];
}

export interface SoakResult {
  startedAt: number;
  endedAt: number;
  settings: {
    seed: number;
    sync: string;
    timing: string;
    mode: string;
    lease: 'on' | 'off';
    prefix: string;
    healBoundMs: number;
  };
  planFile: string;
  schedules: ScheduleResult[];
  /** Acknowledged writes per second since `startedAt` (for the chart). */
  ackSeries: number[];
  violations: number;
  stoppedEarly: boolean;
  labKept: boolean;
}

const SAMPLE_INTERVAL_MS = 500;
/** Writes after the cluster is healthy again, before the writers stop. */
const AFTER_HEAL_MS = 2000;

/** The bound on both nodes serving as primaries: the timing rule's left side (the old primary
 *  has fenced itself this long after losing the arbiter), plus one sampling round. */
export function dualPrimaryBound(timing: keyof typeof TIMING_PROFILES): number {
  const t = TIMING_PROFILES[timing];
  return t.fence_timeout + t.probe_interval + t.fence_action_budget + SAMPLE_INTERVAL_MS;
}

/** The sampler process on the client host; its samples accumulate in `samples`. */
function startSampler(lab: Lab, samples: Sample[]): ChildProcess {
  const argv = hostArgv(
    lab,
    'client',
    selfArgv('soak-sample', '--config', configPath(lab, 'client'), '--interval', String(SAMPLE_INTERVAL_MS)),
  );
  const proc = spawn(argv[0] as string, argv.slice(1), {
    cwd: '/tmp',
    env: { ...process.env, PGPASSWORD: lab.secrets.appPassword },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      samples.push(JSON.parse(line) as Sample);
    } catch {}
  });
  return proc;
}

function stopProc(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.once('close', () => {
      clearTimeout(timer);
      res();
    });
    p.stdin?.end();
    p.kill('SIGTERM');
  });
}

/** The lab to soak: reused when it runs with the plan's settings, else made. */
async function openLab(o: SoakOptions): Promise<Lab> {
  const existing = readLab(o.prefix);
  const lease = o.plan.lease ?? 'on';
  if (
    existing?.complete &&
    (existing.sync !== o.plan.sync || existing.timing !== o.plan.timing || (existing.lease ?? 'on') !== lease)
  )
    throw new UserError(
      `lab "${o.prefix}" runs with sync ${existing.sync}, timing ${existing.timing} and lease ${existing.lease ?? 'on'}, not ${o.plan.sync}/${o.plan.timing}/${lease}: ` +
        `run \`pgarbiter lab down --prefix ${o.prefix}\` first, or soak with --sync ${existing.sync} --timing ${existing.timing} --lease ${existing.lease ?? 'on'}`,
    );
  const up = await labUp({
    prefix: o.prefix,
    subnet: o.subnet,
    sync: o.plan.sync as Lab['sync'],
    timing: o.plan.timing,
    lease,
    say: (l) => o.say(`lab: ${l}`),
    signal: o.signal,
  });
  return up.lab;
}

function historyFences(lab: Lab, from: number, to: number): number {
  let n = 0;
  for (const h of PG_HOSTS) {
    const file = join(stateDir(lab, h), `history-${h}.jsonl`);
    if (!existsSync(file)) continue;
    const seen = new Set<number>();
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      try {
        const e = JSON.parse(line) as { seq: number; kind: string; at: string; firstAt?: string };
        const at = Date.parse(e.firstAt ?? e.at);
        if (e.kind === 'fence' && at >= from && at <= to && !seen.has(e.seq)) {
          seen.add(e.seq);
          n++;
        }
      } catch {}
    }
  }
  return n;
}

function arbiterTerms(lab: Lab): TermGrant[] {
  const file = join(lab.hosts.arbiter.dir, 'arbiter.log');
  return existsSync(file) ? termsFromArbiterLog(readFileSync(file, 'utf8')) : [];
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const plan = o.plan;
  const out = resolve(o.outDir);
  mkdirSync(out, { recursive: true });
  const planFile = join(out, 'plan.json');
  writeFileSync(planFile, `${JSON.stringify(plan, null, 2)}\n`);
  o.say(`plan: ${plan.schedules.length} schedule(s), seed ${plan.seed}, saved to ${planFile}`);

  const startedAt = Date.now();
  const result: SoakResult = {
    startedAt,
    endedAt: startedAt,
    settings: {
      seed: plan.seed,
      sync: plan.sync,
      timing: plan.timing,
      mode: plan.mode,
      lease: plan.lease ?? 'on',
      prefix: o.prefix,
      healBoundMs: o.healBoundMs,
    },
    planFile,
    schedules: [],
    ackSeries: [],
    violations: 0,
    stoppedEarly: false,
    labKept: true,
  };
  const lab = await openLab(o);
  const samples: Sample[] = [];
  let sampler: ChildProcess | undefined;
  let roles: Roles = { primary: 'pg1', standby: 'pg2', promotable: true };
  const latestRoles = (): Roles => {
    for (let i = samples.length - 1; i >= 0 && i >= samples.length - 20; i--) {
      const a = samples[i]?.arbiter;
      if (a && (a.primary === 'pg1' || a.primary === 'pg2') && (a.standby === 'pg1' || a.standby === 'pg2')) {
        roles = { primary: a.primary, standby: a.standby, promotable: a.promotable };
        break;
      }
    }
    return roles;
  };
  const nemesis = new Nemesis(lab, plan.mode as IsolateMode, latestRoles, o.say);
  const nodeOf = (server: string) => {
    const addr = server.replace(/:\d+$/, '');
    return PG_HOSTS.find((h) => lab.hosts[h].address === addr) ?? null;
  };
  const addAcks = (times: number[]) => {
    for (const t of times) {
      const s = Math.max(0, Math.floor((t - startedAt) / 1000));
      while (result.ackSeries.length <= s) result.ackSeries.push(0);
      result.ackSeries[s] = (result.ackSeries[s] ?? 0) + 1;
    }
  };
  let writers: LabWriter[] = [];
  let violated = false;
  try {
    sampler = startSampler(lab, samples);
    for (const schedule of plan.schedules) {
      o.signal?.throwIfAborted();
      if (o.durationMs !== undefined && Date.now() - startedAt >= o.durationMs) break;
      if (sampler.exitCode !== null) sampler = startSampler(lab, samples);
      const r = await runSchedule(schedule);
      result.schedules.push(r);
      o.onSchedule?.(r);
      writeFileSync(join(out, 'result.json'), `${JSON.stringify({ ...result, partial: true }, null, 2)}\n`);
      if (r.violations.length > 0) {
        result.violations += r.violations.length;
        violated = true;
        if (!o.keepGoing) {
          result.stoppedEarly = true;
          break;
        }
        await nemesis.healAll();
      }
      // Samples older than the schedule are not needed again.
      samples.splice(0, Math.max(0, samples.length - 40));
    }
  } finally {
    for (const w of writers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await stopProc(sampler);
    if (o.signal?.aborted) await nemesis.healAll().catch(() => {});
  }
  result.endedAt = Date.now();
  if (!violated && !o.keep && !o.signal?.aborted) {
    o.say(`tearing the lab "${o.prefix}" down`);
    await labDown(o.prefix);
    result.labKept = false;
  }
  writeFileSync(join(out, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;

  /** Waits for a sample taken after `since` that shows a healthy cluster (the sampler's view:
   *  cheaper than spawning `status`, which a loaded machine makes slow). */
  function waitHealthySample(what: string, since: number) {
    return waitFor(
      what,
      o.healBoundMs,
      async () => {
        if (sampler && (sampler.exitCode !== null || sampler.signalCode !== null))
          sampler = startSampler(lab, samples);
        const s = samples[samples.length - 1];
        return s && s.t >= since ? healthyIn(s) : undefined;
      },
      200,
    );
  }

  async function runSchedule(schedule: Schedule): Promise<ScheduleResult> {
    const t0 = Date.now();
    o.say(`schedule ${schedule.index}: waiting for a healthy cluster`);
    const h0 = await waitHealthySample('a healthy cluster before the schedule', Date.now());
    const ledgers = [
      join(out, `s${schedule.index}-haproxy.jsonl`),
      join(out, `s${schedule.index}-multihost.jsonl`),
    ];
    for (const l of ledgers) rmSync(l, { force: true });
    writers = [
      // The cluster is healthy by its APIs, but on a loaded machine a first connection (TLS and
      // SCRAM) can miss the writer's 1 s connect timeout: a writer that cannot start is not a fault
      // of the cluster, so its setup may wait (the faults start once both are writing).
      startLabWriter(lab, {
        ledger: ledgers[0] as string,
        sessions: 3,
        dsn: haproxyDsn(lab, 'rw'),
        setupWaitS: 30,
      }),
      startLabWriter(lab, {
        ledger: ledgers[1] as string,
        sessions: 2,
        dsn: multiHostDsn(lab),
        setupWaitS: 30,
      }),
    ];
    // Generous: on a loaded machine a writer's setup alone has taken over 30 s.
    await Promise.all(writers.map((w) => w.writing(90_000)));
    const faultsAt = Date.now();
    const fromSample = samples.length;
    o.say(
      `schedule ${schedule.index}: ${schedule.faults.length} fault(s), primary ${h0.primary}, term ${h0.term}`,
    );
    let applied: AppliedFault[];
    try {
      applied = await nemesis.play(schedule.faults, faultsAt, o.signal);
    } catch (e) {
      await nemesis.healAll();
      throw e;
    }
    const healedAt = Date.now();
    const deadDaemons = nemesis.deadDaemons();
    if (deadDaemons.length) await nemesis.healAll();
    let healthyAt: number | null = null;
    let termAfter: number | null = null;
    try {
      const h1 = await waitHealthySample('a healthy cluster after the faults', healedAt);
      healthyAt = Date.now();
      termAfter = h1.term;
      o.say(
        `schedule ${schedule.index}: healthy again in ${((healthyAt - healedAt) / 1000).toFixed(1)} s (primary ${h1.primary}, term ${h1.term})`,
      );
      await sleep(AFTER_HEAL_MS);
    } catch {
      o.say(`schedule ${schedule.index}: NOT healthy within ${o.healBoundMs / 1000} s`);
    }
    const endedAt = Date.now();
    await Promise.all(writers.map((w) => w.stop().catch(() => null)));
    writers = [];
    let acknowledged = 0;
    let failed = 0;
    let lost = 0;
    let unknown = 0;
    let torn = 0;
    let unexpected = 0;
    let promisesNoLoss = plan.sync === 'remote_apply';
    const checkErrors: string[] = [];
    const txs: TxEntry[] = [];
    for (const l of ledgers) {
      if (!existsSync(l)) {
        checkErrors.push(`ledger ${l} is missing`);
        continue;
      }
      txs.push(...(await readLedger(l)).txs);
      if (healthyAt === null) continue; // no primary to check against
      try {
        const c = await checkLabLedger(lab, l);
        acknowledged += c.report.totals.acknowledged;
        failed += c.report.totals.failed;
        lost += c.report.lost.count;
        unknown += c.report.unknown.count;
        torn += c.report.torn.count;
        unexpected += c.report.unexpected.count;
        promisesNoLoss = c.report.promisesNoLoss;
      } catch (e) {
        checkErrors.push(`checking ${l}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    if (healthyAt === null) acknowledged = txs.filter((t) => t.outcome === 'ack').length;
    const ackTimes = txs.filter((t) => t.outcome === 'ack').map((t) => t.t);
    addAcks(ackTimes);
    const windowSamples = samples.slice(fromSample).filter((s) => s.t >= faultsAt && s.t <= endedAt);
    const terms = mergeTerms(arbiterTerms(lab), termsFromSamples(samples));
    const lateAcks = acksAfterNewerTerm(txs, terms, nodeOf);
    const newTerms = terms.filter((g) => g.at >= faultsAt && g.at <= endedAt);
    const verdict = judgeSchedule({
      sync: plan.sync,
      promisesNoLoss,
      samples: windowSamples,
      lateAcks,
      acknowledged,
      lost,
      torn,
      unexpected,
      forcedFailover: newTerms.some((g) => g.forced),
      healMs: healthyAt === null ? null : healthyAt - healedAt,
      healBoundMs: o.healBoundMs,
      deadDaemons,
      acksAfterHeal: healthyAt === null ? 0 : ackTimes.filter((t) => t > (healthyAt as number)).length,
      dualPrimaryBoundMs: dualPrimaryBound(plan.timing),
    });
    verdict.violations.push(...checkErrors);
    const r: ScheduleResult = {
      index: schedule.index,
      startedAt: faultsAt,
      endedAt,
      faults: applied.map((a) => ({
        kind: a.fault.kind,
        host: a.host,
        peer: a.peer,
        atMs: a.fault.atMs,
        durationMs: a.fault.durationMs,
        startedAt: a.startedAt,
        endedAt: a.endedAt,
        note: a.note,
        skipped: a.skipped,
        ...(a.error ? { error: a.error } : {}),
      })),
      failovers: newTerms.length,
      fences: historyFences(lab, faultsAt, endedAt),
      acknowledged,
      failed,
      lost,
      unknown,
      longestWriteGapMs: longestGap(ackTimes)?.ms ?? null,
      healMs: healthyAt === null ? null : healthyAt - healedAt,
      dualPrimary: verdict.dualPrimary,
      lateAcks: lateAcks.length,
      termBefore: h0.term,
      termAfter,
      violations: verdict.violations,
      excused: verdict.excused,
      ledgers: [],
    };
    if (r.violations.length > 0) {
      const replay: SoakPlan = { ...plan, schedules: [schedule] };
      r.replayFile = join(out, `replay-s${schedule.index}.json`);
      writeFileSync(r.replayFile, `${JSON.stringify(replay, null, 2)}\n`);
      writeFileSync(
        join(out, `samples-s${schedule.index}.jsonl`),
        windowSamples.map((s) => JSON.stringify(s)).join('\n'),
      );
    }
    if (r.violations.length > 0 || r.lost > 0 || o.keepLedgers) r.ledgers = ledgers;
    else for (const l of ledgers) rmSync(l, { force: true });
    o.say(
      `schedule ${schedule.index}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s${r.violations.length ? ` -- VIOLATION: ${r.violations.join('; ')}` : ''}`,
    );
    return r;
  }
}
