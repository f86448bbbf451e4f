/**
 * The job host's log: JSON lines on its stdout, which is `<home>/host.log`. Synchronous and
 * never throwing: the host must not die because its log cannot be written (a full disk is a case
 * it is built to ride out).
 * @module
 */
import { writeSync } from 'node:fs';
import { serializeError } from '../logging.js';

/** Where the host's messages go. */
export interface HostLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A logger writing JSON lines to `fd`. */
export function fdLogger(fd: number): HostLogger {
  const write = (level: string, message: string, fields?: Record<string, unknown>): void => {
    const record: Record<string, unknown> = { time: new Date().toISOString(), level, pid: process.pid, msg: message };
    for (const [key, value] of Object.entries(fields ?? {})) record[key] = value instanceof Error ? serializeError(value) : value;
    try {
      writeSync(fd, JSON.stringify(record) + '\n');
    } catch {
      // A log line lost to a full disk is the lesser harm.
    }
  };
  return {
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
  };
}

/** A logger that drops everything (in-process hosts in tests). */
export const silentLogger: HostLogger = { info() {}, warn() {}, error() {} };
