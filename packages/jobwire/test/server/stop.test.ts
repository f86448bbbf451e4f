/**
 * A server stop does not wait for clients' keep-alive connections: one whose request was
 * answered after the stop began is closed by the server once it is idle (Node closes idle
 * connections only once, when the stop begins, and would otherwise keep this one for the
 * keep-alive timeout of 72 s — longer than this test may take). Nor does it wait for a client
 * waiting on a job (`GET /jobs/:id/wait`): the wait answers with the job as it is.
 */
import assert from 'node:assert/strict';
import { Agent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { API_PREFIX } from '@jobwire/client';
import { withServer } from '../helpers.js';

describe('server stop', () => {
  test('a keep-alive connection whose request is answered during the stop is closed by the server, and the stop finishes', { timeout: 40_000 }, async () => {
    await withServer(async (s) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        // An upload whose body is still coming when the stop begins: a request in progress.
        // `Expect: 100-continue` tells when the server has the request's headers (it is no
        // longer an idle connection the stop's first sweep would close).
        const upload: ClientRequest = request(`${s.url}${API_PREFIX}/uploads`, {
          method: 'POST',
          agent,
          headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/octet-stream', expect: '100-continue' },
        });
        const socket = new Promise<Socket>((resolve) => upload.once('socket', resolve));
        const answer = new Promise<IncomingMessage>((resolve, reject) => {
          upload.once('response', resolve);
          upload.once('error', reject);
        });
        await new Promise<void>((resolve) => upload.once('continue', resolve));

        const stopped = s.server.close();
        upload.end('uploaded during the stop\n');
        const res = await answer;
        const body = await new Promise<string>((resolve) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve(text));
        });
        assert.equal(res.statusCode, 201, body);
        assert.equal((JSON.parse(body) as { size: number }).size, 'uploaded during the stop\n'.length);
        // The answer kept the connection open: it is the client's idle keep-alive socket now,
        // which the client keeps for a next request (it never closes it itself).
        assert.equal(res.headers.connection, 'keep-alive');
        const sock = await socket;

        // The server closes it, and the stop then finishes.
        await new Promise<void>((resolve) => (sock.closed ? resolve() : sock.once('close', () => resolve())));
        const report = await stopped;
        assert.deepEqual(report.unsettled, []);
      } finally {
        agent.destroy();
      }
    });
  });

  test('a client waiting for a job to end is answered with the job as it is when the stop begins, and the stop finishes', { timeout: 40_000 }, async () => {
    await withServer(async (s) => {
      const job = await s.client.submitBatchJob({ executable: 'sleep', arguments: ['300'], queueName: 'unlimited' });
      await s.client.waitUntilRunning(job.id);
      // `Expect: 100-continue` tells when the server has the request (routed, not refused as
      // arriving during the stop).
      const waiting = request(`${s.url}${API_PREFIX}/jobs/${job.id}/wait?for=done&timeout=60000`, {
        headers: { authorization: `Bearer ${s.token}`, expect: '100-continue' },
      });
      const answer = new Promise<IncomingMessage>((resolve, reject) => {
        waiting.once('response', resolve);
        waiting.once('error', reject);
      });
      await new Promise<void>((resolve) => waiting.once('continue', resolve));
      waiting.end();
      const report = await s.server.close();
      const res = await answer;
      assert.equal(res.statusCode, 200);
      const text = await new Promise<string>((resolve) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      });
      const info = JSON.parse(text) as { id: string; status: string };
      assert.equal(info.id, job.id);
      assert.deepEqual(report.unsettled, []);
    });
  });

  test('a tap on a network pipe is cut when the stop begins (an error, not the pipe’s end), and the stop finishes', { timeout: 40_000 }, async () => {
    await withServer(async (s) => {
      await s.client.runNetwork({
        name: 'tapped',
        jobs: {
          src: { command: ['sh', '-c', 'echo one; exec sleep 300'], outputs: ['n'] },
          sink: { command: ['sh', '-c', 'exec cat > /dev/null'], inputs: ['n'] },
        },
        pipes: { n: { framing: 'lines' } },
      }, { baseDir: s.home });
      const tap = s.client.tapPipe('tapped', 'n')[Symbol.asyncIterator]();
      const first = await tap.next();
      assert.equal(first.done, false);
      const waiting = tap.next();
      const report = await s.server.close();
      assert.deepEqual(report.unsettled, []);
      await assert.rejects(waiting);
    });
  });
});
