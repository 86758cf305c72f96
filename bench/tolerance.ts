// bench/tolerance: what a bad network or a busy primary costs in false alarms, per timing profile.
// On a real lab with a writer on the VIP (and, during the loss rows, one through HAProxy too):
//   blips   the primary's link cut for each length (--blips), --repeat times each: how many ended
//           with nothing, with a fence only, or with a failover;
//   loss    packet loss on the primary (--losses) and on the arbiter (--arbiter-losses), for
//           --loss-duration each: fences, failovers, writes that failed or ended unknown, on
//           the VIP and through HAProxy (whose checks and `observe layer4` see the loss too);
//   freeze  the primary's whole host paused (SIGSTOP/SIGCONT) in bursts (--freezes ms), --repeat
//           times each: fences, failovers.
// Prints one table per profile. Every duration and repeat has a flag, for a quick shortened run.
//   node dist/bench/tolerance.js [--timing default,fast] [--repeat 10] [--blips 0.25,0.5,...]
//        [--losses 2,5,10,20] [--arbiter-losses 5,20] [--loss-duration 300] [--freezes 200,400,600,800]
//        [--timing-set failover_timeout=2200,...] (timing fields over each profile; a bare number is ms)
import type { AgentStatus } from '../src/api/protocol.js';
import type { TimingProfile } from '../src/config.js';
import { resolveTiming } from '../src/config.js';
import {
  freeze,
  haproxyDsn,
  heal,
  isolate,
  type Lab,
  labDown,
  labUp,
  setLoss,
  thaw,
} from '../src/lab/index.js';
import type { HostName } from '../src/lab/topology.js';
import { apiGetIn, arbiterView, startLabWriter, vipDsn, waitHealthyByApi } from '../src/scenario/lab-run.js';
import { sleep } from '../src/util/exec.js';
import { ledgerTxs } from '../src/workload/ledger.js';
import { badArg, benchArgs, profileArg, timingSetArg } from './args.js';
import { keepLabOnFailure } from './stats.js';

const values = benchArgs(import.meta.url, {
  timing: { type: 'string', default: 'default,fast' },
  'timing-set': { type: 'string' },
  repeat: { type: 'string', default: '10' },
  blips: { type: 'string', default: '0.25,0.5,0.75,1,1.5,2,3' },
  losses: { type: 'string', default: '2,5,10,20' },
  'arbiter-losses': { type: 'string', default: '5,20' },
  'loss-duration': { type: 'string', default: '300' },
  freezes: { type: 'string', default: '200,400,600,800' },
  /** Seconds to watch after a blip or a freeze ends before it is classified. */
  settle: { type: 'string', default: '4' },
  only: { type: 'string', default: 'blips,loss,freeze' },
  prefix: { type: 'string', default: process.env.PGARBITER_LAB_PREFIX ?? 'pgtol' },
  subnet: { type: 'string', default: process.env.PGARBITER_LAB_SUBNET ?? '10.213.170.0/24' },
});

function list(flag: string, raw: string, ok: (n: number) => boolean): number[] {
  const xs = raw === '' ? [] : raw.split(',').map(Number);
  if (xs.some((x) => !Number.isFinite(x) || !ok(x))) badArg(`--${flag} ${raw}: not a valid list`);
  return xs;
}
const profiles = values.timing.split(',').map(profileArg);
const timingSets = new Map(profiles.map((p) => [p, timingSetArg(values['timing-set'], p)]));
const repeat = Number(values.repeat);
if (!Number.isInteger(repeat) || repeat < 1) badArg(`--repeat ${values.repeat}: a whole number >= 1`);
const blips = list('blips', values.blips, (x) => x > 0 && x <= 60);
const losses = list('losses', values.losses, (x) => Number.isInteger(x) && x > 0 && x < 100);
const arbiterLosses = list(
  'arbiter-losses',
  values['arbiter-losses'],
  (x) => Number.isInteger(x) && x > 0 && x < 100,
);
const lossS = Number(values['loss-duration']);
if (!(lossS > 0)) badArg(`--loss-duration ${values['loss-duration']}: seconds > 0`);
const freezes = list('freezes', values.freezes, (x) => Number.isInteger(x) && x > 0 && x <= 60_000);
const settleS = Number(values.settle);
const only = new Set(values.only.split(','));

interface Snapshot {
  term: number;
  primary: string;
  fences: number;
}

/** The arbiter's term and primary, and both agents' fence counters (GET /state with curl from
 *  the client host: cheap, and bounded even on a loaded machine). Retried a few times. */
async function snapshot(lab: Lab): Promise<Snapshot> {
  for (let i = 0; ; i++) {
    const arb = await arbiterView(lab);
    const agents = await Promise.all(
      (['pg1', 'pg2'] as const).map((h) => apiGetIn<AgentStatus>(lab, h, '/state', 3)),
    );
    if (arb && agents.every((a) => a?.status === 200))
      return {
        term: arb.record.term,
        primary: arb.record.primary,
        fences: agents.reduce((n, a) => n + (a?.body.fence?.count ?? 0), 0),
      };
    if (i >= 5) throw new Error('cannot read the arbiter and both agents');
    await sleep(1000);
  }
}

/** What a fault ended with, from the arbiter's term and the agents' fence counters. */
function outcomeOf(a: Snapshot, b: Snapshot): 'nothing' | 'fence' | 'failover' {
  if (b.term > a.term && b.primary !== a.primary) return 'failover';
  return b.fences > a.fences ? 'fence' : 'nothing';
}

/** Writes that failed or ended unknown between two moments, from a writer's ledger. */
function writeErrors(ledger: string, from: number, to: number): number {
  return ledgerTxs(ledger).filter((t) => t.t >= from && t.t <= to && t.outcome !== 'ack').length;
}

interface Row {
  fault: string;
  count: { nothing: number; fence: number; failover: number };
  /** Loss rows: writes that failed or ended unknown during the loss, per client path. */
  writeErrors?: { vip: number; haproxy: number };
}

async function blipRows(lab: Lab): Promise<Row[]> {
  const rows: Row[] = [];
  for (const s of blips) {
    const row: Row = { fault: `link cut ${s} s`, count: { nothing: 0, fence: 0, failover: 0 } };
    for (let i = 0; i < repeat; i++) {
      const h = await waitHealthyByApi(lab, 180_000);
      const a = await snapshot(lab);
      await isolate(lab, h.primary as HostName, 'link-down');
      await sleep(s * 1000);
      await heal(lab, h.primary as HostName);
      await sleep(settleS * 1000);
      await waitHealthyByApi(lab, 180_000);
      const o = outcomeOf(a, await snapshot(lab));
      row.count[o]++;
      process.stderr.write(`  blip ${s} s #${i + 1}: ${o}\n`);
    }
    rows.push(row);
  }
  return rows;
}

async function lossRows(lab: Lab): Promise<Row[]> {
  const rows: Row[] = [];
  const cases: { host: 'primary' | 'arbiter'; percent: number }[] = [
    ...losses.map((percent) => ({ host: 'primary' as const, percent })),
    ...arbiterLosses.map((percent) => ({ host: 'arbiter' as const, percent })),
  ];
  for (const c of cases) {
    const h = await waitHealthyByApi(lab, 180_000);
    const target: HostName = c.host === 'primary' ? (h.primary as HostName) : 'arbiter';
    const writer = (path: 'vip' | 'haproxy') =>
      startLabWriter(lab, {
        ledger: `${lab.dir}/client/tol-loss-${c.host}-${c.percent}-${path}-${Date.now()}.jsonl`,
        dsn: path === 'vip' ? vipDsn(lab) : haproxyDsn(lab, 'rw'),
        sessions: 2,
        reconnectMaxS: 0.2,
      });
    const w = { vip: writer('vip'), haproxy: writer('haproxy') };
    await Promise.all([w.vip.writing(), w.haproxy.writing()]);
    const a = await snapshot(lab);
    const t0 = Date.now();
    await setLoss(lab, target, c.percent);
    await sleep(lossS * 1000);
    await setLoss(lab, target, 0);
    const t1 = Date.now();
    // Snapshot through the lab's client: read the result after the loss has ended.
    await sleep(settleS * 1000);
    const b = await snapshot(lab);
    await Promise.all([w.vip.stop(), w.haproxy.stop()]);
    const errors = { vip: writeErrors(w.vip.ledger, t0, t1), haproxy: writeErrors(w.haproxy.ledger, t0, t1) };
    const row: Row = {
      fault: `${c.percent} % loss on the ${c.host}, ${lossS} s`,
      count: {
        nothing: 0,
        fence: b.fences - a.fences,
        failover: b.term > a.term && b.primary !== a.primary ? b.term - a.term : 0,
      },
      writeErrors: errors,
    };
    rows.push(row);
    process.stderr.write(
      `  ${row.fault}: fences ${row.count.fence}, failovers ${row.count.failover}, write errors ${errors.vip} on the VIP, ${errors.haproxy} through HAProxy\n`,
    );
    await waitHealthyByApi(lab, 180_000);
  }
  return rows;
}

async function freezeRows(lab: Lab): Promise<Row[]> {
  const rows: Row[] = [];
  for (const ms of freezes) {
    const row: Row = { fault: `primary frozen ${ms} ms`, count: { nothing: 0, fence: 0, failover: 0 } };
    for (let i = 0; i < repeat; i++) {
      const h = await waitHealthyByApi(lab, 180_000);
      const a = await snapshot(lab);
      await freeze(lab, h.primary as HostName);
      await sleep(ms);
      await thaw(lab, h.primary as HostName);
      await sleep(settleS * 1000);
      await waitHealthyByApi(lab, 180_000);
      const o = outcomeOf(a, await snapshot(lab));
      row.count[o]++;
      process.stderr.write(`  freeze ${ms} ms #${i + 1}: ${o}\n`);
    }
    rows.push(row);
  }
  return rows;
}

function printRows(profile: TimingProfile, rows: Row[]): void {
  const t = resolveTiming({ profile, ...timingSets.get(profile) });
  console.log(
    `\ntiming=${profile}${values['timing-set'] ? ` with ${values['timing-set']}` : ''} (probe_interval ${t.probeIntervalMs} ms, fence_timeout ${t.fenceTimeoutMs} ms, fence_action_budget ${t.fenceActionBudgetMs} ms, failover_timeout ${t.failoverTimeoutMs} ms)`,
  );
  console.log(
    `  ${'fault'.padEnd(38)} ${'nothing'.padStart(7)} ${'fence'.padStart(7)} ${'failover'.padStart(8)} ${'write errors (VIP / HAProxy)'.padStart(28)}`,
  );
  for (const r of rows) {
    const isLoss = r.writeErrors !== undefined;
    console.log(
      `  ${r.fault.padEnd(38)} ${(isLoss ? '' : String(r.count.nothing)).padStart(7)} ${String(r.count.fence).padStart(7)} ${String(r.count.failover).padStart(8)} ${(r.writeErrors ? `${r.writeErrors.vip} / ${r.writeErrors.haproxy}` : '').padStart(28)}`,
    );
  }
}

async function main() {
  const results: { profile: string; rows: Row[] }[] = [];
  for (const profile of profiles) {
    await labDown(values.prefix);
    process.stderr.write(`timing=${profile}: lab up\n`);
    const { lab } = await labUp({
      prefix: values.prefix,
      subnet: values.subnet,
      sync: 'remote_apply',
      timing: profile,
      timingSet: timingSets.get(profile),
    });
    await keepLabOnFailure(lab, async () => {
      await waitHealthyByApi(lab, 180_000);
      const rows: Row[] = [];
      if (only.has('blips')) rows.push(...(await blipRows(lab)));
      if (only.has('loss')) rows.push(...(await lossRows(lab)));
      if (only.has('freeze')) rows.push(...(await freezeRows(lab)));
      results.push({ profile, rows });
      printRows(profile, rows);
    });
  }
  console.log(
    `\nblips and freezes: ${repeat} run(s) each, classified ${settleS} s after the fault ended (nothing / fence only / failover); ` +
      `loss: counts over ${lossS} s per row; write errors: writes that failed or ended unknown during the loss, 2 sessions on the VIP and 2 through HAProxy`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
