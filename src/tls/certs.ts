// The cluster's certificate authority and member certificates, issued with the system `openssl`
// (Node has no X.509 issuing API). A directory holds ca.crt + ca.key and one NAME.crt + NAME.key
// per member (CN = member name, SAN = its address or DNS name). Keys are EC P-256 (cheap
// handshakes), written by us with mode 0600 from openssl's stdout, so no key ever exists on disk
// with looser permissions. Re-issuing a member (renewal) keeps the CA.
import { randomBytes, X509Certificate } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { delimiter, join } from 'node:path';
import { UserError } from '../util/errors.js';
import { run } from '../util/exec.js';

export const CA_CERT = 'ca.crt';
export const CA_KEY = 'ca.key';
export const certFile = (dir: string, name: string) => join(dir, `${name}.crt`);
export const keyFile = (dir: string, name: string) => join(dir, `${name}.key`);

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const SAN_RE = /^[A-Za-z0-9_.:-]{1,253}$/;

export function opensslBinary(): string {
  for (const dir of ['/usr/bin', '/usr/local/bin', ...(process.env.PATH ?? '').split(delimiter)]) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'openssl'), constants.X_OK);
      return join(dir, 'openssl');
    } catch {}
  }
  throw new UserError('openssl is not installed: install it with `apt-get install -y openssl`');
}

async function openssl(args: string[], input?: string): Promise<string> {
  const r = await run([opensslBinary(), ...args], { timeoutMs: 30_000, allowFailure: true, input });
  if (r.code !== 0)
    throw new Error(
      `openssl ${args[0]} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`,
    );
  return r.stdout;
}

function writeKey(path: string, pem: string): void {
  rmSync(path, { force: true }); // a new file: created with 0600, never widened
  writeFileSync(path, pem, { mode: 0o600 });
  chmodSync(path, 0o600);
}

const newKey = () => openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);

function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
}

/** `subjectAltName` entries for hosts: IP:... for addresses, DNS:... for names. */
export function sanEntries(hosts: string[]): string {
  if (hosts.length === 0)
    throw new UserError('a member certificate needs at least one host (its address or DNS name)');
  return hosts
    .map((h) => {
      if (!SAN_RE.test(h)) throw new UserError(`"${h}" is not a host address or DNS name`);
      return isIP(h) ? `IP:${h}` : `DNS:${h}`;
    })
    .join(',');
}

export interface CaPaths {
  cert: string;
  key: string;
}

/** Creates DIR/ca.crt and DIR/ca.key (refuses to overwrite an existing CA: it would orphan every
 *  member certificate). */
export async function createCa(dir: string, o: { cn?: string; days?: number } = {}): Promise<CaPaths> {
  const paths = { cert: join(dir, CA_CERT), key: join(dir, CA_KEY) };
  if (existsSync(paths.cert) || existsSync(paths.key))
    throw new UserError(
      `${dir} already holds a CA (${CA_CERT}/${CA_KEY}): keep it, or remove both to start over`,
    );
  ensureDir(dir);
  writeKey(paths.key, await newKey());
  const pem = await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    paths.key,
    '-days',
    String(o.days ?? 3650),
    '-subj',
    `/CN=${o.cn ?? 'pgarbiter cluster CA'}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  writeFileSync(paths.cert, pem, { mode: 0o644 });
  return paths;
}

export interface IssueOptions {
  /** The CA to sign with (default DIR/ca.crt and DIR/ca.key). */
  ca?: CaPaths;
  days?: number;
}

/** Issues (or re-issues: renewal) NAME.crt + NAME.key in DIR, signed by the CA, for server and
 *  client use. Returns the two paths. */
export async function issueMemberCert(
  dir: string,
  name: string,
  hosts: string[],
  o: IssueOptions = {},
): Promise<{ cert: string; key: string }> {
  if (!NAME_RE.test(name)) throw new UserError(`"${name}" is not a member name (letters, digits, _ . -)`);
  const san = sanEntries(hosts);
  const ca = o.ca ?? { cert: join(dir, CA_CERT), key: join(dir, CA_KEY) };
  for (const f of [ca.cert, ca.key])
    if (!existsSync(f))
      throw new UserError(
        `CA file ${f} does not exist: create a CA with \`pgarbiter certs ca --dir ${dir}\``,
      );
  ensureDir(dir);
  const paths = { cert: certFile(dir, name), key: keyFile(dir, name) };
  const ext = [
    `subjectAltName=${san}`,
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyAgreement',
    'extendedKeyUsage=serverAuth,clientAuth',
  ].join('\n');
  const tmpKey = `${paths.key}.new-${process.pid}`;
  const extFile = join(dir, `.${name}.ext-${process.pid}`);
  try {
    writeKey(tmpKey, await newKey());
    writeFileSync(extFile, `${ext}\n`, { mode: 0o600 });
    const csr = await openssl(['req', '-new', '-key', tmpKey, '-subj', `/CN=${name}`]);
    const pem = await openssl(
      [
        'x509',
        '-req',
        '-CA',
        ca.cert,
        '-CAkey',
        ca.key,
        '-set_serial',
        `0x${randomBytes(16)
          .toString('hex')
          .replace(/^[89a-f]/, '7')}`,
        '-days',
        String(o.days ?? 825),
        '-extfile',
        extFile,
      ],
      csr,
    );
    renameSync(tmpKey, paths.key);
    writeFileSync(paths.cert, pem, { mode: 0o644 });
  } finally {
    rmSync(extFile, { force: true });
    rmSync(tmpKey, { force: true });
  }
  return paths;
}

export interface CertInfo {
  file: string;
  subject: string;
  issuer: string;
  san: string;
  validTo: string;
  daysLeft: number;
  /** Verified against the CA (null when no CA was given). */
  signedByCa: boolean | null;
}

export function describeCert(file: string, caFile?: string): CertInfo {
  const cert = new X509Certificate(readFileSync(file));
  const ca = caFile ? new X509Certificate(readFileSync(caFile)) : null;
  return {
    file,
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    san: cert.subjectAltName ?? '',
    validTo: new Date(cert.validTo).toISOString(),
    daysLeft: Math.floor((new Date(cert.validTo).getTime() - Date.now()) / 86_400_000),
    signedByCa: ca ? cert.checkIssued(ca) && cert.verify(ca.publicKey) : null,
  };
}
