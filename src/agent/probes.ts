// Probes with hard deadlines: a hung connection must never stall a round.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentObservation } from '../core/types.js';
import type { KeptClient } from '../postgres/client.js';
import type { PgControl } from '../postgres/control.js';

/** A standby within this much WAL of the primary counts as caught up (sync is then restored). */
export const CAUGHT_UP_BYTES = 16 * 1024 * 1024;

export interface LocalDetails {
  timeline: number | null;
  lsn: string | null;
  replayLagBytes: number | null;
  syncState: string | null;
  syncNames: string | null;
  /** A primary's client sessions over IPv4 TCP ("A.B.C.D:port"), each round: the ones a new VIP
   *  holder resets (src/vip/vip.ts). A superset of the VIP's clients (pg_stat_activity does not
   *  say which address a session reached), which costs nothing: a reset for a connection to
   *  another address matches no socket and is dropped. Empty on a standby. */
  tcpClients: string[];
}

export type LocalObservation = AgentObservation['local'] & { details: LocalDetails };

/**
 * How long commits have waited for the synchronous standby. pg_stat_activity has no "waiting
 * since", and the query_start of an autocommit statement includes its execution (a 10 s bulk
 * INSERT would look like a 10 s stall at its first wait): each wait is timed from the first
 * probe that saw it instead, at most one probe interval late.
 */
export class SyncWaitClock {
  private firstSeen = new Map<string, number>();

  /** `waits`: one key per waiting commit (backend pid and query_start); returns the oldest age. */
  update(waits: readonly string[], now: number): number {
    const next = new Map<string, number>();
    let oldest = 0;
    for (const key of waits) {
      const since = this.firstSeen.get(key) ?? now;
      next.set(key, since);
      oldest = Math.max(oldest, now - since);
    }
    this.firstSeen = next;
    return oldest;
  }
}

/** The local server, seen through its socket (on the agent's kept connection `kept`); the
 *  postmaster's pid tells "down" from "busy/starting". */
export async function probeLocal(
  ctl: PgControl,
  kept: KeptClient,
  peer: string,
  timeoutMs: number,
  waitClock: SyncWaitClock,
): Promise<LocalObservation> {
  const standbySignal = existsSync(join(ctl.pg.data_dir, 'standby.signal'));
  const details: LocalDetails = {
    timeline: null,
    lsn: null,
    replayLagBytes: null,
    syncState: null,
    syncNames: null,
    tcpClients: [],
  };
  try {
    const rows = await kept.query<{
      in_recovery: boolean;
      sync_names: string;
      tli: number;
      lsn: string;
      rep_state: string | null;
      sync_state: string | null;
      lag: string | null;
      flush_lsn: string | null;
      current_lsn: string | null;
      sync_waits: string[];
      receiving: boolean | null;
      tcp_clients: string[];
    }>(
      { ...ctl.local(timeoutMs), connectTimeoutMs: timeoutMs },
      `SELECT pg_is_in_recovery() AS in_recovery,
              current_setting('synchronous_standby_names') AS sync_names,
              -- The timeline it is on. Not the control file's checkpoint alone: it lags until the
              -- next checkpoint or restartpoint (a promotion does not wait for one; pg_rewind
              -- copies the source's), so a standby read 4 after 5 once its receiver stopped (the
              -- soak's monotonic check caught it). A standby follows the newest timeline whose
              -- history file it holds (recovery_target_timeline = latest).
              (CASE WHEN pg_is_in_recovery() THEN
                 greatest((SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1),
                          (SELECT timeline_id FROM pg_control_checkpoint()),
                          (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
                          (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir()
                            WHERE name ~ '^[0-9A-F]{8}[.]history$'))
               ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
               END) AS tli,
              (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
              r.state AS rep_state, r.sync_state, r.flush_lsn::text AS flush_lsn,
              (CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END)::text AS current_lsn,
              -- the commits waiting for the synchronous standby, one key per wait
              (SELECT coalesce(array_agg(pid::text || '@' || query_start::text), '{}')
                 FROM pg_stat_activity WHERE wait_event = 'SyncRep') AS sync_waits,
              (CASE WHEN pg_is_in_recovery() THEN NULL
                    ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn) END)::text AS lag,
              (SELECT status = 'streaming' FROM pg_stat_wal_receiver LIMIT 1) AS receiving,
              -- a primary's client sessions over IPv4 TCP (what the peer's /health schema takes)
              (SELECT coalesce(array_agg(host(client_addr) || ':' || client_port), '{}')
                 FROM pg_stat_activity
                WHERE backend_type = 'client backend' AND client_port > 0
                  AND family(client_addr) = 4 AND NOT pg_is_in_recovery()) AS tcp_clients
         FROM (SELECT 1) one
         LEFT JOIN pg_stat_replication r ON r.application_name = $1`,
      [peer],
      'pgarbiter_probe_local',
    );
    const row = rows[0]!;
    const lag = row.lag === null ? null : Number(row.lag);
    details.timeline = row.tli;
    details.lsn = row.lsn;
    details.replayLagBytes = lag;
    details.syncState = row.sync_state;
    details.syncNames = row.sync_names;
    details.tcpClients = row.tcp_clients;
    return {
      up: true,
      inRecovery: row.in_recovery,
      peerReplication: row.rep_state
        ? {
            state: row.rep_state,
            syncState: row.sync_state ?? '',
            caughtUp: lag !== null && lag <= CAUGHT_UP_BYTES,
            flushLsn: row.flush_lsn,
          }
        : null,
      syncNamesActive: row.sync_names.trim() !== '',
      syncWaitMs: waitClock.update(row.sync_waits, Date.now()),
      currentLsn: row.current_lsn,
      receiving: row.receiving === true,
      standbySignal,
      details,
    };
  } catch {
    // No answer: running (starting up, recovering, overloaded) or really down?
    const running = await ctl.isRunning().catch(() => false);
    return {
      up: running,
      inRecovery: null,
      peerReplication: null,
      syncNamesActive: false,
      syncWaitMs: 0,
      currentLsn: null,
      receiving: false,
      standbySignal,
      details,
    };
  }
}
