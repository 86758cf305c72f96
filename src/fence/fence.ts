// Self-fencing within `fence_action_budget`. The primary fences itself with a netfilter rule
// (iptables' kernel side; written with `nft` by default, see ./nft.ts for why) that rejects, with
// a TCP reset, new and existing incoming TCP to its PostgreSQL port except from loopback (the
// local agent) and the peer database node (its walreceiver; when we are isolated it cannot reach
// us anyway). Outgoing traffic is untouched. Then it terminates the client sessions.
//
// The timing rule `fence_timeout + probe_interval + fence_action_budget < failover_timeout`
// assumes the fence takes at most the budget, so every wait here is derived from it:
//   - the rule gets most of the budget (`ruleShare`, 60 %). It is one process and normally takes
//     ~10 ms. If it is slower it is NOT abandoned at its share: a slow fence is better than none,
//     and killing it mid-way would only start it again. It is killed at `ruleTimeoutMs`
//     (4 x budget, at least 1 s), and the result says `overran`.
//   - the termination gets what is left of the budget, and never less than the rest of the
//     split (40 %), so it is bounded even after a slow rule. The caller's function is raced
//     against that allowance: fence() returns on time whatever the function does.
// fence() does not throw: a rule that could not be applied is `fenced: false` with `error`, and
// the agent's next round (isFenced() false) tries again.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { CommandError, inNetns, type RunResult, run } from '../util/exec.js';
import { IPTABLES_COMMENT, ruleSpec } from './iptables.js';
import { nftFenceScript, nftHasFence, nftListArgv, nftUnfenceScript } from './nft.js';

export { TERMINATE_CLIENTS_SQL } from './terminate.js';

export type FenceMechanism = 'nft' | 'iptables';
export const FENCE_MECHANISMS: readonly FenceMechanism[] = ['nft', 'iptables'];

/** Ends the client sessions within `timeoutMs` and returns how many; given by the caller, which
 *  owns the PostgreSQL connection. */
export type TerminateClients = (timeoutMs: number) => Promise<number>;

export interface FenceOptions {
  /** 'nft' (default): one atomic transaction on a table of our own, IPv4 and IPv6.
   *  'iptables': `-C` then `-I` in INPUT (IPv4 only), as before the budget; kept for comparison. */
  mechanism?: FenceMechanism;
  /** Run the commands inside this network namespace (tests, benchmarks). The agent needs none:
   *  it runs on its host, or inside its lab host's namespace. */
  netns?: string;
  /** Share of the budget planned for the rule (0 < share < 1; default 0.6). */
  ruleShare?: number;
  /** Hard limit of the rule's command (default max(4 x budget, 1000 ms)). */
  ruleTimeoutMs?: number;
}

export interface FenceResult {
  /** The rule is in place (applied now, or found in place by the iptables mechanism). */
  fenced: boolean;
  /** The whole action, ms (0.1 ms resolution, monotonic clock). */
  ms: number;
  ruleMs: number;
  terminateMs: number;
  /** Sessions terminated; null when the termination failed or ran out of its allowance. */
  terminated: number | null;
  /** ms > budgetMs: the timing rule's assumption did not hold this time. */
  overran: boolean;
  budgetMs: number;
  /** What went wrong (rule and/or termination), for the log. */
  error?: string;
}

/** Termination's allowance: what the rule left of the budget, at least the budget's rest share. */
export function terminateAllowanceMs(budgetMs: number, ruleShare: number, elapsedMs: number): number {
  return Math.max(budgetMs - elapsedMs, budgetMs * (1 - ruleShare));
}

const round = (ms: number) => Math.round(ms * 10) / 10;
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

type Settled<T> = { ok: true; value: T } | { ok: false; error: string };

/** Settles with the promise's outcome, or with a timeout error after `ms`, whichever is first. */
function within<T>(p: Promise<T>, ms: number): Promise<Settled<T>> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${round(ms)} ms` }), ms);
    p.then(
      (value) => {
        clearTimeout(timer);
        resolve({ ok: true, value });
      },
      (e: unknown) => {
        clearTimeout(timer);
        resolve({ ok: false, error: message(e) });
      },
    );
  });
}

export class Fence {
  readonly mechanism: FenceMechanism;
  readonly ruleShare: number;
  readonly ruleTimeoutMs: number;
  /** isFenced()/unfence() commands: not part of the budget, still bounded. */
  readonly statusTimeoutMs: number;
  private readonly netns: string | undefined;
  /** The peer's addresses; a host name is resolved once, in the background (never while
   *  fencing: DNS may be what is unreachable). Unresolved: the peer is not exempt (safe side). */
  private peers: string[] | null;

  constructor(
    readonly port: number,
    readonly peerAddress: string,
    readonly budgetMs: number,
    opts: FenceOptions = {},
  ) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port ${port}`);
    if (!(budgetMs > 0)) throw new Error(`fence budget must be positive, got ${budgetMs}`);
    this.mechanism = opts.mechanism ?? 'nft';
    this.netns = opts.netns;
    this.ruleShare = opts.ruleShare ?? 0.6;
    if (!(this.ruleShare > 0 && this.ruleShare < 1)) throw new Error(`ruleShare must be in (0, 1)`);
    this.ruleTimeoutMs = opts.ruleTimeoutMs ?? Math.max(4 * budgetMs, 1000);
    this.statusTimeoutMs = Math.max(2 * budgetMs, 1000);
    if (isIP(peerAddress)) this.peers = [peerAddress];
    else {
      this.peers = null;
      lookup(peerAddress, { all: true }).then(
        (rs) => {
          this.peers = rs.map((r) => r.address);
        },
        () => {},
      );
    }
  }

  /** Applies the rule, then terminates the client sessions; see the file comment for the waits.
   *  `terminateClients` null: the rule only (a switchover's handover, whose fast shutdown follows
   *  at once and ends every session itself). */
  async fence(terminateClients: TerminateClients | null): Promise<FenceResult> {
    const t0 = performance.now();
    const errors: string[] = [];
    let fenced = false;
    try {
      await this.apply();
      fenced = true;
    } catch (e) {
      errors.push(`rule: ${message(e)}`);
    }
    const t1 = performance.now();
    const allowance = terminateAllowanceMs(this.budgetMs, this.ruleShare, t1 - t0);
    const r: Settled<number | null> =
      terminateClients === null
        ? { ok: true, value: null }
        : await within(
            Promise.resolve().then(() => terminateClients(allowance)),
            allowance,
          );
    if (!r.ok) errors.push(`terminating client sessions: ${r.error}`);
    const t2 = performance.now();
    const ms = round(t2 - t0);
    return {
      fenced,
      ms,
      ruleMs: round(t1 - t0),
      terminateMs: round(t2 - t1),
      terminated: r.ok ? r.value : null,
      overran: t2 - t0 > this.budgetMs,
      budgetMs: this.budgetMs,
      ...(errors.length ? { error: errors.join('; ') } : {}),
    };
  }

  /** Is the rule in place? One short command: cheap enough for every agent round. */
  async isFenced(): Promise<boolean> {
    if (this.mechanism === 'iptables') return this.iptablesCheck(this.statusTimeoutMs);
    const r = await this.cmd(nftListArgv(this.port), this.statusTimeoutMs, { allowFailure: true });
    if (r.code === 0) return nftHasFence(r.stdout, this.port);
    // nft's own "Error: No such file or directory" (no table), not ip's "Cannot open network namespace".
    if (/^Error: No such file or directory/m.test(r.stderr)) return false;
    throw new Error(`nft list failed (exit ${r.code}): ${r.stderr.trim()}`);
  }

  /** Checks, changing nothing, that this process may write the fence: `nft -c` (the kernel
   *  validates the whole transaction without committing it) or `iptables -C` (the same netlink
   *  access as -I). Throws what the mechanism said, e.g. that it lacks CAP_NET_ADMIN. */
  async dryRun(): Promise<void> {
    if (this.mechanism === 'iptables') {
      await this.iptablesCheck(this.statusTimeoutMs);
      return;
    }
    await this.cmd(['nft', '-c', '-f', '-'], this.statusTimeoutMs, {
      input: nftFenceScript(this.port, this.peers ?? []),
    });
  }

  /** Removes the fence (every copy); a no-op when there is none. With nft, also removes an
   *  iptables rule left by an agent from before the budget. */
  async unfence(): Promise<void> {
    if (this.mechanism === 'nft') {
      await this.cmd(['nft', '-f', '-'], this.statusTimeoutMs, { input: nftUnfenceScript(this.port) });
      await this.removeIptablesRules([this.peerAddress]).catch(() => {});
      return;
    }
    await this.removeIptablesRules([this.iptablesPeer()]);
  }

  // ------------------------------------------------------------------ mechanisms

  private async apply(): Promise<void> {
    if (this.mechanism === 'nft') {
      await this.cmd(['nft', '-f', '-'], this.ruleTimeoutMs, {
        input: nftFenceScript(this.port, this.peers ?? []),
      });
      return;
    }
    // iptables: check first (already fenced: done), then insert; both within ruleTimeoutMs.
    const t0 = performance.now();
    if (await this.iptablesCheck(this.ruleTimeoutMs)) return;
    const left = Math.max(1, this.ruleTimeoutMs - (performance.now() - t0));
    await this.cmd(this.iptablesArgv('-I', this.iptablesPeer(), left), left);
  }

  /** iptables takes one source address, IPv4: the first IPv4 one of the peer's, or none. */
  private iptablesPeer(): string | null {
    return (this.peers ?? []).find((a) => isIP(a) === 4) ?? null;
  }

  private iptablesArgv(op: '-C' | '-I' | '-D', peer: string | null, timeoutMs: number): string[] {
    // -w: iptables-legacy waits for the xtables lock (shared by all namespaces) this many whole
    // seconds; iptables-nft takes no lock. The process is killed at timeoutMs anyway.
    const w = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    return ['iptables', '-w', w, op, ...ruleSpec(this.port, peer)];
  }

  private async iptablesCheck(timeoutMs: number): Promise<boolean> {
    const argv = this.iptablesArgv('-C', this.iptablesPeer(), timeoutMs);
    const r = await this.cmd(argv, timeoutMs, { allowFailure: true });
    if (r.code === 0) return true;
    if (r.code === 1) return false;
    throw new CommandError(argv, r);
  }

  private async removeIptablesRules(peers: (string | null)[]): Promise<void> {
    for (const peer of peers)
      for (let i = 0; i < 10; i++) {
        const argv = this.iptablesArgv('-D', peer, this.statusTimeoutMs);
        const r = await this.cmd(argv, this.statusTimeoutMs, { allowFailure: true });
        if (r.code !== 0) break; // no (more) such rule
      }
  }

  /** Runs a command (in the namespace, if any); the deadline also covers a child that lingers. */
  private async cmd(
    argv: string[],
    timeoutMs: number,
    o: { input?: string; allowFailure?: boolean } = {},
  ): Promise<RunResult> {
    const full = inNetns(this.netns, argv);
    const r = await within(run(full, { timeoutMs, allowFailure: true, input: o.input }), timeoutMs + 100);
    if (!r.ok) throw new Error(`${argv[0]}: ${r.error}`);
    if (r.value.code !== 0 && !o.allowFailure) throw new CommandError(argv, r.value);
    return r.value;
  }
}

/** Did a netfilter command fail for lack of privilege (no root, no CAP_NET_ADMIN in a container)? */
export function deniedByKernel(message: string): boolean {
  return /Permission denied|Operation not permitted|you must be root/i.test(message);
}

/** The comment that marks the iptables mechanism's rule (`iptables -S INPUT`). */
export { IPTABLES_COMMENT };
