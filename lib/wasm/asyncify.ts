/**
 * Asyncify: binaryen's transformation that lets a guest blocked in `call_asm` be unwound to
 * the host and rewound later, with a cache of transformed modules and a hook to run the
 * transformation elsewhere (the Node entry runs it in a worker thread).
 * @packageDocumentation
 */
import { sha256Hex } from './hash'
import { EdgelessError } from '../errors'
import { SUSPENDING_IMPORTS } from './abi'

// binaryen is 15 MB of JavaScript and takes about a second to load, so it is imported
// only when a module that can block on a call (imports call_asm/call_raw_asm) is loaded.
type Binaryen = typeof import('binaryen').default
let binaryenPromise: Promise<Binaryen> | undefined

function loadBinaryen(): Promise<Binaryen> {
  binaryenPromise ??= import('binaryen').then((m) => m.default)
  // A failed load is not cached: the next module tries again (the package may be installed now).
  binaryenPromise.catch(() => {
    binaryenPromise = undefined
  })
  return binaryenPromise
}

/**
 * The cache key's version: a new one whenever the transformation's output changes (its
 * options, binaryen's major version), so that a cached module is always what this code makes.
 */
const KEY_VERSION = 'asyncify-v2'

/**
 * Apply binaryen's asyncify transformation, restricted to the two call imports, so that a
 * guest blocked in `call_asm` can be unwound to the host, wait for an asynchronous answer,
 * and be rewound exactly where it stopped. Only the functions on a path to a call import
 * are instrumented; the rest of the guest runs unchanged.
 */
export async function asyncifyModule(bytes: Uint8Array, label: string): Promise<Uint8Array> {
  const cache = transformCache
  let key: string | undefined
  if (cache) {
    key = `${KEY_VERSION}-${await sha256Hex(bytes)}`
    try {
      const hit = await cache.get(key)
      // A hit must still be a module (a truncated file is a miss, not a failure).
      if (hit && WebAssembly.validate(hit as Uint8Array<ArrayBuffer>)) return hit
    } catch {
      /* a broken cache is a miss */
    }
  }
  for (const l of missListeners) {
    try {
      l(label)
    } catch {
      /* a listener's failure is not the module's */
    }
  }
  const out = await runner(bytes, label)
  // Written before the module is used (milliseconds, after seconds of work): a process stopped
  // right after its first reply, or killed, keeps what it paid for. A failed write is a miss next time.
  if (cache && key) await cache.set(key, out).catch(() => {})
  return out
}

/**
 * Where asyncified modules are kept between processes, keyed by a hash of the input: the
 * transformation takes seconds (loading binaryen, then the pass), the lookup milliseconds.
 * The Node entry installs a file cache; browsers could use the Cache API.
 */
export interface TransformCache {
  get(key: string): Promise<Uint8Array | undefined>
  set(key: string, bytes: Uint8Array): Promise<void>
}

let transformCache: TransformCache | null = null

/** Install (or remove, with null) the process-wide cache of asyncified modules. */
export function setTransformCache(cache: TransformCache | null): void {
  transformCache = cache
}

/**
 * Runs the transformation of one module (bytes in, bytes out). The default,
 * {@link asyncifyInThread}, loads binaryen into this thread; the Node entry installs one that
 * runs it in a worker thread (lib/node/asyncify-client.ts).
 * @internal
 */
export type AsyncifyRunner = (bytes: Uint8Array, label: string) => Promise<Uint8Array>

let runner: AsyncifyRunner = asyncifyInThread

/** Install (or reset to {@link asyncifyInThread}, with null) the process-wide runner. @internal */
export function setAsyncifyRunner(r: AsyncifyRunner | null): void {
  runner = r ?? asyncifyInThread
}

const missListeners = new Set<(label: string) => void>()

/**
 * Be told, with the module's label, each time a module is not in the cache and is about to be
 * transformed (seconds of work): the CLI prints a progress line. Returns the unsubscribe.
 * @internal
 */
export function onAsyncifyMiss(listener: (label: string) => void): () => void {
  missListeners.add(listener)
  return () => {
    missListeners.delete(listener)
  }
}

/** The transformation in this thread: loads binaryen (once) and runs the pass. @internal */
export async function asyncifyInThread(bytes: Uint8Array, label: string): Promise<Uint8Array> {
  let binaryen: Binaryen
  try {
    binaryen = await loadBinaryen()
  } catch (e) {
    throw binaryenLoadError(e, label)
  }
  return asyncifyWith(binaryen, bytes, label)
}

/**
 * Why binaryen could not be loaded, told as it is: a missing package is installed; an
 * installed one that this environment cannot import (jest's CommonJS sandbox refuses the
 * dynamic `import()` of an ES module) needs the transformation to run elsewhere.
 * @internal
 */
export function binaryenLoadError(e: unknown, label: string): EdgelessError {
  const err = e as Error & { code?: string }
  const message = err?.message ?? String(e)
  const missing = err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND' || /Cannot find (package|module) ['"]?binaryen/.test(message)
  const fix = missing
    ? 'Install the "binaryen" package (a dependency of edgeless): npm i binaryen.'
    : /dynamic import callback|experimental-vm-modules/.test(message)
      ? 'binaryen is an ES module, and this environment (a CommonJS jest sandbox?) refuses to import() one. Use the Runtime of the Node entry, which prepares modules in a worker thread (in tests: createTestKit({ Runtime }) with Runtime from "edgeless"), or run jest with NODE_OPTIONS=--experimental-vm-modules.'
      : 'binaryen is installed but this environment cannot import it; load the module in Node (the Node entry prepares modules in a worker thread).'
  return new EdgelessError('load-failed', `Could not load binaryen, needed to prepare ${label} for blocking calls: ${message}. ${fix}`, {}, { cause: e })
}

/** The pass itself, with a loaded binaryen: synchronous, seconds for a large guest. @internal */
export function asyncifyWith(binaryen: Binaryen, bytes: Uint8Array, label: string): Uint8Array {
  const mod = binaryen.readBinary(bytes)
  try {
    const F = binaryen.Features
    // The features V8 in Node 20 and current browsers run; never All, so that the
    // optimiser cannot emit instructions the engine rejects.
    mod.setFeatures(
      F.MVP |
        F.MutableGlobals |
        F.SignExt |
        F.NontrappingFPToInt |
        F.BulkMemory |
        ((F as unknown as { BulkMemoryOpt?: number }).BulkMemoryOpt ?? 0) |
        F.SIMD128 |
        F.Multivalue |
        F.ReferenceTypes,
    )
    // Optimize level 0: asyncify then skips the cleanup it runs on every instrumented
    // function: 2-3x faster (Rust ping.wasm, first pass in a process: ~0.9 s instead of
    // ~2.4 s) for a larger module (104 KB instead of 66 KB; V8 compiles it in milliseconds).
    // Instrumented code that does not suspend runs ~7% slower (bench section 3, bare dispatch
    // over caller.wasm: 0.90 of the untransformed module instead of 0.97); the runtime's call
    // rows did not move beyond noise. Cleanup passes after it (simplify-locals, vacuum,
    // coalesce-locals) took back most of the time gained, so: none.
    binaryen.setOptimizeLevel(0)
    binaryen.setShrinkLevel(0)
    binaryen.setPassArgument('asyncify-imports', SUSPENDING_IMPORTS.map((n) => `env.${n}`).join(','))
    mod.runPasses(['asyncify'])
    return mod.emitBinary()
  } catch (e) {
    throw new EdgelessError('invalid-module', `Could not prepare ${label} for blocking calls (asyncify failed: ${(e as Error).message}).`, {}, { cause: e })
  } finally {
    binaryen.clearPassArguments()
    mod.dispose()
  }
}
