/**
 * The dashboard's addresses: `/` (every job), `/groups/PATH` (one group's subtree),
 * `/jobs/ID` (one job), `/networks` (the networks) and `/networks/NAME` (one network). History API navigation; the server answers every one of these paths
 * with the same page, so reloads and shared links work.
 * @module
 */
import { useEffect, useState } from 'preact/hooks';

/** What the address shows. */
export type Route = { page: 'tree'; group: string } | { page: 'job'; id: string } | { page: 'networks' } | { page: 'network'; name: string } | { page: 'missing'; path: string };

/** Reads a route from a pathname. */
export function parseRoute(pathname: string): Route {
  try {
    if (pathname === '/' || pathname === '/index.html' || pathname === '/groups' || pathname === '/groups/') return { page: 'tree', group: '' };
    if (pathname.startsWith('/groups/')) return { page: 'tree', group: decodeURIComponent(pathname.slice('/groups/'.length)).replace(/\/+$/, '') };
    const job = /^\/jobs\/([^/]+)\/?$/.exec(pathname);
    if (job) return { page: 'job', id: decodeURIComponent(job[1]!) };
    if (pathname === '/networks' || pathname === '/networks/') return { page: 'networks' };
    const network = /^\/networks\/([^/]+)\/?$/.exec(pathname);
    if (network) return { page: 'network', name: decodeURIComponent(network[1]!) };
  } catch {
    // A malformed escape is just an unknown address.
  }
  return { page: 'missing', path: pathname };
}

/** Address of a group's page (`:` stays readable, everything else is escaped). */
export function groupHref(path: string): string {
  return path ? `/groups/${encodeURIComponent(path).replace(/%3A/gi, ':')}` : '/';
}

/** Address of a network's page. */
export function networkHref(name: string): string {
  return `/networks/${encodeURIComponent(name)}`;
}

/** Address of a job's page. */
export function jobHref(id: string): string {
  return `/jobs/${encodeURIComponent(id)}`;
}

const ROUTE_EVENT = 'jobwire:navigate';

/** Goes to `href` without reloading. */
export function navigate(href: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, '', href);
  else window.history.pushState(null, '', href);
  window.dispatchEvent(new Event(ROUTE_EVENT));
}

/**
 * Click handler for in-app links: a plain left click navigates in place; a click with a
 * modifier (new tab, new window, download) is left to the browser.
 */
export function onLinkClick(event: MouseEvent, href: string): void {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(href);
}

/** The current route, updated on navigation and on back/forward. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname));
  useEffect(() => {
    const update = (): void => setRoute(parseRoute(window.location.pathname));
    window.addEventListener('popstate', update);
    window.addEventListener(ROUTE_EVENT, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(ROUTE_EVENT, update);
    };
  }, []);
  return route;
}
