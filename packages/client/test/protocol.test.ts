import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRequestError, JobwireError } from '../src/index.js';
import {
  FrameError,
  Tag,
  decodeFrame,
  encodeClose,
  encodeError,
  encodeFlow,
  encodeHello,
  encodeOutput,
  encodeResize,
  encodeStatus,
  encodeStdin,
  encodeStdinAck,
  OUTPUT_HEADER,
  writeOutputHeader,
  type HelloFrame,
  type StatusFrame,
} from '../src/protocol.js';

function encodeJsonFrame(tag: number, json: string): Uint8Array {
  return new Uint8Array([tag, ...new TextEncoder().encode(json)]);
}

const BIG = 2 ** 40 + 12345; // above 2^32: needs the high 16 bits of the u48
const MAX_U48 = 2 ** 48 - 1;

describe('attach protocol frames', () => {
  it('round-trips STDIN with offsets above 2^32', () => {
    const data = new Uint8Array([0, 1, 2, 255]);
    const frame = decodeFrame(encodeStdin(BIG, data));
    assert.equal(frame.tag, Tag.STDIN);
    assert.ok(frame.tag === Tag.STDIN);
    assert.equal(frame.offset, BIG);
    assert.deepEqual([...frame.data], [...data]);
  });

  it('writeOutputHeader makes the frame encodeOutput makes, in a buffer the caller fills (and refuses one too short for it)', () => {
    const data = new TextEncoder().encode('one frame of two chunks');
    const frame = new Uint8Array(OUTPUT_HEADER + data.byteLength).fill(0xee);
    writeOutputHeader(frame, 'stderr', MAX_U48, BIG);
    frame.set(data.subarray(0, 4), OUTPUT_HEADER);
    frame.set(data.subarray(4), OUTPUT_HEADER + 4);
    assert.deepEqual([...frame], [...encodeOutput('stderr', MAX_U48, BIG, data)]);
    assert.throws(() => writeOutputHeader(new Uint8Array(OUTPUT_HEADER - 1), 'stdout', 0, 0), RangeError);
  });

  for (const channel of ['stdout', 'stderr'] as const) {
    it(`round-trips ${channel.toUpperCase()} with pos and offset up to 2^48-1`, () => {
      const data = new TextEncoder().encode('héllo\0');
      const frame = decodeFrame(encodeOutput(channel, MAX_U48, BIG, data));
      assert.equal(frame.tag, channel === 'stdout' ? Tag.STDOUT : Tag.STDERR);
      assert.ok(frame.tag === Tag.STDOUT || frame.tag === Tag.STDERR);
      assert.equal(frame.pos, MAX_U48);
      assert.equal(frame.offset, BIG);
      assert.deepEqual([...frame.data], [...data]);
    });
  }

  it('round-trips an empty output frame', () => {
    const frame = decodeFrame(encodeOutput('stdout', 0, 0, new Uint8Array(0)));
    assert.ok(frame.tag === Tag.STDOUT);
    assert.equal(frame.data.byteLength, 0);
  });

  it('round-trips STATUS, final or not', () => {
    for (const status of [
      { status: 'Running', exitCode: null, signal: null, error: null, final: false, progress: 'half way' },
      { status: 'Failed', exitCode: 3, signal: null, error: 'boom', final: true },
    ] satisfies StatusFrame[]) {
      const frame = decodeFrame(encodeStatus(status));
      assert.ok(frame.tag === Tag.STATUS);
      assert.deepEqual(frame.status, status);
    }
  });

  it('round-trips RESIZE', () => {
    const frame = decodeFrame(encodeResize(65535, 1));
    assert.deepEqual(frame, { tag: Tag.RESIZE, cols: 65535, rows: 1 });
  });

  it('round-trips CLOSE (stdin by default)', () => {
    assert.deepEqual(decodeFrame(encodeClose()), { tag: Tag.CLOSE, channel: 0 });
    assert.deepEqual(decodeFrame(encodeClose(2)), { tag: Tag.CLOSE, channel: 2 });
  });

  it('round-trips FLOW pause and resume', () => {
    assert.deepEqual(decodeFrame(encodeFlow(false)), { tag: Tag.FLOW, resume: false });
    assert.deepEqual(decodeFrame(encodeFlow(true)), { tag: Tag.FLOW, resume: true });
  });

  it('round-trips STDIN_ACK with values above 2^32', () => {
    assert.deepEqual(decodeFrame(encodeStdinAck(BIG, 2 ** 33)), { tag: Tag.STDIN_ACK, consumed: BIG, window: 2 ** 33 });
  });

  it('round-trips ERROR', () => {
    assert.deepEqual(decodeFrame(encodeError('not_found', 'no job x')), { tag: Tag.ERROR, code: 'not_found', message: 'no job x' });
  });

  it('round-trips HELLO', () => {
    const hello: HelloFrame = { jobId: 'j1', from: BIG, stdinOffset: 7, stdinClosed: false, status: 'Running', interactive: true, tty: false };
    assert.deepEqual(decodeFrame(encodeHello(hello)), { tag: Tag.HELLO, hello });
  });

  it('decodes frames that are views into a larger buffer', () => {
    const inner = encodeStdinAck(5, 6);
    const big = new Uint8Array(inner.byteLength + 10);
    big.set(inner, 7);
    assert.deepEqual(decodeFrame(big.subarray(7, 7 + inner.byteLength)), { tag: Tag.STDIN_ACK, consumed: 5, window: 6 });
  });

  describe('rejects bad frames with FrameError', () => {
    const cases: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['short STDIN', new Uint8Array([Tag.STDIN, 0, 0])],
      ['short STDOUT', new Uint8Array([Tag.STDOUT, 0, 0, 0, 0, 0, 0, 0])],
      ['short STDERR', new Uint8Array([Tag.STDERR])],
      ['short RESIZE', new Uint8Array([Tag.RESIZE, 0, 80])],
      ['short CLOSE', new Uint8Array([Tag.CLOSE])],
      ['short FLOW', new Uint8Array([Tag.FLOW])],
      ['short STDIN_ACK', new Uint8Array([Tag.STDIN_ACK, 0, 0, 0, 0, 0, 1])],
      ['STATUS that is not JSON', new Uint8Array([Tag.STATUS, 0x7b, 0x7b])],
      ['HELLO that is not JSON', new Uint8Array([Tag.HELLO, 0xff, 0xfe])],
      ['ERROR that is not JSON', new Uint8Array([Tag.ERROR])],
      ['ERROR that is JSON null', encodeJsonFrame(Tag.ERROR, 'null')],
      ['STATUS that is a JSON number', encodeJsonFrame(Tag.STATUS, '1')],
      ['HELLO that is a JSON array', encodeJsonFrame(Tag.HELLO, '[]')],
      ['unknown tag', new Uint8Array([42, 1, 2, 3])],
    ];
    for (const [name, bytes] of cases) {
      it(name, () => {
        assert.throws(() => decodeFrame(bytes), FrameError);
      });
    }
  });

  it('FrameError is a BadRequestError with code protocol, carrying its cause', () => {
    let caught: unknown;
    try {
      decodeFrame(new Uint8Array([Tag.STATUS, 0x7b]));
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof FrameError);
    assert.ok(caught instanceof BadRequestError && caught instanceof JobwireError, 'one error hierarchy');
    assert.equal(caught.code, 'protocol');
    assert.equal(caught.status, 400);
    assert.equal(caught.name, 'FrameError');
    assert.ok(caught.cause instanceof SyntaxError, 'the JSON parse error survives as cause');
  });

  it('is imported from @jobwire/client/protocol; the package root keeps only what SDK users need', async () => {
    const protocol = await import('@jobwire/client/protocol');
    const root = await import('@jobwire/client');
    assert.equal(protocol.decodeFrame, decodeFrame);
    assert.equal(protocol.FrameError, root.FrameError, 'one FrameError class, exported from both');
    for (const name of ['Tag', 'decodeFrame', 'encodeOutput', 'encodeStdin', 'encodeHello', 'CloseCode', 'OUTPUT_HEADER']) {
      assert.ok(name in protocol, `${name} is in the protocol subpath`);
      assert.ok(!(name in root), `${name} is not in the package root`);
    }
    for (const name of ['Client', 'QueuedIterator', 'JobwireError', 'isFinal', 'inSubtree', 'API_PREFIX']) assert.ok(name in root, `${name} is in the package root`);
  });

  it('survives random garbage: every input decodes or throws FrameError', () => {
    let seed = 12345;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 2000; i++) {
      const bytes = new Uint8Array(Math.floor(rand() * 24));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
      if (bytes.length > 0) bytes[0] = Math.floor(rand() * 12);
      try {
        decodeFrame(bytes);
      } catch (err) {
        assert.ok(err instanceof FrameError, `frame ${[...bytes].join(',')} threw ${String(err)}`);
      }
    }
  });
});
