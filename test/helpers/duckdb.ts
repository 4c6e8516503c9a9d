/** DuckDB as an independent Parquet implementation: it writes test manifests and reads outputs. */
import { DuckDBInstance } from '@duckdb/node-api';

export type Rows = Record<string, unknown>[];

export async function duck() {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  return {
    async run(sql: string): Promise<void> {
      await conn.run(sql);
    },
    async rows(sql: string): Promise<Rows> {
      const r = await conn.runAndReadAll(sql);
      return r.getRowObjectsJson() as Rows;
    },
    close(): void {
      conn.closeSync();
      db.closeSync();
    },
  };
}

/** SQL string literal. */
export function lit(s: string | null): string {
  return s === null ? 'NULL' : `'${s.replace(/'/g, "''")}'`;
}
