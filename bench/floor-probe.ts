// The probes of bench/floor, each run as its own node process in a lab host's namespace. Only
// node's own modules: what a probe costs is the event it measures, not a module tree's upkeep.
//   node dist/bench/floor-probe.js wake INTERVAL_MS SECONDS
//   node dist/bench/floor-probe.js call INTERVAL_MS SECONDS URL CA_FILE [fresh]
//   node dist/bench/floor-probe.js channel INTERVAL_MS SECONDS URL CA_FILE
//   node dist/bench/floor-probe.js serve HOST:PORT CERT_FILE KEY_FILE
// (`channel` is a call over the members' channel, src/util/channel.ts, which imports only node's
// modules too; the server probe answers both, as an agent's server does.)
// A client probe prints its result as one JSON line when done; the server probe prints
// "listening", then its result on SIGTERM.
import { readFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:https';
import { createSecureContext, type TLSSocket } from 'node:tls';
import { CHANNEL_ALPN, ChannelClient, takeChannels } from '../src/util/channel.js';

export interface ProbeResult {
  events: number;
  failed: number;
  cpuMs: number;
  seconds: number;
  /** Server probe: how many of its connections resumed a TLS session. */
  resumed?: number;
}

/** A body the size of an agent's /health answer. */
const BODY = JSON.stringify({
  ok: true,
  node: 'pg1',
  record: { term: 12, primary: 'pg1', standby: 'pg2', at: '2026-12-01T00:00:00.000Z' },
  vouch: { primary: 'pg1', term: 12, fresh: true, lastSeenMsAgo: 120 },
});

const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `wake` does nothing each period; `call` GETs `url` on a kept connection or (fresh) on a new one
 *  whose TLS session is resumed, as HAProxy's checks do. */
async function client(
  mode: string,
  periodMs: number,
  secs: number,
  url?: string,
  caFile?: string,
  fresh?: boolean,
) {
  let failed = 0;
  let tick: () => Promise<void> = async () => {};
  if (mode === 'call') {
    if (!url || !caFile) throw new Error('call needs URL and CA_FILE');
    const ca = readFileSync(caFile);
    const agent = new Agent({ keepAlive: !fresh, ca, maxCachedSessions: 4 });
    tick = () =>
      new Promise<void>((resolve) => {
        const req = request(url, { agent, ca, timeout: 2000 }, (res) => {
          res.on('data', () => {});
          res.on('end', resolve);
        });
        req.on('error', () => {
          failed++;
          resolve();
        });
        req.on('timeout', () => req.destroy());
        req.end();
      });
  } else if (mode === 'channel') {
    if (!url || !caFile) throw new Error('channel needs URL and CA_FILE');
    const u = new URL(url);
    const channel = new ChannelClient({
      host: u.hostname,
      port: Number(u.port),
      secureContext: createSecureContext({ ca: readFileSync(caFile) }),
    });
    tick = () =>
      channel.call({ method: 'GET', path: u.pathname }, 2000).then(
        () => {},
        () => {
          failed++;
        },
      );
  } else if (mode !== 'wake') throw new Error(`unknown probe ${mode}`);
  await tick(); // the first connection and its full handshake are not what an idle member pays
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let events = 0;
  while (performance.now() - t0 < secs * 1000) {
    const started = performance.now();
    await tick();
    events++;
    await sleep(Math.max(0, periodMs - (performance.now() - started)));
  }
  const r: ProbeResult = {
    events,
    failed,
    cpuMs: cpuMs(process.cpuUsage(c0)),
    seconds: (performance.now() - t0) / 1000,
  };
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

/** Answers every GET with BODY, over HTTPS or the channel; counts from the end of its second
 *  request (the first connection's full handshake excluded). */
function server(listen: string, certFile: string, keyFile: string): void {
  const [host, port] = listen.split(':');
  let events = 0;
  let resumed = 0;
  let c0: NodeJS.CpuUsage | null = null;
  let t0 = 0;
  /** A request served; `socket` is its connection when it came over HTTPS (one per check). */
  const counted = (socket?: TLSSocket) => {
    if (c0 === null) {
      if (++events === 2) {
        c0 = process.cpuUsage();
        t0 = performance.now();
        events = 0;
      }
      return;
    }
    events++;
    if (socket?.isSessionReused()) resumed++;
  };
  const srv = createServer(
    { cert: readFileSync(certFile), key: readFileSync(keyFile), ALPNProtocols: [CHANNEL_ALPN, 'http/1.1'] },
    (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${BODY}\n`);
      counted(req.socket as TLSSocket);
    },
  );
  // As the agents' server does (util/http.ts): a channel's connection is answered line by line.
  takeChannels(srv, async () => {
    counted();
    return { status: 200, body: JSON.parse(BODY) };
  });
  srv.keepAliveTimeout = 5000;
  srv.listen(Number(port), host, () => process.stdout.write('listening\n'));
  process.on('SIGTERM', () => {
    const r: ProbeResult = {
      events,
      failed: 0,
      cpuMs: c0 ? cpuMs(process.cpuUsage(c0)) : 0,
      seconds: (performance.now() - t0) / 1000,
      resumed,
    };
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  });
}

const [mode = '', a, b, c, d, e] = process.argv.slice(2);
if (mode === 'serve') server(a ?? '', b ?? '', c ?? '');
else
  client(mode, Number(a), Number(b), c, d, e === 'fresh').catch((err) => {
    process.stderr.write(`floor-probe: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
