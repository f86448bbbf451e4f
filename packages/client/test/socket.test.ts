import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { WebSocket as UndiciWebSocket } from 'undici';
import { ConnectionError, UnauthorizedError, type JobwireError } from '../src/index.js';
import { wsUrl } from '../src/http.js';
import { browserSocketFactory } from '../src/socket.js';
import { TOKEN, authorized, freePort, json, startServer, type TestServer } from './helpers.js';

const servers: TestServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

/** Opens the events socket the way a browser does (undici's WebSocket stands in for the browser's) and returns the close error. */
function refusal(base: string, token: string): Promise<JobwireError | undefined> {
  const open = browserSocketFactory(UndiciWebSocket as unknown as typeof WebSocket);
  return new Promise((resolve) => {
    open(wsUrl(base, '/events'), { token, base }, { onOpen: () => undefined, onMessage: () => undefined, onClose: (_code, _reason, error) => resolve(error) });
  });
}

/** A server whose `/v1/whoami` answers like jobwire's (401 without the test token). */
function whoamiServer(upgrade?: Parameters<typeof startServer>[0]['upgrade']): Promise<TestServer> {
  return startServer({
    upgrade,
    http(req, res) {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== '/v1/whoami') return json(res, 404, { error: { code: 'not_found', message: 'no such route' } });
      if (!authorized(req, url)) return json(res, 401, { error: { code: 'unauthorized', message: 'invalid token' } });
      json(res, 200, { user: 'admin', admin: true });
    },
  });
}

describe('browser WebSocket: a refused upgrade, whose HTTP status browsers hide', () => {
  it('is an UnauthorizedError when /v1/whoami refuses the same token', async () => {
    const server = await whoamiServer();
    servers.push(server);
    const error = await refusal(server.url, 'revoked-token');
    assert.ok(error instanceof UnauthorizedError, `got ${String(error)}`);
  });

  it('stays a ConnectionError when the token is good (the upgrade failed for another reason)', async () => {
    const server = await whoamiServer(() => ({ status: 503, body: { error: { code: 'internal', message: 'busy' } } }));
    servers.push(server);
    const error = await refusal(server.url, TOKEN);
    assert.ok(error instanceof ConnectionError && !(error instanceof UnauthorizedError), `got ${String(error)}`);
  });

  it('is a ConnectionError no_server when nothing listens', async () => {
    const base = `http://127.0.0.1:${await freePort()}`;
    const error = await refusal(base, TOKEN);
    assert.ok(error instanceof ConnectionError, `got ${String(error)}`);
    assert.equal(error.code, 'no_server');
  });
});
