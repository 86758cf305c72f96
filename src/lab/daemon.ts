// Long-running processes inside a lab host: started detached (own session, output to a log
// file, a pid file), stopped by PID only: SIGTERM, then SIGKILL after a grace period.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inNetns, run, sleep } from '../util/exec.js';
import { pidAlive, procStartTime, terminate } from './proc.js';
import { type DaemonRecord, type Lab, saveLab } from './state.js';
import type { HostName } from './topology.js';

/** The compiled CLI entry point (dist/src/cli/main.js), absolute. */
export const CLI_MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** argv that runs our own CLI with the same node binary: usable inside a host namespace. */
export function selfArgv(...args: string[]): string[] {
  return [process.execPath, CLI_MAIN, ...args];
}

/** argv prefix that runs a command inside a lab host's namespace. */
export function hostArgv(lab: Lab, host: HostName, argv: string[]): string[] {
  return inNetns(lab.hosts[host].ns, argv);
}

// A background job of a non-interactive shell is not a process-group leader, so `setsid` makes
// it a session leader without forking, and `ip netns exec` execs: $! is the daemon's own PID.
const LAUNCHER =
  'ns=$1; log=$2; pidf=$3; shift 3; ip netns exec "$ns" setsid "$@" </dev/null >>"$log" 2>&1 & ' +
  'echo $! >"$pidf"; echo $!';

export interface StartDaemonOptions {
  env?: NodeJS.ProcessEnv;
  /** How long the process must stay alive to count as started (default 300 ms). */
  settleMs?: number;
}

/** Starts argv detached inside `host`, records it in lab.json, and returns its record. */
export async function startDaemon(
  lab: Lab,
  host: HostName,
  name: string,
  argv: string[],
  logFile: string,
  opts: StartDaemonOptions = {},
): Promise<DaemonRecord> {
  const existing = lab.daemons[name];
  if (existing && procStartTime(existing.pid) === existing.startTime && pidAlive(existing.pid))
    return existing;
  const pidFile = join(lab.hosts[host].dir, `${name}.pid`);
  const r = await run(['bash', '-c', LAUNCHER, 'launcher', lab.hosts[host].ns, logFile, pidFile, ...argv], {
    timeoutMs: 10_000,
    env: opts.env,
  });
  const pid = Number(r.stdout.trim());
  if (!Number.isInteger(pid) || pid <= 0)
    throw new Error(`could not start ${name} in ${host}: ${r.stdout}${r.stderr}`);
  const startTime = procStartTime(pid) ?? '';
  const rec: DaemonRecord = { host, name, pid, startTime, argv, logFile, pidFile };
  lab.daemons[name] = rec;
  saveLab(lab);
  await sleep(opts.settleMs ?? 300);
  if (!pidAlive(pid)) {
    const tail = existsSync(logFile)
      ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n')
      : '';
    throw new Error(`${name} in ${host} exited right after start (log ${logFile}):\n${tail}`);
  }
  return rec;
}

/** Stops a daemon started by startDaemon: by its PID, and only if the PID is still that process. */
export async function stopDaemon(lab: Lab, name: string, graceMs = 5000): Promise<boolean> {
  const rec = lab.daemons[name];
  if (!rec) return true;
  let gone = true;
  if (procStartTime(rec.pid) === rec.startTime) gone = await terminate(rec.pid, graceMs);
  if (gone) {
    delete lab.daemons[name];
    rmSync(rec.pidFile, { force: true });
    saveLab(lab);
  }
  return gone;
}

export function daemonAlive(rec: DaemonRecord): boolean {
  return procStartTime(rec.pid) === rec.startTime && pidAlive(rec.pid);
}
