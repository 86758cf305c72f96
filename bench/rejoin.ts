// bench/rejoin: on a real lab with a ~1 GB database (pgbench -i), the time from heal to
// "streaming and caught up" of the old primary after a failover, by pg_rewind (the normal path)
// and by the base-backup fallback, side by side; and the switchover write pause (last write
// acknowledged by the old primary -> first by the new one), three alternating switchovers.
//   node dist/bench/rejoin.js [--scale 68] [--prefix pgbr] [--subnet 10.213.110.0/24]
//                             [--write-seconds 5] [--switchovers 3] [--save-logs DIR] [--no-checkpoint]
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { lsnAtLeast } from '../src/core/lsn.js';
import {
  dataDir,
  heal,
  hostArgv,
  isolate,
  type Lab,
  labDown,
  labUp,
  PG_BIN_DIR,
  PG_PORT,
  readLab,
  socketDir,
  startAgent,
  stopDaemon,
  stopPostgres,
} from '../src/lab/index.js';
import type { HostName } from '../src/lab/topology.js';
import { clusterView, switchoverUnderWriter, waitFor, waitHealthy } from '../src/scenario/lab-run.js';
import { asUser, run } from '../src/util/exec.js';
import { badArg, benchArgs } from './args.js';
import { spreadText } from './stats.js';

const values = benchArgs(import.meta.url, {
  // Measured: scale 68 gives a 1.0 GB database (pgbench_accounts 0.87 GB + its key 0.14 GB).
  scale: { type: 'string', default: '68' },
  prefix: { type: 'string', default: process.env.PGARBITER_LAB_PREFIX ?? 'pgbr' },
  subnet: { type: 'string', default: process.env.PGARBITER_LAB_SUBNET ?? '10.213.110.0/24' },
  'write-seconds': { type: 'string', default: '5' },
  switchovers: { type: 'string', default: '3' },
  /** Skip the CHECKPOINT after the load (see README: pg_rewind then falls back). */
  'no-checkpoint': { type: 'boolean', default: false },
  /** Copy the agents', the arbiter's and PostgreSQL's logs here before the lab is torn down. */
  'save-logs': { type: 'string' },
});
const scale = Number(values.scale);
const writeSeconds = Number(values['write-seconds']);
const switchovers = Number(values.switchovers);
if (!Number.isInteger(scale) || scale < 1 || scale > 80) badArg('--scale: 1..80 (80 is ~1.2 GB)');
if (!Number.isInteger(writeSeconds) || writeSeconds < 1 || writeSeconds > 60)
  badArg('--write-seconds: 1..60');
if (!Number.isInteger(switchovers) || switchovers < 1 || switchovers > 10) badArg('--switchovers: 1..10');

const PGBENCH = join(PG_BIN_DIR, 'pgbench');
const t0 = Date.now();
const say = (m: string) =>
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${m}\n`);
const MB = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

// ---------------------------------------------------------------- helpers

/** psql over the host's own Unix socket (as postgres, trust): works while the node is fenced. */
async function localSql(lab: Lab, host: HostName, sql: string, timeoutMs = 5000): Promise<string[]> {
  const r = await run(
    hostArgv(
      lab,
      host,
      asUser('postgres', [
        join(PG_BIN_DIR, 'psql'),
        '-h',
        socketDir(lab, host),
        '-p',
        String(PG_PORT),
        '-d',
        'postgres',
        '-XAt',
        '-F',
        '\t',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        sql,
      ]),
    ),
    { timeoutMs },
  );
  return r.stdout.trim().split('\t');
}

/** pgbench inside the client host against `host`, as the admin role. */
async function pgbench(lab: Lab, host: HostName, args: string[], timeoutMs: number): Promise<string> {
  const r = await run(
    hostArgv(lab, 'client', [
      PGBENCH,
      '-h',
      lab.hosts[host].address,
      '-p',
      String(PG_PORT),
      '-U',
      'pgarbiter',
      ...args,
      'postgres',
    ]),
    { timeoutMs, env: { ...process.env, PGPASSWORD: lab.secrets.adminPassword } },
  );
  return `${r.stdout}${r.stderr}`;
}

/** Bytes under a data directory (optionally without pg_wal). */
async function duBytes(dir: string, withoutWal = false): Promise<number> {
  const r = await run(['du', '-sb', ...(withoutWal ? ['--exclude=pg_wal'] : []), dir], {
    timeoutMs: 60_000,
  });
  return Number(r.stdout.split('\t')[0]);
}

/** The standby promoted and writable, seen in its own PostgreSQL (fast: `status` is not needed). */
async function waitPromoted(lab: Lab, host: HostName): Promise<void> {
  await waitFor('promotion of the standby', 60_000, async () => {
    const [inRecovery, ro] = await localSql(
      lab,
      host,
      "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
    );
    return inRecovery === 'f' && ro === 'off' ? true : undefined;
  });
}

/** A few seconds of pgbench on the new primary: WAL the rejoining node must catch up on. */
async function writeALittle(lab: Lab, host: HostName): Promise<{ tx: number; walBytes: number }> {
  const [before] = await localSql(lab, host, 'SELECT pg_current_wal_lsn()');
  const out = await pgbench(lab, host, ['-n', '-c', '2', '-j', '2', '-T', String(writeSeconds)], 120_000);
  const tx = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? Number.NaN);
  const [diff] = await localSql(lab, host, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${before}')`);
  return { tx, walBytes: Number(diff) };
}

/** Polls the rejoining node until it is a streaming standby that replayed `lsn`; returns when. */
async function waitCaughtUp(lab: Lab, host: HostName, lsn: string, timeoutMs: number): Promise<number> {
  return waitFor(
    `${host} streaming with replay >= ${lsn}`,
    timeoutMs,
    async () => {
      const [status, replayed] = await localSql(
        lab,
        host,
        'SELECT (SELECT status FROM pg_stat_wal_receiver), pg_last_wal_replay_lsn()',
        3000,
      );
      return status === 'streaming' && lsnAtLeast(replayed ?? null, lsn) ? Date.now() : undefined;
    },
    100,
  );
}

interface LogLine {
  time: string;
  msg?: string;
  step?: string;
  ms?: number;
}

/** The agent's rejoin, from its log: when it started, and each timed step. */
function rejoinSteps(lab: Lab, host: HostName, sinceMs: number): { startedMs: number | null; steps: string } {
  let startedMs: number | null = null;
  const steps: string[] = [];
  const text = readFileSync(join(lab.hosts[host].dir, 'agent.log'), 'utf8');
  for (const raw of text.split('\n')) {
    if (!raw.startsWith('{')) continue;
    let l: LogLine;
    try {
      l = JSON.parse(raw) as LogLine;
    } catch {
      continue;
    }
    const t = Date.parse(l.time);
    if (!(t >= sinceMs)) continue;
    if (startedMs === null && l.msg?.startsWith('REJOIN as standby')) startedMs = t;
    if (startedMs === null) continue;
    if (l.step && typeof l.ms === 'number') steps.push(`${l.step} ${sec(l.ms)}`);
    if (l.msg?.startsWith('pg_rewind path failed'))
      steps.push(`[rewind path failed ${sec(t - startedMs)} into the rejoin; falling back]`);
  }
  return { startedMs, steps: steps.join(', ') };
}

interface RejoinRow {
  path: string;
  from: HostName;
  method: string;
  agentMs: number | null;
  totalMs: number;
  detectMs: number | null;
  steps: string;
  walBytes: number;
  tx: number;
  standbyBytes: number;
}

// ---------------------------------------------------------------- the three measurements

/** Failover, some writes on the new primary, heal: heal -> old primary streaming and caught up. */
async function rejoinRun(lab: Lab, path: 'rewind' | 'basebackup'): Promise<RejoinRow> {
  const h = await waitHealthy(lab, 180_000);
  const old = h.primary as 'pg1' | 'pg2';
  const neu = h.standby as HostName;
  say(`${path}: isolating the primary ${old}`);
  const cut = Date.now();
  await isolate(lab, old, 'link-down');
  await waitPromoted(lab, neu);
  say(
    `${path}: ${neu} promoted and writable ${sec(Date.now() - cut)} after the cut; writing for ${writeSeconds} s`,
  );
  if (path === 'basebackup') {
    // As test/integration/recovery.test.ts: agent and server down, the WAL gone, so pg_rewind
    // cannot work and the agent falls back to a fresh base backup.
    if (!(await stopDaemon(lab, `agent-${old}`))) throw new Error(`agent-${old} did not stop`);
    await stopPostgres(lab, old, 'immediate');
    const wal = join(dataDir(lab, old), 'pg_wal');
    for (const f of readdirSync(wal)) if (/^[0-9A-F]{24}$/.test(f)) rmSync(join(wal, f));
  }
  const w = await writeALittle(lab, neu);
  const [lsn] = await localSql(lab, neu, 'SELECT pg_current_wal_lsn()');
  say(`${path}: ${w.tx} pgbench transactions, ${MB(w.walBytes)} of WAL; healing ${old} (primary at ${lsn})`);
  const healAt = Date.now();
  await heal(lab, old);
  if (path === 'basebackup') await startAgent(lab, old);
  const caughtUp = await waitCaughtUp(lab, old, lsn!, 900_000);
  const totalMs = caughtUp - healAt;
  say(`${path}: ${old} streaming and caught up ${sec(totalMs)} after the heal`);
  const lr = await waitFor('the agent to report its rejoin', 30_000, async () => {
    const v = await clusterView(lab);
    const r = v.nodes.find((n) => n.name === old)?.state?.lastRejoin;
    return r && Date.parse(r.at) >= healAt ? r : undefined;
  });
  if (lr.method !== path) say(`warning: expected the ${path} path, the agent reports ${lr.method}`);
  const { startedMs, steps } = rejoinSteps(lab, old, healAt);
  return {
    path,
    from: old,
    method: lr.method,
    agentMs: lr.ms,
    totalMs,
    detectMs: startedMs === null ? null : startedMs - healAt,
    steps,
    walBytes: w.walBytes,
    tx: w.tx,
    standbyBytes: await duBytes(dataDir(lab, old), true),
  };
}

/** One switchover under a 4-session writer: last ack on the old primary -> first on the new one. */
async function switchoverRun(lab: Lab, i: number) {
  const r = await switchoverUnderWriter(lab, join(lab.dir, 'client', `switchover-${i}.jsonl`));
  say(
    `switchover ${i}: ${r.from} -> ${r.to}: write pause ${sec(r.pauseMs)} (command ${sec(r.cliMs)}), ` +
      `${r.notAcked} failed/unknown in the pause, ${r.lost} acknowledged rows lost`,
  );
  return { i, ...r };
}

// ---------------------------------------------------------------- main

async function main() {
  say(`lab ${values.prefix} (${values.subnet}): tearing down any leftover, then up`);
  await labDown(values.prefix);
  const { lab } = await labUp({
    prefix: values.prefix,
    subnet: values.subnet,
    sync: 'remote_apply',
    timing: 'default',
  });
  const h0 = await waitHealthy(lab, 120_000);
  const primary = h0.primary as HostName;

  say(`pgbench -i -s ${scale} on ${primary} (server-side generation; streamed to the standby)`);
  const initStart = Date.now();
  await pgbench(lab, primary, ['-i', '-s', String(scale), '-I', 'dtGvp'], 3_600_000);
  const initMs = Date.now() - initStart;
  const [dbBytesText, accountsText] = await localSql(
    lab,
    primary,
    "SELECT pg_database_size('postgres'), pg_total_relation_size('pgbench_accounts')",
  );
  const dbBytes = Number(dbBytesText);
  const dataBytes = await duBytes(dataDir(lab, primary), true);
  say(
    `database ${MB(dbBytes)} (pgbench_accounts with its key ${MB(Number(accountsText))}), data directory without pg_wal ${MB(dataBytes)}; init took ${sec(initMs)}`,
  );
  if (dbBytes < 0.85 * 1024 ** 3 || dbBytes > 1.2 * 1024 ** 3)
    say(`warning: the database is ${MB(dbBytes)}, not about 1 GB: adjust --scale`);
  if (!values['no-checkpoint']) {
    // A settled database: the last checkpoint (and the standby's restartpoint) after the load.
    // Without it the last common checkpoint's redo point lies ~0.4 GB of WAL before the fork,
    // more than wal_keep_size (256MB): both nodes have recycled that WAL and the rewound node
    // cannot start (README, "Findings").
    await localSql(lab, primary, 'CHECKPOINT', 120_000);
    await localSql(lab, h0.standby as HostName, 'CHECKPOINT', 120_000);
    say('CHECKPOINT on the primary and a restartpoint on the standby');
  }

  const rewind = await rejoinRun(lab, 'rewind');
  const basebackup = await rejoinRun(lab, 'basebackup');
  const sw = [];
  for (let i = 1; i <= switchovers; i++) sw.push(await switchoverRun(lab, i));

  const cores = (await run(['nproc'], { timeoutMs: 5000 })).stdout.trim();
  console.log(
    `\nrejoin benchmark: database ${MB(dbBytes)} (pgbench scale ${scale}), data directory ${MB(dataBytes)} without pg_wal;`,
  );
  console.log(
    `timing=default, synchronous_commit=remote_apply, ${cores} cores, ${new Date().toISOString()}; ` +
      `${values['no-checkpoint'] ? 'no checkpoint' : 'CHECKPOINT'} after the load`,
  );
  console.log(`\nheal -> old primary streaming with replay >= the primary's LSN at heal time`);
  const col = (s: string, n: number) => s.padEnd(n);
  const rows: [string, (r: RejoinRow) => string][] = [
    ['agent reports (lastRejoin.method)', (r) => (r.method === r.path ? r.method : `${r.method} (!)`)],
    ['heal -> streaming and caught up', (r) => sec(r.totalMs)],
    ['  heal -> agent starts the rejoin', (r) => (r.detectMs === null ? '?' : sec(r.detectMs))],
    ['  rejoin procedure (lastRejoin.ms)', (r) => (r.agentMs === null ? '?' : sec(r.agentMs))],
    ['writes on the new primary meanwhile', (r) => `${r.tx} tx, ${MB(r.walBytes)} WAL`],
    ['standby data directory afterwards', (r) => MB(r.standbyBytes)],
  ];
  console.log(`  ${col('', 38)}${col('pg_rewind', 22)}base backup (fallback)`);
  for (const [label, f] of rows) console.log(`  ${col(label, 38)}${col(f(rewind), 22)}${f(basebackup)}`);
  console.log(`  steps (agent log), pg_rewind:   ${rewind.steps}`);
  console.log(`  steps (agent log), base backup: ${basebackup.steps}`);
  console.log(
    `\nswitchover write pause (writer: 4 sessions through ${lab.daemons.haproxy ? "HAProxy's read-write port" : 'a libpq multi-host target'}; last ack on the old primary -> first ack on the new)`,
  );
  for (const r of sw)
    console.log(
      `  ${r.i}: ${r.from} -> ${r.to}  pause ${sec(r.pauseMs)}  (switchover command ${sec(r.cliMs)}, ${r.notAcked} failed/unknown in the pause, ${r.lost} acknowledged rows lost)`,
    );
  console.log(
    `  ${spreadText(
      sw.map((r) => r.pauseMs),
      sec,
    )}`,
  );
}

let tearingDown = false;
async function teardown(): Promise<void> {
  if (tearingDown) return;
  tearingDown = true;
  const dest = values['save-logs'];
  const lab = readLab(values.prefix);
  if (dest && lab) {
    mkdirSync(dest, { recursive: true });
    for (const h of Object.values(lab.hosts))
      for (const f of ['agent.log', 'arbiter.log', 'postgresql.log'])
        if (existsSync(join(h.dir, f))) cpSync(join(h.dir, f), join(dest, `${h.name}-${f}`));
    say(`logs copied to ${dest}`);
  }
  say(`tearing down lab ${values.prefix}`);
  await labDown(values.prefix).catch((e) => console.error(`lab down failed: ${(e as Error).message}`));
}

for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    void teardown().then(() => process.exit(130));
  });

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(teardown);
