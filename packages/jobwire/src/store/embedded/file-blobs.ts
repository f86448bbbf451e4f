/**
 * The embedded store's {@link FileBlobs}: one folder on disk per blob folder, under the store's
 * own folder (private to the server's account), each name encoded so that no name reaches out.
 * @module
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import type { BlobEntry, FileBlobs } from '../types.js';
import { blobTooLarge } from '../blob-limits.js';

/** A name as one file name: `/`, `%` and `.` at the start are encoded. */
function encode(name: string): string {
  return encodeURIComponent(name).replace(/^\./, '%2E');
}

/** Blobs in files under `dir`. */
export class DiskBlobs implements FileBlobs {
  constructor(private readonly dir: string) {}

  private folder(folder: string): string {
    return join(this.dir, encode(folder));
  }

  async write(folder: string, name: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limit: number): Promise<number> {
    const dir = this.folder(folder);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, encode(name));
    const partial = `${file}.part-${process.pid}-${Date.now()}`;
    let size = 0;
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.byteLength;
        done(size > limit ? blobTooLarge(name, limit) : null, chunk);
      },
    });
    try {
      await pipeline(Readable.from(chunks), count, createWriteStream(partial, { mode: 0o600 }));
      await rename(partial, file);
      return size;
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
  }

  async read(folder: string, name: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.folder(folder), encode(name)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async list(folder: string): Promise<BlobEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.folder(folder));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const entries: BlobEntry[] = [];
    for (const encoded of names.filter((n) => !n.includes('.part-')).sort()) {
      entries.push({ name: decodeURIComponent(encoded), size: (await stat(join(this.folder(folder), encoded))).size });
    }
    return entries;
  }

  async remove(folder: string): Promise<void> {
    await rm(this.folder(folder), { recursive: true, force: true });
  }

  async removeFile(folder: string, name: string): Promise<void> {
    await rm(join(this.folder(folder), encode(name)), { force: true });
  }
}
