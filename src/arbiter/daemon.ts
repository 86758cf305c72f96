// The arbiter daemon: witnesses the primary's PostgreSQL, keeps the cluster record on disk and
// answers the agents' requests (promotion grants, fence confirmations, sync state).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import { ApiClient } from '../api/client.js';
import {
  ARBITER_PATHS,
  type ArbiterEvent,
  type ArbiterHealthBody,
  type ArbiterRequestKind,
  arbiterRequestSchemas,
} from '../api/protocol.js';
import type { Config } from '../config.js';
import { hostOf, otherNode } from '../config.js';
import {
  type ArbiterRequest,
  type ArbiterState,
  arbiterHandle,
  arbiterObserve,
  arbiterView,
  initialArbiterState,
} from '../core/arbiter.js';
import { initialRecord } from '../core/record.js';
import type { ClusterRecord } from '../core/types.js';
import { KeptClient } from '../postgres/client.js';
import { PgControl } from '../postgres/control.js';
import { probePrimaryPg } from '../postgres/probe.js';
import { initialPrimary } from '../postgres/provision.js';
import { tlsMaterial } from '../tls/material.js';
import { readJsonFile, writeFileAtomic } from '../util/atomic.js';
import { sleep } from '../util/exec.js';
import { parseBody, type Route, serve } from '../util/http.js';
import { createLogger } from '../util/log.js';
import { ArbiterTelemetry } from './telemetry.js';

export type { ArbiterEvent };

/** How often the arbiter fetches the agents' /state. No decision reads it (it feeds the arbiter's
 *  /state and pgarbiter_agent_reachable, for people), so not every round: each fetch costs both
 *  sides an HTTPS exchange, and an idle cluster's CPU is mostly such exchanges. */
export const AGENT_VIEW_INTERVAL_MS = 2000;

export async function runArbiter(cfg: Config): Promise<void> {
  const log = createLogger('arbiter', { node: cfg.node }, cfg.log_file);
  mkdirSync(cfg.state_dir, { recursive: true, mode: 0o700 });
  const recordPath = join(cfg.state_dir, 'record.json');
  let record = readJsonFile<ClusterRecord>(recordPath);
  if (!record) {
    const primary = initialPrimary(cfg);
    // Not promotable until the primary confirms a synchronous (or streaming) standby.
    record = initialRecord(primary, otherNode(cfg, primary).name);
    writeFileAtomic(recordPath, JSON.stringify(record));
    log.info({ record }, 'created the cluster record');
  } else log.info({ record }, 'loaded the cluster record');

  const settings = {
    failoverTimeoutMs: cfg.timing.failoverTimeoutMs,
    fenceTimeoutMs: cfg.timing.fenceTimeoutMs,
  };
  let state: ArbiterState = initialArbiterState(record, Date.now());
  const events: ArbiterEvent[] = [];
  const agents: Record<string, unknown> = {};
  let primaryReachable = false;
  const ctl = new PgControl(cfg);
  const api = new ApiClient(cfg);
  /** The witness's connection to the primary, kept between rounds (another primary: a new one). */
  const primaryPg = new KeptClient();
  /** Metrics and history (GET /metrics, GET /history): records, decides nothing. */
  const telemetry = new ArbiterTelemetry(cfg.state_dir, cfg.node, log);

  const handle = (kind: ArbiterRequestKind, req: ArbiterRequest) => {
    const answer = arbiterHandle(state, req, Date.now(), settings);
    // Persist before answering: a grant must survive an arbiter crash.
    if (answer.changed) writeFileAtomic(recordPath, JSON.stringify(answer.state.record));
    state = answer.state;
    telemetry.answer(kind, answer, state.record.term);
    const ev: ArbiterEvent = {
      at: new Date().toISOString(),
      request: kind,
      kind: answer.event,
      ok: answer.ok,
      reason: answer.reason,
      term: state.record.term,
    };
    const last = events[events.length - 1];
    // A standby asks every round while the primary is lost: repeats of one refusal are counted.
    const shape = (r: string) => r.replace(/\d+/g, '#');
    const repeat =
      !ev.ok && last && !last.ok && last.request === ev.request && shape(last.reason) === shape(ev.reason);
    if (repeat) {
      last.count = (last.count ?? 1) + 1;
      last.at = ev.at;
    } else if (kind !== 'confirmPrimary' || !answer.ok) {
      events.push(ev);
      if (events.length > 200) events.shift();
    }
    const level =
      kind === 'forceFailover' || kind === 'adopt' ? 'warn' : answer.ok && answer.changed ? 'info' : 'debug';
    if (!repeat || answer.changed)
      log[answer.ok ? level : 'info'](
        { request: req, ok: answer.ok, record: state.record },
        `${kind}: ${answer.reason}`,
      );
    return {
      status: answer.ok ? 200 : 409,
      body: { ok: answer.ok, event: answer.event, reason: answer.reason, record: state.record },
    };
  };

  const post = (kind: ArbiterRequestKind): Route => ({
    method: 'POST',
    path: ARBITER_PATHS[kind],
    auth: true,
    handler: (_req, body) =>
      handle(kind, {
        kind,
        ...parseBody(arbiterRequestSchemas[kind] as z.ZodType<object>, body),
      } as ArbiterRequest),
  });

  const routes: Route[] = [
    {
      method: 'GET',
      path: '/health',
      handler: () => ({
        status: 200,
        body: {
          ok: true,
          node: cfg.node,
          role: 'arbiter',
          record: state.record,
          primaryVouchedMsAgo: arbiterView(state, Date.now()).primaryVouchedMsAgo,
        } satisfies ArbiterHealthBody,
      }),
    },
    {
      method: 'GET',
      path: '/state',
      handler: () => ({
        status: 200,
        body: {
          node: cfg.node,
          role: 'arbiter',
          record: state.record,
          primaryReachable,
          primaryLastSeenMsAgo: Date.now() - state.lastPrimaryOkAt,
          primaryVouchedMsAgo: arbiterView(state, Date.now()).primaryVouchedMsAgo,
          agents,
          events: events.slice(-50),
        },
      }),
    },
    ...(Object.keys(ARBITER_PATHS) as ArbiterRequestKind[]).map(post),
    ...telemetry.routes(),
  ];
  const server = await serve(routes, cfg.secret, '0.0.0.0', cfg.api_port, tlsMaterial(cfg.tls));
  log.info({ port: cfg.api_port, timing: cfg.timing }, 'arbiter listening');

  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  let lastWitness = primaryReachable;
  let agentsViewedAt = 0;
  while (!stopping) {
    const started = Date.now();
    const probed = state.record.primary;
    const primaryHost = hostOf(cfg, probed);
    const viewAgents = started - agentsViewedAt >= AGENT_VIEW_INTERVAL_MS;
    if (viewAgents) agentsViewedAt = started;
    const [ok] = await Promise.all([
      telemetry.probe(
        'primary_postgres',
        probePrimaryPg(ctl, primaryHost, cfg.timing.probeTimeoutMs, primaryPg),
      ),
      ...(viewAgents ? cfg.nodes : []).map(async (n) => {
        const st = await telemetry.probe('agent', api.agentState(n.host, cfg.timing.probeTimeoutMs));
        agents[n.name] = st ? { reachable: true, state: st } : { reachable: false };
      }),
    ]);
    primaryReachable = ok as boolean;
    if (primaryReachable !== lastWitness)
      log.info(
        { primary: state.record.primary, reachable: primaryReachable },
        primaryReachable ? 'primary reachable' : 'primary NOT reachable',
      );
    lastWitness = primaryReachable;
    state = arbiterObserve(
      state,
      { node: probed, ok: primaryReachable, startedAt: started },
      Date.now(),
      settings,
    );
    telemetry.round(
      state.record,
      primaryReachable,
      Date.now() - state.lastPrimaryOkAt,
      Object.fromEntries(
        cfg.nodes.map((n) => [n.name, (agents[n.name] as { reachable: boolean }).reachable]),
      ),
      (Date.now() - started) / 1000,
    );
    await sleep(Math.max(10, cfg.timing.probeIntervalMs - (Date.now() - started)));
  }
  server.close();
  server.closeAllConnections();
  primaryPg.close();
  log.info('arbiter stopped');
}
