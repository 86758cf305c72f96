// The example config that deploy/ ships must stay valid as the schema evolves.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig, TIMING_PROFILES } from '../../src/config.js';

test('deploy/pgarbiter.example.yaml is a valid config with the default timing and its secrets in files', () => {
  const file = fileURLToPath(new URL('../../../deploy/pgarbiter.example.yaml', import.meta.url));
  const text = readFileSync(file, 'utf8');
  assert.doesNotMatch(text, /^\s*(secret|admin_password|replication_password):/m, 'no secret inline');
  // Its secret files, in a scratch directory instead of /etc/pgarbiter.
  const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-deploy-test-'));
  try {
    mkdirSync(join(dir, 'secrets'), { mode: 0o700 });
    for (const name of ['secret', 'admin_password', 'replication_password'])
      writeFileSync(join(dir, 'secrets', name), `${name}-0123456789abcdef\n`, { mode: 0o600 });
    const copy = join(dir, 'pgarbiter.yaml');
    writeFileSync(copy, text.replaceAll('/etc/pgarbiter/', `${dir}/`), { mode: 0o644 });
    const cfg = loadConfig(copy);
    assert.equal(cfg.node, 'pg1');
    assert.equal(cfg.secret, 'secret-0123456789abcdef');
    assert.equal(cfg.postgres.admin_password, 'admin_password-0123456789abcdef');
    assert.equal(cfg.postgres.synchronous_commit, 'remote_apply');
    assert.equal(cfg.timing.failoverTimeoutMs, TIMING_PROFILES.default.failover_timeout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
