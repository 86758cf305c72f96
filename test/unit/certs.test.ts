// `pgarbiter certs` mechanics with the real openssl, and the HTTPS layer on a loopback port: the
// CA signs member certificates with the member's name and address, keys are 0600, renewal keeps
// the CA; a server refuses plain HTTP clearly and, with client_certs required, clients without a
// certificate.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { resolveTls } from '../../src/config.js';
import { createCa, describeCert, issueMemberCert } from '../../src/tls/certs.js';
import { type TlsMaterial, tlsMaterial } from '../../src/tls/material.js';
import { UserError } from '../../src/util/errors.js';
import { callJson, serve } from '../../src/util/http.js';

const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-certs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a CA, member certificates with name and address, keys 0600, renewal from the same CA', async () => {
  const ca = await createCa(dir);
  assert.equal(statSync(ca.key).mode & 0o777, 0o600);
  await assert.rejects(
    createCa(dir),
    (e: unknown) => e instanceof UserError && /already holds a CA/.test(e.message),
  );
  const m = await issueMemberCert(dir, 'pg1', ['127.0.0.1', 'pg1.example']);
  assert.equal(statSync(m.key).mode & 0o777, 0o600);
  const info = describeCert(m.cert, ca.cert);
  assert.equal(info.subject, 'CN=pg1');
  assert.equal(info.san, 'IP Address:127.0.0.1, DNS:pg1.example');
  assert.equal(info.signedByCa, true);
  const first = readFileSync(m.key, 'utf8');
  await issueMemberCert(dir, 'pg1', ['127.0.0.1']);
  assert.notEqual(readFileSync(m.key, 'utf8'), first, 'renewal makes a new key');
  assert.equal(describeCert(m.cert, ca.cert).signedByCa, true, 'signed by the same CA');
  assert.ok(new X509Certificate(readFileSync(m.cert)).checkHost('pg1.example') === undefined);
  await assert.rejects(issueMemberCert(dir, 'x', ['a b']), UserError);
});

test('config tls defaults: NODE.crt and NODE.key beside ca_file, client certificates off', () => {
  assert.deepEqual(resolveTls({ ca_file: '/etc/x/ca.crt', client_certs: 'off' }, 'pg2'), {
    ca_file: '/etc/x/ca.crt',
    cert_file: '/etc/x/pg2.crt',
    key_file: '/etc/x/pg2.key',
    client_certs: 'off',
  });
});

function material(clientCerts: boolean): TlsMaterial {
  const r = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { ca: r('ca.crt'), cert: r('pg1.crt'), key: r('pg1.key'), clientCerts };
}

function plainGet(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/x', timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('HTTPS only: plain HTTP gets 400, calls verify the CA, mutual TLS refuses a client without a certificate', async () => {
  for (const clientCerts of [false, true]) {
    const tls = material(clientCerts);
    const route = {
      method: 'GET' as const,
      path: '/x',
      handler: () => ({ status: 200, body: { ok: true } }),
    };
    const server = await serve([route], 'secret-secret', '127.0.0.1', 0, tls);
    const port = (server.address() as { port: number }).port;
    try {
      const plain = await plainGet(port);
      assert.equal(plain.status, 400);
      assert.match(plain.body, /HTTPS only/);
      const ok = await callJson<{ ok: boolean }>(`https://127.0.0.1:${port}/x`, { timeoutMs: 3000, tls });
      assert.deepEqual([ok.status, ok.body], [200, { ok: true }]);
      // Another CA: the server's certificate is not trusted.
      const foreign = { ...tls, ca: readFileSync(join(dir, 'pg1.crt'), 'utf8') };
      await assert.rejects(callJson(`https://127.0.0.1:${port}/x`, { timeoutMs: 3000, tls: foreign }));
      // The address called must be in the certificate.
      await assert.rejects(
        callJson(`https://localhost:${port}/x`, { timeoutMs: 3000, tls }),
        /altnames|localhost/,
      );
      if (clientCerts)
        await assert.rejects(
          callJson(`https://127.0.0.1:${port}/x`, { timeoutMs: 3000, tls: { ...tls, clientCerts: false } }),
          /certificate required|socket hang up|ECONNRESET/,
        );
    } finally {
      server.close();
      server.closeAllConnections();
    }
  }
});

test('tlsMaterial reads a re-issued certificate and a new CA at the same paths, and refuses a loose key', async () => {
  const d = join(dir, 'reissue');
  await createCa(d);
  await issueMemberCert(d, 'pg1', ['127.0.0.1']);
  const cfg = resolveTls({ ca_file: join(d, 'ca.crt'), client_certs: 'off' }, 'pg1');
  const first = tlsMaterial(cfg);
  assert.equal(tlsMaterial(cfg), first, 'unchanged files: the same material, not read again');
  // A new deployment: a new CA and member certificate where the old ones were.
  rmSync(join(d, 'ca.crt'));
  rmSync(join(d, 'ca.key'));
  await createCa(d);
  await issueMemberCert(d, 'pg1', ['127.0.0.1']);
  const second = tlsMaterial(cfg);
  assert.notEqual(second.ca, first.ca, 'the new CA is used');
  assert.notEqual(second.key, first.key, 'the new key is used');
  chmodSync(cfg.key_file, 0o644);
  assert.throws(
    () => tlsMaterial(cfg),
    (e: unknown) =>
      e instanceof UserError &&
      /is a private key and is readable by group or other users.*chmod 600/.test(e.message),
  );
});
