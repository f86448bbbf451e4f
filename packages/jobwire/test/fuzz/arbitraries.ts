/**
 * fast-check arbitraries for the API fuzz suite: request targets in every form a client can
 * send (origin and absolute form, bad escapes, huge ids, dot segments), methods, query
 * strings, headers, bodies and attach frames. Nothing here can produce CR or LF inside a
 * request line or header, so every generated request is complete and gets an answer at once
 * (a request that promised more bytes would rightly be waited for).
 */
import fc from 'fast-check';
import { JSON_BODY_LIMIT } from '../../src/server/routes.js';

/** One route of the server, with the query parameters it knows. `:id` and `:file` are filled in. */
export interface RouteSpec {
  method: string;
  path: string;
  query?: readonly string[];
  /** A WebSocket endpoint (a plain GET is refused with 400). */
  ws?: boolean;
  /** Needs a token (the document's `security` is not empty). */
  token: boolean;
}

/** The parts of an OpenAPI document {@link routesOf} reads. */
export interface OpenApiRoutes {
  security?: unknown[];
  paths: Record<string, Record<string, { parameters?: { in: string; name: string }[]; responses?: Record<string, unknown>; security?: unknown[] }>>;
}

const OPERATIONS = ['get', 'post', 'put', 'delete', 'patch', 'options', 'trace'] as const;

/**
 * Every route of the server's OpenAPI document (`/api/openapi.json`), so that a route added to
 * the server is fuzzed without a list to keep. HEAD operations are left out: each mirrors a GET,
 * and the method arbitrary sends HEAD to every route anyway. `{id}` becomes `:id`, any other
 * parameter `:file`.
 */
export function routesOf(doc: OpenApiRoutes): RouteSpec[] {
  const routes: RouteSpec[] = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    const path = template.replace(/\{id\}/g, ':id').replace(/\{[^}]+\}/g, ':file');
    for (const method of OPERATIONS) {
      const op = item[method];
      if (!op) continue;
      const query = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      routes.push({
        method: method.toUpperCase(),
        path,
        ...(query.length > 0 ? { query } : {}),
        ...(op.responses && '101' in op.responses ? { ws: true } : {}),
        token: (op.security ?? doc.security ?? []).length > 0,
      });
    }
  }
  return routes;
}

/** Printable ASCII without space (no CR, LF, or anything that ends a request line). */
const TARGET_CHAR = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
/** What may stand in a target: mostly printable, sometimes a byte the parser must refuse. */
const ODD_TARGET_CHAR = fc.oneof({ weight: 20, arbitrary: TARGET_CHAR }, { weight: 1, arbitrary: fc.constantFrom('\t', '\x00', '\x7f', '\xe9', '\xff', ' ') });
/** A header value's characters: never CR or LF. */
const HEADER_CHAR = fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) }, { weight: 1, arbitrary: fc.constantFrom('\t', '\x00', '\x7f', '\xe9', '\xff') });

/** A job id, as it appears in a path. */
export function idArb(known: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...known) },
    { weight: 3, arbitrary: fc.uuid() },
    { weight: 3, arbitrary: fc.constantFrom('%ZZ', '%', '%E0%A4%A', '%00', '%2F', '%2f..', '..', '.', '%2e%2e', '', 'a;b', '*', '%C0%AF', '%FF', '%u0041') },
    { weight: 2, arbitrary: fc.integer({ min: 90, max: 9000 }).map((n) => 'a'.repeat(n)) },
    { weight: 3, arbitrary: fc.string({ unit: ODD_TARGET_CHAR, maxLength: 40 }).map((s) => s.replace(/[/?#]/g, '')) },
    { weight: 2, arbitrary: fc.string({ maxLength: 20 }).map(encodeURIComponent) },
  );
}

/** A query-string value. */
const queryValueArb = fc.oneof(
  fc.nat().map(String),
  fc.constantFrom('', '0', '-1', '1.5', '1e3', '0x10', ' 1', '9007199254740991', '9007199254740992', '99999999999999999999999', 'NaN', 'Infinity'),
  fc.constantFrom('stdout', 'stderr', 'stdin', 'done', 'running', 'Success,Failed', 'Queued,,', 'fuzz', 'fuzz:a', ':', '%ZZ', '%', '%00', '%26'),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.string({ unit: ODD_TARGET_CHAR, maxLength: 20 }).map((s) => s.replace(/[&#=]/g, '')),
);

/** A query string (without `?`) for a route that knows `known`. */
export function queryArb(known: readonly string[], tokens: readonly string[]): fc.Arbitrary<string> {
  const name = fc.oneof(
    { weight: 5, arbitrary: known.length > 0 ? fc.constantFrom(...known) : fc.constant('x') },
    { weight: 1, arbitrary: fc.constantFrom('access_token', 'token', '__proto__', 'constructor', '', 'a[b]', 'a.b', '%ZZ') },
    { weight: 1, arbitrary: fc.string({ unit: TARGET_CHAR, maxLength: 10 }).map((s) => s.replace(/[&#=]/g, '')) },
  );
  const pair = fc.oneof(
    { weight: 8, arbitrary: fc.tuple(name, queryValueArb).map(([k, v]) => `${k}=${v}`) },
    { weight: 1, arbitrary: name },
    { weight: 1, arbitrary: fc.constantFrom(...tokens).map((t) => `access_token=${t}`) },
  );
  return fc.array(pair, { maxLength: 5 }).map((pairs) => pairs.join('&'));
}

/** How a path and query become a request target. */
export const TARGET_FORMS = ['origin', 'origin', 'origin', 'absolute', 'absolute-elsewhere', 'absolute-upper', 'https', 'double-slash', 'bad-authority', 'encoded-prefix', 'no-slash', 'dot-segments', 'trailing-slash', 'fragment', 'asterisk'] as const;
/** One of {@link TARGET_FORMS}. */
export type TargetForm = (typeof TARGET_FORMS)[number];

/** The request target for `path` + `query` in `form`; `host` is the server's own. */
export function makeTarget(form: TargetForm, path: string, query: string, host: string): string {
  const q = query === '' ? '' : `?${query}`;
  switch (form) {
    case 'origin':
      return path + q;
    case 'absolute':
      return `http://${host}${path}${q}`;
    case 'absolute-elsewhere':
      return `http://example.com:99999${path}${q}`;
    case 'absolute-upper':
      return `HTTP://${host.toUpperCase()}${path}${q}`;
    case 'https':
      return `https://[::1]${path}${q}`;
    case 'double-slash':
      return `/${path}${q}`;
    case 'bad-authority':
      // What a URL parser takes for a network-path reference with a host it cannot parse.
      return `//[${path}${q}`;
    case 'encoded-prefix':
      return path.replace(/^\/v1/, '/%76%31').replace(/^\/jobs/, '/%6aobs') + q;
    case 'no-slash':
      return path.slice(1) + q;
    case 'dot-segments':
      return `/assets/..${path}${q}`;
    case 'trailing-slash':
      return `${path}/${q}`;
    case 'fragment':
      return `${path}${q}#frag`;
    case 'asterisk':
      return '*';
    default: {
      const never: never = form;
      return never;
    }
  }
}

/** The path of `target` in origin or absolute form (the whole target otherwise). */
function pathOf(target: string): string {
  return /^https?:\/\/[^/?#]*(\/[^?#]*)/i.exec(target)?.[1] ?? target;
}

/**
 * True when `target` routes to an API route whatever the rest of it says: its path, in origin
 * or absolute form, starts with `/v1` as a whole segment. Such a request must never succeed
 * without a token.
 */
export function isApiTarget(target: string): boolean {
  return /^\/v1(?:[/?]|$)/.test(pathOf(target));
}

/** True when `target`'s path is that of one of `routes` that needs a token (outside /v1 too, e.g. `/metrics`). */
export function isTokenTarget(target: string, routes: readonly RouteSpec[]): boolean {
  const path = pathOf(target).replace(/[?#].*$/, '');
  return routes.some((r) => r.token && new RegExp(`^${r.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:(id|file)/g, '[^/]+')}$`).test(path));
}

/** A job description: mostly wrong in some field, sometimes a harmless valid one (`true`/`false`). */
export const descriptionArb: fc.Arbitrary<unknown> = fc
  .record(
    {
      executable: fc.oneof(fc.constantFrom('true', 'false'), fc.constantFrom('', 42, null, ['true'], {}, 'tr\u0000ue')),
      arguments: fc.oneof(fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }), fc.constantFrom('x', 1, [1], null, ['a\u0000b'])),
      name: fc.oneof(fc.string({ maxLength: 30 }), fc.constant(7)),
      group: fc.oneof(fc.constantFrom('fuzz', 'fuzz:a', 'a::b', ':a', ' ', ''), fc.string({ maxLength: 20 })),
      queueName: fc.constantFrom('single', 'multi', 'unlimited', 'nope', ''),
      maxRuntime: fc.oneof(fc.integer({ min: -10, max: 600_000 }), fc.double(), fc.constant('5')),
      environment: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }), fc.constantFrom([], { A: 'a\u0000' })),
      interactive: fc.oneof(fc.boolean(), fc.constant('yes')),
      tasks: fc.oneof(fc.integer({ min: -1, max: 4 }), fc.constant(1e9)),
      unknownField: fc.jsonValue(),
    },
    // Never file paths (stdin/stdout/stderr/workingDirectory): a valid one would write outside.
    { requiredKeys: [] },
  )
  .map((d) => d as unknown);

/** A request body with the content type it claims. */
export interface BodySpec {
  data: Buffer;
  type?: string;
}

const contentTypeArb = fc.option(
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/octet-stream') },
    {
      weight: 2,
      arbitrary: fc.constantFrom('text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', '*/*', 'application/json; charset=latin1', ';;;', 'application/JSON', 'application/jsonx', ''),
    },
    { weight: 1, arbitrary: fc.string({ unit: HEADER_CHAR, maxLength: 30 }) },
  ),
  { nil: undefined },
);

/** A body: JSON of every kind, job descriptions, raw bytes, now and then one over the JSON limit. */
export const bodyArb: fc.Arbitrary<BodySpec | undefined> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.tuple(fc.json({ maxDepth: 3 }), contentTypeArb).map(([j, type]) => ({ data: Buffer.from(j), ...(type !== undefined ? { type } : {}) })) },
  { weight: 3, arbitrary: descriptionArb.map((d) => ({ data: Buffer.from(JSON.stringify(d)), type: 'application/json' })) },
  { weight: 1, arbitrary: fc.record({ message: fc.oneof(fc.string({ maxLength: 50 }), fc.jsonValue()) }).map((m) => ({ data: Buffer.from(JSON.stringify(m)), type: 'application/json' })) },
  { weight: 2, arbitrary: fc.tuple(fc.uint8Array({ maxLength: 1024 }), contentTypeArb).map(([b, type]) => ({ data: Buffer.from(b), ...(type !== undefined ? { type } : {}) })) },
  { weight: 1, arbitrary: fc.constantFrom('{', '{"a":', '[]', 'null', '""', '1e999', '{"__proto__":{"x":1}}', '\ufeff{}').map((s) => ({ data: Buffer.from(s), type: 'application/json' })) },
  { weight: 1, arbitrary: fc.constantFrom('application/json', 'application/octet-stream').map((type) => ({ data: Buffer.alloc(JSON_BODY_LIMIT + 1, 0x31), type })) },
);

/** How a body is framed on the wire. */
export const FRAMINGS = ['length', 'length', 'length', 'chunked', 'short-length', 'length-and-chunked', 'bad-length', 'bad-chunk', 'none'] as const;
/** One of {@link FRAMINGS}. */
export type Framing = (typeof FRAMINGS)[number];

/** Extra headers: odd names and values, repeated, big, and the ones servers treat specially. */
export const extraHeadersArb: fc.Arbitrary<[string, string][]> = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/), fc.string({ unit: HEADER_CHAR, maxLength: 40 })) },
    {
      weight: 3,
      arbitrary: fc.tuple(
        fc.constantFrom('expect', 'accept-version', 'accept', 'accept-encoding', 'range', 'if-none-match', 'x-forwarded-for', 'origin', 'cookie', 'content-encoding', 'upgrade-insecure-requests', 'te'),
        fc.oneof(fc.constantFrom('100-continue', 'something', '*', 'gzip', 'bytes=0-1', 'bytes=9-1', '1.x', 'null'), fc.string({ unit: HEADER_CHAR, maxLength: 20 })),
      ),
    },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('bad header', 'x:y', 'é', '(x)', ''), fc.constant('1')) },
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((n): [string, string] => ['x-big', 'b'.repeat(n)]) },
  ),
  { maxLength: 4 },
);

/** An `Authorization` header (or none), from the given valid and invalid tokens. */
export function authArb(valid: readonly string[]): fc.Arbitrary<{ header?: string; valid: boolean }> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant({ valid: false }) },
    { weight: 5, arbitrary: fc.constantFrom(...valid).map((t) => ({ header: `Bearer ${t}`, valid: true })) },
    { weight: 1, arbitrary: fc.constantFrom(...valid).map((t) => ({ header: `bearer   ${t}  `, valid: true })) },
    {
      weight: 3,
      arbitrary: fc.oneof(
        fc.constantFrom('Bearer', 'Bearer ', 'Basic YWRtaW46YWRtaW4=', 'Bearer wrong-token', 'Token x', 'Bearer a b', '', 'Bearer \x00'),
        fc.constantFrom(...valid).map((t) => `Bearer ${t}x`),
        fc.constantFrom(...valid).map((t) => `Bearer ${t.slice(1)}`),
        fc.string({ unit: HEADER_CHAR, maxLength: 60 }),
        fc.integer({ min: 100, max: 20_000 }).map((n) => `Bearer ${'t'.repeat(n)}`),
      ).map((header) => ({ header, valid: false })),
    },
  );
}

/** A byte string for a WebSocket message to an attach or events socket. */
export const attachFrameArb: fc.Arbitrary<{ data: Buffer | string; binary: boolean }> = (() => {
  const u48 = fc.oneof(fc.nat(4096), fc.constant(2 ** 48 - 1), fc.nat());
  const putU48 = (n: number): Buffer => {
    const b = Buffer.alloc(6);
    b.writeUIntBE(n, 0, 6);
    return b;
  };
  const bin = (parts: Buffer[]): { data: Buffer; binary: boolean } => ({ data: Buffer.concat(parts), binary: true });
  return fc.oneof(
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => bin([Buffer.from(b)])) },
    { weight: 3, arbitrary: fc.tuple(u48, fc.uint8Array({ maxLength: 256 })).map(([o, d]) => bin([Buffer.from([0]), putU48(o), Buffer.from(d)])) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 6 }).map((d) => bin([Buffer.from([0]), Buffer.from(d)])) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(0, 1, 80, 65535), fc.constantFrom(0, 1, 24, 65535)).map(([c, r]) => bin([Buffer.from([4, c >> 8, c & 255, r >> 8, r & 255])])) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 4 }).map((n) => bin([Buffer.from([4]), Buffer.alloc(n)])) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 255 }).map((c) => bin([Buffer.from([5, c])])) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 255 }).map((c) => bin([Buffer.from([6, c])])) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(1, 2, 3, 7, 8, 9, 10, 255), fc.uint8Array({ maxLength: 32 })).map(([t, d]) => bin([Buffer.from([t]), Buffer.from(d)])) },
    { weight: 1, arbitrary: fc.constantFrom(3, 8, 9).chain((t) => fc.json({ maxDepth: 2 }).map((j) => bin([Buffer.from([t]), Buffer.from(j)]))) },
    { weight: 2, arbitrary: fc.string({ maxLength: 64 }).map((s) => ({ data: s, binary: false })) },
    { weight: 1, arbitrary: fc.constant(bin([Buffer.from([]) ])) },
  );
})();
