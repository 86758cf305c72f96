// The wire protocol between pgarbiter's members, defined once: every path, every request body and
// every answer, as zod schemas with their TypeScript types. The agent and arbiter servers parse
// requests with these schemas; the client (./client.ts) checks answers with them, so a member
// that speaks something else counts as not answering.
import { z } from 'zod';
import type { ArbiterEventKind } from '../core/arbiter.js';

const term = z.number().int().nonnegative();
const node = z.string().min(1).max(64);

export const clusterRecordSchema = z
  .object({ term, primary: node, standby: node, standbyPromotable: z.boolean(), maintenance: z.boolean() })
  .strict();

// ---- the arbiter ---------------------------------------------------------------------------

/** POST bodies the arbiter accepts, by request kind (the core's ArbiterRequest without `kind`). */
export const arbiterRequestSchemas = {
  promote: z.object({ node, term }).strict(),
  confirmPrimary: z
    .object({ node, term, voidHandoversUpTo: z.number().int().nonnegative().optional() })
    .strict(),
  setPromotable: z.object({ node, term, promotable: z.boolean() }).strict(),
  handover: z.object({ node, to: node, term, seq: z.number().int().positive() }).strict(),
  maintenance: z.object({ enabled: z.boolean() }).strict(),
  forceFailover: z.object({ to: node }).strict(),
  adopt: z.object({ record: clusterRecordSchema }).strict(),
};
export type ArbiterRequestKind = keyof typeof arbiterRequestSchemas;
export type ArbiterRequestBody<K extends ArbiterRequestKind> = z.infer<(typeof arbiterRequestSchemas)[K]>;

export const ARBITER_PATHS: Record<ArbiterRequestKind, string> = {
  promote: '/promote',
  confirmPrimary: '/confirm-primary',
  setPromotable: '/set-promotable',
  handover: '/handover',
  maintenance: '/maintenance',
  forceFailover: '/force-failover',
  adopt: '/adopt',
};

/** The arbiter's answer to every POST (200 when ok, 409 when refused). */
export const arbiterReplySchema = z.object({
  ok: z.boolean(),
  event: z.string().optional(),
  reason: z.string(),
  record: clusterRecordSchema.optional(),
});
export type ArbiterReplyBody = z.infer<typeof arbiterReplySchema>;

export interface ArbiterEvent {
  at: string;
  /** The request kind that caused it. */
  request: string;
  /** What it was: a grant, a refusal, a handover, ... (never found by matching the reason). */
  kind: ArbiterEventKind;
  ok: boolean;
  reason: string;
  term: number;
  /** How many times in a row this answer was given (refusals repeat every round). */
  count?: number;
}

const arbiterEventSchema = z.object({
  at: z.string(),
  request: z.string(),
  kind: z.string() as z.ZodType<ArbiterEventKind>,
  ok: z.boolean(),
  reason: z.string(),
  term,
  count: z.number().optional(),
});

/** GET /state on the arbiter. */
export const arbiterStateSchema = z.object({
  node: z.string(),
  role: z.literal('arbiter'),
  record: clusterRecordSchema,
  primaryReachable: z.boolean(),
  primaryLastSeenMsAgo: z.number(),
  /** When the arbiter last reached the primary's PostgreSQL or confirmed its term (ms ago). */
  primaryVouchedMsAgo: z.number().nullable(),
  agents: z.record(z.string(), z.unknown()),
  events: z.array(arbiterEventSchema),
});
export type ArbiterStateBody = z.infer<typeof arbiterStateSchema>;

/** GET /health on the arbiter: what an agent needs each round (the core's ArbiterView), small
 *  and cheap; /state is the full view for people and tools. */
export const arbiterHealthSchema = z.object({
  ok: z.literal(true),
  node: z.string(),
  role: z.literal('arbiter'),
  record: clusterRecordSchema,
  primaryVouchedMsAgo: z.number().nullable(),
});
export type ArbiterHealthBody = z.infer<typeof arbiterHealthSchema>;

// ---- the agents ----------------------------------------------------------------------------

export const vouchSchema = z.object({ primary: node, term, seenMsAgo: z.number().nonnegative() });

/** The most VIP clients an agent relays to its peer (and the peer tickles). */
export const MAX_VIP_CLIENTS = 1024;

/** GET /health on an agent: what its peer needs each round (the core's PeerHealth). */
export const agentHealthSchema = z.object({
  ok: z.literal(true),
  node,
  record: clusterRecordSchema,
  vouch: vouchSchema.nullable(),
  /** The VIP holder's clients ("A.B.C.D:port"), so the peer can tickle them if it takes the VIP
   *  over (src/vip/vip.ts). Absent on an agent without `vip:` or that does not hold it. */
  vipClients: z
    .array(z.string().regex(/^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/))
    .max(MAX_VIP_CLIENTS)
    .optional(),
});

const rejoinResultSchema = z.object({
  method: z.enum(['rewind', 'basebackup']),
  ms: z.number(),
  discardedCommits: z.number().nullable().optional(),
  at: z.string(),
});

/** GET /state (also the body of /primary and /replica) on an agent. */
export const agentStatusSchema = z.object({
  node: z.string(),
  host: z.string(),
  role: z.enum(['primary', 'standby']),
  phase: z.string(),
  /** The rule that decided the phase (src/core/rules.ts). */
  rule: z.string(),
  term: term,
  record: clusterRecordSchema,
  postgres: z.object({
    up: z.boolean(),
    inRecovery: z.boolean().nullable(),
    receiving: z.boolean(),
    timeline: z.number().nullable(),
    lsn: z.string().nullable(),
  }),
  replication: z.object({
    peerState: z.string().nullable(),
    syncState: z.string().nullable(),
    replayLagBytes: z.number().nullable(),
    syncNames: z.string().nullable(),
    /** The oldest commit now waiting for the synchronous standby has waited this long. */
    commitsWaitingMs: z.number(),
  }),
  fenced: z.boolean(),
  /** Fence actions: how many, how long the last took, how many overran fence_action_budget. */
  fence: z
    .object({ count: z.number(), lastMs: z.number().nullable(), overruns: z.number(), budgetMs: z.number() })
    .optional(),
  reach: z.object({ arbiter: z.boolean(), peerAgent: z.boolean(), primaryPostgres: z.boolean().nullable() }),
  /** The kernel-side lease (config `lease:`): until when this node's clients are served unless the
   *  agent renews it (null: none held, as on a standby). */
  lease: z
    .object({ enabled: z.boolean(), until: z.string().nullable(), remainingMs: z.number().nullable() })
    .optional(),
  lastRejoin: rejoinResultSchema.nullable(),
  /** The floating address (config `vip:`) and whether this node holds it. */
  vip: z.object({ address: z.string(), held: z.boolean() }).nullable().optional(),
  busy: z.string().nullable(),
  updatedAt: z.string(),
});
export type AgentStatus = z.infer<typeof agentStatusSchema>;

/** Answers of the agent's POST routes (202 accepted, 409 refused). */
export const agentReplySchema = z.object({
  ok: z.boolean(),
  reason: z.string(),
  record: clusterRecordSchema.optional(),
});
export type AgentReplyBody = z.infer<typeof agentReplySchema>;

export const AGENT_PATHS = {
  health: '/health',
  state: '/state',
  primary: '/primary',
  replica: '/replica',
  switchover: '/switchover',
  rejoin: '/rejoin',
  forcePromote: '/force-promote',
  wake: '/wake',
} as const;
export type AgentPost = 'switchover' | 'rejoin' | 'forcePromote' | 'wake';

// ---- read-only routes of every member (no secret; nothing secret in them) -------------------

export const READ_PATHS = { metrics: '/metrics', history: '/history' } as const;

/** What kind of event a history entry is: the arbiter's answers (ArbiterEventKind, without the
 *  routine ones) and the agents' actions. */
export const HISTORY_KINDS = [
  'grant',
  'refusal',
  'handover',
  'forced',
  'adopt',
  'maintenance',
  'promotable',
  'confirm',
  'unchanged',
  'fence',
  'fence-failed',
  'unfence',
  'promote',
  'force-promote',
  'rejoin',
  'start',
] as const;
export type HistoryKind = (typeof HISTORY_KINDS)[number];

/** One event of a member's history (GET /history; `pgarbiter history`). */
export const historyEntrySchema = z.object({
  /** Its position in the member's history (increasing, survives restarts). */
  seq: z.number().int().nonnegative(),
  /** When it happened (ISO, UTC); for repeats, the last time. */
  at: z.string(),
  /** For repeats (count > 1): the first time. */
  firstAt: z.string().optional(),
  /** The member that recorded it: a node's name or the arbiter's. */
  member: node,
  kind: z.enum(HISTORY_KINDS),
  /** The term after the event (the member's record). */
  term,
  /** The agent's rule id (src/core/rules.ts), or the request kind that the arbiter answered. */
  rule: z.string().nullable(),
  /** One line: the reason, the method, the discarded commits, ... */
  detail: z.string(),
  /** How many times in a row it happened (the arbiter's refusals repeat every round). */
  count: z.number().int().positive().optional(),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

/** GET /history on an agent or the arbiter: its own events, oldest first. */
export const historySchema = z.object({
  member: node,
  entries: z.array(historyEntrySchema),
});
export type HistoryBody = z.infer<typeof historySchema>;
