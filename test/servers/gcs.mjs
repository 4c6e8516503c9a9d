// A local GCS for tests: firebase-tools' Storage emulator, which speaks the JSON API that
// @google-cloud/storage uses, started from Node without the firebase CLI (the CLI wants
// Java and a download; FACTS.md, "Local servers that work offline"). Listens on 127.0.0.1
// port 0, prints `PORT <n>` on stdout once listening, and exits when stdin ends (a dead
// test runner must not leave it behind) or on SIGTERM/SIGINT.
//
// Offline: its constructor only builds objects; `start()`, which launches the Java rules
// runtime, is skipped. The functions emulator is not registered, so finalize events are
// never posted anywhere. Blobs go to a fresh temporary folder, removed at exit, so
// concurrent emulators never share files.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const PROJECT_ID = 'ferry-test';

// The emulator writes blobs under os.tmpdir(): point that at a folder of our own first.
const blobRoot = mkdtempSync(join(tmpdir(), 'ferry-gcs-'));
process.env.TMPDIR = blobRoot;

const { StorageEmulator } = require('firebase-tools/lib/emulator/storage/index.js');
const { createApp } = require('firebase-tools/lib/emulator/storage/server.js');
const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry.js');

const emulator = new StorageEmulator({ projectId: PROJECT_ID, host: '127.0.0.1', port: 0, rules: [] });
const app = await createApp(PROJECT_ID, emulator);

const sockets = new Set();
const server = app.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  // The emulator builds the URLs it hands out (resumable session URIs) from the registry.
  emulator.args.port = port;
  EmulatorRegistry.set('storage', emulator);
  process.stdout.write(`PORT ${port}\n`);
});
server.on('connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  for (const s of sockets) s.destroy();
  server.close(() => {
    rmSync(blobRoot, { recursive: true, force: true });
    process.exit(0);
  });
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
