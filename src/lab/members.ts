// The lab's "stop" and "kill" failure modes: a database host's PostgreSQL and/or its agent, or
// the arbiter, stopped as their owner would (SIGTERM; `pg_ctl stop -m fast`) or killed at once
// (kill -9), and started again. Only processes the lab started, by PID.
import { UserError } from '../util/errors.js';
import { daemonAlive, stopDaemon } from './daemon.js';
import { postmasterPid, startAgent, stopPostgres } from './lab.js';
import { childrenOf, pidAlive, signal, waitGone } from './proc.js';
import type { Lab } from './state.js';
import type { HostName, MemberHost, PG_HOSTS } from './topology.js';

/** What to stop on a database host: both (what `docker compose stop` did), or one of them. */
export type MemberPart = 'both' | 'postgres' | 'agent';

export function assertMemberHost(host: HostName): MemberHost {
  if (host === 'client')
    throw new UserError('the client host runs no cluster member: use pg1, pg2 or arbiter');
  return host;
}

const daemonName = (host: MemberHost) => (host === 'arbiter' ? 'arbiter' : `agent-${host}`);

/** Stops (or with `kill`, kill -9s) a member; returns what was done, in one line. */
export async function stopMember(
  lab: Lab,
  host: MemberHost,
  o: { part?: MemberPart; kill?: boolean; graceS?: number } = {},
): Promise<string> {
  const part = o.part ?? 'both';
  if (host === 'arbiter' && part === 'postgres')
    throw new UserError('the arbiter host runs no PostgreSQL: stop the arbiter itself (no --postgres)');
  const name = daemonName(host);
  const rec = lab.daemons[name];
  const daemonPid = rec && daemonAlive(rec) ? rec.pid : null;
  const pgHost = host === 'arbiter' ? null : host;
  const withDaemon = part !== 'postgres';
  const withPg = pgHost !== null && part !== 'agent';
  const pm = withPg && pgHost ? postmasterPid(lab, pgHost) : null;
  const what = host === 'arbiter' ? 'the arbiter' : 'the agent';

  if (o.kill) {
    const pids = [...(withDaemon && daemonPid ? [daemonPid] : []), ...(pm ? [pm, ...childrenOf(pm)] : [])];
    for (const p of pids) signal(p, 'SIGKILL');
    const left = await waitGone(pids, 5000);
    if (withDaemon) await stopDaemon(lab, name, 1000); // forgets the dead daemon's record
    const parts = [
      withDaemon ? `${what} ${daemonPid ? `(pid ${daemonPid})` : '(not running)'}` : null,
      withPg ? `PostgreSQL ${pm ? `(postmaster ${pm} and its children)` : '(not running)'}` : null,
    ].filter(Boolean);
    return `kill -9 of ${parts.join(' and ')}${left.length ? `; still alive: ${left.join(' ')}` : ''}`;
  }

  const graceS = o.graceS ?? 10;
  const [daemonOut, pgOut] = await Promise.all([
    withDaemon
      ? stopDaemon(lab, name, graceS * 1000).then((gone) =>
          daemonPid
            ? `${what} (pid ${daemonPid}) ${gone ? 'stopped (SIGTERM)' : 'did NOT stop'}`
            : `${what} was not running`,
        )
      : null,
    withPg && pgHost ? stopPostgresFast(lab, pgHost, graceS) : null,
  ]);
  return [daemonOut, pgOut].filter(Boolean).join(', ');
}

/** A fast shutdown (`pg_ctl stop -m fast`: SIGINT to the postmaster); SIGKILL after the grace. */
async function stopPostgresFast(lab: Lab, host: (typeof PG_HOSTS)[number], graceS: number): Promise<string> {
  const pid = postmasterPid(lab, host);
  if (pid === null) return 'PostgreSQL was not running';
  const r = await stopPostgres(lab, host, 'fast', graceS);
  if (pidAlive(pid)) {
    signal(pid, 'SIGKILL');
    await waitGone([pid], 5000);
    return `PostgreSQL (pid ${pid}) did not stop within ${graceS} s: killed (pg_ctl: ${r.stderr.trim().split('\n').pop()})`;
  }
  return `PostgreSQL (pid ${pid}) stopped (fast)`;
}

/** Starts a member's daemon again: the arbiter, or an agent (which starts its PostgreSQL itself,
 *  fenced first if it was the primary). */
export async function startMember(lab: Lab, host: MemberHost): Promise<string> {
  const name = daemonName(host);
  const rec = lab.daemons[name];
  if (rec && daemonAlive(rec)) throw new UserError(`${name} in ${host} already runs (pid ${rec.pid})`);
  const started = await startAgent(lab, host);
  return `${name} started in ${host} (pid ${started.pid})${host === 'arbiter' ? '' : '; it starts PostgreSQL itself if it is down'}`;
}

/** Freezes (SIGSTOP) or thaws (SIGCONT) only a member's daemon, the agent or the arbiter: the
 *  "agent hung" fault (PostgreSQL keeps running). Returns the PID signalled. */
export function signalMemberDaemon(lab: Lab, host: MemberHost, sig: 'SIGSTOP' | 'SIGCONT'): number {
  const name = daemonName(host);
  const rec = lab.daemons[name];
  if (!rec || !daemonAlive(rec)) throw new UserError(`${name} in ${host} is not running`);
  signal(rec.pid, sig);
  return rec.pid;
}
