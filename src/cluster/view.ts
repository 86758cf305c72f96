// Reading the cluster as a whole: the arbiter's record and each agent's own state, fetched over
// HTTP with deadlines. Used by `status`, `switchover`, the demo and the tests.
import { ApiClient, type ClusterMembers, type SocketOf } from '../api/client.js';
import type { AgentStatus, ArbiterStateBody } from '../api/protocol.js';
import { NEW_TERM_EVENTS } from '../core/arbiter.js';
import type { ClusterRecord } from '../core/types.js';

/** The arbiter's GET /state. */
export type ArbiterView = ArbiterStateBody;

export interface ClusterView {
  arbiter: { host: string; reachable: boolean; state: ArbiterView | null };
  nodes: { name: string; host: string; reachable: boolean; state: AgentStatus | null }[];
}

/** `socketOf` routes a member's calls through a forwarding unix socket (the lab's, from outside it). */
export async function fetchClusterView(
  cfg: ClusterMembers,
  timeoutMs = 1500,
  socketOf?: SocketOf,
): Promise<ClusterView> {
  const api = new ApiClient(cfg, socketOf);
  const [arb, ...nodes] = await Promise.all([
    api.arbiterState(timeoutMs),
    ...cfg.nodes.map((n) => api.agentState(n.host, timeoutMs)),
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

/** The newest record any member holds (a term is a fact anyone may carry): the arbiter's, or an
 *  agent's when the arbiter is unreachable or behind. */
export function newestRecord(view: ClusterView): ClusterRecord | null {
  const records = [view.arbiter.state?.record, ...view.nodes.map((n) => n.state?.record)].filter(
    (r): r is ClusterRecord => !!r,
  );
  return records.reduce<ClusterRecord | null>((best, r) => (!best || r.term > best.term ? r : best), null);
}

/** When the arbiter started `term` (a grant, handover, forced failover or adoption), as epoch ms;
 *  null when it has no such event. */
export function newTermTimeOf(v: ArbiterView, term: number): number | null {
  const ev = v.events.find((e) => e.ok && e.term === term && NEW_TERM_EVENTS.includes(e.kind));
  return ev ? Date.parse(ev.at) : null;
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
