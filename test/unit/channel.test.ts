// The members' channel (src/util/channel.ts) against the real server of src/util/http.ts on a
// loopback port, with real certificates: the same answers as HTTPS (404, 405, 401, bodies, query),
// calls in parallel on one kept connection, a deadline that ends a silent call, a server that
// restarted, and a member that speaks HTTPS only (an older version), called over HTTPS instead.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ApiClient, type ClusterMembers } from '../../src/api/client.js';
import { createCa, issueMemberCert } from '../../src/tls/certs.js';
import {
  ChannelClient,
  ChannelRefused,
  LineReader,
  MAX_IN_FLIGHT,
  MAX_REQUEST_LINE,
  parseRequest,
} from '../../src/util/channel.js';
import { clientContextOf, type Route, serve, type TlsMaterial } from '../../src/util/http.js';

const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-channel-'));
const SECRET = 'channel-secret';
let tls: TlsMaterial;

before(async () => {
  await createCa(dir);
  await issueMemberCert(dir, 'pg1', ['127.0.0.1']);
  const r = (f: string) => readFileSync(join(dir, f), 'utf8');
  tls = { ca: r('ca.crt'), cert: r('pg1.crt'), key: r('pg1.key'), clientCerts: false };
});
after(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const routes: Route[] = [
  {
    method: 'GET',
    path: '/echo',
    handler: async (caller) => {
      const wait = Number(caller.query.get('wait') ?? 0);
      if (wait) await sleep(wait);
      return { status: 200, body: { authorized: caller.authorized, wait } };
    },
  },
  { method: 'POST', path: '/act', auth: true, handler: (_c, body) => ({ status: 200, body: { got: body } }) },
];

async function started(port = 0) {
  const server = await serve(routes, SECRET, '127.0.0.1', port, tls);
  return { server, port: (server.address() as { port: number }).port };
}

function stop(server: { close(): void; closeAllConnections(): void }) {
  server.close();
  server.closeAllConnections();
}

/** A server and a channel client to it for `body`; both closed after. */
async function withChannel(
  body: (c: ChannelClient, s: Awaited<ReturnType<typeof started>>) => Promise<void>,
) {
  const s = await started();
  const c = new ChannelClient({ host: '127.0.0.1', port: s.port, secureContext: clientContextOf(tls) });
  try {
    await body(c, s);
  } finally {
    c.close();
    stop(s.server);
  }
}

test('lines: split across chunks, empty lines skipped, a line over the limit refused', () => {
  const lines: string[] = [];
  const r = new LineReader(100, (l) => lines.push(l));
  assert.ok(r.push(Buffer.from('{"a":1}\n{"b"')));
  assert.equal(r.partial, true);
  assert.ok(r.push(Buffer.from(':2}\n\n')));
  assert.equal(r.partial, false);
  assert.deepEqual(lines, ['{"a":1}', '{"b":2}']);
  assert.equal(
    new LineReader(MAX_REQUEST_LINE, () => {}).push(Buffer.alloc(MAX_REQUEST_LINE + 1, 'x')),
    false,
  );
  // A whole line over the limit, come in one chunk with its end, is refused too, and not passed on.
  const long: string[] = [];
  const whole = Buffer.from(`${'x'.repeat(MAX_REQUEST_LINE + 1)}\n`);
  assert.equal(new LineReader(MAX_REQUEST_LINE, (l) => long.push(l)).push(whole), false);
  assert.deepEqual(long, []);
  assert.equal(parseRequest('not json'), null);
  assert.equal(parseRequest('{"id":1,"method":"PUT","path":"/x"}'), null);
  assert.equal(parseRequest('{"id":1,"method":"GET","path":"/x","secret":3}'), null);
  const line = '{"id":1,"method":"GET","path":"/x"}';
  assert.deepEqual(parseRequest(line), { id: 1, method: 'GET', path: '/x', lineLength: line.length });
});

test('the same answers as HTTPS, calls in parallel on one connection, each with its own answer', () =>
  withChannel(async (c, { server }) => {
    let accepted = 0;
    server.on('secureConnection', () => accepted++);
    assert.deepEqual(await c.call({ method: 'GET', path: '/echo' }, 3000), {
      status: 200,
      body: { authorized: false, wait: 0 },
    });
    assert.equal(
      ((await c.call({ method: 'GET', path: '/echo', secret: SECRET }, 3000)).body as { authorized: boolean })
        .authorized,
      true,
    );
    assert.equal((await c.call({ method: 'GET', path: '/nope' }, 3000)).status, 404);
    assert.equal((await c.call({ method: 'POST', path: '/echo' }, 3000)).status, 405);
    assert.equal((await c.call({ method: 'POST', path: '/act', body: { x: 1 } }, 3000)).status, 401);
    assert.equal(
      (await c.call({ method: 'POST', path: '/act', secret: 'wrong-secret', body: {} }, 3000)).status,
      401,
    );
    const ok = await c.call({ method: 'POST', path: '/act', secret: SECRET, body: { x: 1 } }, 3000);
    assert.deepEqual(ok, { status: 200, body: { got: { x: 1 } } });
    const big = await c.call(
      { method: 'POST', path: '/act', secret: SECRET, body: { x: 'y'.repeat(20_000) } },
      3000,
    );
    assert.equal(big.status, 413);
    // Answered out of order (the slow one last), each to its own call.
    const waits = [300, 0, 150, 50];
    const answers = await Promise.all(
      waits.map((w) => c.call({ method: 'GET', path: `/echo?wait=${w}` }, 3000)),
    );
    assert.deepEqual(
      answers.map((a) => (a.body as { wait: number }).wait),
      waits,
    );
    assert.equal(accepted, 1, 'every call on one kept connection');
  }));

test('a client that keeps more than MAX_IN_FLIGHT calls open at once is cut off', () =>
  withChannel(async (c) => {
    const calls = (n: number) =>
      Promise.all(Array.from({ length: n }, () => c.call({ method: 'GET', path: '/echo?wait=200' }, 3000)));
    assert.equal((await calls(MAX_IN_FLIGHT)).length, MAX_IN_FLIGHT);
    await assert.rejects(calls(MAX_IN_FLIGHT + 1), /closed|ECONNRESET/);
    assert.equal((await c.call({ method: 'GET', path: '/echo' }, 3000)).status, 200, 'then a new connection');
  }));

test('a missed deadline ends the call and its connection; a restarted server is called again at once', async () => {
  const { server, port } = await started();
  const c = new ChannelClient({ host: '127.0.0.1', port, secureContext: clientContextOf(tls) });
  let second: Awaited<ReturnType<typeof started>> | null = null;
  try {
    await assert.rejects(c.call({ method: 'GET', path: '/echo?wait=1000' }, 200), /timed out after 200 ms/);
    assert.equal((await c.call({ method: 'GET', path: '/echo' }, 3000)).status, 200);
    stop(server);
    await sleep(100);
    second = await started(port);
    assert.equal((await c.call({ method: 'GET', path: '/echo' }, 3000)).status, 200, 'a new connection');
    stop(second.server);
    await assert.rejects(c.call({ method: 'GET', path: '/echo' }, 1000), /ECONNREFUSED/);
  } finally {
    c.close();
    stop(server);
    if (second) stop(second.server);
  }
});

test('a member that speaks HTTPS only (no channel) is refused by the channel and called over HTTPS by ApiClient', async () => {
  const old = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, reason: `https ${req.method} ${req.url}` }));
  });
  await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
  const port = (old.address() as { port: number }).port;
  const c = new ChannelClient({ host: '127.0.0.1', port, secureContext: clientContextOf(tls) });
  const cfg: ClusterMembers = {
    api_port: port,
    secret: SECRET,
    arbiter: { name: 'arbiter', host: '127.0.0.1' },
    nodes: [],
    tls: {
      ca_file: join(dir, 'ca.crt'),
      cert_file: join(dir, 'pg1.crt'),
      key_file: join(dir, 'pg1.key'),
      client_certs: 'off',
    },
  } as unknown as ClusterMembers;
  const api = new ApiClient(cfg);
  try {
    await assert.rejects(c.call({ method: 'GET', path: '/x' }, 3000), ChannelRefused);
    const r = await api.arbiterPost('maintenance', { enabled: true }, 3000);
    assert.deepEqual([r.answered, r.body.reason], [true, 'https POST /maintenance']);
  } finally {
    c.close();
    api.close();
    old.close();
    old.closeAllConnections();
  }
});
