// The dashboard's pure parts: the token check, the actions a page may ask for, the links of the
// lab drawn from its state, the events read from `pgarbiter history --json`, and the writer's
// committed writes per second. No I/O here: unit-tested in test/unit/dashboard.test.ts.
import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { type AgentStatus, type HistoryEntry, historyEntrySchema } from '../api/protocol.js';
import { type ClusterView, nodeState } from '../cluster/view.js';
import type { TxEntry } from '../workload/ledger.js';

/** Whether an `Authorization: Bearer X` header carries one of the accepted tokens (constant time
 *  per candidate; an empty token is never accepted). */
export function tokenMatches(header: string | undefined, tokens: readonly string[]): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '');
  if (!m?.[1]) return false;
  const given = Buffer.from(m[1]);
  let ok = false;
  for (const t of tokens) {
    if (!t) continue;
    const want = Buffer.from(t);
    if (want.length === given.length && timingSafeEqual(want, given)) ok = true;
  }
  return ok;
}

// ---------------------------------------------------------------- actions

const faultHost = z.enum(['pg1', 'pg2', 'arbiter']);
const dbHost = z.enum(['pg1', 'pg2']);

/** What a button may ask for (POST /api/action). Anything else is a 400 and changes nothing. */
export const actionSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('isolate'), host: faultHost }).strict(),
  z.object({ action: z.literal('heal'), host: faultHost }).strict(),
  z.object({ action: z.literal('partition'), a: faultHost, b: faultHost }).strict(),
  z.object({ action: z.literal('unpartition') }).strict(),
  z.object({ action: z.literal('freeze'), host: faultHost }).strict(),
  z.object({ action: z.literal('thaw'), host: faultHost }).strict(),
  z.object({ action: z.literal('kill'), host: faultHost }).strict(),
  z.object({ action: z.literal('start'), host: faultHost }).strict(),
  z
    .object({ action: z.literal('loss'), host: faultHost, percent: z.number().int().min(0).max(100) })
    .strict(),
  z.object({ action: z.literal('writer-start') }).strict(),
  z.object({ action: z.literal('writer-stop') }).strict(),
  z.object({ action: z.literal('switchover'), to: dbHost.optional() }).strict(),
  z.object({ action: z.literal('maintenance'), on: z.boolean() }).strict(),
]);
export type Action = z.infer<typeof actionSchema>;

/** Actions that need the lab (faults and the lab's writer); the rest work on any deployment. */
export const LAB_ONLY_ACTIONS: readonly Action['action'][] = [
  'isolate',
  'heal',
  'partition',
  'unpartition',
  'freeze',
  'thaw',
  'kill',
  'start',
  'loss',
  'writer-start',
  'writer-stop',
];

export function parseAction(body: unknown): { ok: true; action: Action } | { ok: false; error: string } {
  const r = actionSchema.safeParse(body);
  if (r.success) {
    if (r.data.action === 'partition' && r.data.a === r.data.b)
      return { ok: false, error: 'a partition needs two different hosts' };
    return { ok: true, action: r.data };
  }
  return {
    ok: false,
    error: `bad action: ${r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`,
  };
}

/** One line naming an action, for the event stream and the chart's marks. */
export function describeAction(a: Action): string {
  switch (a.action) {
    case 'partition':
      return `partition ${a.a} x ${a.b}`;
    case 'unpartition':
      return 'unpartition all';
    case 'loss':
      return a.percent ? `loss ${a.percent} % on ${a.host}` : `loss off on ${a.host}`;
    case 'switchover':
      return a.to ? `switchover to ${a.to}` : 'switchover';
    case 'maintenance':
      return `maintenance ${a.on ? 'on' : 'off'}`;
    case 'writer-start':
      return 'writer started';
    case 'writer-stop':
      return 'writer stopped';
    default:
      return `${a.action} ${a.host}`;
  }
}

// ---------------------------------------------------------------- links

export type LinkState = 'up' | 'cut' | 'lossy' | 'missing';

export interface HostLink {
  host: string;
  /** The host's link to the switch. */
  state: LinkState;
  /** Packet loss in percent on its switch port (0: none). */
  loss: number;
  frozen: boolean;
}

export interface Links {
  hosts: HostLink[];
  /** Pairs of hosts whose traffic the switch drops. */
  partitions: { a: string; b: string }[];
}

/** The lab's links from `lab status` (interface, switch port), its partitions and losses, and
 *  the hosts this dashboard froze. A host is cut when its namespace's e0 is down or its switch
 *  port is not on the lab's bridge; lossy when up with packet loss. */
export function deriveLinks(
  hosts: readonly { host: string; present: boolean; link: string; bridge: string | null }[],
  partitions: readonly (readonly [string, string])[],
  losses: Readonly<Record<string, number | undefined>>,
  frozen: ReadonlySet<string> = new Set(),
  bridge = 'br0',
): Links {
  return {
    hosts: hosts.map((h) => {
      const loss = losses[h.host] ?? 0;
      let state: LinkState;
      if (!h.present || h.link === 'missing') state = 'missing';
      else if (h.link !== 'up' || h.bridge !== bridge) state = 'cut';
      else state = loss > 0 ? 'lossy' : 'up';
      return { host: h.host, state, loss, frozen: frozen.has(h.host) };
    }),
    partitions: partitions.map(([a, b]) => ({ a, b })),
  };
}

// ---------------------------------------------------------------- nodes

export interface NodeRow {
  name: string;
  role: string;
  state: string;
  term: number | null;
  timeline: number | null;
  fenced: boolean | null;
  lagBytes: number | null;
  /** Where the state came from: the client host (as clients see it), or the node's own host
   *  (when the client cannot reach it, e.g. it is isolated). null: nobody reached it. */
  seenFrom: 'client' | 'self' | null;
}

export function nodeRows(
  view: ClusterView | null,
  fallback: Readonly<Record<string, AgentStatus | null>> = {},
): NodeRow[] {
  if (!view) return [];
  return view.nodes.map((n) => {
    const s = n.state ?? fallback[n.name] ?? null;
    return {
      name: n.name,
      role: s?.role ?? '?',
      state: nodeState(s),
      term: s?.term ?? null,
      timeline: s?.postgres.timeline ?? null,
      fenced: s ? s.fenced : null,
      lagBytes: s?.replication.replayLagBytes ?? null,
      seenFrom: n.state ? 'client' : s ? 'self' : null,
    };
  });
}

// ---------------------------------------------------------------- events

const historyJsonSchema = z.object({
  entries: z.array(historyEntrySchema),
  unreachable: z.array(z.string()),
});

/** `pgarbiter history --json` output; a bad one is an error with its cause. */
export function parseHistoryJson(text: string): { entries: HistoryEntry[]; unreachable: string[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`history --json printed no JSON: ${text.slice(0, 120)}`);
  }
  const r = historyJsonSchema.safeParse(doc);
  if (!r.success) throw new Error(`history --json: unexpected shape (${r.error.issues[0]?.message})`);
  return r.data;
}

/** History kinds worth a mark on the chart (the others stay in the event stream only). */
const MARKED_KINDS: Partial<Record<HistoryEntry['kind'], string>> = {
  grant: 'grant',
  handover: 'switchover',
  forced: 'forced failover',
  fence: 'fence',
  unfence: 'unfence',
  promote: 'promote',
  'force-promote': 'forced promote',
  rejoin: 'rejoin',
  maintenance: 'maintenance',
};

export interface DashEvent {
  /** Epoch ms. */
  t: number;
  /** 'history' (a member's event) or 'action' (a button of this dashboard). */
  source: 'history' | 'action';
  member: string;
  kind: string;
  text: string;
  /** The chart's mark, if the event gets one. */
  mark: string | null;
  /** Unique per event, so a page merges repeats. */
  key: string;
}

export function historyEvent(e: HistoryEntry): DashEvent {
  const label = MARKED_KINDS[e.kind];
  return {
    t: Date.parse(e.at),
    source: 'history',
    member: e.member,
    kind: e.kind,
    text: `${e.member} ${e.kind} (term ${e.term}${e.rule ? `, ${e.rule}` : ''}): ${e.detail}${e.count && e.count > 1 ? ` x${e.count}` : ''}`,
    mark: label ? `${label} ${e.member}` : null,
    key: `h:${e.member}:${e.seq}:${e.count ?? 1}`,
  };
}

export function actionEvent(t: number, a: Action, result: string, ok: boolean): DashEvent {
  return {
    t,
    source: 'action',
    member: 'dashboard',
    kind: ok ? a.action : `${a.action} failed`,
    text: `${describeAction(a)}: ${result}`,
    mark: ok && a.action !== 'writer-stop' ? describeAction(a) : null,
    key: `a:${t}:${a.action}`,
  };
}

// ---------------------------------------------------------------- writes per second

export interface RatePoint {
  /** Start of the second, epoch ms. */
  t: number;
  acks: number;
  fails: number;
}

/** Committed (ack) and failed/unknown transactions per whole second in [fromMs, toMs). */
export function writesPerSecond(txs: readonly TxEntry[], fromMs: number, toMs: number): RatePoint[] {
  const start = Math.floor(fromMs / 1000) * 1000;
  const n = Math.max(0, Math.ceil((toMs - start) / 1000));
  const points: RatePoint[] = Array.from({ length: n }, (_, i) => ({
    t: start + i * 1000,
    acks: 0,
    fails: 0,
  }));
  for (const tx of txs) {
    if (tx.t < start || tx.t >= toMs) continue;
    const p = points[Math.floor((tx.t - start) / 1000)];
    if (!p) continue;
    if (tx.outcome === 'ack') p.acks++;
    else p.fails++;
  }
  return points;
}
