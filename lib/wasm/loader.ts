import { UNLIMITED, type GuestLimits } from './limits'
import { LRUCache } from 'lru-cache'
import { EdgelessError } from '../errors'
import { SUSPENDING_IMPORTS, shapeOfCompiled, validateShape } from './abi'
import { asyncifyModule } from './asyncify'
import { parseModuleShape, type ModuleShape } from './parse'

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
  /** @internal */
  constructor(
    /** The compiled module (after the asyncify transformation when `canSuspend`). */
    readonly module: WebAssembly.Module,
    /** Imports and exports as read from the binary. */
    readonly shape: ModuleShape,
    /** SHA-256 of the original bytes (hex), or `precompiled:<n>` for a WebAssembly.Module source. */
    readonly hash: string,
    /** True when the guest can block on a call whose answer is not immediately available. */
    readonly canSuspend: boolean,
    /** True when the guest imports call_asm or call_raw_asm. */
    readonly usesCalls: boolean,
  ) {}
}

// Compiled modules are immutable and shareable, so one cache serves every runtime in the
// process. Keyed by content hash: the same bytes from two paths compile once.
const cache = new LRUCache<string, Promise<FunctionModule>>({ max: 128 })
let precompiledCount = 0

/** Forget every cached compiled module (tests, or to release memory). */
export function clearModuleCache(): void {
  cache.clear()
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
  let s = ''
  for (const b of digest) s += b.toString(16).padStart(2, '0')
  return s
}

/** The default loader of the core: `fetch` for URLs. Strings without a scheme need the Node entry or a custom loader. */
export const fetchLoader: SourceLoader = async (ref) => {
  const url = typeof ref === 'string' ? ref : ref.href
  if (typeof ref === 'string' && !/^[a-z][a-z0-9+.-]*:/i.test(ref) && typeof (globalThis as { location?: unknown }).location === 'undefined') {
    throw new EdgelessError('load-failed', `Cannot load "${ref}": this build of edgeless has no file access. In Node import from 'edgeless' (its Node entry reads files), pass the bytes, or give the Runtime a \`loadSource\` function.`, { source: ref })
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

/** Resolve any {@link ModuleSource} to a validated {@link FunctionModule}, compiling once per distinct binary. */
export async function loadFunctionModule(source: ModuleSource, loader: SourceLoader, label = describe(source), _limits: GuestLimits = UNLIMITED): Promise<FunctionModule> {
  if (source instanceof FunctionModule) return source
  if (source instanceof WebAssembly.Module) {
    const shape = shapeOfCompiled(source)
    validateShape(shape, label)
    const usesCalls = shape.imports.some((i) => (SUSPENDING_IMPORTS as readonly string[]).includes(i.name))
    const canSuspend = shape.exports.some((e) => e.name === 'asyncify_start_unwind')
    return new FunctionModule(source, shape, `precompiled:${++precompiledCount}`, canSuspend, usesCalls)
  }
  let bytes: Uint8Array
  if (source instanceof Uint8Array) bytes = source
  else if (source instanceof ArrayBuffer) bytes = new Uint8Array(source)
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
  const hash = await sha256Hex(bytes)
  let entry = cache.get(hash)
  if (!entry) {
    entry = compile(bytes, hash, label)
    cache.set(hash, entry)
    // A failed compile must not stay cached: the next attempt reports afresh.
    entry.catch(() => { if (cache.get(hash) === entry) cache.delete(hash) })
  }
  return entry
}

async function compile(bytes: Uint8Array, hash: string, label: string): Promise<FunctionModule> {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new EdgelessError('invalid-module', `${label} is not a WebAssembly module (${bytes.length} bytes, no "\\0asm" header). Point to the .wasm file built for wasm32-unknown-unknown.`, { source: label, size: bytes.length })
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new EdgelessError('invalid-module', `${label} is a WebAssembly component or an unsupported binary version; EDGELESS functions are core modules (version 1). Build for wasm32-unknown-unknown.`, { source: label })
  }
  let compiled: WebAssembly.Module
  try {
    compiled = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)
  } catch (e) {
    throw new EdgelessError('invalid-module', `${label} failed to compile: ${(e as Error).message}. The file may be truncated or corrupt; rebuild it.`, { source: label }, { cause: e })
  }
  const shape = parseModuleShape(bytes)
  validateShape(shape, label)
  const usesCalls = shape.imports.some((i) => (SUSPENDING_IMPORTS as readonly string[]).includes(i.name))
  if (!usesCalls) return new FunctionModule(compiled, shape, hash, false, false)
  const transformed = await asyncifyModule(bytes, label)
  const module = await WebAssembly.compile(transformed as Uint8Array<ArrayBuffer>)
  return new FunctionModule(module, shape, hash, true, true)
}
