// The multi-step procedures of an agent: promotion, rejoin (rewind or base backup) and the
// primary's side of a switchover. Each step is logged with its duration.

import type { ApiClient } from '../api/client.js';
import type { Config } from '../config.js';
import { hostOf } from '../config.js';
import { lsnAtLeast } from '../core/lsn.js';
import { errorText, KeptClient, queryOnce } from '../postgres/client.js';
import type { PgControl } from '../postgres/control.js';
import { probePrimaryPg } from '../postgres/probe.js';
import { slotName, syncStandbyNames } from '../postgres/settings.js';
import { sleep } from '../util/exec.js';
import type { Logger } from '../util/log.js';
import { pollUntil } from '../util/poll.js';

async function timed<T>(log: Logger, step: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  const r = await fn();
  log.info({ step, ms: Date.now() - t0 }, `${step} done in ${Date.now() - t0} ms`);
  return r;
}

/** Promote the local standby: sync names cleared first (a promoted standby inherits them and every
 *  write would hang), then pg_ctl promote. Nothing here waits for a CHECKPOINT: the new primary is
 *  writable, and routed to, the moment the promotion ends. The CHECKPOINT that pg_rewind needs
 *  (the new timeline in the control file) is run by the old primary's rejoin on this node, right
 *  before it rewinds. `query` runs SQL on the local server, also to see the promotion end (the
 *  agent's kept connection: a new one is a TLS and SCRAM exchange, tens of ms on the critical
 *  path). The peer's replication slot is the caller's next step (ensureSlot), once HAProxy can
 *  route here: the peer needs it only when it streams again, a second later. */
export async function promoteLocal(
  ctl: PgControl,
  query: (sql: string) => Promise<unknown>,
  log: Logger,
): Promise<void> {
  const t0 = Date.now();
  await query("ALTER SYSTEM SET synchronous_standby_names = ''");
  await query('SELECT pg_reload_conf()');
  const leftRecovery = async () => {
    const rows = (await query('SELECT pg_is_in_recovery() AS in_recovery')) as { in_recovery: boolean }[];
    return rows[0]?.in_recovery === false;
  };
  await timed(log, 'pg_ctl promote', () => ctl.promote(leftRecovery));
  log.warn({ ms: Date.now() - t0 }, `promoted to primary in ${Date.now() - t0} ms`);
}

export async function ensureSlot(ctl: PgControl, peer: string): Promise<void> {
  await ctl.query(
    `SELECT pg_create_physical_replication_slot($1, true)
      WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
    [slotName(peer)],
  );
}

export async function setSyncNames(ctl: PgControl, on: boolean): Promise<void> {
  const value = on ? syncStandbyNames(ctl.cfg) : '';
  await ctl.query(`ALTER SYSTEM SET synchronous_standby_names = '${value.replace(/'/g, "''")}'`);
  await ctl.query('SELECT pg_reload_conf()');
}

export interface RejoinResult {
  method: 'rewind' | 'basebackup';
  discardedCommits: number | null;
  ms: number;
}

/** Old primary -> standby of `primary`. The caller has fenced this node. */
export async function rejoin(
  ctl: PgControl,
  cfg: Config,
  primary: string,
  log: Logger,
): Promise<RejoinResult> {
  const t0 = Date.now();
  const host = hostOf(cfg, primary);
  // The new primary must be up and promoted, and checkpointed (else pg_rewind says "no rewind
  // required" and the old primary loops on a forked timeline: research pitfall 9).
  if (!(await probePrimaryPg(ctl, host, 2000)))
    throw new Error(`new primary ${primary} is not reachable as a primary yet`);
  await queryOnce(ctl.remote(host, 30_000), 'CHECKPOINT');

  let discardedCommits: number | null = null;
  if (ctl.hasData()) {
    if (await ctl.isRunning()) await timed(log, 'stop old primary', () => ctl.stop('fast'));
    discardedCommits = await countDiscarded(ctl, host, log);
  }

  let method: RejoinResult['method'] = 'rewind';
  try {
    if (!ctl.hasData()) throw new Error('no data directory');
    const out = await timed(log, 'pg_rewind', () => ctl.rewind(host));
    log.info({ output: out.trim().split('\n').slice(-3).join(' | ') }, 'pg_rewind finished');
    ctl.writeNodeConfig(host);
    // A rewound node that cannot find the WAL it must replay never becomes consistent: give up
    // after 20 s and take the base backup rather than waiting pg_ctl's usual minute.
    await timed(log, 'start as standby', () => ctl.start(20));
    if (!(await waitStreaming(ctl, 20_000))) throw new Error('not streaming 20 s after the rewind');
  } catch (e) {
    log.warn(
      { err: (e as Error).message },
      `pg_rewind path failed: ${(e as Error).message}; falling back to a fresh base backup`,
    );
    method = 'basebackup';
    await ctl.stop('immediate').catch(() => {});
    await timed(log, 'pg_basebackup', () => ctl.baseBackup(host));
    ctl.writeNodeConfig(host);
    await timed(log, 'start as standby', () => ctl.start());
    if (!(await waitStreaming(ctl, 30_000))) throw new Error('not streaming 30 s after a fresh base backup');
  }
  const ms = Date.now() - t0;
  log.warn(
    { method, discardedCommits, ms },
    `rejoined as standby of ${primary} by ${method} in ${ms} ms` +
      (discardedCommits
        ? `; ${discardedCommits} transactions committed here after the fork were discarded`
        : ''),
  );
  return { method, discardedCommits, ms };
}

function waitStreaming(ctl: PgControl, timeoutMs: number): Promise<boolean> {
  return pollUntil(
    async () =>
      (await ctl.query<{ s: string }>('SELECT status AS s FROM pg_stat_wal_receiver', [], 1000))[0]?.s ===
      'streaming',
    timeoutMs,
    200,
  );
}

/** Transactions this node committed after the new primary's timeline forked off: a rewind
 *  discards them (possible only without synchronous replication). Counted with pg_waldump. */
async function countDiscarded(ctl: PgControl, primaryHost: string, log: Logger): Promise<number | null> {
  try {
    const local = await ctl.controlData();
    const rows = await queryOnce<{ tli: number }>(
      ctl.remote(primaryHost, 5000),
      'SELECT timeline_id AS tli FROM pg_control_checkpoint()',
    );
    const newTli = rows[0]?.tli;
    if (!newTli || newTli <= local.timeline) return 0;
    const hist = await queryOnce<{ h: string }>(
      ctl.remote(primaryHost, 5000),
      'SELECT pg_read_file($1) AS h',
      [`pg_wal/${newTli.toString(16).toUpperCase().padStart(8, '0')}.history`],
    );
    // history lines: "<parent tli>\t<switchpoint lsn>\t<reason>"
    const line = (hist[0]?.h ?? '')
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find((f) => Number(f[0]) === local.timeline);
    if (!line?.[1]) return null;
    const { commits } = await ctl.countCommitsAfter(line[1], local.timeline);
    return commits;
  } catch (e) {
    log.warn({ err: errorText(e) }, 'could not count the transactions a rewind discards');
    return null;
  }
}

/** The agent's record of its handover requests (AgentState.handoverSeq, handoverUnsettledTerm). */
export interface HandoverTracker {
  /** The number of the last handover request sent. */
  lastSeq(): number;
  /** A handover request is about to go out: its number, once the state saying so is on disk. */
  sending(): number;
  /** No handover sent so far can take effect any more (answered, or voided by a confirmation). */
  settled(): void;
}

/** Primary side of a switchover. On success the arbiter names `to` primary of term+1. */
export async function handover(
  ctl: PgControl,
  cfg: Config,
  to: string,
  term: number,
  api: ApiClient,
  log: Logger,
  track: HandoverTracker,
): Promise<boolean> {
  const t0 = Date.now();
  // The standby loses our server while we stop: the arbiter must not grant it a failover in the
  // meantime. A confirmation counts as contact, so no grant for failover_timeout from now. It also
  // voids any earlier handover of ours still on its way.
  const hold = (
    await api.arbiterPost(
      'confirmPrimary',
      { node: cfg.node, term, voidHandoversUpTo: track.lastSeq() },
      1000,
    )
  ).body;
  if (!hold.ok) {
    log.warn({ reason: hold.reason }, `switchover aborted before stopping: ${hold.reason}`);
    return false;
  }
  track.settled();
  const budget = cfg.timing.failoverTimeoutMs - cfg.timing.probeIntervalMs - 500;
  const host = hostOf(cfg, to);
  const end = t0 + budget;
  let replayed = false;
  let checkpointLsn = '';
  // One connection for the polls (a fresh one each is a SCRAM exchange: most of a poll), opened
  // while we stop: the pause of the writes includes everything from here to the promotion.
  const conn = new KeptClient();
  const replayLsn = () =>
    conn
      .query<{ lsn: string | null }>(ctl.remote(host, 1000), 'SELECT pg_last_wal_replay_lsn()::text AS lsn')
      .catch(() => []);
  try {
    const warm = replayLsn();
    // Clean shutdown: the shutdown checkpoint is streamed to the standby before the walsender ends.
    await timed(log, 'stop primary for switchover', () => ctl.stop('fast'));
    await warm;
    checkpointLsn = (await ctl.controlData()).checkpointLsn;
    while (Date.now() < end && !replayed) {
      const rows = await replayLsn();
      const lsn = rows[0]?.lsn;
      replayed = lsnAtLeast(lsn ?? null, checkpointLsn);
      if (!replayed) await sleep(20);
    }
  } finally {
    conn.close();
  }
  if (!replayed) {
    log.warn(
      { checkpointLsn },
      `switchover aborted: ${to} did not replay up to ${checkpointLsn} within ${budget} ms`,
    );
    return false;
  }
  const seq = track.sending();
  const r = await api.arbiterPost('handover', { node: cfg.node, to, term, seq }, 1000);
  // Unanswered, it may still arrive: until a confirmation voids it we unfence only through the
  // arbiter (AgentState.handoverUnsettledTerm).
  if (r.answered) track.settled();
  const reply = r.body;
  if (!reply.ok) {
    log.warn({ reason: reply.reason }, `switchover aborted: arbiter refused: ${reply.reason}`);
    return false;
  }
  log.warn(
    { ms: Date.now() - t0, term: term + 1 },
    `switchover: handed term ${term + 1} to ${to} in ${Date.now() - t0} ms`,
  );
  return true;
}
