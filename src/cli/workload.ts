// `pgarbiter writer` and `pgarbiter check`: the acknowledged-write ledger and its verdict.

import { dirname, join, resolve } from 'node:path';
import Table from 'cli-table3';
import type { Command } from 'commander';
import { requireRoot, validatePrefix, validateSubnet } from '../lab/index.js';
import { COMPOSE_TEST_NET, composePreflight, composeTarget } from '../scenario/compose-target.js';
import {
  type Fault,
  LOSS_TABLE_HEAD,
  type LossCellResult,
  type LossMatrixResult,
  lossRowCells,
  MATRIX_SYNC_MODES,
  parseFault,
  parseSync,
  parseVia,
  runLossMatrix,
  TEST_LOSS_PREFIX,
  TEST_LOSS_SUBNET,
} from '../scenario/test-loss.js';
import { UserError } from '../util/errors.js';
import { type CheckResult, checkLedger, formatCheckReport } from '../workload/checker.js';
import { startWriter, type WriterEvent, type WriterStats, type WriterSummary } from '../workload/writer.js';

function positive(
  flag: string,
  raw: string | undefined,
  opts: { integer?: boolean; allowZero?: boolean } = {},
) {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  const ok =
    raw.trim() !== '' &&
    Number.isFinite(n) &&
    (opts.allowZero ? n >= 0 : n > 0) &&
    (!opts.integer || Number.isInteger(n));
  if (!ok)
    throw new UserError(
      `${flag} ${raw}: give a ${opts.integer ? 'whole' : ''}${opts.integer ? ' ' : ''}number ${opts.allowZero ? '>= 0' : '> 0'}`,
    );
  return n;
}

function passwordFrom(envVar: string | undefined): string | undefined {
  if (envVar) {
    const v = process.env[envVar];
    if (v === undefined)
      throw new UserError(`--password-env ${envVar}: that environment variable is not set`);
    return v;
  }
  return process.env.PGPASSWORD;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
const dur = (ms: number) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`);

function serversText(st: WriterStats): string {
  const counts = new Map<string, number>();
  for (const s of st.sessionServers) if (s) counts.set(s, (counts.get(s) ?? 0) + 1);
  const up = [...counts].map(([s, n]) => `${s}×${n}`).join(' ');
  return `${st.connectedSessions}/${st.sessionServers.length} up${up ? `: ${up}` : ''}`;
}

function formatSummary(s: WriterSummary): string {
  const by = Object.entries(s.acksByServer)
    .map(([srv, n]) => `${srv} ${n}`)
    .join(', ');
  return [
    `run ${s.runId}: ${s.sessions} session(s) for ${secs(s.durationMs)} against ${s.target}`,
    `synchronous_commit=${s.synchronousCommit} synchronous_standby_names='${s.synchronousStandbyNames}'`,
    `acknowledged ${s.acknowledged} (${s.ackRatePerSec}/s), failed ${s.failed}, unknown ${s.unknown}, reconnects ${s.reconnects}`,
    `acks by server: ${by || 'none'}`,
    `longest gap between acks: ${s.maxAckGap ? `${dur(s.maxAckGap.ms)} (${s.maxAckGap.from} .. ${s.maxAckGap.to})` : 'n/a'}`,
    `ledger: ${s.ledgerPath}  (verify with: pgarbiter check --ledger ${s.ledgerPath})`,
  ].join('\n');
}

export function registerWorkloadCommands(program: Command): void {
  program
    .command('writer')
    .summary('write from several sessions and record each outcome in a ledger')
    .description(
      'Write continuously from several client sessions (a customer and an order per transaction) and record every ' +
        'id with its outcome (ack / fail / unknown) in a ledger for `check`.',
    )
    .requiredOption(
      '--dsn <conninfo>',
      'where to write: libpq keywords or URI; multi-host "host=a,b target_session_attrs=read-write" or an HAProxy read-write host:port',
    )
    .option('--sessions <n>', 'concurrent client sessions (1-256)', '4')
    .option('--duration <seconds>', 'stop after this long (default: until Ctrl-C)')
    .option('--ledger <file>', 'ledger to create (default ./writer-r<run>.jsonl); must not exist')
    .option('--rate <tps>', 'transactions per second per session (0 = full speed)', '0')
    .option('--password-env <VAR>', 'read the password from this environment variable (default PGPASSWORD)')
    .option('--connect-timeout <seconds>', 'per host connect timeout', '2')
    .option('--query-timeout <seconds>', 'deadline of BEGIN/INSERT', '5')
    .option('--commit-timeout <seconds>', 'deadline of COMMIT; past it the outcome is unknown', '10')
    .option(
      '--reconnect-max <seconds>',
      'longest wait between reconnect attempts (the wait doubles from 0.1 s up to this)',
      '1',
    )
    .option(
      '--setup-wait <seconds>',
      'wait this long for a writable server before giving up (default 0: fail at once, e.g. mid-failover)',
    )
    .option('--progress', 'print progress once a second on stderr even when it is not a terminal')
    .option('--json', 'print the summary as JSON')
    .action(async (o) => {
      const sessions = positive('--sessions', o.sessions, { integer: true });
      const duration = positive('--duration', o.duration);
      const rate = positive('--rate', o.rate, { allowZero: true });
      const showProgress = Boolean(o.progress) || process.stderr.isTTY === true;
      const tty = process.stderr.isTTY === true;
      const onEvent = (e: WriterEvent) => {
        if (!showProgress) return;
        if (tty) process.stderr.write('\r\x1b[K');
        const what =
          e.kind === 'connected' ? `connected to ${e.server}` : `${e.kind}${e.server ? ` ${e.server}` : ''}`;
        process.stderr.write(`session ${e.session}: ${what}${e.detail ? ` (${e.detail})` : ''}\n`);
      };
      const handle = await startWriter({
        target: o.dsn,
        password: passwordFrom(o.passwordEnv),
        sessions,
        durationMs: duration === undefined ? undefined : duration * 1000,
        ledgerPath: o.ledger,
        ratePerSession: rate,
        connectTimeoutMs: (positive('--connect-timeout', o.connectTimeout) ?? 2) * 1000,
        queryTimeoutMs: (positive('--query-timeout', o.queryTimeout) ?? 5) * 1000,
        commitTimeoutMs: (positive('--commit-timeout', o.commitTimeout) ?? 10) * 1000,
        backoffMaxMs: Math.max(100, (positive('--reconnect-max', o.reconnectMax) ?? 1) * 1000),
        setupWaitMs: (positive('--setup-wait', o.setupWait, { allowZero: true }) ?? 0) * 1000,
        onEvent,
      });
      process.stderr.write(
        `writer ${handle.runId}: ${handle.header.sessions} session(s), synchronous_commit=${handle.header.synchronousCommit}, ` +
          `ledger ${handle.ledgerPath}${duration ? `, ${duration}s` : ', Ctrl-C to stop'}\n`,
      );
      let lastAcked = 0;
      const ticker = setInterval(() => {
        if (!showProgress) return;
        const st = handle.stats();
        const line =
          `[${secs(st.elapsedMs).padStart(7)}] acked ${st.acknowledged} (${st.acknowledged - lastAcked}/s) ` +
          `failed ${st.failed} unknown ${st.unknown} gap ${secs(st.currentGapMs)} | ${serversText(st)}` +
          (st.connectedSessions < st.sessionServers.length && st.lastError
            ? ` | ${st.lastError.slice(0, 80)}`
            : '');
        lastAcked = st.acknowledged;
        process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      }, 1000);
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals++;
        process.stderr.write(
          `\n${sig}: ${signals === 1 ? 'stopping (in-flight transactions may finish; again to cut them)' : 'cutting in-flight transactions'}\n`,
        );
        handle.stop().catch(() => {});
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const summary = await handle.done;
        if (tty && showProgress) process.stderr.write('\n');
        process.stdout.write(
          o.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`,
        );
      } finally {
        clearInterval(ticker);
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });

  program
    .command('check')
    .summary("compare a writer's ledger with the primary: lost, unknown, torn")
    .description(
      'Compare a writer ledger with what the primary holds: lost (acknowledged but missing), unexpected (failed but ' +
        'present), unknown outcomes resolved, torn transactions, and the longest gap between acks. ' +
        'Exit status 3 when an acknowledged row is lost under a mode that promises none, a transaction is torn, or a failed one is present.',
    )
    .requiredOption('--ledger <file>', 'the writer ledger (JSON lines)')
    .option(
      '--dsn <conninfo>',
      "where to look (default: the ledger's target, target_session_attrs=read-write)",
    )
    .option('--password-env <VAR>', 'read the password from this environment variable (default PGPASSWORD)')
    .option('--expect-no-loss', 'treat any lost acknowledged row as a failure, whatever the ledger says')
    .option('--allow-loss', 'report lost acknowledged rows without failing (e.g. synchronous_commit=off)')
    .option('--list <n>', 'ids to list per category', '20')
    .option('--json', 'print the report as JSON')
    .action(async (o) => {
      if (o.expectNoLoss && o.allowLoss)
        throw new UserError('--expect-no-loss and --allow-loss contradict each other');
      const report: CheckResult = await checkLedger(o.ledger, {
        target: o.dsn,
        password: passwordFrom(o.passwordEnv),
        expectNoLoss: o.expectNoLoss ? true : o.allowLoss ? false : undefined,
        listLimit: positive('--list', o.list, { integer: true, allowZero: true }),
      });
      if (o.json) for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatCheckReport(report));
      process.exitCode = report.exitCode;
    });

  registerTestLossCommand(program);
}

export function formatLossTable(rows: LossCellResult[]): string {
  const table = new Table({ head: LOSS_TABLE_HEAD, style: { head: [], border: [] } });
  for (const r of rows) table.push(lossRowCells(r));
  return table.toString();
}

export function registerTestLossCommand(program: Command): void {
  program
    .command('test-loss')
    .summary("the original's data-loss tests on fresh labs, one table")
    .description(
      "The original cluster's data-loss tests, for real: per cell a fresh lab, the writer at full speed, the fault, " +
        'the failover where the fault calls for it, then the ledger checked against the primary. With no options: ' +
        'all faults x off and remote_apply, one table. Exit status 3 when a cell that promises no loss lost an acknowledged row.',
    )
    .option('--fault <fault>', 'stop-standby | stop-primary | isolate-primary (default: all three)')
    .option('--sync <mode>', `synchronous_commit of the lab (default: ${MATRIX_SYNC_MODES.join(' and ')})`)
    .option(
      '--kill',
      "kill -9 the node's agent and PostgreSQL at once instead of stopping them (SIGTERM + grace)",
    )
    .option('--seconds <n>', 'seconds of writing after the fault has been handled', '5')
    .option('--warmup <n>', 'seconds of writing before the fault', '2')
    .option('--sessions <n>', 'writer sessions, each at full speed', '8')
    .option('--via <route>', 'how the writer finds the primary: multihost | haproxy', 'multihost')
    .option('--json <file>', 'write the results as JSON', './pgarbiter-report/test-loss.json')
    .option('--keep-ledgers', 'keep every ledger next to the JSON (default: only those of failed cells)')
    .option(
      '--prefix <name>',
      'lab prefix; THIS lab is torn down and rebuilt for every cell',
      TEST_LOSS_PREFIX,
    )
    .option(
      '--subnet <cidr>',
      `IPv4 /24 (default: lab ${TEST_LOSS_SUBNET}, compose ${COMPOSE_TEST_NET}.0/24)`,
    )
    .option(
      '--target <where>',
      'lab: the namespace lab; compose: docker-compose.yml (the project --prefix, rebuilt for every cell), ' +
        'with the writer on this host and `docker compose stop|kill`, `docker network disconnect` as the faults',
      'lab',
    )
    .action(async (o) => {
      const faults: Fault[] | undefined = o.fault === undefined ? undefined : [parseFault(o.fault)];
      const syncs = o.sync === undefined ? undefined : [parseSync(o.sync)];
      const seconds = positive('--seconds', o.seconds) as number;
      const warmupSeconds = positive('--warmup', o.warmup, { allowZero: true }) as number;
      const sessions = positive('--sessions', o.sessions, { integer: true }) as number;
      const via = parseVia(o.via);
      const jsonFile = resolve(o.json);
      if (o.target !== 'lab' && o.target !== 'compose')
        throw new UserError(`unknown target "${o.target}": use --target lab or --target compose`);
      const compose = o.target === 'compose';
      const subnet: string = o.subnet ?? (compose ? `${COMPOSE_TEST_NET}.0/24` : TEST_LOSS_SUBNET);
      validatePrefix(o.prefix);
      validateSubnet(subnet);
      requireRoot('test-loss');
      // compose: the original's three faults, graceful and abrupt (docker compose kill) for the primary.
      const cells =
        compose && faults === undefined
          ? [
              { fault: 'stop-standby' as const, kill: Boolean(o.kill) },
              { fault: 'stop-primary' as const, kill: false },
              { fault: 'stop-primary' as const, kill: true },
              { fault: 'isolate-primary' as const, kill: false },
            ]
          : undefined;
      if (compose && !subnet.endsWith('.0/24'))
        throw new UserError(`--subnet ${subnet}: the compose network is a /24 ending in .0/24`);
      if (compose) await composePreflight();
      const ledgerDir = join(dirname(jsonFile), 'ledgers');

      const ctl = new AbortController();
      let interrupts = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        interrupts++;
        process.stderr.write(
          interrupts === 1
            ? `\n${sig}: stopping after tearing the ${compose ? 'compose project' : 'lab'} "${o.prefix}" down\n`
            : `\n${sig}: still tearing it down, please wait\n`,
        );
        ctl.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const t0 = Date.now();
      const say = (line: string) =>
        process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
      let res: LossMatrixResult;
      try {
        res = await runLossMatrix({
          faults,
          syncs,
          kill: Boolean(o.kill),
          seconds,
          warmupSeconds,
          sessions,
          via,
          prefix: o.prefix,
          subnet,
          cells,
          target: compose
            ? composeTarget({ project: o.prefix, net: subnet.replace(/\.0\/24$/, ''), say })
            : undefined,
          ledgerDir,
          keepLedgers: Boolean(o.keepLedgers),
          say,
          signal: ctl.signal,
          jsonFile,
        });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      process.stdout.write(`${formatLossTable(res.rows)}\n`);
      for (const r of res.rows) {
        const cell = `${r.sync}/${r.fault}${r.kill ? ' (kill -9)' : ''}`;
        if (r.error) process.stdout.write(`${cell}: ERROR: ${r.error}\n`);
        for (const v of r.violations) process.stdout.write(`${cell}: FAIL: ${v}\n`);
      }
      for (const r of res.rows)
        if (r.lost > 0)
          process.stdout.write(
            `${r.sync}/${r.fault}${r.kill ? ' (kill -9)' : ''}: ${r.lost} acknowledged row(s) lost, e.g. ids ${r.lostIds.slice(0, 5).join(', ')}` +
              `${r.ledger ? ` (ledger ${r.ledger})` : ''}\n`,
          );
      process.stdout.write(
        `${res.rows.length} cell(s) in ${res.seconds} s${res.aborted ? ', INTERRUPTED' : ''}; results in ${jsonFile}\n`,
      );
      if (res.violated) process.exitCode = 3;
      else if (!res.ok) process.exitCode = res.aborted ? 130 : 2;
    });
}
