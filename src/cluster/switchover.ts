// A planned switchover as a person asks for it (`pgarbiter switchover`): check the candidate, ask
// the primary's agent to hand over, follow the new roles.
import { ApiClient } from '../api/client.js';
import type { Config } from '../config.js';
import { UserError } from '../util/errors.js';
import { sleep } from '../util/exec.js';
import { fetchClusterView, nodeState } from './view.js';

export interface SwitchoverResult {
  from: string;
  to: string;
  ms: number;
  term: number;
}

/** Checks the candidate, asks the primary's agent to hand over, waits for the new roles. */
export async function switchover(
  cfg: Config,
  to: string | undefined,
  timeoutMs: number,
  say: (m: string) => void,
): Promise<SwitchoverResult> {
  const t0 = Date.now();
  const view = await fetchClusterView(cfg);
  const rec = view.arbiter.state?.record;
  if (!rec)
    throw new UserError(
      `arbiter unreachable at ${cfg.arbiter.host}: a switchover needs it to hand over the term`,
    );
  const target = to ?? rec.standby;
  if (target === rec.primary) throw new UserError(`${target} is already the primary`);
  if (target !== rec.standby) throw new UserError(`unknown node "${target}": the standby is ${rec.standby}`);
  const p = view.nodes.find((n) => n.name === rec.primary);
  const s = view.nodes.find((n) => n.name === target)?.state;
  if (!p?.state)
    throw new UserError(`the primary ${rec.primary} does not answer: use failover, not switchover`);
  if (!s?.postgres.up || s.postgres.inRecovery !== true || !s.postgres.receiving)
    throw new UserError(`refused: ${target} is not a healthy streaming standby (${nodeState(s ?? null)})`);
  if (!rec.standbyPromotable)
    throw new UserError(`refused: ${target} is not promotable (not caught up / not synchronous)`);
  if (rec.maintenance) throw new UserError('refused: maintenance mode is on (`pgarbiter maintenance off`)');
  say(`switchover: ${rec.primary} -> ${target} (term ${rec.term} -> ${rec.term + 1})`);
  const r = await new ApiClient(cfg).agentPost(p.host, 'switchover', 3000);
  if (!r.answered) throw new UserError(`agent of ${rec.primary}: ${r.body.reason}`);
  if (r.status !== 202) throw new UserError(`refused by ${rec.primary}: ${r.body.reason}`);
  const end = Date.now() + timeoutMs;
  let stage = 'handover';
  while (Date.now() < end) {
    await sleep(100);
    const v = await fetchClusterView(cfg, 1000);
    const nr = v.arbiter.state?.record;
    const np = v.nodes.find((n) => n.name === target)?.state;
    const old = v.nodes.find((n) => n.name === rec.primary)?.state;
    if (stage === 'handover' && nr && nr.term > rec.term && nr.primary === target) {
      stage = 'promote';
      say(`  arbiter: term ${nr.term} handed to ${target} (${Date.now() - t0} ms)`);
    }
    if (stage === 'promote' && np?.postgres.inRecovery === false && !np.fenced) {
      stage = 'rejoin';
      say(`  ${target} is primary and writable (${Date.now() - t0} ms)`);
    }
    if (stage === 'rejoin' && old?.postgres.inRecovery === true && old.postgres.receiving && !old.fenced) {
      say(`  ${rec.primary} rejoined as streaming standby (${Date.now() - t0} ms)`);
      return { from: rec.primary, to: target, ms: Date.now() - t0, term: nr?.term ?? rec.term + 1 };
    }
    if (stage === 'handover' && Date.now() - t0 > 15_000)
      throw new UserError(
        `switchover did not start within 15 s: see ${rec.primary}'s agent log (it may have aborted and resumed)`,
      );
  }
  throw new UserError(
    `switchover not finished within ${timeoutMs / 1000} s (stage: ${stage}); see \`pgarbiter status\``,
  );
}
