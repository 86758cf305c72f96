// Self-fencing: an iptables rule that rejects new (and resets existing) client connections to
// this host's PostgreSQL port. Loopback stays open so the local agent still works, and outgoing
// traffic (the agent's probes, pg_rewind) is untouched: the rule matches only incoming TCP to
// the port. Inserted (-I) so it wins over any accept rule an administrator has.
// The peer database node is exempt: its walreceiver must keep streaming (a switchover's clean
// shutdown ships the last WAL through it), and it writes nothing. When this node is isolated
// the peer cannot reach it anyway.
import { run } from '../util/exec.js';

export { TERMINATE_CLIENTS_SQL } from './terminate.js';

export const IPTABLES_COMMENT = 'pgarbiter-fence';
const COMMENT = IPTABLES_COMMENT;

/** The rule after `-I`/`-C`/`-D` (IPv4 only: iptables does not cover IPv6). */
export function ruleSpec(port: number, peerAddress: string | null): string[] {
  const match = ['-p', 'tcp', '--dport', String(port), '!', '-i', 'lo'];
  if (peerAddress !== null) match.push('!', '-s', peerAddress);
  return [
    'INPUT',
    ...match,
    '-m',
    'comment',
    '--comment',
    COMMENT,
    '-j',
    'REJECT',
    '--reject-with',
    'tcp-reset',
  ];
}

/**
 * @deprecated The agent's fence before the budget: waits up to 5 s for the iptables lock on each
 * of its two commands and knows nothing of `fence_action_budget`. Use `Fence` from `./fence.js`
 * (budgeted, nft by default); this one stays until src/agent/daemon.ts has moved over.
 */
export class Fence {
  constructor(
    readonly port: number,
    readonly peerAddress: string,
  ) {}

  async isFenced(): Promise<boolean> {
    const r = await run(['iptables', '-w', '5', '-C', ...ruleSpec(this.port, this.peerAddress)], {
      allowFailure: true,
      timeoutMs: 5000,
    });
    if (r.code === 0) return true;
    if (r.code === 1) return false;
    throw new Error(`iptables -C failed (exit ${r.code}): ${r.stderr.trim()}`);
  }

  async fence(): Promise<void> {
    if (await this.isFenced()) return;
    await run(['iptables', '-w', '5', '-I', ...ruleSpec(this.port, this.peerAddress)], { timeoutMs: 5000 });
  }

  /** Removes every copy of the rule. */
  async unfence(): Promise<void> {
    for (let i = 0; i < 10 && (await this.isFenced()); i++)
      await run(['iptables', '-w', '5', '-D', ...ruleSpec(this.port, this.peerAddress)], { timeoutMs: 5000 });
  }
}
