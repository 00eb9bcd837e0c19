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
