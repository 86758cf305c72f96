// `pgarbiter status` on the machine takes the lab's members from lab.json (labClusterMembers), not
// from the client host's YAML: both must name the same members, API port, secret and TLS files.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { validateConfig } from '../../src/config.js';
import { apiSocketPath, labClusterMembers } from '../../src/lab/api-access.js';
import { labConfigDoc } from '../../src/lab/pgconf.js';
import { newLab, writeLabSecrets } from '../../src/lab/state.js';

test("the lab's members from lab.json are the client host's config's", () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-members-'));
  try {
    for (const clientCerts of ['off', 'required'] as const) {
      const lab = {
        ...newLab('pgut', '10.213.250.0/24', {
          postgres: true,
          agents: true,
          sync: 'remote_apply',
          timing: 'default',
          clientCerts,
        }),
        dir,
      };
      writeLabSecrets(lab, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
      const cfg = validateConfig(labConfigDoc(lab, 'client'), 'client config');
      const members = labClusterMembers(lab);
      assert.deepEqual(members, {
        nodes: cfg.nodes,
        arbiter: cfg.arbiter,
        api_port: cfg.api_port,
        secret: cfg.secret,
        tls: cfg.tls,
      });
      assert.equal(members.tls.client_certs, clientCerts);
      assert.equal(apiSocketPath(lab, 'pg2'), join(dir, 'api', 'pg2.sock'));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
