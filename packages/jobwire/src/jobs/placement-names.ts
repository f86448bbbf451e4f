/**
 * Names of worker pools and nodes (distributed mode). They become parts of Redis keys and BullMQ
 * queue names, so they are held to a small alphabet. Kept apart from the zod schema so the CLI
 * can check them without loading zod.
 * @module
 */

/** A pool or node name: letters, digits, `.`, `_`, `-`, starting with a letter or digit, at most 128. */
export const PLACEMENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
