// Types of what the tests use from report.mjs.
type Run = { tool: string; concurrency: number; seconds: number; cpuSeconds: number; expected: number };
type Scenario = { params: { expected: number }; runs: Run[] };

export type StartupRow = { tool: string; startupSeconds: number; startupCpu: number; objects: number; beyondPer1k: number };
export function startupSplit(results: { cpu?: Scenario; startup?: Scenario }): StartupRow[];
export function defaultJobsText(results: Record<string, { params?: { jobs?: unknown; loopBound?: number; defaultJobs?: Record<number, number> } } | undefined>): string;
export function planesText(rows: { tool: string; cpuPer1k: number; workerCpuPer1k?: number }[], bare: { cpuPer1k: number } | undefined): string;

export type SummaryRow = { tool: string; concurrency: number; reps: number; failed: { rep: number; why: string }[]; objectsPerSecond: number; cpuPer1k: number; peakRssMB: number };
export function summarize(runs: Run[], options?: { keepFailed?: boolean }): SummaryRow[];
export type Target = { what: string; value?: number; measured?: string; verdict: string; detail?: string };
export function targets(results: Record<string, unknown>): Target[];
export function markdown(results: Record<string, unknown>, options: { chartsPath: string; command: string; history?: string }): string;
