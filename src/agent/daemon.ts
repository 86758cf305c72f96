// The database node's agent: every probe_interval it observes (local PostgreSQL, fence, arbiter,
// peer), asks the pure core what to do (src/core/agent.ts), and does it. It decides nothing
// itself: it probes, calls, persists, acts and logs. It also serves the small HTTP API.
import { existsSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../api/client.js';
import { type AgentStatus, MAX_VIP_CLIENTS } from '../api/protocol.js';
import type { Config } from '../config.js';
import { hostOf, leaseDurationMs, otherNode } from '../config.js';
import {
  agentOnReply,
  decideAgent,
  forcePromotion,
  handoverSending,
  handoverSettled,
  persistedOf,
  requestRejoin,
  requestSwitchover,
  startingAgentState,
  vouchOf,
} from '../core/agent.js';
import { initialRecord } from '../core/record.js';
import type { RuleId } from '../core/rules.js';
import type {
  AgentAction,
  AgentObservation,
  AgentPhase,
  AgentSettings,
  AgentState,
  ClusterRecord,
  PeerHealth,
  PersistedAgentState,
} from '../core/types.js';
import { deniedByKernel, Fence, TERMINATE_CLIENTS_SQL } from '../fence/fence.js';
import { Lease } from '../fence/lease.js';
import { errorText, KeptClient } from '../postgres/client.js';
import { PgControl } from '../postgres/control.js';
import { probePrimaryPg } from '../postgres/probe.js';
import { initialPrimary } from '../postgres/provision.js';
import { isSyncMode } from '../postgres/settings.js';
import { tlsMaterial } from '../tls/material.js';
import { readJsonFile, writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { sleep } from '../util/exec.js';
import { serve } from '../util/http.js';
import { createLogger, type Logger } from '../util/log.js';
import { parseVip, shouldHoldVip, Vip, vipClientsToRelay } from '../vip/vip.js';
import { agentRoutes, type HealthCheck, isStreamingReplica, isWritablePrimary } from './api.js';
import { type LocalObservation, probeLocal, SyncWaitClock } from './probes.js';
import { ensureSlot, handover, promoteLocal, rejoin, setSyncNames } from './procedures.js';
import { AgentTelemetry } from './telemetry.js';

export type { AgentStatus };

/** While the fence is known to be off, how long its state is trusted before it is read again.
 *  Reading it is a process (iptables/nft) and cost an idle agent more CPU than anything else
 *  when done every round. The dangerous error, a fence believed in place that is not, cannot come
 *  from this: while fenced, or unsure, the state is read every round. An off fence is trusted
 *  because only this agent puts it in place (and reads it at start). */
export const FENCE_OFF_RECHECK_MS = 30_000;

/** How long a steady 503 may be held (checkStatus): under HAProxy's `timeout check` (1 s as
 *  src/routing/haproxy.ts renders it), so a held check ends with an answer. A steady 503 is asked by
 *  a listen that has the node down already, where a late answer that became a timeout changes
 *  nothing; the longer the hold, the fewer the checks (each a TLS handshake, bench/floor). */
export const CHECK_HOLD_MS = 900;
/** How long a passing check is held (checkStatus): it answers 200 then, or 503 the moment the node
 *  stops passing. Shorter than CHECK_HOLD_MS: a pass that comes after `timeout check` is a false
 *  failure, so this leaves room for a retransmitted answer (TCP's first retry is 200 ms on). */
export const PASS_HOLD_MS = 500;
/** How long a check's answer must have been the same before checks are held (checkStatus): a node
 *  whose answer has just changed answers every check at once, so HAProxy hears the news at once
 *  (a new primary is marked up by the first check that passes, an old one down as fast as its
 *  `fall` allows). */
export const STEADY_ANSWER_MS = 3000;
/** How soon a standby's next round comes while the primary (its PostgreSQL or its agent) did not
 *  answer the last one (roundIntervalMs): rounds then follow as fast as their probes time out, so
 *  the standby asks for promotion within a probe_timeout of failover_timeout, not a probe_interval.
 *  Idle rounds, with the primary answering, keep probe_interval. */
export const SUSPECT_ROUND_MS = 200;

/** The time from the start of one round to the start of the next, given what the last one saw.
 *  Never longer than probe_interval: the timing rule's fence and lease assume a round at least that
 *  often, and a shorter one only brings a decision sooner. The primary keeps probe_interval: sooner
 *  rounds there fenced it on 8 of 10 one-second link cuts (bench/tolerance, bench/README.md
 *  "Session 13"), right at fence_timeout, where its rounds' own pace let most such cuts end first. Pure. */
export function roundIntervalMs(
  obs: Pick<AgentObservation, 'peer' | 'primaryPgOk'> | null,
  iAmPrimary: boolean,
  probeIntervalMs: number,
): number {
  const primaryMissing = obs !== null && !iAmPrimary && (!obs.peer || !obs.primaryPgOk);
  return primaryMissing ? Math.min(SUSPECT_ROUND_MS, probeIntervalMs) : probeIntervalMs;
}

/** After POST /wake (the peer hands over to us), how long a promotion counts as expected: the
 *  handover's stop, replay and arbiter steps take well under this on a healthy pair. */
export const PROMOTION_EXPECTED_MS = 2000;

/** What a held check of HAProxy's (checkStatus) knows when it decides how long to hold. */
export interface CheckHoldInput {
  /** The answer the node gives now. */
  passing: boolean;
  /** The last answer given to this check, and since when it has been the same. */
  last: { passing: boolean; since: number } | null;
  /** When the check came. */
  start: number;
  /** The check is /primary: its 503 is held while a promotion is under way or expected. */
  primaryCheck: boolean;
  /** The agent is promoting this node now. */
  promoting: boolean;
  /** Until when a promotion is expected (POST /wake), or 0. */
  promotionExpectedUntil: number;
}

/** Until when a check may be held while its answer stays (`start`: answer at once), and since when
 *  the answer has been the same. Pure; checkStatus asks again whenever the agent's state changes,
 *  so a promotion that starts or ends during a held check moves its end. */
export function checkHold(c: CheckHoldInput): { since: number; until: number } {
  const since = c.last && c.last.passing === c.passing ? c.last.since : c.start;
  if (c.start - since >= STEADY_ANSWER_MS)
    return { since, until: c.start + (c.passing ? PASS_HOLD_MS : CHECK_HOLD_MS) };
  if (c.passing || !c.primaryCheck) return { since, until: c.start };
  const end = c.start + CHECK_HOLD_MS;
  return { since, until: c.promoting ? end : Math.max(c.start, Math.min(end, c.promotionExpectedUntil)) };
}

export class Agent {
  readonly ctl: PgControl;
  readonly fence: Fence;
  /** The kernel-side lease (src/fence/lease.ts); with `lease: off` only used to remove a table
   *  left from when it was on. */
  readonly lease: Lease;
  /** The lease deadline last committed (ms since the epoch); null: none (a standby, `lease: off`). */
  private leaseUntil: number | null = null;
  readonly api: ApiClient;
  readonly log: Logger;
  readonly peer: string;
  /** The floating address (config `vip:`), held only while shouldHoldVip says so. */
  readonly vip: Vip | null;
  private vipHeld = false;
  /** Our PostgreSQL's TCP clients while we hold the VIP (relayed in /health; a superset of the
   *  VIP's, see listVipClients), and the peer's as last heard: the connections to tickle if we
   *  take the address over. */
  private vipClients: string[] = [];
  private peerVipClients: string[] = [];
  private state: AgentState;
  private readonly statePath: string;
  private readonly settings: AgentSettings;
  private lastLocal: LocalObservation | null = null;
  private lastObs: AgentObservation | null = null;
  private phase: AgentPhase = 'starting';
  private rule: RuleId | 'start' = 'start';
  private busy: string | null = null;
  private readonly syncWaits = new SyncWaitClock();
  private readonly fences = { count: 0, lastMs: null as number | null, overruns: 0 };
  private lastRejoin: AgentStatus['lastRejoin'] = null;
  private wake: (() => void) | null = null;
  /** Until when a promotion is expected (POST /wake: the peer is handing over to us). */
  private promotionExpectedUntil = 0;
  /** Held checks, told when the status may have changed (statusChanged). */
  private readonly statusWaiters = new Set<() => void>();
  /** Since when each check has been answered 503 (null: it passes, or not asked yet). */
  /** Each held check's last answer (pass or not) and since when it has been that (checkStatus). */
  private readonly answeredSince: Record<HealthCheck, { passing: boolean; since: number } | null> = {
    primary: null,
    replica: null,
  };
  private stopping = false;
  /** The connections of the probes of every round: the local server, the primary's. */
  private readonly localPg = new KeptClient();
  private readonly primaryPg = new KeptClient();
  /** The fence as last read or changed by us; null: unknown, read it. */
  private fenceKnown: { fenced: boolean; at: number } | null = null;
  /** Metrics and history (GET /metrics, GET /history): records, decides nothing. */
  readonly telemetry: AgentTelemetry;

  constructor(readonly cfg: Config) {
    this.ctl = new PgControl(cfg);
    this.fence = new Fence(
      cfg.postgres.port,
      hostOf(cfg, otherNode(cfg, cfg.node).name),
      cfg.timing.fenceActionBudgetMs,
      {
        mechanism: cfg.fence_mechanism,
      },
    );
    this.lease = new Lease(
      cfg.postgres.port,
      [hostOf(cfg, otherNode(cfg, cfg.node).name), cfg.arbiter.host],
      leaseDurationMs(cfg.timing),
      // One nft run every two rounds keeps at least lease - 2 x probe_interval in hand.
      { minExtendMs: 2 * cfg.timing.probeIntervalMs },
    );
    this.api = new ApiClient(cfg);
    this.log = createLogger('agent', { node: cfg.node }, cfg.log_file);
    this.peer = otherNode(cfg, cfg.node).name;
    this.vip = cfg.vip ? new Vip(parseVip(cfg.vip)) : null;
    mkdirSync(cfg.state_dir, { recursive: true, mode: 0o700 });
    this.statePath = join(cfg.state_dir, `agent-${cfg.node}.json`);
    this.telemetry = new AgentTelemetry(cfg.state_dir, cfg.node, this.log);
    const saved = readJsonFile<Partial<PersistedAgentState>>(this.statePath);
    const primary = initialPrimary(cfg);
    this.state = startingAgentState(
      {
        // Every field persistedOf wrote, so a new one cannot be dropped here.
        ...saved,
        record: saved?.record ?? initialRecord(primary, otherNode(cfg, primary).name),
        promotionAskedInTerm: saved?.promotionAskedInTerm ?? null,
      },
      Date.now(),
      cfg.timing,
    );
    this.settings = {
      me: cfg.node,
      timing: cfg.timing,
      syncReplication: isSyncMode(cfg.postgres.synchronous_commit),
      strictSync: cfg.postgres.sync_mode === 'strict',
      autoRejoin: cfg.rejoin === 'auto',
      ...(cfg.lease === 'on' ? { leaseMs: leaseDurationMs(cfg.timing) } : {}),
    };
  }

  /** Takes the core's new state; what must survive a crash is on disk before anything acts on it. */
  private setState(next: AgentState): void {
    const before = this.state;
    this.state = next;
    const a = persistedOf(before);
    const b = persistedOf(next);
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    writeFileAtomic(this.statePath, JSON.stringify(b));
    if (JSON.stringify(a.record) !== JSON.stringify(b.record))
      this.log.info(
        { record: b.record },
        `cluster record: term ${b.record.term}, primary ${b.record.primary}`,
      );
  }

  /** What /health says: our record and our vouch for the primary (computed by the core); to a
   *  caller with the secret, also our clients on the VIP. */
  health(withVipClients: boolean): PeerHealth & { ok: true; vipClients?: string[] } {
    return {
      ok: true,
      node: this.cfg.node,
      record: this.state.record,
      vouch: vouchOf(this.state, this.settings, Date.now()),
      ...(withVipClients && this.vipHeld && this.vipClients.length > 0
        ? { vipClients: this.vipClients }
        : {}),
    };
  }

  async observe(): Promise<AgentObservation> {
    const t = this.cfg.timing;
    const rec = this.state.record;
    const iAmPrimary = rec.primary === this.cfg.node;
    const startedAt = Date.now();
    const tm = this.telemetry;
    const [local, fenced, arbiter, peer, primaryPgOk] = await Promise.all([
      tm.probe(
        'local_postgres',
        probeLocal(this.ctl, this.localPg, this.peer, Math.max(t.probeTimeoutMs, 1000), this.syncWaits),
      ),
      this.readFence().catch((e) => {
        this.log.error({ err: (e as Error).message }, 'cannot read the fence state');
        return true; // unknown: assume fenced, so a primary asks before serving
      }),
      tm.probe('arbiter', this.api.arbiterHealth(t.probeTimeoutMs)),
      tm.probe('peer_agent', this.api.agentHealth(hostOf(this.cfg, this.peer), t.probeTimeoutMs)),
      iAmPrimary
        ? Promise.resolve(false)
        : tm.probe(
            'primary_postgres',
            probePrimaryPg(this.ctl, hostOf(this.cfg, rec.primary), t.probeTimeoutMs, this.primaryPg),
          ),
    ]);
    this.lastLocal = local;
    // A peer that answers and no longer lists VIP clients has none (it gave the address up).
    if (peer && peer.node === this.peer) this.peerVipClients = peer.vipClients ?? [];
    // A primary without its standby connected makes sure the standby's slot exists (a promoted
    // node has none for its new standby).
    if (iAmPrimary && local.inRecovery === false && !local.peerReplication)
      await ensureSlot(this.ctl, this.peer).catch(() => {});
    return {
      startedAt,
      now: Date.now(),
      local,
      fenced,
      arbiter: arbiter && { record: arbiter.record, primaryVouchedMsAgo: arbiter.primaryVouchedMsAgo },
      peer:
        peer && peer.node === this.peer ? { node: peer.node, record: peer.record, vouch: peer.vouch } : null,
      primaryPgOk,
    };
  }

  async round(): Promise<void> {
    const t0 = performance.now();
    const obs = await this.observe();
    this.lastObs = obs;
    const decision = decideAgent(this.state, obs, this.settings);
    this.setState(decision.state);
    if (decision.phase !== this.phase)
      this.log.info(
        { from: this.phase, to: decision.phase, rule: decision.rule },
        `phase ${decision.phase} [${decision.rule}]`,
      );
    this.phase = decision.phase;
    this.rule = decision.rule;
    // A node that is no longer the writable primary (demoted by a newer term, stopped, found
    // fenced) gives the address up before it does anything else.
    if (this.vipHeld && !this.wantsVip())
      await this.releaseVip(`no longer the writable primary [${decision.rule}]`);
    await this.executeAll(decision.actions);
    await this.syncVip();
    this.listVipClients();
    this.telemetry.round(this.status(), (performance.now() - t0) / 1000);
    // A held check looks again with what this round saw (a standby now streaming, say).
    this.statusChanged();
  }

  /** Runs actions in order; a failed one stops the rest of the round (the next round decides again). */
  private async executeAll(actions: AgentAction[]): Promise<boolean> {
    for (const action of actions) {
      try {
        await this.execute(action);
      } catch (e) {
        this.log.error(
          { action, err: errorText(e) },
          `${action.kind} failed [${action.rule}]: ${errorText(e)}`,
        );
        return false;
      } finally {
        this.setBusy(null);
      }
    }
    return true;
  }

  async execute(a: AgentAction): Promise<void> {
    const log = this.log;
    switch (a.kind) {
      case 'note':
        log[a.level]({ rule: a.rule }, a.msg);
        return;
      case 'fence':
        await this.fenceNow(a.rule, a.reason, true);
        return;
      case 'unfence':
        this.fenceKnown = null;
        await this.fence.unfence();
        this.observedFence(false);
        this.telemetry.unfence(a.rule, a.reason, this.state.record.term);
        log.warn({ rule: a.rule, term: this.state.record.term }, `UNFENCED [${a.rule}]: ${a.reason}`);
        return;
      case 'ask': {
        this.setBusy(a.why === 'promote' ? 'asking for promotion' : null);
        const kind = a.request.kind;
        const { kind: _k, ...body } = a.request;
        // A confirmation or a grant counts from when the request went out: the arbiter acted
        // after that, so our estimate errs early (the fence and the lease count from it).
        const sentAt = Date.now();
        const r = await this.api.arbiterPost(
          kind,
          body as never,
          Math.max(1000, this.cfg.timing.probeTimeoutMs),
        );
        const outcome = agentOnReply(this.state, a, r.answered ? r.body : null, sentAt, this.settings);
        this.setState(outcome.state);
        log[outcome.log.level](
          { rule: outcome.log.rule, request: a.request, reply: r.body },
          `${outcome.log.msg} [${outcome.log.rule}]`,
        );
        if (!(await this.executeAll(outcome.actions))) throw new Error(`follow-up of ${kind} failed`);
        return;
      }
      case 'lease':
        if (a.until === null) {
          await this.lease.open();
          if (this.leaseUntil !== null) log.info({ rule: a.rule }, `lease removed [${a.rule}]: a standby`);
        } else {
          await this.lease.hold(a.until);
          if (this.leaseUntil === null || this.leaseUntil < Date.now())
            log.info(
              { rule: a.rule, until: new Date(a.until).toISOString() },
              `lease taken [${a.rule}]: clients served until ${new Date(a.until).toISOString()} unless refreshed`,
            );
        }
        this.leaseUntil = a.until;
        return;
      case 'startPostgres':
        this.setBusy('starting PostgreSQL');
        log.warn({ rule: a.rule, reason: a.reason }, `starting PostgreSQL [${a.rule}]: ${a.reason}`);
        await this.ctl.start();
        this.telemetry.postgresStarted(a.rule);
        return;
      case 'promote':
        this.setBusy('promoting');
        log.warn({ rule: a.rule, term: a.term }, `promoting for term ${a.term} [${a.rule}]`);
        await promoteLocal(this.ctl, (sql) => this.localQuery(sql), log);
        this.telemetry.promote(a.rule, a.term);
        // /primary (HAProxy's check) answers from the last observation: take a fresh one of the
        // local server now, so clients are routed here as soon as it is writable, not a round later
        // (a check held by checkStatus gets its 200 at once).
        this.lastLocal = await probeLocal(
          this.ctl,
          this.localPg,
          this.peer,
          Math.max(this.cfg.timing.probeTimeoutMs, 1000),
          this.syncWaits,
        );
        this.promotionExpectedUntil = 0;
        this.setBusy(null);
        if (isWritablePrimary(this.status()))
          log.info({ term: a.term }, 'writable: /primary answers 200, HAProxy routes clients here');
        await this.syncVip();
        await ensureSlot(this.ctl, this.peer);
        return;
      case 'setSync':
        if (a.on) await ensureSlot(this.ctl, this.peer);
        await setSyncNames(this.ctl, a.on);
        if (a.on)
          log.warn(
            { rule: a.rule },
            `SYNC ON again for ${this.peer}; promotable once it has flushed every commit acknowledged without it`,
          );
        return;
      case 'rejoin': {
        await this.releaseVip(`rejoining as standby of ${a.primary}`);
        this.setBusy('rejoining');
        log.warn(
          { rule: a.rule, primary: a.primary, reason: a.reason },
          `REJOIN as standby of ${a.primary} [${a.rule}]: ${a.reason}`,
        );
        const r = await rejoin(this.ctl, this.cfg, a.primary, log);
        this.lastRejoin = { ...r, at: new Date().toISOString() };
        this.telemetry.rejoin(a.rule, a.primary, r, this.state.record.term);
        this.fenceKnown = null;
        await this.fence.unfence();
        this.observedFence(false);
        this.telemetry.unfence(a.rule, 'rejoined as standby (read-only)', this.state.record.term);
        log.warn({}, 'UNFENCED as standby (read-only)');
        return;
      }
      case 'handover': {
        // Not awaited: the standby holds HAProxy's /primary checks from now on, so the one in
        // flight when it becomes writable answers 200 at once (Agent.checkStatus).
        void this.api.agentPost(hostOf(this.cfg, a.to), 'wake', 1000);
        await this.releaseVip(`switchover to ${a.to}`);
        this.setBusy('switchover');
        // The rule only: it resets the clients' connections, and the fast shutdown that follows
        // ends every session anyway (a separate termination only delays the stop, and the writes'
        // pause with it). Commits until then are streamed and replayed before the term moves.
        await this.fenceNow(a.rule, `switchover to ${a.to}`, false);
        this.setBusy('switchover');
        const ok = await handover(this.ctl, this.cfg, a.to, a.term, this.api, log, {
          lastSeq: () => this.state.handoverSeq,
          sending: () => {
            const next = handoverSending(this.state, Date.now());
            this.setState(next.state);
            return next.seq;
          },
          settled: () => this.setState(handoverSettled(this.state)),
        });
        if (ok) {
          // The next round adopts the handed-over record; let the new primary act now.
          await this.api.agentPost(hostOf(this.cfg, a.to), 'wake', 1000);
          this.wakeUp();
        }
        return;
      }
    }
  }

  /** The fence: the rule, then (`terminate`) the client sessions; bounded by fence_action_budget
   *  (src/fence/fence.ts): the timing rule counts on it. Throws when the rule is not in place. */
  private async fenceNow(rule: AgentAction['rule'], reason: string, terminate: boolean): Promise<void> {
    const log = this.log;
    await this.releaseVip(`fencing: ${reason}`);
    this.setBusy('fencing');
    const r = await this.fence.fence(
      terminate
        ? (ms) => this.ctl.query<{ n: number }>(TERMINATE_CLIENTS_SQL, [], ms).then((x) => x[0]?.n ?? 0)
        : null,
    );
    this.fences.count++;
    this.fences.lastMs = r.ms;
    if (r.overran) this.fences.overruns++;
    this.telemetry.fence(rule, reason, r, this.state.record.term);
    const timing = { ms: r.ms, ruleMs: r.ruleMs, terminateMs: r.terminateMs, budgetMs: r.budgetMs };
    if (r.fenced) this.observedFence(true);
    else this.fenceKnown = null;
    if (!r.fenced) {
      log.error({ rule, reason, err: r.error, ...timing }, `FENCE FAILED [${rule}]: ${reason}: ${r.error}`);
      throw new Error(`fence failed: ${r.error}`);
    }
    const sessions = terminate
      ? `${r.terminated ?? 'unknown number of'} client sessions terminated`
      : 'client sessions left to the fast shutdown that follows';
    log.warn(
      { rule, reason, terminated: r.terminated, overran: r.overran, ...timing },
      `FENCED [${rule}]: ${reason} (${this.cfg.fence_mechanism} rule in place, ${sessions}, ${r.ms} ms${r.overran ? `, OVER the ${r.budgetMs} ms budget` : ''})`,
    );
  }

  /** Hold the VIP only as the record's primary, writable (last local probe) and unfenced. */
  private wantsVip(): boolean {
    return shouldHoldVip({
      isRecordPrimary: this.state.record.primary === this.cfg.node,
      postgresUp: this.lastLocal?.up === true,
      inRecovery: this.lastLocal?.inRecovery ?? null,
      fenced: this.lastObs?.fenced ?? true,
    });
  }

  /** Takes or gives up the VIP to match wantsVip. */
  private async syncVip(): Promise<void> {
    if (!this.vip) return;
    if (!this.wantsVip()) {
      if (this.vipHeld) await this.releaseVip('no longer the writable primary');
      return;
    }
    if (this.vipHeld) return;
    const added = await this.vip.acquire();
    this.vipHeld = true;
    this.log.warn(
      { vip: this.vip.vip.cidr },
      `VIP ${this.vip.vip.cidr} added on ${this.vip.vip.iface} (gratuitous ARP sent)`,
    );
    if (added) this.tickleOldClients();
  }

  /** Our clients, relayed in /health while we hold the VIP: the local probe lists them every
   *  round from pg_stat_activity, so a session opened a round before a failover is reset by the
   *  new holder too (a listing of the VIP's sockets in /proc/net/tcp walked the machine's whole TCP
   *  table: every 2 s, and a session younger than that was not reset). The peer agent's own
   *  sessions (its probes reach our address) are left out (vipClientsToRelay). */
  private listVipClients(): void {
    if (!this.vip || !this.vipHeld) {
      this.vipClients = [];
      return;
    }
    this.vipClients = vipClientsToRelay(
      this.lastLocal?.details.tcpClients ?? [],
      hostOf(this.cfg, this.peer),
      MAX_VIP_CLIENTS,
    );
  }

  /** Resets, through the tickle ACK, the connections the previous holder had on the VIP, so their
   *  clients reconnect to us now rather than at their next TCP retransmission. Not awaited: it
   *  takes under a second, and nothing else waits on it. */
  private tickleOldClients(): void {
    const vip = this.vip;
    const clients = this.peerVipClients;
    if (!vip || clients.length === 0) return;
    vip.tickle(this.cfg.postgres.port, clients).then(
      () =>
        this.log.info(
          { clients: clients.length },
          `tickled ${clients.length} client connection(s) the previous VIP holder had`,
        ),
      (e) =>
        this.log.warn(
          { err: errorText(e) },
          `cannot tickle the VIP's old clients (they reconnect at their next retransmission): ${errorText(e)}`,
        ),
    );
  }

  /** Removes the VIP; a failure is logged and does not stop what follows (a fence above all). */
  private async releaseVip(why: string): Promise<void> {
    if (!this.vip) return;
    try {
      const was = await this.vip.release();
      this.vipHeld = false;
      if (was) this.log.warn({ vip: this.vip.vip.cidr, why }, `VIP ${this.vip.vip.cidr} removed: ${why}`);
    } catch (e) {
      this.log.error({ err: errorText(e) }, `cannot remove the VIP: ${errorText(e)}`);
    }
  }

  /** Is the fence in place? Read every round while it is or may be; see FENCE_OFF_RECHECK_MS. */
  private async readFence(): Promise<boolean> {
    const k = this.fenceKnown;
    if (k && !k.fenced && Date.now() - k.at < FENCE_OFF_RECHECK_MS) return false;
    this.fenceKnown = null;
    const fenced = await this.telemetry.probe('fence', this.fence.isFenced());
    this.fenceKnown = { fenced, at: Date.now() };
    return fenced;
  }

  /** What /state and HAProxy's checks say about the fence follows an action at once, not the
   *  next round's observation. */
  private observedFence(fenced: boolean): void {
    this.fenceKnown = { fenced, at: Date.now() };
    if (this.lastObs) this.lastObs = { ...this.lastObs, fenced };
  }

  status(): AgentStatus {
    const l = this.lastLocal;
    const o = this.lastObs;
    const rec = this.state.record;
    return {
      node: this.cfg.node,
      host: hostOf(this.cfg, this.cfg.node),
      role: rec.primary === this.cfg.node ? 'primary' : 'standby',
      phase: this.phase,
      rule: this.rule,
      term: rec.term,
      record: rec,
      postgres: {
        up: l?.up ?? false,
        inRecovery: l?.inRecovery ?? null,
        receiving: l?.receiving ?? false,
        timeline: l?.details.timeline ?? null,
        lsn: l?.details.lsn ?? null,
      },
      replication: {
        peerState: l?.peerReplication?.state ?? null,
        syncState: l?.details.syncState ?? null,
        replayLagBytes: l?.details.replayLagBytes ?? null,
        syncNames: l?.details.syncNames ?? null,
        commitsWaitingMs: l?.syncWaitMs ?? 0,
      },
      fenced: o?.fenced ?? false,
      fence: { ...this.fences, budgetMs: this.cfg.timing.fenceActionBudgetMs },
      reach: {
        arbiter: o ? o.arbiter !== null : false,
        peerAgent: o ? o.peer !== null : false,
        primaryPostgres: rec.primary === this.cfg.node ? null : (o?.primaryPgOk ?? false),
      },
      lease: {
        enabled: this.cfg.lease === 'on',
        until: this.leaseUntil === null ? null : new Date(this.leaseUntil).toISOString(),
        remainingMs: this.leaseUntil === null ? null : Math.max(0, this.leaseUntil - Date.now()),
      },
      lastRejoin: this.lastRejoin,
      vip: this.vip ? { address: this.vip.vip.cidr, held: this.vipHeld } : null,
      busy: this.busy,
      updatedAt: new Date().toISOString(),
    };
  }

  /** A person's requests (src/agent/api.ts), answered by the core: null when accepted, else why not. */
  requestSwitchover(): string | null {
    const r = requestSwitchover(this.state, this.settings);
    this.state = r.state;
    if (!r.refused) this.wakeUp();
    return r.refused;
  }

  requestRejoin(): string | null {
    const r = requestRejoin(this.state, this.settings);
    this.state = r.state;
    if (!r.refused) this.wakeUp();
    return r.refused;
  }

  /** `pgarbiter failover --force` through this agent, when the arbiter is gone. */
  forcePromote(): { error: string } | { record: ClusterRecord } {
    const r = forcePromotion(
      this.state,
      this.settings,
      this.lastLocal?.up === true && this.lastLocal.inRecovery === true,
      Date.now(),
    );
    if ('error' in r) return r;
    this.setState(r.state);
    this.telemetry.forcePromote(r.record.term);
    this.log.warn(
      { record: r.record },
      `FORCED PROMOTION by a person without the arbiter: term ${r.record.term}`,
    );
    this.wakeUp();
    return { record: r.record };
  }

  /** SQL on the local server over the probes' kept connection (same options: the same connection). */
  private localQuery(sql: string): Promise<unknown> {
    const ms = Math.max(this.cfg.timing.probeTimeoutMs, 1000);
    return this.localPg.query({ ...this.ctl.local(ms), connectTimeoutMs: ms }, sql);
  }

  /** POST /wake: the peer is handing over to us. A promotion is expected: /primary checks are
   *  held for it (checkStatus). */
  expectPromotion(): void {
    this.promotionExpectedUntil = Date.now() + PROMOTION_EXPECTED_MS;
  }

  /**
   * The status HAProxy's check `kind` (/primary or /replica, asked with `?hold`) answers from,
   * held to make checks fewer and answers quicker. HAProxy starts a server's next check `inter`
   * (`downinter` on a server it has down) after the last one ended, and each check is a TLS
   * handshake, the dearest thing an idle agent does (bench/floor). Once the answer has been the
   * same for STEADY_ANSWER_MS:
   * - a pass is held for up to PASS_HOLD_MS, and becomes a 503 the moment the node stops passing
   *   (a fence, a switchover, a demotion);
   * - a 503 is held for up to CHECK_HOLD_MS, and becomes a 200 the moment the node passes.
   * On /primary a 503 is also held while a promotion is under way or expected, so the check in
   * flight when this node becomes writable marks it up at once. An answer that has just changed
   * is never held: HAProxy hears the news at the check that finds it (holding the first pass of a
   * new primary delayed its routing by the hold, 0.5 s, in 2 of 10 failovers of bench/failover).
   * Both holds end under HAProxy's `timeout check` (1 s): a held check ends as the answer the
   * status gives when it goes out, never as a false timeout of a node that answers.
   */
  async checkStatus(kind: HealthCheck): Promise<AgentStatus> {
    const passes = kind === 'primary' ? isWritablePrimary : isStreamingReplica;
    const start = Date.now();
    let s = this.status();
    const passing = passes(s);
    const last = this.answeredSince[kind];
    const hold = () =>
      checkHold({
        passing,
        last,
        start,
        primaryCheck: kind === 'primary',
        promoting: this.busy === 'promoting',
        promotionExpectedUntil: this.promotionExpectedUntil,
      });
    const { since } = hold();
    for (let until = hold().until; passes(s) === passing && Date.now() < until; until = hold().until) {
      await this.statusChangeOr(until);
      s = this.status();
    }
    const given = passes(s);
    this.answeredSince[kind] = { passing: given, since: given === passing ? since : Date.now() };
    return s;
  }

  /** What the agent is doing; a held check answers at once when it starts doing something. */
  private setBusy(what: string | null): void {
    this.busy = what;
    this.statusChanged();
  }

  /** Resolves when the status may have changed (statusChanged) or at `until`, whichever is first. */
  private statusChangeOr(until: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.statusWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, until - Date.now()));
      this.statusWaiters.add(done);
    });
  }

  /** Wakes the held checks to look again. */
  private statusChanged(): void {
    for (const done of [...this.statusWaiters]) done();
  }

  /** Runs the next round now instead of at the end of probe_interval. */
  wakeUp(): void {
    this.wake?.();
  }

  /** Fails fast, with what to install, when a tool the agent needs is missing. */
  private async preflight(): Promise<void> {
    if (!existsSync(join(this.cfg.postgres.bin_dir, 'pg_ctl')))
      throw new UserError(
        `${this.cfg.postgres.bin_dir}/pg_ctl not found: install postgresql-15 (apt-get install -y postgresql-15) or set postgres.bin_dir`,
      );
    const osUser = this.cfg.postgres.os_user;
    if (process.getuid?.() !== 0) {
      if (userInfo().username !== osUser)
        throw new UserError(
          `the agent runs as ${userInfo().username}: run it as ${osUser} (postgres.os_user, the owner of the data directory) with CAP_NET_ADMIN, or as root`,
        );
      // Its own HOME, whatever started it (setpriv and sudo keep root's): libpq in pg_basebackup,
      // pg_rewind and PostgreSQL's walreceiver reads ~/.postgresql/ and fails on a HOME it may not
      // enter ("could not open certificate file /root/.postgresql/postgresql.crt").
      process.env.HOME = userInfo().homedir;
    }
    try {
      await this.fence.dryRun();
    } catch (e) {
      // An agent that cannot fence must not run a database node: the safety invariants count on it.
      const why = (e as Error).message.replace(/\s+/g, ' ');
      if (deniedByKernel((e as Error).message))
        throw new UserError(
          `cannot fence: ${this.cfg.fence_mechanism} was refused (${why.replace(/^.* exited with \d+: /, '')}): give the agent CAP_NET_ADMIN (systemd AmbientCapabilities=CAP_NET_ADMIN, compose cap_add: [NET_ADMIN]) or run it as root`,
        );
      throw new UserError(
        `cannot fence: ${this.cfg.fence_mechanism} failed (${why}): install it (apt-get install -y ${this.cfg.fence_mechanism === 'nft' ? 'nftables' : 'iptables'}) and give the agent CAP_NET_ADMIN (systemd AmbientCapabilities=CAP_NET_ADMIN, compose cap_add: [NET_ADMIN]) or run it as root`,
      );
    }
    try {
      // lease: off removes a lease table left from when it was on (it would block clients).
      if (this.cfg.lease === 'off') await this.lease.open();
      else await this.lease.state();
    } catch (e) {
      throw new UserError(
        `lease: on needs nft (${(e as Error).message}): install it (apt-get install -y nftables) and give the agent CAP_NET_ADMIN or run it as root, or set lease: off`,
      );
    }
    if (this.vip) await this.vip.check(hostOf(this.cfg, this.peer));
  }

  async run(): Promise<void> {
    await this.preflight();
    if (this.vip) this.vipHeld = await this.vip.held();
    const routes = [...agentRoutes(this), ...this.telemetry.routes()];
    const server = await serve(
      routes,
      this.cfg.secret,
      '0.0.0.0',
      this.cfg.api_port,
      tlsMaterial(this.cfg.tls),
    );
    this.telemetry.started(this.state.record.term, this.status().role);
    this.log.info(
      { port: this.cfg.api_port, timing: this.cfg.timing, record: this.state.record },
      'agent started',
    );
    const stop = () => {
      this.stopping = true;
      this.wake?.();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    while (!this.stopping) {
      const started = Date.now();
      try {
        await this.round();
      } catch (e) {
        this.log.error({ err: errorText(e) }, `round failed: ${errorText(e)}`);
      }
      const iAmPrimary = this.state.record.primary === this.cfg.node;
      const interval = roundIntervalMs(this.lastObs, iAmPrimary, this.cfg.timing.probeIntervalMs);
      const wait = Math.max(10, interval - (Date.now() - started));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    await this.releaseVip('agent stopping');
    server.close();
    server.closeAllConnections();
    this.localPg.close();
    this.primaryPg.close();
    this.lease.close(); // its nft shell only: the lease's table stays (below)
    // The lease is left too: a primary whose agent is stopped cannot fence, so its lease lapses
    // and it stops serving clients until an agent runs again (README "The lease").
    this.log.info('agent stopped (PostgreSQL, the fence and the lease are left as they are)');
    await sleep(0);
  }
}
