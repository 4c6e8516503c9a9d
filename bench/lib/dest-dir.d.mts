// Types of what the tests use from dest-dir.mjs.
export function defaultDestDir(workDir: string, neededBytes?: number, shm?: string): { dir: string; why: string };
export function runDirBytes(corpus: { files: { bytes: number }[] }): number;
export function fsType(dir: string): string;
