/**
 * A TypeScript Xenon client for the tests, built from jobwire's xenon.proto with @grpc/grpc-js
 * and @grpc/proto-loader exactly as any Xenon client would build one: the same package,
 * service, message and field names, nothing jobwire-specific.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { XENON_PROTO_PATH } from '../../src/grpc/proto.js';

const definition = protoLoader.loadSync(XENON_PROTO_PATH, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const xenon = (grpc.loadPackageDefinition(definition) as unknown as { xenon: Record<string, grpc.ServiceClientConstructor> }).xenon;

/** A gRPC error as the client sees it. */
export type RpcError = grpc.ServiceError;

/** A JobDescription message (snake_case; unset fields take proto defaults). */
export type Description = Record<string, unknown>;

/** A connection to a jobwire server's Xenon service. */
export class XenonClient {
  readonly scheduler: grpc.Client & Record<string, Function>;
  readonly files: grpc.Client & Record<string, Function>;
  readonly metadata: grpc.Metadata;

  constructor(address: string, options: { token?: string; credentials?: grpc.ChannelCredentials; channelOptions?: grpc.ChannelOptions } = {}) {
    const credentials = options.credentials ?? grpc.credentials.createInsecure();
    this.scheduler = new xenon.SchedulerService!(address, credentials, options.channelOptions) as never;
    this.files = new xenon.FileSystemService!(address, credentials, options.channelOptions) as never;
    this.metadata = new grpc.Metadata();
    if (options.token !== undefined) this.metadata.set('authorization', `Bearer ${options.token}`);
  }

  /** Calls a unary SchedulerService method. */
  sched<T = any>(method: string, request: object = {}): Promise<T> {
    return unary(this.scheduler, method, request, this.metadata);
  }

  /** Calls a unary FileSystemService method. */
  fs<T = any>(method: string, request: object = {}): Promise<T> {
    return unary(this.files, method, request, this.metadata);
  }

  /** Starts submitInteractiveJob. */
  interactive(): grpc.ClientDuplexStream<any, any> {
    return (this.scheduler.submitInteractiveJob as Function).call(this.scheduler, this.metadata);
  }

  /** Reads a whole server stream. */
  stream<T = any>(client: 'scheduler' | 'files', method: string, request: object): Promise<T[]> {
    const c = client === 'scheduler' ? this.scheduler : this.files;
    return new Promise((resolve, reject) => {
      const out: T[] = [];
      const call = (c[method] as Function).call(c, request, this.metadata) as grpc.ClientReadableStream<T>;
      call.on('data', (m: T) => out.push(m));
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });
  }

  /** Sends a client stream and returns the response. */
  upload(method: 'writeToFile' | 'appendToFile', requests: object[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const call = (this.files[method] as Function).call(this.files, this.metadata, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))) as grpc.ClientWritableStream<object>;
      for (const r of requests) call.write(r);
      call.end();
    });
  }

  /** Closes the channels (the services' own `close` RPC shadows Client#close). */
  close(): void {
    grpc.Client.prototype.close.call(this.scheduler);
    grpc.Client.prototype.close.call(this.files);
  }
}

function unary<T>(client: grpc.Client & Record<string, Function>, method: string, request: object, metadata: grpc.Metadata): Promise<T> {
  return new Promise((resolve, reject) => {
    (client[method] as Function).call(client, request, metadata, (err: grpc.ServiceError | null, response: T) => (err ? reject(err) : resolve(response)));
  });
}

/**
 * A client for a new user of the server at `address`; waits until the server has read the new
 * token (the token book is re-read at most once a second).
 */
export async function clientForUser(address: string, token: string): Promise<XenonClient> {
  const client = new XenonClient(address, { token });
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await client.fs('getAdaptorNames');
      return client;
    } catch (err) {
      if ((err as RpcError).code !== grpc.status.UNAUTHENTICATED || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Asserts that `promise` fails with gRPC `code` and details starting with `kind`. */
export async function rejectsWith(promise: Promise<unknown>, code: grpc.status, kind?: string): Promise<RpcError> {
  try {
    await promise;
  } catch (err) {
    const e = err as RpcError;
    if (e.code !== code) throw new Error(`expected gRPC status ${grpc.status[code]}, got ${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`);
    if (kind !== undefined && !String(e.details).startsWith(`${kind}:`)) throw new Error(`expected details starting with "${kind}:", got: ${e.details}`);
    return e;
  }
  throw new Error(`expected gRPC status ${grpc.status[code]}, but the call succeeded`);
}

export { grpc };
