// The example config that deploy/ ships must stay valid as the schema evolves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config.js';

test('deploy/pgarbiter.example.yaml is a valid config with the default timing', () => {
  const file = fileURLToPath(new URL('../../../deploy/pgarbiter.example.yaml', import.meta.url));
  const cfg = loadConfig(file);
  assert.equal(cfg.node, 'pg1');
  assert.equal(cfg.postgres.synchronous_commit, 'remote_apply');
  assert.equal(cfg.timing.failoverTimeoutMs, 3000);
});
