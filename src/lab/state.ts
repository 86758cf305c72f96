// lab.json: what `lab up` built (prefix, subnet, hosts, daemons it started). The lab's secrets
// are not in it: each is a file of its own in <lab dir>/secrets (mode 0600, owned by the user the
// members run as), named by the configs' *_file fields as on a real host, and never printed.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { SyncCommit, TimingProfile, TimingSet } from '../config.js';
import { UserError } from '../util/errors.js';
import {
  bridgePort,
  DEFAULT_PREFIX,
  HOSTS,
  type HostName,
  hostAddress,
  hostNs,
  labDirOf,
  resolveIdentity,
  switchNs,
  validatePrefix,
} from './topology.js';

export interface LabHost {
  name: HostName;
  ns: string;
  address: string;
  /** Its veth end in the switch namespace. */
  port: string;
  /** Its working directory (data, logs, config). */
  dir: string;
}

export interface DaemonRecord {
  host: HostName;
  name: string;
  pid: number;
  /** /proc/PID/stat start time: guards against a reused PID. */
  startTime: string;
  argv: string[];
  logFile: string;
  pidFile: string;
}

export interface LabSecrets {
  secret: string;
  adminPassword: string;
  replicationPassword: string;
  appPassword: string;
}

/** What `lab up` builds a lab with; lab.json keeps it. */
export interface LabSettings {
  /** PostgreSQL provisioned with `pgarbiter init`. */
  postgres: boolean;
  /** The arbiter and the two agents started (needs postgres). */
  agents: boolean;
  sync: SyncCommit;
  timing: TimingProfile;
  /** Timing fields set over the profile (lab up --timing-set); absent: the profile's own. */
  timingSet?: TimingSet;
  /** The APIs' mutual TLS (config tls.client_certs); absent: off. */
  clientCerts?: 'off' | 'required';
  /** The primary's kernel-side lease (config lease:); absent: on. */
  lease?: 'on' | 'off';
}

export interface Lab extends LabSettings {
  version: 1;
  prefix: string;
  subnet: string;
  dir: string;
  switchNs: string;
  hosts: Record<HostName, LabHost>;
  createdAt: string;
  /** Set last by `lab up`: a lab without it is half-built. */
  complete: boolean;
  /** Read from the secret files by readLab; never written to lab.json. */
  secrets: LabSecrets;
  daemons: Record<string, DaemonRecord>;
  partitions: [HostName, HostName][];
  /** Random packet loss in percent on a host's switch port, each direction (`lab loss`). */
  losses?: Partial<Record<HostName, number>>;
  /** One-way drops in the switch: frames from the first host to the second (`lab oneway`). */
  oneWay?: [HostName, HostName][];
}

export const labFile = (dir: string) => join(dir, 'lab.json');

// 32 random bytes: 43 characters, long enough that finding one in an output is no accident.
const password = () => randomBytes(32).toString('base64url');

/** The file of each lab secret (what the configs' secret_file, admin_password_file, ... name). */
export const SECRET_FILES: Record<keyof LabSecrets, string> = {
  secret: 'secret',
  adminPassword: 'admin_password',
  replicationPassword: 'replication_password',
  appPassword: 'app_password',
};
export const secretsDir = (dir: string) => join(dir, 'secrets');
export const secretFile = (lab: Pick<Lab, 'dir'>, key: keyof LabSecrets) =>
  join(secretsDir(lab.dir), SECRET_FILES[key]);

/** Writes the lab's secret files: mode 0600 in a 0700 directory, owned by `owner` (the members'
 *  OS user, which reads them), as an administrator would on a real host. */
export function writeLabSecrets(lab: Lab, owner: { uid: number; gid: number }): void {
  const dir = secretsDir(lab.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  chownSync(dir, owner.uid, owner.gid);
  for (const key of Object.keys(SECRET_FILES) as (keyof LabSecrets)[]) {
    const file = secretFile(lab, key);
    writeFileSync(file, `${lab.secrets[key]}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    chownSync(file, owner.uid, owner.gid);
  }
}

/** The lab's secrets from their files ('' for one that is missing: a half-built lab). */
function readLabSecrets(dir: string): LabSecrets {
  const read = (key: keyof LabSecrets) => {
    try {
      return readFileSync(secretFile({ dir }, key), 'utf8').trim();
    } catch {
      return '';
    }
  };
  return {
    secret: read('secret'),
    adminPassword: read('adminPassword'),
    replicationPassword: read('replicationPassword'),
    appPassword: read('appPassword'),
  };
}

export function newLab(prefix: string, subnet: string, o: LabSettings): Lab {
  const dir = labDirOf(prefix);
  const hosts = Object.fromEntries(
    HOSTS.map((h) => [
      h,
      {
        name: h,
        ns: hostNs(prefix, h),
        address: hostAddress(subnet, h),
        port: bridgePort(h),
        dir: join(dir, h),
      },
    ]),
  ) as Record<HostName, LabHost>;
  return {
    version: 1,
    prefix,
    subnet,
    dir,
    switchNs: switchNs(prefix),
    hosts,
    createdAt: new Date().toISOString(),
    complete: false,
    ...o,
    secrets: {
      secret: password(),
      adminPassword: password(),
      replicationPassword: password(),
      appPassword: password(),
    },
    daemons: {},
    partitions: [],
  };
}

export function saveLab(lab: Lab): void {
  const file = labFile(lab.dir);
  const tmp = `${file}.tmp`;
  const { secrets: _inFiles, ...state } = lab;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/** The lab's state, or null when there is no (readable) lab.json. */
export function readLab(prefix: string): Lab | null {
  const file = labFile(labDirOf(validatePrefix(prefix)));
  if (!existsSync(file)) return null;
  try {
    const lab = JSON.parse(readFileSync(file, 'utf8')) as Omit<Lab, 'secrets'>;
    return lab.version === 1 && lab.prefix === prefix ? { ...lab, secrets: readLabSecrets(lab.dir) } : null;
  } catch {
    return null;
  }
}

/** The lab named by --prefix / PGARBITER_LAB_PREFIX / default; a UserError when it is not up. */
/** A lab host's pgarbiter config file. */
export const configPath = (lab: Lab, host: HostName) => join(lab.hosts[host].dir, 'pgarbiter.yaml');

export function loadLab(prefix?: string): Lab {
  const id = resolveIdentity({ prefix });
  const lab = readLab(id.prefix);
  if (!lab)
    throw new UserError(
      `no lab "${id.prefix}" is up (no ${labFile(labDirOf(id.prefix))}): run \`pgarbiter lab up${id.prefix === DEFAULT_PREFIX ? '' : ` --prefix ${id.prefix}`}\` first`,
    );
  return lab;
}
