/**
 * The listener sets of the embedded store live in `../listeners.ts`, shared with the Redis store.
 * @module
 */
export { ListenerSet, warnListenerError, type ListenerErrorHandler } from '../listeners.js';
