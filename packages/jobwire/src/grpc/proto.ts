/**
 * Loads `xenon.proto` (the Xenon 3.x gRPC API) at run time. `tsc` does not copy .proto files,
 * so the compiled code reads the source file: `dist/src/grpc/*.js` → `src/grpc/xenon.proto`.
 * The package ships `src/`, so this holds in a checkout and in an installed package alike.
 * @module
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Path of the .proto file. */
export const XENON_PROTO_PATH: string = (() => {
  // From dist/src/grpc/ (compiled) the source is three levels up; from src/grpc/ it is here.
  const candidates = [new URL('../../../src/grpc/xenon.proto', import.meta.url), new URL('./xenon.proto', import.meta.url)];
  for (const url of candidates) {
    const path = fileURLToPath(url);
    if (existsSync(path)) return path;
  }
  return fileURLToPath(candidates[0]!);
})();

/**
 * proto-loader options: field names as in the .proto (snake_case), 64-bit numbers as JS
 * numbers, enums as their names, defaults filled in, and the set oneof member named.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

/** The loaded `xenon` package: message types and the two service constructors. */
export interface XenonPackage {
  SchedulerService: grpc.ServiceClientConstructor;
  FileSystemService: grpc.ServiceClientConstructor;
}

let loaded: XenonPackage | undefined;

/** Loads (once) and returns the `xenon` package. */
export function loadXenonProto(): XenonPackage {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync(XENON_PROTO_PATH, PROTO_LOADER_OPTIONS);
  const root = grpc.loadPackageDefinition(definition) as unknown as { xenon: XenonPackage };
  loaded = root.xenon;
  return loaded;
}
