// The one config format for `pgarbiter agent`, `pgarbiter arbiter` and the client commands, on a
// real host and in the lab alike. YAML, validated with zod; the timing rule is checked at load.
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { looseModeError, READABLE_BY_OTHERS, UserError } from './util/errors.js';
import { vipConfigProblem } from './vip/vip.js';

/** "500ms", "3s", "1.5s", "2m" or a number of milliseconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(value);
  if (!m) throw new Error(`not a duration: "${value}" (use e.g. 500ms, 3s, 1m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  return Math.round(unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000);
}

const duration = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  try {
    const ms = parseDuration(v);
    if (ms <= 0) throw new Error(`must be positive: "${v}"`);
    return ms;
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

export const SYNC_MODES = ['off', 'local', 'on', 'remote_write', 'remote_apply'] as const;
export type SyncCommit = (typeof SYNC_MODES)[number];

/** Timing profiles. `default` suits a LAN; `fast` a quiet LAN (the lab). The table is in README "How it works". */
export const TIMING_PROFILES = {
  // failover_timeout 2.4 s gives a failover in about 2.6 s (3 s at most); a round every 600 ms keeps
  // an idle agent under 1 % of a core (issue 13; a round is most of its idle work). The timing rule
  // (fence_timeout + probe_interval + fence_action_budget < failover_timeout) leaves 50 ms to spare.
  // Measured in bench/README.
  default: {
    probe_interval: 600,
    probe_timeout: 400,
    fence_timeout: 1500,
    fence_action_budget: 250,
    failover_timeout: 2400,
    sync_stall_timeout: 2500,
  },
  fast: {
    probe_interval: 250,
    probe_timeout: 200,
    fence_timeout: 1000,
    fence_action_budget: 250,
    failover_timeout: 1750,
    sync_stall_timeout: 1500,
  },
} as const;
export type TimingProfile = keyof typeof TIMING_PROFILES;

/** The timing fields a config (or `lab up --timing-set`) may set over its profile, in ms. */
export type TimingField = keyof (typeof TIMING_PROFILES)['default'];
export type TimingSet = Partial<Record<TimingField, number>>;

/** "failover_timeout=2.2s,probe_interval=400" -> fields over `profile`, in ms (a bare number is ms,
 *  as in a config's `timing:`); a UserError for an
 *  unknown field, a bad number, or values that break the timing rule. */
export function parseTimingSet(text: string, profile: TimingProfile): TimingSet {
  const fields = Object.keys(TIMING_PROFILES.default) as TimingField[];
  const set: TimingSet = {};
  for (const item of text.split(',').filter((s) => s.trim() !== '')) {
    const [k = '', v = ''] = item.split('=').map((s) => s.trim());
    if (!(fields as string[]).includes(k))
      throw new UserError(`--timing-set ${item}: "${k}" is not a timing field (${fields.join(', ')})`);
    let ms = Number.NaN;
    try {
      ms = parseDuration(v);
    } catch {}
    if (!(ms > 0 && ms <= 600_000))
      throw new UserError(`--timing-set ${item}: give a duration from 1 ms to 10 min (2200 or 2200ms, 2.2s)`);
    set[k as TimingField] = ms;
  }
  const problem = timingRuleViolation(resolveTiming({ profile, ...set }));
  if (problem) throw new UserError(`--timing-set ${text}: ${problem}`);
  return set;
}

export const DEFAULT_TLS_DIR = '/etc/pgarbiter/tls';

const name = z.string().regex(/^[a-z][a-z0-9_-]{0,30}$/, 'lowercase letters, digits, - and _ (max 31)');
const host = z.string().min(1);
const port = z.number().int().min(1).max(65535);

export const ConfigSchema = z
  .object({
    cluster_name: name.default('pgarbiter'),
    /** Which member this process is: one of nodes[].name, or arbiter.name. */
    node: name,
    /** Shared secret that authorises mutating API requests between agents and the arbiter: inline,
     *  or (preferred) in `secret_file`; exactly one of the two. */
    secret: z.string().min(8, 'secret must be at least 8 characters').optional(),
    secret_file: z.string().min(1).optional(),
    nodes: z
      .array(z.object({ name, host }).strict())
      .length(2, 'exactly two database nodes (primary and standby)'),
    arbiter: z.object({ name: name.default('arbiter'), host }).strict(),
    api_port: port.default(8008),
    /** The node that is primary when the cluster is first created. */
    initial_primary: name.optional(),
    postgres: z
      .object({
        port: port.default(5432),
        bin_dir: z.string().default('/usr/lib/postgresql/15/bin'),
        data_dir: z.string().default('/var/lib/pgarbiter/data'),
        socket_dir: z.string().default('/var/run/pgarbiter'),
        log_file: z.string().default('/var/log/pgarbiter/postgresql.log'),
        os_user: z.string().default('postgres'),
        /** Superuser the agents use for probes, pg_rewind and control (password auth over TCP). */
        admin_user: z.string().default('pgarbiter'),
        admin_password: z.string().optional(),
        admin_password_file: z.string().min(1).optional(),
        replication_user: z.string().default('replicator'),
        replication_password: z.string().optional(),
        replication_password_file: z.string().min(1).optional(),
        /** CIDR of hosts allowed to connect (clients and replication): pg_hba admits only these. */
        allowed_cidr: z.string().default('10.0.0.0/8'),
        synchronous_commit: z.enum(SYNC_MODES).default('remote_apply'),
        /** fallback: drop sync replication after sync_stall_timeout (standby first marked not
         *  promotable); strict: never drop it, writes wait for the standby. */
        sync_mode: z.enum(['fallback', 'strict']).default('fallback'),
      })
      .strict(),
    timing: z
      .object({
        profile: z.enum(['default', 'fast']).default('default'),
        probe_interval: duration.optional(),
        probe_timeout: duration.optional(),
        fence_timeout: duration.optional(),
        fence_action_budget: duration.optional(),
        failover_timeout: duration.optional(),
        sync_stall_timeout: duration.optional(),
      })
      .strict()
      .default({ profile: 'default' }),
    /** How the fence rule is written: iptables (IPv4, the default) or nft (one atomic
     *  transaction on a table of our own, IPv4 and IPv6, no xtables lock): the same netfilter. */
    fence_mechanism: z.enum(['iptables', 'nft']).default('iptables'),
    /** on: the primary holds a kernel-side lease (src/fence/lease.ts) that blocks its clients by
     *  itself when the agent stops refreshing it (dead, frozen); off: only the fence. */
    lease: z.enum(['on', 'off']).default('on'),
    /** auto: an old primary rewinds and rejoins by itself; manual: it stays fenced and stopped. */
    rejoin: z.enum(['auto', 'manual']).default('auto'),
    /** A floating IPv4 address held only by the unfenced, writable primary (src/vip/vip.ts):
     *  `address` A.B.C.D/len inside the nodes' subnet, `interface` the NIC on that network. */
    vip: z
      .object({
        address: z.string(),
        interface: z.string().regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'an interface name such as eth0'),
      })
      .strict()
      .optional(),
    /** TLS of the APIs and of PostgreSQL (`pgarbiter certs` creates the files). Every member
     *  has a key and a certificate signed by the cluster CA; the APIs speak HTTPS only. */
    tls: z
      .object({
        /** The cluster CA's certificate: every peer is verified against it. */
        ca_file: z.string().min(1).default(`${DEFAULT_TLS_DIR}/ca.crt`),
        /** This member's certificate and key (default: NODE.crt and NODE.key beside ca_file). */
        cert_file: z.string().min(1).optional(),
        key_file: z.string().min(1).optional(),
        /** required: the APIs also demand a client certificate signed by the CA (mutual TLS). */
        client_certs: z.enum(['off', 'required']).default('off'),
      })
      .strict()
      .default({ ca_file: `${DEFAULT_TLS_DIR}/ca.crt`, client_certs: 'off' }),
    /** Where the agent keeps its state file and the arbiter its cluster record. */
    state_dir: z.string().default('/var/lib/pgarbiter'),
    /** Also append the JSON log lines to this file (stdout always gets them). */
    log_file: z.string().optional(),
  })
  .strict();

export type RawConfig = z.infer<typeof ConfigSchema>;

export interface Timing {
  probeIntervalMs: number;
  probeTimeoutMs: number;
  fenceTimeoutMs: number;
  fenceActionBudgetMs: number;
  failoverTimeoutMs: number;
  syncStallTimeoutMs: number;
}

export interface TlsConfig {
  ca_file: string;
  cert_file: string;
  key_file: string;
  client_certs: 'off' | 'required';
}

type SecretFileField = 'secret_file' | 'admin_password_file' | 'replication_password_file';

/** The validated config: every secret resolved to its value (from the file when one is named). */
export interface Config extends Omit<RawConfig, 'timing' | 'tls' | 'secret' | SecretFileField | 'postgres'> {
  secret: string;
  postgres: Omit<RawConfig['postgres'], 'admin_password' | 'replication_password' | SecretFileField> & {
    admin_password: string;
    replication_password: string;
  };
  timing: Timing;
  tls: TlsConfig;
}

/** The tls section with its per-member defaults filled in; relative paths are from `baseDir` (the
 *  config's folder), like the secret files. */
export function resolveTls(raw: RawConfig['tls'], node: string, baseDir = process.cwd()): TlsConfig {
  const ca = resolve(baseDir, raw.ca_file);
  const dir = dirname(ca);
  return {
    ca_file: ca,
    cert_file: raw.cert_file ? resolve(baseDir, raw.cert_file) : resolve(dir, `${node}.crt`),
    key_file: raw.key_file ? resolve(baseDir, raw.key_file) : resolve(dir, `${node}.key`),
    client_certs: raw.client_certs,
  };
}

/** Every secret field of the config with the field that names its file instead. */
export const SECRET_FIELDS = [
  { path: 'secret', file: 'secret_file' },
  { path: 'postgres.admin_password', file: 'postgres.admin_password_file' },
  { path: 'postgres.replication_password', file: 'postgres.replication_password_file' },
] as const;

/**
 * Reads a secret from a file: refused when group or others can read it; one trailing newline
 * (what `echo` and most secret stores add) is not part of the secret.
 */
export function readSecretFile(file: string, field: string): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(
      `cannot read ${field} ${file}: ${(e as NodeJS.ErrnoException).code ?? e} (it must be readable by the user pgarbiter runs as)`,
    );
  }
  if (mode & READABLE_BY_OTHERS) throw looseModeError(file, mode, `(${field}) holds a secret`);
  const value = text.replace(/\r?\n$/, '');
  if (!value) throw new UserError(`${field} ${file} is empty`);
  return value;
}

/** The value of one secret: inline or from its file, exactly one of them. */
function resolveSecret(
  inline: string | undefined,
  file: string | undefined,
  field: { path: string; file: string },
  baseDir: string,
): string {
  if (inline !== undefined && file !== undefined)
    throw new UserError(`set either ${field.path} or ${field.file}, not both`);
  if (file !== undefined) return readSecretFile(resolve(baseDir, file), field.file);
  if (inline === undefined || inline === '')
    throw new UserError(`${field.file} (a file holding the secret, mode 0600) or ${field.path} is required`);
  return inline;
}

/** How long the primary's lease lasts after the last moment a peer is known to have reached its
 *  PostgreSQL: until a live agent would have fenced (fence-unreached) and finished the fence. */
export function leaseDurationMs(t: Timing): number {
  return t.fenceTimeoutMs + t.probeIntervalMs + t.fenceActionBudgetMs;
}

/** The timing rule (README "How it works"): the primary has fenced itself, and its lease has
 *  lapsed, before any promotion can be granted. */
export function timingRuleViolation(t: Timing): string | null {
  const lhs = leaseDurationMs(t);
  if (lhs >= t.failoverTimeoutMs)
    return (
      `timing rule violated: fence_timeout + probe_interval + fence_action_budget ` +
      `(${t.fenceTimeoutMs} + ${t.probeIntervalMs} + ${t.fenceActionBudgetMs} = ${lhs} ms: ` +
      `the fence's deadline and the lease's duration) must be less than failover_timeout ` +
      `(${t.failoverTimeoutMs} ms), so the primary is fenced and its lease lapsed before any grant`
    );
  if (t.probeTimeoutMs > t.probeIntervalMs)
    return `probe_timeout (${t.probeTimeoutMs} ms) must not exceed probe_interval (${t.probeIntervalMs} ms)`;
  return null;
}

export function resolveTiming(raw: RawConfig['timing']): Timing {
  const p = TIMING_PROFILES[raw.profile];
  return {
    probeIntervalMs: raw.probe_interval ?? p.probe_interval,
    probeTimeoutMs: raw.probe_timeout ?? p.probe_timeout,
    fenceTimeoutMs: raw.fence_timeout ?? p.fence_timeout,
    fenceActionBudgetMs: raw.fence_action_budget ?? p.fence_action_budget,
    failoverTimeoutMs: raw.failover_timeout ?? p.failover_timeout,
    syncStallTimeoutMs: raw.sync_stall_timeout ?? p.sync_stall_timeout,
  };
}

/**
 * Validates a parsed document and reads its secret files (relative paths from `baseDir`); throws
 * UserError with every problem on one line.
 */
export function validateConfig(doc: unknown, source = 'config', baseDir = process.cwd()): Config {
  const parsed = ConfigSchema.safeParse(doc);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new UserError(`${source}: invalid config: ${issues.join('; ')}`);
  }
  const { secret, secret_file, ...raw } = parsed.data;
  const { admin_password, admin_password_file, replication_password, replication_password_file, ...pg } =
    raw.postgres;
  let secrets: { secret: string; admin: string; replication: string };
  try {
    secrets = {
      secret: resolveSecret(secret, secret_file, SECRET_FIELDS[0], baseDir),
      admin: resolveSecret(admin_password, admin_password_file, SECRET_FIELDS[1], baseDir),
      replication: resolveSecret(replication_password, replication_password_file, SECRET_FIELDS[2], baseDir),
    };
  } catch (e) {
    throw new UserError(`${source}: ${(e as Error).message}`);
  }
  if (secrets.secret.length < 8) throw new UserError(`${source}: secret must be at least 8 characters`);
  const names = [...raw.nodes.map((n) => n.name), raw.arbiter.name];
  if (new Set(names).size !== names.length) throw new UserError(`${source}: node names must be distinct`);
  if (!names.includes(raw.node))
    throw new UserError(`${source}: node "${raw.node}" is not one of ${names.join(', ')}`);
  if (raw.initial_primary && !raw.nodes.some((n) => n.name === raw.initial_primary))
    throw new UserError(`${source}: initial_primary "${raw.initial_primary}" is not a database node`);
  const vipProblem = raw.vip ? vipConfigProblem(raw.vip, raw.nodes, raw.arbiter) : null;
  if (vipProblem) throw new UserError(`${source}: ${vipProblem}`);
  const timing = resolveTiming(raw.timing);
  const violation = timingRuleViolation(timing);
  if (violation) throw new UserError(`${source}: ${violation}`);
  return {
    ...raw,
    secret: secrets.secret,
    postgres: { ...pg, admin_password: secrets.admin, replication_password: secrets.replication },
    timing,
    tls: resolveTls(raw.tls, raw.node, baseDir),
  };
}

/** Which secrets the document holds inline (not in files). */
function inlineSecrets(doc: unknown): string[] {
  const d = (doc ?? {}) as { secret?: unknown; postgres?: Record<string, unknown> };
  return SECRET_FIELDS.map((f) => f.path).filter((p) =>
    p === 'secret' ? d.secret !== undefined : d.postgres?.[p.split('.')[1] as string] !== undefined,
  );
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read config ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new UserError(`${path}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const inline = inlineSecrets(doc);
  if (inline.length && statSync(path).mode & READABLE_BY_OTHERS)
    throw looseModeError(path, statSync(path).mode, `holds ${inline.join(', ')} inline`);
  return validateConfig(doc, path, dirname(resolve(path)));
}

export function otherNode(cfg: Pick<Config, 'nodes'>, me: string): { name: string; host: string } {
  const peer = cfg.nodes.find((n) => n.name !== me);
  if (!peer) throw new Error(`no peer for ${me}`);
  return peer;
}

export function hostOf(cfg: Pick<Config, 'nodes' | 'arbiter'>, name: string): string {
  if (name === cfg.arbiter.name) return cfg.arbiter.host;
  const n = cfg.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`unknown node ${name}`);
  return n.host;
}
