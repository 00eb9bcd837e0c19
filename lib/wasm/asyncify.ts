import { sha256Hex } from './hash'
import { EdgelessError } from '../errors'
import { SUSPENDING_IMPORTS } from './abi'

// binaryen is 15 MB of JavaScript and takes about a second to load, so it is imported
// only when a module that can block on a call (imports call_asm/call_raw_asm) is loaded.
type Binaryen = typeof import('binaryen').default
let binaryenPromise: Promise<Binaryen> | undefined

function loadBinaryen(): Promise<Binaryen> {
  binaryenPromise ??= import('binaryen').then((m) => m.default)
  return binaryenPromise
}

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
    key = `asyncify-v1-${await sha256Hex(bytes)}`
    try {
      const hit = await cache.get(key)
      // A hit must still be a module (a truncated file is a miss, not a failure).
      if (hit && WebAssembly.validate(hit as Uint8Array<ArrayBuffer>)) return hit
    } catch { /* a broken cache is a miss */ }
  }
  const out = await transform(bytes, label)
  if (cache && key) void Promise.resolve().then(() => cache.set(key!, out)).catch(() => {})
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

async function transform(bytes: Uint8Array, label: string): Promise<Uint8Array> {
  let binaryen: Binaryen
  try {
    binaryen = await loadBinaryen()
  } catch (e) {
    throw new EdgelessError('load-failed', `Could not load binaryen, needed to prepare ${label} for blocking calls: ${(e as Error).message}. Install the "binaryen" package (a dependency of edgeless).`, {}, { cause: e })
  }
  const mod = binaryen.readBinary(bytes)
  try {
    const F = binaryen.Features
    // The features V8 in Node 20 and current browsers run; never All, so that the
    // optimiser cannot emit instructions the engine rejects.
    mod.setFeatures(F.MVP | F.MutableGlobals | F.SignExt | F.NontrappingFPToInt | F.BulkMemory | ((F as unknown as { BulkMemoryOpt?: number }).BulkMemoryOpt ?? 0) | F.SIMD128 | F.Multivalue | F.ReferenceTypes)
    binaryen.setOptimizeLevel(2)
    binaryen.setShrinkLevel(0)
    binaryen.setPassArgument('asyncify-imports', SUSPENDING_IMPORTS.map((n) => `env.${n}`).join(','))
    mod.runPasses(['asyncify'])
    binaryen.clearPassArguments()
    return mod.emitBinary()
  } catch (e) {
    throw new EdgelessError('invalid-module', `Could not prepare ${label} for blocking calls (asyncify failed: ${(e as Error).message}).`, {}, { cause: e })
  } finally {
    mod.dispose()
  }
}
