// Driving a running lab from outside it: our CLI run inside the lab's hosts (only code inside a
// namespace reaches the lab), the writer as a background process on the client host, cluster
// views, and waits. Used by the demo, test-loss, the integration tests and the benchmarks.
import { type ChildProcess, spawn } from 'node:child_process';
import type { ClusterView } from '../cluster/view.js';
import { configPath, hostArgv, type Lab, selfArgv } from '../lab/index.js';
import type { HostName } from '../lab/topology.js';
import { run, sleep } from '../util/exec.js';
import type { CheckReport } from '../workload/compare.js';

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
  return `host=${lab.hosts.pg1.address},${lab.hosts.pg2.address} port=5432 user=app dbname=postgres target_session_attrs=read-write`;
}

export interface LabWriter {
  ledger: string;
  proc: ChildProcess;
  /** Stops the writer (SIGINT) and returns its JSON summary. */
  stop(): Promise<Record<string, unknown>>;
  done: Promise<{ code: number; stdout: string; stderr: string }>;
}

export function startLabWriter(
  lab: Lab,
  opts: { ledger: string; sessions?: number; durationS?: number; dsn?: string; rate?: number },
): LabWriter {
  const args = [
    'writer',
    '--dsn',
    opts.dsn ?? multiHostDsn(lab),
    '--ledger',
    opts.ledger,
    '--json',
    '--progress',
  ];
  args.push('--sessions', String(opts.sessions ?? 4), '--connect-timeout', '1', '--commit-timeout', '30');
  if (opts.durationS) args.push('--duration', String(opts.durationS));
  if (opts.rate) args.push('--rate', String(opts.rate));
  const argv = hostArgv(lab, 'client', selfArgv(...args));
  const proc = spawn(argv[0]!, argv.slice(1), {
    cwd: '/tmp',
    env: { ...process.env, PGPASSWORD: lab.secrets.appPassword },
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
  return { ledger: opts.ledger, proc, stop, done };
}

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
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr = '';
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      lastErr = (e as Error).message;
    }
    await sleep(everyMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}`,
  );
}

/** One writable unfenced primary, one streaming standby, the standby promotable. */
export function healthy(v: ClusterView): { primary: string; standby: string; term: number } | undefined {
  const rec = v.arbiter.state?.record;
  if (!rec) return undefined;
  const p = v.nodes.find((n) => n.name === rec.primary)?.state;
  const s = v.nodes.find((n) => n.name === rec.standby)?.state;
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

/** Runs SQL with psql on the client host against `host` as the app role; returns psql's -At rows. */
export async function sqlIn(
  lab: Lab,
  host: HostName,
  sql: string,
  opts: { admin?: boolean } = {},
): Promise<string[][]> {
  const user = opts.admin ? 'pgarbiter' : 'app';
  const password = opts.admin ? lab.secrets.adminPassword : lab.secrets.appPassword;
  const conninfo = `host=${lab.hosts[host].address} port=5432 user=${user} dbname=postgres connect_timeout=3 application_name=lab-check`;
  const r = await run(
    hostArgv(lab, 'client', ['psql', conninfo, '-XAt', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', sql]),
    {
      timeoutMs: 15_000,
      env: { ...process.env, PGPASSWORD: password },
    },
  );
  return r.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}
