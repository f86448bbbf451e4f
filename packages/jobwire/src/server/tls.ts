/**
 * TLS of the REST/WebSocket server: the certificate and key files read and checked before
 * anything starts, so a bad file is one clear error naming it rather than a half-started server
 * or an OpenSSL message at the first connection.
 * @module
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';

/** TLS files of the REST/WebSocket server (paths). */
export interface ServerTlsOptions {
  /** PEM certificate chain of the server: its certificate first, then any intermediates. */
  cert: string;
  /** PEM private key of the certificate (not encrypted). */
  key: string;
}

/** A certificate or key file that cannot be used; `file` names it. */
export class TlsFileError extends Error {
  override name = 'TlsFileError';
  /** Stable code, for the CLI to tell this from other start failures. */
  readonly code = 'JOBWIRE_TLS_FILE';
  constructor(
    message: string,
    /** The file at fault (absolute path). */
    readonly file: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Checked TLS material, ready for `https.createServer` / `setSecureContext`. */
export interface LoadedTls {
  cert: Buffer;
  key: Buffer;
  /** The first certificate of the chain (the server's own). */
  leaf: X509Certificate;
  /**
   * The certificate file, when a client may trust it as its CA: the chain ends in a self-signed
   * certificate (a self-signed server certificate, or a chain that includes its root). A chain
   * without its root is left to the system's trust store.
   */
  trustFile: string | undefined;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function readTlsFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new TlsFileError(`TLS ${what} ${path}: cannot read it (${typeof code === 'string' ? code : (err as Error).message})`, path, { cause: err });
  }
}

/** True when `cert` signed itself (a root, or a self-signed server certificate). */
function selfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

/**
 * Reads and checks the certificate chain and key: both readable, the chain PEM certificates,
 * the key a PEM private key that belongs to the first certificate, and the pair accepted by
 * OpenSSL. Throws a {@link TlsFileError} naming the file otherwise.
 */
export function loadTls(options: ServerTlsOptions): LoadedTls {
  const certPath = resolve(options.cert);
  const keyPath = resolve(options.key);
  const cert = readTlsFile(certPath, 'certificate');
  const key = readTlsFile(keyPath, 'key');

  const blocks = cert.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new TlsFileError(`TLS certificate ${certPath}: not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`, certPath);
  const chain = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new TlsFileError(`TLS certificate ${certPath}: certificate ${i + 1} of the file is not valid (${(err as Error).message})`, certPath, { cause: err });
    }
  });
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsFileError(`TLS key ${keyPath}: not a PEM private key, or an encrypted one (${(err as Error).message})`, keyPath, { cause: err });
  }
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsFileError(`TLS key ${keyPath} does not match the certificate ${certPath} (it is the key of another certificate)`, keyPath);
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsFileError(`TLS certificate ${certPath} with key ${keyPath}: refused by OpenSSL (${(err as Error).message})`, certPath, { cause: err });
  }
  return { cert, key, leaf, trustFile: selfSigned(chain[chain.length - 1]!) ? certPath : undefined };
}

/** True when the certificate is valid for `host` (a name or an IP address, without brackets). */
export function certificateCovers(leaf: X509Certificate, host: string): boolean {
  return isIP(host) ? leaf.checkIP(host) !== undefined : leaf.checkHost(host) !== undefined;
}
