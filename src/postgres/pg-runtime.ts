// Imported before 'pg' (src/postgres/client.ts, src/workload/writer.ts). At load, pg asks whether
// it runs in a Cloudflare Worker: it reads `navigator.userAgent`, and where `navigator` is missing
// (Node 20; Node 21+ defines it) it constructs a `Response`, which makes Node load its whole
// fetch implementation (undici): about 6 MB of memory and 30-300 ms of start-up in every process
// that uses pg, for nothing. Defining `navigator` as Node 21+ does skips that.
if (!('navigator' in globalThis))
  Object.defineProperty(globalThis, 'navigator', {
    value: { userAgent: `Node.js/${process.versions.node.split('.')[0]}` },
    configurable: true,
    writable: true,
  });
