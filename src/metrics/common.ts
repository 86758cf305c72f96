// What the agent's and the arbiter's metrics share: the text format, the buckets, the timing of a
// probe. One prom-client Registry per process (never the global one), so nothing else lands in it.
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { READ_PATHS } from '../api/protocol.js';
import type { Reply, Route } from '../util/http.js';

/** Probe latencies: a LAN probe answers in ~1 ms; a lost one waits for probe_timeout (≤ 1 s). */
export const PROBE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** A decision round: probes plus actions (a rejoin takes seconds). */
export const ROUND_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** How often the event-loop delay behind nodejs_eventloop_lag_* is sampled (ms). prom-client's
 *  default, 10 ms, wakes an idle daemon 100 times a second (~200 epoll returns/s): measured at about
 *  half a percent of a core each, as much as an agent's whole decision round. A stall of the loop
 *  that matters to a 600 ms round (`default`) is still seen at 200 ms. */
export const EVENT_LOOP_SAMPLE_MS = 200;

export function newRegistry(processMetrics: boolean): Registry {
  const registry = new Registry();
  // process_cpu_seconds_total, process_resident_memory_bytes, nodejs_*: standard names, no prefix.
  if (processMetrics)
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  return registry;
}

/** Gauge and counter constructors bound to `registry` (`registers` for the other kinds). */
export function metricMakers(registry: Registry) {
  const registers = [registry];
  return {
    registers,
    gauge: <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Gauge<L>({ name, help, labelNames, registers }),
    counter: <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Counter<L>({ name, help, labelNames, registers }),
  };
}

/** A null (unknown) reading is NaN in the text format, never a made-up 0. */
export const orNaN = (v: number | null | undefined): number =>
  v === null || v === undefined ? Number.NaN : v;
export const bool = (v: boolean | null | undefined): number =>
  v === null || v === undefined ? Number.NaN : v ? 1 : 0;

/** Resolves like `p`, and reports how long it took (seconds), whether it resolved or rejected. */
export function timed<T>(p: Promise<T>, done: (seconds: number) => void): Promise<T> {
  const t0 = process.hrtime.bigint();
  const end = () => done(Number(process.hrtime.bigint() - t0) / 1e9);
  return p.then(
    (v) => {
      end();
      return v;
    },
    (e: unknown) => {
      end();
      throw e;
    },
  );
}

/** GET /metrics: the registry in Prometheus' text format; no secret, nothing secret in it. */
export function metricsRoute(registry: Registry): Route {
  return {
    method: 'GET',
    path: '/metrics',
    handler: async (): Promise<Reply> => ({
      status: 200,
      body: await registry.metrics(),
      contentType: registry.contentType,
    }),
  };
}

/** The read routes every member serves: GET /metrics and GET /history. */
export function telemetryRoutes(registry: Registry, history: { body(): unknown }): Route[] {
  return [
    metricsRoute(registry),
    { method: 'GET', path: READ_PATHS.history, handler: () => ({ status: 200, body: history.body() }) },
  ];
}
