// bench/fence: how long the primary's fence action takes under a writer, against
// fence_action_budget. On a real lab: the agents are stopped once the cluster is healthy (so
// nothing but this benchmark touches the fence), a writer runs from the client host straight at
// the primary, and a process inside the primary's namespace (as the agent is) fences and unfences
// it N times with src/fence/fence.ts, terminating client sessions through the agent's own
// PostgreSQL path (PgControl.query over the Unix socket). Prints min/median/max of the whole
// action and its parts, per mechanism (nft, iptables).
//   node dist/bench/fence.js [--runs 30] [--mechanism both|nft|iptables] [--timing default|fast]
//                            [--sessions 4] [--prefix pgf] [--subnet 10.214.0.0/24]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig, TIMING_PROFILES } from '../src/config.js';
import { FENCE_MECHANISMS, Fence, type FenceMechanism, type FenceResult } from '../src/fence/fence.js';
import { TERMINATE_CLIENTS_SQL } from '../src/fence/terminate.js';
import { configPath, hostArgv, labDown, labSslConninfo, labUp, stopAgents } from '../src/lab/index.js';
import type { HostName } from '../src/lab/topology.js';
import { PgControl } from '../src/postgres/control.js';
import { startLabWriter, waitHealthy } from '../src/scenario/lab-run.js';
import { sleep } from '../src/util/exec.js';
import { badArg, benchArgs, profileArg } from './args.js';
import { spreadText } from './stats.js';

const values = benchArgs(import.meta.url, {
  runs: { type: 'string', default: '30' },
  mechanism: { type: 'string', default: 'both' },
  timing: { type: 'string', default: 'default' },
  sessions: { type: 'string', default: '4' },
  prefix: { type: 'string', default: 'pgf' },
  subnet: { type: 'string', default: '10.214.0.0/24' },
  // Internal: the loop that runs inside the primary's namespace.
  inner: { type: 'boolean', default: false },
  config: { type: 'string' },
  budget: { type: 'string' },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) badArg(`--runs ${values.runs}: a whole number >= 1`);
if (values.mechanism !== 'both' && !(FENCE_MECHANISMS as readonly string[]).includes(values.mechanism))
  badArg(`--mechanism ${values.mechanism}: both, ${FENCE_MECHANISMS.join(' or ')}`);
const timing = profileArg(values.timing);
const sessions = Number(values.sessions);
if (!Number.isInteger(sessions) || sessions < 1 || sessions > 64)
  badArg(`--sessions ${values.sessions}: a whole number from 1 to 64`);

interface Sample extends FenceResult {
  isFencedMs: number;
  unfenceMs: number;
}

const now = () => performance.now();
const r1 = (ms: number) => Math.round(ms * 10) / 10;

/** Inside the primary's host: N x (fence, hold 300 ms, unfence, 1 s of writes). One JSON line each. */
async function inner(): Promise<void> {
  const cfg = loadConfig(values.config!);
  const ctl = new PgControl(cfg);
  const peer = cfg.nodes.find((n) => n.name !== cfg.node)!.host;
  const fence = new Fence(cfg.postgres.port, peer, Number(values.budget), {
    mechanism: values.mechanism as FenceMechanism,
  });
  await fence.unfence();
  for (let i = 0; i < runs; i++) {
    const r = await fence.fence((ms) =>
      ctl.query<{ n: number }>(TERMINATE_CLIENTS_SQL, [], ms).then((rows) => rows[0]?.n ?? 0),
    );
    await sleep(300);
    const t0 = now();
    const fenced = await fence.isFenced();
    const t1 = now();
    await fence.unfence();
    const t2 = now();
    if (!fenced) r.error = `${r.error ?? ''} isFenced() said false`;
    const s: Sample = { ...r, isFencedMs: r1(t1 - t0), unfenceMs: r1(t2 - t1) };
    process.stdout.write(`${JSON.stringify(s)}\n`);
    await sleep(1000);
  }
}

function runInner(argv: string[]): Promise<Sample[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: '/tmp', stdio: ['ignore', 'pipe', 'inherit'] });
    const samples: Sample[] = [];
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) {
          const s = JSON.parse(line) as Sample;
          samples.push(s);
          process.stderr.write(
            `  ${samples.length}: ${s.ms} ms (rule ${s.ruleMs}, terminate ${s.terminateMs}, ${s.terminated ?? '-'} sessions)${s.error ? ` ${s.error}` : ''}\n`,
          );
        }
        nl = buf.indexOf('\n');
      }
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(samples) : reject(new Error(`inner benchmark exited with ${code}`)),
    );
  });
}

async function outer(): Promise<void> {
  const budget = TIMING_PROFILES[timing].fence_action_budget;
  const mechanisms: FenceMechanism[] =
    values.mechanism === 'both' ? [...FENCE_MECHANISMS] : [values.mechanism as FenceMechanism];
  await labDown(values.prefix);
  const { lab } = await labUp({ prefix: values.prefix, subnet: values.subnet, timing });
  const results: [FenceMechanism, Sample[]][] = [];
  try {
    const h = await waitHealthy(lab, 120_000);
    const p = h.primary as HostName;
    await stopAgents(lab); // from here on only this benchmark touches the fence
    const w = startLabWriter(lab, {
      ledger: `${lab.dir}/client/bench-fence.jsonl`,
      sessions,
      dsn: `host=${lab.hosts[p].address} port=5432 user=app dbname=postgres ${labSslConninfo(lab)}`,
    });
    try {
      await sleep(2000);
      for (const m of mechanisms) {
        process.stderr.write(`${m}: ${runs} fences of ${p} under the writer\n`);
        const argv = hostArgv(lab, p, [
          process.execPath,
          fileURLToPath(import.meta.url),
          ...['--inner', '--config', configPath(lab, p), '--runs', String(runs)],
          ...['--mechanism', m, '--budget', String(budget)],
        ]);
        results.push([m, await runInner(argv)]);
      }
    } finally {
      await w.stop().catch(() => ({}));
    }
    console.log(
      `\nfence benchmark: ${runs} fences per mechanism of the primary (${p}) under a ${values.sessions}-session writer, ` +
        `timing=${timing} (fence_action_budget ${budget} ms), ms`,
    );
    for (const [m, ss] of results) {
      const over = (b: number) => ss.filter((s) => s.ms > b).length;
      console.log(`${m}`);
      console.log(
        `  whole action     ${spreadText(
          ss.map((s) => s.ms),
          (x) => x.toFixed(1),
        )}`,
      );
      console.log(
        `    rule           ${spreadText(
          ss.map((s) => s.ruleMs),
          (x) => x.toFixed(1),
        )}`,
      );
      console.log(
        `    terminate      ${spreadText(
          ss.map((s) => s.terminateMs),
          (x) => x.toFixed(1),
        )}`,
      );
      console.log(
        `  sessions ended   ${spreadText(
          ss.map((s) => s.terminated ?? 0),
          (x) => x.toFixed(1),
        )}`,
      );
      console.log(
        `  isFenced()       ${spreadText(
          ss.map((s) => s.isFencedMs),
          (x) => x.toFixed(1),
        )}`,
      );
      console.log(
        `  unfence()        ${spreadText(
          ss.map((s) => s.unfenceMs),
          (x) => x.toFixed(1),
        )}`,
      );
      console.log(
        `  over 500 ms: ${over(500)}, over 250 ms: ${over(250)}, not fenced: ${ss.filter((s) => !s.fenced).length}, ` +
          `errors: ${ss.filter((s) => s.error).length}`,
      );
    }
  } finally {
    await labDown(values.prefix);
  }
}

(values.inner ? inner() : outer()).then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
