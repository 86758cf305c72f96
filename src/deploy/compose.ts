// The container deployment's configuration, in one place: per deployment, the members' pgarbiter
// configs (pg-master, pg-slave, arbiter), the client config the host uses, HAProxy's config and
// the secrets, generated once with fresh random passwords. docker-compose.yml runs this as its
// one-shot `config` service (`pgarbiter compose-config`) before any member starts; the host's
// tools (`pgarbiter status --config`, `pgarbiter test-loss --target compose`) read the same files.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { SYNC_MODES, type SyncCommit, validateConfig } from '../config.js';
import { renderHaproxyConfig } from '../routing/haproxy.js';
import { CA_CERT, CA_KEY, certFile, createCa, issueMemberCert, keyFile } from '../tls/certs.js';
import { UserError } from '../util/errors.js';

/** The original's service names, their role and their last address octet on the compose network. */
export const COMPOSE_MEMBERS = {
  'pg-master': { octet: 11 },
  'pg-slave': { octet: 12 },
  arbiter: { octet: 13 },
} as const;
export type ComposeMember = keyof typeof COMPOSE_MEMBERS;
export const COMPOSE_HAPROXY_OCTET = 20;
/** The floating VIP's last octet (config `vip:`): inside the /24 but outside docker-compose.yml's
 *  `ip_range` (the only part Docker's IPAM hands out), so no container is ever given it. */
export const COMPOSE_VIP_OCTET = 10;
/** The database containers' interface on the compose network (their only one). */
export const COMPOSE_VIP_INTERFACE = 'eth0';
export const COMPOSE_DB_NODES = ['pg-master', 'pg-slave'] as const;
/** docker-compose.yml's default for PGARBITER_COMPOSE_NET: the network is NET.0/24. */
export const COMPOSE_DEFAULT_NET = '10.214.0';
/** Where the configs are inside the containers (the deployment directory, mounted). */
export const CONTAINER_CONFIG_DIR = '/etc/pgarbiter';
/** Where a database node's data lives inside its container (its named volume). */
export const CONTAINER_STATE_DIR = '/var/lib/pgarbiter';
export const APP_PASSWORD_FILE = 'app.password';
export const CLIENT_CONFIG = 'client.yaml';
export const HAPROXY_CONFIG = 'haproxy.cfg';

/** The deployment's TLS files, relative to the deployment directory (configs name them relative
 *  to themselves, so the same paths work inside the containers and on the host). */
export const TLS_DIR = 'tls';
export const COMPOSE_CA_FILE = join(TLS_DIR, CA_CERT);

export const memberConfigFile = (m: ComposeMember) => `${m}.yaml`;
const MEMBERS = Object.keys(COMPOSE_MEMBERS) as ComposeMember[];
/** Every file a complete deployment directory holds. */
export const DEPLOYMENT_FILES = [
  ...MEMBERS.map(memberConfigFile),
  CLIENT_CONFIG,
  HAPROXY_CONFIG,
  APP_PASSWORD_FILE,
  COMPOSE_CA_FILE,
  ...MEMBERS.flatMap((m) => [certFile(TLS_DIR, m), keyFile(TLS_DIR, m)]),
];

/** "10.214.0": the first three octets of the compose network's /24. */
export function validateNet(net: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(net);
  if (!m || m.slice(1).some((o) => Number(o) > 255))
    throw new UserError(
      `compose network "${net}": give the first three octets of a free /24, e.g. ${COMPOSE_DEFAULT_NET}`,
    );
  return net;
}

export function composeAddress(net: string, who: ComposeMember | 'haproxy' | 'vip'): string {
  const octet =
    who === 'haproxy'
      ? COMPOSE_HAPROXY_OCTET
      : who === 'vip'
        ? COMPOSE_VIP_OCTET
        : COMPOSE_MEMBERS[who].octet;
  return `${validateNet(net)}.${octet}`;
}

export interface ComposeSecrets {
  secret: string;
  adminPassword: string;
  replicationPassword: string;
  appPassword: string;
}

const password = () => randomBytes(18).toString('base64url');
export const newComposeSecrets = (): ComposeSecrets => ({
  secret: password(),
  adminPassword: password(),
  replicationPassword: password(),
  appPassword: password(),
});

export interface ComposeSettings {
  net: string;
  sync: SyncCommit;
}

/** The pgarbiter config of `node` (a member, or the arbiter's identity for the host's client config). */
export function composeConfigDoc(
  s: ComposeSettings,
  secrets: ComposeSecrets,
  node: ComposeMember,
): Record<string, unknown> {
  return {
    cluster_name: 'pgarbiter',
    node,
    secret: secrets.secret,
    nodes: COMPOSE_DB_NODES.map((n) => ({ name: n, host: composeAddress(s.net, n) })),
    arbiter: { name: 'arbiter', host: composeAddress(s.net, 'arbiter') },
    initial_primary: 'pg-master',
    postgres: {
      data_dir: `${CONTAINER_STATE_DIR}/data`,
      log_file: `${CONTAINER_STATE_DIR}/postgresql.log`,
      admin_password: secrets.adminPassword,
      replication_password: secrets.replicationPassword,
      allowed_cidr: `${s.net}.0/24`,
      synchronous_commit: s.sync,
    },
    // One cluster config, as in the lab: the agents hold it, the others ignore it.
    vip: { address: `${composeAddress(s.net, 'vip')}/24`, interface: COMPOSE_VIP_INTERFACE },
    state_dir: CONTAINER_STATE_DIR,
    tls: { ca_file: COMPOSE_CA_FILE },
  };
}

/** Every file of the deployment, by name (pure). */
export function composeDeploymentFiles(s: ComposeSettings, secrets: ComposeSecrets): Map<string, string> {
  validateNet(s.net);
  if (!(SYNC_MODES as readonly string[]).includes(s.sync))
    throw new UserError(`synchronous_commit "${s.sync}": use one of ${SYNC_MODES.join(', ')}`);
  const files = new Map<string, string>();
  const header = (who: string) =>
    `# Written by \`pgarbiter compose-config\` for ${who}; holds this deployment's secrets.\n`;
  for (const m of Object.keys(COMPOSE_MEMBERS) as ComposeMember[]) {
    const doc = composeConfigDoc(s, secrets, m);
    validateConfig(doc, `compose config for ${m}`);
    files.set(memberConfigFile(m), header(m) + stringify(doc));
  }
  // The host's client commands (status, switchover, ...) speak as the arbiter's identity, as the
  // lab's client host does; the host reaches every member on the compose network.
  files.set(CLIENT_CONFIG, header('the host') + stringify(composeConfigDoc(s, secrets, 'arbiter')));
  files.set(
    HAPROXY_CONFIG,
    renderHaproxyConfig({
      servers: COMPOSE_DB_NODES.map((n) => ({ name: n, address: composeAddress(s.net, n) })),
      checkCaFile: `${CONTAINER_CONFIG_DIR}/${COMPOSE_CA_FILE}`,
    }),
  );
  files.set(APP_PASSWORD_FILE, `${secrets.appPassword}\n`);
  return files;
}

/** The uid/gid the members run as inside the containers (the image's postgres user): the config
 *  service gives them their configs and keys, mode 0600, so no member needs root to read them. */
export interface MemberOwner {
  uid: number;
  gid: number;
}

/**
 * Writes a new deployment into `dir` when it holds none: configs, secrets, a CA and one key and
 * certificate per member (CN = service name, SAN = its address and name, and the VIP for the
 * database nodes). The CA's key is deleted
 * once the members' certificates are signed, so no container ever holds it; a new deployment
 * (down -v, remove the directory) makes a new CA. Keeps a complete deployment as it is (its
 * secrets are the deployment's); refuses a partial one, changing nothing.
 */
export async function writeComposeDeployment(
  dir: string,
  s: ComposeSettings,
  owner?: MemberOwner,
): Promise<'written' | 'kept'> {
  const present = DEPLOYMENT_FILES.filter((f) => existsSync(join(dir, f)));
  if (present.length === DEPLOYMENT_FILES.length) return 'kept';
  if (present.length > 0) {
    const missing = DEPLOYMENT_FILES.filter((f) => !present.includes(f));
    throw new UserError(
      `${dir} holds an incomplete deployment (${missing.join(', ')} missing): restore it, or remove the directory and the volumes (docker compose down -v) to create a new one`,
    );
  }
  const files = composeDeploymentFiles(s, newComposeSecrets());
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tlsDir = join(dir, TLS_DIR);
  rmSync(tlsDir, { recursive: true, force: true }); // only ever a partial one of a crashed run
  await createCa(tlsDir, { cn: 'pgarbiter compose CA' });
  // A database node's certificate also names the VIP, so a client on it can use verify-full.
  for (const m of MEMBERS) {
    const vip = (COMPOSE_DB_NODES as readonly string[]).includes(m) ? [composeAddress(s.net, 'vip')] : [];
    await issueMemberCert(tlsDir, m, [composeAddress(s.net, m), m, ...vip]);
  }
  rmSync(join(tlsDir, CA_KEY));
  // Members read their own config and key; HAProxy and the host read the CA and haproxy.cfg.
  chmodSync(dir, 0o711);
  chmodSync(tlsDir, 0o755);
  const ownedByMember = new Set([
    ...MEMBERS.map(memberConfigFile),
    ...MEMBERS.map((m) => keyFile(TLS_DIR, m)),
  ]);
  for (const [name, text] of files) {
    const file = join(dir, name);
    const mode = name === HAPROXY_CONFIG ? 0o644 : 0o600;
    writeFileSync(file, text, { mode });
    chmodSync(file, mode);
  }
  if (owner) for (const f of ownedByMember) chownSync(join(dir, f), owner.uid, owner.gid);
  return 'written';
}

/** Whether `dir` holds any file of a deployment (a new one is written only where none is). */
export const deploymentExists = (dir: string) => DEPLOYMENT_FILES.some((f) => existsSync(join(dir, f)));

/** "127.0.0.1:5000,127.0.0.1:5001" -> its address/port pairs; a malformed list is a UserError. */
export function parsePortList(list: string): { address: string; port: number }[] {
  return list.split(',').map((item) => {
    const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(item.trim());
    const port = Number(m?.[2]);
    if (!m?.[1] || !(port >= 1 && port <= 65535))
      throw new UserError(`"${item}" is not ADDRESS:PORT (e.g. 127.0.0.1:5000)`);
    return { address: m[1], port };
  });
}

/**
 * Refuses, in one line and before anything is written or started, when one of the ports the
 * deployment publishes is taken on this host: it binds each for a moment (no traffic is sent).
 */
export async function assertPortsFree(ports: { address: string; port: number }[]): Promise<void> {
  for (const { address, port } of ports) {
    const problem = await new Promise<string | null>((resolve) => {
      const srv = createServer();
      srv.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
      srv.listen({ host: address, port, exclusive: true }, () => srv.close(() => resolve(null)));
    });
    if (problem)
      throw new UserError(
        `port ${address}:${port} is ${problem === 'EADDRINUSE' ? 'in use on this host' : `not available (${problem})`}: stop what listens there, or choose free ports with PGARBITER_RW_PORT and PGARBITER_RO_PORT`,
      );
  }
}

/** The app role's password of a deployment (the host's writer and checker use it). */
export function readAppPassword(dir: string): string {
  const file = join(dir, APP_PASSWORD_FILE);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new UserError(
      `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? e}): run \`docker compose up\` first (its config service writes it)`,
    );
  }
}
