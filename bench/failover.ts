// bench/failover: N primary isolations in a real lab; for each, the time from the cut to the
// first write acknowledged by the new primary, and the acknowledged rows lost. Prints
// min/median/max, and each agent's idle RSS and CPU.
//   node dist/bench/failover.js [--runs 10] [--timing default|fast] [--sync remote_apply] [--mode link-down|subnet]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { SyncCommit, TimingProfile } from '../src/config.js';
import { heal, isolate, type Lab, labDown, labUp } from '../src/lab/index.js';
import type { HostName } from '../src/lab/topology.js';
import {
  checkLabLedger,
  clusterView,
  startLabWriter,
  waitFor,
  waitHealthy,
} from '../src/scenario/lab-run.js';
import { sleep } from '../src/util/exec.js';
import { ackedBy, ledgerTxs } from '../src/workload/ledger.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    timing: { type: 'string', default: 'default' },
    sync: { type: 'string', default: 'remote_apply' },
    mode: { type: 'string', default: 'link-down' },
    prefix: { type: 'string', default: process.env.PGARBITER_LAB_PREFIX ?? 'pgbf' },
    subnet: { type: 'string', default: process.env.PGARBITER_LAB_SUBNET ?? '10.213.70.0/24' },
  },
});
const runs = Number(values.runs);

function firstAckFrom(ledger: string, address: string, after: number): number | null {
  return ledgerTxs(ledger).find((tx) => tx.t > after && ackedBy(tx, address))?.t ?? null;
}

/** RSS (kB) and CPU seconds of a process, from /proc. */
function procUsage(pid: number): { rssKb: number; cpuS: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { rssKb, cpuS: (Number(f[11]) + Number(f[12])) / 100 };
}

async function idleUsage(lab: Lab): Promise<string[]> {
  const ds = Object.values(lab.daemons);
  const before = ds.map((d) => ({ name: d.name, ...procUsage(d.pid) }));
  const seconds = 10;
  await sleep(seconds * 1000);
  return ds.map((d, i) => {
    const u = procUsage(d.pid);
    const cpu = ((u.cpuS - before[i]!.cpuS) / seconds) * 100;
    return `${d.name.padEnd(10)} RSS ${(u.rssKb / 1024).toFixed(1)} MB, CPU ${cpu.toFixed(1)} % of one core (idle, ${seconds} s)`;
  });
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return {
    min: s[0]!,
    median: s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2,
    max: s[s.length - 1]!,
  };
};

async function main() {
  await labDown(values.prefix);
  const { lab } = await labUp({
    prefix: values.prefix,
    subnet: values.subnet,
    sync: values.sync as SyncCommit,
    timing: values.timing as TimingProfile,
  });
  const rows: { run: number; from: string; to: string; ms: number; lost: number }[] = [];
  let failed = false;
  try {
    await waitHealthy(lab);
    const usage = await idleUsage(lab);
    for (let i = 1; i <= runs; i++) {
      const h = await waitHealthy(lab, 120_000);
      const w = startLabWriter(lab, { ledger: `${lab.dir}/client/bench-${i}.jsonl`, sessions: 4 });
      await w.writing();
      const cut = Date.now();
      await isolate(lab, h.primary as HostName, values.mode as 'link-down' | 'subnet');
      const newAddr = lab.hosts[h.standby as HostName].address;
      const firstAck = await waitFor(
        'first ack on the new primary',
        60_000,
        async () => firstAckFrom(w.ledger, newAddr, cut) ?? undefined,
        50,
      );
      await heal(lab, h.primary as HostName);
      await waitHealthy(lab, 120_000);
      await w.stop();
      const c = await checkLabLedger(lab, w.ledger, ['--allow-loss']);
      rows.push({ run: i, from: h.primary, to: h.standby, ms: firstAck - cut, lost: c.report.lost.count });
      process.stderr.write(
        `run ${i}: ${h.primary} -> ${h.standby}: ${firstAck - cut} ms, lost ${c.report.lost.count}\n`,
      );
    }
    const s = stats(rows.map((r) => r.ms));
    const view = await clusterView(lab);
    console.log(
      `\nfailover benchmark: ${runs} isolations (${values.mode}), timing=${values.timing}, synchronous_commit=${values.sync}`,
    );
    console.log(
      `cut -> first acknowledged write on the new primary (writer: 4 sessions via ${lab.daemons.haproxy ? "HAProxy's read-write port" : 'a multi-host target'})`,
    );
    console.log(
      `  min ${(s.min / 1000).toFixed(2)} s   median ${(s.median / 1000).toFixed(2)} s   max ${(s.max / 1000).toFixed(2)} s`,
    );
    console.log(`  acknowledged rows lost: ${rows.reduce((a, r) => a + r.lost, 0)} in total`);
    console.log('idle resource use:');
    for (const u of usage) console.log(`  ${u}`);
    console.log(`final term ${view.arbiter.state?.record.term}`);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    // A failed run keeps its lab and logs (in ${lab.dir}) for a person to look at.
    if (failed)
      process.stderr.write(
        `lab "${values.prefix}" kept for inspection (${lab.dir}); remove it with: pgarbiter lab down --prefix ${values.prefix}\n`,
      );
    else await labDown(values.prefix);
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
