/**
 * The executor behaviour suite on the Slurm executor, against the real one-node test cluster
 * (test/slurm-env.ts): once with Slurm's commands on this machine (`slurm:`), once through the
 * test sshd as the login node (`slurm+ssh://`). The cluster's node is this machine, so the
 * suite's look at processes and files holds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalSubmitHost, slurmExecutor, SshSubmitHost } from '../../src/executors/slurm/index.js';
import { SshConnection } from '../../src/executors/ssh/index.js';
import { parseSshTarget } from '../../src/executors/ssh/url.js';
import { SLURM_CONF, SLURM_ENV, useTestSlurm } from '../slurm-env.js';
import { executorBehaviour } from './behaviour.js';
import { startSshd } from './sshd.js';


executorBehaviour('slurm', async () => {
  await useTestSlurm();
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-slurm-behaviour-'));
  const executor = await slurmExecutor({ host: new LocalSubmitHost({ env: SLURM_ENV }), jobsFolder: join(dir, 'jobs'), pollMs: 200 });
  return {
    executor,
    dir,
    dispose: async () => {
      executor.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

executorBehaviour('slurm+ssh', async () => {
  await useTestSlurm();
  const sshd = await startSshd({ env: { SLURM_CONF } });
  const connection = new SshConnection(parseSshTarget(`slurm+ssh://${sshd.user}@127.0.0.1:${sshd.port}`, { scheme: 'slurm+ssh:' }), { identityFiles: [sshd.identity], knownHostsFile: sshd.knownHosts, agent: false });
  const executor = await slurmExecutor({ host: new SshSubmitHost(connection), jobsFolder: join(sshd.dir, 'jobs'), pollMs: 200 });
  return {
    executor,
    dir: sshd.dir,
    dispose: async () => {
      executor.close();
      connection.close();
      await sshd.stop();
    },
  };
});
