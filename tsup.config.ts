import { readFileSync } from 'node:fs'
import { defineConfig } from 'tsup'

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string }

// One build, ESM + CJS + declarations, for every public entry. The core (`index`) and the
// adapters that run anywhere must not pull in node:* (a test checks the built files).
// `cli` is not in the exports map: package.json "bin" (bin/edgeless.mjs) loads it; being in
// the same build, it shares the runtime's chunks instead of carrying a second copy.
export default defineConfig({
  entry: {
    index: 'lib/index.ts',
    node: 'lib/node/index.ts',
    cli: 'lib/node/cli.ts',
    'adapters/memory': 'adapters/memory.ts',
    'adapters/file': 'adapters/file.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2022',
  platform: 'neutral',
  define: { __EDGELESS_VERSION__: JSON.stringify(version) },
  // Keep node: specifiers as written (the Node entry's), so the build says what it imports.
  // Drivers of optional adapters and resources stay external: they are optional peers.
  external: ['binaryen', 'eventemitter3', 'lru-cache', 'ioredis', /^node:/],
  removeNodeProtocol: false,
  splitting: true,
  treeshake: true,
})
