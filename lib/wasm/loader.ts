import { sha256Hex } from './hash'
import { UNLIMITED, type GuestLimits } from './limits'
import { LRUCache } from 'lru-cache'
import { EdgelessError } from '../errors'
import { SUSPENDING_IMPORTS, shapeOfCompiled, validateShape } from './abi'
import { asyncifyModule } from './asyncify'
import { FUEL_EXPORT, RESET_EXPORT, instrumentModule } from './meter'
import { parseModuleShape, type ModuleShape } from './parse'
import { densePages, densify, type DenseLayout } from './dense'
import { canShareMemory } from './regions'
import { exportsEmptyFunction } from './binary'

/**
 * Where a wasm function comes from: its bytes, a precompiled module, a URL, or a string
 * that the runtime's loader resolves (a file path with the Node entry, a URL in browsers).
 *
 * @example
 * ```ts
 * await rt.spawn({ name: 'pong', module: './pong.wasm' })         // Node entry
 * await rt.spawn({ name: 'pong', module: new URL('/pong.wasm', location.href) })
 * ```
 */
export type ModuleSource = Uint8Array | ArrayBuffer | WebAssembly.Module | URL | string | FunctionModule

/** Reads the bytes behind a string or URL source. */
export type SourceLoader = (ref: string | URL) => Promise<Uint8Array>

/**
 * A validated, compiled EDGELESS function, ready to instantiate any number of times.
 * Obtain one with `runtime.load(source)` to spawn many instances without re-reading it.
 *
 * @example
 * ```ts
 * const pong = await rt.load('./pong.wasm')
 * for (let i = 0; i < 100; i++) await rt.spawn({ name: `pong-${i}`, module: pong })
 * ```
 */
export class FunctionModule {
  /**
   * True when the module was instrumented with a fuel meter (every function entry and loop
   * header charges the per-invocation budget). False for `fuel: Infinity` and for
   * precompiled modules, which cannot be rewritten.
   */
  readonly metered: boolean
  /** The memory cap compiled into the module (its memory's maximum lowered), in 64 KiB pages; `undefined`: none. */
  readonly maxPages: number | undefined
  /**
   * Set when the module was rewritten for dense memory (`dense: true`): its instances share
   * big memories, each in a region of its own (lib/wasm/dense.ts). @internal
   */
  readonly dense: DenseLayout | undefined

  /** @internal */
  constructor(
    /** The compiled module (after the fuel meter, memory cap and asyncify transformations). */
    readonly module: WebAssembly.Module,
    /** Imports and exports as read from the original binary. */
    readonly shape: ModuleShape,
    /** SHA-256 of the original bytes (hex), or `precompiled:<n>` for a WebAssembly.Module source. */
    readonly hash: string,
    /** True when the guest can block on a call whose answer is not immediately available. */
    readonly canSuspend: boolean,
    /** True when the guest imports call_asm or call_raw_asm. */
    readonly usesCalls: boolean,
    /** @internal The original bytes, kept to derive variants with other limits. */
    readonly bytes?: Uint8Array,
    /** @internal How the module was instrumented. */
    variant?: Variant,
    /** @internal The dense layout, when `variant.dense`. */
    dense?: DenseLayout,
    /** @internal The guest's edgeless_mem_clear exists and does nothing (see {@link clearIsNoop}). */
    clearIsNoop = false,
  ) {
    this.clearIsNoop = clearIsNoop
    // A precompiled module may carry the instrumentation already (the .module of a FunctionModule).
    const exports = variant ? undefined : WebAssembly.Module.exports(module)
    this.metered = variant ? variant.metered : exports!.some((e) => e.name === FUEL_EXPORT && e.kind === 'global')
    this.maxPages = dense ? dense.maxPages : variant?.maxPages
    this.dense = dense
    this.variant = variant
    this.instrumented = variant
      ? variant.metered || variant.maxPages !== undefined || variant.dense
      : exports!.some((e) => e.name === RESET_EXPORT && e.kind === 'function')
  }

  /** @internal The module was rewritten for limits: it exports the reset function and the failed-growth flag (lib/wasm/meter.ts). */
  readonly instrumented: boolean
  /** @internal What the module was prepared for (undefined: precompiled). */
  readonly variant: Variant | undefined
  /**
   * @internal The original module's edgeless_mem_clear is empty (the Rust std SDK's): its
   * allocator is never reset behind the host's back, so the host may keep one block of
   * guest memory for sender ids, out slots and small payloads across invocations instead of
   * allocating and freeing them for every message (lib/wasm/instance.ts). Read from the
   * bytes before any instrumentation; false for precompiled modules.
   */
  readonly clearIsNoop: boolean
}

/** How a module is prepared: a fuel meter or not, the memory cap asked for, dense memory or not. */
interface Variant {
  metered: boolean
  maxPages: number | undefined
  dense: boolean
}

/** The instrumentation `limits` ask for: a fuel meter unless the fuel is infinite, a cap in pages. */
function variantOf(limits: GuestLimits, dense: boolean): Variant {
  return {
    metered: limits.fuel !== Infinity,
    maxPages: limits.maxMemoryBytes === undefined ? undefined : Math.floor(limits.maxMemoryBytes / 65536),
    dense,
  }
}

/** Reject limits that cannot mean anything, naming the option. */
function checkLimits(limits: GuestLimits, label: string): void {
  const { fuel, maxMemoryBytes: mem } = limits
  if (typeof fuel !== 'number' || Number.isNaN(fuel) || fuel <= 0) {
    throw new EdgelessError(
      'invalid-argument',
      `The fuel of ${label} must be a positive number of fuel units per invocation, or Infinity to turn metering off; got ${String(fuel)}.`,
      { fuel },
    )
  }
  if (mem !== undefined && (typeof mem !== 'number' || !Number.isFinite(mem) || mem < 65536)) {
    throw new EdgelessError(
      'invalid-argument',
      `The memory cap (maxMemoryBytes) of ${label} must be a number of bytes, at least 65536 (one wasm page); got ${String(mem)}. Leave it out for no cap.`,
      { maxMemoryBytes: mem },
    )
  }
}

// Compiled modules are immutable and shareable, so one cache serves every runtime in the
// process. Keyed by content hash and instrumentation (metered or not, memory cap): the same
// bytes from two paths compile once per set of limits. The fuel budget itself is not part
// of the key: it is set by the host per instance, so every budget shares one metered module.
const cache = new LRUCache<string, Promise<FunctionModule>>({ max: 128 })
let precompiledCount = 0

/** Forget every cached compiled module (tests, or to release memory). */
export function clearModuleCache(): void {
  cache.clear()
}

/** The default loader of the core: `fetch` for URLs. Strings without a scheme need the Node entry or a custom loader. */
export const fetchLoader: SourceLoader = async (ref) => {
  const url = typeof ref === 'string' ? ref : ref.href
  if (typeof ref === 'string' && !/^[a-z][a-z0-9+.-]*:/i.test(ref) && typeof (globalThis as { location?: unknown }).location === 'undefined') {
    throw new EdgelessError(
      'load-failed',
      `Cannot load "${ref}": this build of edgeless has no file access. In Node import from 'edgeless' (its Node entry reads files), pass the bytes, or give the Runtime a \`loadSource\` function.`,
      { source: ref },
    )
  }
  const res = await fetch(url)
  if (!res.ok) throw new EdgelessError('load-failed', `Fetching ${url} answered HTTP ${res.status}. Check the URL.`, { source: url, status: res.status })
  return new Uint8Array(await res.arrayBuffer())
}

function describe(source: ModuleSource): string {
  if (typeof source === 'string') return source
  if (source instanceof URL) return source.href
  return 'module'
}

/**
 * Resolve any {@link ModuleSource} to a validated {@link FunctionModule} instrumented for
 * `limits` (fuel meter, memory cap), compiling once per distinct binary and limits.
 * A FunctionModule prepared for other limits is re-derived from its original bytes.
 * A precompiled `WebAssembly.Module` cannot be rewritten: it runs as it is (and cannot be dense).
 * `dense`: rewrite it so that its instances share memories (lib/wasm/dense.ts).
 */
export async function loadFunctionModule(
  source: ModuleSource,
  loader: SourceLoader,
  label = describe(source),
  limits: GuestLimits = UNLIMITED,
  dense = false,
): Promise<FunctionModule> {
  checkLimits(limits, label)
  const want = variantOf(limits, dense)
  if (source instanceof FunctionModule) {
    const v = source.variant
    if (!source.bytes || (v && v.metered === want.metered && v.maxPages === want.maxPages && v.dense === want.dense)) {
      if (dense && !source.dense) throw precompiledDense(label)
      return source
    }
    return cached(source.bytes, source.hash, label, want)
  }
  if (source instanceof WebAssembly.Module) {
    if (dense) throw precompiledDense(label)
    const shape = shapeOfCompiled(source)
    validateShape(shape, label)
    const usesCalls = shape.imports.some((i) => (SUSPENDING_IMPORTS as readonly string[]).includes(i.name))
    const canSuspend = shape.exports.some((e) => e.name === 'asyncify_start_unwind')
    return new FunctionModule(source, shape, `precompiled:${++precompiledCount}`, canSuspend, usesCalls)
  }
  let bytes: Uint8Array
  // Copies: the bytes are kept (to derive variants) and must not change under the hash.
  if (source instanceof Uint8Array) bytes = source.slice()
  else if (source instanceof ArrayBuffer) bytes = new Uint8Array(source.slice(0))
  else if (typeof source === 'string' || source instanceof URL) {
    try {
      bytes = await loader(source)
    } catch (e) {
      if (e instanceof EdgelessError) throw e
      throw new EdgelessError('load-failed', `Could not read ${label}: ${(e as Error).message}. Check the path or URL.`, { source: label }, { cause: e })
    }
  } else {
    throw new EdgelessError('invalid-argument', `A module source must be bytes, a WebAssembly.Module, a URL or a path; got ${typeof source}.`)
  }
  return cached(bytes, await sha256Hex(bytes), label, want)
}

function precompiledDense(label: string): EdgelessError {
  return new EdgelessError(
    'invalid-argument',
    `${label} is a precompiled WebAssembly.Module, which cannot be rewritten for dense memory. Pass its bytes (or a path or URL) instead, or spawn it without \`dense\`.`,
    {},
  )
}

function cached(bytes: Uint8Array, hash: string, label: string, want: Variant): Promise<FunctionModule> {
  const key = `${hash}:${want.metered ? 'fuel' : 'nofuel'}:${want.maxPages ?? 'nocap'}:${want.dense ? 'dense' : 'own'}`
  let entry = cache.get(key)
  if (!entry) {
    entry = compile(bytes, hash, label, want)
    cache.set(key, entry)
    // A failed compile must not stay cached: the next attempt reports afresh.
    entry.catch(() => {
      if (cache.get(key) === entry) cache.delete(key)
    })
  }
  return entry
}

async function compile(bytes: Uint8Array, hash: string, label: string, want: Variant): Promise<FunctionModule> {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new EdgelessError(
      'invalid-module',
      `${label} is not a WebAssembly module (${bytes.length} bytes, no "\\0asm" header). Point to the .wasm file built for wasm32-unknown-unknown.`,
      { source: label, size: bytes.length },
    )
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new EdgelessError(
      'invalid-module',
      `${label} is a WebAssembly component or an unsupported binary version; EDGELESS functions are core modules (version 1). Build for wasm32-unknown-unknown.`,
      { source: label },
    )
  }
  // Validating is cheaper than compiling; a compile runs only for the engine's message.
  if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) {
    try {
      await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)
    } catch (e) {
      throw new EdgelessError(
        'invalid-module',
        `${label} failed to compile: ${(e as Error).message}. The file may be truncated or corrupt; rebuild it.`,
        { source: label },
        { cause: e },
      )
    }
  }
  const shape = parseModuleShape(bytes)
  validateShape(shape, label)
  const usesCalls = shape.imports.some((i) => (SUSPENDING_IMPORTS as readonly string[]).includes(i.name))
  // A dense instance always has a cap: it bounds the region its memory lives in.
  const maxPages = want.dense ? densePages(shape.memory?.initial ?? 0, shape.memory?.maximum, want.maxPages, label) : want.maxPages
  // The meter and the cap go in first: asyncify then treats the meter as ordinary guest code.
  let code = want.metered || maxPages !== undefined ? instrumentModule(bytes, { fuel: want.metered, maxPages }, label) : bytes
  if (usesCalls) code = await asyncifyModule(code, label)
  // Dense memory last: asyncify's own loads and stores must be confined too.
  let layout: DenseLayout | undefined
  if (want.dense) ({ bytes: code, layout } = densify(code, canShareMemory(), label))
  let module: WebAssembly.Module
  try {
    module = await WebAssembly.compile(code as Uint8Array<ArrayBuffer>)
  } catch (e) {
    if (code === bytes)
      throw new EdgelessError(
        'invalid-module',
        `${label} failed to compile: ${(e as Error).message}. The file may be truncated or corrupt; rebuild it.`,
        { source: label },
        { cause: e },
      )
    throw new EdgelessError(
      'invalid-module',
      `${label} failed to compile after being prepared for its limits and calls: ${(e as Error).message}. This is a bug in edgeless; spawn it with \`fuel: Infinity\` and no memory cap to run it as it is.`,
      { source: label },
      { cause: e },
    )
  }
  return new FunctionModule(module, shape, hash, usesCalls, usesCalls, bytes, want, layout, exportsEmptyFunction(bytes, 'edgeless_mem_clear'))
}
