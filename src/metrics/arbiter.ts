// The arbiter's Prometheus series (GET /metrics; the list is in the README, "Metrics"). The daemon
// calls round() once per witness round and answer() once per answered request.
import { type Counter, type Gauge, Histogram, type Registry } from 'prom-client';
import type { ArbiterEventKind, RefusalCause } from '../core/arbiter.js';
import type { ClusterRecord } from '../core/types.js';
import { metricMakers, newRegistry, PROBE_BUCKETS, ROUND_BUCKETS } from './common.js';

export class ArbiterMetrics {
  readonly registry: Registry;
  private readonly term: Gauge;
  private readonly primaryReachable: Gauge;
  private readonly primaryUnseen: Gauge;
  private readonly promotable: Gauge;
  private readonly maintenance: Gauge;
  private readonly agentReachable: Gauge<'node'>;
  private readonly probeSeconds: Histogram<'target'>;
  private readonly roundSeconds: Histogram;
  private readonly requests: Counter<'request' | 'event'>;
  private readonly grants: Counter;
  private readonly refusals: Counter<'request' | 'cause'>;
  private readonly handovers: Counter;
  private readonly forced: Counter;
  private readonly adoptions: Counter;

  constructor(opts: { processMetrics?: boolean } = {}) {
    this.registry = newRegistry(opts.processMetrics ?? false);
    const { registers, gauge: g, counter: c } = metricMakers(this.registry);
    this.term = g('pgarbiter_term', 'The term of the cluster record on disk');
    this.primaryReachable = g(
      'pgarbiter_primary_reachable',
      "1 when the arbiter's last probe reached the primary's PostgreSQL as a writable primary",
    );
    this.primaryUnseen = g(
      'pgarbiter_primary_unseen_seconds',
      'Since when the arbiter has not reached (or confirmed) the primary; a grant needs failover_timeout',
    );
    this.promotable = g('pgarbiter_standby_promotable', '1 when the record says the standby is promotable');
    this.maintenance = g('pgarbiter_maintenance', '1 in maintenance mode');
    this.agentReachable = g(
      'pgarbiter_agent_reachable',
      "Did the arbiter's last look (every 2 s) reach this agent's /state",
      ['node'],
    );
    this.probeSeconds = new Histogram({
      name: 'pgarbiter_probe_duration_seconds',
      help: "Duration of the arbiter's probes, by target (primary_postgres, agent)",
      labelNames: ['target'],
      buckets: PROBE_BUCKETS,
      registers,
    });
    this.roundSeconds = new Histogram({
      name: 'pgarbiter_round_duration_seconds',
      help: "Duration of the arbiter's witness round",
      buckets: ROUND_BUCKETS,
      registers,
    });
    this.requests = c('pgarbiter_requests_total', 'Requests answered, by request kind and event', [
      'request',
      'event',
    ]);
    this.grants = c('pgarbiter_grants_total', 'Promotions granted (a new term)');
    this.refusals = c('pgarbiter_refusals_total', 'Requests refused, by request kind and cause', [
      'request',
      'cause',
    ]);
    this.handovers = c('pgarbiter_handovers_total', 'Switchovers: terms handed over by the primary');
    this.forced = c('pgarbiter_forced_failovers_total', 'Failovers forced by a person');
    this.adoptions = c('pgarbiter_adoptions_total', "Newer terms adopted from an agent's record");
    for (const t of ['primary_postgres', 'agent']) this.probeSeconds.zero({ target: t });
  }

  round(
    record: ClusterRecord,
    primaryReachable: boolean,
    primaryUnseenSeconds: number,
    agents: Record<string, boolean>,
    roundSeconds: number | null,
  ): void {
    this.term.set(record.term);
    this.primaryReachable.set(primaryReachable ? 1 : 0);
    this.primaryUnseen.set(Math.max(0, primaryUnseenSeconds));
    this.promotable.set(record.standbyPromotable ? 1 : 0);
    this.maintenance.set(record.maintenance ? 1 : 0);
    for (const [node, ok] of Object.entries(agents)) this.agentReachable.set({ node }, ok ? 1 : 0);
    if (roundSeconds !== null) this.roundSeconds.observe(roundSeconds);
  }

  probe(target: 'primary_postgres' | 'agent', seconds: number): void {
    this.probeSeconds.observe({ target }, seconds);
  }

  /** One answered request; `term`: the record's term after it. */
  answer(request: string, event: ArbiterEventKind, cause: RefusalCause | undefined, term: number): void {
    this.requests.inc({ request, event });
    this.term.set(term);
    if (event === 'grant') this.grants.inc();
    else if (event === 'handover') this.handovers.inc();
    else if (event === 'forced') this.forced.inc();
    else if (event === 'adopt') this.adoptions.inc();
    else if (event === 'refusal') this.refusals.inc({ request, cause: cause ?? 'unknown' });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
