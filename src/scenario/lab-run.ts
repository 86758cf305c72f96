// Driving a running lab from outside it: our CLI run inside the lab's hosts (only code inside a
// namespace reaches the lab), the writer as a background process on the client host, cluster
// views, and waits. Used by the demo, test-loss, the integration tests and the benchmarks.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { type AgentStatus, arbiterStateSchema } from '../api/protocol.js';
import { type ArbiterView, type ClusterView, newTermTimeOf } from '../cluster/view.js';
import { lsnAtLeast } from '../core/lsn.js';
import type { ClusterRecord } from '../core/types.js';
import {
  clientSql,
  configPath,
  haproxyDsn,
  hostArgv,
  type Lab,
  labApiCurl,
  labSslConninfo,
  selfArgv,
  vipAddress,
} from '../lab/index.js';
import type { HostName } from '../lab/topology.js';
import { run, sleep } from '../util/exec.js';
import { poll } from '../util/poll.js';
import type { CheckReport } from '../workload/compare.js';
import { ackedBy, LedgerTail, ledgerTxs } from '../workload/ledger.js';

/** Runs our CLI inside a lab host and returns its stdout (throws on a non-zero exit). */
export async function cliIn(
  lab: Lab,
  host: HostName,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
) {
  const r = await run(hostArgv(lab, host, selfArgv(...args)), {
    timeoutMs,
    env: { ...process.env, ...env },
    allowFailure: true,
  });
  return r;
}

export async function clusterView(lab: Lab): Promise<ClusterView> {
  const r = await cliIn(
    lab,
    'client',
    ['status', '--json', '--config', configPath(lab, 'client')],
    {},
    15_000,
  );
  if (!r.stdout.trim()) throw new Error(`status failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as ClusterView;
}

/** libpq-style multi-host target: the writer finds the writable node itself. */
export function multiHostDsn(lab: Lab): string {
  return `host=${lab.hosts.pg1.address},${lab.hosts.pg2.address} port=5432 user=app dbname=postgres target_session_attrs=read-write ${labSslConninfo(lab)}`;
}

/** The cluster's floating VIP (config `vip:`): one address that always leads to the primary. */
export function vipDsn(lab: Lab): string {
  return `host=${vipAddress(lab.subnet)} port=5432 user=app dbname=postgres target_session_attrs=read-write ${labSslConninfo(lab)}`;
}

export interface LabWriter {
  ledger: string;
  proc: ChildProcess;
  /** Stops the writer (SIGINT) and returns its JSON summary. */
  stop(): Promise<Record<string, unknown>>;
  /** Resolves once the writer has an acknowledged write (its setup is done: a fault injected
   *  before that would fail the setup, not test the cluster); rejects if the writer exits first. */
  writing(timeoutMs?: number): Promise<void>;
  done: Promise<{ code: number; stdout: string; stderr: string }>;
}

/** The writer's target: HAProxy's read-write port when the lab runs it (it closes sessions on a
 *  node that goes down, as Patroni setups do), else libpq-style multi-host. */
export function writerDsn(lab: Lab): string {
  return lab.daemons.haproxy ? haproxyDsn(lab, 'rw') : multiHostDsn(lab);
}

export interface WriterOptions {
  ledger: string;
  sessions?: number;
  durationS?: number;
  dsn?: string;
  rate?: number;
  commitTimeoutS?: number;
  /** Longest wait between reconnect attempts (writer --reconnect-max; default 1 s). */
  reconnectMaxS?: number;
  /** How long the setup waits for a writable server (writer --setup-wait; default 0). */
  setupWaitS?: number;
}

export function startLabWriter(lab: Lab, opts: WriterOptions): LabWriter {
  return startWriterProcess((argv) => hostArgv(lab, 'client', argv), lab.secrets.appPassword, {
    ...opts,
    dsn: opts.dsn ?? writerDsn(lab),
  });
}

/** `pgarbiter writer` as a background process; `wrap` places it (a lab host, or this host as is). */
export function startWriterProcess(
  wrap: (argv: string[]) => string[],
  appPassword: string,
  opts: WriterOptions & { dsn: string },
): LabWriter {
  const args = ['writer', '--dsn', opts.dsn, '--ledger', opts.ledger, '--json', '--progress'];
  // A COMMIT in flight when its server vanishes has an unknown outcome after this long.
  const commitTimeout = String(opts.commitTimeoutS ?? 10);
  args.push(
    '--sessions',
    String(opts.sessions ?? 4),
    '--connect-timeout',
    '1',
    '--commit-timeout',
    commitTimeout,
  );
  if (opts.durationS) args.push('--duration', String(opts.durationS));
  if (opts.rate) args.push('--rate', String(opts.rate));
  if (opts.reconnectMaxS) args.push('--reconnect-max', String(opts.reconnectMaxS));
  if (opts.setupWaitS) args.push('--setup-wait', String(opts.setupWaitS));
  const argv = wrap(selfArgv(...args));
  const proc = spawn(argv[0]!, argv.slice(1), {
    cwd: '/tmp',
    env: { ...process.env, PGPASSWORD: appPassword },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d) => {
    stdout += d;
  });
  proc.stderr?.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    proc.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
  const stop = async () => {
    if (proc.exitCode === null) proc.kill('SIGINT');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 40_000);
    const r = await done;
    clearTimeout(timer);
    if (r.code !== 0 || !r.stdout.trim())
      throw new Error(`writer failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  const writing = async (timeoutMs = 30_000) => {
    let tail: LedgerTail | null = null;
    await waitFor(
      'the writer acknowledging its first write',
      timeoutMs,
      async () => {
        if (proc.exitCode !== null)
          throw new WriterExited(
            `writer exited (${proc.exitCode}) before writing: ${stderr.trim().split('\n').slice(-2).join(' | ')}`,
          );
        if (!tail && existsSync(opts.ledger)) tail = new LedgerTail(opts.ledger);
        return tail?.poll().some((t) => t.outcome === 'ack') ? true : undefined;
      },
      100,
      () => {
        if (proc.exitCode !== null && !existsSync(opts.ledger))
          throw new WriterExited(
            `writer exited (${proc.exitCode}) before writing: ${stderr.trim().split('\n').slice(-2).join(' | ')}`,
          );
      },
    );
  };
  return { ledger: opts.ledger, proc, stop, done, writing };
}

class WriterExited extends Error {}

export interface CheckJson {
  exitCode: number;
  report: CheckReport;
}

export async function checkLabLedger(lab: Lab, ledger: string, extra: string[] = []): Promise<CheckJson> {
  const r = await cliIn(
    lab,
    'client',
    ['check', '--ledger', ledger, '--dsn', multiHostDsn(lab), '--json', ...extra],
    {
      PGPASSWORD: lab.secrets.appPassword,
    },
  );
  if (!r.stdout.trim()) throw new Error(`check failed (exit ${r.code}): ${r.stderr.trim()}`);
  return { exitCode: r.code, report: JSON.parse(r.stdout) };
}

/** Polls `probe` until it returns a value (not undefined), bounded by timeoutMs. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  everyMs = 200,
  /** Runs before every probe; what it throws ends the wait at once (not retried). */
  guard?: () => Promise<void> | void,
): Promise<T> {
  const r = await poll(probe, timeoutMs, everyMs, guard);
  if (r.ok) return r.value;
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${r.lastError ? ` (last error: ${r.lastError})` : ''}`,
  );
}

/** One writable unfenced primary, one streaming standby, the standby promotable. */
export function healthy(v: ClusterView): { primary: string; standby: string; term: number } | undefined {
  const rec = v.arbiter.state?.record;
  if (!rec) return undefined;
  const state = (name: string) => v.nodes.find((n) => n.name === name)?.state ?? undefined;
  return healthyOf(rec, state(rec.primary), state(rec.standby));
}

function healthyOf(
  rec: ClusterRecord,
  p: AgentStatus | undefined,
  s: AgentStatus | undefined,
): { primary: string; standby: string; term: number } | undefined {
  if (!p || !s) return undefined;
  const ok =
    p.postgres.inRecovery === false &&
    !p.fenced &&
    s.postgres.inRecovery === true &&
    s.postgres.receiving &&
    !s.fenced &&
    rec.standbyPromotable;
  return ok ? { primary: rec.primary, standby: rec.standby, term: rec.term } : undefined;
}

export const waitHealthy = (lab: Lab, timeoutMs = 60_000) =>
  waitFor(
    'a healthy cluster (primary + streaming promotable standby)',
    timeoutMs,
    async () => healthy(await clusterView(lab)),
    300,
  );

/** waitHealthy from the members' APIs (curl from the client host) instead of `status`: bounded
 *  by a few seconds even on a loaded machine, where a CLI start can take longer than 15 s.
 *  For the benchmarks, which poll it between every two faults. */
export const waitHealthyByApi = (lab: Lab, timeoutMs = 60_000) =>
  waitFor(
    'a healthy cluster (primary + streaming promotable standby)',
    timeoutMs,
    async () => {
      const arb = await arbiterView(lab);
      if (!arb) return undefined;
      const state = async (name: string) =>
        (await apiGetIn<AgentStatus>(lab, name as HostName, '/state', 3))?.body ?? undefined;
      return healthyOf(arb.record, await state(arb.record.primary), await state(arb.record.standby));
    },
    300,
  );

/**
 * Waits until `standby` has replayed everything `primary` had written when this was called
 * (pg_current_wal_lsn() then, compared with lsnAtLeast); returns that LSN. The primary may keep
 * taking writes meanwhile.
 */
export async function waitReplayed(
  lab: Lab,
  primary: HostName,
  standby: HostName,
  timeoutMs = 20_000,
): Promise<string> {
  const [[target]] = (await clientSql(lab, primary, 'SELECT pg_current_wal_lsn()', { admin: true })).rows as [
    [string],
  ];
  await waitFor(`${standby} replaying past ${primary}'s ${target}`, timeoutMs, async () => {
    const r = await clientSql(lab, standby, 'SELECT pg_last_wal_replay_lsn()', { admin: true });
    return lsnAtLeast(r.rows[0]?.[0] ?? null, target) ? true : undefined;
  });
  return target;
}

/**
 * GET one API endpoint of a lab member (agent or arbiter, port 8008) with curl from the client
 * host: bounded by timeoutS, a dead or isolated member gives null at once after it. (Cheaper than
 * clusterView, which waits for every member.)
 */
export async function apiGetIn<T = unknown>(
  lab: Lab,
  host: HostName,
  path: string,
  timeoutS = 1.5,
): Promise<{ status: number; body: T } | null> {
  const r = await run(
    hostArgv(
      lab,
      'client',
      labApiCurl(lab, 'client', host, path, { timeoutS, extra: ['-w', '\n%{http_code}'] }),
    ),
    {
      timeoutMs: timeoutS * 1000 + 5000,
      allowFailure: true,
    },
  );
  if (r.code !== 0) return null;
  const cut = r.stdout.lastIndexOf('\n');
  const status = Number(r.stdout.slice(cut + 1));
  try {
    return { status, body: JSON.parse(r.stdout.slice(0, cut)) as T };
  } catch {
    return { status, body: r.stdout.slice(0, cut) as T };
  }
}

/** The arbiter's record and events (checked against the wire protocol's schema), or null when
 *  the arbiter does not answer. */
export async function arbiterView(lab: Lab): Promise<ArbiterView | null> {
  const r = await apiGetIn<unknown>(lab, 'arbiter', '/state');
  if (r?.status !== 200) return null;
  const p = arbiterStateSchema.safeParse(r.body);
  return p.success ? p.data : null;
}

/** When the arbiter started `term` (a grant, a handover, a forced failover, an adoption). */
export const grantTimeOf = newTermTimeOf;

export interface SwitchoverPause {
  from: string;
  to: string;
  /** The last write acknowledged by the old primary -> the first acknowledged by the new one. */
  pauseMs: number;
  /** What `pgarbiter switchover` reports (until the old primary streams again). */
  cliMs: number;
  /** The writer's transactions that failed or stayed unknown in the pause. */
  notAcked: number;
  /** Acknowledged rows the ledger check found missing. */
  lost: number;
}

/** One `pgarbiter switchover` under a 4-session writer (through HAProxy when the lab runs it),
 *  measured from the writer's ledger. Used by bench/rejoin, bench/light and the tests. */
export async function switchoverUnderWriter(lab: Lab, ledger: string): Promise<SwitchoverPause> {
  const h = await waitHealthy(lab, 180_000);
  const oldAddr = lab.hosts[h.primary as HostName].address;
  const newAddr = lab.hosts[h.standby as HostName].address;
  const w = startLabWriter(lab, { ledger, sessions: 4 });
  let cliMs = Number.NaN;
  try {
    await w.writing();
    await sleep(1000);
    const started = Date.now();
    const sw = await cliIn(
      lab,
      'client',
      ['switchover', '--json', '--config', configPath(lab, 'client')],
      {},
      120_000,
    );
    if (sw.code !== 0) throw new Error(`switchover failed: ${sw.stderr.trim()}`);
    cliMs = (JSON.parse(sw.stdout) as { ms: number }).ms;
    await waitFor('the first write acknowledged by the new primary', 60_000, async () =>
      ledgerTxs(w.ledger).some((e) => e.t > started && ackedBy(e, newAddr)) ? true : undefined,
    );
    await sleep(500);
  } finally {
    await w.stop();
  }
  const all = ledgerTxs(w.ledger);
  const lastOld = Math.max(...all.filter((e) => ackedBy(e, oldAddr)).map((e) => e.t));
  const firstNew = Math.min(...all.filter((e) => ackedBy(e, newAddr) && e.t > lastOld).map((e) => e.t));
  const check = await checkLabLedger(lab, w.ledger);
  return {
    from: h.primary,
    to: h.standby,
    pauseMs: firstNew - lastOld,
    cliMs,
    notAcked: all.filter((e) => e.outcome !== 'ack' && e.t >= lastOld && e.t <= firstNew).length,
    lost: check.report.lost.count,
  };
}

/** A process's resident memory (VmRSS, kB) and CPU time so far (utime + stime; with its waited-for
 *  children's, cutime + cstime, apart), from /proc. */
/** A process's memory and CPU from /proc. RSS counts the node binary's code, shared by every node
 *  process on the machine (about 44 MB of a daemon's 75); `privateKb` (Private_Clean +
 *  Private_Dirty of smaps_rollup: heap, stacks, what only it touched) is what each daemon adds. */
export function procUsage(pid: number): {
  rssKb: number;
  privateKb: number;
  cpuS: number;
  childCpuS: number;
} {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const privateKb = [...rollup.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+)/gm)].reduce(
    (a, m) => a + Number(m[1]),
    0,
  );
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const tick = 100; // USER_HZ: 100 on Linux
  return {
    rssKb,
    privateKb,
    cpuS: (Number(f[11]) + Number(f[12])) / tick,
    childCpuS: (Number(f[13]) + Number(f[14])) / tick,
  };
}
