// The lab's shape: which hosts exist, their names, namespaces and addresses. Pure functions.
import { UserError } from '../util/errors.js';

export const HOSTS = ['pg1', 'pg2', 'arbiter', 'client'] as const;
export type HostName = (typeof HOSTS)[number];
export const PG_HOSTS = ['pg1', 'pg2'] as const satisfies readonly HostName[];
/** The hosts that run a member (an agent or the arbiter), each with its API. */
export const MEMBER_HOSTS = ['pg1', 'pg2', 'arbiter'] as const satisfies readonly HostName[];
export type MemberHost = (typeof MEMBER_HOSTS)[number];

/** Last octet of each host's address in the lab's /24. */
export const HOST_OCTET: Record<HostName, number> = { pg1: 11, pg2: 12, arbiter: 13, client: 100 };

export const DEFAULT_PREFIX = 'pga';
export const DEFAULT_SUBNET = '10.213.0.0/24';
/** The host-side interface name in every host namespace. */
export const HOST_IFACE = 'e0';
export const BRIDGE = 'br0';
export const ISO_BRIDGE = 'br-iso';

export interface LabIdentity {
  prefix: string;
  subnet: string;
}

export function isHost(name: string): name is HostName {
  return (HOSTS as readonly string[]).includes(name);
}

export function assertHost(name: string): HostName {
  if (!isHost(name)) throw new UserError(`unknown lab host "${name}": the hosts are ${HOSTS.join(', ')}`);
  return name;
}

export function validatePrefix(prefix: string): string {
  // Namespace names stay short; the trailing "-" in every name keeps "pga" and "pgat" apart.
  if (!/^[a-z][a-z0-9]{1,9}$/.test(prefix))
    throw new UserError(
      `invalid lab prefix "${prefix}": use 2-10 lowercase letters or digits, starting with a letter`,
    );
  return prefix;
}

/** Accepts an IPv4 a.b.c.0/24 (the hosts get fixed last octets). */
export function validateSubnet(subnet: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/24$/.exec(subnet);
  if (!m || m.slice(1).some((o) => Number(o) > 255) || m[4] !== '0')
    throw new UserError(`invalid lab subnet "${subnet}": use an IPv4 /24 such as ${DEFAULT_SUBNET}`);
  return subnet;
}

/** Flags win over the environment, which wins over the defaults. */
export function resolveIdentity(flags: { prefix?: string; subnet?: string }): LabIdentity {
  const prefix = flags.prefix ?? process.env.PGARBITER_LAB_PREFIX ?? DEFAULT_PREFIX;
  const subnet = flags.subnet ?? process.env.PGARBITER_LAB_SUBNET ?? DEFAULT_SUBNET;
  return { prefix: validatePrefix(prefix), subnet: validateSubnet(subnet) };
}

export const switchNs = (prefix: string) => `${prefix}-sw`;
export const hostNs = (prefix: string, host: HostName) => `${prefix}-${host}`;
/** The switch-side end of a host's veth pair (lives only in the switch namespace). */
export const bridgePort = (host: HostName) => `p-${host}`;
export const labDirOf = (prefix: string) => `/tmp/pgarbiter-${prefix}`;
/** Every namespace name a lab with this prefix may own (and nothing else is ever touched). */
export const allNamespaces = (prefix: string) => [switchNs(prefix), ...HOSTS.map((h) => hostNs(prefix, h))];

/** Last octet of the cluster's floating VIP (config `vip:`): on the switch's segment, held by
 *  the unfenced primary only. */
export const VIP_OCTET = 10;

/** The lab's VIP, without its prefix length (the lab's subnet is a /24). */
export function vipAddress(subnet: string): string {
  return `${subnet.split('/')[0]!.split('.').slice(0, 3).join('.')}.${VIP_OCTET}`;
}

export function hostAddress(subnet: string, host: HostName): string {
  const base = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  return `${base}.${HOST_OCTET[host]}`;
}
