// The agent's Prometheus series (GET /metrics; the list is in the README, "Metrics"). The daemon
// calls round() once per probe round with its status, and one function per action it carried
// out; nothing here decides anything.
import { type Counter, type Gauge, Histogram, type Registry } from 'prom-client';
import type { AgentStatus } from '../api/protocol.js';
import { bool, metricMakers, newRegistry, orNaN, PROBE_BUCKETS, ROUND_BUCKETS } from './common.js';

/** What an agent probes each round (label `target` of the probe histogram). */
export const AGENT_PROBE_TARGETS = [
  'local_postgres',
  'fence',
  'arbiter',
  'peer_agent',
  'primary_postgres',
] as const;
export type AgentProbeTarget = (typeof AGENT_PROBE_TARGETS)[number];

/** pg_stat_replication.sync_state values, plus `none` (no standby connected, or a standby). */
const SYNC_STATES = ['sync', 'async', 'potential', 'quorum', 'none'] as const;

export class AgentMetrics {
  readonly registry: Registry;
  private readonly role: Gauge<'role'>;
  private readonly phase: Gauge<'phase'>;
  private readonly term: Gauge;
  private readonly timeline: Gauge;
  private readonly fenced: Gauge;
  private readonly pgUp: Gauge;
  private readonly pgInRecovery: Gauge;
  private readonly pgReceiving: Gauge;
  private readonly reachable: Gauge<'peer'>;
  private readonly lag: Gauge;
  private readonly syncState: Gauge<'state'>;
  private readonly syncNames: Gauge;
  private readonly commitsWaiting: Gauge;
  private readonly probeSeconds: Histogram<'target'>;
  private readonly roundSeconds: Histogram;
  private readonly fenceSeconds: Histogram;
  private readonly fences: Counter<'rule'>;
  private readonly fenceFailures: Counter<'rule'>;
  private readonly fenceOverruns: Counter;
  private readonly unfences: Counter<'rule'>;
  private readonly promotions: Counter<'rule'>;
  private readonly rejoins: Counter<'method'>;
  private readonly pgStarts: Counter<'rule'>;
  private readonly agentStarts: Counter;

  constructor(opts: { processMetrics?: boolean } = {}) {
    this.registry = newRegistry(opts.processMetrics ?? false);
    const { registers, gauge: g, counter: c } = metricMakers(this.registry);
    this.role = g(
      'pgarbiter_role',
      '1 for the role the record gives this node (primary or standby), else 0',
      ['role'],
    );
    this.phase = g('pgarbiter_phase', "1 for the agent's current phase (one series)", ['phase']);
    this.term = g('pgarbiter_term', 'The term of the cluster record this agent holds');
    this.timeline = g('pgarbiter_timeline', "Local PostgreSQL's timeline (NaN: unknown)");
    this.fenced = g('pgarbiter_fenced', '1 while the fence rule is in place');
    this.pgUp = g('pgarbiter_postgres_up', '1 when the local PostgreSQL answers');
    this.pgInRecovery = g('pgarbiter_postgres_in_recovery', '1 standby, 0 primary, NaN unknown');
    this.pgReceiving = g('pgarbiter_postgres_receiving', '1 when the walreceiver streams (standby)');
    this.reachable = g('pgarbiter_peer_reachable', 'Did the last round reach this peer (1/0)', ['peer']);
    this.lag = g('pgarbiter_replication_lag_bytes', 'Replay lag of the standby in bytes (NaN: unknown)');
    this.syncState = g(
      'pgarbiter_replication_sync_state',
      "1 for the standby's sync_state in pg_stat_replication as the primary sees it (none: no standby)",
      ['state'],
    );
    this.syncNames = g('pgarbiter_synchronous_standby_names_set', '1 when synchronous_standby_names is set');
    this.commitsWaiting = g(
      'pgarbiter_commits_waiting_seconds',
      'How long the oldest commit now waiting for the synchronous standby has waited (0: none)',
    );
    this.probeSeconds = new Histogram({
      name: 'pgarbiter_probe_duration_seconds',
      help: 'Duration of each probe of a round, by target (a lost peer takes probe_timeout)',
      labelNames: ['target'],
      buckets: PROBE_BUCKETS,
      registers,
    });
    this.roundSeconds = new Histogram({
      name: 'pgarbiter_round_duration_seconds',
      help: 'Duration of a decision round: probes, decision and actions',
      buckets: ROUND_BUCKETS,
      registers,
    });
    this.fenceSeconds = new Histogram({
      name: 'pgarbiter_fence_duration_seconds',
      help: 'Duration of each fence action (rule plus session termination), bounded by fence_action_budget',
      buckets: PROBE_BUCKETS,
      registers,
    });
    this.fences = c('pgarbiter_fences_total', 'Fences put in place, by rule', ['rule']);
    this.fenceFailures = c('pgarbiter_fence_failures_total', 'Fence actions that failed, by rule', ['rule']);
    this.fenceOverruns = c(
      'pgarbiter_fence_overruns_total',
      'Fence actions that overran fence_action_budget',
    );
    this.unfences = c('pgarbiter_unfences_total', 'Fences removed, by rule', ['rule']);
    this.promotions = c('pgarbiter_promotions_total', 'Promotions of the local PostgreSQL, by rule', [
      'rule',
    ]);
    this.rejoins = c('pgarbiter_rejoins_total', 'Rejoins as standby, by method (rewind or basebackup)', [
      'method',
    ]);
    this.pgStarts = c(
      'pgarbiter_postgres_starts_total',
      'Starts of the local PostgreSQL by the agent, by rule',
      ['rule'],
    );
    this.agentStarts = c(
      'pgarbiter_agent_starts_total',
      'Starts of the agent process on this node (counted across restarts in state_dir)',
    );
    for (const t of AGENT_PROBE_TARGETS) this.probeSeconds.zero({ target: t });
    this.fenceOverruns.inc(0);
    this.rejoins.inc({ method: 'rewind' }, 0);
    this.rejoins.inc({ method: 'basebackup' }, 0);
  }

  /** The agent process started; `starts`: how many times it has started here, this one included. */
  started(starts: number): void {
    this.agentStarts.inc(starts);
  }

  /** Once per probe round, from the agent's status. */
  round(s: AgentStatus, roundSeconds: number | null): void {
    this.role.set({ role: 'primary' }, s.role === 'primary' ? 1 : 0);
    this.role.set({ role: 'standby' }, s.role === 'standby' ? 1 : 0);
    this.phase.reset();
    this.phase.set({ phase: s.phase }, 1);
    this.term.set(s.term);
    this.timeline.set(orNaN(s.postgres.timeline));
    this.fenced.set(s.fenced ? 1 : 0);
    this.pgUp.set(s.postgres.up ? 1 : 0);
    this.pgInRecovery.set(bool(s.postgres.inRecovery));
    this.pgReceiving.set(s.postgres.receiving ? 1 : 0);
    this.reachable.set({ peer: 'arbiter' }, s.reach.arbiter ? 1 : 0);
    this.reachable.set({ peer: 'peer_agent' }, s.reach.peerAgent ? 1 : 0);
    // The primary does not probe its own PostgreSQL over the network: no series then.
    if (s.reach.primaryPostgres === null) this.reachable.remove({ peer: 'primary_postgres' });
    else this.reachable.set({ peer: 'primary_postgres' }, s.reach.primaryPostgres ? 1 : 0);
    this.lag.set(orNaN(s.replication.replayLagBytes));
    const st = s.replication.syncState;
    const state = (SYNC_STATES as readonly string[]).includes(st ?? '') ? (st as string) : 'none';
    for (const x of SYNC_STATES) this.syncState.set({ state: x }, x === state ? 1 : 0);
    this.syncNames.set(s.replication.syncNames ? 1 : 0);
    this.commitsWaiting.set(s.replication.commitsWaitingMs / 1000);
    if (roundSeconds !== null) this.roundSeconds.observe(roundSeconds);
  }

  probe(target: AgentProbeTarget, seconds: number): void {
    this.probeSeconds.observe({ target }, seconds);
  }

  fenceDone(rule: string, r: { fenced: boolean; ms: number; overran: boolean }): void {
    if (r.fenced) this.fences.inc({ rule });
    else this.fenceFailures.inc({ rule });
    if (r.overran) this.fenceOverruns.inc();
    this.fenceSeconds.observe(r.ms / 1000);
  }

  unfenced(rule: string): void {
    this.unfences.inc({ rule });
  }

  promoted(rule: string): void {
    this.promotions.inc({ rule });
  }

  rejoined(method: 'rewind' | 'basebackup'): void {
    this.rejoins.inc({ method });
  }

  postgresStarted(rule: string): void {
    this.pgStarts.inc({ rule });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
