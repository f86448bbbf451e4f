/**
 * The dashboard's static files: the single-page app that `packages/dashboard` builds (vite) into
 * `dist/dashboard/` of this package — `index.html` at `/`, content-hashed files under `/assets/`,
 * the embeddable `/widget.js` — plus `index.html` again for the app's own addresses
 * (`/jobs/ID`, `/groups/PATH`, `/networks`, `/networks/NAME`) so that links, bookmarks and reloads work.
 *
 * Hand-written rather than @fastify/static, which is not a dependency: the job is a handful of
 * files from one folder, and the rules that matter fit here — a fixed content-type table (an
 * unknown kind of file is not served), no path outside the folder, long caching only for
 * content-hashed names, and headers that keep the sign-in token of `/?token=` from leaking
 * through a `Referer` and the page from being framed. The files hold no data, so they need no
 * token (each route says so: `config.auth = 'public'`); every `/v1` route still does.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError } from '@jobwire/client';
import { z } from 'zod';
import { errorAnswers } from './schemas.js';

/** Where the build puts the dashboard: `dist/dashboard/` next to `dist/src/`. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../dashboard/', import.meta.url));

/** Content types by extension; anything else is not served. */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** A Host header fit to be repeated in a header: a name or address and a port, nothing else. */
const HOST = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

/**
 * The page's own policy: scripts and connections only to this server — its WebSockets named
 * outright, since older browsers do not count ws:// as `'self'` — inline styles because
 * xterm.js sets them, no framing, no referrer.
 */
function pageHeaders(host: string | undefined): Record<string, string> {
  const sockets = host && HOST.test(host) ? ` ws://${host} wss://${host}` : '';
  return {
    'content-security-policy':
      "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
      `connect-src 'self'${sockets}; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'cache-control': 'no-cache',
  };
}

/** One path segment of a file we may serve: no `..`, no hidden files, no separators. */
const SAFE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** Options of {@link registerDashboard}. */
export interface DashboardOptions {
  /** Folder with the built dashboard. @defaultValue {@link DASHBOARD_DIR} */
  dir?: string;
}

/** Adds the dashboard's routes to `app` (public: they serve code, not data). */
export function registerDashboard(app: FastifyInstance, options: DashboardOptions = {}): void {
  const root = resolve(options.dir ?? DASHBOARD_DIR);

  /** Reads `rel` (a `/`-separated path below the root), or undefined when it may not or does not exist. */
  const load = async (rel: string): Promise<{ body: Buffer; type: string } | undefined> => {
    const segments = rel.split('/');
    if (!segments.every((s) => SAFE_SEGMENT.test(s))) return undefined;
    const file = join(root, ...segments);
    // Belt and braces: the segment rule already keeps the path inside the root.
    if (!file.startsWith(root + sep)) return undefined;
    const type = CONTENT_TYPES[file.slice(file.lastIndexOf('.'))];
    if (!type) return undefined;
    try {
      return { body: await readFile(file), type };
    } catch {
      return undefined;
    }
  };

  const notFound = (req: FastifyRequest): NotFoundError => new NotFoundError(`no file ${req.url.split('?')[0]}`);

  const page = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const index = await load('index.html');
    reply.headers(pageHeaders(req.headers.host));
    if (!index) {
      return reply
        .code(503)
        .type('text/html; charset=utf-8')
        .send('<!doctype html><title>jobwire</title><p>The jobwire dashboard is not built: run <code>npm run build</code> in the jobwire checkout.</p>\n');
    }
    return reply.type(index.type).send(index.body);
  };

  const file = (rel: (req: FastifyRequest) => string, cache: string) => async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const found = await load(rel(req));
    if (!found) throw notFound(req);
    return reply.headers({ 'cache-control': cache, 'x-content-type-options': 'nosniff' }).type(found.type).send(found.body);
  };
  const wildcard = (prefix: string) => (req: FastifyRequest): string => prefix + ((req.params as { '*'?: string })['*'] ?? '');

  /** A public route, described for the OpenAPI document as answering `type`. */
  const open = (summary: string, type: string) =>
    ({
      config: { auth: 'public' },
      schema: { tags: ['dashboard'], summary, response: { 200: { description: summary, content: { [type]: { schema: z.string() } } }, ...errorAnswers } },
    }) as const;
  // The app's addresses: the page decides what to show.
  for (const path of ['/', '/index.html', '/jobs/*', '/groups', '/groups/*', '/networks', '/networks/*']) app.get(path, open('The dashboard page', 'text/html'), page);
  // Vite names assets by content hash, so a name never changes meaning: cache for a year.
  app.get('/assets/*', open("The dashboard's code, styles and images", '*/*'), file(wildcard('assets/'), 'public, max-age=31536000, immutable'));
  // Stable names: always revalidate.
  app.get('/widget.js', open('The embeddable job list (docs/dashboard.md)', 'text/javascript'), file(() => 'widget.js', 'no-cache'));
  app.get('/favicon.svg', open('The icon', 'image/svg+xml'), file(() => 'favicon.svg', 'public, max-age=86400'));
}
