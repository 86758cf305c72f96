// Reading the cluster as a whole: the arbiter's record and each agent's own state, fetched over
// HTTP with deadlines. Used by `status`, `switchover`, the demo and the tests.
import type { AgentStatus } from '../agent/daemon.js';
import type { Config } from '../config.js';
import type { ClusterRecord } from '../core/types.js';
import { callJson } from '../util/http.js';

export interface ArbiterView {
  record: ClusterRecord;
  primaryReachable: boolean;
  primaryLastSeenMsAgo: number;
  events: { at: string; request: string; ok: boolean; reason: string; term: number }[];
}

export interface ClusterView {
  arbiter: { host: string; reachable: boolean; state: ArbiterView | null };
  nodes: { name: string; host: string; reachable: boolean; state: AgentStatus | null }[];
}

export async function fetchClusterView(cfg: Config, timeoutMs = 1500): Promise<ClusterView> {
  const get = async <T>(host: string, path: string): Promise<T | null> => {
    try {
      const r = await callJson<T>(`http://${host}:${cfg.api_port}${path}`, { timeoutMs });
      return r.status === 200 ? r.body : null;
    } catch {
      return null;
    }
  };
  const [arb, ...nodes] = await Promise.all([
    get<ArbiterView>(cfg.arbiter.host, '/state'),
    ...cfg.nodes.map((n) => get<AgentStatus>(n.host, '/state')),
  ]);
  return {
    arbiter: { host: cfg.arbiter.host, reachable: arb !== null, state: arb },
    nodes: cfg.nodes.map((n, i) => ({
      name: n.name,
      host: n.host,
      reachable: nodes[i] !== null,
      state: nodes[i] ?? null,
    })),
  };
}

/** One-word state of a node for tables. */
export function nodeState(s: AgentStatus | null): string {
  if (!s) return 'unreachable';
  if (s.busy) return s.busy;
  if (!s.postgres.up) return 'postgres down';
  if (s.fenced) return 'FENCED';
  if (s.postgres.inRecovery === false) {
    if (s.role !== 'primary') return 'STALE PRIMARY';
    const waiting = s.replication.commitsWaitingMs ?? 0;
    return waiting >= 1000
      ? `running (rw), commits wait ${(waiting / 1000).toFixed(1)} s for sync`
      : 'running (rw)';
  }
  if (s.postgres.inRecovery === true) return s.postgres.receiving ? 'streaming' : 'not streaming';
  return s.phase;
}
