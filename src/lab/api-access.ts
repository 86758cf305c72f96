// How a client on the machine, outside the lab's namespaces, reaches the members' APIs: each API
// as a unix socket in the lab's directory (<lab>/api/<host>.sock), which the lab's HAProxy on the
// client host forwards to the member's API port, TLS untouched. A socket file crosses network
// namespaces, so `pgarbiter status` reaches the lab in its own process instead of running itself
// again inside the client host. Kept light (no YAML, no config schema, no pg): the CLI loads it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterMembers } from '../api/client.js';
import type { TlsConfig } from '../config.js';
import { daemonAlive } from './daemon.js';
import type { Lab } from './state.js';
import { LAB_API_PORT, labCaFile, labCertFile, labKeyFile } from './tls.js';
import { MEMBER_HOSTS, type MemberHost, PG_HOSTS } from './topology.js';

/** The lab's HAProxy daemon (lab.json's name for it). */
export const HAPROXY_DAEMON = 'haproxy';

export const apiSocketDir = (lab: Pick<Lab, 'dir'>) => join(lab.dir, 'api');
export const apiSocketPath = (lab: Pick<Lab, 'dir'>, host: MemberHost) =>
  join(apiSocketDir(lab), `${host}.sock`);

/** The `tls:` of a lab config whose certificate and key are `member`'s. */
export function labTlsConfig(lab: Lab, member: MemberHost): TlsConfig {
  return {
    ca_file: labCaFile(lab),
    cert_file: labCertFile(lab, member),
    key_file: labKeyFile(lab, member),
    client_certs: lab.clientCerts ?? 'off',
  };
}

/** The members as the client host's config names them (pgconf.ts writes that config from the
 *  same pieces): what a client command needs, from lab.json, without parsing the YAML. */
export function labClusterMembers(lab: Lab): ClusterMembers {
  return {
    nodes: PG_HOSTS.map((h) => ({ name: h, host: lab.hosts[h].address })),
    arbiter: { name: 'arbiter', host: lab.hosts.arbiter.address },
    api_port: LAB_API_PORT,
    secret: lab.secrets.secret,
    // The client host uses the arbiter's certificate (its config names it as the arbiter).
    tls: labTlsConfig(lab, 'arbiter'),
  };
}

/**
 * Each member's API address mapped to its socket, or null when the lab has no live forwarders
 * (HAProxy not running, or a lab built before them): the caller then goes through the client host.
 */
export function labApiSockets(lab: Lab): Map<string, string> | null {
  const haproxy = lab.daemons[HAPROXY_DAEMON];
  if (!haproxy || !daemonAlive(haproxy)) return null;
  const sockets = new Map<string, string>();
  for (const h of MEMBER_HOSTS) {
    const path = apiSocketPath(lab, h);
    if (!existsSync(path)) return null;
    sockets.set(lab.hosts[h].address, path);
  }
  return sockets;
}
