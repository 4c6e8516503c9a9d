import { spawn } from 'node:child_process';
import { hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { StorageError } from './adapter.js';
import { FileStore, InlineWrites, TEMP_STALE_MS } from './file.js';
import { writerTag } from './process.js';
import { WRITE_CHECK_MARKER, checkWrites } from './write-check.js';

/** A pid no process has: above the largest pid_max Linux allows (2^22). */
const DEAD = writerTag(4_194_305);
/** The writer tag of ferry before process spaces: the host name's alone. */
const HOST_ONLY = hash('sha256', hostname(), 'hex').slice(0, 8);

async function store() {
  return new FileStore(await mkdtemp(path.join(tmpdir(), 'ferry-file-')));
}
const opts = { contentType: 'image/jpeg', metadata: {}, ifAbsent: true };

describe('FileStore', () => {
  it('writes atomically, refuses to overwrite when asked, and leaves no temporary file', async () => {
    const s = await store();
    await s.put('u/ab/x.jpg', Buffer.from('one'), opts);
    await expect(s.put('u/ab/x.jpg', Buffer.from('two'), opts)).rejects.toMatchObject({ code: 'EXISTS' });
    expect(await readFile(path.join(s.root, 'u/ab/x.jpg'), 'utf8')).toBe('one');
    await s.put('u/ab/x.jpg', Buffer.from('three'), { ...opts, ifAbsent: false });
    expect(await readFile(path.join(s.root, 'u/ab/x.jpg'), 'utf8')).toBe('three');
    expect(await readdir(path.join(s.root, 'u/ab'))).toEqual(['x.jpg']);
  });

  it('stats, hashes, lists, reads and removes', async () => {
    const s = await store();
    await s.put('a/b.bin', Buffer.from('abc'), opts);
    expect(await s.stat('a/b.bin')).toMatchObject({ key: 'a/b.bin', size: 3 });
    expect(await s.stat('missing')).toBeNull();
    expect(await s.contentSha256('a/b.bin')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const keys = [];
    for await (const o of s.list('')) keys.push(o.key);
    expect(keys).toEqual(['a/b.bin']);
    const chunks: Buffer[] = [];
    for await (const c of (await s.read('a/b.bin')).body) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('abc');
    await s.remove('a/b.bin');
    expect(await s.stat('a/b.bin')).toBeNull();
  });

  it('refuses keys that escape the root', async () => {
    const s = await store();
    await expect(s.put('../x', Buffer.from('x'), opts)).rejects.toBeInstanceOf(StorageError);
    expect(() => s.uri('../../etc/passwd')).toThrow(StorageError);
  });

  it('lists a symlink to a file as that file, enters no symlinked folder, and lists a link that leads nowhere as unreadable', async () => {
    const s = await store();
    const elsewhere = await mkdtemp(path.join(tmpdir(), 'ferry-file-elsewhere-'));
    await writeFile(path.join(elsewhere, 'm.parquet'), 'abcd');
    await mkdir(path.join(elsewhere, 'dir'));
    await writeFile(path.join(elsewhere, 'dir', 'inner.parquet'), 'x');
    await symlink(path.join(elsewhere, 'm.parquet'), path.join(s.root, 'linked.parquet'));
    await symlink(path.join(elsewhere, 'dir'), path.join(s.root, 'linked-dir'));
    await symlink(path.join(elsewhere, 'gone'), path.join(s.root, 'dangling.parquet'));
    const found = [];
    for await (const o of s.list('')) found.push([o.key, o.size, o.unreadable]);
    expect(found.sort()).toEqual([
      ['dangling.parquet', 0, `a symbolic link to ${path.join(elsewhere, 'gone')}, which does not exist`],
      ['linked.parquet', 4, undefined],
    ]);
  });

  it("cleans a unit's temporary files, not those of a unit nested under it", async () => {
    const s = await store();
    const tmp = path.join(s.root, '.ferry-tmp');
    await mkdir(path.join(tmp, 'x', 'sub'), { recursive: true });
    await writeFile(path.join(tmp, 'x', `ab-killed.bin.${DEAD}-1.tmp`), 'left by a killed writer of x');
    await writeFile(path.join(tmp, 'x', 'sub', `cd-live.bin.${DEAD}-2.tmp`), 'being written for x/sub');
    await s.cleanup('x/');
    expect(await readdir(path.join(tmp, 'x'), { recursive: true })).toEqual(['sub', path.join('sub', `cd-live.bin.${DEAD}-2.tmp`)]);
    await s.cleanup('x/sub/');
    expect(await readdir(s.root)).toEqual([]); // every emptied folder went, up to the root's
  });

  it("keeps a live writer's temporary files (another run of the unit), and removes any stale one", async () => {
    const s = await store();
    const tmp = path.join(s.root, '.ferry-tmp', 'x');
    await mkdir(tmp, { recursive: true });
    const live = spawn('sleep', ['30'], { stdio: 'ignore' });
    // A killed writer not yet reaped: the child of a process that never waits for it.
    const parent = spawn('sh', ['-c', 'sleep 0 & exec sleep 30'], { stdio: 'ignore' });
    const zombie = await vi.waitFor(() => {
      const [pid] = readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, 'latin1').trim().split(' ').map(Number);
      expect(readFileSync(`/proc/${pid}/stat`, 'latin1')).toMatch(/\) Z /);
      return pid!;
    });
    try {
      const files = {
        live: `ab-a.bin.${writerTag(live.pid!)}-1.tmp`, // between its write and its link
        mine: `ab-b.bin.${writerTag(process.pid)}-2.tmp`,
        otherHost: 'ab-c.bin.00000000p1-3.tmp',
        dead: `ab-d.bin.${DEAD}-4.tmp`,
        staleLive: `ab-e.bin.${writerTag(live.pid!, null)}-5.tmp`, // a writer of unknown start
        staleOtherHost: 'ab-f.bin.00000000p1-6.tmp',
        reusedPid: `ab-g.bin.${writerTag(live.pid!, '1')}-7.tmp`, // a dead writer whose pid the sleep now has
        zombie: `ab-h.bin.${writerTag(zombie)}-8.tmp`,
        // Names of earlier versions, whose tag is of the host name alone: judged by pid here.
        earlierDead: `ab-i.bin.${HOST_ONLY}p4194305s5-9.tmp`,
        earlierLive: `ab-j.bin.${HOST_ONLY}p${live.pid}-a.tmp`,
        // Another PID namespace's (or boot's, or host's): its pid means nothing here.
        otherSpace: `ab-k.bin.0123456789abp4194305s5-b.tmp`,
      };
      for (const f of Object.values(files)) await writeFile(path.join(tmp, f), 'x');
      const old = new Date(Date.now() - TEMP_STALE_MS - 60_000);
      for (const f of [files.staleLive, files.staleOtherHost]) await utimes(path.join(tmp, f), old, old);
      await s.cleanup('x/');
      expect((await readdir(tmp)).sort()).toEqual([files.live, files.mine, files.otherHost, files.earlierLive, files.otherSpace].sort());
    } finally {
      live.kill();
      parent.kill();
    }
  });

  it("discards a key's partial writes that dead writers left, and nothing else", async () => {
    const s = await store();
    const tmp = path.join(s.root, '.ferry-tmp'); // `2024/b1.parquet` is written through `.ferry-tmp/2024-b1.parquet.<writer>-<n>.tmp`
    await mkdir(tmp, { recursive: true });
    const left = [`2024-b1.parquet.${DEAD}-0.tmp`, `2024-b1.parquet.${writerTag(4_194_306)}-1z.tmp`]; // two killed runs
    const kept = [`2024-b1.parquet.ledger.tsv.${DEAD}-1.tmp`, `2024-b12.parquet.${DEAD}-2.tmp`, '2024-b1.parquet.notes', `2024-b1.parquet.${writerTag(process.pid)}-3.tmp`];
    for (const f of [...left, ...kept]) await writeFile(path.join(tmp, f), 'x');
    await s.put('2024/b1.parquet', Buffer.from('renewed'), opts);
    await s.discardPartial('2024/b1.parquet');
    expect((await readdir(tmp)).sort()).toEqual([...kept].sort());
    expect(await readFile(path.join(s.root, '2024', 'b1.parquet'), 'utf8')).toBe('renewed');
    for (const f of kept) await rm(path.join(tmp, f));
    await s.discardPartial('2024/b1.parquet');
    await s.close();
    expect(await readdir(s.root)).toEqual(['2024']); // the emptied temporary folder went, at close
  });

  it("writes on after another run's cleanup removed its temporary folders as empty, buffer or stream", async () => {
    const s = await store();
    await s.put('u/ab/one.bin', Buffer.from('one'), opts); // its temporary folder is made, and remembered
    const other = new FileStore(s.root);
    await other.cleanup('u/'); // another run completing the unit: the folders are empty, and go
    await other.close();
    await expect(readdir(path.join(s.root, '.ferry-tmp'))).rejects.toMatchObject({ code: 'ENOENT' });
    await s.put('u/ab/two.bin', Buffer.from('two'), opts);
    await other.close();
    await s.put('u/ab/three.bin', Readable.from([Buffer.from('thr'), Buffer.from('ee')]), opts);
    expect(await readFile(path.join(s.root, 'u/ab/two.bin'), 'utf8')).toBe('two');
    expect(await readFile(path.join(s.root, 'u/ab/three.bin'), 'utf8')).toBe('three');
  });

  it('refuses a key whose shard folder is a symlink to nothing, or a loop, as taken, naming the link; it holds no object', async () => {
    const s = await store();
    await mkdir(path.join(s.root, 'u'));
    await symlink(path.join(s.root, 'nowhere'), path.join(s.root, 'u', '13'));
    await symlink(path.join(s.root, 'u', '14'), path.join(s.root, 'u', '14'));
    for (const [shard, to] of [['13', path.join(s.root, 'nowhere')], ['14', path.join(s.root, 'u', '14')]] as const) {
      const key = `u/${shard}/k.png`;
      for (const body of [Buffer.from('x'), Readable.from([Buffer.from('x')])]) {
        const refused = await s.put(key, body, opts).catch((e: unknown) => e);
        expect(refused).toMatchObject({ code: 'EXISTS', message: `${path.join(s.root, 'u', shard)}: a symbolic link that leads to no folder (to ${to}) stands where a folder should be (ENOTDIR)` });
      }
      expect(await s.stat(key)).toBeNull();
      expect(await s.contentSha256(key)).toBeNull();
      await expect(s.read(key)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    }
  });

  it('holds no object where a folder is: stat and read agree (a read failed later, with a bare EISDIR)', async () => {
    const s = await store();
    await mkdir(path.join(s.root, 'u', 'f.json'), { recursive: true });
    expect(await s.stat('u/f.json')).toBeNull();
    await expect(s.read('u/f.json')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('refuses a key whose path this file system cannot take as KEY_TOO_LONG, never a transient failure', async () => {
    const s = await store();
    const deep = path.join(s.root, ...Array.from({ length: 19 }, () => 'd'.repeat(200)), 'e'.repeat(150)); // ~4,000 bytes
    await mkdir(deep, { recursive: true });
    const long = new FileStore(deep);
    const key = `u/ab/${'i'.repeat(200)}.png`; // past Linux's 4,096-byte PATH_MAX; `u/ab/x.png` is not
    for (const body of [Buffer.from('x'), Readable.from([Buffer.from('x')])]) {
      const refused = await long.put(key, body, opts).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'KEY_TOO_LONG', message: expect.stringMatching(/^a path of \d+ bytes, or a name in it, too long for this file system \(ENAMETOOLONG\)/) });
    }
    await expect(long.put('u/ab/x.png', Buffer.from('x'), opts)).resolves.toMatchObject({});
  });

  it('takes keys whose names start with two dots (they stay inside)', async () => {
    const s = await store();
    await s.put('..notes.txt', Buffer.from('x'), opts);
    await s.put('a/..b', Buffer.from('y'), opts);
    expect((await s.stat('..notes.txt'))?.size).toBe(1);
    const keys: string[] = [];
    for await (const o of s.list('')) keys.push(o.key);
    expect(keys.sort()).toEqual(['..notes.txt', 'a/..b']);
  });

  it('gives file: URLs that round-trip through fileURLToPath', async () => {
    const s = await store();
    expect(s.uri('u/a%2Fb.jpg')).toBe(new URL('file://' + s.root + '/u/a%252Fb.jpg').href);
  });

  it('writes bodies past the inline limit through the thread pool, with the same semantics', async () => {
    const s = await store();
    const big = Buffer.alloc(InlineWrites.MAX_BYTES + 1, 1);
    const other = Buffer.alloc(InlineWrites.MAX_BYTES + 1, 2);
    await s.put('u/ab/big.bin', big, opts);
    expect(await s.put('u/ab/big.bin', big, opts)).toMatchObject({ existed: true });
    await expect(s.put('u/ab/big.bin', other, opts)).rejects.toMatchObject({ code: 'EXISTS' });
    await s.put('u/ab/big.bin', other, { ...opts, ifAbsent: false });
    expect((await readFile(path.join(s.root, 'u/ab/big.bin')).then((b) => b[0]))).toBe(2);
    expect(await readdir(path.join(s.root, '.ferry-tmp/u'))).toEqual([]);
    await s.close(); // its empty temporary folders go
    expect(await readdir(s.root)).toEqual(['u']);
  });
});

describe('FileStore and the write check', () => {
  it("removes the temporary file of a marker a check killed before its link left in .ferry-tmp/, and nobody else's", async () => {
    // A compile killed between the marker's temporary write and its rename, at the root of a
    // folder --out or --dest: the marker never landed, so no check found it, and its
    // temporary file stayed in <root>/.ferry-tmp/ for good (no unit's cleanup looks there).
    const s = await store();
    const now = Date.now();
    const temp = path.join(s.root, '.ferry-tmp');
    await mkdir(temp);
    const killed = `${WRITE_CHECK_MARKER}${DEAD}-${now}-0.${DEAD}-0.tmp`;
    const live = `${WRITE_CHECK_MARKER}${writerTag(process.pid)}-${now}-7.${writerTag(process.pid)}-9.tmp`; // this process's, under way
    const users = `${WRITE_CHECK_MARKER}notes.txt`;
    for (const name of [killed, live, users]) await writeFile(path.join(temp, name), 'ferry');
    await checkWrites(s);
    expect((await readdir(temp)).sort()).toEqual([live, users].sort());
    expect(await readdir(s.root)).toEqual(['.ferry-tmp']);
  });

  it('leaves no .ferry-tmp/ behind once the killed check\'s file is gone', async () => {
    const s = await store();
    const temp = path.join(s.root, '.ferry-tmp');
    await mkdir(temp);
    await writeFile(path.join(temp, `${WRITE_CHECK_MARKER}${DEAD}-${Date.now()}-0.${DEAD}-0.tmp`), 'ferry');
    await checkWrites(s);
    await s.close();
    expect(await readdir(s.root)).toEqual([]);
  });
});

describe('InlineWrites', () => {
  it('writes small bodies inline while the file system is fast', () => {
    const w = new InlineWrites();
    expect(w.use(20_000)).toBe(true);
    expect(w.use(InlineWrites.MAX_BYTES + 1)).toBe(false);
    for (let i = 0; i < 1000; i++) w.took(0.05);
    expect(w.use(20_000)).toBe(true);
  });

  it('keeps writing inline through the few slow writes of a preempted process', () => {
    const w = new InlineWrites();
    for (let i = 0; i < 10 * InlineWrites.WINDOW; i++) w.took(i % 16 === 0 ? 8 : i % 200 === 1 ? InlineWrites.STALL_MS + 5 : 0.03);
    expect(w.use(1)).toBe(true);
  });

  it('goes back to the thread pool for good after one hang, or a few stalls in a window', () => {
    const hung = new InlineWrites();
    hung.took(InlineWrites.HANG_MS + 1);
    expect(hung.use(1)).toBe(false);
    for (let i = 0; i < 100; i++) hung.took(0.01);
    expect(hung.use(1)).toBe(false);
    const stalled = new InlineWrites();
    for (let i = 0; i < InlineWrites.STALLS; i++) {
      expect(stalled.use(1)).toBe(true);
      stalled.took(InlineWrites.STALL_MS + 1);
      stalled.took(0.02);
    }
    expect(stalled.use(1)).toBe(false);
  });

  it('goes back to the thread pool once most writes of a window are slow', () => {
    const w = new InlineWrites();
    let n = 0;
    while (w.use(1) && n < 1000) {
      w.took(2);
      n++;
    }
    expect(w.use(1)).toBe(false);
    expect(n).toBe(InlineWrites.WINDOW / 2 + 1);
  });
});
