/**
 * Keeping secrets out of logs. Tokens travel in `Authorization: Bearer` headers, in
 * `access_token=` / `token=` query parameters and in jobs' environment, and errors carry all of
 * those about: a parse error keeps the raw request bytes (`rawPacket`), an ioredis error the
 * command's arguments, a message may quote a URL. The server's and workers' pino loggers
 * serialise every logged error through {@link serializeError}.
 * @module
 */
import { pino } from 'pino';

/** Where a secret shows in text, and the part of each match to keep. */
const SECRET_PATTERNS: RegExp[] = [
  /([?&](?:access_)?token=)[^&#\s"'<>]*/gi,
  /(\bBearer\s+)[^\s"',;]+/gi,
  /(\bJOBWIRE_(?:JOB_)?TOKEN=)[^\s"',;]*/g,
];

/** Error properties that hold raw request or command data: dropped whole. */
const RAW_FIELDS = new Set(['rawPacket', 'args', 'headers', 'env', 'spawnargs']);

/** `text` with every token it visibly carries replaced by `[redacted]`. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const pattern of SECRET_PATTERNS) out = out.replace(pattern, '$1[redacted]');
  return out;
}

/** A copy of a serialised value with secrets redacted from strings and raw-data fields dropped. */
function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (typeof value !== 'object' || value === null || depth > 6) return value;
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return '[bytes]';
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = RAW_FIELDS.has(key) ? '[redacted]' : scrub(item, depth + 1);
  return out;
}

/** pino's error serializer (type, message, stack, cause, own fields), then without secrets. */
export function serializeError(err: Error): pino.SerializedError {
  // Anything may be logged as `err`; pino's serializer passes non-errors through as they are.
  return scrub(pino.stdSerializers.err(err), 0) as pino.SerializedError;
}
