// Types of what the tests use from report.mjs.
type Run = { tool: string; concurrency: number; seconds: number; cpuSeconds: number; expected: number };
type Scenario = { params: { expected: number }; runs: Run[] };

export type StartupRow = { tool: string; startupSeconds: number; startupCpu: number; objects: number; beyondPer1k: number };
export function startupSplit(results: { cpu?: Scenario; startup?: Scenario }): StartupRow[];
export function defaultJobsText(results: Record<string, { params?: { jobs?: unknown; loopBound?: number; defaultJobs?: Record<number, number> } } | undefined>): string;
export function planesText(rows: { tool: string; cpuPer1k: number; workerCpuPer1k?: number }[], bare: { cpuPer1k: number } | undefined): string;
