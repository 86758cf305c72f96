// The small HTTP layer of the agents and the arbiter: node:http, JSON in and out, a shared
// secret on mutating requests, and fetch with a hard deadline between members.

import { timingSafeEqual } from 'node:crypto';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { z } from 'zod';
import { UserError } from './errors.js';

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

export function serve(routes: Route[], secret: string, host: string, port: number): Promise<Server> {
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
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
 * One HTTP call to another member, bounded by timeoutMs; network failure rejects. node:http rather
 * than fetch: on timeout the socket is destroyed at once, where fetch's pending connect to a
 * silent host lingers ~10 s and keeps a CLI process alive.
 */
export function callJson<T = unknown>(
  url: string,
  opts: { method?: 'GET' | 'POST'; body?: unknown; secret?: string; timeoutMs: number },
): Promise<CallResult<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.secret) headers.authorization = `Bearer ${opts.secret}`;
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers, agent: false }, (res) => {
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
