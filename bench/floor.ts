// bench/floor: what the events of an idle member cost in CPU on this machine, in a real lab: the
// floor under pgarbiter's idle CPU (issue 13, item 4 asks <= 1 % of a core at `default`). Each probe
// is its own node process in a lab host's namespace (bench/floor-probe.ts) that does only that,
// measured by its own CPU (utime + stime):
//   wake   a timer every probe_interval that does nothing: a round's wake-up
//   call   a keep-alive HTTPS GET of the arbiter's /health every probe_interval: an agent's call
//          to a peer, client side
//   serve  an HTTPS server (the lab's pg1 certificate) answering a keep-alive GET every
//          probe_interval: the peer's call an agent answers, server side
//   check  the same server answering a new TLS connection per GET, resumed as HAProxy resumes
//          its checks' sessions: one of HAProxy's health checks, server side
//   channel call and channel serve: the same call over the members' channel (src/util/channel.ts,
//          one JSON line each way on a kept TLS connection), which the members use since 365d8ae
// It then adds up the least an idle standby's second can cost at the profile (a wake-up, two calls
// and one answered call a round, over HTTPS and over the channel; HAProxy's checks, held as the
// agent holds them) and prints it beside what the lab's own daemons used over the same minutes.
// SQL probes, the core, metrics and garbage collection come on top, so the floor is a lower bound.
//   node dist/bench/floor.js [--seconds 40] [--timing default|fast]
import { type ChildProcess, spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { CHECK_HOLD_MS, PASS_HOLD_MS } from '../src/agent/daemon.js';
import { TIMING_PROFILES } from '../src/config.js';
import {
  hostAddress,
  hostNs,
  LAB_API_PORT,
  type Lab,
  labCaFile,
  labCertFile,
  labDown,
  labKeyFile,
  labUp,
} from '../src/lab/index.js';
import { procUsage, waitHealthy } from '../src/scenario/lab-run.js';
import { sleep } from '../src/util/exec.js';
import { badArg, benchArgs, profileArg } from './args.js';
import type { ProbeResult } from './floor-probe.js';
import { keepLabOnFailure } from './stats.js';

const values = benchArgs(import.meta.url, {
  seconds: { type: 'string', default: '40' },
  timing: { type: 'string', default: 'default' },
  prefix: { type: 'string', default: process.env.PGARBITER_LAB_PREFIX ?? 'pgfl' },
  subnet: { type: 'string', default: process.env.PGARBITER_LAB_SUBNET ?? '10.213.73.0/24' },
});
const seconds = Number(values.seconds);
if (!Number.isInteger(seconds) || seconds < 5 || seconds > 3600)
  badArg(`--seconds ${values.seconds}: a whole number from 5 to 3600`);
const timing = profileArg(values.timing);

/** The server probe listens here, on pg1, beside the agent's 8008. */
const PROBE_PORT = 8101;
const PROBE = fileURLToPath(new URL('./floor-probe.js', import.meta.url));

function startProbe(lab: Lab, host: 'pg1' | 'client', args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', hostNs(lab.prefix, host), process.execPath, PROBE, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** The probe's last line of output, its result, once it has exited. */
function result(child: ChildProcess): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as ProbeResult)
        : reject(new Error(`a floor probe exited with ${code}`)),
    );
  });
}

/** The server probe on pg1, answering the calls of a client probe on the client host: `call` (a
 *  kept HTTPS connection), `fresh` (a new one for each) or `channel`; the server's own CPU. */
async function served(lab: Lab, periodMs: number, how: 'call' | 'fresh' | 'channel'): Promise<ProbeResult> {
  const pg1 = hostAddress(lab.subnet, 'pg1');
  const server = startProbe(lab, 'pg1', [
    'serve',
    `${pg1}:${PROBE_PORT}`,
    labCertFile(lab, 'pg1'),
    labKeyFile(lab, 'pg1'),
  ]);
  const done = result(server);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the server probe did not start in 10 s')), 10_000);
    server.stdout?.once('data', () => {
      clearTimeout(t);
      resolve();
    });
  });
  try {
    const url = `https://${pg1}:${PROBE_PORT}/health`;
    await result(
      startProbe(lab, 'client', [
        how === 'channel' ? 'channel' : 'call',
        String(periodMs),
        String(seconds),
        url,
        labCaFile(lab),
        ...(how === 'fresh' ? ['fresh'] : []),
      ]),
    );
  } finally {
    server.kill('SIGTERM');
  }
  return done;
}

const perEvent = (r: ProbeResult) => r.cpuMs / Math.max(1, r.events);
const ms = (x: number) => `${x.toFixed(2).padStart(5)} ms`;

async function main() {
  const periodMs = TIMING_PROFILES[timing].probe_interval;
  await labDown(values.prefix);
  const { lab } = await labUp({ prefix: values.prefix, subnet: values.subnet, timing });
  await keepLabOnFailure(lab, async () => {
    await waitHealthy(lab, 120_000);
    await sleep(5000); // past the daemons' start-up
    const say = (m: string) => process.stderr.write(`${m}\n`);
    const daemons = Object.values(lab.daemons);
    const before = daemons.map((d) => procUsage(d.pid));
    const t0 = performance.now();
    const load0 = loadavg()[0]!.toFixed(2);
    const every = [String(periodMs), String(seconds)];
    say(`wake: ${seconds} s`);
    const wake = await result(startProbe(lab, 'client', ['wake', ...every]));
    say(`call: ${seconds} s (the arbiter's /health)`);
    const arbiterUrl = `https://${hostAddress(lab.subnet, 'arbiter')}:${LAB_API_PORT}/health`;
    const call = await result(startProbe(lab, 'client', ['call', ...every, arbiterUrl, labCaFile(lab)]));
    say(`serve: ${seconds} s`);
    const serve = await served(lab, periodMs, 'call');
    say(`check: ${seconds} s`);
    const check = await served(lab, periodMs, 'fresh');
    say(`channel call: ${seconds} s (the arbiter's /health)`);
    const chCall = await result(startProbe(lab, 'client', ['channel', ...every, arbiterUrl, labCaFile(lab)]));
    say(`channel serve: ${seconds} s`);
    const chServe = await served(lab, periodMs, 'channel');
    const windowS = (performance.now() - t0) / 1000;
    const used = daemons.map((d, i) => ({
      name: d.name,
      pct: ((procUsage(d.pid).cpuS - before[i]!.cpuS) / windowS) * 100,
    }));

    // A call probe wakes once per call: the call's own cost is what it adds to a wake.
    const callMs = Math.max(0, perEvent(call) - perEvent(wake));
    const chCallMs = Math.max(0, perEvent(chCall) - perEvent(wake));
    const rounds = 1000 / periodMs;
    // The standby's checks as the agent holds them (Agent.checkStatus) at HAProxy's periods
    // (routing/haproxy.ts): its /primary, a steady 503, held CHECK_HOLD_MS then `downinter`
    // 200 ms; its /replica, a pass, held PASS_HOLD_MS then the read-only `inter` 2 s.
    const checksPerS = 1000 / (CHECK_HOLD_MS + 200) + 1000 / (PASS_HOLD_MS + 2000);
    const floorOf = (cMs: number, sMs: number) =>
      rounds * (perEvent(wake) + 2 * cMs + sMs) + checksPerS * perEvent(check);
    const httpsFloor = floorOf(callMs, perEvent(serve));
    const channelFloor = floorOf(chCallMs, perEvent(chServe));
    const row = (what: string, x: number, r: ProbeResult, note = '') =>
      `  ${what.padEnd(52)} ${ms(x)}   (${r.events} in ${r.seconds.toFixed(0)} s${r.failed ? `, ${r.failed} failed` : ''}${note})`;
    const least = (how: string, f: number) =>
      `  over ${how.padEnd(8)} ${rounds.toFixed(1)} rounds/s x (a wake-up + 2 calls + 1 answered) + ${checksPerS.toFixed(2)} checks/s = ${f.toFixed(1)} ms/s = ${(f / 10).toFixed(2)} % of a core`;
    console.log(
      [
        `floor benchmark: timing=${timing} (probe_interval ${periodMs} ms), lab ${lab.prefix}, load average ${load0} at the start`,
        'CPU per event (utime + stime of a node process that does only that):',
        row('a timer wake-up that does nothing', perEvent(wake), wake),
        row('a keep-alive HTTPS GET, client side, over a wake-up', callMs, call),
        row('a keep-alive HTTPS GET answered, server side', perEvent(serve), serve),
        row('a channel call, client side, over a wake-up', chCallMs, chCall),
        row('a channel call answered, server side', perEvent(chServe), chServe),
        row(
          'a new TLS connection per GET, server side',
          perEvent(check),
          check,
          `, ${check.resumed ?? 0} resumed`,
        ),
        `least an idle standby uses at ${timing}, before its SQL probes, the core, metrics and GC:`,
        least('HTTPS', httpsFloor),
        least('channel', channelFloor),
        `what the lab's daemons used over the same ${windowS.toFixed(0)} s: ${used.map((u) => `${u.name} ${u.pct.toFixed(2)} %`).join(', ')}`,
      ].join('\n'),
    );
  });
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
