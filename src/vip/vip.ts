// The floating virtual IP (config `vip:`): an IPv4 address that only the unfenced, writable
// primary holds, the way vip-manager or keepalived serve Patroni users. Clients connect to it;
// when it moves, a gratuitous ARP (iputils-arping, `arping -U`) points the segment at the new
// holder, so a client's next packet on an old connection meets a host that resets it and the
// client reconnects at once instead of waiting on a dead host. A client whose statement is in
// flight sends nothing until TCP retransmits (0.2, 0.6, 1.4, 3 s after the cut), so the new holder
// also "tickles" the connections the old primary had on the VIP (CTDB's tickle ACK): a bare ACK
// from VIP:port makes the client answer with its own ACK, which meets the new holder's kernel, which
// has no such connection and resets it.
// Pure parts first (parsing, the subnet checks, who should hold it), then the `ip`/`arping` edge.
import { UserError } from '../util/errors.js';
import { run } from '../util/exec.js';

export interface VipSpec {
  /** "A.B.C.D/len" as written in the config. */
  address: string;
  interface: string;
}

export interface ParsedVip {
  ip: string;
  prefixLen: number;
  /** The address as `ip addr` takes it: A.B.C.D/len. */
  cidr: string;
  iface: string;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function ipv4ToInt(ip: string): number | null {
  const m = IPV4.exec(ip);
  if (!m) return null;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return null;
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

/** Is `ip` inside network `net`/`len`? */
export function inSubnet(ip: string, net: string, len: number): boolean {
  const a = ipv4ToInt(ip);
  const b = ipv4ToInt(net);
  if (a === null || b === null) return false;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}

/** "A.B.C.D/len" -> parts, or why not (one line). */
export function parseVipAddress(address: string): { ip: string; prefixLen: number } | string {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(address.trim());
  if (!m || ipv4ToInt(m[1]!) === null || Number(m[2]) < 1 || Number(m[2]) > 32)
    return `vip.address "${address}" is not an IPv4 address with its prefix length, e.g. 10.0.0.10/24`;
  const ip = m[1]!;
  const prefixLen = Number(m[2]);
  if (prefixLen < 31) {
    const n = ipv4ToInt(ip)!;
    const hostBits = (0xffffffff >>> prefixLen) >>> 0;
    if ((n & hostBits) === 0 || (n & hostBits) === hostBits)
      return `vip.address "${address}" is the network or broadcast address of its subnet: pick a host address`;
  }
  return { ip, prefixLen };
}

/** What the config itself can tell (no I/O): a host address, no member's own, in the same
 *  subnet as the database nodes (those named by IPv4 literal; the arbiter may live elsewhere). */
export function vipConfigProblem(
  spec: VipSpec,
  nodes: { name: string; host: string }[],
  arbiter: { name: string; host: string },
): string | null {
  const p = parseVipAddress(spec.address);
  if (typeof p === 'string') return p;
  const same = [...nodes, arbiter].find((m) => m.host === p.ip);
  if (same) return `vip.address ${p.ip} is ${same.name}'s own address: pick a free address in its subnet`;
  for (const m of nodes)
    if (ipv4ToInt(m.host) !== null && !inSubnet(m.host, p.ip, p.prefixLen))
      return `vip.address ${spec.address} is outside the database nodes' subnet (${m.name} is ${m.host}): pick an address in it`;
  return null;
}

/** Against the interface's own IPv4 addresses (from `ip -j addr`): the VIP must be inside one
 *  of its subnets, or no host of the segment could reach it. */
export function vipInterfaceProblem(
  vip: ParsedVip,
  ifaceAddrs: { ip: string; prefixLen: number }[],
): string | null {
  const own = ifaceAddrs.filter((a) => a.ip !== vip.ip);
  if (own.length === 0)
    return `vip.interface ${vip.iface} has no IPv4 address: give the interface of the cluster's network`;
  if (!own.some((a) => inSubnet(vip.ip, a.ip, a.prefixLen)))
    return `vip.address ${vip.cidr} is outside ${vip.iface}'s subnet (${own.map((a) => `${a.ip}/${a.prefixLen}`).join(', ')}): pick an address in it`;
  return null;
}

/** Who holds the VIP: the node that the record names primary, whose PostgreSQL answers as
 *  writable, and that is not fenced. Anything else (standby, fenced, demoted, down) must not. */
export function shouldHoldVip(s: {
  isRecordPrimary: boolean;
  postgresUp: boolean;
  inRecovery: boolean | null;
  fenced: boolean;
}): boolean {
  return s.isRecordPrimary && s.postgresUp && s.inRecovery === false && !s.fenced;
}

/** `arping -D` output: the MAC of the host that answered for the address, if any. */
export function arpingReplyMac(out: string): string | null {
  return /reply from [0-9.]+ \[([0-9A-Fa-f:]{17})\]/.exec(out)?.[1]?.toLowerCase() ?? null;
}

/** The clients a VIP holder relays to its peer, which resets them (tickle) if it takes the address
 *  over: the primary's TCP sessions (src/agent/probes.ts, tcpClients) but the peer agent's own,
 *  which reach our address from the peer's, at most `max`. */
export function vipClientsToRelay(tcpClients: readonly string[], peerAddress: string, max: number): string[] {
  return tcpClients.filter((c) => !c.startsWith(`${peerAddress}:`)).slice(0, max);
}

/** The tickle ACK sender, run by python3 (Node has no raw sockets). argv: VIP, port, then each
 *  client as A.B.C.D:port. A raw TCP socket bound to the VIP (the kernel writes the IP header);
 *  ACK with seq 0 and ack 0 is outside any window, so each client answers with its real numbers.
 *  Three passes (0, 0.3 and 0.9 s): a client whose ARP entry still named the old holder, or that
 *  rate-limits its answers (500 ms per connection), answers a later one. Needs CAP_NET_RAW. */
/** Debian's interpreter by its path: a member's PATH may name another one it cannot read. */
export const PYTHON = '/usr/bin/python3';

export const TICKLE_PY = `
import socket, struct, sys, time
vip, vport = sys.argv[1], int(sys.argv[2])
pairs = [(a, int(p)) for a, p in (x.rsplit(':', 1) for x in sys.argv[3:])]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.bind((vip, 0))
def checksum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
for wait in (0, 0.3, 0.6):
    time.sleep(wait)
    for ip, port in pairs:
        h = struct.pack('!HHIIBBHHH', vport, port, 0, 0, 5 << 4, 0x10, 1024, 0, 0)
        pseudo = socket.inet_aton(vip) + socket.inet_aton(ip) + struct.pack('!BBH', 0, 6, len(h))
        h = h[:16] + struct.pack('!H', checksum(pseudo + h)) + h[18:]
        s.sendto(h, (ip, 0))
`;

// ---------------------------------------------------------------- the edge: ip and arping

export function parseVip(spec: VipSpec): ParsedVip {
  const p = parseVipAddress(spec.address);
  if (typeof p === 'string') throw new UserError(p);
  return { ...p, cidr: `${p.ip}/${p.prefixLen}`, iface: spec.interface };
}

/** IPv4 addresses of an interface, from `ip -j -4 addr show dev IFACE`. */
export async function interfaceAddrs(iface: string): Promise<{ ip: string; prefixLen: number }[] | null> {
  const r = await run(['ip', '-j', '-4', 'addr', 'show', 'dev', iface], {
    timeoutMs: 3000,
    allowFailure: true,
  });
  if (r.code !== 0) return null;
  const links = JSON.parse(r.stdout || '[]') as { addr_info?: { local: string; prefixlen: number }[] }[];
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => ({ ip: a.local, prefixLen: a.prefixlen })));
}

export class Vip {
  constructor(readonly vip: ParsedVip) {}

  async held(): Promise<boolean> {
    return ((await interfaceAddrs(this.vip.iface)) ?? []).some((a) => a.ip === this.vip.ip);
  }

  /** Adds the address (if missing) and announces it with gratuitous ARP. Returns whether it was added now. */
  async acquire(): Promise<boolean> {
    const r = await run(['ip', 'addr', 'add', this.vip.cidr, 'dev', this.vip.iface], {
      timeoutMs: 3000,
      allowFailure: true,
    });
    if (r.code !== 0 && !/exists/i.test(r.stderr))
      throw new Error(`ip addr add ${this.vip.cidr} dev ${this.vip.iface}: ${r.stderr.trim()}`);
    // Two unsolicited ARPs (-U): one now, one a second later for a host that missed the first.
    // Not awaited: the address already works, and arping takes a second per packet.
    const arp = run(['arping', '-q', '-U', '-c', '2', '-I', this.vip.iface, this.vip.ip], {
      timeoutMs: 4000,
      allowFailure: true,
    });
    void arp.catch(() => {});
    return r.code === 0;
  }

  /** Sends the tickle ACKs from the VIP to each client (see TICKLE_PY); resolves when sent. */
  async tickle(port: number, clients: string[]): Promise<void> {
    if (clients.length === 0) return;
    const r = await run([PYTHON, '-c', TICKLE_PY, this.vip.ip, String(port), ...clients], {
      timeoutMs: 5000,
      allowFailure: true,
    });
    if (r.code !== 0)
      throw new Error(`python3 (tickle ACK) exited with ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
  }

  /** Removes the address if present. Returns whether it was held. */
  async release(): Promise<boolean> {
    const r = await run(['ip', 'addr', 'del', this.vip.cidr, 'dev', this.vip.iface], {
      timeoutMs: 3000,
      allowFailure: true,
    });
    if (r.code === 0) return true;
    if (/cannot assign|not found|no such/i.test(r.stderr)) return false;
    throw new Error(`ip addr del ${this.vip.cidr} dev ${this.vip.iface}: ${r.stderr.trim()}`);
  }

  /** Start-up checks with one-line errors: arping and python3 installed, the interface and its subnet, and
   *  the address not in use by a host that is not the peer (which may rightly hold it). */
  async check(peerHost: string): Promise<void> {
    const v = this.vip;
    const which = await run(['arping', '-V'], { timeoutMs: 3000, allowFailure: true }).catch((e: Error) => e);
    // arping carries the file capability cap_net_raw: an agent whose bounding set lacks it cannot
    // even execute it (EPERM), which is not the same fix as a missing package.
    if (which instanceof Error && /EPERM|EACCES|not permitted/i.test(which.message))
      throw new UserError(
        'vip: arping cannot run without CAP_NET_RAW (the gratuitous ARP): give the agent CAP_NET_RAW too (systemd AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW, compose cap_add: [NET_RAW])',
      );
    if (which instanceof Error || !/iputils/i.test(which.stdout + which.stderr))
      throw new UserError(
        'vip: arping from iputils not found (gratuitous ARP announces the address): apt-get install -y iputils-arping',
      );
    const py = await run([PYTHON, '-c', 'import socket, struct'], {
      timeoutMs: 5000,
      allowFailure: true,
    }).catch((e: Error) => e);
    if (py instanceof Error || py.code !== 0)
      throw new UserError(
        `vip: ${PYTHON} not found (it sends the tickle ACK that resets the old primary's clients): apt-get install -y python3-minimal`,
      );
    const addrs = await interfaceAddrs(v.iface);
    if (addrs === null)
      throw new UserError(
        `vip.interface ${v.iface} does not exist on this host: give the interface of the cluster's network`,
      );
    const problem = vipInterfaceProblem(v, addrs);
    if (problem) throw new UserError(problem);
    if (await this.held()) return;
    const owner = await this.inUseBy();
    if (!owner) return;
    const peerMac = await this.macOf(peerHost);
    if (owner !== peerMac)
      throw new UserError(
        `vip.address ${v.ip} is in use by another host (MAC ${owner}, not the peer ${peerHost}): pick a free address`,
      );
  }

  /** Duplicate address detection: the MAC of a host answering ARP for the VIP, or null. */
  async inUseBy(): Promise<string | null> {
    const r = await run(['arping', '-D', '-c', '2', '-w', '2', '-I', this.vip.iface, this.vip.ip], {
      timeoutMs: 5000,
      allowFailure: true,
    });
    return r.code === 0 ? null : arpingReplyMac(r.stdout);
  }

  private async macOf(host: string): Promise<string | null> {
    const r = await run(['arping', '-c', '1', '-w', '1', '-I', this.vip.iface, host], {
      timeoutMs: 3000,
      allowFailure: true,
    });
    return arpingReplyMac(r.stdout);
  }
}
