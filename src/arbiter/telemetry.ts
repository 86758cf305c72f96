// What the arbiter records for people, beside its log: Prometheus series (src/metrics/arbiter.ts)
// and its history of answers that matter (src/history/store.ts), served read-only (GET /metrics,
// GET /history). The daemon calls round() per witness round and answer() per answered request.
import { join } from 'node:path';
import type { ArbiterRequestKind, HistoryKind } from '../api/protocol.js';
import type { ArbiterEventKind, RefusalCause } from '../core/arbiter.js';
import type { ClusterRecord } from '../core/types.js';
import { HistoryStore } from '../history/store.js';
import { ArbiterMetrics } from '../metrics/arbiter.js';
import { telemetryRoutes, timed } from '../metrics/common.js';
import type { Route } from '../util/http.js';
import type { Logger } from '../util/log.js';

/** The answers kept in the history: every record change and every refusal. A confirmed term and
 *  an unchanged answer come every few rounds and say nothing new. */
export function historyKindOf(event: ArbiterEventKind, ok: boolean): HistoryKind | null {
  if (!ok) return 'refusal';
  return event === 'confirm' || event === 'unchanged' ? null : event;
}

/** A refusal repeated every round is one entry with a count: same request, same reason once its
 *  numbers (terms, ms) are blanked. */
const shape = (r: string) => r.replace(/\d+/g, '#');

export class ArbiterTelemetry {
  readonly metrics = new ArbiterMetrics({ processMetrics: true });
  readonly history: HistoryStore;

  constructor(stateDir: string, member: string, log: Logger) {
    const warn = (m: string) => log.warn({}, m);
    this.history = new HistoryStore(join(stateDir, 'history-arbiter.jsonl'), member, undefined, warn);
  }

  routes(): Route[] {
    return telemetryRoutes(this.metrics.registry, this.history);
  }

  /** `p`, timed into pgarbiter_probe_duration_seconds{target}. */
  probe<T>(target: 'primary_postgres' | 'agent', p: Promise<T>): Promise<T> {
    return timed(p, (s) => this.metrics.probe(target, s));
  }

  round(
    record: ClusterRecord,
    primaryReachable: boolean,
    primaryUnseenMs: number,
    agents: Record<string, boolean>,
    seconds: number,
  ): void {
    this.metrics.round(record, primaryReachable, primaryUnseenMs / 1000, agents, seconds);
  }

  /** One answered request; `term`: the record's term after it. */
  answer(
    request: ArbiterRequestKind,
    a: { event: ArbiterEventKind; ok: boolean; reason: string; cause?: RefusalCause },
    term: number,
  ) {
    this.metrics.answer(request, a.event, a.cause, term);
    const kind = historyKindOf(a.event, a.ok);
    if (!kind) return;
    const entry = { kind, term, rule: request, detail: a.reason };
    if (kind !== 'refusal') this.history.add(entry);
    else
      this.history.addOrRepeat(
        entry,
        (last) => last.kind === 'refusal' && last.rule === request && shape(last.detail) === shape(a.reason),
      );
  }
}
