// Scenarios: two agents (pg1, pg2) and one arbiter, wired through a simulated clock and a simulated
// network. The decisions are the real ones: decideAgent, agentOnReply and vouchOf for the agents,
// arbiterObserve, arbiterHandle and arbiterView for the arbiter, startingAgentState from what the
// agent persisted (persistedOf) on a restart; the shell below only models the effects of the
// actions (PostgreSQL, the fence, the network, lost messages) the way the daemons carry them out. Every
// fault of the lab is driven, and after every simulated tick the safety invariants are checked:
//   1. a write is acknowledged only by the primary of the arbiter's current record (so no write is
//      acknowledged by a node after another was granted a newer term);
//   2. with synchronous replication, every acknowledged write is on the arbiter's primary (nothing
//      acknowledged is lost by a failover, a switchover or a rejoin);
//   3. no promotion without a grant; no grant unless the arbiter itself lost the primary for
//      failover_timeout and the record said the standby was promotable; one grant per term;
//   4. once the fault heals, the cluster returns by itself to one unfenced primary and one
//      streaming standby within a bounded time.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { leaseDurationMs, TIMING_PROFILES } from '../../src/config.js';
import {
  agentOnReply,
  decideAgent,
  handoverSending,
  handoverSettled,
  initialAgentState,
  NOT_RECEIVING_REJOIN_MS,
  persistedOf,
  requestRejoin,
  requestSwitchover,
  startingAgentState,
  vouchOf,
} from '../../src/core/agent.js';
import {
  type ArbiterRequest,
  type ArbiterSettings,
  type ArbiterState,
  arbiterHandle,
  arbiterObserve,
  arbiterView,
  initialArbiterState,
} from '../../src/core/arbiter.js';
import type {
  AgentAction,
  AgentObservation,
  AgentSettings,
  AgentState,
  ArbiterReply,
  ClusterRecord,
  CoreTiming,
  PersistedAgentState,
} from '../../src/core/types.js';
import { prng } from '../../src/util/prng.js';

type Profile = keyof typeof TIMING_PROFILES;
/** sync: remote_apply with fallback; strict: never drop sync; async: synchronous_commit local/off. */
type Mode = 'sync' | 'strict' | 'async';
type Proc = 'running' | 'paused' | 'stopped';

const TICK = 50;
const W = 'arbiter';

interface Pg {
  up: boolean;
  /** SIGSTOPped with its host: answers nothing, writes nothing. */
  frozen: boolean;
  /** Cannot start (a broken data directory, a full disk) until repaired. */
  broken: boolean;
  /** Its port refuses everyone but itself (a filter, max_connections, packet loss on the port):
   *  the peers' agents still talk to its agent. */
  blocked: boolean;
  inRecovery: boolean;
  standbySignal: boolean;
  upstream: string | null;
  syncNames: boolean;
  /** Ids of the writes this server holds, in order: a standby's log must be a prefix of its
   *  upstream's to stream (otherwise its timeline forked and it needs a rewind). */
  log: number[];
}

interface SimNode {
  name: string;
  agent: Proc;
  state: AgentState;
  settings: AgentSettings;
  pg: Pg;
  fenced: boolean;
  /** The kernel-side lease: clients are served until this moment; +Infinity: no lease table (a
   *  standby, or a fresh node before its agent's first round). The kernel keeps it whatever the
   *  agent does: a stopped or paused agent leaves it to lapse. */
  lease: number;
  offset: number;
  phase: string;
  /** As primary: when the oldest commit now waiting for its synchronous standby began waiting. */
  syncWaitSince: number | null;
  /** As primary: when its standby last streamed from it (for the walsender's stale view). */
  standbyStreamedAt: number;
  /** What the agent wrote to disk (the daemon's state file): a restart starts from it. */
  persisted: PersistedAgentState;
}

/** A standby that vanishes without a TCP reset (frozen, or its link cut) still shows as
 *  streaming in the primary's pg_stat_replication until wal_sender_timeout (5 s in the lab). A
 *  stopped server resets its connections and disappears at once. */
const WAL_SENDER_TIMEOUT_MS = 5000;
const lsn = (log: number[]) => `0/${log.length.toString(16).toUpperCase()}`;

interface Options {
  profile: Profile;
  mode: Mode;
  autoRejoin?: boolean;
  /** Round phase of pg1, pg2 and the arbiter, as fractions of probe_interval. */
  offsets?: [number, number, number];
  /** Overrides of the profile (only to show that a broken timing rule is caught). */
  timing?: Partial<CoreTiming>;
  /** The primary holds the kernel-side lease (`lease: on`, the default): default true. */
  lease?: boolean;
  /** Overrides the lease's duration (only to show that a lease longer than the rule is caught). */
  leaseMs?: number;
}

class Sim {
  readonly timing: CoreTiming;
  readonly budget: number;
  readonly leaseMs: number | undefined;
  readonly arbSettings: ArbiterSettings;
  now = 0;
  readonly nodes: Record<string, SimNode>;
  arb: { proc: Proc; state: ArbiterState; offset: number };
  private readonly cut = new Set<string>();
  /** The answer to the next granted promotion is lost, and the arbiter's host is cut from the
   *  standby right after (the grant happened; the standby does not know). */
  loseGrantAnswer = false;
  /** The next handover request is held in the network this long: its sender hears nothing (it
   *  gives up on the switchover), and the arbiter gets it afterwards (TCP retransmitted it once a
   *  cut healed). */
  delayNextHandoverMs: number | null = null;
  private readonly lateRequests: { at: number; from: string; req: ArbiterRequest }[] = [];
  /** Links that drop each message with a probability (packet loss), from a seeded generator. */
  private readonly lossy = new Map<string, number>();
  private readonly lossRandom = prng(7);
  private writeSeq = 0;
  readonly acked = new Set<number>();
  readonly acks: { node: string; at: number }[] = [];
  readonly grants: { term: number; node: string; at: number; kind: string }[] = [];
  readonly promotions: { node: string; term: number; at: number }[] = [];
  readonly fences: { node: string; at: number; reason: string }[] = [];
  readonly notes: { node: string; at: number; msg: string }[] = [];
  readonly trace: string[] = [];
  /** Last tick at which the arbiter's host could reach the recorded primary's PostgreSQL. */
  private primaryReachableAt = 0;
  /** Writes acknowledged by a forced failover may be lost: stop checking invariant 2. */
  private forced = false;

  constructor(readonly opts: Options) {
    const p = TIMING_PROFILES[opts.profile];
    this.timing = {
      probeIntervalMs: p.probe_interval,
      fenceTimeoutMs: p.fence_timeout,
      failoverTimeoutMs: p.failover_timeout,
      syncStallTimeoutMs: p.sync_stall_timeout,
      ...opts.timing,
    };
    this.budget = p.fence_action_budget;
    // The daemon's lease duration (src/config.ts).
    this.leaseMs =
      opts.lease === false
        ? undefined
        : (opts.leaseMs ??
          leaseDurationMs({
            ...this.timing,
            probeTimeoutMs: p.probe_timeout,
            fenceActionBudgetMs: this.budget,
          }));
    this.arbSettings = {
      failoverTimeoutMs: this.timing.failoverTimeoutMs,
      fenceTimeoutMs: this.timing.fenceTimeoutMs,
    };
    const record: ClusterRecord = {
      term: 1,
      primary: 'pg1',
      standby: 'pg2',
      standbyPromotable: opts.mode !== 'async',
      maintenance: false,
    };
    const [o1, o2, ow] = (opts.offsets ?? [0, 0.4, 0.7]).map(
      (f) => Math.round((f * p.probe_interval) / TICK) * TICK,
    ) as [number, number, number];
    const sync = opts.mode !== 'async';
    const mk = (name: string, primary: boolean, offset: number): SimNode => ({
      name,
      agent: 'running',
      state: initialAgentState(record, 0),
      settings: {
        me: name,
        timing: this.timing,
        syncReplication: sync,
        strictSync: opts.mode === 'strict',
        autoRejoin: opts.autoRejoin ?? true,
        ...(this.leaseMs !== undefined ? { leaseMs: this.leaseMs } : {}),
      },
      pg: {
        up: true,
        frozen: false,
        broken: false,
        blocked: false,
        inRecovery: !primary,
        standbySignal: !primary,
        upstream: primary ? null : 'pg1',
        syncNames: primary && sync,
        log: [],
      },
      fenced: false,
      lease: Number.POSITIVE_INFINITY,
      offset,
      phase: 'starting',
      syncWaitSince: null,
      standbyStreamedAt: 0,
      persisted: { record, promotionAskedInTerm: null },
    });
    this.nodes = { pg1: mk('pg1', true, o1), pg2: mk('pg2', false, o2) };
    this.arb = { proc: 'running', state: initialArbiterState(record, 0), offset: ow };
  }

  // ---- the network and the processes -------------------------------------------------------

  private key(a: string, b: string): string {
    return [a, b].sort().join('|');
  }
  cutLink(a: string, b: string): void {
    this.cut.add(this.key(a, b));
  }
  /** Cuts every link of a host. */
  isolate(host: string): void {
    for (const other of ['pg1', 'pg2', W]) if (other !== host) this.cutLink(host, other);
  }
  /** Each message between a and b is lost with probability `p` (0 ends the loss). */
  lose(a: string, b: string, p: number): void {
    if (p > 0) this.lossy.set(this.key(a, b), p);
    else this.lossy.delete(this.key(a, b));
  }
  heal(): void {
    this.cut.clear();
    this.lossy.clear();
  }
  link(a: string, b: string): boolean {
    return a !== b && !this.cut.has(this.key(a, b));
  }
  /** One message from a to b gets through (the link is up and the loss spared it). */
  delivered(a: string, b: string): boolean {
    if (!this.link(a, b)) return false;
    const p = this.lossy.get(this.key(a, b));
    return p === undefined || this.lossRandom() >= p;
  }
  node(name: string): SimNode {
    const n = this.nodes[name];
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }
  peerOf(n: SimNode): SimNode {
    return this.node(n.name === 'pg1' ? 'pg2' : 'pg1');
  }
  get record(): ClusterRecord {
    return this.arb.state.record;
  }

  /** Can `from` open a connection to `target`'s PostgreSQL? The fence rejects everyone but the
   *  peer database node (its walreceiver and its probes), as the real rule does. */
  pgReachable(from: string, target: SimNode): boolean {
    if (target.pg.blocked && from !== target.name) return false;
    const fencedOut = target.fenced && from !== this.peerOf(target).name;
    return this.link(from, target.name) && target.pg.up && !target.pg.frozen && !fencedOut;
  }
  /** One probe from `from` of `target` as a writable primary (a message that loss may drop). */
  probeWritable(from: string, target: SimNode): boolean {
    return this.writablePrimaryReachable(from, target) && this.delivered(from, target.name);
  }
  writablePrimaryReachable(from: string, target: SimNode): boolean {
    return this.pgReachable(from, target) && !target.pg.inRecovery;
  }
  /** The arbiter gets `from`'s message, and `from` gets the answer (each may be lost). */
  arbiterAnswers(from: SimNode): boolean {
    return this.arb.proc === 'running' && this.delivered(from.name, W) && this.delivered(W, from.name);
  }
  /** Is `s` streaming from `p` (and so, in this model, caught up)? */
  streams(s: SimNode, p: SimNode): boolean {
    if (s === p || !s.pg.up || s.pg.frozen || !s.pg.inRecovery || s.pg.upstream !== p.name) return false;
    if (!this.writablePrimaryReachable(s.name, p)) return false;
    const a = s.pg.log;
    const b = p.pg.log;
    return a.length <= b.length && a.every((id, i) => b[i] === id);
  }
  private replicate(): void {
    for (const s of Object.values(this.nodes)) {
      const p = s.pg.upstream ? this.node(s.pg.upstream) : null;
      if (p && this.streams(s, p)) s.pg.log = [...p.pg.log];
    }
  }

  pauseAgent(name: string): void {
    this.node(name).agent = 'paused';
  }
  resumeAgent(name: string): void {
    this.node(name).agent = 'running';
  }
  /** Stops the whole database host's processes: agent and PostgreSQL (kill -9). */
  stopHost(name: string): void {
    const n = this.node(name);
    n.agent = 'stopped';
    n.pg.up = false;
  }
  /** Stops only the agent process (PostgreSQL keeps running and serving). */
  stopAgent(name: string): void {
    this.node(name).agent = 'stopped';
  }
  /** Starts the agent again: a fresh process, from what it persisted, as the daemon does.
   *  PostgreSQL is the agent's job. */
  startAgent(name: string): void {
    const n = this.node(name);
    n.agent = 'running';
    n.state = startingAgentState(n.persisted, this.now, this.timing);
  }
  /** SIGSTOP of every process of a database host (agent and PostgreSQL). */
  freezeHost(name: string): void {
    const n = this.node(name);
    n.agent = 'paused';
    n.pg.frozen = true;
  }
  thawHost(name: string): void {
    const n = this.node(name);
    n.agent = 'running';
    n.pg.frozen = false;
  }
  /** Peers can no longer reach `name`'s PostgreSQL, though they still reach its agent. */
  blockPg(name: string, blocked = true): void {
    this.node(name).pg.blocked = blocked;
  }
  killPg(name: string, broken = false): void {
    const n = this.node(name);
    n.pg.up = false;
    n.pg.broken = broken;
  }
  repairPg(name: string): void {
    this.node(name).pg.broken = false;
  }
  stopArbiter(): void {
    this.arb.proc = 'stopped';
  }
  /** A restarted arbiter reads its persisted record and observes afresh. */
  startArbiter(): void {
    this.arb = { ...this.arb, proc: 'running', state: initialArbiterState(this.arb.state.record, this.now) };
  }
  pauseArbiter(): void {
    this.arb.proc = 'paused';
  }
  resumeArbiter(): void {
    this.arb.proc = 'running';
  }
  /** A person's request to the arbiter (CLI): maintenance, forced failover. */
  operator(req: ArbiterRequest): boolean {
    const a = arbiterHandle(this.arb.state, req, this.now, this.arbSettings);
    if (a.ok) this.arbiterChanged(a.state, req, 'operator');
    return a.ok;
  }

  // ---- the shell: one agent round, with the actions' effects ---------------------------------

  private observe(n: SimNode): AgentObservation {
    const peer = this.peerOf(n);
    const up = n.pg.up && !n.pg.frozen;
    const primaryName = n.state.record.primary;
    const asPrimary = up && !n.pg.inRecovery;
    const streamsNow = asPrimary && this.streams(peer, n);
    const staleWalsender =
      asPrimary &&
      !streamsNow &&
      peer.pg.up &&
      peer.pg.inRecovery &&
      peer.pg.upstream === n.name &&
      this.now - n.standbyStreamedAt < WAL_SENDER_TIMEOUT_MS;
    const peerAnswers =
      peer.agent === 'running' && this.delivered(n.name, peer.name) && this.delivered(peer.name, n.name);
    return {
      startedAt: this.now,
      now: this.now,
      local: {
        up,
        inRecovery: up ? n.pg.inRecovery : null,
        peerReplication:
          streamsNow || staleWalsender
            ? {
                state: 'streaming',
                syncState: n.pg.syncNames ? 'sync' : 'async',
                caughtUp: true,
                flushLsn: lsn(peer.pg.log),
              }
            : null,
        syncNamesActive: n.pg.syncNames,
        syncWaitMs: asPrimary && n.syncWaitSince !== null ? this.now - n.syncWaitSince : 0,
        currentLsn: asPrimary ? lsn(n.pg.log) : null,
        receiving: up && n.pg.inRecovery && !!n.pg.upstream && this.streams(n, this.node(n.pg.upstream)),
        standbySignal: n.pg.standbySignal,
      },
      fenced: n.fenced,
      // What the daemons' routes answer: the arbiter's /state and the peer agent's /health.
      arbiter: this.arbiterAnswers(n) ? arbiterView(this.arb.state, this.now) : null,
      peer: peerAnswers
        ? { node: peer.name, record: peer.state.record, vouch: vouchOf(peer.state, peer.settings, this.now) }
        : null,
      primaryPgOk: primaryName !== n.name && this.probeWritable(n.name, this.node(primaryName)),
    };
  }

  /** The daemon's round: observe, decide, persist, act. */
  private agentRound(n: SimNode): void {
    const d = decideAgent(n.state, this.observe(n), n.settings);
    this.setState(n, d.state);
    if (d.phase !== n.phase) this.log(`${n.name} phase ${n.phase} -> ${d.phase} [${d.rule}]`);
    n.phase = d.phase;
    for (const a of d.actions) this.act(n, a);
  }

  /** As the daemon's setState: what must survive a crash is on disk before anything acts on it. */
  private setState(n: SimNode, state: AgentState): void {
    n.state = state;
    n.persisted = persistedOf(state);
  }

  /** A request to the arbiter over the (lossy) network: the arbiter may act on it although the
   *  answer is lost (null), exactly the case the agent must not mistake for a refusal. */
  private request(n: SimNode, req: ArbiterRequest): ArbiterReply | null {
    if (this.arb.proc !== 'running' || !this.delivered(n.name, W)) {
      this.log(`${n.name} -> arbiter ${req.kind}: not delivered`);
      return null;
    }
    const a = arbiterHandle(this.arb.state, req, this.now, this.arbSettings);
    this.log(`${n.name} -> arbiter ${req.kind}: ${a.ok ? 'ok' : 'refused'}: ${a.reason}`);
    if (a.ok) this.arbiterChanged(a.state, req, n.name);
    else this.arb = { ...this.arb, state: a.state };
    if (a.ok && req.kind === 'promote' && this.loseGrantAnswer) {
      this.loseGrantAnswer = false;
      this.cutLink(W, n.name);
    }
    if (!this.delivered(W, n.name)) {
      this.log(`arbiter -> ${n.name} answer to ${req.kind}: lost`);
      return null;
    }
    return { ok: a.ok, reason: a.reason, record: { ...this.record } };
  }

  /** A request that was held in the network reaches the arbiter; its answer goes nowhere. */
  private deliverLate(): void {
    for (const r of this.lateRequests.filter((x) => x.at <= this.now)) {
      this.lateRequests.splice(this.lateRequests.indexOf(r), 1);
      if (this.arb.proc !== 'running') continue;
      const a = arbiterHandle(this.arb.state, r.req, this.now, this.arbSettings);
      this.log(`${r.from} -> arbiter ${r.req.kind} (late): ${a.ok ? 'ok' : 'refused'}: ${a.reason}`);
      if (a.ok) this.arbiterChanged(a.state, r.req, r.from);
      else this.arb = { ...this.arb, state: a.state };
    }
  }

  /** The arbiter's record changed: check the grant rules (invariant 3) before accepting it. */
  private arbiterChanged(next: ArbiterState, req: ArbiterRequest, who: string): void {
    const prev = this.arb.state;
    this.arb = { ...this.arb, state: next };
    if (next.record.term === prev.record.term) return;
    this.check(next.record.term === prev.record.term + 1, `term jumped from ${prev.record.term}`);
    this.check(
      !this.grants.some((g) => g.term === next.record.term),
      `second grant of term ${next.record.term}`,
    );
    this.grants.push({ term: next.record.term, node: next.record.primary, at: this.now, kind: req.kind });
    this.log(`GRANT term ${next.record.term} to ${next.record.primary} (${req.kind} by ${who})`);
    const old = this.node(prev.record.primary);
    if (req.kind === 'promote') {
      this.check(prev.record.standbyPromotable, 'grant to a standby that was not promotable');
      const lostFor = this.now - this.primaryReachableAt;
      this.check(
        lostFor >= this.timing.failoverTimeoutMs - this.timing.probeIntervalMs,
        `grant while the arbiter could reach ${old.name} ${lostFor} ms ago`,
      );
      // The timing rule at work: the old primary fenced itself (or cannot acknowledge) already.
      this.check(!this.acceptsWrites(old), `grant while ${old.name} still accepts writes`);
    }
    if (req.kind === 'forceFailover') this.forced = true;
    else this.checkNoLostWrites(next.record.primary);
    this.primaryReachableAt = this.now;
  }

  private promoteLocal(n: SimNode, term: number): void {
    this.check(
      this.grants.some((g) => g.term === term && g.node === n.name),
      `${n.name} promotes for term ${term} without a grant`,
    );
    this.check(!this.promotions.some((p) => p.term === term), `second promotion for term ${term}`);
    this.promotions.push({ node: n.name, term, at: this.now });
    this.log(`${n.name} PROMOTED (term ${term})`);
    // A promoted standby must not inherit synchronous_standby_names (writes would hang).
    n.pg = { ...n.pg, inRecovery: false, standbySignal: false, upstream: null, syncNames: false };
    this.checkNoLostWrites(n.name);
  }

  /** The effect of one action, as the daemon's execute() has it. */
  private act(n: SimNode, a: AgentAction): void {
    if (a.kind !== 'note') this.log(`${n.name} ${a.kind} [${a.rule}] ${JSON.stringify(a).slice(0, 120)}`);
    switch (a.kind) {
      case 'note':
        this.notes.push({ node: n.name, at: this.now, msg: a.msg });
        return;
      case 'fence':
        n.fenced = true;
        this.fences.push({ node: n.name, at: this.now, reason: a.reason });
        return;
      case 'unfence':
        n.fenced = false;
        return;
      case 'lease':
        n.lease = a.until ?? Number.POSITIVE_INFINITY;
        return;
      case 'startPostgres':
        if (n.pg.broken || n.pg.up) return;
        n.pg.up = true;
        n.pg.inRecovery = n.pg.standbySignal;
        if (n.pg.standbySignal) n.pg.upstream = n.state.record.primary;
        return;
      case 'ask': {
        const reply = this.request(n, a.request);
        const outcome = agentOnReply(n.state, a, reply, this.now, n.settings);
        this.setState(n, outcome.state);
        for (const f of outcome.actions) this.act(n, f);
        return;
      }
      case 'promote':
        this.promoteLocal(n, a.term);
        return;
      case 'setSync':
        n.pg.syncNames = a.on;
        if (a.on) this.replicate();
        return;
      case 'rejoin':
        this.rejoin(n, a.primary);
        return;
      case 'handover': {
        // The procedure (src/agent/procedures.ts handover): fence, hold the arbiter (a
        // confirmation), stop cleanly, wait for the standby to replay everything, hand over.
        const to = this.node(a.to);
        n.fenced = true;
        const hold: ArbiterRequest = {
          kind: 'confirmPrimary',
          node: n.name,
          term: a.term,
          voidHandoversUpTo: n.state.handoverSeq,
        };
        if (!this.request(n, hold)?.ok) return;
        this.setState(n, handoverSettled(n.state));
        this.replicate();
        const replayed = this.streams(to, n) && to.pg.log.length === n.pg.log.length;
        n.pg.up = false;
        if (!replayed) return;
        const sending = handoverSending(n.state, this.now);
        this.setState(n, sending.state);
        const req: ArbiterRequest = {
          kind: 'handover',
          node: n.name,
          to: a.to,
          term: a.term,
          seq: sending.seq,
        };
        if (this.delayNextHandoverMs !== null) {
          this.lateRequests.push({ at: this.now + this.delayNextHandoverMs, from: n.name, req });
          this.delayNextHandoverMs = null;
          this.log(`${n.name} -> arbiter handover: held in the network`);
          return;
        }
        if (this.request(n, req)) this.setState(n, handoverSettled(n.state));
        return;
      }
    }
  }

  /** pg_rewind (or a base backup) from the new primary, start as its standby, unfence. On failure
   *  the server stays stopped and fenced, and the agent tries again next round. */
  private rejoin(n: SimNode, primaryName: string): void {
    const p = this.node(primaryName);
    n.pg.up = false;
    if (p === n || n.pg.broken || !this.writablePrimaryReachable(n.name, p)) {
      this.log(`${n.name} rejoin from ${primaryName} failed`);
      return;
    }
    n.pg = { ...n.pg, up: true, inRecovery: true, standbySignal: true, upstream: p.name, syncNames: false };
    n.pg.log = [...p.pg.log];
    n.fenced = false;
  }

  /** A person runs `pgarbiter rejoin` on a node (manual rejoin mode): the agent's API hands the
   *  request to the core (requestRejoin); the next round carries it out. */
  manualRejoin(name: string): void {
    const n = this.node(name);
    const r = requestRejoin(n.state, n.settings);
    assert.equal(r.refused, null);
    n.state = r.state;
  }
  /** A person asks the primary for a switchover (requestSwitchover). */
  requestSwitchover(name: string): string | null {
    const n = this.node(name);
    if (n.agent !== 'running') return `${name}'s agent does not answer`;
    const r = requestSwitchover(n.state, n.settings);
    n.state = r.state;
    return r.refused;
  }

  private arbiterRound(): void {
    const primary = this.node(this.record.primary);
    const ok = this.probeWritable(W, primary);
    if (ok) this.primaryReachableAt = this.now;
    this.arb.state = arbiterObserve(
      this.arb.state,
      { node: primary.name, ok, startedAt: this.now },
      this.now,
      this.arbSettings,
    );
  }

  // ---- clients and the invariants ------------------------------------------------------------

  /** A client reaching this node gets its commit acknowledged. Clients are everywhere (the
   *  worst case): any unfenced primary that is up gets writes. */
  acceptsWrites(n: SimNode): boolean {
    if (!this.takesClients(n)) return false;
    return !n.pg.syncNames || this.streams(this.peerOf(n), n);
  }

  /** A running primary that neither its fence nor its lapsed lease keeps from its clients. */
  private takesClients(n: SimNode): boolean {
    return n.pg.up && !n.pg.frozen && !n.pg.inRecovery && !n.fenced && this.now < n.lease;
  }

  private writes(): void {
    for (const n of Object.values(this.nodes)) {
      const waitsForSync = this.takesClients(n) && !this.acceptsWrites(n);
      n.syncWaitSince = waitsForSync ? (n.syncWaitSince ?? this.now) : null;
      if (!this.acceptsWrites(n)) continue;
      const id = ++this.writeSeq;
      n.pg.log.push(id);
      this.replicate();
      this.acked.add(id);
      this.acks.push({ node: n.name, at: this.now });
      // Invariant 1.
      this.check(
        n.name === this.record.primary,
        `${n.name} acknowledged write ${id} but the arbiter granted term ${this.record.term} to ${this.record.primary}`,
      );
    }
  }

  /** Invariant 2: with synchronous replication nothing acknowledged is missing on the primary. */
  private checkNoLostWrites(primary: string): void {
    if (this.opts.mode === 'async' || this.forced) return;
    const log = new Set(this.node(primary).pg.log);
    const lost = [...this.acked].filter((id) => !log.has(id));
    this.check(lost.length === 0, `acknowledged writes ${lost.slice(0, 5).join(',')} are not on ${primary}`);
  }

  check(cond: boolean, what: string): void {
    if (!cond)
      throw new assert.AssertionError({
        message: `SAFETY at ${this.now} ms (${this.opts.profile}/${this.opts.mode}): ${what}\n  ${this.trace.slice(-40).join('\n  ')}`,
      });
  }

  private log(line: string): void {
    this.trace.push(`${this.now} ${line}`);
  }

  traceSince(from: number, re: RegExp): string[] {
    return this.trace.filter((l) => Number(l.split(' ')[0]) >= from && re.test(l));
  }

  // ---- the clock -----------------------------------------------------------------------------

  private due(offset: number): boolean {
    return (this.now - offset) % this.timing.probeIntervalMs === 0;
  }

  step(): void {
    this.now += TICK;
    this.replicate();
    for (const n of Object.values(this.nodes))
      if (this.streams(this.peerOf(n), n)) n.standbyStreamedAt = this.now;
    // The oracle of invariant 3: the arbiter's host could reach the primary (on a lossy link, only
    // the probes that got through count: see arbiterRound).
    const primary = this.node(this.record.primary);
    if (this.writablePrimaryReachable(W, primary) && !this.lossy.has(this.key(W, primary.name)))
      this.primaryReachableAt = this.now;
    this.deliverLate();
    if (this.arb.proc === 'running' && this.due(this.arb.offset)) this.arbiterRound();
    for (const n of Object.values(this.nodes)) {
      if (n.agent !== 'running' || !this.due(n.offset)) continue;
      this.agentRound(n);
      this.replicate();
    }
    this.writes();
    if (this.now % 1000 === 0) this.checkNoLostWrites(this.record.primary);
  }

  run(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) this.step();
  }

  /** Runs until `cond` holds; returns how long it took, fails after `maxMs`. */
  runUntil(cond: () => boolean, maxMs: number, what: string): number {
    const start = this.now;
    while (!cond()) {
      if (this.now - start >= maxMs) {
        const s = this.describe();
        assert.fail(
          `not ${what} within ${maxMs} ms (${this.opts.profile}/${this.opts.mode}): ${s}\n  ${this.trace.slice(-30).join('\n  ')}`,
        );
      }
      this.step();
    }
    return this.now - start;
  }

  /** One unfenced primary (the arbiter's), one unfenced standby streaming from it, every process
   *  up, and the standby promotable again (synchronously replicated in the sync modes). */
  healthy(): boolean {
    const rec = this.record;
    const p = this.node(rec.primary);
    const s = this.node(rec.standby);
    const ok =
      this.arb.proc === 'running' &&
      p.agent === 'running' &&
      s.agent === 'running' &&
      p.pg.up &&
      !p.pg.inRecovery &&
      !p.fenced &&
      s.pg.up &&
      s.pg.inRecovery &&
      !s.fenced &&
      this.streams(s, p) &&
      rec.standbyPromotable &&
      (this.opts.mode === 'async' || p.pg.syncNames) &&
      p.phase === 'primary' &&
      s.phase === 'standby';
    return ok;
  }

  describe(): string {
    const n = (x: SimNode) =>
      `${x.name}{agent:${x.agent},phase:${x.phase},up:${x.pg.up},rec:${x.pg.inRecovery},fenced:${x.fenced},sync:${x.pg.syncNames},log:${x.pg.log.length},term:${x.state.record.term}}`;
    return `record=${JSON.stringify(this.record)} ${n(this.node('pg1'))} ${n(this.node('pg2'))}`;
  }

  /** After a heal: back to healthy within `maxMs`, then stays healthy and keeps acknowledging. */
  converges(maxMs: number): number {
    // Every agent runs a round or two first: a phase from before a pause is not a state.
    this.run(2 * this.timing.probeIntervalMs);
    const took =
      2 * this.timing.probeIntervalMs + this.runUntil(() => this.healthy(), maxMs, 'healthy again');
    const term = this.record.term;
    const acks = this.acks.length;
    for (let i = 0; i < (4 * this.timing.failoverTimeoutMs) / TICK; i++) {
      this.step();
      assert.ok(
        this.healthy(),
        `left the healthy state at ${this.now}: ${this.describe()}\n  ${this.trace.slice(-25).join('\n  ')}`,
      );
    }
    assert.equal(this.record.term, term, 'no further term change once healthy');
    assert.ok(this.acks.length > acks, 'writes are acknowledged again');
    return took;
  }

  /** Ends every fault: network, processes, broken data directories. */
  healAll(): void {
    this.heal();
    for (const n of Object.values(this.nodes)) {
      n.pg.frozen = false;
      n.pg.broken = false;
      n.pg.blocked = false;
      if (n.agent === 'paused') n.agent = 'running';
      if (n.agent === 'stopped') this.startAgent(n.name);
    }
    if (this.arb.proc === 'paused') this.resumeArbiter();
    if (this.arb.proc === 'stopped') this.startArbiter();
  }

  acksBy(node: string, from: number, to = Number.POSITIVE_INFINITY): number {
    return this.acks.filter((a) => a.node === node && a.at >= from && a.at <= to).length;
  }
  fencesOf(node: string, from = 0): { at: number; reason: string }[] {
    return this.fences.filter((f) => f.node === node && f.at >= from);
  }
}

// ---- the scenarios ---------------------------------------------------------------------------

const PROFILES: Profile[] = ['default', 'fast'];
const MODES: Mode[] = ['sync', 'strict', 'async'];
/** Round phases of pg1, pg2 and the arbiter, to vary who acts first within a probe interval. */
const OFFSETS: [number, number, number][] = [
  [0, 0.4, 0.7],
  [0.8, 0.4, 0],
  [0, 0, 0],
];
/** Generous bound for getting back to healthy after a heal (a rejoin, a sync restore). */
const HEAL_BOUND_MS = 10_000;

interface Scenario {
  name: string;
  modes?: Mode[];
  autoRejoin?: boolean;
  run: (sim: Sim) => void;
}

function start(sim: Sim): void {
  sim.run(3000);
  assert.ok(sim.healthy(), `healthy at start: ${sim.describe()}`);
  assert.ok(sim.acksBy('pg1', 0) > 0);
}

/** pg1 was replaced by pg2 in term 2, and pg1 came back as pg2's standby. */
function assertFailedOverTo(sim: Sim, primary: string, term: number): void {
  assert.equal(sim.record.term, term);
  assert.equal(sim.record.primary, primary);
  assert.equal(sim.grants.at(-1)?.node, primary);
  assert.equal(sim.promotions.at(-1)?.node, primary);
}

/** Issue 15: pg1 isolated, pg2 granted term 2; the arbiter lost right after; pg1's network back. */
function arbiterLostAfterFailover(sim: Sim, loseArbiter: () => void, backArbiter: () => void): void {
  start(sim);
  sim.isolate('pg1');
  sim.runUntil(() => sim.grants.length > 0, 3 * sim.timing.failoverTimeoutMs, 'granted');
  sim.run(sim.timing.probeIntervalMs);
  loseArbiter();
  sim.run(2 * sim.timing.failoverTimeoutMs);
  // pg2 lost both its peers: it fenced itself; nobody writes.
  assert.equal(sim.node('pg2').fenced, true);
  const healed = sim.now;
  sim.heal();
  loseArbiter();
  // pg1 learns term 2 from pg2's agent, rewinds, follows pg2; pg2 unfences on pg1's vouch.
  const took = sim.runUntil(
    () => sim.node('pg1').pg.upstream === 'pg2' && !sim.node('pg2').fenced && sim.acksBy('pg2', sim.now) > 0,
    HEAL_BOUND_MS,
    'writing on pg2 with the arbiter still gone',
  );
  assert.ok(took <= 4 * sim.timing.probeIntervalMs, `writes resumed ${took} ms after the heal`);
  assert.equal(sim.node('pg1').state.record.term, 2, 'pg1 carries term 2');
  sim.run(10_000);
  assert.ok(sim.acksBy('pg2', healed + 10_000) > 0, 'writes go on while the arbiter is gone');
  assert.equal(sim.grants.length, 1, 'no grant without the arbiter');
  backArbiter();
  sim.converges(HEAL_BOUND_MS);
  assert.equal(sim.record.term, 2, 'the returning arbiter confirms term 2: no new term');
}

const SCENARIOS: Scenario[] = [
  {
    name: 'steady state: nothing happens, writes flow',
    run: (sim) => {
      start(sim);
      const t0 = sim.now;
      sim.run(30_000);
      assert.equal(sim.record.term, 1);
      assert.equal(sim.fences.length, 0);
      assert.equal(sim.grants.length, 0);
      assert.ok(sim.healthy());
      assert.equal(sim.acksBy('pg1', t0 + TICK), 30_000 / TICK, 'one write acknowledged every tick');
    },
  },
  {
    name: 'primary isolated: it fences before the grant; pg2 takes over; pg1 rejoins after the heal',
    run: (sim) => {
      start(sim);
      const t0 = sim.now;
      sim.isolate('pg1');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      const fence = sim.fencesOf('pg1', t0)[0];
      assert.ok(fence, 'pg1 fenced');
      assert.match(fence.reason, /lost pg2 and the arbiter/);
      assert.ok(
        fence.at - t0 <= sim.timing.fenceTimeoutMs + sim.timing.probeIntervalMs,
        `fenced at +${fence.at - t0}`,
      );
      assertFailedOverTo(sim, 'pg2', 2);
      const grant = sim.grants[0]!;
      assert.ok(grant.at - t0 >= sim.timing.failoverTimeoutMs - sim.timing.probeIntervalMs);
      assert.ok(fence.at + sim.budget < grant.at, 'fenced (with its action budget) before the grant');
      assert.ok(sim.acksBy('pg2', grant.at) > 0, 'the new primary acknowledges writes');
      assert.equal(sim.record.standbyPromotable, false, 'pg1 may lack writes: not promotable');
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.node('pg1').pg.upstream, 'pg2');
    },
  },
  {
    name: 'failover and back: pg1 isolated, then later pg2 isolated (term 3)',
    run: (sim) => {
      start(sim);
      sim.isolate('pg1');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
      sim.isolate('pg2');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assertFailedOverTo(sim, 'pg1', 3);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'standby isolated: sync degraded only after the arbiter marked it not promotable; no failover',
    run: (sim) => {
      start(sim);
      const t0 = sim.now;
      sim.isolate('pg2');
      sim.run(2 * sim.timing.failoverTimeoutMs + sim.timing.syncStallTimeoutMs);
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.fencesOf('pg1').length, 0);
      if (sim.opts.mode === 'strict') {
        assert.equal(sim.acksBy('pg1', t0 + sim.timing.probeIntervalMs), 0, 'strict: writes wait');
        assert.equal(sim.record.standbyPromotable, true);
        assert.equal(sim.node('pg1').pg.syncNames, true);
      } else {
        assert.equal(sim.record.standbyPromotable, false);
        const resumed = t0 + sim.timing.syncStallTimeoutMs + 2 * sim.timing.probeIntervalMs;
        assert.ok(sim.acksBy('pg1', resumed) > 0, 'writes continue after the stall timeout');
        if (sim.opts.mode === 'sync') {
          assert.equal(sim.node('pg1').pg.syncNames, false);
          // Nothing was acknowledged during the stall before the timeout (writes waited).
          assert.equal(sim.acksBy('pg1', t0 + TICK, t0 + sim.timing.syncStallTimeoutMs - TICK), 0);
        }
      }
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.primary, 'pg1');
    },
  },
  {
    name: "primary's PostgreSQL unreachable to both peers while its agent still talks to them: it fences before the grant",
    run: (sim) => {
      start(sim);
      const t0 = sim.now;
      sim.blockPg('pg1');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      // Invariant 1 is checked every tick: pg1 must not acknowledge after the grant.
      if (sim.opts.mode === 'async' || sim.opts.mode === 'sync') {
        // sync mode: the stall makes the arbiter mark pg2 not promotable first (no failover)
        // unless the fence came sooner; either way pg1 is fenced and never serves past a grant.
        assert.ok(sim.fencesOf('pg1', t0).length > 0, 'pg1 fenced itself');
        const fence = sim.fencesOf('pg1', t0)[0]!;
        assert.ok(
          fence.at - t0 <= sim.timing.fenceTimeoutMs + 2 * sim.timing.probeIntervalMs,
          `fenced ${fence.at - t0} ms after the block`,
        );
      }
      sim.blockPg('pg1', false);
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'standby host frozen (its walsender looks alive for 5 s): writes wait at most the stall timeout, sync dropped once',
    run: (sim) => {
      start(sim);
      const t0 = sim.now;
      sim.freezeHost('pg2');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.fencesOf('pg1').length, 0);
      if (sim.opts.mode === 'strict') {
        assert.equal(sim.acksBy('pg1', t0 + sim.timing.probeIntervalMs), 0, 'strict: writes wait');
      } else {
        assert.equal(sim.record.standbyPromotable, false);
        const resumed = t0 + sim.timing.syncStallTimeoutMs + 2 * sim.timing.probeIntervalMs;
        assert.ok(
          sim.acksBy('pg1', resumed, resumed + TICK) > 0,
          'writes go on right after the stall timeout',
        );
        if (sim.opts.mode === 'sync')
          assert.equal(
            sim.traceSince(t0, /pg1 ask \[sync-degrade\]/).length,
            1,
            'sync dropped once, not flapping',
          );
        assert.equal(
          sim.traceSince(t0, /pg1 setSync \[sync-restore\]/).length,
          0,
          'no restore while the standby is frozen',
        );
      }
      sim.thawHost('pg2');
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.primary, 'pg1');
    },
  },
  {
    name: 'standby host stopped (agent and PostgreSQL killed), started again later',
    run: (sim) => {
      start(sim);
      sim.stopHost('pg2');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.fencesOf('pg1').length, 0);
      if (sim.opts.mode !== 'strict') assert.equal(sim.record.standbyPromotable, false);
      sim.startAgent('pg2');
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.primary, 'pg1');
    },
  },
  {
    name: 'standby PostgreSQL killed: its agent starts it again; nothing else happens',
    run: (sim) => {
      start(sim);
      sim.killPg('pg2');
      sim.run(sim.timing.probeIntervalMs + TICK);
      assert.equal(sim.node('pg2').pg.up, true);
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.fences.length, 0);
    },
  },
  {
    name: 'arbiter isolated: nothing changes, no fence, writes flow',
    run: (sim) => {
      start(sim);
      const t0 = sim.now;
      sim.isolate(W);
      sim.run(10_000);
      assert.equal(sim.fences.length, 0);
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.acksBy('pg1', t0 + TICK), 10_000 / TICK);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'arbiter stopped and restarted: nothing changes',
    run: (sim) => {
      start(sim);
      sim.stopArbiter();
      sim.run(10_000);
      assert.equal(sim.fences.length, 0);
      sim.startArbiter();
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.term, 1);
    },
  },
  {
    name: 'primary <-> standby link cut, both reach the arbiter: the arbiter refuses the failover',
    run: (sim) => {
      start(sim);
      sim.cutLink('pg1', 'pg2');
      sim.run(4 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.grants.length, 0, 'the arbiter still reaches pg1: no grant');
      assert.equal(sim.fences.length, 0);
      if (sim.opts.mode !== 'strict') {
        assert.equal(sim.record.standbyPromotable, false);
        assert.ok(sim.acksBy('pg1', sim.now - 1000) > 0);
      }
      assert.ok(
        sim.notes.some((n) => n.node === 'pg2' && /promotable/.test(n.msg)) ||
          sim.traceSince(0, /pg2 -> arbiter promote: refused: the arbiter reached primary pg1/).length > 0,
        'pg2 asked (or knew it could not ask) and was refused',
      );
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.primary, 'pg1');
    },
  },
  {
    name: "primary PostgreSQL killed: restarted fenced, unfenced on the arbiter's confirmation, same term",
    run: (sim) => {
      start(sim);
      const t0 = sim.now;
      sim.killPg('pg1');
      sim.runUntil(() => sim.node('pg1').pg.up, 2 * sim.timing.probeIntervalMs, 'restarted');
      assert.equal(sim.node('pg1').fenced, true, 'it comes back fenced');
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.term, 1);
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.fencesOf('pg1', t0)[0]?.reason, 'PostgreSQL is down; restarting it fenced');
      assert.equal(sim.traceSince(t0, /pg1 -> arbiter confirmPrimary: ok/).length, 1);
    },
  },
  {
    name: 'primary PostgreSQL killed and cannot start: failover; after the repair pg1 rejoins',
    run: (sim) => {
      start(sim);
      const t0 = sim.now;
      sim.killPg('pg1', true);
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assertFailedOverTo(sim, 'pg2', 2);
      assert.ok(sim.grants[0]!.at - t0 >= sim.timing.failoverTimeoutMs - sim.timing.probeIntervalMs);
      assert.equal(sim.node('pg1').fenced, true);
      assert.equal(sim.node('pg1').phase, 'rejoining');
      sim.repairPg('pg1');
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'primary blip shorter than fence_timeout: nothing happens',
    run: (sim) => {
      start(sim);
      sim.isolate('pg1');
      sim.run(sim.timing.fenceTimeoutMs - sim.timing.probeIntervalMs - TICK);
      sim.heal();
      sim.run(10_000);
      assert.equal(sim.fences.length, 0);
      assert.equal(sim.grants.length, 0);
      assert.ok(sim.healthy());
    },
  },
  {
    name: 'primary blip between fence_timeout and failover_timeout: fences, unfences, same term',
    run: (sim) => {
      start(sim);
      sim.isolate('pg1');
      sim.run(sim.timing.fenceTimeoutMs + sim.timing.probeIntervalMs);
      assert.equal(sim.node('pg1').fenced, true);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.record.term, 1);
    },
  },
  {
    name: 'standby link blip shorter than sync_stall_timeout: sync is kept',
    run: (sim) => {
      start(sim);
      const t0 = sim.now;
      sim.cutLink('pg1', 'pg2');
      sim.run(sim.timing.syncStallTimeoutMs - 2 * sim.timing.probeIntervalMs);
      sim.heal();
      sim.run(10_000);
      assert.equal(sim.record.standbyPromotable, true);
      assert.ok(sim.healthy());
      assert.deepEqual(sim.traceSince(t0, /sync-degrade|setPromotable/), []);
    },
  },
  {
    name: 'primary agent paused (SIGSTOP) 10 s, PostgreSQL serving: nothing happens',
    run: (sim) => {
      start(sim);
      sim.pauseAgent('pg1');
      sim.run(10_000);
      assert.equal(sim.grants.length, 0);
      sim.resumeAgent('pg1');
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.fences.length, 0, 'the arbiter answered after the pause: no fence');
    },
  },
  {
    name: 'primary agent paused, and the arbiter is unreachable when it wakes: fences at once, unfenced on the standby vouch',
    run: (sim) => {
      start(sim);
      sim.pauseAgent('pg1');
      sim.run(5000);
      sim.isolate(W);
      const woke = sim.now;
      sim.resumeAgent('pg1');
      sim.run(sim.timing.probeIntervalMs);
      const f = sim.fencesOf('pg1', woke)[0];
      assert.equal(f?.reason, 'agent loop was paused and the arbiter did not answer');
      assert.equal(sim.grants.length, 0);
      sim.run(3 * sim.timing.probeIntervalMs);
      // unfence-vouched: pg2 streams from pg1 and vouches for it in term 1; the arbiter is not needed.
      assert.equal(sim.node('pg1').fenced, false, 'unfenced on the vouch of a streaming standby');
      const t1 = sim.now;
      sim.run(5000);
      assert.ok(sim.acksBy('pg1', t1) > 0, 'writes go on without the arbiter');
      assert.equal(sim.grants.length, 0, 'no failover without the arbiter');
      const healed = sim.now;
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
      // pg1 was fenced (unreachable) for longer than failover_timeout: at the heal, either its
      // confirmation or pg2's promotion request reaches the arbiter first. Both are safe.
      assert.ok(sim.grants.every((g) => g.at >= healed));
      assert.ok(sim.record.term <= 2);
    },
  },
  {
    name: 'the arbiter dies right after a failover and pg1 heals: pg1 follows pg2 on its word, pg2 serves on pg1 vouch',
    run: (sim) =>
      arbiterLostAfterFailover(
        sim,
        () => sim.stopArbiter(),
        () => sim.startArbiter(),
      ),
  },
  {
    name: 'the arbiter partitioned from both right after a failover and pg1 heals: the same, no new term',
    run: (sim) =>
      arbiterLostAfterFailover(
        sim,
        () => {
          sim.cutLink(W, 'pg1');
          sim.cutLink(W, 'pg2');
        },
        () => sim.heal(),
      ),
  },
  {
    name: 'the primary agent restarts while the primary is isolated: the new process fences on its first round',
    modes: ['async'],
    run: (sim) => {
      // Restarted at every point of the window before the grant; with the peers counted as seen
      // (initialAgentState) it would serve up to fence_timeout after the restart, past the grant.
      start(sim);
      sim.isolate('pg1');
      sim.stopAgent('pg1');
      sim.run(sim.timing.failoverTimeoutMs - sim.timing.probeIntervalMs - 2 * TICK);
      const restart = sim.now;
      sim.startAgent('pg1');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      const fence = sim.fencesOf('pg1', restart)[0];
      assert.ok(fence && fence.at - restart <= sim.timing.probeIntervalMs, 'fenced on its first round');
      assertFailedOverTo(sim, 'pg2', 2);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'packet loss on the primary (35 %): never two primaries, a lost grant answer stops the vouch',
    run: (sim) => {
      start(sim);
      for (const other of ['pg2', W]) sim.lose('pg1', other, 0.35);
      sim.lose('pg2', W, 0.35);
      sim.run(12 * sim.timing.failoverTimeoutMs);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'a grant whose answer is lost: the standby stops vouching in that term, so the old primary stays fenced',
    run: (sim) => {
      start(sim);
      sim.isolate('pg1');
      sim.loseGrantAnswer = true;
      sim.runUntil(() => sim.grants.length > 0, 3 * sim.timing.failoverTimeoutMs, 'granted');
      assert.equal(sim.node('pg2').state.record.term, 1, 'pg2 did not hear of its grant');
      assert.equal(sim.node('pg2').persisted.promotionAskedInTerm, 1, 'persisted before asking');
      // pg1 and pg2 reach each other again; the arbiter reaches neither.
      sim.heal();
      sim.isolate(W);
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.node('pg1').fenced, true, 'no vouch from a standby that may hold a grant');
      sim.stopHost('pg2');
      sim.startAgent('pg2');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.node('pg1').fenced, true, 'not after a restart of its agent either');
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.primary, 'pg2');
    },
  },
  {
    name: 'primary agent paused while the primary is isolated: sync blocks its writes; failover; rejoin',
    modes: ['sync', 'strict'],
    run: (sim) => {
      start(sim);
      sim.pauseAgent('pg1');
      sim.isolate('pg1');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      // The agent could not fence, but with sync names set nothing more is acknowledged.
      assert.equal(sim.node('pg1').fenced, false);
      assertFailedOverTo(sim, 'pg2', 2);
      sim.heal();
      sim.run(2000);
      sim.resumeAgent('pg1');
      sim.converges(HEAL_BOUND_MS);
    },
  },
  ...(['paused', 'stopped'] as const).map(
    (how): Scenario => ({
      name: `primary agent ${how}, then the primary isolated: its lease lapses before the grant, even with sync off`,
      run: (sim) => {
        start(sim);
        const lastRefresh = sim.traceSince(0, /pg1 lease \[hold-lease\]/).at(-1);
        const t0 = sim.now;
        if (how === 'paused') sim.pauseAgent('pg1');
        else sim.stopAgent('pg1');
        sim.isolate('pg1');
        sim.runUntil(() => sim.grants.length > 0, 3 * sim.timing.failoverTimeoutMs, 'granted');
        const grantAt = sim.grants[0]?.at ?? 0;
        // Nobody fenced pg1: the kernel stopped its clients, at most a lease after its last refresh.
        assert.equal(sim.node('pg1').fenced, false);
        assert.ok(lastRefresh, 'the agent held the lease');
        const lapse = sim.node('pg1').lease;
        assert.ok(lapse <= t0 + (sim.leaseMs ?? 0), `lease until ${lapse}, agent gone at ${t0}`);
        assert.ok(lapse < grantAt, `the lease lapsed (${lapse}) before the grant (${grantAt})`);
        assert.equal(sim.acksBy('pg1', lapse), 0, 'no ack by pg1 once its lease lapsed');
        assertFailedOverTo(sim, 'pg2', 2);
        sim.heal();
        if (how === 'paused') sim.resumeAgent('pg1');
        else sim.startAgent('pg1');
        sim.converges(HEAL_BOUND_MS);
      },
    }),
  ),
  {
    name: 'primary host frozen (agent and PostgreSQL SIGSTOPped): failover; on thaw it fences and rejoins',
    modes: ['sync', 'strict'],
    run: (sim) => {
      start(sim);
      sim.freezeHost('pg1');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assertFailedOverTo(sim, 'pg2', 2);
      const thaw = sim.now;
      sim.thawHost('pg1');
      sim.run(sim.timing.probeIntervalMs);
      assert.match(sim.fencesOf('pg1', thaw)[0]?.reason ?? '', /replaced by pg2 in term 2/);
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'arbiter paused 10 s: nothing happens',
    run: (sim) => {
      start(sim);
      sim.pauseArbiter();
      sim.run(10_000);
      sim.resumeArbiter();
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.fences.length, 0);
      assert.equal(sim.record.term, 1);
    },
  },
  {
    name: 'arbiter paused while the primary is isolated: after waking it observes a full failover_timeout',
    run: (sim) => {
      start(sim);
      sim.pauseArbiter();
      sim.isolate('pg1');
      sim.run(10_000);
      assert.equal(sim.node('pg1').fenced, true);
      assert.equal(sim.grants.length, 0);
      const woke = sim.now;
      sim.resumeArbiter();
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assertFailedOverTo(sim, 'pg2', 2);
      assert.ok(sim.grants[0]!.at - woke >= sim.timing.failoverTimeoutMs, 'waited a full failover_timeout');
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'double fault: arbiter stopped and primary <-> standby cut: pg1 fences, no failover, recovers',
    run: (sim) => {
      start(sim);
      sim.stopArbiter();
      sim.cutLink('pg1', 'pg2');
      sim.run(4 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.node('pg1').fenced, true);
      assert.equal(sim.grants.length, 0);
      assert.ok(sim.notes.some((n) => n.node === 'pg2' && /arbiter unreachable: no failover/.test(n.msg)));
      sim.heal();
      sim.startArbiter();
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.term, 1);
    },
  },
  {
    name: 'double fault: arbiter stopped and primary PostgreSQL broken: no failover until the arbiter is back',
    run: (sim) => {
      start(sim);
      sim.stopArbiter();
      sim.killPg('pg1', true);
      sim.run(4 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.grants.length, 0);
      const back = sim.now;
      sim.startArbiter();
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assertFailedOverTo(sim, 'pg2', 2);
      assert.ok(sim.grants[0]!.at - back >= sim.timing.failoverTimeoutMs);
      sim.repairPg('pg1');
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'double fault: standby isolated (sync degraded), then the primary isolated too: no failover',
    run: (sim) => {
      start(sim);
      sim.isolate('pg2');
      sim.run(sim.timing.syncStallTimeoutMs + 2 * sim.timing.probeIntervalMs);
      sim.isolate('pg1');
      sim.run(4 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.node('pg1').fenced, true);
      // Strict never marked pg2 not promotable, but pg2 cannot reach the arbiter either.
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.record.standbyPromotable, sim.opts.mode === 'strict');
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'double fault: primary <-> standby cut, then (after the stall) arbiter <-> primary cut too',
    run: (sim) => {
      start(sim);
      sim.cutLink('pg1', 'pg2');
      sim.run(sim.timing.syncStallTimeoutMs + 2 * sim.timing.probeIntervalMs);
      sim.cutLink('pg1', W);
      sim.run(4 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.node('pg1').fenced, true);
      // sync: pg2 was marked not promotable before sync was dropped; async: when it stopped
      // streaming. Strict never drops sync, so pg2 has every acknowledged write: failover.
      if (sim.opts.mode === 'strict') assertFailedOverTo(sim, 'pg2', 2);
      else assert.equal(sim.grants.length, 0);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'double fault: arbiter <-> primary cut, then primary <-> standby cut 1 s later: failover',
    run: (sim) => {
      start(sim);
      sim.cutLink('pg1', W);
      sim.run(1000);
      sim.cutLink('pg1', 'pg2');
      sim.run(4 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.node('pg1').fenced, true);
      assertFailedOverTo(sim, 'pg2', 2);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: "double fault: primary isolated and the new primary's PostgreSQL killed right after: restarted",
    run: (sim) => {
      start(sim);
      sim.isolate('pg1');
      sim.runUntil(() => sim.grants.length > 0, 3 * sim.timing.failoverTimeoutMs, 'granted');
      sim.run(sim.timing.probeIntervalMs);
      sim.killPg('pg2');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.record.primary, 'pg2');
      assert.equal(sim.node('pg2').pg.up, true);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'switchover to a healthy standby: roles swap, nothing lost, term 2',
    run: (sim) => {
      start(sim);
      assert.equal(sim.requestSwitchover('pg1'), null);
      sim.run(2 * sim.timing.probeIntervalMs);
      assert.equal(sim.record.term, 2);
      assert.equal(sim.record.primary, 'pg2');
      assert.equal(sim.grants[0]?.kind, 'handover');
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.node('pg1').pg.upstream, 'pg2');
    },
  },
  {
    name: 'a handover that arrives after its sender gave up is refused: the old primary serves on, no second primary',
    run: (sim) => {
      start(sim);
      sim.delayNextHandoverMs = 3 * sim.timing.failoverTimeoutMs;
      assert.equal(sim.requestSwitchover('pg1'), null);
      // pg1 hears nothing, restarts its PostgreSQL fenced, and serves again once the arbiter
      // confirms its term; then the held handover reaches the arbiter.
      sim.run(4 * sim.timing.failoverTimeoutMs);
      assert.ok(
        sim.traceSince(0, /handover \(late\): refused: stale handover \d+ of pg1/).length === 1,
        sim.describe(),
      );
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.record.primary, 'pg1');
      assert.equal(sim.node('pg1').state.handoverUnsettledTerm, null);
      sim.converges(HEAL_BOUND_MS);
      // A later switchover is numbered after it and goes through.
      assert.equal(sim.requestSwitchover('pg1'), null);
      sim.run(2 * sim.timing.probeIntervalMs);
      assert.deepEqual([sim.record.term, sim.record.primary], [2, 'pg2']);
    },
  },
  {
    name: "after a handover left unanswered the old primary does not serve on its standby's vouch alone",
    run: (sim) => {
      start(sim);
      sim.delayNextHandoverMs = 3 * sim.timing.failoverTimeoutMs;
      assert.equal(sim.requestSwitchover('pg1'), null);
      sim.run(sim.timing.probeIntervalMs);
      assert.ok(sim.traceSince(0, /pg1 -> arbiter handover: held in the network/).length === 1);
      sim.cutLink('pg1', W);
      sim.run(2 * sim.timing.failoverTimeoutMs);
      // The standby streams from it and vouches for it, but the handover may still arrive.
      assert.equal(sim.node('pg1').fenced, true);
      assert.equal(sim.node('pg1').state.handoverUnsettledTerm, 1);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'switchover refused while the standby is down: nothing changes',
    run: (sim) => {
      start(sim);
      sim.stopHost('pg2');
      sim.run(sim.timing.probeIntervalMs);
      assert.equal(sim.requestSwitchover('pg1'), null);
      sim.run(sim.timing.probeIntervalMs);
      assert.ok(sim.notes.some((n) => n.node === 'pg1' && /switchover refused/.test(n.msg)));
      assert.equal(sim.record.term, 1);
      assert.equal(sim.node('pg1').fenced, false);
      sim.startAgent('pg2');
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.primary, 'pg1');
    },
  },
  {
    name: 'maintenance mode: nobody is promoted; the isolated primary fences and unfences by itself',
    run: (sim) => {
      start(sim);
      assert.ok(sim.operator({ kind: 'maintenance', enabled: true }));
      sim.run(2 * sim.timing.probeIntervalMs);
      sim.isolate('pg1');
      sim.run(4 * sim.timing.failoverTimeoutMs);
      assert.equal(sim.grants.length, 0);
      assert.equal(sim.node('pg1').fenced, true);
      assert.ok(sim.notes.some((n) => n.node === 'pg2' && /maintenance mode: no failover/.test(n.msg)));
      sim.heal();
      sim.run(2 * sim.timing.probeIntervalMs);
      assert.equal(sim.node('pg1').fenced, false, "unfenced on the arbiter's word, still in maintenance");
      assert.ok(sim.operator({ kind: 'maintenance', enabled: false }));
      sim.converges(HEAL_BOUND_MS);
      assert.equal(sim.record.term, 1);
    },
  },
  {
    // The bug this caught: an isolated primary in maintenance did not fence; a person ending
    // maintenance (the primary cannot see it) let the arbiter grant at once: two writable primaries.
    name: 'maintenance ended while the primary is isolated: it had fenced, so the failover is safe',
    run: (sim) => {
      start(sim);
      assert.ok(sim.operator({ kind: 'maintenance', enabled: true }));
      sim.run(2 * sim.timing.probeIntervalMs);
      sim.isolate('pg1');
      sim.run(4 * sim.timing.failoverTimeoutMs);
      assert.ok(sim.operator({ kind: 'maintenance', enabled: false }));
      sim.run(2 * sim.timing.failoverTimeoutMs);
      assertFailedOverTo(sim, 'pg2', 2);
      sim.heal();
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'manual rejoin: the old primary stays fenced until a person rejoins it',
    autoRejoin: false,
    run: (sim) => {
      start(sim);
      sim.isolate('pg1');
      sim.run(3 * sim.timing.failoverTimeoutMs);
      assertFailedOverTo(sim, 'pg2', 2);
      sim.heal();
      sim.run(10_000);
      assert.equal(sim.node('pg1').phase, 'needs-rejoin');
      assert.equal(sim.node('pg1').fenced, true);
      assert.ok(!sim.healthy());
      sim.manualRejoin('pg1');
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'forced failover while pg1 is down: pg2 promotes from the record; pg1 rejoins after the repair',
    run: (sim) => {
      start(sim);
      sim.stopArbiter();
      sim.killPg('pg1', true);
      sim.run(3 * sim.timing.failoverTimeoutMs);
      sim.startArbiter();
      assert.ok(sim.operator({ kind: 'forceFailover', to: 'pg2' }));
      sim.run(2 * sim.timing.probeIntervalMs);
      assert.equal(sim.promotions[0]?.node, 'pg2');
      sim.repairPg('pg1');
      sim.converges(HEAL_BOUND_MS);
    },
  },
  {
    name: 'a standby on a forked timeline (rewound away) rejoins after NOT_RECEIVING_REJOIN_MS',
    run: (sim) => {
      start(sim);
      // Corrupt pg2's history: it holds a write the primary never had.
      const pg2 = sim.node('pg2');
      pg2.pg.log = [...pg2.pg.log, -1];
      const t0 = sim.now;
      const took = sim.runUntil(
        () => sim.traceSince(t0, /pg2 rejoin/).length > 0,
        NOT_RECEIVING_REJOIN_MS + 2000,
        'rejoined',
      );
      assert.ok(took >= NOT_RECEIVING_REJOIN_MS - sim.timing.probeIntervalMs, `after ${sim.now - t0} ms`);
      sim.converges(HEAL_BOUND_MS);
    },
  },
];

for (const profile of PROFILES) {
  describe(`scenarios, ${profile} timing profile`, () => {
    for (const sc of SCENARIOS) {
      for (const mode of sc.modes ?? MODES) {
        test(`${sc.name} [${mode}]`, () => {
          for (const offsets of OFFSETS) {
            const sim = new Sim({ profile, mode, offsets, autoRejoin: sc.autoRejoin });
            sc.run(sim);
          }
        });
      }
    }
  });
}

/** Random overlapping faults; a frozen agent cannot fence, so agent pauses and host freezes are
 *  only drawn where synchronous replication keeps the unfenced old primary from acknowledging. */
function randomFaults(sim: Sim, seed: number): void {
  const r = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const hosts = ['pg1', 'pg2', W];
  const db = ['pg1', 'pg2'];
  const faults: (() => void)[] = [
    () => sim.isolate(pick(hosts)),
    () => {
      const a = pick(hosts);
      sim.cutLink(a, pick(hosts.filter((h) => h !== a)));
    },
    () => sim.killPg(pick(db), r() < 0.5),
    () => sim.stopHost(pick(db)),
    () => sim.stopArbiter(),
    () => sim.startArbiter(),
    () => sim.pauseArbiter(),
    () => {
      const a = pick(hosts);
      sim.lose(a, pick(hosts.filter((h) => h !== a)), Math.round(r() * 60) / 100);
    },
    () => sim.requestSwitchover(sim.record.primary),
    () => sim.heal(),
    () => sim.healAll(),
  ];
  // Without the lease, a frozen or dead agent cannot stop its primary: only synchronous
  // replication keeps an unfenced old primary from acknowledging. With it, the kernel does.
  if (sim.opts.mode !== 'async' || sim.leaseMs !== undefined)
    faults.push(
      () => sim.pauseAgent(pick(db)),
      () => sim.freezeHost(pick(db)),
      () => sim.stopAgent(pick(db)),
      // The case the lease is for: the primary's agent dead or hung, then the primary cut off.
      () => {
        const p = sim.record.primary;
        if (r() < 0.5) sim.pauseAgent(p);
        else sim.stopAgent(p);
        sim.isolate(p);
      },
    );
  for (let i = 0; i < 8; i++) {
    pick(faults)();
    sim.run(Math.round((r() * 3 * sim.timing.failoverTimeoutMs) / TICK) * TICK);
  }
}

// SEEDS=334 is the long form: 334 seeds x 2 profiles x 3 modes = 2,004 random schedules.
describe('random overlapping faults (seeded): invariants after every tick, healthy after the heal', () => {
  const seeds = Number(process.env.SEEDS ?? 40);
  for (const profile of PROFILES)
    for (const mode of MODES)
      test(`${profile} / ${mode}: ${seeds} seeds`, () => {
        for (let seed = 1; seed <= seeds; seed++) {
          const sim = new Sim({ profile, mode, offsets: OFFSETS[seed % OFFSETS.length] });
          start(sim);
          try {
            randomFaults(sim, seed);
            sim.healAll();
            sim.converges(NOT_RECEIVING_REJOIN_MS + HEAL_BOUND_MS);
          } catch (e) {
            (e as Error).message = `seed ${seed}: ${(e as Error).message}`;
            throw e;
          }
        }
      });
});

describe('the simulator itself', () => {
  test('detects a write acknowledged by a replaced primary', () => {
    const sim = new Sim({ profile: 'default', mode: 'async' });
    start(sim);
    // A forced failover while pg1 is healthy: pg1 keeps acknowledging until its agent notices.
    sim.operator({ kind: 'forceFailover', to: 'pg2' });
    assert.throws(() => sim.step(), /SAFETY .*pg1 acknowledged write/);
  });

  test('catches a timing that breaks the rule: failover_timeout below fence_timeout', () => {
    const sim = new Sim({ profile: 'default', mode: 'async', timing: { failoverTimeoutMs: 1000 } });
    start(sim);
    sim.isolate('pg1');
    assert.throws(() => sim.run(5000), /SAFETY .*grant while pg1 still accepts writes/);
  });

  // The gap the lease closes, and the rule that sizes it: both runs would pass the scenario above.
  for (const [what, opts] of [
    ['without the lease', { lease: false }],
    ['with a lease longer than the timing rule allows', { leaseMs: 3500 }],
  ] as const)
    test(`sync off, the primary's agent paused, then the primary isolated: ${what}, pg1 acknowledges after the grant`, () => {
      const sim = new Sim({ profile: 'default', mode: 'async', ...opts });
      start(sim);
      sim.pauseAgent('pg1');
      sim.isolate('pg1');
      assert.throws(
        () => sim.run(5000),
        /SAFETY .*(grant while pg1 still accepts writes|pg1 acknowledged write)/,
      );
    });

  test('detects lost acknowledged writes in sync mode', () => {
    const sim = new Sim({ profile: 'default', mode: 'sync' });
    start(sim);
    sim.node('pg1').pg.log.shift();
    assert.throws(() => sim.run(1000), /SAFETY .*acknowledged writes 1 are not on pg1/);
  });
});
