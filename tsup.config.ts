import { defineConfig } from 'tsup'

// One build, ESM + CJS + declarations, for every public entry. The core (`index`) and the
// adapters that run anywhere must not pull in node:* (a test checks the built files).
export default defineConfig({
  entry: {
    index: 'lib/index.ts',
    node: 'lib/node/index.ts',
    'adapters/memory': 'adapters/memory.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2022',
  platform: 'neutral',
  // Keep node: specifiers as written (the Node entry's), so the build says what it imports.
  external: ['binaryen', 'eventemitter3', 'lru-cache', /^node:/],
  removeNodeProtocol: false,
  splitting: true,
  treeshake: true,
})
