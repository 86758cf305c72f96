// The database node's agent: every probe_interval it observes (local PostgreSQL, fence, arbiter,
// peer), asks the pure core what to do, and does it. It also serves the small HTTP API.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { hostOf, otherNode } from '../config.js';
import { decideAgent, startingAgentState } from '../core/agent.js';
import type {
  AgentAction,
  AgentObservation,
  AgentSettings,
  AgentState,
  ClusterRecord,
} from '../core/types.js';
import { Fence, TERMINATE_CLIENTS_SQL } from '../fence/iptables.js';
import { errorText } from '../postgres/client.js';
import { PgControl } from '../postgres/control.js';
import { initialPrimary } from '../postgres/provision.js';
import { isSyncMode } from '../postgres/settings.js';
import { readJsonFile, writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { sleep } from '../util/exec.js';
import { callJson, serve } from '../util/http.js';
import { createLogger, type Logger } from '../util/log.js';
import { agentRoutes } from './api.js';
import { ArbiterClient } from './arbiter-client.js';
import { type LocalObservation, probeLocal, probePrimaryPg, SyncWaitClock } from './probes.js';
import { ensureSlot, handover, promoteLocal, type RejoinResult, rejoin, setSyncNames } from './procedures.js';

export interface AgentStatus {
  node: string;
  host: string;
  role: 'primary' | 'standby';
  phase: string;
  term: number;
  record: ClusterRecord;
  postgres: {
    up: boolean;
    inRecovery: boolean | null;
    receiving: boolean;
    timeline: number | null;
    lsn: string | null;
  };
  replication: {
    peerState: string | null;
    syncState: string | null;
    replayLagBytes: number | null;
    syncNames: string | null;
    /** The oldest commit now waiting for the synchronous standby has waited this long. */
    commitsWaitingMs: number;
  };
  fenced: boolean;
  reach: { arbiter: boolean; peerAgent: boolean; primaryPostgres: boolean | null };
  lastRejoin: (RejoinResult & { at: string }) | null;
  busy: string | null;
  updatedAt: string;
}

export class Agent {
  readonly ctl: PgControl;
  readonly fence: Fence;
  readonly arbiter: ArbiterClient;
  readonly log: Logger;
  readonly peer: string;
  private state: AgentState;
  private readonly statePath: string;
  private readonly settings: AgentSettings;
  private lastLocal: LocalObservation | null = null;
  private lastObs: AgentObservation | null = null;
  private phase = 'starting';
  private busy: string | null = null;
  private readonly syncWaits = new SyncWaitClock();
  /** As primary: when the arbiter last confirmed our term (a vouch, see AgentObservation). */
  private confirmedAt: number | null = null;
  /** As standby: when our own probe last reached `node`'s PostgreSQL (what /health vouches). */
  private primarySeen: { node: string; at: number } | null = null;
  /** As standby: the term in which a promotion request went out; no vouching in that term
   *  unless it was refused (a grant may be in flight). */
  private promotionAskedInTerm: number | null = null;
  private switchoverTo: string | null = null;
  private manualRejoin = false;
  private lastRejoin: AgentStatus['lastRejoin'] = null;
  private wake: (() => void) | null = null;
  private stopping = false;

  constructor(readonly cfg: Config) {
    this.ctl = new PgControl(cfg);
    this.fence = new Fence(cfg.postgres.port, hostOf(cfg, otherNode(cfg, cfg.node).name));
    this.arbiter = new ArbiterClient(cfg, Math.max(1000, cfg.timing.probeTimeoutMs));
    this.log = createLogger('agent', { node: cfg.node }, cfg.log_file);
    this.peer = otherNode(cfg, cfg.node).name;
    mkdirSync(cfg.state_dir, { recursive: true, mode: 0o700 });
    this.statePath = join(cfg.state_dir, `agent-${cfg.node}.json`);
    const saved = readJsonFile<{ record: ClusterRecord }>(this.statePath);
    const primary = initialPrimary(cfg);
    const record = saved?.record ?? {
      term: 1,
      primary,
      standby: otherNode(cfg, primary).name,
      standbyPromotable: false,
      maintenance: false,
    };
    this.state = startingAgentState(record, Date.now(), cfg.timing.fenceTimeoutMs);
    this.settings = {
      me: cfg.node,
      timing: cfg.timing,
      syncReplication: isSyncMode(cfg.postgres.synchronous_commit),
      strictSync: cfg.postgres.sync_mode === 'strict',
      autoRejoin: cfg.rejoin === 'auto',
    };
  }

  private persistRecord(record: ClusterRecord): void {
    writeFileAtomic(this.statePath, JSON.stringify({ record }));
  }

  private adopt(record: ClusterRecord): void {
    if (record.term < this.state.record.term) return;
    // Named primary by this record (a grant, a handover, a forced failover): our confirmation.
    if (record.primary === this.cfg.node && this.state.record.primary !== this.cfg.node)
      this.confirmedAt = Date.now();
    const changed = JSON.stringify(record) !== JSON.stringify(this.state.record);
    this.state = { ...this.state, record };
    if (changed) this.persistRecord(record);
  }

  /** What /health vouches for: as the standby, when we last reached the primary's PostgreSQL.
   *  The primary keeps serving only while the arbiter or this vouch says it is reachable. */
  vouch(): { primary: string; seenMsAgo: number } | null {
    const rec = this.state.record;
    if (rec.standby !== this.cfg.node || this.promotionAskedInTerm === rec.term) return null;
    if (!this.primarySeen || this.primarySeen.node !== rec.primary) return null;
    return { primary: rec.primary, seenMsAgo: Date.now() - this.primarySeen.at };
  }

  async observe(): Promise<AgentObservation> {
    const t = this.cfg.timing;
    const rec = this.state.record;
    const iAmPrimary = rec.primary === this.cfg.node;
    const roundStart = Date.now();
    const [local, fenced, arbiterView, peerHealth, primaryPgOk] = await Promise.all([
      probeLocal(this.ctl, this.peer, Math.max(t.probeTimeoutMs, 1000), this.syncWaits),
      this.fence.isFenced().catch((e) => {
        this.log.error({ err: (e as Error).message }, 'cannot read the fence state');
        return true; // unknown: assume fenced, so a primary asks the arbiter before serving
      }),
      this.arbiter.view(t.probeTimeoutMs),
      callJson<{ vouches?: { primary: string; seenMsAgo: number } | null }>(
        `http://${hostOf(this.cfg, this.peer)}:${this.cfg.api_port}/health`,
        { timeoutMs: t.probeTimeoutMs },
      ).then(
        (r) => (r.status === 200 ? r.body : null),
        () => null,
      ),
      iAmPrimary
        ? Promise.resolve(false)
        : probePrimaryPg(this.ctl, hostOf(this.cfg, rec.primary), t.probeTimeoutMs),
    ]);
    this.lastLocal = local;
    const arbiter = arbiterView?.record ?? null;
    const peerAgentOk = peerHealth !== null;
    if (primaryPgOk) this.primarySeen = { node: rec.primary, at: roundStart };
    // Vouches are converted to our clock from the start of this round (the answers came later):
    // an earlier estimate can only make us fence sooner.
    const me = this.cfg.node;
    const vouches: number[] = [];
    if (arbiterView && arbiterView.record.primary === me && arbiterView.primaryVouchedMsAgo !== null)
      vouches.push(roundStart - arbiterView.primaryVouchedMsAgo);
    const pv = peerHealth?.vouches;
    if (pv && pv.primary === me && typeof pv.seenMsAgo === 'number' && pv.seenMsAgo >= 0)
      vouches.push(roundStart - pv.seenMsAgo);
    if (this.confirmedAt !== null) vouches.push(this.confirmedAt);
    // A primary without its standby connected makes sure the standby's slot exists (a promoted
    // node has none for its new standby).
    if (iAmPrimary && local.inRecovery === false && !local.peerReplication)
      await ensureSlot(this.ctl, this.peer).catch(() => {});
    return {
      now: Date.now(),
      local,
      fenced,
      arbiter,
      peerAgentOk,
      vouchedAt: vouches.length ? Math.max(...vouches) : null,
      primaryPgOk,
      switchoverRequested: this.switchoverTo !== null,
    };
  }

  async round(): Promise<void> {
    const obs = await this.observe();
    this.lastObs = obs;
    if (obs.arbiter && obs.arbiter.term < this.state.record.term) {
      // We hold a newer term than the arbiter (a failover forced while it was unreachable).
      const reply = await this.arbiter.post('/adopt', { record: this.state.record });
      this.log.warn(
        { ok: reply.ok, reason: reply.reason },
        `arbiter behind (term ${obs.arbiter.term}): ${reply.reason}`,
      );
    }
    if (this.manualRejoin) {
      this.manualRejoin = false;
      await this.execute({ kind: 'fence', reason: 'manual rejoin' });
      await this.execute({
        kind: 'rejoin',
        primary: this.state.record.primary,
        reason: 'requested by a person',
      });
      return;
    }
    const prevRecord = this.state.record;
    const decision = decideAgent(this.state, obs, this.settings);
    this.state = decision.state;
    if (
      decision.state.record !== prevRecord &&
      JSON.stringify(decision.state.record) !== JSON.stringify(prevRecord)
    ) {
      this.persistRecord(decision.state.record);
      this.log.info(
        { record: decision.state.record },
        `cluster record: term ${decision.state.record.term}, primary ${decision.state.record.primary}`,
      );
    }
    if (decision.phase !== this.phase)
      this.log.info({ from: this.phase, to: decision.phase }, `phase ${decision.phase}`);
    this.phase = decision.phase;
    this.switchoverTo = null;
    for (const action of decision.actions) {
      try {
        await this.execute(action);
      } catch (e) {
        this.log.error({ action, err: errorText(e) }, `${action.kind} failed: ${errorText(e)}`);
        break;
      } finally {
        this.busy = null;
      }
    }
  }

  async execute(a: AgentAction): Promise<void> {
    const log = this.log;
    switch (a.kind) {
      case 'note':
        log[a.level]({}, a.msg);
        return;
      case 'fence': {
        this.busy = 'fencing';
        const t0 = Date.now();
        await this.fence.fence();
        const n = await this.ctl
          .query<{ n: number }>(TERMINATE_CLIENTS_SQL, [], 1000)
          .then((r) => r[0]?.n ?? 0)
          .catch(() => 0);
        log.warn(
          { reason: a.reason, terminated: n, ms: Date.now() - t0 },
          `FENCED: ${a.reason} (iptables rule inserted, ${n} client sessions terminated)`,
        );
        return;
      }
      case 'unfenceAsPrimary': {
        const asked = Date.now();
        const reply = await this.arbiter.post('/confirm-primary', {
          node: this.cfg.node,
          term: this.state.record.term,
        });
        if (!reply.ok) {
          log.warn(
            { reason: reply.reason },
            `staying fenced: arbiter did not confirm our term: ${reply.reason}`,
          );
          if (reply.record) this.adopt(reply.record);
          return;
        }
        this.confirmedAt = asked;
        await this.fence.unfence();
        log.warn(
          { term: this.state.record.term },
          `UNFENCED: arbiter confirmed primary of term ${this.state.record.term}`,
        );
        return;
      }
      case 'unfenceAsStandby':
        await this.fence.unfence();
        log.warn({}, 'UNFENCED as standby (read-only)');
        return;
      case 'startPostgres':
        this.busy = 'starting PostgreSQL';
        log.warn({ reason: a.reason }, `starting PostgreSQL: ${a.reason}`);
        await this.ctl.start();
        return;
      case 'requestPromotion': {
        this.promotionAskedInTerm = a.term;
        const reply = await this.arbiter.post('/promote', { node: this.cfg.node, term: a.term });
        if (!reply.ok) {
          this.promotionAskedInTerm = null;
          log.info({ reason: reply.reason }, `promotion refused: ${reply.reason}`);
          if (reply.record) this.adopt(reply.record);
          return;
        }
        log.warn({ record: reply.record }, `PROMOTION GRANTED: ${reply.reason}`);
        if (reply.record) this.adopt(reply.record);
        this.busy = 'promoting';
        await promoteLocal(this.ctl, this.peer, log);
        return;
      }
      case 'promote':
        this.busy = 'promoting';
        log.warn({ term: a.term }, `record names us primary of term ${a.term}: promoting`);
        await promoteLocal(this.ctl, this.peer, log);
        return;
      case 'degradeSync': {
        const reply = await this.arbiter.post('/set-promotable', {
          node: this.cfg.node,
          term: a.term,
          promotable: false,
        });
        if (!reply.ok) {
          log.warn(
            { reason: reply.reason },
            `keeping synchronous replication: arbiter refused: ${reply.reason}`,
          );
          if (reply.record) this.adopt(reply.record);
          return;
        }
        if (reply.record) this.adopt(reply.record);
        await setSyncNames(this.ctl, false);
        log.warn(
          {},
          `SYNC DROPPED: ${this.peer} stopped acknowledging; arbiter marked it not promotable first`,
        );
        return;
      }
      case 'restoreSync': {
        await ensureSlot(this.ctl, this.peer);
        await setSyncNames(this.ctl, true);
        log.warn(
          {},
          `SYNC ON again for ${this.peer}; promotable once it has flushed every commit acknowledged without it`,
        );
        return;
      }
      case 'setPromotable': {
        const reply = await this.arbiter.post('/set-promotable', {
          node: this.cfg.node,
          term: a.term,
          promotable: a.promotable,
        });
        if (reply.record) this.adopt(reply.record);
        if (a.promotable && this.settings.syncReplication)
          log.warn(
            { ok: reply.ok, reason: reply.reason },
            reply.ok
              ? `SYNC RESTORED: ${this.peer} is a synchronous standby again, holds every acknowledged commit, and is promotable`
              : `standby still not promotable: ${reply.reason}`,
          );
        else
          log.info(
            { ok: reply.ok, reason: reply.reason },
            `standby ${a.promotable ? 'promotable' : 'not promotable'}: ${reply.reason}`,
          );
        return;
      }
      case 'rejoin': {
        this.busy = 'rejoining';
        log.warn({ primary: a.primary, reason: a.reason }, `REJOIN as standby of ${a.primary}: ${a.reason}`);
        const r = await rejoin(this.ctl, this.cfg, a.primary, log);
        this.lastRejoin = { ...r, at: new Date().toISOString() };
        await this.fence.unfence();
        log.warn({}, 'UNFENCED as standby (read-only)');
        return;
      }
      case 'handover': {
        this.busy = 'switchover';
        await this.execute({ kind: 'fence', reason: `switchover to ${a.to}` });
        this.busy = 'switchover';
        const ok = await handover(this.ctl, this.cfg, a.to, a.term, this.arbiter, log);
        if (ok) {
          const rec = await this.arbiter.record(2000);
          if (rec) this.adopt(rec);
          // Let the new primary act now rather than at its next round.
          await callJson(`http://${hostOf(this.cfg, a.to)}:${this.cfg.api_port}/wake`, {
            method: 'POST',
            secret: this.cfg.secret,
            timeoutMs: 1000,
          }).catch(() => {});
        }
        return;
      }
    }
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
      reach: {
        arbiter: o ? o.arbiter !== null : false,
        peerAgent: o?.peerAgentOk ?? false,
        primaryPostgres: rec.primary === this.cfg.node ? null : (o?.primaryPgOk ?? false),
      },
      lastRejoin: this.lastRejoin,
      busy: this.busy,
      updatedAt: new Date().toISOString(),
    };
  }

  /** The agent's answers to a person's requests (src/agent/api.ts): null when accepted, else why not. */
  requestSwitchover(): string | null {
    if (this.status().role !== 'primary') return `${this.cfg.node} is not the primary`;
    this.switchoverTo = this.peer;
    this.wakeUp();
    return null;
  }

  requestRejoin(): string | null {
    if (this.status().role === 'primary') return `${this.cfg.node} is the primary of record`;
    this.manualRejoin = true;
    this.wakeUp();
    return null;
  }

  /** A person's last resort when the arbiter is gone (`pgarbiter failover --force`): take the next
   *  term ourselves; the arbiter adopts it when it is back. */
  forcePromote(): { error: string } | { record: ClusterRecord } {
    const s = this.status();
    if (s.role === 'primary') return { error: `${this.cfg.node} is already the primary` };
    if (s.postgres.inRecovery !== true) return { error: `${this.cfg.node} is not a running standby` };
    const rec = this.state.record;
    const record = {
      ...rec,
      term: rec.term + 1,
      primary: this.cfg.node,
      standby: rec.primary,
      standbyPromotable: false,
    };
    this.confirmedAt = Date.now(); // a person's order stands in for the arbiter's confirmation
    this.state = { ...this.state, record };
    this.persistRecord(record);
    this.log.warn({ record }, `FORCED PROMOTION by a person without the arbiter: term ${record.term}`);
    this.wakeUp();
    return { record };
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
    try {
      await this.fence.isFenced();
    } catch (e) {
      throw new UserError(
        `cannot use iptables (${(e as Error).message}): install it (apt-get install -y iptables) and run the agent as root`,
      );
    }
  }

  async run(): Promise<void> {
    await this.preflight();
    const server = await serve(agentRoutes(this), this.cfg.secret, '0.0.0.0', this.cfg.api_port);
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
      const wait = Math.max(10, this.cfg.timing.probeIntervalMs - (Date.now() - started));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    server.close();
    server.closeAllConnections();
    this.log.info('agent stopped (PostgreSQL and the fence are left as they are)');
    await sleep(0);
  }
}
