// The TLS files of a member (config `tls:`), read once per process with a one-line error that says
// what to do when one is missing. The one place that knows the API scheme (https) and how a peer
// is verified: against the cluster CA, by the name or address it was called by.
import { readFileSync, statSync } from 'node:fs';
import type { TlsConfig } from '../config.js';
import { looseModeError, READABLE_BY_OTHERS, UserError } from '../util/errors.js';
import { fileVersion } from '../util/file-version.js';
import type { TlsMaterial } from '../util/http.js';

export type { TlsMaterial };

const cache = new Map<string, TlsMaterial>();

function readTlsFile(what: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(
      `cannot read tls.${what} ${path} (${(e as NodeJS.ErrnoException).code ?? e}): create the cluster's certificates with \`pgarbiter certs cluster --config FILE --dir DIR\` or set tls.${what}`,
    );
  }
}

/** A private key is a secret: one that group or others can read is refused, as secret files are. */
function readKeyFile(path: string): string {
  const pem = readTlsFile('key_file', path);
  const mode = statSync(path).mode;
  if (mode & READABLE_BY_OTHERS) throw looseModeError(path, mode, '(tls.key_file) is a private key');
  return pem;
}

/** The member's TLS material, read again only when one of its files changed. */
export function tlsMaterial(tls: TlsConfig): TlsMaterial {
  const id = [tls.ca_file, tls.cert_file, tls.key_file].map(fileVersion).concat(tls.client_certs).join('\0');
  let m = cache.get(id);
  if (!m) {
    m = {
      ca: readTlsFile('ca_file', tls.ca_file),
      cert: readTlsFile('cert_file', tls.cert_file),
      key: readKeyFile(tls.key_file),
      clientCerts: tls.client_certs === 'required',
    };
    cache.set(id, m);
  }
  return m;
}

/** The URL of a member's API endpoint: the one place that builds one. */
export function apiUrl(host: string, port: number, path: string): string {
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
}
