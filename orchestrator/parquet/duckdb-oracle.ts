// Test support only (imported by *.test.ts, never by the codec): DuckDB as an independent
// Parquet implementation, to write manifests the codec did not write and to check what it
// wrote. @duckdb/node-api is a devDependency.
import { DuckDBInstance } from '@duckdb/node-api';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { KeyColumns } from './messages.js';

export type Column = { name: string; type: string };

export class Oracle {
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
  ) {}

  static async open(): Promise<Oracle> {
    const instance = await DuckDBInstance.create(':memory:');
    return new Oracle(instance, await instance.connect());
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }

  async run(sql: string): Promise<void> {
    await this.conn.run(sql);
  }

  /** Rows as JSON-safe values (bigints, decimals and timestamps as text). */
  async rows(sql: string): Promise<Record<string, unknown>[]> {
    return (await this.conn.runAndReadAll(sql)).getRowObjectsJson();
  }

  async columns(file: string): Promise<Column[]> {
    const rows = await this.rows(`DESCRIBE SELECT * FROM ${parquet(file)}`);
    return rows.map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
  }

  /** Each leaf's Parquet type and annotations, as DuckDB's parquet_schema() reports them. */
  async leaves(file: string): Promise<Record<string, unknown>[]> {
    return this.rows(
      `SELECT name, type, type_length, repetition_type, converted_type, scale, precision, field_id, logical_type, duckdb_type ` +
        `FROM parquet_schema('${file.replaceAll("'", "''")}') WHERE type IS NOT NULL`,
    );
  }

  async count(file: string): Promise<number> {
    const [row] = await this.rows(`SELECT count(*)::INTEGER AS n FROM ${parquet(file)}`);
    return Number(row?.n);
  }

  /**
   * For each column of `original`, how many rows of `renewed` differ from it, pairing rows
   * by their position in the file (so order counts too). IS DISTINCT FROM compares nested
   * values, NaN and NULL as equal to themselves.
   */
  async differences(original: string, renewed: string, columns: string[]): Promise<Record<string, number>> {
    const counts = columns.map((c, i) => `count(*) FILTER (WHERE a.${ident(c)} IS DISTINCT FROM b.${ident(c)})::INTEGER AS c${i}`);
    const [row] = await this.rows(
      `SELECT count(*) FILTER (WHERE a.file_row_number IS NULL OR b.file_row_number IS NULL)::INTEGER AS unpaired, ${counts.join(', ')} ` +
        `FROM ${parquet(original, true)} a FULL JOIN ${parquet(renewed, true)} b ON a.file_row_number = b.file_row_number`,
    );
    const unpaired = Number(row?.unpaired);
    return Object.fromEntries(columns.map((c, i) => [c, Number(row?.[`c${i}`]) + unpaired]));
  }

  /** The key columns as DuckDB renders them in text, in file order. */
  async keysAsText(file: string, keys: KeyColumns): Promise<{ ids: (string | null)[]; urls: (string | null)[] }> {
    const rows = await this.rows(
      `SELECT ${ident(keys.id)}::VARCHAR AS id, ${ident(keys.url)}::VARCHAR AS url FROM ${parquet(file, true)} ORDER BY file_row_number`,
    );
    return { ids: rows.map((r) => r.id as string | null), urls: rows.map((r) => r.url as string | null) };
  }
}

export function parquet(file: string, rowNumbers = false): string {
  return `read_parquet('${file.replaceAll("'", "''")}'${rowNumbers ? ', file_row_number = true' : ''})`;
}

export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
