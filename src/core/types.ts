// Types shared by the pure decision core, the agents and the arbiter. No I/O here.

/** The arbiter's persisted cluster record (DESIGN.md "The protocol"). */
export interface ClusterRecord {
  term: number;
  primary: string;
  standby: string;
  /** May the standby be promoted without losing acknowledged writes? */
  standbyPromotable: boolean;
  /** Automatic failover and fencing paused by a person. */
  maintenance: boolean;
}

export interface CoreTiming {
  probeIntervalMs: number;
  fenceTimeoutMs: number;
  failoverTimeoutMs: number;
  syncStallTimeoutMs: number;
}

/** What a database node's agent saw in one probe round. */
export interface AgentObservation {
  now: number;
  /** The local PostgreSQL server. */
  local: {
    /** Answered a query over its local socket. */
    up: boolean;
    inRecovery: boolean | null;
    /** Primary side: the peer's row in pg_stat_replication, if any. `flushLsn`: how far the
     *  standby has flushed WAL ('X/Y' as PostgreSQL prints it). */
    peerReplication: { state: string; syncState: string; caughtUp: boolean; flushLsn: string | null } | null;
    /** Primary side: synchronous_standby_names is non-empty. */
    syncNamesActive: boolean;
    /** Primary side: how long the oldest commit now waiting for the synchronous standby has
     *  waited (0: none), timed from the first probe that saw it. A frozen or silently cut
     *  standby keeps its walsender "streaming" until wal_sender_timeout; the waiting commits
     *  show the stall at once. */
    syncWaitMs: number;
    /** Primary side: pg_current_wal_lsn() of this round, else null. */
    currentLsn: string | null;
    /** Standby side: pg_stat_wal_receiver says streaming. */
    receiving: boolean;
    /** The data directory holds standby.signal (it starts as a standby). */
    standbySignal: boolean;
  };
  /** Our iptables fence rule is present. */
  fenced: boolean;
  /** The arbiter's record, or null when the arbiter did not answer. */
  arbiter: ClusterRecord | null;
  /** The peer database node's agent answered. */
  peerAgentOk: boolean;
  /** Primary side: the latest moment (our clock, rounded down) at which a peer is known to have
   *  reached our PostgreSQL: the arbiter's or the standby's own probe of it, or the arbiter
   *  confirming our term. null: nobody vouched this round. */
  vouchedAt: number | null;
  /** The PostgreSQL server of the node the record names primary answered as a writable primary
   *  (probed over the network; only meaningful on the standby). */
  primaryPgOk: boolean;
  /** A person asked this node (as primary) to hand over to the standby. */
  switchoverRequested: boolean;
}

/** What the agent remembers between rounds. */
export interface AgentState {
  /** Last record known (from the arbiter, or persisted locally). */
  record: ClusterRecord;
  lastArbiterOkAt: number;
  lastPeerOkAt: number;
  lastPrimaryPgOkAt: number;
  /** Primary side: the latest vouch (see AgentObservation.vouchedAt). Reaching the peers' agents
   *  is not enough to keep serving: if neither of them reaches our PostgreSQL (packet loss, a
   *  port filter, an overloaded server), they will fail over, so we fence first. */
  lastVouchedAt: number;
  /** When the previous round ran: a late round means the process was paused. */
  lastRoundAt: number;
  /** When the synchronous standby stopped acknowledging (primary side). */
  syncStallSince: number | null;
  /** Primary side, sync on again but the standby not yet promotable: it becomes promotable once
   *  it has flushed past this LSN, i.e. holds every commit acknowledged while sync was off
   *  (sync_state = 'sync' alone says nothing about those). */
  promotableAtLsn: string | null;
  /** Standby side: since when it has not been receiving WAL while the primary is reachable. */
  notReceivingSince: number | null;
}

export type AgentAction =
  /** Insert the iptables rule, then terminate client backends. */
  | { kind: 'fence'; reason: string }
  /** Ask the arbiter to confirm our term as primary; remove the fence only if it does. */
  | { kind: 'unfenceAsPrimary' }
  /** Remove the fence: a standby accepts no writes. */
  | { kind: 'unfenceAsStandby' }
  /** Start the local server as it is configured (fenced first when primary). */
  | { kind: 'startPostgres'; reason: string }
  /** Ask the arbiter for a promotion grant; promote only with it. */
  | { kind: 'requestPromotion'; term: number }
  /** The record names us primary of a newer term (a handover): promote. */
  | { kind: 'promote'; term: number }
  /** Arbiter first marks the standby not promotable, then synchronous_standby_names is cleared. */
  | { kind: 'degradeSync'; term: number }
  /** Set synchronous_standby_names again; promotable comes later (see promotableAtLsn). */
  | { kind: 'restoreSync'; term: number }
  /** Tell the arbiter whether the standby is promotable (async modes, and after restarts). */
  | { kind: 'setPromotable'; term: number; promotable: boolean }
  /** Stop, rewind (or base backup) from the new primary, start as its standby, then unfence. */
  | { kind: 'rejoin'; primary: string; reason: string }
  /** Planned handover to the standby: fence, stop cleanly, wait for replay, arbiter handover. */
  | { kind: 'handover'; to: string; term: number }
  /** A state worth a log line, without an action. */
  | { kind: 'note'; level: 'info' | 'warn'; msg: string };

export interface AgentSettings {
  me: string;
  timing: CoreTiming;
  /** synchronous_commit is on/remote_write/remote_apply. */
  syncReplication: boolean;
  /** Never drop synchronous replication. */
  strictSync: boolean;
  autoRejoin: boolean;
}

export interface Decision {
  state: AgentState;
  actions: AgentAction[];
  /** One word for status displays. */
  phase: string;
}
