/**
 * The SDK client of a `jobwire server` a benchmark started on `home`, once the server has
 * written its `server.json` (and the admin token is in `<home>/token`).
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@jobwire/client';

/** Waits up to 15 s for the server on `home` to say where it listens; throws if it does not. */
export async function clientOf(home: string): Promise<Client> {
  for (let i = 0; i < 300; i++) {
    try {
      const { url } = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string };
      return new Client({ url, token: readFileSync(join(home, 'token'), 'utf8').trim() });
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('the server did not start');
}
