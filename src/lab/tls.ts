// The lab's TLS: a CA of its own in <lab>/tls (made by `lab up`), a certificate per member (CN =
// member, SAN = its lab address) and one for the client host (HAProxy's checks and curl when the
// APIs demand client certificates). Every client in the lab verifies against this CA.
import { join } from 'node:path';
import type { PgSsl } from '../postgres/client.js';
import { CA_CERT, certFile, createCa, issueMemberCert, keyFile } from '../tls/certs.js';
import { apiUrl } from '../tls/material.js';
import type { Lab } from './state.js';
import { HOSTS, type HostName, vipAddress } from './topology.js';

/** The members' API port in the lab (the config default). */
export const LAB_API_PORT = 8008;

export const labTlsDir = (lab: Lab) => join(lab.dir, 'tls');
export const labCaFile = (lab: Lab) => join(labTlsDir(lab), CA_CERT);
/** The member a lab host's certificate names: the client host uses its own ("client"). */
export const labCertFile = (lab: Lab, host: HostName) => certFile(labTlsDir(lab), host);
export const labKeyFile = (lab: Lab, host: HostName) => keyFile(labTlsDir(lab), host);

/** Creates the lab's CA and one certificate per host (the client's included). */
export async function createLabCerts(lab: Lab): Promise<void> {
  const dir = labTlsDir(lab);
  await createCa(dir, { cn: `pgarbiter lab ${lab.prefix} CA` });
  // pg1 and pg2 also for the VIP: a client on the VIP verifies the name (verify-full) too.
  const vip = vipAddress(lab.subnet);
  await Promise.all(
    HOSTS.map((h) =>
      issueMemberCert(dir, h, [lab.hosts[h].address, ...(h === 'pg1' || h === 'pg2' ? [vip] : [])]),
    ),
  );
}

/** How lab clients reach a database host's PostgreSQL: TLS, verify-full against the lab's CA. */
export const labSsl = (lab: Lab): PgSsl => ({ mode: 'verify-full', rootCert: labCaFile(lab) });

/**
 * curl argv (to run inside `from`) that GETs `path` of the API of `target` (port 8008) over HTTPS,
 * verified against the lab's CA, with `from`'s certificate when the APIs demand client
 * certificates. `local`: connect to 127.0.0.1 (a host reaching itself when cut off) while still
 * verifying the certificate against the target's address.
 */
export function labApiCurl(
  lab: Lab,
  from: HostName,
  target: HostName,
  path: string,
  o: { timeoutS: number; local?: boolean; extra?: string[] },
): string[] {
  const address = lab.hosts[target].address;
  return [
    'curl',
    '-sS',
    '-m',
    String(o.timeoutS),
    '--cacert',
    labCaFile(lab),
    ...(lab.clientCerts === 'required'
      ? ['--cert', labCertFile(lab, from), '--key', labKeyFile(lab, from)]
      : []),
    ...(o.local ? ['--connect-to', `${address}:${LAB_API_PORT}:127.0.0.1:${LAB_API_PORT}`] : []),
    ...(o.extra ?? []),
    apiUrl(address, LAB_API_PORT, path),
  ];
}
