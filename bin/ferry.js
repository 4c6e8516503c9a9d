#!/usr/bin/env node
// The one entry point. `ferry worker` runs the data plane; every other command is the
// control plane. The two never import each other: they meet only through protocol lines.
const entry = process.argv[2] === 'worker' ? '../dist/worker/main.js' : '../dist/orchestrator/main.js';
await import(new URL(entry, import.meta.url).href);
