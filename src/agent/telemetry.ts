// What the agent records for people, beside its log: Prometheus series (src/metrics/agent.ts) and
// its history of notable events (src/history/store.ts), both served read-only (GET /metrics,
// GET /history). The daemon calls one function per probe round and one per action carried out.
import { join } from 'node:path';
import type { FenceResult } from '../fence/fence.js';
import { HistoryStore } from '../history/store.js';
import { AgentMetrics, type AgentProbeTarget } from '../metrics/agent.js';
import { telemetryRoutes, timed } from '../metrics/common.js';
import { readJsonFile, writeFileAtomic } from '../util/atomic.js';
import type { Route } from '../util/http.js';
import type { Logger } from '../util/log.js';
import type { AgentStatus } from './daemon.js';
import type { RejoinResult } from './procedures.js';

export class AgentTelemetry {
  readonly metrics: AgentMetrics;
  readonly history: HistoryStore;

  constructor(stateDir: string, node: string, log: Logger) {
    this.metrics = new AgentMetrics({ processMetrics: true });
    const warn = (msg: string) => log.warn({}, msg);
    this.history = new HistoryStore(join(stateDir, `history-${node}.jsonl`), node, undefined, warn);
    // Process starts, counted across restarts (a counter in memory would always say 1).
    const startsPath = join(stateDir, `starts-${node}.json`);
    let starts = 1;
    try {
      starts = (readJsonFile<{ starts?: number }>(startsPath)?.starts ?? 0) + 1;
      writeFileAtomic(startsPath, JSON.stringify({ starts }));
    } catch (e) {
      warn(`cannot count agent starts in ${startsPath}: ${(e as Error).message}`);
    }
    this.metrics.started(starts);
  }

  routes(): Route[] {
    return telemetryRoutes(this.metrics.registry, this.history);
  }

  started(term: number, role: string): void {
    this.history.add({ kind: 'start', term, rule: null, detail: `agent started (${role} in the record)` });
  }

  /** `p`, timed into pgarbiter_probe_duration_seconds{target}. */
  probe<T>(target: AgentProbeTarget, p: Promise<T>): Promise<T> {
    return timed(p, (s) => this.metrics.probe(target, s));
  }

  round(s: AgentStatus, seconds: number): void {
    this.metrics.round(s, seconds);
  }

  fence(rule: string, reason: string, r: FenceResult, term: number): void {
    this.metrics.fenceDone(rule, r);
    this.history.add({
      kind: r.fenced ? 'fence' : 'fence-failed',
      term,
      rule,
      detail:
        `${reason} (${Math.round(r.ms)} ms${r.overran ? `, over the ${r.budgetMs} ms budget` : ''}` +
        `${r.terminated === null ? '' : `, ${r.terminated} sessions terminated`})${r.fenced ? '' : `: ${r.error}`}`,
    });
  }

  unfence(rule: string, reason: string, term: number): void {
    this.metrics.unfenced(rule);
    this.history.add({ kind: 'unfence', term, rule, detail: reason });
  }

  promote(rule: string, term: number): void {
    this.metrics.promoted(rule);
    this.history.add({ kind: 'promote', term, rule, detail: `promoted for term ${term}` });
  }

  forcePromote(term: number): void {
    this.history.add({
      kind: 'force-promote',
      term,
      rule: null,
      detail: `a person forced term ${term} through this agent, without the arbiter`,
    });
  }

  rejoin(rule: string, primary: string, r: RejoinResult, term: number): void {
    this.metrics.rejoined(r.method);
    this.history.add({
      kind: 'rejoin',
      term,
      rule,
      detail:
        `standby of ${primary} by ${r.method} in ${Math.round(r.ms)} ms` +
        (r.discardedCommits === null
          ? ', discarded commits unknown'
          : `, ${r.discardedCommits} commits discarded`),
    });
  }

  postgresStarted(rule: string): void {
    this.metrics.postgresStarted(rule);
  }
}
