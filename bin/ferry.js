#!/usr/bin/env node
// The one entry point. `ferry worker` runs the data plane; every other command is the
// control plane. The two never import each other: they meet only through protocol lines.
// `compile` and `replay` start a worker and the Parquet codec thread first, so that they
// load while the orchestrator's own modules do (orchestrator/early.ts).
const command = process.argv[2];
if (command === 'worker') {
  await import(new URL('../dist/worker/main.js', import.meta.url).href);
} else {
  (await import(new URL('../dist/orchestrator/early.js', import.meta.url).href)).startEarly(process.argv.slice(2));
  await import(new URL('../dist/orchestrator/main.js', import.meta.url).href);
}
