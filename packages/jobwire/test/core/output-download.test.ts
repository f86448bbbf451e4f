/**
 * `GET /v1/jobs/:id/output` on a large output: the whole download is byte-exact, and Range
 * requests (single ranges, suffixes, past the end) answer the right bytes and headers.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { withServer } from '../helpers.js';

/** 40 MiB and an odd tail, so no chunk boundary lines up with the end. */
const SIZE = 40 * 1024 * 1024 + 12_345;
const KEY = Buffer.alloc(16, 7);
const IV = Buffer.alloc(16, 0);

/** A job that writes SIZE pseudo-random bytes (AES-CTR of zeros) to stdout, with stderr lines between. */
const GENERATOR = `
const cipher = require('node:crypto').createCipheriv('aes-128-ctr', Buffer.from('${KEY.toString('hex')}', 'hex'), Buffer.alloc(16, 0));
let left = ${SIZE};
const go = () => {
  while (left > 0) {
    const n = Math.min(1 << 20, left);
    left -= n;
    if (left % (4 << 20) < n) process.stderr.write('left ' + left + '\\n');
    if (!process.stdout.write(cipher.update(Buffer.alloc(n)))) return process.stdout.once('drain', go);
  }
};
go();
`;

function expectedBytes(): Buffer {
  return createCipheriv('aes-128-ctr', KEY, IV).update(Buffer.alloc(SIZE));
}

describe('output download', () => {
  it('serves a large output byte-exact, whole and by HTTP Range requests', async () => {
    await withServer(async ({ client, url, token }) => {
      const job = await client.submitBatchJob({ executable: process.execPath, arguments: ['-e', GENERATOR], queueName: 'unlimited' });
      const done = await client.waitUntilDone(job.id, 120_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      const expected = expectedBytes();
      const output = `${url}/v1/jobs/${job.id}/output`;
      const get = (query = '', headers: Record<string, string> = {}, method = 'GET'): Promise<Response> =>
        fetch(output + query, { method, headers: { authorization: `Bearer ${token}`, ...headers } });

      // The whole stream, hashed as it arrives.
      const whole = await get();
      assert.equal(whole.status, 200);
      assert.equal(whole.headers.get('accept-ranges'), 'bytes');
      assert.equal(whole.headers.get('content-length'), String(SIZE));
      assert.equal(whole.headers.get('x-jobwire-size'), String(SIZE));
      assert.equal(whole.headers.get('x-jobwire-complete'), 'true');
      const hash = createHash('sha256');
      let received = 0;
      for await (const part of whole.body!) {
        hash.update(part);
        received += part.byteLength;
      }
      assert.equal(received, SIZE);
      assert.equal(hash.digest('hex'), createHash('sha256').update(expected).digest('hex'));

      const bytesOf = async (response: Response): Promise<Buffer> => Buffer.from(await response.arrayBuffer());
      const ranged = async (range: string, start: number, end: number, query = '', selection = SIZE): Promise<void> => {
        const response = await get(query, { range });
        assert.equal(response.status, 206, range);
        assert.equal(response.headers.get('content-range'), `bytes ${start}-${end - 1}/${selection}`, range);
        assert.equal(response.headers.get('content-length'), String(end - start), range);
        const offset = query === '' ? 0 : Number(new URLSearchParams(query.slice(1)).get('from'));
        assert.ok((await bytesOf(response)).equals(expected.subarray(offset + start, offset + end)), `bytes of ${range} ${query}`);
      };
      const chunk = 256 * 1024;
      await ranged(`bytes=${chunk - 3}-${3 * chunk + 4}`, chunk - 3, 3 * chunk + 5);
      await ranged('bytes=0-0', 0, 1);
      await ranged(`bytes=${SIZE - 100_000}-`, SIZE - 100_000, SIZE);
      await ranged('bytes=-70000', SIZE - 70_000, SIZE);
      await ranged(`bytes=-${SIZE * 2}`, 0, SIZE);
      await ranged(`bytes=${SIZE - 10}-${SIZE * 3}`, SIZE - 10, SIZE);
      // A range picks from what from/to selected.
      await ranged('bytes=100-199', 100, 200, '?from=1000000&to=2000000', 1_000_000);

      for (const range of [`bytes=${SIZE}-`, `bytes=${SIZE + 5}-${SIZE + 10}`, 'bytes=-0']) {
        const refused = await get('', { range });
        assert.equal(refused.status, 416, range);
        assert.equal(refused.headers.get('content-range'), `bytes */${SIZE}`);
        const body = (await refused.json()) as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'range_not_satisfiable');
        assert.match(body.error.message, /byte/);
      }
      const pastSelection = await get('?from=10&to=20', { range: 'bytes=10-' });
      assert.equal(pastSelection.status, 416);
      assert.equal(pastSelection.headers.get('content-range'), 'bytes */10');
      await pastSelection.arrayBuffer();

      // Ranges we do not serve are ignored: the whole selection, 200.
      for (const range of ['bytes=0-1,5-6', 'items=0-5', 'bytes=9-3', 'bytes=x-']) {
        const ignored = await get('?to=64', { range });
        assert.equal(ignored.status, 200, range);
        assert.ok((await bytesOf(ignored)).equals(expected.subarray(0, 64)), range);
      }
      const withIfRange = await get('?to=64', { range: 'bytes=0-9', 'if-range': '"x"' });
      assert.equal(withIfRange.status, 200);
      assert.equal((await bytesOf(withIfRange)).byteLength, 64);

      // HEAD gives the headers GET would, and no body.
      const head = await get('', { range: 'bytes=10-19' }, 'HEAD');
      assert.equal(head.status, 206);
      assert.equal(head.headers.get('content-length'), '10');
      assert.equal((await head.arrayBuffer()).byteLength, 0);

      // from/to keep working, through the SDK too; stderr is its own stream.
      const part = await client.readOutput(job.id, 'stdout', 5_000_000, 5_000_100);
      assert.ok(Buffer.from(part.data).equals(expected.subarray(5_000_000, 5_000_100)));
      assert.equal(part.size, SIZE);
      const stderr = Buffer.from((await client.readOutput(job.id, 'stderr')).data).toString();
      assert.match(stderr, /^left \d+\n/);
      assert.match(stderr, /left 0\n$/);
    });
  });
});
