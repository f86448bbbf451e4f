import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CLI, makeCertificates, removeHome, tempHome, withServer } from '../helpers.js';
import { loadXenonProto } from '../../src/grpc/proto.js';
import { XenonClient, grpc, rejectsWith } from './xenon-client.js';

describe('Xenon gRPC: serving', () => {
  it('`jobwire server --grpc-port 0` prints "gRPC (Xenon) listening on HOST:PORT" and serves stock (token-less) clients when allowed', async () => {
    const home = tempHome();
    const proc = spawn(process.execPath, [CLI, 'server', '--port', '0', '--home', home, '--log-level', 'warn', '--grpc-port', '0', '--grpc-allow-anonymous-loopback'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    try {
      const address = await new Promise<string>((resolve, reject) => {
        let out = '';
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /gRPC \(Xenon\) listening on (127\.0\.0\.1:\d+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        proc.once('exit', () => reject(new Error(`server exited: ${out}`)));
      });
      const x = new XenonClient(address);
      try {
        assert.deepEqual((await x.sched('getAdaptorNames')).name, ['local']);
        const sched = await x.sched('localScheduler');
        const job = await x.sched('submitBatchJob', { scheduler: sched, description: { executable: 'true' } });
        assert.equal((await x.sched('waitUntilDone', { scheduler: sched, job, timeout: 0 })).exit_code, 0);
      } finally {
        x.close();
      }
    } finally {
      proc.kill('SIGTERM');
      await exited;
      removeHome(home);
    }
  });

  it('implements every RPC of SchedulerService and FileSystemService (none answers "not implemented")', async () => {
    await withServer(
      async (s) => {
        const x = new XenonClient(`127.0.0.1:${s.server.grpcPort}`, { token: s.token });
        const xenon = loadXenonProto();
        try {
          for (const [client, service] of [['scheduler', xenon.SchedulerService.service], ['files', xenon.FileSystemService.service]] as const) {
            const names = Object.keys(service);
            assert.ok(names.length >= 26, `${names.length} RPCs`);
            for (const name of names) {
              const def = service[name]!;
              if (def.requestStream || def.responseStream) continue; // the streaming RPCs have their own tests
              const answer = await (client === 'scheduler' ? x.sched(name, {}) : x.fs(name, {})).then(
                () => 'ok',
                (err: grpc.ServiceError) => `${grpc.status[err.code]}: ${err.details}`,
              );
              assert.doesNotMatch(answer, /^UNIMPLEMENTED: .*(not implement|unimplemented)/i, `${client}.${name}`);
            }
          }
        } finally {
          x.close();
        }
      },
      { grpcPort: 0 },
    );
  });

  it('refuses --grpc-* options without --grpc-port, and a certificate without its key', async () => {
    const run = (args: string[]): { code: number | null; stderr: string } => {
      try {
        execFileSync(process.execPath, [CLI, 'server', '--port', '0', ...args], { stdio: 'pipe', timeout: 15_000 });
        return { code: 0, stderr: '' };
      } catch (err) {
        const e = err as { status: number | null; stderr: Buffer };
        return { code: e.status, stderr: e.stderr.toString() };
      }
    };
    const noPort = run(['--grpc-allow-anonymous-loopback']);
    assert.equal(noPort.code, 2);
    assert.match(noPort.stderr, /--grpc-port/);
    const noKey = run(['--grpc-port', '0', '--grpc-cert', '/nonexistent.crt']);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /--grpc-key/);
  });

  it('serves TLS with a certificate and key, and mutual TLS when given a CA', async () => {
    const dir = tempHome('jobwire-tls-');
    try {
      // Never skipped: without openssl this throws and says what to install.
      const certs = makeCertificates(dir);
      const ca = readFileSync(certs.ca);
      // The certificate names localhost; the test dials 127.0.0.1.
      const channelOptions = { 'grpc.ssl_target_name_override': 'localhost' };
      await withServer(
        async (s) => {
          const address = `127.0.0.1:${s.server.grpcPort}`;
          const tls = new XenonClient(address, { token: s.token, credentials: grpc.credentials.createSsl(ca), channelOptions });
          const plain = new XenonClient(address, { token: s.token });
          try {
            assert.deepEqual((await tls.sched('getAdaptorNames')).name, ['local']);
            await rejectsWith(plain.sched('getAdaptorNames'), grpc.status.UNAVAILABLE);
          } finally {
            tls.close();
            plain.close();
          }
        },
        { grpcPort: 0, grpcTls: { cert: certs.cert, key: certs.key } },
      );
      await withServer(
        async (s) => {
          const address = `127.0.0.1:${s.server.grpcPort}`;
          const withCert = new XenonClient(address, { token: s.token, credentials: grpc.credentials.createSsl(ca, readFileSync(certs.clientKey), readFileSync(certs.clientCert)), channelOptions });
          const withoutCert = new XenonClient(address, { token: s.token, credentials: grpc.credentials.createSsl(ca), channelOptions });
          try {
            assert.deepEqual((await withCert.fs('getAdaptorNames')).name, ['file']);
            await rejectsWith(withoutCert.fs('getAdaptorNames'), grpc.status.UNAVAILABLE);
          } finally {
            withCert.close();
            withoutCert.close();
          }
        },
        { grpcPort: 0, grpcTls: { cert: certs.cert, key: certs.key, ca: certs.ca } },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
