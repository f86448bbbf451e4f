/**
 * The ssh executor and the shared SSH connection other executors (`slurm+ssh`) and the sftp
 * file adaptor build on.
 * @module
 */
export { SshExecutor, SSH_QUEUES, type SshExecutorOptions } from './ssh-executor.js';
export { SshConnection, SshConnectError, shellQuote, type ConnectionState, type ExecOptions, type RunResult, type SshAuthOptions, type SshConnectionOptions } from './connection.js';
export { HostKeyError, fingerprint } from './known-hosts.js';
export { parseSshTarget, targetText, type SshTarget } from './url.js';
