// Helpers every benchmark file uses (they had one copy each).
import { readFileSync } from 'node:fs'

/** The bytes of fixtures/wasm/<name>.wasm. */
export const wasmBytes = (name) => new Uint8Array(readFileSync(new URL(`../fixtures/wasm/${name}.wasm`, import.meta.url)))

/** One macrotask turn (lets pending promise work and timers run). */
export const tick = () => new Promise((res) => setImmediate(res))

/** The median of a list of numbers. */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Two full GCs with a turn between (finalizers run), when node runs with --expose-gc. */
export async function fullGc() {
  if (typeof global.gc !== 'function') return
  global.gc()
  await tick()
  global.gc()
}

/** Heap (used + external) and RSS after full GCs. */
export async function memorySnapshot() {
  await fullGc()
  const m = process.memoryUsage()
  return { heap: m.heapUsed + m.external, rss: m.rss }
}

/**
 * Raw cost of what an activation or a spawn cannot avoid: `new WebAssembly.Instance` of
 * `module` plus its handle_init export, `n` times, keeping the last `live` instances alive
 * (older ones dropped; `live` = n keeps them all). Instantiations per second.
 */
export function rawInstantiations(module, n, live) {
  const ring = new Array(live)
  const imports = { env: new Proxy({}, { get: () => () => 0 }) }
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const inst = new WebAssembly.Instance(module, imports)
    inst.exports.handle_init_asm(0, 0, 0, 0)
    ring[i % live] = inst
  }
  return (n * 1000) / (performance.now() - t0)
}
