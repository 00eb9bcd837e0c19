/**
 * The shape of a wasm module (imports, exports, signatures) read from its bytes, for
 * validation before compiling.
 * @packageDocumentation
 */
import { EdgelessError } from '../errors'
import { Cursor } from './cursor'

/** A function signature, in WebAssembly text notation (`i32`, `i64`, ...). */
export interface FuncSig {
  params: string[]
  results: string[]
}

/** What the host needs to know about a module before instantiating it. */
export interface ModuleShape {
  imports: Array<{ module: string; name: string; kind: 'function' | 'table' | 'memory' | 'global' | 'tag'; sig?: FuncSig }>
  exports: Array<{ name: string; kind: 'function' | 'table' | 'memory' | 'global' | 'tag'; sig?: FuncSig }>
  /** Declared limits of the first memory (defined or imported), in 64 KiB pages. */
  memory?: { initial: number; maximum?: number }
  /** False when the type section uses encodings this parser does not read (GC types). */
  signaturesKnown: boolean
}

const KINDS = ['function', 'table', 'memory', 'global', 'tag'] as const
const VALTYPES: Record<number, string> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128', 0x70: 'funcref', 0x6f: 'externref' }

/**
 * Read the type, import, function, memory and export sections of a wasm binary.
 * Only called on bytes that `WebAssembly.compile` accepted, so structural errors here
 * mean an encoding this reader does not know; they are reported as `invalid-module`.
 */
export function parseModuleShape(bytes: Uint8Array): ModuleShape {
  const r = new Cursor(bytes)
  const shape: ModuleShape = { imports: [], exports: [], signaturesKnown: true }
  const types: Array<FuncSig | undefined> = []
  const funcTypes: Array<number> = [] // type index of every function, imports first
  try {
    r.pos = 8
    while (r.pos < bytes.length) {
      const id = r.byte()
      const size = r.u32()
      const end = r.pos + size
      if (id === 1) {
        const n = r.u32()
        for (let i = 0; i < n; i++) {
          const form = r.byte()
          if (form !== 0x60) {
            shape.signaturesKnown = false
            break
          }
          const params: string[] = []
          const results: string[] = []
          for (let k = r.u32(); k > 0; k--) params.push(VALTYPES[r.byte()] ?? 'other')
          for (let k = r.u32(); k > 0; k--) results.push(VALTYPES[r.byte()] ?? 'other')
          types.push({ params, results })
        }
      } else if (id === 2) {
        const n = r.u32()
        for (let i = 0; i < n; i++) {
          const module = r.name()
          const name = r.name()
          const kindByte = r.byte()
          const kind = KINDS[kindByte]
          if (!kind) throw new RangeError(`import kind ${kindByte}`)
          if (kind === 'function') {
            const t = r.u32()
            funcTypes.push(t)
            shape.imports.push({ module, name, kind, ...(types[t] ? { sig: types[t] } : {}) })
          } else {
            if (kind === 'table') {
              r.byte()
              r.limits()
            } else if (kind === 'memory') {
              const lim = r.limits()
              shape.memory ??= lim
            } else if (kind === 'global') {
              r.byte()
              r.byte()
            } else {
              r.byte()
              r.u32()
            }
            shape.imports.push({ module, name, kind })
          }
        }
      } else if (id === 3) {
        for (let n = r.u32(); n > 0; n--) funcTypes.push(r.u32())
      } else if (id === 5) {
        const n = r.u32()
        if (n > 0) {
          const lim = r.limits()
          shape.memory ??= lim
        }
      } else if (id === 7) {
        const n = r.u32()
        for (let i = 0; i < n; i++) {
          const name = r.name()
          const kind = KINDS[r.byte()]
          const index = r.u32()
          if (!kind) throw new RangeError('export kind')
          const t = kind === 'function' ? funcTypes[index] : undefined
          const sig = t === undefined ? undefined : types[t]
          shape.exports.push({ name, kind, ...(sig ? { sig } : {}) })
        }
      }
      r.pos = end
    }
  } catch (e) {
    throw new EdgelessError(
      'invalid-module',
      `Could not read the module's sections (${(e as Error).message}). Rebuild it for wasm32 (core WebAssembly, no component model).`,
      {},
      { cause: e },
    )
  }
  return shape
}

/** Format a signature as `(i32, i32) -> i32`. */
export function formatSig(sig: FuncSig): string {
  return `(${sig.params.join(', ')}) -> ${sig.results.length ? sig.results.join(', ') : '()'}`
}
