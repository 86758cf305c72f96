// bench/failover: N primary isolations in a real lab. Three writers run at once, one per client
// path: HAProxy's read-write port, the floating VIP, and libpq-style multi-host. For each run it
// breaks the time down: cut -> grant (arbiter) -> promoted (new primary's agent) -> routed (HAProxy
// routes to it / the VIP is on it) -> first acknowledged write on each path. Prints one table per
// run, min/median/max per step, the acknowledged rows lost, and each daemon's idle RSS and CPU.
// The cut comes as soon as every writer writes, or once the writers' sessions are --session-age
// seconds old (as a pool's are). Either way the new VIP holder resets the sessions the old one
// relayed (every round): only a session opened in the last round or so before the cut waits for
// its next TCP retransmission instead.
//   node dist/bench/failover.js [--runs 10] [--timing default|fast] [--sync remote_apply]
//        [--mode link-down|subnet] [--reconnect-max 0.2] [--session-age 0]
//        [--timing-set failover_timeout=2200,...]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { newTermTimeOf } from '../src/cluster/view.js';
import type { SyncCommit } from '../src/config.js';
import {
  haproxyDsn,
  haproxyRoutesTo,
  heal,
  isolate,
  type Lab,
  labDown,
  labUp,
  vipHolder,
} from '../src/lab/index.js';
import type { HostName } from '../src/lab/topology.js';
import {
  arbiterView,
  checkLabLedger,
  type LabWriter,
  multiHostDsn,
  procUsage,
  startLabWriter,
  vipDsn,
  waitFor,
  waitHealthyByApi,
} from '../src/scenario/lab-run.js';
import { sleep } from '../src/util/exec.js';
import { ackedBy, ledgerTxs } from '../src/workload/ledger.js';
import { badArg, benchArgs, profileArg, timingSetArg } from './args.js';
import { keepLabOnFailure, spread } from './stats.js';

const values = benchArgs(import.meta.url, {
  runs: { type: 'string', default: '10' },
  timing: { type: 'string', default: 'default' },
  /** Timing fields over the profile, durations, a bare number in ms (as `lab up --timing-set`). */
  'timing-set': { type: 'string' },
  sync: { type: 'string', default: 'remote_apply' },
  mode: { type: 'string', default: 'link-down' },
  'reconnect-max': { type: 'string', default: '0.2' },
  'session-age': { type: 'string', default: '0' },
  prefix: { type: 'string', default: process.env.PGARBITER_LAB_PREFIX ?? 'pgbf' },
  subnet: { type: 'string', default: process.env.PGARBITER_LAB_SUBNET ?? '10.213.70.0/24' },
});
const runs = Number(values.runs);
const timing = profileArg(values.timing);
const timingSet = timingSetArg(values['timing-set'], timing);
const reconnectMaxS = Number(values['reconnect-max']);
if (!Number.isInteger(runs) || runs < 1) badArg(`--runs ${values.runs}: give a whole number >= 1`);
if (!(reconnectMaxS >= 0.1)) badArg(`--reconnect-max ${values['reconnect-max']}: give seconds >= 0.1`);
const sessionAgeS = Number(values['session-age']);
if (!(sessionAgeS >= 0 && sessionAgeS <= 60))
  badArg(`--session-age ${values['session-age']}: give seconds from 0 to 60`);

const PATHS = ['haproxy', 'vip', 'multihost'] as const;
type ClientPath = (typeof PATHS)[number];

function firstAckFrom(ledger: string, address: string, after: number): number | null {
  return ledgerTxs(ledger).find((tx) => tx.t > after && ackedBy(tx, address))?.t ?? null;
}

/** When the new primary's agent logged "promoted to primary" after `after` (its log's clock). */
function promotedAt(lab: Lab, host: HostName, after: number): number | null {
  const lines = readFileSync(join(lab.hosts[host].dir, 'agent.log'), 'utf8').split('\n');
  for (const line of lines) {
    if (!line.includes('promoted to primary')) continue;
    const t = Date.parse((JSON.parse(line) as { time: string }).time);
    if (t > after) return t;
  }
  return null;
}

/** Polls `check` every 50 ms from now until it holds (or 60 s): when it first held. */
async function firstTrue(check: () => Promise<boolean>): Promise<number | null> {
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return Date.now();
    await sleep(50);
  }
  return null;
}

async function idleUsage(lab: Lab): Promise<string[]> {
  const ds = Object.values(lab.daemons);
  const before = ds.map((d) => ({ name: d.name, ...procUsage(d.pid) }));
  const seconds = 10;
  await sleep(seconds * 1000);
  return ds.map((d, i) => {
    const u = procUsage(d.pid);
    const cpu = ((u.cpuS - before[i]!.cpuS) / seconds) * 100;
    return `${d.name.padEnd(10)} RSS ${(u.rssKb / 1024).toFixed(1)} MB (private ${(u.privateKb / 1024).toFixed(1)} MB), CPU ${cpu.toFixed(1)} % of one core (idle, ${seconds} s)`;
  });
}

interface Run {
  run: number;
  from: string;
  to: string;
  /** ms after the cut; null when not seen. */
  grant: number | null;
  promoted: number | null;
  routedHaproxy: number | null;
  routedVip: number | null;
  firstWrite: Record<ClientPath, number | null>;
  lost: Record<ClientPath, number>;
}

const sec = (ms: number | null) => (ms === null ? '  -  ' : (ms / 1000).toFixed(2).padStart(5));

function printTable(rows: Run[]): void {
  const head = [
    'run',
    'from->to',
    'grant',
    'promoted',
    'routed:haproxy',
    'routed:vip',
    'write:haproxy',
    'write:vip',
    'write:multihost',
  ];
  console.log(head.map((h) => h.padStart(h === 'run' ? 3 : 9)).join('  '));
  for (const r of rows)
    console.log(
      [
        String(r.run).padStart(3),
        `${r.from}->${r.to}`.padStart(9),
        sec(r.grant).padStart(5),
        sec(r.promoted).padStart(8),
        sec(r.routedHaproxy).padStart(14),
        sec(r.routedVip).padStart(10),
        sec(r.firstWrite.haproxy).padStart(13),
        sec(r.firstWrite.vip).padStart(9),
        sec(r.firstWrite.multihost).padStart(15),
      ].join('  '),
    );
  const line = (label: string, xs: (number | null)[]) => {
    const s = spread(xs.filter((x): x is number => x !== null));
    const missing = xs.filter((x) => x === null).length;
    console.log(
      `  ${label.padEnd(34)} ${s ? `min ${sec(s.min)}   median ${sec(s.median)}   max ${sec(s.max)}` : 'not seen'}${missing ? `   (${missing} run(s) not seen)` : ''}`,
    );
  };
  const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
  console.log('\nper step, seconds (from the cut unless said otherwise):');
  line(
    'cut -> grant',
    rows.map((r) => r.grant),
  );
  line(
    'grant -> promoted',
    rows.map((r) => diff(r.promoted, r.grant)),
  );
  line(
    'promoted -> routed (HAProxy)',
    rows.map((r) => diff(r.routedHaproxy, r.promoted)),
  );
  line(
    'promoted -> routed (VIP)',
    rows.map((r) => diff(r.routedVip, r.promoted)),
  );
  for (const p of PATHS)
    line(
      `cut -> first write (${p})`,
      rows.map((r) => r.firstWrite[p]),
    );
  for (const p of PATHS)
    line(
      `grant -> first write (${p})`,
      rows.map((r) => diff(r.firstWrite[p], r.grant)),
    );
}

async function main() {
  await labDown(values.prefix);
  const { lab } = await labUp({
    prefix: values.prefix,
    subnet: values.subnet,
    sync: values.sync as SyncCommit,
    timing,
    timingSet,
  });
  const dsns: Record<ClientPath, string> = {
    haproxy: haproxyDsn(lab, 'rw'),
    vip: vipDsn(lab),
    multihost: multiHostDsn(lab),
  };
  const rows: Run[] = [];
  await keepLabOnFailure(lab, async () => {
    await waitHealthyByApi(lab);
    const usage = await idleUsage(lab);
    for (let i = 1; i <= runs; i++) {
      const h = await waitHealthyByApi(lab, 120_000);
      const from = h.primary as HostName;
      const to = h.standby as HostName;
      const writers = {} as Record<ClientPath, LabWriter>;
      const writersSince = Date.now();
      // One after the other, each retried once: on a loaded machine a writer's set-up session can
      // miss its 1 s connect timeout.
      for (const p of PATHS)
        for (let attempt = 1; ; attempt++) {
          const w = startLabWriter(lab, {
            ledger: `${lab.dir}/client/bench-${i}-${p}-${attempt}.jsonl`,
            sessions: 2,
            dsn: dsns[p],
            reconnectMaxS,
          });
          try {
            await w.writing();
            writers[p] = w;
            break;
          } catch (e) {
            if (attempt >= 3) throw e;
            process.stderr.write(`writer on ${p} did not start (${(e as Error).message}); again\n`);
          }
        }
      // The first writer's sessions opened before it wrote; the cut waits until they are old enough.
      await sleep(Math.max(0, writersSince + sessionAgeS * 1000 - Date.now()));
      const cut = Date.now();
      await isolate(lab, from, values.mode as 'link-down' | 'subnet');
      const [routedHaproxy, routedVip] = await Promise.all([
        firstTrue(async () => (await haproxyRoutesTo(lab, 'primary')).includes(to)),
        firstTrue(() => vipHolder(lab, to)),
      ]);
      const newAddr = lab.hosts[to].address;
      const firstWrite = {} as Record<ClientPath, number | null>;
      for (const p of PATHS) {
        const t = await waitFor(
          `first ack on the new primary (${p})`,
          60_000,
          async () => firstAckFrom(writers[p].ledger, newAddr, cut) ?? undefined,
          50,
        ).catch(() => null);
        firstWrite[p] = t === null ? null : t - cut;
      }
      const arb = await arbiterView(lab);
      const grantAt = arb ? newTermTimeOf(arb, h.term + 1) : null;
      const promoted = promotedAt(lab, to, cut);
      await heal(lab, from);
      await waitHealthyByApi(lab, 120_000);
      const lost = {} as Record<ClientPath, number>;
      for (const p of PATHS) {
        await writers[p].stop();
        lost[p] = (await checkLabLedger(lab, writers[p].ledger, ['--allow-loss'])).report.lost.count;
      }
      const row: Run = {
        run: i,
        from,
        to,
        grant: grantAt === null ? null : grantAt - cut,
        promoted: promoted === null ? null : promoted - cut,
        routedHaproxy: routedHaproxy === null ? null : routedHaproxy - cut,
        routedVip: routedVip === null ? null : routedVip - cut,
        firstWrite,
        lost,
      };
      rows.push(row);
      process.stderr.write(
        `run ${i}: ${from} -> ${to}: grant ${sec(row.grant)} promoted ${sec(row.promoted)} ` +
          `write haproxy ${sec(firstWrite.haproxy)} vip ${sec(firstWrite.vip)} multihost ${sec(firstWrite.multihost)} s, ` +
          `lost ${PATHS.map((p) => lost[p]).join('/')}\n`,
      );
    }
    const finalArb = await arbiterView(lab);
    console.log(
      `\nfailover benchmark: ${runs} isolations (${values.mode}), timing=${values.timing}${timingSet ? ` with ${values['timing-set']}` : ''}, synchronous_commit=${values.sync}, writers' sessions ${sessionAgeS} s old at the cut`,
    );
    console.log(
      `writers: 2 sessions per client path, connect_timeout 1 s, reconnect wait doubling from 0.1 s up to ${reconnectMaxS} s`,
    );
    console.log("seconds after the cut of the primary's link:\n");
    printTable(rows);
    console.log(
      `\n  acknowledged rows lost: ${PATHS.map((p) => `${p} ${rows.reduce((a, r) => a + r.lost[p], 0)}`).join(', ')}`,
    );
    console.log('idle resource use:');
    for (const u of usage) console.log(`  ${u}`);
    console.log(`final term ${finalArb?.record.term}`);
  });
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
