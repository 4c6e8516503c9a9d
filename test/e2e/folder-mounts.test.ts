/**
 * Folders on real mounts, in a mount namespace of their own (`unshare -m`: root only;
 * skipped elsewhere), so the tests leave none behind. A folder destination with volumes
 * mounted under it: a unit's folder on its own file system, a shard folder that is a bind
 * mount (the same file system, another mount); a temporary file is linked into place, and
 * link(2) crosses no mount (EXDEV): each mount keeps its own temporary files. A work dir
 * that fills up while a unit runs.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writerTag } from '../../storage/process.js';
import { duck, lit } from '../helpers/duckdb.js';
import { FERRY, ROOT } from '../helpers/run.js';
import { scratchAndOrigin } from '../helpers/scratch.js';

const canMount = process.getuid?.() === 0 && spawnSync('unshare', ['-m', 'mount', '-t', 'tmpfs', 'tmpfs', tmpdir()]).status === 0;
/** A writer no process is: above the largest pid_max Linux allows (2^22). */
const DEAD = writerTag(4_194_305);

const scratch = scratchAndOrigin('ferry-mounts-');

/** Runs `script` (sh) in a mount namespace of its own: what it prints, and its exit code. */
function withMounts(script: string, env: Record<string, string>): { code: number | null; out: string } {
  const r = spawnSync('unshare', ['-m', 'sh', '-c', `set -e; ${script}`], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe.skipIf(!canMount)('a folder destination with mounts under it', () => {
  it("writes into a volume mounted at the unit's folder and into a bind-mounted shard folder, and removes what killed runs left on each", () => {
    const dest = path.join(scratch.dir, 'dest');
    // Shards: id `a` → 86, id `b` → e9.
    const tasks = `a\t${scratch.origin.url}/ok/mount-a\nb\t${scratch.origin.url}/ok/mount-b\n`;
    const run = withMounts(
      `mkdir -p "$DEST/u" && mount -t tmpfs tmpfs "$DEST/u"
       mkdir -p "$DEST/u/e9" "$DEST/u/.e9-volume" && mount --bind "$DEST/u/.e9-volume" "$DEST/u/e9"
       mkdir -p "$DEST/u/.ferry-tmp" "$DEST/u/e9/.ferry-tmp"
       echo half > "$DEST/u/.ferry-tmp/86-a.png.$DEAD-0.tmp"
       echo half > "$DEST/u/e9/.ferry-tmp/b.png.$DEAD-1.tmp"
       printf "$TASKS" | node "$FERRY" worker --tasks - --dest "$DEST" --unit u --profile any --allow-private-network 2>/dev/null
       cd "$DEST" && find . -path ./u/.e9-volume -prune -o -print | sort`,
      { DEST: dest, DEAD, TASKS: tasks, FERRY },
    );
    expect(run.code, run.out).toBe(0);
    expect(run.out).toMatch(/^UP_OK\ta\t/m);
    expect(run.out).toMatch(/^UP_OK\tb\t/m);
    expect(run.out).not.toContain('EXDEV');
    const tree = run.out.split('\n').filter((l) => l.startsWith('.'));
    expect(tree).toEqual(['.', './u', './u/86', './u/86/a.png', './u/e9', './u/e9/b.png']);
  }, 60_000);
});

describe.skipIf(!canMount)('a work dir that fills up while a unit runs', () => {
  it('fails the unit with one line naming its journal and the cause, no stack', async () => {
    const manifests = path.join(scratch.dir, 'full-wd-m');
    await fs.mkdir(manifests);
    const db = await duck();
    // 3,000 rows: their tasks fit in 256 KiB, their events do not.
    await db.run(`COPY (SELECT 'k' || i AS id, ${lit(`${scratch.origin.url}/ok/full-wd-`)} || i AS media_path FROM range(3000) t(i)) TO '${path.join(manifests, 'u.parquet')}' (FORMAT parquet)`);
    db.close();
    const work = path.join(scratch.dir, 'full-wd');
    const run = withMounts(
      `mkdir -p "$WORK" && mount -t tmpfs -o size=256k tmpfs "$WORK"
       node "$FERRY" compile "$M" --dest "$DIR/full-wd-dest" --out "$DIR/full-wd-out" --work-dir "$WORK" --profile any --allow-private-network --progress none --concurrency 4 || echo "exit $?"`,
      { WORK: work, M: manifests, DIR: scratch.dir, FERRY },
    );
    expect(run.out).toContain('exit 1');
    expect(run.out).toMatch(new RegExp(`^ferry: unit u failed: cannot write ${work}/[0-9a-f]+/u\\.events: ENOSPC$`, 'm'));
    expect(run.out).not.toMatch(/^\s+at /m);
    // It stopped sending once its journal failed: not every row was fetched and written.
    const written = (await fs.readdir(path.join(scratch.dir, 'full-wd-dest', 'u'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && !e.parentPath.includes('.ferry-tmp'));
    expect(written.length).toBeGreaterThan(0);
    expect(written.length).toBeLessThan(2000);
  }, 60_000);
});
