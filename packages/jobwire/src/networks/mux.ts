/**
 * The multiplexed byte stream between a network's server side and `fifo-host.ts`, the wrapper
 * that gives an executable its named pipes: several ports over one stdin (inputs) or one stdout
 * (outputs). A record is a u8 port, a u32 big-endian length and that many bytes; a length of 0
 * ends its port.
 * @module
 */

/** Bytes before a record's data. */
export const MUX_HEADER_BYTES = 5;

/** Largest data of one record (bigger data is cut into several). */
export const MUX_MAX_DATA = 1024 * 1024;

/** One record (`data` empty: the port ends). */
export function muxRecord(port: number, data: Uint8Array): Buffer {
  const record = Buffer.allocUnsafe(MUX_HEADER_BYTES + data.byteLength);
  record.writeUInt8(port, 0);
  record.writeUInt32BE(data.byteLength, 1);
  record.set(data, MUX_HEADER_BYTES);
  return record;
}

/** Records for `data` on `port`, cut to {@link MUX_MAX_DATA}; none for empty data (that would end the port). */
export function muxData(port: number, data: Uint8Array): Buffer[] {
  const records: Buffer[] = [];
  for (let at = 0; at < data.byteLength; at += MUX_MAX_DATA) records.push(muxRecord(port, data.subarray(at, at + MUX_MAX_DATA)));
  return records;
}

/** Cuts a multiplexed stream back into records, whatever the pieces it arrives in. */
export class Demux {
  #pending: Buffer = Buffer.alloc(0);

  /** Bytes in; the records they complete (`data` empty: the port ended). */
  push(bytes: Uint8Array): Array<{ port: number; data: Buffer }> {
    const buffer = this.#pending.byteLength === 0 ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : Buffer.concat([this.#pending, bytes]);
    const records: Array<{ port: number; data: Buffer }> = [];
    let at = 0;
    while (buffer.byteLength - at >= MUX_HEADER_BYTES) {
      const length = buffer.readUInt32BE(at + 1);
      if (length > MUX_MAX_DATA) throw new Error(`multiplexed stream corrupt: a record of ${length} bytes`);
      if (buffer.byteLength - at < MUX_HEADER_BYTES + length) break;
      records.push({ port: buffer.readUInt8(at), data: Buffer.from(buffer.subarray(at + MUX_HEADER_BYTES, at + MUX_HEADER_BYTES + length)) });
      at += MUX_HEADER_BYTES + length;
    }
    this.#pending = Buffer.from(buffer.subarray(at));
    return records;
  }
}
