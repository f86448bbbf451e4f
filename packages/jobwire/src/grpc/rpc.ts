/**
 * Handler plumbing shared by both services: authenticate every call, give the handler the
 * caller and an AbortSignal (aborted when the client cancels or the server closes), and turn
 * whatever it throws into a Xenon-style gRPC status.
 * @module
 */
import type * as grpc from '@grpc/grpc-js';
import { JobwireError, type WhoAmI } from '@jobwire/client';
import type { Authenticator } from './auth.js';
import { toServiceError, toXenonError, XenonError } from './errors.js';

/** What a handler gets besides its request. */
export interface CallContext {
  /** The authenticated caller. */
  who: WhoAmI;
  /** Aborted when the client cancels the call or the server shuts down. */
  signal: AbortSignal;
}

/** The part of a pino logger this module uses. */
export interface GrpcLogger {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

type AnyCall = { metadata: grpc.Metadata; getPeer(): string; on(event: 'cancelled', listener: () => void): unknown; cancelled?: boolean };

/** Builds handlers for grpc-js from async functions. */
export class Rpc {
  constructor(
    private readonly auth: Authenticator,
    private readonly log: GrpcLogger,
    /** Aborted when the server closes. */
    private readonly closing: AbortSignal,
  ) {}

  private context(call: AnyCall): CallContext {
    const who = this.auth.authenticate(call.metadata, call.getPeer());
    const controller = new AbortController();
    call.on('cancelled', () => controller.abort());
    if (call.cancelled) controller.abort();
    return { who, signal: AbortSignal.any([controller.signal, this.closing]) };
  }

  private failure(err: unknown, adaptor: string | undefined): XenonError {
    // Anything that is not a Xenon or jobwire error is a bug: log it, answer INTERNAL.
    if (!(err instanceof XenonError) && !(err instanceof JobwireError)) this.log.error({ err }, 'gRPC handler failed');
    return toXenonError(err, adaptor);
  }

  /** A unary call. `adaptor` names the adaptor in errors that do not say. */
  unary<Req, Res>(adaptor: string, fn: (request: Req, ctx: CallContext) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      let ctx: CallContext;
      try {
        ctx = this.context(call);
      } catch (err) {
        callback(toServiceError(this.failure(err, adaptor)));
        return;
      }
      fn(call.request, ctx).then(
        (response) => callback(null, response),
        (err: unknown) => callback(toServiceError(this.failure(err, adaptor))),
      );
    };
  }

  /** A server-streaming call: `fn` writes; the call ends when it resolves. */
  serverStream<Req, Res>(adaptor: string, fn: (call: grpc.ServerWritableStream<Req, Res>, ctx: CallContext) => Promise<void>): grpc.handleServerStreamingCall<Req, Res> {
    return (call) => {
      const fail = (err: unknown): void => {
        if (!call.cancelled) call.emit('error', toServiceError(this.failure(err, adaptor)));
      };
      let ctx: CallContext;
      try {
        ctx = this.context(call);
      } catch (err) {
        fail(err);
        return;
      }
      fn(call, ctx).then(() => {
        if (!call.cancelled) call.end();
      }, fail);
    };
  }

  /** A client-streaming call: `fn` reads the requests and returns the one response. */
  clientStream<Req, Res>(adaptor: string, fn: (call: grpc.ServerReadableStream<Req, Res>, ctx: CallContext) => Promise<Res>): grpc.handleClientStreamingCall<Req, Res> {
    return (call, callback) => {
      let ctx: CallContext;
      try {
        ctx = this.context(call);
      } catch (err) {
        callback(toServiceError(this.failure(err, adaptor)));
        return;
      }
      fn(call, ctx).then(
        (response) => callback(null, response),
        (err: unknown) => callback(toServiceError(this.failure(err, adaptor))),
      );
    };
  }

  /** A bidirectional call: `fn` owns the call and ends it; a rejection becomes the status. */
  bidi<Req, Res>(adaptor: string, fn: (call: grpc.ServerDuplexStream<Req, Res>, ctx: CallContext) => Promise<void>): grpc.handleBidiStreamingCall<Req, Res> {
    return (call) => {
      const fail = (err: unknown): void => {
        if (!call.cancelled && !call.writableEnded) call.emit('error', toServiceError(this.failure(err, adaptor)));
      };
      let ctx: CallContext;
      try {
        ctx = this.context(call);
      } catch (err) {
        fail(err);
        return;
      }
      fn(call, ctx).catch(fail);
    };
  }
}

/** Resolves when `stream` emits 'drain', or rejects when `signal` aborts first. */
export function drained(stream: NodeJS.EventEmitter, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const done = (): void => {
      stream.off('drain', done);
      signal.removeEventListener('abort', abort);
      resolve();
    };
    const abort = (): void => {
      stream.off('drain', done);
      reject(signal.reason);
    };
    stream.on('drain', done);
    signal.addEventListener('abort', abort, { once: true });
  });
}
