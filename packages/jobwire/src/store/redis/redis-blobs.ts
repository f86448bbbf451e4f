/**
 * The Redis store's {@link FileBlobs}: each file a string key written chunk by chunk (APPEND,
 * so a large upload is never held whole in the server's memory), each folder a hash of name →
 * key. Shared by every server and worker of the cluster: a worker reads a job's input files and
 * returns its output files through it.
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { BlobEntry, FileBlobs } from '../types.js';
import { blobTooLarge } from '../blob-limits.js';
import type { Keys } from './keys.js';

/** Blobs in Redis under the store's prefix. */
export class RedisBlobs implements FileBlobs {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async write(folder: string, name: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limit: number): Promise<number> {
    // Written under a fresh key, then named in the folder: a reader never sees half a file.
    const key = this.keys.blob(randomUUID());
    let size = 0;
    try {
      await this.redis.set(key, '');
      for await (const chunk of chunks) {
        size += chunk.byteLength;
        if (size > limit) throw blobTooLarge(name, limit);
        await this.redis.append(key, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      }
      const previous = await this.redis.hget(this.keys.blobFolder(folder), name);
      await this.redis.hset(this.keys.blobFolder(folder), name, key);
      if (previous !== null) await this.redis.unlink(previous);
      return size;
    } catch (err) {
      await this.redis.unlink(key).catch(() => undefined);
      throw err;
    }
  }

  async read(folder: string, name: string): Promise<Buffer | undefined> {
    let key = await this.redis.hget(this.keys.blobFolder(folder), name);
    // A write that replaces the file between the two calls names a new key, then unlinks the old
    // one: the old key gone while the folder names another is a replacement, read again (a
    // reader must see the old file or the new one, never none).
    for (let attempt = 0; key !== null && attempt < 10; attempt++) {
      const bytes = await this.redis.getBuffer(key);
      if (bytes !== null) return bytes;
      const now = await this.redis.hget(this.keys.blobFolder(folder), name);
      if (now === key) return undefined;
      key = now;
    }
    return undefined;
  }

  async list(folder: string): Promise<BlobEntry[]> {
    const all = await this.redis.hgetall(this.keys.blobFolder(folder));
    const entries: BlobEntry[] = [];
    for (const name of Object.keys(all).sort()) entries.push({ name, size: await this.redis.strlen(all[name]!) });
    return entries;
  }

  async remove(folder: string): Promise<void> {
    const all = await this.redis.hgetall(this.keys.blobFolder(folder));
    const keys = Object.values(all);
    if (keys.length > 0) await this.redis.unlink(...keys);
    await this.redis.unlink(this.keys.blobFolder(folder));
  }

  async removeFile(folder: string, name: string): Promise<void> {
    const key = await this.redis.hget(this.keys.blobFolder(folder), name);
    await this.redis.hdel(this.keys.blobFolder(folder), name);
    if (key !== null) await this.redis.unlink(key);
  }
}
