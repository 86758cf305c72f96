// The small HTTPS layer of the agents and the arbiter: node:https, JSON in and out, a shared
// secret on mutating requests, and calls with a hard deadline between members. Every connection
// is TLS, verified against the cluster CA (and, with client_certs required, both ways). The same
// routes also answer the members' own framing on the same port (./channel.ts, chosen by ALPN).

import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, createServer, request as httpsRequest, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { z } from 'zod';
import { CHANNEL_ALPN, takeChannels } from './channel.js';
import { UserError } from './errors.js';

/** A member's TLS files, read (tls/material.ts reads them from the config). */
export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
  /** Mutual TLS on the APIs: servers demand, clients present, a certificate signed by the CA. */
  clientCerts: boolean;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Reply {
  status: number;
  body: unknown;
  /** Send `body` (a string) as is with this content type instead of as JSON (GET /metrics). */
  contentType?: string;
}

/** Who called, as far as a handler needs to know. */
export interface Caller {
  /** The request carried the cluster secret. */
  authorized: boolean;
  /** The request's query parameters (`/primary?hold`). */
  query: URLSearchParams;
}

export type Handler = (caller: Caller, body: unknown) => Promise<Reply> | Reply;

export interface Route {
  method: 'GET' | 'POST';
  path: string;
  /** Mutating routes require `Authorization: Bearer <secret>`. */
  auth?: boolean;
  handler: Handler;
}

/** The largest request body a member accepts (its bodies are a few hundred bytes). */
export const MAX_BODY = 16 * 1024;
/** Limits against slow or stuck clients (Slowloris): the headers within HEADERS_TIMEOUT_MS, the
 *  whole request within REQUEST_TIMEOUT_MS, else 408 and the connection is closed. Node checks
 *  them every CHECK_INTERVAL_MS. Members' own requests take milliseconds. */
export const HEADERS_TIMEOUT_MS = 3000;
export const REQUEST_TIMEOUT_MS = 5000;
const CHECK_INTERVAL_MS = 1000;
/** How long a server keeps an idle connection for the next request, and how long a client keeps
 *  one in its pool: shorter, so a client never sends on a socket the server is closing. */
const KEEP_ALIVE_MS = 5000;
const CLIENT_IDLE_MS = 3000;

/** One connection pool and one TLS context per member identity: a call every round would
 *  otherwise parse the CA and key and make a full handshake each time (the CPU of an idle agent). */
const pools = new WeakMap<TlsMaterial, Agent>();
function poolOf(tls: TlsMaterial): Agent {
  let agent = pools.get(tls);
  if (!agent) {
    agent = new Agent({
      keepAlive: true,
      maxSockets: 8,
      maxFreeSockets: 4,
      timeout: CLIENT_IDLE_MS,
      secureContext: clientContextOf(tls),
    });
    pools.set(tls, agent);
  }
  return agent;
}

const clientContexts = new WeakMap<TlsMaterial, SecureContext>();
/** A client's TLS context for a member identity: the cluster CA, and its certificate when the
 *  members demand one. */
export function clientContextOf(tls: TlsMaterial): SecureContext {
  let ctx = clientContexts.get(tls);
  if (!ctx) {
    ctx = createSecureContext({ ca: tls.ca, ...(tls.clientCerts ? { cert: tls.cert, key: tls.key } : {}) });
    clientContexts.set(tls, ctx);
  }
  return ctx;
}

/** Does an `Authorization: Bearer <secret>` header carry the cluster secret? */
function bearerMatches(header: string | undefined, secret: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  return secretMatches(m?.[1], secret);
}

function secretMatches(given: string | undefined, secret: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY) throw new HttpError(413, `request body too large (limit ${MAX_BODY} bytes)`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body too large (limit ${MAX_BODY} bytes)`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

/** A TLS connection starts with a handshake record (content type 22); anything else is plain. */
const TLS_HANDSHAKE = 0x16;
const SNIFF_TIMEOUT_MS = 5_000;

/**
 * Puts a sniffer in front of the server's TLS handshake: a client that speaks plain HTTP gets a
 * clear 400 saying to use https://, not a silent hang or a garbled TLS alert.
 */
function refusePlainHttp(server: Server, port: number): void {
  const tlsListeners = server.listeners('connection') as ((s: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => {});
    const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
    socket.once('data', (first: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      if (first[0] === TLS_HANDSHAKE) {
        socket.unshift(first);
        for (const l of tlsListeners) l.call(server, socket);
        return;
      }
      const text = `this API speaks HTTPS only: use https://<host>:${port}/ (with the cluster CA)\n`;
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
      );
    });
  });
}

/**
 * The answer to one request, whichever framing carried it: unknown path 404, wrong method 405
 * (with Allow), a route that needs the secret without it 401 (before the body is read), then the
 * route's handler; an HttpError it throws is its status, anything else a 500.
 */
async function dispatch(
  routes: Route[],
  method: string,
  target: string,
  authorized: boolean,
  readRequestBody: () => Promise<unknown>,
): Promise<Reply & { headers?: Record<string, string> }> {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1));
  try {
    const candidates = routes.filter((r) => r.path === path);
    if (candidates.length === 0) return { status: 404, body: { error: `no such endpoint: ${path}` } };
    const route = candidates.find((r) => r.method === method || (r.method === 'GET' && method === 'HEAD'));
    if (!route) {
      const allow = [
        ...new Set(candidates.flatMap((r) => (r.method === 'GET' ? ['GET', 'HEAD'] : [r.method]))),
      ];
      return {
        status: 405,
        body: { error: `method ${method} not allowed on ${path}` },
        headers: { allow: allow.join(', ') },
      };
    }
    if (route.auth && !authorized)
      return { status: 401, body: { error: 'missing or wrong secret (Authorization: Bearer <secret>)' } };
    const body = route.method === 'POST' ? await readRequestBody() : undefined;
    return await route.handler({ authorized, query }, body);
  } catch (e) {
    return { status: e instanceof HttpError ? e.status : 500, body: { error: (e as Error).message } };
  }
}

/**
 * Serves `routes` over TLS only (a plain HTTP request gets a 400 that says so): HTTPS, and the
 * members' channel for a client that asks for it by ALPN (same routes, same answers). Every bad request
 * gets a 4xx and changes nothing: unknown path 404, wrong method 405 (with Allow), missing or wrong
 * secret 401 (before the body is read), body over MAX_BODY 413, not JSON or not the route's shape
 * 400, too slow 408; with mutual TLS, a client without a certificate signed by the CA is refused in
 * the handshake. A request refused before its body was read closes the connection, so what is left
 * of it is never parsed as a next request.
 */
export function serve(
  routes: Route[],
  secret: string,
  host: string,
  port: number,
  tls: TlsMaterial,
): Promise<Server> {
  const options = {
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    requestCert: tls.clientCerts,
    rejectUnauthorized: tls.clientCerts,
    connectionsCheckingInterval: CHECK_INTERVAL_MS,
    // A member's client asks for the channel (./channel.ts); everyone else gets HTTP/1.1.
    ALPNProtocols: [CHANNEL_ALPN, 'http/1.1'],
  };
  const server = createServer(options, (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => res.destroy());
  });
  takeChannels(server, (r) =>
    dispatch(routes, r.method, r.path, secretMatches(r.secret, secret), async () => {
      // The line holds the body: within MAX_BODY, so is the body.
      if (r.body !== undefined && r.lineLength > MAX_BODY)
        throw new HttpError(413, `request body too large (limit ${MAX_BODY} bytes)`);
      return r.body ?? {};
    }),
  );
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let bodyRead = false;
    const reply = await dispatch(
      routes,
      req.method ?? 'GET',
      req.url ?? '/',
      bearerMatches(req.headers.authorization, secret),
      async () => {
        const body = await readBody(req);
        bodyRead = true;
        return body;
      },
    );
    if (res.headersSent || res.destroyed) return;
    if (reply.contentType && typeof reply.body === 'string') {
      res.writeHead(reply.status, { 'content-type': reply.contentType });
      res.end(reply.body);
      return;
    }
    const headers: Record<string, string> = { 'content-type': 'application/json', ...reply.headers };
    // A request refused before its body was read closes the connection.
    if (!bodyRead && req.method !== 'GET' && req.method !== 'HEAD') headers.connection = 'close';
    res.writeHead(reply.status, headers);
    res.end(`${JSON.stringify(reply.body)}\n`);
  };
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  // Members call each other every round: a connection kept between rounds saves a TLS handshake
  // per call (KEEP_ALIVE_MS is longer than a round; the clients drop idle sockets sooner).
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  refusePlainHttp(server, port);
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new UserError(
              `port ${port} on ${host} is already in use: stop what listens there or set api_port`,
            )
          : e,
      ),
    );
    server.listen(port, host, () => resolve(server));
  });
}

/** Validates a request body; a malformed one is a 400 with what is wrong, and changes nothing. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success)
    throw new HttpError(
      400,
      r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
    );
  return r.data;
}

export interface CallResult<T> {
  status: number;
  body: T;
}

/**
 * One HTTPS call to another member, bounded by timeoutMs; network failure rejects. node:https
 * rather than fetch: fetch takes no CA of its own on Node 20, and on timeout the socket is destroyed
 * at once, where fetch's pending connect to a silent host lingers ~10 s and keeps a CLI alive.
 * The peer's certificate must be signed by the cluster CA and name the host called. Connections
 * are kept between calls (poolOf); one the peer closed meanwhile (it restarted) is retried once on
 * a new connection, so a restart does not look like an unreachable peer. With `socketPath` the
 * connection goes to that unix socket (a forwarder to the host of `url`, such as the lab's), and
 * the certificate is still verified against the host of `url`: TLS runs end to end through it.
 */
export function callJson<T = unknown>(
  url: string,
  opts: {
    method?: 'GET' | 'POST';
    body?: unknown;
    secret?: string;
    timeoutMs: number;
    tls: TlsMaterial;
    socketPath?: string;
  },
): Promise<CallResult<T>> {
  if (!url.startsWith('https://')) throw new Error(`refusing a call to ${url}: the APIs speak HTTPS only`);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.secret) headers.authorization = `Bearer ${opts.secret}`;
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
  const options = {
    method: opts.method ?? 'GET',
    headers,
    agent: poolOf(opts.tls),
    rejectUnauthorized: true,
    ...(opts.socketPath ? { socketPath: opts.socketPath } : {}),
  };
  const deadline = Date.now() + opts.timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (mayRetry: boolean) => {
      const req = httpsRequest(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode ?? 0, body: body as T });
        });
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
      const timer = setTimeout(
        () => req.destroy(new Error(`timed out after ${opts.timeoutMs} ms`)),
        Math.max(1, deadline - Date.now()),
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const stale = req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE');
        if (stale && mayRetry && Date.now() < deadline) attempt(false);
        else reject(e);
      });
      req.end(payload);
    };
    attempt(true);
  });
}
