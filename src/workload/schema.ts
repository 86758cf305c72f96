// The demonstration data: two related tables with several columns. The lab seeds them, the
// demo shows them, and the writer's transactions touch both.
import type pg from 'pg';
import { sqlLiteral } from '../postgres/provision.js';

export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS customers (
  id          bigint PRIMARY KEY,
  name        text NOT NULL,
  city        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orders (
  id          bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  session     text NOT NULL,
  amount      numeric(10,2) NOT NULL,
  written_on  text NOT NULL DEFAULT current_setting('cluster_name'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_customer_idx ON orders (customer_id);
CREATE INDEX IF NOT EXISTS orders_session_idx ON orders (session);
CREATE TABLE IF NOT EXISTS writer_runs (
  run         integer PRIMARY KEY,
  started_at  timestamptz NOT NULL DEFAULT now(),
  sessions    integer NOT NULL,
  target      text NOT NULL
);
`;

/** The tables the writer needs (the demo tables plus its register of run numbers). */
export const WRITER_TABLES = ['customers', 'orders', 'writer_runs'] as const;

export const SEED_CUSTOMERS: ReadonlyArray<[number, string, string]> = [
  [1, 'Ada Lovelace', 'London'],
  [2, 'Edsger Dijkstra', 'Eindhoven'],
  [3, 'Grace Hopper', 'Arlington'],
  [4, 'Andrei Ershov', 'Novosibirsk'],
  [5, 'Barbara Liskov', 'Boston'],
];

/** Creates the tables and seeds customers plus one order each, in one transaction. */
export async function applyDemoSchema(client: pg.Client): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(SCHEMA_SQL);
    for (const [id, name, city] of SEED_CUSTOMERS) {
      await client.query(
        'INSERT INTO customers (id, name, city) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING',
        [id, name, city],
      );
      await client.query(
        `INSERT INTO orders (id, customer_id, session, amount) VALUES ($1, $2, 'seed', $3)
         ON CONFLICT (id) DO NOTHING`,
        [id, id, (id * 10.5).toFixed(2)],
      );
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

/** Creates whatever of the writer's tables is missing (no seed rows). Idempotent. */
export async function ensureWriterSchema(client: pg.Client): Promise<void> {
  const r = await client.query<{ missing: number }>(
    'SELECT count(*)::int AS missing FROM unnest($1::text[]) AS t(name) WHERE to_regclass(name) IS NULL',
    [WRITER_TABLES],
  );
  if ((r.rows[0]?.missing ?? 0) === 0) return;
  await client.query('BEGIN');
  try {
    await client.query(SCHEMA_SQL);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

/**
 * The demo's login role `app` (with this password), its tables and seed rows, and the grants the
 * writer and the checker need. Run once, as a superuser, on a freshly initialised primary.
 */
export async function createDemoApp(client: pg.Client, appPassword: string): Promise<void> {
  await client.query(`CREATE ROLE app LOGIN PASSWORD ${sqlLiteral(appPassword)}`);
  await applyDemoSchema(client);
  await client.query('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app');
  await client.query(
    'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app',
  );
  await client.query('GRANT CREATE ON SCHEMA public TO app');
  await client.query('GRANT EXECUTE ON FUNCTION pg_control_system() TO app');
}
