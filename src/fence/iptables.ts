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
