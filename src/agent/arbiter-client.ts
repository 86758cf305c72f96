// The agent's calls to the arbiter. Every call has a deadline; a refusal is not an exception.
import type { Config } from '../config.js';
import type { ClusterRecord } from '../core/types.js';
import { callJson } from '../util/http.js';

export interface ArbiterReply {
  ok: boolean;
  reason: string;
  record?: ClusterRecord;
}

export class ArbiterClient {
  constructor(
    private readonly cfg: Config,
    private readonly timeoutMs = 1000,
  ) {}

  private url(path: string) {
    return `http://${this.cfg.arbiter.host}:${this.cfg.api_port}${path}`;
  }

  /** The record, and how long ago the arbiter last reached the recorded primary's PostgreSQL
   *  (or confirmed its term); null when the arbiter does not answer in time. */
  async view(
    timeoutMs = this.cfg.timing.probeTimeoutMs,
  ): Promise<{ record: ClusterRecord; primaryVouchedMsAgo: number | null } | null> {
    try {
      const r = await callJson<{ record: ClusterRecord; primaryVouchedMsAgo?: number | null }>(
        this.url('/state'),
        { timeoutMs },
      );
      if (r.status !== 200) return null;
      const ms = r.body.primaryVouchedMsAgo;
      return { record: r.body.record, primaryVouchedMsAgo: typeof ms === 'number' && ms >= 0 ? ms : null };
    } catch {
      return null;
    }
  }

  /** The record, or null when the arbiter does not answer in time. */
  async record(timeoutMs = this.cfg.timing.probeTimeoutMs): Promise<ClusterRecord | null> {
    return (await this.view(timeoutMs))?.record ?? null;
  }

  async post(path: string, body: unknown): Promise<ArbiterReply> {
    try {
      const r = await callJson<ArbiterReply & { error?: string }>(this.url(path), {
        method: 'POST',
        body,
        secret: this.cfg.secret,
        timeoutMs: this.timeoutMs,
      });
      if (r.status === 200 || r.status === 409) return r.body;
      return { ok: false, reason: `arbiter answered ${r.status}: ${r.body.error ?? ''}` };
    } catch (e) {
      return { ok: false, reason: `arbiter unreachable: ${(e as Error).message}` };
    }
  }
}
