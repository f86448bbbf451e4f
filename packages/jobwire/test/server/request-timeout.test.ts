/**
 * The `timeout` error code is produced: a request whose headers never finish arriving is
 * answered, once node's headers timeout (60 s) runs out, with a 408 in the API's error shape —
 * which the SDK reads back as a TimeoutError. (This test waits that minute out.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TimeoutError, errorFromWire } from '@jobwire/client';
import { rawRequest, withServer } from '../helpers.js';

describe('requests that never finish arriving', () => {
  it('get 408 with code "timeout" (a TimeoutError to the SDK) when their headers do not arrive in time', async () => {
    await withServer(async (s) => {
      const res = await rawRequest(s.url, `GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}\r\n`, { timeoutMs: 120_000 });
      assert.equal(res.status, 408);
      const body = res.json as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'timeout');
      assert.ok(errorFromWire(body.error, res.status) instanceof TimeoutError);
    });
  });
});
