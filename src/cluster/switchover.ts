// A planned switchover as a person asks for it (`pgarbiter switchover`): check the candidate, ask
// the primary's agent to hand over, follow the new roles.
import { ApiClient } from '../api/client.js';
import type { Config } from '../config.js';
import { UserError } from '../util/errors.js';
import { sleep } from '../util/exec.js';
import { type ClusterView, fetchClusterView, nodeState } from './view.js';

export interface SwitchoverResult {
  from: string;
  to: string;
  ms: number;
  term: number;
}

/** Where a switchover is, as a person watching the cluster sees it. */
export interface SwitchoverProgress {
  stage: 'handover' | 'promote' | 'rejoin' | 'done' | 'aborted';
  /** The old primary was seen fenced: its agent has begun the handover. */
  sawFence: boolean;
}

/** The next stage from one look at the cluster. The old primary's agent fences before it hands
 *  over; seen unfenced and writable again in the same term, it gave up (the standby did not replay
 *  in time, or the arbiter refused) and resumed. A successful handover raises the term first. */
export function followSwitchover(
  p: SwitchoverProgress,
  view: ClusterView,
  from: string,
  to: string,
  term: number,
): SwitchoverProgress {
  const record = view.arbiter.state?.record;
  const neu = view.nodes.find((n) => n.name === to)?.state;
  const old = view.nodes.find((n) => n.name === from)?.state;
  const sawFence = p.sawFence || old?.fenced === true;
  const handedOver = record !== undefined && record.term > term && record.primary === to;
  const oldOwnTerm = Math.max(old?.term ?? term, old?.record.term ?? term);
  let stage = p.stage;
  if (stage === 'handover' && handedOver) stage = 'promote';
  else if (
    stage === 'handover' &&
    sawFence &&
    old &&
    !old.fenced &&
    old.postgres.inRecovery === false &&
    oldOwnTerm === term &&
    (record === undefined || record.term === term)
  )
    return { stage: 'aborted', sawFence };
  if (stage === 'promote' && neu?.postgres.inRecovery === false && !neu.fenced) stage = 'rejoin';
  if (stage === 'rejoin' && old?.postgres.inRecovery === true && old.postgres.receiving && !old.fenced)
    stage = 'done';
  return { stage, sawFence };
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
  let progress: SwitchoverProgress = { stage: 'handover', sawFence: false };
  while (Date.now() < end) {
    await sleep(100);
    const next = followSwitchover(progress, await fetchClusterView(cfg, 1000), rec.primary, target, rec.term);
    if (next.stage !== progress.stage) {
      const ms = Date.now() - t0;
      if (next.stage === 'promote') say(`  arbiter: term ${rec.term + 1} handed to ${target} (${ms} ms)`);
      if (next.stage === 'rejoin') say(`  ${target} is primary and writable (${ms} ms)`);
      if (next.stage === 'done') {
        say(`  ${rec.primary} rejoined as streaming standby (${ms} ms)`);
        return { from: rec.primary, to: target, ms, term: rec.term + 1 };
      }
      if (next.stage === 'aborted')
        throw new UserError(
          `switchover aborted by ${rec.primary}'s agent: it serves again as primary of term ${rec.term} ` +
            `(its log says why: ${target} did not catch up in time, or the arbiter refused)`,
        );
    }
    progress = next;
    if (progress.stage === 'handover' && Date.now() - t0 > 15_000)
      throw new UserError(
        `switchover did not start within 15 s: see ${rec.primary}'s agent log (it may have aborted and resumed)`,
      );
  }
  throw new UserError(
    `switchover not finished within ${timeoutMs / 1000} s (stage: ${progress.stage}); see \`pgarbiter status\``,
  );
}
