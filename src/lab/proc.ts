// Processes and namespaces, looked at and signalled by PID only (never by name).
import { readdirSync, readFileSync } from 'node:fs';
import { run, sleep } from '../util/exec.js';

/** Field 22 of /proc/PID/stat (start time in clock ticks), or null if the process is gone. */
export function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: split after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** Alive and not a zombie (PID 1 here reaps slowly: a zombie counts as gone). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Waits until every pid is gone (or a zombie); returns those still alive at the deadline. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(pidAlive);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(20);
    left = left.filter(pidAlive);
  }
  return left;
}

/** SIGTERM, then SIGKILL after the grace period. True when the process is gone. */
export async function terminate(pid: number, graceMs = 5000): Promise<boolean> {
  if (!pidAlive(pid)) return true;
  signal(pid, 'SIGTERM');
  if ((await waitGone([pid], graceMs)).length === 0) return true;
  signal(pid, 'SIGKILL');
  return (await waitGone([pid], 2000)).length === 0;
}

export async function listNetns(): Promise<string[]> {
  const r = await run(['ip', '-j', 'netns', 'list'], { timeoutMs: 5000 });
  const text = r.stdout.trim();
  if (!text) return [];
  return (JSON.parse(text) as { name: string }[]).map((n) => n.name);
}

export async function netnsPids(ns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', ns], { timeoutMs: 5000, allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid);
}

/** The namespace names a PID is in (`ip netns identify`), empty when none / gone. */
export async function netnsOf(pid: number): Promise<string[]> {
  const r = await run(['ip', 'netns', 'identify', String(pid)], { timeoutMs: 5000, allowFailure: true });
  return r.code === 0 ? r.stdout.split(/\s+/).filter(Boolean) : [];
}

/** PIDs whose parent is `ppid` (from /proc). */
export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
