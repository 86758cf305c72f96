// bench/light: is pgarbiter light and quick? On a real lab (timing profile `default` unless told):
//   1. `pgarbiter status` as a person runs it (from the machine: one process reaching the members
//      through the lab's API sockets): wall time of N runs, median and max;
//   2. each daemon idle (agents, arbiter; HAProxy for scale): RSS (VmRSS) and CPU (utime + stime)
//      over a window, and the CPU of the processes it ran meanwhile (cutime + cstime);
//   3. the switchover write pause under a 4-session writer through HAProxy, N switchovers.
// The machine's load average is printed next to the figures: the machine may be shared.
//   node dist/bench/light.js [--status-runs 20] [--idle-seconds 60] [--switchovers 5] [--timing default|fast]
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { CLI_MAIN, labDown, labUp } from '../src/lab/index.js';
import { procUsage, switchoverUnderWriter, waitHealthy } from '../src/scenario/lab-run.js';
import { run, sleep } from '../src/util/exec.js';
import { badArg, benchArgs, profileArg } from './args.js';
import { keepLabOnFailure, spreadText } from './stats.js';

const values = benchArgs(import.meta.url, {
  'status-runs': { type: 'string', default: '20' },
  'idle-seconds': { type: 'string', default: '60' },
  switchovers: { type: 'string', default: '5' },
  timing: { type: 'string', default: 'default' },
  prefix: { type: 'string', default: process.env.PGARBITER_LAB_PREFIX ?? 'pgbl' },
  subnet: { type: 'string', default: process.env.PGARBITER_LAB_SUBNET ?? '10.213.71.0/24' },
});
const statusRuns = Number(values['status-runs']);
const idleSeconds = Number(values['idle-seconds']);
const switchovers = Number(values.switchovers);
for (const [flag, n, max] of [
  ['--status-runs', statusRuns, 1000],
  ['--idle-seconds', idleSeconds, 3600],
  ['--switchovers', switchovers, 50],
] as const)
  if (!Number.isInteger(n) || n < 0 || n > max) badArg(`${flag}: a whole number from 0 to ${max}`);
const timing = profileArg(values.timing);

const say = (m: string) => process.stderr.write(`${m}\n`);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
/** `pgarbiter status` from the machine's own namespace, as a person types it. */
async function statusLatencies(prefix: string, runs: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await run([process.execPath, CLI_MAIN, 'status', '--prefix', prefix], { timeoutMs: 120_000 });
    ms.push(performance.now() - t0);
  }
  return ms;
}

async function main() {
  await labDown(values.prefix);
  const { lab } = await labUp({
    prefix: values.prefix,
    subnet: values.subnet,
    timing,
  });
  const out: string[] = [];
  await keepLabOnFailure(lab, async () => {
    await waitHealthy(lab, 120_000);
    await sleep(5000); // past the start-up: module loading, first connections
    out.push(`light benchmark: timing=${values.timing}, lab ${lab.prefix} (${lab.subnet})`);

    if (statusRuns) {
      say(`status: ${statusRuns} runs`);
      const loadBefore = load();
      const latencies = await statusLatencies(lab.prefix, statusRuns);
      out.push(
        `pgarbiter status (${statusRuns} runs, from the machine through the lab's API sockets): ` +
          `${spreadText(latencies, sec)}   [load average ${loadBefore} -> ${load()}]`,
      );
    }

    if (idleSeconds) {
      say(`idle: ${idleSeconds} s`);
      const daemons = Object.values(lab.daemons);
      const loadBefore = load();
      const before = daemons.map((d) => procUsage(d.pid));
      await sleep(idleSeconds * 1000);
      out.push(`idle, ${idleSeconds} s   [load average ${loadBefore} -> ${load()}]`);
      daemons.forEach((d, i) => {
        const u = procUsage(d.pid);
        const cpu = ((u.cpuS - before[i]!.cpuS) / idleSeconds) * 100;
        const child = ((u.childCpuS - before[i]!.childCpuS) / idleSeconds) * 100;
        out.push(
          `  ${d.name.padEnd(10)} RSS ${(u.rssKb / 1024).toFixed(1).padStart(5)} MB (private ${(u.privateKb / 1024).toFixed(1).padStart(4)} MB)   CPU ${cpu.toFixed(2).padStart(5)} % of a core` +
            `   (+ ${child.toFixed(2)} % in the commands it ran)`,
        );
      });
    }

    if (switchovers) {
      const rows = [];
      for (let i = 1; i <= switchovers; i++) {
        const r = await switchoverUnderWriter(lab, join(lab.dir, 'client', `light-switchover-${i}.jsonl`));
        say(`switchover ${i}: ${r.from} -> ${r.to}: pause ${sec(r.pauseMs)}, lost ${r.lost}`);
        rows.push(r);
      }
      out.push(
        `switchover write pause (${switchovers} switchovers, writer: 4 sessions through HAProxy): ` +
          `${spreadText(
            rows.map((r) => r.pauseMs),
            sec,
          )}; ` +
          `acknowledged rows lost ${rows.reduce((a, r) => a + r.lost, 0)}   [load average ${load()}]`,
      );
    }
    console.log(out.join('\n'));
  });
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
