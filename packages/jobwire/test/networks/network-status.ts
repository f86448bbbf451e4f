/** Helpers the network tests share. */
import type { Client, NetworkStatus } from '@jobwire/client';
import { sleepUntil } from '../helpers.js';

/** The network's status once `done` says so; a timeout names the last status seen. */
export async function untilNetwork(client: Client, name: string, done: (status: NetworkStatus) => boolean, timeoutMs = 60_000): Promise<NetworkStatus> {
  let last: NetworkStatus | undefined;
  try {
    await sleepUntil(async () => done((last = await client.networkStatus(name))), timeoutMs, `network ${name}`);
  } catch (error) {
    throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last)}`);
  }
  return last!;
}
