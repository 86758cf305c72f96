// Types shared by the pure decision core, the agents and the arbiter. No I/O here.
import type { RuleId } from './rules.js';

/** The arbiter's persisted cluster record (README "How it works"). */
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

/** What the arbiter's `/state` says to an agent: its record, and how long ago it last reached the
 *  recorded primary's PostgreSQL or confirmed its term (null: not since it started or woke). */
export interface ArbiterView {
  record: ClusterRecord;
  primaryVouchedMsAgo: number | null;
}

/** A standby's word that it reaches the primary's PostgreSQL: `seenMsAgo` ms ago, in `term`. */
export interface Vouch {
  primary: string;
  term: number;
  seenMsAgo: number;
}

/** What the peer database node's agent says on `/health`: its record (a term is a fact anyone
 *  may carry) and its vouch for the primary, if it is the standby and vouches. */
export interface PeerHealth {
  node: string;
  record: ClusterRecord;
  vouch: Vouch | null;
}

/** What a database node's agent saw in one probe round. */
export interface AgentObservation {
  /** When the round's probes went out: answers that say "ms ago" are converted to our clock from
   *  here (they arrived later, so the estimate errs early). */
  startedAt: number;
  /** When the probes had all answered. */
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
  /** Our fence rule is present. */
  fenced: boolean;
  /** The arbiter's answer, or null when it did not answer. */
  arbiter: ArbiterView | null;
  /** The peer database node's agent's answer, or null when it did not answer. */
  peer: PeerHealth | null;
  /** The PostgreSQL server of the node the record names primary answered as a writable primary
   *  (probed over the network; only meaningful on the standby). */
  primaryPgOk: boolean;
}

/** What an agent keeps on disk across restarts. */
export interface PersistedAgentState {
  record: ClusterRecord;
  /** See AgentState.promotionAskedInTerm: a grant may have been given to a request whose answer
   *  a crash lost, so a restarted standby must not vouch in that term either. */
  promotionAskedInTerm: number | null;
  /** See AgentState.handoverSeq and handoverUnsettledTerm (absent in older files: 0 and null). */
  handoverSeq?: number;
  handoverUnsettledTerm?: number | null;
}

/** What the agent remembers between rounds. */
export interface AgentState {
  /** Last record known (from the arbiter or the peer, or persisted locally). */
  record: ClusterRecord;
  lastArbiterOkAt: number;
  lastPeerOkAt: number;
  lastPrimaryPgOkAt: number;
  /** Primary side: the latest moment (our clock) at which a peer is known to have reached our
   *  PostgreSQL: the arbiter's or the standby's own probe of it, or the arbiter confirming our
   *  term. Reaching the peers' agents is not enough to keep serving: if neither of them reaches
   *  our PostgreSQL (packet loss, a port filter, an overloaded server), they will fail over, so
   *  we fence first. */
  lastVouchedAt: number;
  /** Primary side: when the arbiter last confirmed our term, granted it, or a person forced it. */
  confirmedAt: number | null;
  /** Standby side: when our own probe last reached `node`'s PostgreSQL in `term` (what /health
   *  vouches for). */
  primarySeen: { node: string; term: number; at: number } | null;
  /** Standby side: the term in which a promotion request went out. No vouching in that term
   *  until the arbiter refused it or is seen reaching the primary again: a grant may be in flight. */
  promotionAskedInTerm: number | null;
  /** A person's requests, carried out by the next round. */
  requests: { switchover: boolean; rejoin: boolean };
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
  /** Primary side: the number of the last switchover handover request sent (persisted). A
   *  confirmation request names it, and the arbiter then refuses every handover up to it: a
   *  handover whose sender gave up on it (no answer) can still arrive later (TCP retransmits it
   *  after a cut heals) and must not hand over a term its sender serves again. */
  handoverSeq: number;
  /** Primary side: the term of a handover request sent whose answer never came (persisted). Until
   *  the arbiter confirms us again (which voids it) or a newer term is known, we unfence only on
   *  the arbiter's confirmation, not on the standby's vouch. */
  handoverUnsettledTerm: number | null;
}

/** What an agent asks the arbiter (the reply goes to agentOnReply). */
export type AgentRequest =
  | { kind: 'confirmPrimary'; node: string; term: number; voidHandoversUpTo: number }
  | { kind: 'promote'; node: string; term: number }
  | { kind: 'setPromotable'; node: string; term: number; promotable: boolean }
  | { kind: 'adopt'; record: ClusterRecord };

/** The arbiter's answer to an agent's request; null when it did not answer (timeout, refused
 *  connection): then nobody knows whether it acted. */
export interface ArbiterReply {
  ok: boolean;
  reason: string;
  record?: ClusterRecord;
}

export type AgentAction =
  /** Insert the fence rule, then terminate client backends. */
  | { kind: 'fence'; rule: RuleId; reason: string }
  /** Remove the fence rule. */
  | { kind: 'unfence'; rule: RuleId; reason: string }
  /** Start the local server as it is configured (fenced first when primary). */
  | { kind: 'startPostgres'; rule: RuleId; reason: string }
  /** Send a request to the arbiter and hand its reply to agentOnReply. `why`: what it is for. */
  | { kind: 'ask'; rule: RuleId; request: AgentRequest; why: AskPurpose }
  /** Promote the local standby (sync names cleared first, then pg_ctl promote). */
  | { kind: 'promote'; rule: RuleId; term: number }
  /** Set (on) or clear (off) synchronous_standby_names. */
  | { kind: 'setSync'; rule: RuleId; on: boolean }
  /** Stop, rewind (or base backup) from the new primary, start as its standby, then unfence. */
  | { kind: 'rejoin'; rule: RuleId; primary: string; reason: string }
  /** Planned handover to the standby: fence, stop cleanly, wait for replay, arbiter handover. */
  | { kind: 'handover'; rule: RuleId; to: string; term: number }
  /** The kernel-side lease (src/fence/lease.ts): clients may be served until `until` (our clock,
   *  ms since the epoch); null: no lease is needed (a running standby), remove it. */
  | { kind: 'lease'; rule: RuleId; until: number | null }
  /** A state worth a log line, without an action. */
  | { kind: 'note'; rule: RuleId; level: 'info' | 'warn'; msg: string };

/** Why an `ask` was sent: decides what its reply means. */
export type AskPurpose = 'unfence' | 'promote' | 'degradeSync' | 'setPromotable' | 'adopt';

export interface AgentSettings {
  me: string;
  timing: CoreTiming;
  /** synchronous_commit is on/remote_write/remote_apply. */
  syncReplication: boolean;
  /** Never drop synchronous replication. */
  strictSync: boolean;
  autoRejoin: boolean;
  /** The lease's duration (fence_timeout + probe_interval + fence_action_budget), counted from
   *  the last moment a peer is known to have reached our PostgreSQL; absent: `lease: off`. */
  leaseMs?: number;
}

/** Where an agent is, one word for status displays and logs. */
export type AgentPhase =
  | 'starting'
  | 'primary'
  | 'promoting'
  | 'primary-starting'
  | 'primary-down'
  | 'restarting'
  | 'fenced'
  | 'fenced-isolated'
  | 'fenced-unreached'
  | 'standby'
  | 'standby-catching-up'
  | 'standby-starting'
  | 'standby-down'
  | 'standby-primary-lost'
  | 'requesting-promotion'
  | 'rejoining'
  | 'needs-rejoin';

export interface Decision {
  state: AgentState;
  actions: AgentAction[];
  phase: AgentPhase;
  /** The rule that decided this round's phase. */
  rule: RuleId;
}
