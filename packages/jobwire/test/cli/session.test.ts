import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { OrderedOutput } from '../../src/cli/session.js';

/** A stream that takes `delayMs` per write and records what it got. */
function slowSink(log: string[], name: string, delayMs: number, highWaterMark = 4): NodeJS.WriteStream {
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, done) {
      setTimeout(() => {
        log.push(`${name}:${chunk.toString()}`);
        done();
      }, delayMs);
    },
  });
  return sink as unknown as NodeJS.WriteStream;
}

describe('terminal output of an attachment', () => {
  it('keeps stdout and stderr in arrival order when one of them is slow', async () => {
    const log: string[] = [];
    const out = slowSink(log, 'out', 20, 1024);
    const err = slowSink(log, 'err', 0, 1024);
    const o = new OrderedOutput({ pause() {}, resume() {} });
    await o.write(out, Buffer.from('1'));
    await o.write(err, Buffer.from('2'));
    await o.write(out, Buffer.from('3'));
    await o.flush();
    assert.deepEqual(log, ['out:1', 'err:2', 'out:3']);
  });

  it('pauses the attachment while the local stream is full, and resumes after drain', async () => {
    const log: string[] = [];
    const flow: string[] = [];
    const out = slowSink(log, 'out', 5, 4);
    const o = new OrderedOutput({ pause: () => flow.push('pause'), resume: () => flow.push('resume') });
    await o.write(out, Buffer.from('12345678'));
    assert.deepEqual(flow, ['pause', 'resume']);
    await o.write(out, Buffer.from('9'));
    await o.flush();
    assert.deepEqual(log, ['out:12345678', 'out:9']);
  });
});
