// Where the bench's runs write their destinations, --out and journals (--dest-dir's default).
import { spawnSync } from 'node:child_process';
import { existsSync, statfsSync } from 'node:fs';

/**
 * Where runs write (destination folder, --out, journals): tmpfs when there is one with room
 * for a run (`neededBytes`, runDirBytes), else `workDir`. On these VMs' ext4 root disk,
 * creating a small file costs 0.4–1 ms of kernel CPU, varying from run to run (measured: the
 * same rclone copy 1.35 s of system time to /dev/shm, 21.5 s to ext4), which would bury the
 * tools' own per-object costs; but a /dev/shm too small for the corpus (a container's is 64 MB)
 * would fail every run. `--dest-dir` chooses another place. Returns { dir, why }.
 */
export function defaultDestDir(workDir, neededBytes = 0, shm = '/dev/shm') {
  if (!existsSync(shm) || fsType(shm) !== 'tmpfs') return { dir: workDir, why: `${shm} is not a tmpfs` };
  const { bavail, bsize } = statfsSync(shm);
  const free = bavail * bsize;
  if (free < neededBytes) return { dir: workDir, why: `${shm} has ${mib(free)} free, a run needs ${mib(neededBytes)}` };
  return { dir: shm, why: `${shm} is a tmpfs with ${mib(free)} free` };
}

const mib = (bytes) => `${Math.round(bytes / 2 ** 20).toLocaleString('en')} MiB`;

/**
 * What one run may write at most: every object of the corpus (tmpfs keeps a file in whole
 * pages), and room for ferry's renewed Parquet, journals and ledgers (small beside them).
 */
export function runDirBytes(corpus) {
  const pages = corpus.files.reduce((a, f) => a + Math.ceil(f.bytes / 4096) * 4096, 0);
  return Math.ceil(pages * 1.25) + 64 * 2 ** 20;
}

export function fsType(dir) {
  return spawnSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).stdout?.trim() || 'unknown';
}
