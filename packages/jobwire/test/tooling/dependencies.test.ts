import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import Fastify from 'fastify';

describe('dependencies pinned for Node 20', () => {
  // cookie@2 (through fastify → light-my-request) wants Node >= 22; the root package.json
  // overrides it with cookie@1, whose API light-my-request uses the same way.
  it('fastify inject sends and reads cookies with the cookie version light-my-request resolves to', async () => {
    const lightMyRequest = createRequire(createRequire(import.meta.url).resolve('fastify')).resolve('light-my-request');
    const cookie = createRequire(lightMyRequest)('cookie/package.json') as { version: string; engines: { node: string } };
    assert.match(cookie.engines.node, /^>=(1\d|20)\b/, `cookie@${cookie.version} supports Node 20 (${cookie.engines.node})`);

    const app = Fastify();
    app.get('/', (req, reply) => reply.header('set-cookie', 'answer=42; Path=/').send(req.headers.cookie ?? ''));
    try {
      const res = await app.inject({ method: 'GET', url: '/', cookies: { session: 'a b', other: 'x' } });
      assert.equal(res.body, 'session=a%20b; other=x');
      assert.deepEqual(
        res.cookies.map((c) => [c.name, c.value]),
        [['answer', '42']],
      );
    } finally {
      await app.close();
    }
  });
});
