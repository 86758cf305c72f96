// The agent's HTTP API: health and state for status and HAProxy, and a person's requests
// (authenticated with the shared secret). Every handler answers at once, but a health check that
// asks to be held (`/primary?hold`, as pgarbiter's HAProxy does) may be (Agent.checkStatus); the
// work happens in the agent's next round.
// Paths and bodies: src/api/protocol.ts.
import { AGENT_PATHS, type AgentStatus } from '../api/protocol.js';
import type { Route } from '../util/http.js';
import type { Agent } from './daemon.js';

/** 200 only on the writable, unfenced, idle primary: what HAProxy's read-write port routes to. */
export function isWritablePrimary(s: AgentStatus): boolean {
  return s.role === 'primary' && s.postgres.up && s.postgres.inRecovery === false && !s.fenced && !s.busy;
}

/** 200 only on a standby that streams: what HAProxy's read-only port routes to. */
export function isStreamingReplica(s: AgentStatus): boolean {
  return s.postgres.up && s.postgres.inRecovery === true && s.postgres.receiving && !s.fenced;
}

/** HAProxy's two checks: /primary (read-write port) and /replica (read-only port). */
export type HealthCheck = 'primary' | 'replica';

const refused = (reason: string) => ({ status: 409, body: { ok: false, reason } });

export function agentRoutes(agent: Agent): Route[] {
  const node = agent.cfg.node;
  return [
    {
      method: 'GET',
      path: AGENT_PATHS.health,
      // The VIP's client addresses go only to a caller with the secret (the peer agent).
      handler: (caller) => ({ status: 200, body: agent.health(caller.authorized) }),
    },
    { method: 'GET', path: AGENT_PATHS.state, handler: () => ({ status: 200, body: agent.status() }) },
    {
      method: 'GET',
      path: AGENT_PATHS.primary,
      // Held when asked (`?hold`, as pgarbiter's HAProxy asks): Agent.checkStatus.
      handler: async (caller) => {
        const s = caller.query.has('hold') ? await agent.checkStatus('primary') : agent.status();
        return { status: isWritablePrimary(s) ? 200 : 503, body: s };
      },
    },
    {
      method: 'GET',
      path: AGENT_PATHS.replica,
      handler: async (caller) => {
        const s = caller.query.has('hold') ? await agent.checkStatus('replica') : agent.status();
        return { status: isStreamingReplica(s) ? 200 : 503, body: s };
      },
    },
    {
      method: 'POST',
      path: AGENT_PATHS.switchover,
      auth: true,
      handler: () => {
        const why = agent.requestSwitchover();
        return why
          ? refused(why)
          : { status: 202, body: { ok: true, reason: `switchover to ${agent.peer} started` } };
      },
    },
    {
      method: 'POST',
      path: AGENT_PATHS.rejoin,
      auth: true,
      handler: () => {
        const why = agent.requestRejoin();
        return why ? refused(why) : { status: 202, body: { ok: true, reason: 'rejoin started' } };
      },
    },
    {
      method: 'POST',
      path: AGENT_PATHS.forcePromote,
      auth: true,
      handler: () => {
        const r = agent.forcePromote();
        if ('error' in r) return refused(r.error);
        return {
          status: 202,
          body: { ok: true, reason: `${node} takes term ${r.record.term} and promotes`, record: r.record },
        };
      },
    },
    {
      method: 'POST',
      path: AGENT_PATHS.wake,
      auth: true,
      // Sent by the peer's agent as it hands over to us (a switchover).
      handler: () => {
        agent.expectPromotion();
        agent.wakeUp();
        return { status: 200, body: { ok: true, reason: 'next round now' } };
      },
    },
  ];
}
