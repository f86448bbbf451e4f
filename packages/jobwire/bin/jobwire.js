#!/usr/bin/env node
// The `jobwire` command: runs the compiled CLI (build first: npm run build).
import '../dist/src/cli/main.js';
