/** SQL that ends client sessions (not walsenders, not ourselves) once the fence is up. */
export const TERMINATE_CLIENTS_SQL = `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`;
