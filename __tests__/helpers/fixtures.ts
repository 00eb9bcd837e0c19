import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Runtime, type NodeRuntimeOptions, type RuntimeEvents } from '../../lib/node/index'

/** Absolute path of a compiled fixture, e.g. `wasmPath('pong')`. */
export function wasmPath(name: string): string {
  return fileURLToPath(new URL(`../../fixtures/wasm/${name}.wasm`, import.meta.url))
}

/** The bytes of a compiled fixture. */
export function wasm(name: string): Uint8Array {
  return new Uint8Array(readFileSync(wasmPath(name)))
}

/**
 * The "dense" jest project (jest.config.js) runs the wasm suites again with dense memory on
 * by default (lib/wasm/dense.ts): every guest behaviour they test must hold dense too.
 * Tests of what only a memory of its own does say `dense: false`.
 */
const denseProject = (globalThis as { EDGELESS_TEST_DENSE?: boolean }).EDGELESS_TEST_DENSE === true

/** A quiet runtime for tests (no console output); dense by default in the "dense" project. */
export function testRuntime(options: NodeRuntimeOptions = {}): Runtime {
  return new Runtime({ consoleLog: false, ...(denseProject ? { dense: true } : {}), ...options })
}

/** Collect every event of one kind. */
export function collect<K extends keyof RuntimeEvents>(rt: Runtime, name: K): RuntimeEvents[K][0][] {
  const out: RuntimeEvents[K][0][] = []
  ;(rt.on as (n: K, fn: (e: RuntimeEvents[K][0]) => void) => void)(name, (e) => out.push(e))
  return out
}

/** Resolve when `pred` holds, polling every few ms; reject after `ms`. */
export async function until(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const start = Date.now()
  while (!pred()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

/** Let queued microtasks and one macrotask run. */
export function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0))
}
