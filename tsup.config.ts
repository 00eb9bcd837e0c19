import { readFileSync } from 'node:fs'
import { defineConfig } from 'tsup'

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string }

// One build, ESM + CJS + declarations, for every public entry (each is a subpath of the
// package.json exports map; __tests__/package.test.ts checks the two agree). The core
// (`index`) and the adapters that run anywhere (memory, indexeddb) must not pull in node:*
// (a test checks the built files, as a browser resolves them). `cli` is not in the exports
// map: package.json "bin" (bin/edgeless.mjs) loads it; being in the same build, it shares the
// runtime's chunks instead of carrying a second copy. So do `testing` and `testing/jest`:
// a test kit built from the same chunks as the runtime it drives.
export default defineConfig({
  entry: {
    index: 'lib/index.ts',
    node: 'lib/node/index.ts',
    cli: 'lib/node/cli.ts',
    // Loaded by `new Worker(...)` for isolation: 'worker'; internal, not in the exports map.
    'worker-entry': 'lib/node/worker-entry.ts',
    // The asyncify worker (lib/node/asyncify-client.ts starts it); internal too.
    'asyncify-worker': 'lib/node/asyncify-worker.ts',
    'adapters/memory': 'adapters/memory.ts',
    'adapters/indexeddb': 'adapters/indexeddb.ts',
    'adapters/file': 'adapters/file.ts',
    'adapters/redis': 'adapters/redis.ts',
    'adapters/sqlite': 'adapters/sqlite.ts',
    testing: 'lib/testing/index.ts',
    'testing/jest': 'lib/testing/jest.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  // import.meta.url in the CJS build (the worker script is found next to the code).
  shims: true,
  target: 'es2022',
  platform: 'neutral',
  define: { __EDGELESS_VERSION__: JSON.stringify(version) },
  // Keep node: specifiers as written (the Node entry's), so the build says what it imports.
  // Nothing from node_modules is bundled: the dependencies are installed with the package,
  // the drivers of optional adapters (ioredis, better-sqlite3), the AssemblyScript compiler
  // and jest are optional peers or the user's own, and binaryen is loaded lazily.
  external: [
    'binaryen',
    'eventemitter3',
    'lru-cache',
    'xstate',
    'ioredis',
    'better-sqlite3',
    'assemblyscript',
    /^assemblyscript\//,
    '@jest/globals',
    'jest',
    /^node:/,
  ],
  removeNodeProtocol: false,
  splitting: true,
  treeshake: true,
})
