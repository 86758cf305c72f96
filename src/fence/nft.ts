// The fence as nftables text: a table of our own whose input chain rejects (TCP reset) incoming
// TCP to the PostgreSQL port, except from loopback and the peer database node. This is the same
// netfilter as iptables (iptables here is iptables-nft, a front end to it), written directly:
//   - one `nft -f -` process, one atomic netlink transaction, replacing the whole table: applying
//     it twice leaves exactly one rule, and no check is needed before it;
//   - no xtables lock (iptables-legacy's `-w` waits on a lock shared by every namespace);
//   - the `inet` family covers IPv4 and IPv6 (an iptables rule covers IPv4 only, while PostgreSQL
//     with listen_addresses='*' also listens on IPv6);
//   - a base chain at priority `filter - 10`: a reject is final whatever another chain (an
//     administrator's accept rule in iptables' INPUT) says, as `-I` meant for iptables.
// Outgoing traffic is untouched: only the input hook is used. Established sessions are reset too:
// their next incoming segment hits the reject.
import { isIP } from 'node:net';

/** Table name per port, so two PostgreSQL instances on one host fence separately. */
export const nftTable = (port: number) => `pgarbiter_fence_${port}`;
export const NFT_CHAIN = 'input';

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port ${port}`);
}

/** The peer exemptions: one `return` per address, by family. Only IP literals are accepted. */
function peerRules(peers: readonly string[]): string[] {
  return peers.map((a) => {
    const v = isIP(a);
    if (v === 0) throw new Error(`not an IP address: "${a}"`);
    return `    ${v === 4 ? 'ip' : 'ip6'} saddr ${a} return`;
  });
}

/** One transaction that (re)creates the table with the fence in it. `add table` + `delete table`
 *  first makes the replacement work whether or not the table exists. */
export function nftFenceScript(port: number, peers: readonly string[]): string {
  checkPort(port);
  const t = nftTable(port);
  return [
    `add table inet ${t}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    `  chain ${NFT_CHAIN} {`,
    '    type filter hook input priority filter - 10; policy accept;',
    '    iifname "lo" return',
    ...peerRules(peers),
    `    tcp dport ${port} reject with tcp reset`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Removes the table (and with it the fence); a no-op when there is none. */
export function nftUnfenceScript(port: number): string {
  checkPort(port);
  const t = nftTable(port);
  return `add table inet ${t}\ndelete table inet ${t}\n`;
}

/** argv that lists our chain: exit 0 with the rules, or 1 with "No such file or directory". */
export function nftListArgv(port: number): string[] {
  checkPort(port);
  return ['nft', 'list', 'chain', 'inet', nftTable(port), NFT_CHAIN];
}

/** Reads `nft list chain` output: is the port's reject rule there? */
export function nftHasFence(listing: string, port: number): boolean {
  return listing.split('\n').some((l) => {
    const s = l.trim();
    return s.startsWith(`tcp dport ${port} `) && s.endsWith('reject with tcp reset');
  });
}

/** How many reject rules for the port the listing holds (tests: fencing twice leaves one). */
export function nftFenceRuleCount(listing: string, port: number): number {
  return listing
    .split('\n')
    .map((l) => l.trim())
    .filter((s) => s.startsWith(`tcp dport ${port} `) && s.endsWith('reject with tcp reset')).length;
}
