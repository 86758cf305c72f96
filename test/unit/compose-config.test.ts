// The container deployment's configs (src/deploy/compose.ts): every member config valid and
// pointing at the compose network's addresses, fresh secrets per deployment, a complete
// deployment kept, a partial one refused without a change.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse } from 'yaml';
import { hostOf, loadConfig } from '../../src/config.js';
import {
  composeAddress,
  composeDeploymentFiles,
  DEPLOYMENT_FILES,
  newComposeSecrets,
  readAppPassword,
  validateNet,
  writeComposeDeployment,
} from '../../src/deploy/compose.js';
import { UserError } from '../../src/util/errors.js';
import { inSubnet } from '../../src/vip/vip.js';

const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-compose-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('compose deployment configs', () => {
  test('each member config is valid, on the compose network, with the sync mode asked for', async () => {
    const d = join(dir, 'a');
    assert.equal(await writeComposeDeployment(d, { net: '10.214.7', sync: 'off' }), 'written');
    const files = (readdirSync(d, { recursive: true }) as string[]).filter((f) =>
      statSync(join(d, f)).isFile(),
    );
    assert.deepEqual(files.sort(), [...DEPLOYMENT_FILES].sort());
    for (const m of ['pg-master', 'pg-slave', 'arbiter'] as const) {
      const cfg = loadConfig(join(d, `${m}.yaml`));
      assert.equal(cfg.node, m);
      assert.equal(cfg.postgres.synchronous_commit, 'off');
      assert.equal(cfg.postgres.allowed_cidr, '10.214.7.0/24');
      assert.deepEqual(
        cfg.nodes.map((n) => n.host),
        ['10.214.7.11', '10.214.7.12'],
      );
      assert.equal(cfg.arbiter.host, '10.214.7.13');
      assert.equal(cfg.initial_primary, 'pg-master');
      // TLS: the member's own key (0600) and a certificate for its address and service name,
      // signed by the deployment's CA; paths relative to the config, so they hold on the host too.
      assert.equal(cfg.tls.ca_file, join(d, 'tls/ca.crt'));
      assert.equal(cfg.tls.key_file, join(d, `tls/${m}.key`));
      assert.equal(statSync(cfg.tls.key_file).mode & 0o777, 0o600);
      const cert = new X509Certificate(readFileSync(cfg.tls.cert_file));
      assert.ok(cert.verify(new X509Certificate(readFileSync(cfg.tls.ca_file)).publicKey));
      assert.equal(cert.checkIP(hostOf(cfg, m)), hostOf(cfg, m));
      assert.equal(cert.checkHost(m), m);
      // The floating VIP on the container's interface; the database nodes' certificates name it
      // (a client on the VIP verifies the server), the arbiter's does not.
      assert.deepEqual(cfg.vip, { address: '10.214.7.10/24', interface: 'eth0' });
      assert.equal(cert.checkIP('10.214.7.10'), m === 'arbiter' ? undefined : '10.214.7.10');
    }
    assert.ok(!existsSync(join(d, 'tls/ca.key')), "the CA's key is not left in the deployment");
    assert.equal(loadConfig(join(d, 'client.yaml')).node, 'arbiter');
    const haproxy = readFileSync(join(d, 'haproxy.cfg'), 'utf8');
    assert.match(haproxy, /server pg-master 10\.214\.7\.11:5432 .*check port 8008/);
    assert.match(haproxy, /server pg-slave 10\.214\.7\.12:5432 .*check port 8008/);
    assert.match(haproxy, /check-ssl verify required ca-file \/etc\/pgarbiter\/tls\/ca\.crt/);
    assert.ok(readAppPassword(d).length >= 20);
  });

  test('secrets are new for every deployment, and not written into the compose file', () => {
    const a = newComposeSecrets();
    const b = newComposeSecrets();
    assert.notEqual(a.secret, b.secret);
    assert.notEqual(a.adminPassword, b.adminPassword);
    const files = composeDeploymentFiles({ net: '10.214.0', sync: 'remote_apply' }, a);
    assert.ok(files.get('pg-master.yaml')?.includes(a.secret));
    const composeFile = readFileSync(new URL('../../../docker-compose.yml', import.meta.url), 'utf8');
    assert.doesNotMatch(composeFile, /secret:|password:/);
  });

  test('a complete deployment is kept as it is', async () => {
    const d = join(dir, 'a');
    const before = readFileSync(join(d, 'pg-master.yaml'), 'utf8');
    assert.equal(await writeComposeDeployment(d, { net: '10.214.7', sync: 'remote_apply' }), 'kept');
    assert.equal(readFileSync(join(d, 'pg-master.yaml'), 'utf8'), before);
  });

  test('a partial deployment is refused in one line, nothing written', async () => {
    const d = join(dir, 'b');
    await writeComposeDeployment(d, { net: '10.214.8', sync: 'remote_apply' });
    unlinkSync(join(d, 'app.password'));
    unlinkSync(join(d, 'pg-slave.yaml'));
    await assert.rejects(
      () => writeComposeDeployment(d, { net: '10.214.8', sync: 'remote_apply' }),
      (e: unknown) =>
        e instanceof UserError &&
        !e.message.includes('\n') &&
        /incomplete deployment \(pg-slave\.yaml, app\.password missing\)/.test(e.message),
    );
    assert.ok(!existsSync(join(d, 'pg-slave.yaml')) && !existsSync(join(d, 'app.password')));
    assert.throws(() => readAppPassword(d), /cannot read .*app\.password/);
  });

  test("docker-compose.yml: Docker's IPAM hands out neither the VIP nor a member's address", () => {
    const file = readFileSync(new URL('../../../docker-compose.yml', import.meta.url), 'utf8');
    const net = '10.214.0';
    const doc = parse(file.replace(/\$\{PGARBITER_COMPOSE_NET:-[\d.]+\}/g, net)) as {
      services: Record<string, { networks?: { db?: { ipv4_address?: string } } }>;
      networks: { db: { ipam: { config: { subnet: string; ip_range: string }[] } } };
    };
    const [ipam] = doc.networks.db.ipam.config;
    const cidr = (c: string) => [c.split('/')[0] as string, Number(c.split('/')[1])] as const;
    const [subnet, subnetLen] = cidr(ipam?.subnet ?? '');
    const [range, rangeLen] = cidr(ipam?.ip_range ?? '');
    assert.equal(`${subnet}/${subnetLen}`, `${net}.0/24`);
    assert.ok(inSubnet(range, subnet, subnetLen) && rangeLen > subnetLen, 'ip_range inside the subnet');
    const fixed = Object.values(doc.services).flatMap((s) => s.networks?.db?.ipv4_address ?? []);
    assert.deepEqual(
      fixed.sort(),
      ['pg-master', 'pg-slave', 'arbiter', 'haproxy'].map((m) => composeAddress(net, m as 'haproxy')).sort(),
    );
    for (const ip of [...fixed, composeAddress(net, 'vip')]) {
      assert.ok(inSubnet(ip, subnet, subnetLen), `${ip} in the subnet`);
      assert.ok(!inSubnet(ip, range, rangeLen), `${ip} outside ip_range ${range}/${rangeLen}`);
    }
  });

  test('the network is three octets of a /24', () => {
    assert.equal(composeAddress('10.214.0', 'haproxy'), '10.214.0.20');
    for (const bad of ['10.214', '10.214.0.0', '10.300.0', 'ten.0.0'])
      assert.throws(() => validateNet(bad), UserError, bad);
  });
});
