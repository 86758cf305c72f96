// `pgarbiter demo`: the whole lab assignment in one command (see src/demo/demo.ts).
import type { Command } from 'commander';
import type { SyncCommit, TimingProfile } from '../config.js';
import { SYNC_MODES } from '../config.js';
import { type Dashboard, startDashboard } from '../dashboard/server.js';
import { runDemo } from '../demo/demo.js';
import { formatSummaryTable, writeReport } from '../demo/report.js';
import type { IsolateMode } from '../lab/index.js';
import { requireRoot, requireTools, resolveIdentity } from '../lab/index.js';
import { UserError } from '../util/errors.js';
import { interruptible } from '../util/interrupt.js';
import { dashboardBanner, parsePort } from './dashboard.js';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .summary('every stage of the lab assignment on a fresh lab, narrated, with the evidence')
    .description(
      'Run every stage of the fault-tolerance lab on a fresh namespace lab, narrated, with the evidence: ' +
        '1 primary + hot standby, 2.1 client sessions, 2.2 the primary cut off, 2.3 logs + failover, ' +
        '3 rejoin + switchover back; then a summary table, the data-loss accounting and a report.',
    )
    .option(
      '--mode <mode>',
      'how the primary is cut off in 2.2: link-down (interface down) or subnet',
      'link-down',
    )
    .option('--manual', 'fail over by command (pgarbiter failover --force) instead of automatically')
    .option('--sync <mode>', `synchronous_commit: ${SYNC_MODES.join(', ')}`, 'remote_apply')
    .option('--timing <profile>', 'timing profile: default or fast', 'default')
    .option('--sessions <n>', 'concurrent writer sessions (at least 3)', '4')
    .option('--report <dir>', 'where to write report.md, report.html and outcome.json', './pgarbiter-report')
    .option('--keep', 'leave the lab running afterwards to explore (default)')
    .option('--down', 'tear the lab down at the end')
    .option('--prefix <prefix>', 'lab name prefix (default: $PGARBITER_LAB_PREFIX or pga)')
    .option('--subnet <cidr>', 'lab subnet (default: $PGARBITER_LAB_SUBNET or 10.213.0.0/24)')
    .option('--web', 'serve the live dashboard (pgarbiter dashboard) while the demo runs')
    .option('--web-port <n>', 'the dashboard port with --web', '8080')
    .action(async (o) => {
      if (!['link-down', 'subnet'].includes(o.mode))
        throw new UserError(`--mode must be link-down or subnet, not "${o.mode}"`);
      if (!(SYNC_MODES as readonly string[]).includes(o.sync))
        throw new UserError(`--sync must be one of ${SYNC_MODES.join(', ')}`);
      if (!['default', 'fast'].includes(o.timing))
        throw new UserError(`--timing must be default or fast, not "${o.timing}"`);
      const sessions = Number(o.sessions);
      if (!Number.isInteger(sessions) || sessions < 3 || sessions > 64)
        throw new UserError(
          `--sessions must be an integer from 3 to 64 (the assignment asks for several), not "${o.sessions}"`,
        );
      if (o.keep && o.down) throw new UserError('--keep and --down contradict each other: pick one');
      requireRoot('pgarbiter demo');
      requireTools(true);
      const prefix = o.prefix ? ` --prefix ${o.prefix}` : '';
      let web: Dashboard | undefined;
      if (o.web) {
        web = await startDashboard({
          port: parsePort(o.webPort),
          prefix: resolveIdentity({ prefix: o.prefix, subnet: o.subnet }).prefix,
          waitForLab: true,
        });
        process.stdout.write(`${dashboardBanner(web.url, web.token)}\n\n`);
      }
      const outcome = await interruptible(
        {
          // runDemo's own clean-up stops the writer, and removes the lab with --down.
          next: o.down ? 'stop the writer and remove the lab' : 'stop the writer (the lab is kept)',
          done: o.down
            ? 'the writer was stopped and the lab removed'
            : `the writer was stopped; the lab is kept as it was (\`pgarbiter lab down${prefix}\` removes it)`,
          leftover: `run \`pgarbiter lab down${prefix}\` to remove the lab and its processes`,
        },
        (signal) =>
          runDemo({
            prefix: o.prefix,
            subnet: o.subnet,
            mode: o.mode as IsolateMode,
            manual: Boolean(o.manual),
            sync: o.sync as SyncCommit,
            timing: o.timing as TimingProfile,
            keep: !o.down,
            reportDir: o.report,
            sessions,
            signal,
          }),
      ).finally(() => web?.close());
      if (web)
        process.stdout.write(
          `\nthe dashboard stopped with the demo: \`pgarbiter dashboard${prefix}\` serves it again\n`,
        );
      process.stdout.write(`\n${formatSummaryTable(outcome)}\n`);
      const files = writeReport(outcome, o.report);
      process.stdout.write(`\nreport: ${files.markdown}\n        ${files.html}\n`);
      if (!o.down)
        process.stdout.write(
          [
            '',
            'The lab is still running. Try:',
            `  pgarbiter status${prefix}                 the cluster as the agents see it`,
            `  pgarbiter lab psql pg1${prefix}           psql on the client host, connected to pg1`,
            `  pgarbiter lab isolate pg1${prefix}        cut the primary off again, and watch status`,
            `  pgarbiter switchover${prefix}             swap the roles without losing a write`,
            `  pgarbiter lab down${prefix}               remove everything`,
            '',
          ].join('\n'),
        );
      if (!outcome.ok) process.exitCode = 1;
    });
}
