// The primary's kernel-side lease: the floor under the fence for when the agent cannot fence
// (dead, frozen, stuck). Like Patroni's watchdog, but it blocks clients instead of rebooting.
//
// A table of our own (next to the fence's, ./nft.ts) whose chains let client traffic to and from
// the PostgreSQL port through only while a set element `lease` is present, and drop it otherwise:
//   - input: incoming TCP to the port is reset (new and established sessions), output: what the
//     server sends from the port is dropped, so a commit that arrived just before the lease lapsed
//     is not acknowledged after it;
//   - loopback (the agent itself), the peer database node (replication) and the arbiter (its
//     read-only probe, whose vouch lets a restarted agent take the lease at once) stay exempt;
//   - the element carries a kernel timeout: when the agent stops refreshing it, it lapses and the
//     kernel blocks clients by itself. A second, absolute bound (`meta time`, whole seconds, the
//     deadline rounded up) limits what a refresh delayed between computing its timeout and
//     committing it (a process stopped just then) could add: at most to the next whole second.
// The agent holds the lease until (last time a peer is known to have reached our PostgreSQL) +
// lease duration, where lease duration = fence_timeout + probe_interval + fence_action_budget: the
// moment by which a live agent has fenced. The timing rule puts that before any grant.
//
// Every refresh replaces the whole table in one nft transaction (as the fence does): it
// works whether or not the table or the element exist. (Re-adding an existing element with
// `add element ... timeout` also extends it on the 6.x kernels tested, but older kernels keep the
// old timeout; the replacement does not depend on it.)
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { NftShell } from './nft-shell.js';

export const leaseTable = (port: number) => `pgarbiter_lease_${port}`;
export const LEASE_SET = 'lease';

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port ${port}`);
}

function exemptions(dir: 'saddr' | 'daddr', addrs: readonly string[]): string[] {
  const v4 = addrs.filter((a) => isIP(a) === 4);
  const v6 = addrs.filter((a) => isIP(a) === 6);
  const bad = addrs.find((a) => isIP(a) === 0);
  if (bad !== undefined) throw new Error(`not an IP address: "${bad}"`);
  const out: string[] = [];
  if (v4.length) out.push(`    ip ${dir} { ${v4.join(', ')} } return`);
  if (v6.length) out.push(`    ip6 ${dir} { ${v6.join(', ')} } return`);
  return out;
}

/**
 * One transaction that (re)creates the lease table. `timeoutMs` > 0: the element is present for
 * that long (and `untilSec`, whole seconds since the epoch, bounds it absolutely); null: the table
 * blocks clients now (a lapsed lease).
 */
export function nftLeaseScript(
  port: number,
  exempt: readonly string[],
  lease: { timeoutMs: number; untilSec: number } | null,
): string {
  checkPort(port);
  const t = leaseTable(port);
  const element =
    lease === null
      ? []
      : [`    elements = { ${port} timeout ${Math.max(1, Math.round(lease.timeoutMs))}ms }`];
  const guard = lease === null ? 0 : Math.ceil(lease.untilSec);
  return [
    `add table inet ${t}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    `  set ${LEASE_SET} {`,
    '    type inet_service',
    '    flags timeout',
    ...element,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter - 5; policy accept;',
    '    iifname "lo" return',
    ...exemptions('saddr', exempt),
    `    tcp dport @${LEASE_SET} meta time < ${guard} return`,
    `    tcp dport ${port} reject with tcp reset`,
    '  }',
    '  chain output {',
    '    type filter hook output priority filter - 5; policy accept;',
    '    oifname "lo" return',
    ...exemptions('daddr', exempt),
    `    tcp sport @${LEASE_SET} meta time < ${guard} return`,
    `    tcp sport ${port} drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Removes the table: clients pass freely (a standby, or `lease: off`). A no-op without one. */
export function nftLeaseRemoveScript(port: number): string {
  checkPort(port);
  const t = leaseTable(port);
  return `add table inet ${t}\ndelete table inet ${t}\n`;
}

/** Reads `nft list set inet <table> lease`: ms until the element expires, 0 when it has lapsed. */
export function leaseRemainingMs(listing: string): number {
  const m = /expires ((?:\d+d)?(?:\d+h)?(?:\d+m(?!s))?(?:\d+s)?(?:\d+ms)?)/.exec(listing);
  if (!m?.[1]) return 0;
  let ms = 0;
  for (const [, n, unit] of m[1].matchAll(/(\d+)(d|h|ms|m|s)/g)) {
    const k = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[
      unit as 'd' | 'h' | 'm' | 's' | 'ms'
    ];
    ms += Number(n) * k;
  }
  return ms;
}

/** What the kernel holds: no table (clients pass), or the table with `remainingMs` of lease left
 *  (0: clients are blocked). */
export type LeaseState = { table: false } | { table: true; remainingMs: number };

export class Lease {
  /** Exempt addresses (peer, arbiter); host names are resolved once in the background (never
   *  while refreshing). Unresolved: not exempt (the safe side). */
  private exempt: string[] = [];
  /** The deadline last committed (ms since the epoch), 'open' after a removal, null: unknown. */
  private applied: number | 'open' | null = null;
  /** A hold that would move the deadline later by less than this is skipped: the kernel keeps
   *  the earlier deadline (the safe side), and nft runs every few rounds, not every round. */
  private readonly minExtendMs: number;
  /** Every nft command of the lease goes to one long-lived `nft -i` (./nft-shell.ts). */
  private readonly shell: NftShell;

  constructor(
    readonly port: number,
    exemptHosts: readonly string[],
    readonly timeoutMs: number,
    opts: { netns?: string; minExtendMs?: number } = {},
  ) {
    checkPort(port);
    this.shell = new NftShell(opts.netns);
    this.minExtendMs = opts.minExtendMs ?? 0;
    for (const h of exemptHosts) {
      if (isIP(h)) this.exempt.push(h);
      else
        lookup(h, { all: true }).then(
          (rs) => {
            this.exempt = [...this.exempt, ...rs.map((r) => r.address)];
          },
          () => {},
        );
    }
  }

  /** Holds the lease until `untilMs` (our clock, ms since the epoch). A deadline already past
   *  blocks clients now. Skipped when it would not move the deadline. */
  async hold(untilMs: number): Promise<void> {
    const a = this.applied;
    if (typeof a === 'number' && untilMs >= a && untilMs - a < this.minExtendMs) return;
    const left = untilMs - Date.now();
    const script = nftLeaseScript(
      this.port,
      this.exempt,
      left > 0 ? { timeoutMs: left, untilSec: untilMs / 1000 } : null,
    );
    this.applied = null;
    await this.nft(script);
    this.applied = untilMs;
  }

  /** No lease needed (a standby; `lease: off`): removes the table. */
  async open(): Promise<void> {
    if (this.applied === 'open') return;
    this.applied = null;
    await this.nft(nftLeaseRemoveScript(this.port));
    this.applied = 'open';
  }

  async state(): Promise<LeaseState> {
    const r = await this.shell.run(`list set inet ${leaseTable(this.port)} ${LEASE_SET}`);
    if (r.ok) return { table: true, remainingMs: leaseRemainingMs(r.output) };
    if (/^Error: No such file or directory/m.test(r.output)) return { table: false };
    throw new Error(`nft list failed: ${r.output}`);
  }

  /** Ends the nft shell (at the agent's stop; a later call starts a new one). */
  close(): void {
    this.shell.close();
  }

  private async nft(script: string): Promise<void> {
    const r = await this.shell.run(script);
    if (!r.ok) throw new Error(`nft (lease) failed: ${r.output}`);
  }
}
