// `pgarbiter certs`: the cluster CA and the member certificates the APIs and PostgreSQL use.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_TLS_DIR, loadConfig } from '../config.js';
import {
  CA_CERT,
  CA_KEY,
  type CaPaths,
  certFile,
  createCa,
  describeCert,
  issueMemberCert,
} from '../tls/certs.js';
import { UserError } from '../util/errors.js';

function days(v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 36500)
    throw new UserError(`--days ${v}: give a whole number of days`);
  return n;
}

/** --ca-cert/--ca-key (a CA the user brings) or DIR's own. */
function caOf(o: { caCert?: string; caKey?: string }): CaPaths | undefined {
  if (!o.caCert && !o.caKey) return undefined;
  if (!o.caCert || !o.caKey)
    throw new UserError('give both --ca-cert and --ca-key (your own CA), or neither');
  return { cert: o.caCert, key: o.caKey };
}

export function registerCertsCommands(program: Command): void {
  const certs = program
    .command('certs')
    .summary("make the cluster CA and each member's key and certificate")
    .description(
      'The cluster CA and one key + certificate per member (CN = member name, SAN = its address), ' +
        'issued with openssl: the APIs (HTTPS) and PostgreSQL (ssl = on) use them. Keys are mode 0600. ' +
        `Default directory ${DEFAULT_TLS_DIR}: copy ca.crt and a member's NAME.crt + NAME.key to that member.`,
    );

  certs
    .command('ca')
    .description('Create a new CA (ca.crt, ca.key) in DIR; refuses to replace an existing one')
    .option('--dir <dir>', 'where the files go', DEFAULT_TLS_DIR)
    .option('--days <n>', 'validity in days (default 3650)')
    .option('--cn <name>', "the CA's common name", 'pgarbiter cluster CA')
    .action(async (o: { dir: string; days?: string; cn: string }) => {
      const p = await createCa(o.dir, { cn: o.cn, days: days(o.days, 3650) });
      process.stdout.write(`created CA ${p.cert} (key ${p.key}, mode 0600: keep it off the members)\n`);
    });

  certs
    .command('issue')
    .description(
      'Issue, or renew, the certificate of one member: NAME.crt + NAME.key in DIR, signed by the CA. ' +
        'Renewal is the same command: a new key and certificate from the same CA; then restart the member.',
    )
    .argument('<name>', "the member name (the config's node: pg1, arbiter, ...)")
    .argument('<hosts...>', 'its addresses and/or DNS names (the subject alternative names)')
    .option('--dir <dir>', 'where the files go', DEFAULT_TLS_DIR)
    .option('--days <n>', 'validity in days (default 825)')
    .option('--ca-cert <file>', 'your own CA certificate (default DIR/ca.crt)')
    .option('--ca-key <file>', 'your own CA key (default DIR/ca.key)')
    .action(
      async (
        name: string,
        hosts: string[],
        o: { dir: string; days?: string; caCert?: string; caKey?: string },
      ) => {
        const p = await issueMemberCert(o.dir, name, hosts, { ca: caOf(o), days: days(o.days, 825) });
        process.stdout.write(`issued ${p.cert} and ${p.key} for ${name} (${hosts.join(', ')})\n`);
      },
    );

  certs
    .command('cluster')
    .description(
      'Everything a cluster needs from a config: the CA (unless DIR has one or you bring yours) and a ' +
        'certificate for every member (both nodes and the arbiter) with the host of the config.',
    )
    .requiredOption('-c, --config <file>', 'a member config (YAML): its nodes and arbiter are used')
    .option('--dir <dir>', 'where the files go', DEFAULT_TLS_DIR)
    .option('--renew', 're-issue member certificates that already exist (same CA)')
    .option('--ca-cert <file>', 'your own CA certificate')
    .option('--ca-key <file>', 'your own CA key')
    .action(async (o: { config: string; dir: string; renew?: boolean; caCert?: string; caKey?: string }) => {
      const cfg = loadConfig(o.config);
      const ca = caOf(o);
      if (!ca && !existsSync(join(o.dir, CA_CERT))) {
        await createCa(o.dir, { cn: `${cfg.cluster_name} CA` });
        process.stdout.write(`created CA ${join(o.dir, CA_CERT)} (key ${join(o.dir, CA_KEY)})\n`);
      }
      for (const m of [...cfg.nodes, cfg.arbiter]) {
        if (existsSync(certFile(o.dir, m.name)) && !o.renew) {
          process.stdout.write(`kept ${certFile(o.dir, m.name)} (exists; --renew re-issues)\n`);
          continue;
        }
        // A database node's certificate also names the floating address (vip:): clients that dial
        // the VIP verify the name too (sslmode=verify-full).
        const vip = cfg.vip && m.name !== cfg.arbiter.name ? [cfg.vip.address.split('/')[0] as string] : [];
        const p = await issueMemberCert(o.dir, m.name, [m.host, ...vip], { ca });
        process.stdout.write(`issued ${p.cert} for ${m.name} (${[m.host, ...vip].join(', ')})\n`);
      }
    });

  certs
    .command('show')
    .description('The certificates in DIR: subject, names, expiry, and whether the CA signed them')
    .option('--dir <dir>', 'where the files are', DEFAULT_TLS_DIR)
    .option('--ca-cert <file>', 'the CA to check against (default DIR/ca.crt)')
    .option('--json', 'machine-readable output')
    .action((o: { dir: string; caCert?: string; json?: boolean }) => {
      if (!existsSync(o.dir))
        throw new UserError(`${o.dir} does not exist: create it with \`pgarbiter certs ca --dir ${o.dir}\``);
      const caFile = o.caCert ?? join(o.dir, CA_CERT);
      const ca = existsSync(caFile) ? caFile : undefined;
      const infos = readdirSync(o.dir)
        .filter((f) => f.endsWith('.crt'))
        .sort()
        .map((f) => describeCert(join(o.dir, f), f === CA_CERT ? undefined : ca));
      if (o.json) {
        process.stdout.write(`${JSON.stringify(infos, null, 2)}\n`);
        return;
      }
      for (const i of infos)
        process.stdout.write(
          `${i.file}: ${i.subject}${i.san ? ` [${i.san}]` : ''}, valid to ${i.validTo} (${i.daysLeft} days)` +
            `${i.signedByCa === null ? '' : i.signedByCa ? ', signed by the CA' : ', NOT signed by the CA'}\n`,
        );
    });
}
