// The members' own framing of the API: the same routes, methods, secret and bodies as HTTPS
// (./http.ts), carried as one JSON line per request and per answer over a TLS connection that is
// kept between calls. Members call each other every round (about five calls a second on each
// agent): over HTTPS each call cost an idle agent about 1.2 ms of CPU as a client and 1.25 ms as a
// server (bench/floor), most of it node:http's parsing and streams; a JSON line costs a fraction.
// People, HAProxy, curl and the dashboard keep speaking HTTPS on the same port: the client asks
// for this framing by ALPN (CHANNEL_ALPN), and a member that does not offer it (an older version,
// during a rolling upgrade) is called over HTTPS instead, so a mixed cluster keeps talking.
//
// Request:  {"id":1,"method":"GET","path":"/health","secret":"...","body":{...}}\n
// Answer:   {"id":1,"status":200,"body":{...}}\n
// A call has a deadline; one that misses it, or a connection that fails, ends every call on that
// connection and the connection with them (a call that timed out may still be answered on a
// kept connection: a new one starts clean, as a new HTTPS connection would).

import type { Server as HttpsServer } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { type SecureContext, type TLSSocket, connect as tlsConnect } from 'node:tls';

export const CHANNEL_ALPN = 'pgarbiter/1';
/** The longest request line a server accepts: a body is at most MAX_BODY (16 KB, util/http.ts),
 *  and JSON's escapes can make its line longer. A longer one closes the connection. */
export const MAX_REQUEST_LINE = 64 * 1024;
/** The longest answer line a client accepts (an agent's status with 1024 VIP clients is ~25 KB). */
export const MAX_ANSWER_LINE = 1024 * 1024;
/** A channel with no call for this long is closed by the server (clients call every round). */
export const CHANNEL_IDLE_MS = 30_000;
/** A request line must be whole within this of its first byte (as HTTPS's REQUEST_TIMEOUT_MS):
 *  a client that trickles bytes does not keep a connection and its buffer. */
export const PARTIAL_LINE_MS = 5000;
/** The most calls a server answers at once on one channel (a member makes one or two), and the
 *  most answer bytes it keeps for a client that does not read them: over either, it closes. */
export const MAX_IN_FLIGHT = 16;
export const MAX_UNREAD_ANSWERS = 1024 * 1024;

export interface ChannelRequest {
  id: number;
  method: 'GET' | 'POST';
  path: string;
  secret?: string;
  body?: unknown;
}

export interface ChannelAnswer {
  id: number;
  status: number;
  body: unknown;
}

/** A request as the server got it: `lineLength` is the length of its line, which bounds its body's. */
export type ReceivedRequest = ChannelRequest & { lineLength: number };
/** What a server answers a request with (serveChannel adds the request's id). */
export type ServedAnswer = Omit<ChannelAnswer, 'id'>;

/** Splits a byte stream into lines, refusing one longer than `maxLine`. Pure but for its buffer. */
export class LineReader {
  private pending = '';
  constructor(
    private readonly maxLine: number,
    private readonly onLine: (line: string) => void,
  ) {}

  /** Part of a line has come and not its end. */
  get partial(): boolean {
    return this.pending.length > 0;
  }

  /** False when a line grew over `maxLine`: the caller closes the connection. */
  push(chunk: Buffer): boolean {
    let text = this.pending + chunk.toString('utf8');
    let nl = text.indexOf('\n');
    while (nl >= 0) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (line.length > this.maxLine) return false;
      if (line.length > 0) this.onLine(line);
      nl = text.indexOf('\n');
    }
    this.pending = text;
    return text.length <= this.maxLine;
  }
}

/** Parses a request line; a line that is not one is null (the server closes the connection). */
export function parseRequest(line: string): ReceivedRequest | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  if (
    !Number.isSafeInteger(r.id) ||
    (r.method !== 'GET' && r.method !== 'POST') ||
    typeof r.path !== 'string'
  )
    return null;
  if (r.secret !== undefined && typeof r.secret !== 'string') return null;
  return { ...(r as unknown as ChannelRequest), lineLength: line.length };
}

/** The server side of one channel: answers each request line with `answer`, in any order. */
export function serveChannel(
  socket: TLSSocket,
  answer: (req: ReceivedRequest) => Promise<ServedAnswer>,
): void {
  socket.setNoDelay(true);
  socket.setTimeout(CHANNEL_IDLE_MS, () => socket.destroy());
  socket.on('error', () => {});
  let partialTimer: NodeJS.Timeout | null = null;
  socket.once('close', () => {
    if (partialTimer) clearTimeout(partialTimer);
  });
  let inFlight = 0;
  const reader = new LineReader(MAX_REQUEST_LINE, (line) => {
    const req = parseRequest(line);
    if (!req || ++inFlight > MAX_IN_FLIGHT) {
      socket.destroy();
      return;
    }
    answer(req).then(
      (a) => {
        inFlight--;
        if (socket.destroyed) return;
        socket.write(`${JSON.stringify({ id: req.id, status: a.status, body: a.body })}\n`);
        if (socket.writableLength > MAX_UNREAD_ANSWERS) socket.destroy();
      },
      () => socket.destroy(),
    );
  });
  socket.on('data', (chunk: Buffer) => {
    if (!reader.push(chunk)) {
      socket.destroy();
      return;
    }
    if (!reader.partial && partialTimer) {
      clearTimeout(partialTimer);
      partialTimer = null;
    } else if (reader.partial && !partialTimer)
      partialTimer = setTimeout(() => socket.destroy(), PARTIAL_LINE_MS);
  });
}

/** Connections to `server` that negotiated the channel by ALPN are served as channels, the rest as HTTPS.
 *  The server's closeAllConnections() ends the channels too (node:http does not know them). */
export function takeChannels(
  server: HttpsServer,
  answer: (r: ReceivedRequest) => Promise<ServedAnswer>,
): void {
  const httpsListeners = server.listeners('secureConnection') as ((s: TLSSocket) => void)[];
  server.removeAllListeners('secureConnection');
  const channels = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol !== CHANNEL_ALPN) {
      for (const l of httpsListeners) l.call(server, socket);
      return;
    }
    channels.add(socket);
    socket.once('close', () => channels.delete(socket));
    serveChannel(socket, answer);
  });
  const closeHttp = server.closeAllConnections.bind(server);
  server.closeAllConnections = () => {
    closeHttp();
    for (const s of channels) s.destroy();
  };
}

/** Where a channel connects and how it verifies the server. */
export interface ChannelTarget {
  host: string;
  port: number;
  /** A unix socket that forwards to `host` (TLS still runs end to end, verified against `host`). */
  socketPath?: string;
  secureContext: SecureContext;
}

interface Pending {
  resolve: (a: { status: number; body: unknown }) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Thrown when the server did not offer the channel (it speaks HTTPS only): call it over HTTPS. */
export class ChannelRefused extends Error {}

/** The code of a call's error when its connection closed before the answer. */
const CLOSED = 'ERR_CHANNEL_CLOSED';

/**
 * The client side: one kept connection to one member, opened on the first call and again after a
 * failure. The socket does not keep a process alive while no call is pending (a CLI exits).
 */
export class ChannelClient {
  private socket: TLSSocket | null = null;
  private ready: Promise<TLSSocket> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly target: ChannelTarget) {}

  /** One call; rejects on timeout or a broken connection. A call on a kept connection that the
   *  server had closed meanwhile (it restarted) is tried once more on a new one. */
  async call(req: Omit<ChannelRequest, 'id'>, timeoutMs: number): Promise<{ status: number; body: unknown }> {
    const deadline = Date.now() + timeoutMs;
    const reused = this.socket !== null && !this.socket.destroyed;
    try {
      return await this.once(req, deadline, timeoutMs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const stale = code === 'ECONNRESET' || code === 'EPIPE' || code === CLOSED;
      if (reused && stale && Date.now() < deadline) return this.once(req, deadline, timeoutMs);
      throw e;
    }
  }

  private once(
    req: Omit<ChannelRequest, 'id'>,
    deadline: number,
    timeoutMs: number,
  ): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      // The deadline covers the connection too: missing it ends the connection and its calls.
      const timer = setTimeout(
        () => this.close(new Error(`timed out after ${timeoutMs} ms`)),
        Math.max(1, deadline - Date.now()),
      );
      this.pending.set(id, { resolve, reject, timer });
      const ready = this.open();
      ready.then(
        (socket) => {
          if (!this.pending.has(id)) return; // ended meanwhile
          socket.ref();
          socket.write(`${JSON.stringify({ id, ...req })}\n`);
        },
        // A connection already replaced by a newer one ended its calls when it was closed.
        (e: Error) => {
          if (this.ready === ready) this.close(e);
        },
      );
    });
  }

  private open(): Promise<TLSSocket> {
    if (this.socket && !this.socket.destroyed && this.ready) return this.ready;
    const { host, port, socketPath, secureContext } = this.target;
    const socket = tlsConnect({
      host,
      port,
      ...(socketPath ? { socket: netConnect(socketPath) as Socket } : {}),
      secureContext,
      rejectUnauthorized: true,
      // http/1.1 too: an older member's HTTPS server picks it (and refuses a list without it).
      ALPNProtocols: [CHANNEL_ALPN, 'http/1.1'],
    });
    this.socket = socket;
    socket.setNoDelay(true);
    // Events of a connection already replaced by a newer one are ignored.
    const mine = (e: Error) => {
      if (this.socket === socket) this.close(e);
    };
    const reader = new LineReader(MAX_ANSWER_LINE, (line) => this.answered(line));
    socket.on('data', (chunk: Buffer) => {
      if (!reader.push(chunk)) mine(new Error('answer line too long'));
    });
    socket.on('error', mine);
    socket.on('close', () =>
      mine(Object.assign(new Error(`connection to ${host} closed`), { code: CLOSED })),
    );
    this.ready = new Promise((resolve, reject) => {
      socket.once('secureConnect', () => {
        if (socket.alpnProtocol === CHANNEL_ALPN) resolve(socket);
        else reject(new ChannelRefused(`${host} does not offer ${CHANNEL_ALPN}`));
      });
      socket.once('close', () =>
        reject(Object.assign(new Error(`connection to ${host} closed`), { code: CLOSED })),
      );
      socket.once('error', reject);
    });
    return this.ready;
  }

  private answered(line: string): void {
    let a: ChannelAnswer;
    try {
      a = JSON.parse(line) as ChannelAnswer;
    } catch {
      this.close(new Error('an answer that is not JSON'));
      return;
    }
    const p = this.pending.get(a.id);
    if (!p) return; // a call given up on (it timed out): its connection is closed anyway
    this.pending.delete(a.id);
    clearTimeout(p.timer);
    if (this.pending.size === 0) this.socket?.unref();
    p.resolve({ status: Number(a.status) || 0, body: a.body });
  }

  /** Ends the connection and every call on it with `e`. */
  close(e: Error = new Error('channel closed')): void {
    const socket = this.socket;
    this.socket = null;
    this.ready = null;
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const p of calls) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    socket?.destroy();
  }
}
