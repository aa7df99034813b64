#!/usr/bin/env node
// `npm run fuzz [-- --seed N] [-- --iterations N]`: the fuzz suite's long run. The same code as the short
// run in `npm test` (test/fuzz/fuzz.test.ts), with more requests and a seed from the command line, FUZZ_SEED,
// or a random one (printed, so a failure can be replayed). Every violation is printed with its request.
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { seed: { type: 'string' }, iterations: { type: 'string' }, help: { type: 'boolean' } } });
if (values.help) {
  console.log('usage: npm run fuzz [-- --seed N] [-- --iterations N]   (default: a random seed, 50000 requests)');
  process.exit(0);
}
const seed = values.seed ?? process.env.FUZZ_SEED ?? String(randomInt(1, 2 ** 31));
const iterations = values.iterations ?? process.env.FUZZ_ITERATIONS ?? '50000';
if (!/^\d+$/.test(seed) || !/^\d+$/.test(iterations)) {
  console.error('--seed and --iterations take whole numbers');
  process.exit(2);
}
console.log(`fuzz: seed ${seed}, ${iterations} requests (replay: npm run fuzz -- --seed ${seed} --iterations ${iterations})`);
const child = spawn('npx', ['vitest', 'run', 'test/fuzz/fuzz.test.ts', '--maxWorkers=1'], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_SEED: seed, FUZZ_ITERATIONS: iterations, FUZZ_REPORT: '1' },
});
child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
