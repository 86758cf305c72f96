// `pgarbiter soak`: random schedules of real faults against a lab, with writers and a checker
// (src/soak). `soak-sample` is its sampler, run inside the lab's client host (hidden).
import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { loadConfig } from '../config.js';
import { requireRoot, requireTools, resolveIdentity } from '../lab/index.js';
import { formatSoakTable, summarize, writeSoakReport } from '../soak/report.js';
import { runSoak } from '../soak/run.js';
import { runSampler } from '../soak/sampler.js';
import { generatePlan, type SoakPlan, validatePlan } from '../soak/schedule.js';
import { UserError } from '../util/errors.js';
import { interruptible } from '../util/interrupt.js';

/** "10m", "90s", "1h", "45" (seconds) -> ms. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(v.trim());
  if (!m) throw new UserError(`--duration "${v}": give a number with s, m or h, e.g. 10m`);
  const ms = Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 's' | 'm' | 'h'];
  if (ms < 1000) throw new UserError(`--duration "${v}" is too short: give at least 1s`);
  return ms;
}

function positiveInt(v: string, flag: string, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > max)
    throw new UserError(`${flag} "${v}": give a whole number from 1 to ${max}`);
  return n;
}

/** A schedule takes well under a minute: a duration's plan is sized at one per 15 s. */
const PLAN_MS_PER_SCHEDULE = 15_000;

export function registerSoakCommand(program: Command): void {
  program
    .command('soak')
    .summary('random schedules of real faults on a lab, with a writer and a safety checker')
    .description(
      'Random, reproducible schedules of real faults on a lab (isolation, partitions, one-way drops, packet loss, ' +
        'freezes, stops and kill -9 of PostgreSQL and of each daemon, an arbiter restart during a failover, ' +
        'switchover, maintenance, forced failover), alone and overlapping, with writers through HAProxy and ' +
        'libpq multi-host. A checker stops at the first violation: two unfenced writable primaries, a write ' +
        'acknowledged by a node after a newer term was granted, acknowledged rows lost under remote_apply, ' +
        'a term or timeline going down, no healthy cluster within the bound after the faults, a daemon gone. ' +
        'The lab and logs are then kept, and `pgarbiter soak --replay FILE` runs that schedule again.',
    )
    .option('--schedules <n>', 'how many schedules (default 3; or use --duration)')
    .option('--duration <time>', 'run schedules for this long, e.g. 10m, 1h')
    .option('--seed <n>', 'PRNG seed: the same seed gives the same schedules (default 1)')
    .addOption(
      new Option('--sync <mode>', 'synchronous_commit of the lab (default remote_apply)').choices([
        'off',
        'remote_apply',
      ]),
    )
    .addOption(
      new Option('--timing <profile>', 'timing profile (default default)').choices(['default', 'fast']),
    )
    .addOption(
      new Option('--lease <mode>', "the primary's kernel-side lease in the lab (default on)").choices([
        'on',
        'off',
      ]),
    )
    .addOption(
      new Option('--mode <mode>', 'how isolate cuts a host off (default link-down)').choices([
        'link-down',
        'subnet',
      ]),
    )
    .option(
      '--replay <file>',
      'run the schedules of a plan or replay file again (its seed, sync, timing, mode, lease)',
    )
    .option(
      '--heal-bound <seconds>',
      'after the last fault: how long the cluster may take to be healthy',
      '60',
    )
    .option('--keep-going', 'count a violation and go on with the next schedule instead of stopping')
    .option('--keep', 'keep the lab after a run without violations (a violation always keeps it)')
    .option(
      '--keep-ledgers',
      'keep every writer ledger (default: those of schedules with loss or a violation)',
    )
    .option('--out <dir>', 'where the plan, result.json, ledgers and replay files go', './pgarbiter-soak')
    .option(
      '--report <dir>',
      'also write report.html (write rate over time, faults on it) and report.md here',
    )
    .option('--json', 'print the result as JSON instead of the table (progress still goes to stderr)')
    .option('--prefix <prefix>', 'lab name prefix (default: $PGARBITER_LAB_PREFIX or pga)')
    .option('--subnet <cidr>', 'lab subnet (default: $PGARBITER_LAB_SUBNET or 10.213.0.0/24)')
    .action(async (o) => {
      let plan: SoakPlan;
      let durationMs: number | undefined;
      if (o.replay) {
        const clash = ['schedules', 'duration', 'seed', 'sync', 'timing', 'mode', 'lease'].filter(
          (k) => o[k] !== undefined,
        );
        if (clash.length)
          throw new UserError(
            `--replay runs the file's own settings: drop ${clash.map((k) => `--${k}`).join(', ')}`,
          );
        let text: string;
        try {
          text = readFileSync(o.replay, 'utf8');
        } catch (e) {
          throw new UserError(`cannot read ${o.replay}: ${(e as NodeJS.ErrnoException).code ?? e}`);
        }
        try {
          plan = validatePlan(JSON.parse(text), o.replay);
        } catch (e) {
          throw new UserError((e as Error).message);
        }
      } else {
        if (o.schedules !== undefined && o.duration !== undefined)
          throw new UserError('give --schedules or --duration, not both');
        const seedText = o.seed ?? '1';
        if (!/^\d+$/.test(seedText) || Number(seedText) > 2 ** 32 - 1)
          throw new UserError(`--seed "${seedText}": give a whole number from 0 to 4294967295`);
        durationMs = o.duration !== undefined ? parseDuration(o.duration) : undefined;
        const count =
          durationMs !== undefined
            ? Math.ceil(durationMs / PLAN_MS_PER_SCHEDULE) + 1
            : positiveInt(o.schedules ?? '3', '--schedules', 100_000);
        plan = generatePlan(Number(seedText), count, {
          sync: o.sync ?? 'remote_apply',
          timing: o.timing ?? 'default',
          mode: o.mode ?? 'link-down',
          lease: o.lease ?? 'on',
        });
      }
      const healBound = Number(o.healBound);
      if (!Number.isFinite(healBound) || healBound < 5 || healBound > 3600)
        throw new UserError(`--heal-bound "${o.healBound}": give seconds from 5 to 3600`);
      const id = resolveIdentity({ prefix: o.prefix, subnet: o.subnet });
      requireRoot('pgarbiter soak');
      requireTools(true);
      const say = (l: string) => process.stderr.write(`${l}\n`);
      const prefixFlag = o.prefix ? ` --prefix ${o.prefix}` : '';
      const result = await interruptible(
        {
          next: 'heal every fault and stop the writers (the lab is kept)',
          done: `faults healed, writers stopped; the lab is kept (\`pgarbiter lab down${prefixFlag}\` removes it)`,
          leftover: `run \`pgarbiter lab down${prefixFlag}\` to remove the lab and its processes`,
        },
        (signal) =>
          runSoak({
            plan,
            prefix: id.prefix,
            subnet: id.subnet,
            outDir: o.out,
            durationMs,
            healBoundMs: healBound * 1000,
            keepGoing: Boolean(o.keepGoing),
            keep: Boolean(o.keep),
            keepLedgers: Boolean(o.keepLedgers),
            say,
            signal,
          }),
      );
      if (o.json)
        process.stdout.write(`${JSON.stringify({ ...result, summary: summarize(result) }, null, 2)}\n`);
      else process.stdout.write(`${formatSoakTable(result)}\n`);
      if (o.report) {
        const files = writeSoakReport(result, o.report);
        say(`report: ${files.html}`);
      }
      const failed = result.schedules.filter((s) => s.replayFile);
      for (const s of failed)
        say(
          `schedule ${s.index} broke an invariant; run it again with:\n  pgarbiter soak --replay ${s.replayFile}${prefixFlag}`,
        );
      if (result.labKept)
        say(
          `the lab "${id.prefix}" is kept (logs in /tmp/pgarbiter-${id.prefix}); \`pgarbiter lab down${prefixFlag}\` removes it`,
        );
      if (result.violations > 0) process.exitCode = 3;
    });

  program
    .command('soak-sample', { hidden: true })
    .description('the soak sampler (runs inside the lab client host)')
    .requiredOption('--config <file>')
    .option('--interval <ms>', 'sampling interval', '500')
    .action(async (o) => {
      await runSampler(
        loadConfig(o.config),
        positiveInt(o.interval, '--interval', 60_000),
        process.env.PGPASSWORD,
      );
    });
}
