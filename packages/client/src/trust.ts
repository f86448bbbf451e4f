/**
 * Requests that trust a given CA (the `ca` option) in Node. Browsers use their own trust store
 * and never load this path: the module it needs is imported lazily under a variable name.
 * @module
 */
import { ConnectionError } from './errors.js';

/** The `fetch` the SDK calls: the global one, or one that trusts a given CA. */
export type FetchFunction = (url: URL, init: RequestInit) => Promise<Response>;

type UndiciModule = {
  Agent: new (options: { connect: { ca: string } }) => object;
  fetch: (url: URL, init: RequestInit & { dispatcher: object }) => Promise<Response>;
};

// A variable specifier keeps bundlers (vite) from pulling undici into the dashboard's bundle.
const UNDICI_MODULE = 'undici';
let undici: Promise<UndiciModule> | undefined;
/** One agent (and so one pool of TLS connections) per CA bundle. */
const fetchers = new Map<string, FetchFunction>();

/**
 * A fetch that trusts `ca` (PEM) instead of the system's CAs.
 *
 * Node's global fetch cannot be given a CA: it takes one only through an undici dispatcher.
 * undici is the library behind that global fetch, kept by Node's own team, so it is the
 * well-kept way; we call undici's own `fetch` with its `Agent` rather than hand the Agent to the
 * global fetch, because the npm release need not match the copy bundled inside this Node. The
 * alternative, node:https, would mean rebuilding Response objects, redirects and body streams
 * by hand.
 */
export async function trustingFetch(ca: string): Promise<FetchFunction> {
  const known = fetchers.get(ca);
  if (known) return known;
  undici ??= import(/* @vite-ignore */ UNDICI_MODULE) as Promise<UndiciModule>;
  let mod: UndiciModule;
  try {
    mod = await undici;
  } catch (err) {
    undici = undefined;
    throw new ConnectionError('the `ca` option needs the undici package (a dependency of @jobwire/client) in Node', { cause: err });
  }
  const dispatcher = new mod.Agent({ connect: { ca } });
  const fetcher: FetchFunction = (url, init) => mod.fetch(url, { ...init, dispatcher });
  fetchers.set(ca, fetcher);
  return fetcher;
}

/** Error codes of Node's TLS layer for a certificate this client does not accept. */
const CERTIFICATE_CODES = /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_[A-Z_]+|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/** True for the error code of a server certificate that is not trusted (or not valid for the host). */
export function isCertificateError(code: string | undefined): boolean {
  return code !== undefined && CERTIFICATE_CODES.test(code);
}
