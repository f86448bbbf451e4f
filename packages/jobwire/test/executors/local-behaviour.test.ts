/**
 * The executor behaviour suite on the local executor.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalExecutor } from '../../src/executors/index.js';
import { executorBehaviour } from './behaviour.js';

executorBehaviour('local', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-local-behaviour-'));
  return {
    executor: new LocalExecutor(),
    dir,
    dispose: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
