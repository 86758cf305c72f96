// `pgarbiter writer` and `pgarbiter check`: the acknowledged-write ledger and its verdict.
import type { Command } from 'commander';
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
}
