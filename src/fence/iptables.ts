// The iptables form of the fence rule (fence_mechanism: iptables; written by ./fence.ts): it
// rejects new (and resets existing) client connections to this host's PostgreSQL port. Loopback
// stays open so the local agent still works, and outgoing traffic (the agent's probes, pg_rewind)
// is untouched: the rule matches only incoming TCP to the port. Inserted (-I) so it wins over any
// accept rule an administrator has. The peer database node is exempt: its walreceiver must keep
// streaming (a switchover's clean shutdown ships the last WAL through it), and it writes nothing.
// When this node is isolated the peer cannot reach it anyway.

export const IPTABLES_COMMENT = 'pgarbiter-fence';

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
    IPTABLES_COMMENT,
    '-j',
    'REJECT',
    '--reject-with',
    'tcp-reset',
  ];
}
