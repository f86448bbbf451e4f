/**
 * Two builds into the jobwire package's `dist/dashboard/`, which `jobwire server` serves:
 * - the app (default mode): `index.html` plus content-hashed files in `assets/`;
 * - `--mode widget`: `widget.js`, one classic script (IIFE) that any web page can load with a
 *   `<script src>` tag from another origin, exposing `jobwire.list(element, options)`.
 * The SDK loads `ws` (Node's WebSocket) and its Node-only home module through variable import
 * specifiers marked `@vite-ignore`, so neither is bundled; in a browser they are never reached.
 */
import { fileURLToPath } from 'node:url';
import preact from '@preact/preset-vite';
import { defineConfig, type UserConfig } from 'vite';

const outDir = fileURLToPath(new URL('../jobwire/dist/dashboard/', import.meta.url));

export default defineConfig(({ mode }): UserConfig => {
  if (mode === 'widget') {
    return {
      plugins: [preact()],
      publicDir: false,
      // Library mode keeps `process.env.NODE_ENV` for its users to set; a script tag has no one to set it.
      define: { 'process.env.NODE_ENV': JSON.stringify('production') },
      build: {
        outDir,
        emptyOutDir: false,
        target: 'es2020',
        sourcemap: false,
        lib: { entry: 'src/widget.tsx', formats: ['iife'], name: 'jobwire', fileName: () => 'widget.js' },
      },
    };
  }
  return {
    plugins: [preact()],
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2022',
      sourcemap: true,
      // xterm.js alone is ~300 kB; the app is served from the local server, so one warning level up is fine.
      chunkSizeWarningLimit: 800,
    },
  };
});
