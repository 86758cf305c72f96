// The small HTTPS layer of the agents and the arbiter: node:https, JSON in and out, a shared
// secret on mutating requests, and calls with a hard deadline between members. Every connection
// is TLS, verified against the cluster CA (and, with client_certs required, both ways).

import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { Socket } from 'node:net';
import type { z } from 'zod';
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

export type Handler = (req: IncomingMessage, body: unknown) => Promise<Reply> | Reply;

export interface Route {
  method: 'GET' | 'POST';
  path: string;
  /** Mutating routes require `Authorization: Bearer <secret>`. */
  auth?: boolean;
  handler: Handler;
}

const MAX_BODY = 16 * 1024;

function secretMatches(header: string | undefined, secret: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m?.[1]) return false;
  const a = Buffer.from(m[1]);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'request body too large');
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

export function serve(
  routes: Route[],
  secret: string,
  host: string,
  port: number,
  tls: TlsMaterial,
): Promise<Server> {
  const tlsOptions = {
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    requestCert: tls.clientCerts,
    rejectUnauthorized: tls.clientCerts,
  };
  const server = createServer(tlsOptions, async (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    try {
      const path = (req.url ?? '/').split('?')[0];
      const candidates = routes.filter((r) => r.path === path);
      if (candidates.length === 0) return send(404, { error: `no such endpoint: ${path}` });
      const route = candidates.find(
        (r) => r.method === req.method || (r.method === 'GET' && req.method === 'HEAD'),
      );
      if (!route) return send(405, { error: `method ${req.method} not allowed on ${path}` });
      if (route.auth && !secretMatches(req.headers.authorization, secret))
        return send(401, { error: 'missing or wrong secret (Authorization: Bearer <secret>)' });
      const body = route.method === 'POST' ? await readBody(req) : undefined;
      const reply = await route.handler(req, body);
      if (reply.contentType && typeof reply.body === 'string') {
        res.writeHead(reply.status, { 'content-type': reply.contentType });
        res.end(reply.body);
      } else send(reply.status, reply.body);
    } catch (e) {
      if (e instanceof HttpError) send(e.status, { error: e.message });
      else send(500, { error: (e as Error).message });
    }
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 1_000;
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
 * The peer's certificate must be signed by the cluster CA and name the host called.
 */
export function callJson<T = unknown>(
  url: string,
  opts: { method?: 'GET' | 'POST'; body?: unknown; secret?: string; timeoutMs: number; tls: TlsMaterial },
): Promise<CallResult<T>> {
  if (!url.startsWith('https://')) throw new Error(`refusing a call to ${url}: the APIs speak HTTPS only`);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.secret) headers.authorization = `Bearer ${opts.secret}`;
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
  return new Promise((resolve, reject) => {
    const tls = opts.tls;
    const options = {
      method: opts.method ?? 'GET',
      headers,
      agent: false as const,
      ca: tls.ca,
      rejectUnauthorized: true,
      ...(tls.clientCerts ? { cert: tls.cert, key: tls.key } : {}),
    };
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
      opts.timeoutMs,
    );
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(payload);
  });
}
