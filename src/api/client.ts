// The one client of the wire protocol (./protocol.ts), used by the agents, the arbiter, the CLI,
// the cluster view, the demo and the scenarios. Every call has a deadline. A member that does not
// answer in time, or answers something that does not parse, is `null` (GETs) or a reply with
// `answered: false` (POSTs): a refusal is never an exception.
import type { z } from 'zod';
import type { Config } from '../config.js';
import { apiUrl, type TlsMaterial, tlsMaterial } from '../tls/material.js';
import { callJson } from '../util/http.js';
import {
  AGENT_PATHS,
  type AgentPost,
  type AgentStatus,
  ARBITER_PATHS,
  type ArbiterHealthBody,
  type ArbiterRequestBody,
  type ArbiterRequestKind,
  type ArbiterStateBody,
  agentHealthSchema,
  agentReplySchema,
  agentStatusSchema,
  arbiterHealthSchema,
  arbiterReplySchema,
  arbiterStateSchema,
  type HistoryBody,
  historySchema,
  READ_PATHS,
} from './protocol.js';

export interface PostResult<T> {
  /** False: no answer in time, or not a protocol answer; `reason` says which. */
  answered: boolean;
  /** The HTTP status (0 when not answered). */
  status: number;
  body: T;
}

/** What a client of the members needs of a config. */
export type ClusterMembers = Pick<Config, 'api_port' | 'secret' | 'arbiter' | 'nodes' | 'tls'>;

/** A unix socket that forwards to a member's API (by the host the config names), or undefined to
 *  connect to the host itself. The lab's (lab/api-sockets.ts) let the CLI reach it from outside. */
export type SocketOf = (host: string) => string | undefined;

export class ApiClient {
  /** Read at construction: a missing CA or key is a clear error at start, not a silent null. */
  private readonly tls: TlsMaterial;

  constructor(
    private readonly cfg: ClusterMembers,
    private readonly socketOf: SocketOf = () => undefined,
  ) {
    this.tls = tlsMaterial(cfg.tls);
  }

  private url(host: string, path: string): string {
    return apiUrl(host, this.cfg.api_port, path);
  }

  /** A GET that answers 200 with a body of `schema`'s shape, else null. */
  private async get<T>(
    host: string,
    path: string,
    schema: z.ZodType<T>,
    timeoutMs: number,
    withSecret = false,
  ) {
    try {
      const r = await callJson(this.url(host, path), {
        timeoutMs,
        ...(withSecret ? { secret: this.cfg.secret } : {}),
        tls: this.tls,
        socketPath: this.socketOf(host),
      });
      if (r.status !== 200) return null;
      const p = schema.safeParse(r.body);
      return p.success ? p.data : null;
    } catch {
      return null;
    }
  }

  private async post<T extends { ok: boolean; reason: string }>(
    host: string,
    path: string,
    body: unknown,
    schema: z.ZodType<T>,
    timeoutMs: number,
  ): Promise<PostResult<T>> {
    const lost = (reason: string, status = 0): PostResult<T> => ({
      answered: false,
      status,
      body: { ok: false, reason } as T,
    });
    try {
      const r = await callJson<unknown>(this.url(host, path), {
        method: 'POST',
        body,
        secret: this.cfg.secret,
        timeoutMs,
        tls: this.tls,
        socketPath: this.socketOf(host),
      });
      const p = schema.safeParse(r.body);
      if (p.success) return { answered: true, status: r.status, body: p.data };
      const err = (r.body as { error?: unknown } | null)?.error;
      return lost(`${host} answered ${r.status}${typeof err === 'string' ? `: ${err}` : ''}`, r.status);
    } catch (e) {
      return lost(`${host} unreachable: ${(e as Error).message}`);
    }
  }

  // ---- the arbiter

  arbiterState(timeoutMs: number): Promise<ArbiterStateBody | null> {
    return this.get(this.cfg.arbiter.host, '/state', arbiterStateSchema, timeoutMs);
  }

  /** The arbiter's answer to an agent's round: its record and vouch for the primary. */
  arbiterHealth(timeoutMs: number): Promise<ArbiterHealthBody | null> {
    return this.get(this.cfg.arbiter.host, '/health', arbiterHealthSchema, timeoutMs);
  }

  arbiterPost<K extends ArbiterRequestKind>(kind: K, body: ArbiterRequestBody<K>, timeoutMs: number) {
    return this.post(this.cfg.arbiter.host, ARBITER_PATHS[kind], body, arbiterReplySchema, timeoutMs);
  }

  // ---- the agents

  /** GET /health with the secret: the peer's VIP clients come only to a member. */
  agentHealth(host: string, timeoutMs: number) {
    return this.get(host, AGENT_PATHS.health, agentHealthSchema, timeoutMs, true);
  }

  agentState(host: string, timeoutMs: number): Promise<AgentStatus | null> {
    return this.get(host, AGENT_PATHS.state, agentStatusSchema, timeoutMs);
  }

  // ---- every member

  /** GET /history of a member (an agent's host or the arbiter's): its own events, oldest first. */
  history(host: string, timeoutMs: number): Promise<HistoryBody | null> {
    return this.get(host, READ_PATHS.history, historySchema, timeoutMs);
  }

  agentPost(host: string, what: AgentPost, timeoutMs: number) {
    return this.post(host, AGENT_PATHS[what], undefined, agentReplySchema, timeoutMs);
  }
}
