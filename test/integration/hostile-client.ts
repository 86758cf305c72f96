// A hostile HTTPS client for hardening.test.ts, run inside a lab host (only code inside a namespace
// reaches the lab): `node hostile-client.js '<json Job>'` prints one JSON result on stdout. It
// trusts the lab's CA (the APIs speak HTTPS only): the hostile part is what it sends inside TLS.
// `cases` sends one request of each kind of hostile input; `fuzz` a seeded stream of random
// requests. It never sends the right secret with a body that could be accepted: it must change
// nothing, so whatever it gets back is what a stranger on the network gets.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as plainConnect } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { AGENT_PATHS, ARBITER_PATHS, READ_PATHS } from '../../src/api/protocol.js';
import { CHANNEL_ALPN, MAX_REQUEST_LINE } from '../../src/util/channel.js';
import { prng } from '../../src/util/prng.js';

export interface Target {
  name: string;
  address: string;
  /** The arbiter (its POST bodies are validated strictly) or an agent. */
  arbiter: boolean;
}

export interface Job {
  mode: 'cases' | 'fuzz';
  targets: Target[];
  port: number;
  secret: string;
  /** The lab's CA certificate file. */
  caFile: string;
  seed?: number;
  count?: number;
}

/** What came back: an HTTP status, or the connection closed/reset without one, or nothing in time. */
export interface Outcome {
  status: number | 'closed' | 'timeout';
  ms: number;
  allow?: string;
  body: string;
}

const TIMEOUT_MS = 12_000;
let ca = '';

/** How `raw` talks: HTTP over TLS, HTTP without TLS, or the members' channel (ALPN pgarbiter/1,
 *  src/util/channel.ts: the status is that of the first answer line). */
export type Framing = 'https' | 'plain' | 'channel';

/** Bytes over a raw socket: `chunks` are written `gapMs` apart (slow clients, garbage). The
 *  outcome is the first answer's status, or the connection closed without one. */
export function raw(
  address: string,
  port: number,
  chunks: (string | Buffer)[],
  gapMs = 0,
  framing: Framing = 'https',
): Promise<Outcome> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const sock =
      framing === 'plain'
        ? plainConnect(port, address)
        : connect({
            host: address,
            port,
            ca,
            ...(framing === 'channel' ? { ALPNProtocols: [CHANNEL_ALPN] } : {}),
          });
    let data = '';
    let done = false;
    const finish = (status: Outcome['status']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      resolve({
        status: m ? Number(m[1]) : status,
        ms: Math.round(performance.now() - t0),
        body: framing === 'channel' ? data.slice(0, 2000) : data.slice(data.indexOf('\r\n\r\n') + 4, 2000),
      });
    };
    const timer = setTimeout(() => finish('timeout'), TIMEOUT_MS);
    sock.on('data', (d) => {
      data += d.toString(framing === 'channel' ? 'utf8' : 'latin1');
      const nl = framing === 'channel' ? data.indexOf('\n') : -1;
      if (nl < 0) return;
      let status: Outcome['status'] = 'closed';
      try {
        status = (JSON.parse(data.slice(0, nl)) as { status: number }).status;
      } catch {}
      finish(status);
    });
    sock.on('close', () => finish('closed'));
    sock.on('error', () => finish('closed'));
    sock.on(framing === 'plain' ? 'connect' : 'secureConnect', async () => {
      if (framing === 'channel' && (sock as TLSSocket).alpnProtocol !== CHANNEL_ALPN) return finish('closed');
      for (const c of chunks) {
        if (sock.destroyed) return;
        sock.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

/** One request with node:http (well-formed framing, hostile content). */
export function send(
  address: string,
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Outcome> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: Omit<Outcome, 'ms'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...o, ms: Math.round(performance.now() - t0) });
    };
    const req = request({ host: address, port, method, path, headers, agent: false, ca }, (res) => {
      let text = '';
      res.on('data', (d) => {
        if (text.length < 2000) text += d;
      });
      res.on('end', () =>
        finish({ status: res.statusCode ?? 0, allow: res.headers.allow, body: text.slice(0, 2000) }),
      );
      res.on('error', () => finish({ status: res.statusCode ?? 'closed', body: text }));
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ status: 'timeout', body: '' });
    }, TIMEOUT_MS);
    req.on('error', () => finish({ status: 'closed', body: '' }));
    req.end(body);
  });
}

const POST_PATHS = [
  ...Object.values(ARBITER_PATHS),
  AGENT_PATHS.switchover,
  AGENT_PATHS.rejoin,
  AGENT_PATHS.forcePromote,
  AGENT_PATHS.wake,
];
const ALL_PATHS = [
  ...new Set([...Object.values(AGENT_PATHS), ...Object.values(ARBITER_PATHS), ...Object.values(READ_PATHS)]),
];

async function cases(job: Job): Promise<Record<string, Outcome>> {
  const out: Record<string, Outcome> = {};
  const auth = { authorization: `Bearer ${job.secret}`, 'content-type': 'application/json' };
  for (const t of job.targets) {
    const post = t.arbiter ? ARBITER_PATHS.promote : AGENT_PATHS.switchover;
    const at = (k: string) => `${t.name} ${k}`;
    // The declared length alone is refused: the headers, then nothing, and the 413 must come back.
    out[at('oversized declared body')] = await raw(t.address, job.port, [
      `POST ${post} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${job.secret}\r\nContent-Type: application/json\r\nContent-Length: ${1 << 20}\r\n\r\n`,
    ]);
    out[at('oversized body')] = await send(
      t.address,
      job.port,
      'POST',
      post,
      auth,
      Buffer.alloc(1 << 20, 'x'),
    );
    out[at('oversized chunked body')] = await raw(t.address, job.port, [
      `POST ${post} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${job.secret}\r\nTransfer-Encoding: chunked\r\n\r\n`,
      ...Array.from({ length: 40 }, () => `400\r\n${'y'.repeat(1024)}\r\n`),
    ]);
    out[at('malformed JSON')] = await send(t.address, job.port, 'POST', post, auth, '{"node": "pg2", term: ');
    out[at('wrong method on a GET path')] = await send(t.address, job.port, 'DELETE', AGENT_PATHS.health, {});
    out[at('wrong method on a POST path')] = await send(t.address, job.port, 'GET', post, {});
    out[at('unknown path')] = await send(t.address, job.port, 'GET', '/../../etc/passwd', {});
    out[at('missing secret')] = await send(
      t.address,
      job.port,
      'POST',
      post,
      { 'content-type': 'application/json' },
      '{}',
    );
    out[at('wrong secret')] = await send(
      t.address,
      job.port,
      'POST',
      post,
      { authorization: `Bearer ${job.secret.slice(0, -1)}${job.secret.endsWith('A') ? 'B' : 'A'}` },
      '{}',
    );
    out[at('garbage bytes')] = await raw(t.address, job.port, [
      Buffer.from([0, 255, 13, 10, 1, 2, 3, 13, 10, 13, 10]),
    ]);
    out[at('huge header')] = await send(t.address, job.port, 'GET', AGENT_PATHS.health, {
      'x-big': 'z'.repeat(64 * 1024),
    });
    // Slow clients: headers that never end; a body that never completes.
    out[at('slow headers')] = await raw(
      t.address,
      job.port,
      [
        'GET /health HTTP/1.1\r\n',
        'Host: x\r\n',
        ...Array.from({ length: 30 }, (_, i) => `X-Slow-${i}: 1\r\n`),
      ],
      400,
    );
    out[at('slow body')] = await raw(
      t.address,
      job.port,
      [
        `POST ${post} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${job.secret}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"no`,
        ...Array.from({ length: 30 }, () => ' '),
      ],
      400,
    );
    out[at('plain HTTP')] = await raw(
      t.address,
      job.port,
      [`GET ${AGENT_PATHS.health} HTTP/1.1\r\nHost: x\r\n\r\n`],
      0,
      'plain',
    );
    // The members' channel: the same answers, and a line that is not a request closes it.
    const line = (o: unknown) => `${JSON.stringify(o)}\n`;
    out[at('channel: not JSON')] = await raw(t.address, job.port, ['GET /health\n'], 0, 'channel');
    out[at('channel: not a request')] = await raw(
      t.address,
      job.port,
      [line({ path: '/health' })],
      0,
      'channel',
    );
    out[at('channel: line over the limit')] = await raw(
      t.address,
      job.port,
      [Buffer.alloc(MAX_REQUEST_LINE + 1024, 'x')],
      0,
      'channel',
    );
    out[at('channel: a line left unfinished')] = await raw(t.address, job.port, ['{"id":1,'], 0, 'channel');
    out[at('channel: unknown path')] = await raw(
      t.address,
      job.port,
      [line({ id: 1, method: 'GET', path: '/nope' })],
      0,
      'channel',
    );
    out[at('channel: missing secret')] = await raw(
      t.address,
      job.port,
      [line({ id: 1, method: 'POST', path: post, body: {} })],
      0,
      'channel',
    );
    out[at('channel: wrong secret')] = await raw(
      t.address,
      job.port,
      [line({ id: 1, method: 'POST', path: post, secret: `${job.secret}x`, body: {} })],
      0,
      'channel',
    );
    out[at('channel: health')] = await raw(
      t.address,
      job.port,
      [line({ id: 7, method: 'GET', path: AGENT_PATHS.health })],
      0,
      'channel',
    );
    out[at('health after all that')] = await send(t.address, job.port, 'GET', AGENT_PATHS.health, {});
  }
  return out;
}

async function fuzz(
  job: Job,
): Promise<{ statuses: Record<string, number>; samples: Record<string, string>; bodies: string[] }> {
  // Request i draws from its own generator (seed, i): the same request whatever the interleaving
  // of the concurrent clients (all its draws happen before its first await).
  let rnd = prng(job.seed ?? 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  const text = (n: number) =>
    Array.from({ length: n }, () => String.fromCharCode(33 + Math.floor(rnd() * 94))).join('');
  const wrongSecret = () =>
    pick([
      '',
      'Bearer ',
      `Bearer ${text(43)}`,
      `Bearer ${job.secret.slice(1)}`,
      `Bearer ${job.secret}x`,
      `bearer ${job.secret}`,
      `Basic ${Buffer.from(`u:${job.secret}`).toString('base64')}`,
      `Bearer ${job.secret.toUpperCase() === job.secret ? job.secret.toLowerCase() : job.secret.toUpperCase()}`,
    ]);
  /** A body JSON.parse rejects: garbled, truncated, binary. */
  const notJson = () => {
    const b = pick([
      () => `{"node":"pg2","term":${Math.floor(rnd() * 9)}`,
      () => text(1 + Math.floor(rnd() * 200)),
      () => junk(1 + Math.floor(rnd() * 300)).toString('latin1'),
      () => `{"enabled": tru`,
      () => `[${'['.repeat(Math.floor(rnd() * 5000))}`,
    ])();
    try {
      JSON.parse(b);
      return `{${b}`;
    } catch {
      return b;
    }
  };
  /** Any body: JSON that no schema accepts as well (extra key: the schemas are strict). */
  const anyBody = () =>
    pick([
      () => undefined,
      notJson,
      () =>
        JSON.stringify({ node: pick(['pg1', 'pg2', text(70)]), term: Math.floor(rnd() * 1e6) - 5, fuzz: 1 }),
      () => JSON.stringify(pick([null, 1, 'x', [], {}, { record: { term: -1 } }, { enabled: 'yes' }])),
      () => 'x'.repeat(16 * 1024 + Math.floor(rnd() * 50_000)),
    ])();
  const statuses: Record<string, number> = {};
  const samples: Record<string, string> = {};
  const bodies = new Set<string>();
  const one = async (i: number) => {
    rnd = prng(((job.seed ?? 1) * 1_000_003 + i) >>> 0);
    const t = pick(job.targets);
    let o: Outcome;
    let what: string;
    if (rnd() < 0.1) {
      const line = pick([
        () => junk(1 + Math.floor(rnd() * 500)),
        () =>
          `${pick(['GET', 'POST', 'BREW', ''])} ${pick(ALL_PATHS)}${text(3)} HTTP/${pick(['1.1', '2.0', '9', ''])}\r\n${text(20)}\r\n\r\n`,
        () =>
          `POST ${pick(POST_PATHS)} HTTP/1.1\r\nHost: x\r\nContent-Length: ${pick(['-1', '1e9', 'abc', '5, 6'])}\r\n\r\n{}`,
        () =>
          `GET ${pick(ALL_PATHS)} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n`,
      ])();
      what = `raw ${JSON.stringify(line.toString().slice(0, 60))}`;
      o = await raw(t.address, job.port, [line]);
    } else {
      const method = pick([
        'GET',
        'GET',
        'POST',
        'POST',
        'POST',
        'HEAD',
        'PUT',
        'DELETE',
        'OPTIONS',
        'PATCH',
        'TRACE',
      ]);
      const path = pick([
        ...ALL_PATHS,
        ...POST_PATHS,
        () => `${pick(ALL_PATHS)}?${text(10)}`,
        () => `/${text(Math.floor(rnd() * 3000))}`,
        () => `${pick(ALL_PATHS)}/`,
        '/%2e%2e/%2e%2e',
        '*',
      ]);
      const p = typeof path === 'function' ? path() : path;
      const headers: Record<string, string> = {};
      const a = wrongSecret();
      if (a) headers.authorization = a;
      // The right secret only with a body no route can accept: to /wake of an agent (harmless)
      // or to the arbiter (strict schemas) with JSON that has an unknown key, else not JSON.
      let body = anyBody();
      if (rnd() < 0.25) {
        headers.authorization = `Bearer ${job.secret}`;
        body = notJson();
      }
      for (let k = Math.floor(rnd() * 4); k > 0; k--)
        headers[`x-${text(5).replace(/[^a-z0-9]/gi, 'a')}`] = text(Math.floor(rnd() * 200));
      if (rnd() < 0.2)
        headers['content-type'] = pick([
          'text/plain',
          'application/x-www-form-urlencoded',
          text(30).replace(/[^\x21-\x7e]/g, ''),
        ]);
      what = `${method} ${p.slice(0, 60)} auth=${headers.authorization === `Bearer ${job.secret}` ? 'right' : a ? 'wrong' : 'none'} body=${body === undefined ? 'none' : String(body.length)}`;
      o = await send(t.address, job.port, method, p, headers, body);
    }
    const key = `${t.name} ${o.status}`;
    statuses[key] = (statuses[key] ?? 0) + 1;
    samples[key] ??= `#${i} ${what}`;
    if (o.body) bodies.add(o.body.slice(0, 300));
  };
  const count = job.count ?? 1000;
  let next = 0;
  // Eight clients at a time; every request bounded by TIMEOUT_MS, so the run is bounded.
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < count) await one(next++);
    }),
  );
  return { statuses, samples, bodies: [...bodies] };
}

const job = JSON.parse(process.argv[2] ?? '{}') as Job;
ca = readFileSync(job.caFile, 'utf8');
const result = job.mode === 'cases' ? await cases(job) : await fuzz(job);
process.stdout.write(`${JSON.stringify(result)}\n`);
