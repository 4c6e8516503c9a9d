// Runs one tool as a measured process: wall time, client CPU and peak RSS of its whole
// process tree (FACTS.md: `/usr/bin/time`'s %M is one process only, and ferry is an
// orchestrator plus worker processes).
//
// - CPU: the growth of this process's `cutime + cstime` (/proc/self/stat) across the run,
//   i.e. the rusage of the tool and of every descendant it waited for. Servers started by
//   the bench (nginx, fauxqs) are children too, but they are reaped only after the window
//   closes, so their CPU is excluded. Nothing else may exit meanwhile: runs are sequential.
// - RSS: every ~50 ms, the resident pages of every process in the tool's process group or
//   below its pid (/proc/<pid>/stat, field 24), summed; the peak of those sums, or, where
//   larger, the largest high-water mark of one process (VmHWM, the kernel's own: a spike
//   between two samples is not missed, which matters most for a tool of one process, as
//   /usr/bin/time's %M would not miss it). Shared pages (the node binary, libraries) count
//   once per process, as `ps` would.
// - Workers: for ferry, the CPU of its `ferry worker` processes (their last samples, or what
//   the orchestrator had reaped of them, whichever is more), the rest being its orchestrator.
// - Background: the machine's busy CPU (/proc/stat) minus the tool's, over the run — the
//   origin, fauxqs, the sampler and whatever else shares the machine (it is shared).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'node:timers';

const PAGE = 4096;
const TICKS = 100; // USER_HZ, `getconf CLK_TCK`

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces). */
function statFields(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU ticks the whole machine spent busy (every core; idle and iowait left out). */
function machineBusyTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return f.reduce((a, b) => a + b, 0) - f[3] - f[4];
}

/** A process's resident high-water mark in bytes (VmHWM), or 0 once it is gone. */
function highWaterMark(pid) {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

function childrenTicks() {
  const f = statFields('self');
  return Number(f[13]) + Number(f[14]);
}

function childrenSysTicks() {
  return Number(statFields('self')[14]);
}

/** Which ferry program a process runs, from its command line (node, bin/ferry.js, command, …), or null. */
function ferryCommand(pid) {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return /ferry\.js$/.test(argv[1] ?? '') ? argv[2] : null;
  } catch {
    return null;
  }
}

/** The processes of `root`'s group or tree: pid → { rss bytes, cpu ticks }. */
export function treeOf(root) {
  const all = new Map();
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) > 57) continue;
    const f = statFields(name);
    if (!f) continue;
    all.set(Number(name), { ppid: Number(f[1]), pgrp: Number(f[2]), ticks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]), rss: Number(f[21]) * PAGE });
  }
  const members = new Map();
  const isMember = (pid, depth = 0) => {
    if (members.has(pid)) return true;
    const p = all.get(pid);
    if (!p || depth > 64) return false;
    if (pid === root || p.pgrp === root || isMember(p.ppid, depth + 1)) {
      members.set(pid, p);
      return true;
    }
    return false;
  };
  for (const pid of all.keys()) isMember(pid);
  return members;
}

/**
 * Spawns `cmd args` in its own process group and resolves once it exits:
 * { seconds, cpuSeconds, sysSeconds, otherCpuSeconds, sampledCpuSeconds, workerCpuSeconds, peakRssBytes, processes, code, signal, stdout, stderr, timedOut }.
 */
export function runMeasured(cmd, args, { env = process.env, cwd, timeoutMs = 30 * 60_000, intervalMs = 50 } = {}) {
  return new Promise((resolve, reject) => {
    const ticks0 = childrenTicks();
    const sys0 = childrenSysTicks();
    const busy0 = machineBusyTicks();
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (s, d) => (s + d).slice(-200_000);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout = keep(stdout, d)));
    child.stderr.on('data', (d) => (stderr = keep(stderr, d)));
    let peak = 0;
    const seen = new Map();
    const workers = new Set();
    let rootChildTicks = 0;
    const sample = () => {
      let sum = 0;
      for (const [pid, p] of treeOf(child.pid)) {
        sum += p.rss;
        const hwm = highWaterMark(pid);
        if (hwm > peak) peak = hwm;
        // Asked again until it answers: a process seen between its fork and its exec still shows its parent's command line.
        if (!workers.has(pid) && ferryCommand(pid) === 'worker') workers.add(pid);
        seen.set(pid, p.ticks);
        // The orchestrator's reaped children are its workers.
        if (pid === child.pid && ferryCommand(pid) === 'compile') rootChildTicks = p.childTicks;
      }
      if (sum > peak) peak = sum;
    };
    const sampler = setInterval(sample, intervalMs);
    let timedOut = false;
    const killer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, timeoutMs);
    child.once('error', (e) => {
      clearInterval(sampler);
      clearTimeout(killer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      const seconds = (performance.now() - t0) / 1000;
      clearInterval(sampler);
      clearTimeout(killer);
      const cpuSeconds = (childrenTicks() - ticks0) / TICKS;
      const sysSeconds = (childrenSysTicks() - sys0) / TICKS;
      // Everything else the machine ran meanwhile: the origin, fauxqs, this sampler, other users.
      const otherCpuSeconds = Math.max(0, (machineBusyTicks() - busy0) / TICKS - cpuSeconds);
      const sampledCpuSeconds = [...seen.values()].reduce((a, b) => a + b, 0) / TICKS;
      // ferry's data plane apart from its control plane: two lower bounds of the workers' CPU,
      // their last samples and what the orchestrator had reaped of them by its last sample.
      const workerTicks = [...workers].reduce((a, pid) => a + seen.get(pid), 0);
      const workerCpuSeconds = workers.size ? Math.min(cpuSeconds, Math.max(workerTicks, rootChildTicks) / TICKS) : undefined;
      resolve({ seconds, cpuSeconds, sysSeconds, otherCpuSeconds, sampledCpuSeconds, workerCpuSeconds, peakRssBytes: peak, processes: seen.size, code, signal, stdout, stderr, timedOut });
    });
    sample();
  });
}

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
