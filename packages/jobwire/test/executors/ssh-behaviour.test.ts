/**
 * The executor behaviour suite on the ssh executor, against a real sshd on 127.0.0.1.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SshExecutor } from '../../src/executors/ssh/index.js';
import { executorBehaviour } from './behaviour.js';
import { startSshd } from './sshd.js';

executorBehaviour('ssh', async () => {
  const sshd = await startSshd();
  const jobsFolder = join(sshd.dir, 'jobs');
  mkdirSync(jobsFolder);
  const executor = new SshExecutor(sshd.url, { identityFiles: [sshd.identity], knownHostsFile: sshd.knownHosts, agent: false, jobsFolder });
  return {
    executor,
    dir: sshd.dir,
    dispose: async () => {
      executor.close();
      await sshd.stop();
    },
  };
});
