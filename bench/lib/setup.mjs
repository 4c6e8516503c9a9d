// The bench's own setup: Debian's nginx-light, its echo module and rclone, installed with
// apt-get when missing (root only; `apt-get update` once). Idempotent: nothing is run when
// they are present. A package's post-install must not leave a system nginx running, so
// while installing, a policy-rc.d refuses service starts (only if the machine has none).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { ECHO_MODULE } from './nginx.mjs';

const POLICY = '/usr/sbin/policy-rc.d';

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

export function toolsPresent() {
  return { nginx: existsSync('/usr/sbin/nginx') && existsSync(ECHO_MODULE), rclone: onPath('rclone') };
}

/** Installs what is missing; returns { nginx, rclone } (true when usable) and a note. */
export function ensureTools(log = () => {}) {
  const before = toolsPresent();
  if (before.nginx && before.rclone) return { ...before, note: 'already installed' };
  if (process.getuid?.() !== 0 || !onPath('apt-get')) return { ...before, note: 'missing, and not root with apt-get: not installed' };
  const packages = [...(before.nginx ? [] : ['nginx-light', 'libnginx-mod-http-echo']), ...(before.rclone ? [] : ['rclone'])];
  log(`installing ${packages.join(' ')} (apt-get)`);
  const ownPolicy = !existsSync(POLICY);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    if (ownPolicy) writeFileSync(POLICY, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    execFileSync('apt-get', ['update', '-qq'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  } catch (e) {
    log(`apt-get failed: ${e.message}`);
  } finally {
    if (ownPolicy) rmSync(POLICY, { force: true });
  }
  return { ...toolsPresent(), note: `installed ${packages.join(' ')}` };
}

/** Versions for BENCHMARKS.md. */
export function versions() {
  const first = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    // A command that cannot start (a broken install) prints nothing: say so rather than leave a blank.
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] || `unknown (${r.error?.code ?? `exit ${r.status}`})`;
  };
  return {
    node: process.version,
    rclone: onPath('rclone') ? first('rclone', ['version']).replace(/^rclone /, '') : 'not installed',
    nginx: existsSync('/usr/sbin/nginx') ? first('/usr/sbin/nginx', ['-v']).replace(/^nginx version: nginx\//, '') : 'not installed',
  };
}
