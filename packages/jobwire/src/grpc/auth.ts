/**
 * Who is calling: a bearer token in the call metadata (`authorization: Bearer TOKEN`), looked up
 * in the server's token book, like every other jobwire endpoint. A stock Xenon client sends no
 * token; with `allowAnonymousLoopback` such calls from a loopback address run as the server's
 * default (admin) user, and from anywhere else they are refused.
 * @module
 */
import { isIP } from 'node:net';
import { status as Status, type Metadata } from '@grpc/grpc-js';
import type { WhoAmI } from '@jobwire/client';
import type { TokenBook } from '../auth/tokens.js';
import { XenonError } from './errors.js';

/** The address part of a grpc-js peer string ("127.0.0.1:5000", "::1:5000", "[::1]:5000"). */
export function peerAddress(peer: string): string {
  let host = peer.replace(/^(ipv4|ipv6):/, '');
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) return bracketed[1]!;
  const lastColon = host.lastIndexOf(':');
  if (lastColon > 0 && /^\d+$/.test(host.slice(lastColon + 1)) && isIP(host.slice(0, lastColon)) !== 0) host = host.slice(0, lastColon);
  return host;
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback addresses. */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase();
  if (a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** Options of {@link Authenticator}. */
export interface AuthenticatorOptions {
  tokens: TokenBook;
  /** Admit token-less calls from loopback addresses as the admin user. @defaultValue false */
  allowAnonymousLoopback?: boolean;
}

/** Resolves the caller of each call. */
export class Authenticator {
  constructor(private readonly options: AuthenticatorOptions) {}

  /** The caller; throws an UNAUTHENTICATED XenonError when there is none. */
  authenticate(metadata: Metadata, peer: string): WhoAmI {
    const values = metadata.get('authorization');
    if (values.length > 0) {
      const m = values.length === 1 && typeof values[0] === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(values[0]) : null;
      const who = m ? this.options.tokens.lookup(m[1]) : undefined;
      if (!who) throw new XenonError('XenonException', undefined, 'invalid token', { code: Status.UNAUTHENTICATED });
      return who;
    }
    if (!this.options.allowAnonymousLoopback) {
      throw new XenonError(
        'XenonException',
        undefined,
        'missing token: send call metadata "authorization: Bearer TOKEN", or start the server with --grpc-allow-anonymous-loopback to admit token-less calls from this machine',
        { code: Status.UNAUTHENTICATED },
      );
    }
    if (!isLoopback(peerAddress(peer))) {
      throw new XenonError('XenonException', undefined, 'missing token: token-less calls (--grpc-allow-anonymous-loopback) are admitted from loopback addresses only', {
        code: Status.UNAUTHENTICATED,
      });
    }
    const admin = this.options.tokens.lookup(this.options.tokens.adminToken);
    if (!admin) throw new XenonError('XenonException', undefined, 'the server has no default user', { code: Status.UNAUTHENTICATED });
    return admin;
  }
}
