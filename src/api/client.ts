// The one client of the wire protocol (./protocol.ts), used by the agents, the arbiter, the CLI,
// the cluster view, the demo and the scenarios. Every call has a deadline. A member that does not
// answer in time, or answers something that does not parse, is `null` (GETs) or a reply with
// `answered: false` (POSTs): a refusal is never an exception.
import type { z } from 'zod';
import type { Config } from '../config.js';
import { apiUrl, type TlsMaterial, tlsMaterial } from '../tls/material.js';
import { ChannelClient, ChannelRefused } from '../util/channel.js';
import { callJson, clientContextOf } from '../util/http.js';
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

/** How long a member that did not offer the channel is called over HTTPS before it is asked again. */
const HTTPS_RETRY_CHANNEL_MS = 60_000;

export class ApiClient {
  /** Read at construction: a missing CA or key is a clear error at start, not a silent null. */
  private readonly tls: TlsMaterial;
  /** A kept channel per member host (util/channel.ts). */
  private readonly channels = new Map<string, ChannelClient>();
  /** Hosts that did not offer the channel (an older member), called over HTTPS until then. */
  private readonly httpsUntil = new Map<string, number>();

  constructor(
    private readonly cfg: ClusterMembers,
    private readonly socketOf: SocketOf = () => undefined,
  ) {
    this.tls = tlsMaterial(cfg.tls);
  }

  private url(host: string, path: string): string {
    return apiUrl(host, this.cfg.api_port, path);
  }

  /** One call to a member: over its kept channel, or over HTTPS to a member that does not offer
   *  one (tried again after HTTPS_RETRY_CHANNEL_MS, for a member upgraded meanwhile). */
  private async call(
    host: string,
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    withSecret: boolean,
    timeoutMs: number,
  ): Promise<{ status: number; body: unknown }> {
    const secret = withSecret ? this.cfg.secret : undefined;
    if ((this.httpsUntil.get(host) ?? 0) <= Date.now()) {
      let channel = this.channels.get(host);
      if (!channel) {
        channel = new ChannelClient({
          host,
          port: this.cfg.api_port,
          socketPath: this.socketOf(host),
          secureContext: clientContextOf(this.tls),
        });
        this.channels.set(host, channel);
      }
      const started = Date.now();
      try {
        return await channel.call(
          { method, path, ...(secret ? { secret } : {}), ...(body === undefined ? {} : { body }) },
          timeoutMs,
        );
      } catch (e) {
        if (!(e instanceof ChannelRefused)) throw e;
        this.httpsUntil.set(host, Date.now() + HTTPS_RETRY_CHANNEL_MS);
        timeoutMs = Math.max(1, timeoutMs - (Date.now() - started));
      }
    }
    return callJson(this.url(host, path), {
      method,
      ...(body === undefined ? {} : { body }),
      ...(secret ? { secret } : {}),
      timeoutMs,
      tls: this.tls,
      socketPath: this.socketOf(host),
    });
  }

  /** Ends the kept channels (a process that is done with the cluster). */
  close(): void {
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
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
      const r = await this.call(host, 'GET', path, undefined, withSecret, timeoutMs);
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
      const r = await this.call(host, 'POST', path, body, true, timeoutMs);
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
