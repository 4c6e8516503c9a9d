// Preloaded into every node process of a profiled ferry run (`NODE_OPTIONS=--import=<this>`,
// because NODE_OPTIONS refuses --cpu-prof): in ferry's processes (the orchestrator and its
// workers), starts V8's sampling profiler and writes a .cpuprofile into FERRY_BENCH_PROF_DIR
// at exit — what `node --cpu-prof` would write. In-thread inspector calls complete
// synchronously, so the profile can be taken in the 'exit' handler.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.FERRY_BENCH_PROF_DIR;
const role = process.argv[2] === 'worker' ? 'worker' : /ferry\.js$/.test(process.argv[1] ?? '') ? 'orchestrator' : null;
if (dir && role) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  process.on('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `${role}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
