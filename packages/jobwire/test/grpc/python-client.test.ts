/**
 * A Python Xenon client (grpcio, stubs generated from jobwire's xenon.proto at test time, as a
 * PyXenon user would) against a server started with --work-dir: files in a temporary folder
 * outside the jobwire home, copy, list, a batch job run by a relative argument, an interactive
 * job. Needs Debian's python3-grpcio, python3-protobuf and protobuf-compiler-grpc (installed by
 * .ci/run); without them the test fails saying so.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { XENON_PROTO_PATH } from '../../src/grpc/proto.js';
import { FIXTURES, withServer } from '../helpers.js';

const PYTHON = '/usr/bin/python3';

/**
 * Runs a program the test needs (without blocking: the server runs in this process); a missing
 * one fails the test naming the package.
 */
async function need(file: string, args: string[], what: string): Promise<string> {
  try {
    return (await promisify(execFile)(file, args, { encoding: 'utf8' })).stdout;
  } catch (err) {
    const e = err as { code?: string; stderr?: string };
    throw new Error(`${what} (${file} ${args.join(' ')}: ${e.code === 'ENOENT' ? 'not installed' : (e.stderr ?? String(err))})`, { cause: err });
  }
}

describe('Xenon gRPC: a Python client', () => {
  it('reads and writes a file in a temporary folder, copies, lists, runs a relative script against --work-dir and an interactive job', async () => {
    const scratch = realpathSync(mkdtempSync(join(tmpdir(), 'jobwire-py-')));
    const stubs = join(scratch, 'stubs');
    const data = join(scratch, 'data');
    const workDir = join(scratch, 'work');
    try {
      await need(PYTHON, ['-c', 'import grpc, google.protobuf'], 'the Python client needs python3-grpcio and python3-protobuf (apt-get install python3-grpcio python3-protobuf)');
      for (const dir of [stubs, data]) mkdirSync(dir, { recursive: true });
      await need(
        'protoc',
        [`-I${dirname(XENON_PROTO_PATH)}`, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, '--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin', XENON_PROTO_PATH],
        'generating the Python stubs needs protoc and grpc_python_plugin (apt-get install protobuf-compiler protobuf-compiler-grpc)',
      );
      await withServer(
        async (s) => {
          const out = await need(PYTHON, [join(FIXTURES, 'xenon_client.py'), stubs, `127.0.0.1:${s.server.grpcPort}`, s.token, data], 'the Python client failed');
          const seen = JSON.parse(out) as Record<string, unknown>;
          assert.equal(seen.working_directory, workDir, "the admin's file system starts in the server's --work-dir");
          assert.equal(seen.read, 'hello from python\n');
          assert.equal(seen.copy_done, true);
          assert.equal(seen.copy_error, '');
          assert.equal(seen.copied, 'hello from python\n');
          assert.deepEqual(seen.listed, [join(data, 'copy.txt'), join(data, 'data.txt')]);
          assert.equal(readFileSync(join(data, 'copy.txt'), 'utf8'), 'hello from python\n', 'the copy is on the local disk');
          assert.equal(seen.batch_state, 'DONE');
          assert.equal(seen.batch_exit_code, 0);
          assert.equal(seen.batch_stdout, `script ran in ${workDir}\n`);
          assert.equal(seen.interactive_stdout, 'hi python\n');
          assert.equal(seen.interactive_stderr, 'note\n');
          assert.equal(seen.interactive_exit_code, 0);
        },
        { grpcPort: 0, workDir },
      );
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
