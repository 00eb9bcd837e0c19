import { EdgelessError } from '../errors'
import { Out, SectionTable, UnknownOpcode, fmtBytes, immediates, lebSize, readLocals, readModuleIndex, reassemble } from './binary'
import { Cursor } from './cursor'

/**
 * Dense memory: many instances in one wasm memory, each in a region of its own.
 *
 * Why. V8 (64-bit, with its trap handler) reserves 10 GiB of address space for every wasm
 * memory, whatever its declared maximum, so a process holds about 13,000 instances that own
 * a memory each. And every new memory counts as external memory to V8's GC, which starts a
 * full collection per ~64 MiB of it: spawning slows down as live instances accumulate.
 *
 * How. The module is rewritten at load time to import its memory instead of defining it.
 * The host makes big memories ("chunks", see regions.ts) and hands each instance a region of
 * one: `regionBytes` (a power of two) followed by {@link GUARD_BYTES} no instance reaches.
 * Every access is confined to the instance's region by a mask and moved by its base:
 *
 *     entry:  global.get $base  local.set $b
 *     load:   (addr) i32.const MASK  i32.and  local.get $b  i32.add  T.load offset
 *     store:  (addr value) local.set $tmp  <the same>  local.get $tmp  T.store offset
 *
 * An offset below the guard size stays in the instruction (it can only reach into the guard);
 * a bigger one is added to the address before the mask. The mask makes isolation hold for
 * any address a guest computes, in bounds or not: an access the original module would trap
 * on (beyond its memory size) stays inside its own region instead of trapping. Accesses
 * within the memory size behave exactly as before.
 *
 * The memory size is virtual: an added global `$pages` answers `memory.size`, and
 * `memory.grow` calls an added helper that grows it up to the module's maximum (which the
 * loader sets from the memory cap, see densePages). `memory.copy` and `memory.fill` go through
 * helpers that bounds-check against the virtual size (a trap, as the engine would) and add
 * the base. Active data segments are taken out of the module and copied into the region by
 * the host when it instantiates (the base is not known before).
 *
 * A start function would run during instantiation, before the host can set the base: it is
 * exported as {@link START_EXPORT} instead, and the host calls it right after placing the
 * instance (AssemblyScript modules have one).
 *
 * Refused, with an `invalid-module` error that says to spawn without `dense`: an imported
 * or shared or 64-bit memory, several memories, passive data segments
 * (`memory.init`, `data.drop`), a data segment at a non-constant offset, and the memory
 * instructions of SIMD and atomics. Rust and AssemblyScript guests use none of these.
 *
 * Runs last, after the meter and asyncify (lib/wasm/loader.ts): asyncify's own loads and
 * stores (saving the stack of a suspended guest) must be confined too.
 * @internal
 */

/** The import (module, name) the rewritten module takes its memory from. */
export const DENSE_IMPORT = ['edgeless_dense', 'memory'] as const
/** The exported mutable i32 global the host sets to the instance's base, before any call. */
export const BASE_EXPORT = 'edgeless_dense_base'
/** The module's start function, exported: the host calls it once the instance is placed. */
export const START_EXPORT = 'edgeless_dense_start'
/** The exported mutable i32 global holding the instance's memory size in pages (memory.size). */
export const PAGES_EXPORT = 'edgeless_dense_pages'
/**
 * Bytes after each region that no instance reaches: the widest access (8 bytes; SIMD is
 * refused) at the last byte of a region plus the largest offset kept in an instruction.
 */
export const GUARD_BYTES = 65536
/** memarg offsets below this stay in the instruction (they reach at most into the guard). */
const KEPT_OFFSET = GUARD_BYTES - 16
/** The largest region: 1 GiB, so that a 4 GiB chunk holds at least three. */
export const MAX_REGION_PAGES = 16384

/** Where an instance's memory comes from, for the host. */
export interface DenseLayout {
  /** Bytes of a region: a power of two (the mask is regionBytes - 1). */
  readonly regionBytes: number
  /** Distance between two regions' bases: the region and its guard. */
  readonly strideBytes: number
  /** Pages the memory starts with (memory.size before any growth). */
  readonly initialPages: number
  /** Most pages memory.grow gives (the module's maximum after the memory cap). */
  readonly maxPages: number
  /** The active data segments, copied into the region at instantiation. */
  readonly data: ReadonlyArray<{ readonly offset: number; readonly bytes: Uint8Array }>
  /** The memory is imported as shared (chunks are SharedArrayBuffer-backed; see regions.ts). */
  readonly shared: boolean
}

/**
 * Pages a dense instance may grow by at least, by default: room for a few copies of a big
 * payload (a Rust guest copies a message two or three times). A bigger region costs address
 * space only (256 Rust guests of 16 MiB regions per chunk), no resident memory.
 */
const DEFAULT_HEADROOM_PAGES = 128

/**
 * The memory cap a dense instance gets: the one asked for, else the module's declared maximum
 * or twice its initial size (at least 8 MiB more) if that is less, within {@link MAX_REGION_PAGES}.
 * Its region is the next power of two.
 */
export function densePages(initial: number, declaredMax: number | undefined, requested: number | undefined, label: string): number {
  const pages = requested ?? Math.min(declaredMax ?? Infinity, Math.max(initial * 2, initial + DEFAULT_HEADROOM_PAGES))
  if (pages > MAX_REGION_PAGES) {
    throw new EdgelessError(
      'invalid-argument',
      `${label} asks for a ${fmtBytes(pages * 65536)} memory cap, more than a dense instance's region can hold (${fmtBytes(MAX_REGION_PAGES * 65536)}). Lower maxMemoryBytes, or spawn it without \`dense\`.`,
      { maxPages: pages, limitPages: MAX_REGION_PAGES },
    )
  }
  // A cap asked for below the initial size is left to the meter, which refuses it by name.
  return requested ?? Math.max(pages, initial, 1)
}

/**
 * Whether an instance is dense: as asked (spawn option or workflow annotation), else the
 * runtime's default, which leaves worker-isolated instances alone (asking for both is
 * refused by the spawn).
 */
export function denseFor(asked: boolean | undefined, runtimeDefault: boolean, isolation: string | undefined): boolean {
  return asked ?? (runtimeDefault && isolation !== 'worker')
}

/** Refusals carry the reason; densify turns them into one typed error. */
class Unsupported extends Error {}

/**
 * Rewrite `bytes` (a validated module, after the meter and asyncify) for dense memory.
 * Throws `invalid-module` when the module uses something dense memory cannot confine.
 */
export function densify(bytes: Uint8Array, shared: boolean, label: string): { bytes: Uint8Array; layout: DenseLayout } {
  try {
    return rewrite(bytes, shared)
  } catch (e) {
    if (e instanceof EdgelessError) throw e
    const what =
      e instanceof UnknownOpcode
        ? `an instruction it does not know (opcode ${e.message})`
        : e instanceof Unsupported
          ? e.message
          : `an encoding it could not read (${(e as Error).message})`
    throw new EdgelessError(
      'invalid-module',
      `${label} cannot run with dense memory: it uses ${what}. Spawn it without \`dense\` (each instance then has a memory of its own).`,
      { reason: what },
      { cause: e },
    )
  }
}

/** A signed LEB128 i32 (i32.const immediates). */
function s32(c: Cursor): number {
  let result = 0
  let shift = 0
  let byte: number
  do {
    byte = c.byte()
    if (shift < 32) result |= (byte & 0x7f) << shift
    shift += 7
  } while (byte & 0x80)
  if (shift < 32 && byte & 0x40) result |= -1 << shift
  return result | 0
}

function rewrite(bytes: Uint8Array, shared: boolean): { bytes: Uint8Array; layout: DenseLayout } {
  const table = new SectionTable(bytes)
  const find = table.find
  const replaced = new Map<number, Uint8Array | null>()

  // A start function would run during instantiation, before the host sets the base: it is
  // exported instead, and the host calls it once the instance is placed.
  const startSec = find(8)
  const startFunc = startSec ? new Cursor(bytes, startSec.start, startSec.end).u32() : undefined
  if (startSec) replaced.set(8, null)

  const { importedFuncs, importedGlobals, importedMemories, typeParams, funcTypes } = readModuleIndex(table)
  // An imported memory cannot be moved into a region.
  if (importedMemories) throw new Unsupported('an imported memory')

  // The memory: exactly one, 32-bit, not shared, with a maximum (the loader's cap).
  const mem = find(5)
  if (!mem) throw new Unsupported('no memory of its own')
  const mc = new Cursor(bytes, mem.start, mem.end)
  const memories = mc.u32()
  if (memories !== 1) throw new Unsupported(memories === 0 ? 'no memory of its own' : `${memories} memories`)
  const flags = mc.byte()
  if (flags & 2) throw new Unsupported('a shared memory')
  if (flags & 4) throw new Unsupported('a 64-bit memory')
  const initialPages = mc.u32()
  const maxPages = flags & 1 ? mc.u32() : Math.max(initialPages * 2, initialPages + DEFAULT_HEADROOM_PAGES)
  if (maxPages > MAX_REGION_PAGES)
    throw new Unsupported(
      `a memory maximum of ${fmtBytes(maxPages * 65536)}, more than a region holds (${fmtBytes(MAX_REGION_PAGES * 65536)}); set maxMemoryBytes lower`,
    )
  let regionBytes = 65536
  while (regionBytes < maxPages * 65536) regionBytes *= 2

  const typeCount = typeParams.length
  const definedFuncs = funcTypes.length
  const definedGlobals = table.count(6)

  const baseGlobal = importedGlobals + definedGlobals
  const pagesGlobal = baseGlobal + 1
  const growFunc = importedFuncs + definedFuncs
  const copyFunc = growFunc + 1
  const fillFunc = growFunc + 2
  const growType = typeCount
  const threeType = typeCount + 1

  // Data: the active segments at constant offsets, for the host to copy.
  const data: Array<{ offset: number; bytes: Uint8Array }> = []
  const dataSec = find(11)
  if (dataSec) {
    const c = new Cursor(bytes, dataSec.start, dataSec.end)
    for (let n = c.u32(); n > 0; n--) {
      const kind = c.u32()
      if (kind === 1) throw new Unsupported('a passive data segment (memory.init)')
      if (kind === 2 && c.u32() !== 0) throw new RangeError('a data segment for memory other than 0')
      if (kind > 2) throw new RangeError(`data segment kind ${kind}`)
      if (c.byte() !== 0x41) throw new Unsupported('a data segment at an offset computed at instantiation')
      const offset = s32(c) >>> 0
      if (c.byte() !== 0x0b) throw new Unsupported('a data segment at an offset computed at instantiation')
      const seg = c.bytes(c.u32())
      if (offset + seg.length > initialPages * 65536)
        throw new Unsupported(`a data segment at [${offset}, ${offset + seg.length}) beyond its initial memory (the engine would fail to instantiate it)`)
      if (seg.length) data.push({ offset, bytes: seg.slice() })
    }
  }

  replaced.set(11, null) // data: copied by the host
  replaced.set(12, null) // data count: no memory.init or data.drop remain
  replaced.set(5, null) // the memory is imported now

  replaced.set(
    2,
    table.appended(2, 1, (o) => {
      o.name(DENSE_IMPORT[0]).name(DENSE_IMPORT[1]).byte(2)
      // Declared 0..65536 pages: a chunk of any size fits. Shared memories must declare a maximum.
      if (shared) o.byte(3).u32(0).u32(65536)
      else o.byte(0).u32(0)
    }),
  )
  replaced.set(
    1,
    table.appended(1, 2, (o) =>
      o
        .bytes(Uint8Array.of(0x60, 1, 0x7f, 1, 0x7f)) // grow: (i32) -> i32
        .bytes(Uint8Array.of(0x60, 3, 0x7f, 0x7f, 0x7f, 0)),
    ),
  ) // copy, fill: (i32 i32 i32) -> ()
  replaced.set(
    3,
    table.appended(3, 3, (o) => o.u32(growType).u32(threeType).u32(threeType)),
  )
  replaced.set(
    6,
    table.appended(6, 2, (o) =>
      o
        .byte(0x7f)
        .byte(1)
        .byte(0x41)
        .byte(0)
        .byte(0x0b) // $base: mut i32 = 0 (set by the host)
        .byte(0x7f)
        .byte(1)
        .byte(0x41)
        .s64(initialPages)
        .byte(0x0b),
    ),
  ) // $pages: mut i32 = initial
  const names = table.exportNames()
  for (const name of [BASE_EXPORT, PAGES_EXPORT, START_EXPORT]) {
    if (names.has(name))
      throw new EdgelessError(
        'invalid-module',
        `The module already exports "${name}", a name dense memory reserves. Rename that export, or spawn without \`dense\`.`,
        { export: name },
      )
  }
  replaced.set(
    7,
    table.appended(7, startFunc === undefined ? 2 : 3, (o) => {
      o.name(BASE_EXPORT).byte(3).u32(baseGlobal).name(PAGES_EXPORT).byte(3).u32(pagesGlobal)
      if (startFunc !== undefined) o.name(START_EXPORT).byte(0).u32(startFunc)
    }),
  )

  // Code: confine every access; memory.size/grow/copy/fill through the globals and helpers.
  {
    const s = find(10)
    const o = new Out(s ? (s.end - s.start) * 2 + 256 : 256)
    const maskOps = new Out()
      .byte(0x41)
      .s32((regionBytes - 1) | 0)
      .byte(0x71)
      .result()
    const ctx: BodyCtx = { maskOps, base: baseGlobal, pages: pagesGlobal, growFunc, copyFunc, fillFunc, params: 0 }
    o.u32(definedFuncs + 3)
    if (s) {
      const c = new Cursor(bytes, s.start, s.end)
      const n = c.u32()
      const out = new Out(4096)
      for (let i = 0; i < n; i++) {
        const size = c.u32()
        const start = c.pos
        const params = typeParams[funcTypes[i] ?? -1]
        if (params === undefined) throw new RangeError(`function ${i} has no type`)
        out.len = 0
        ctx.params = params
        confineBody(bytes, start, start + size, out, ctx)
        o.u32(out.len).bytes(out.result())
        c.pos = start + size
      }
    }
    const B = new Out().u32(baseGlobal).result()
    const P = new Out().u32(pagesGlobal).result()
    // (func $grow (param $delta i32) (result i32)
    //   (if (result i32) (i32.gt_u (local.get $delta) (i32.sub (i32.const MAX) (global.get $pages)))
    //     (then (i32.const -1))
    //     (else (global.get $pages)
    //           (global.set $pages (i32.add (global.get $pages) (local.get $delta))))))
    // The pages are fresh (regions are never handed out twice), so they read as zero.
    const grow = new Out()
      .byte(0)
      .byte(0x20)
      .byte(0)
      .byte(0x41)
      .s64(maxPages)
      .byte(0x23)
      .bytes(P)
      .byte(0x6b)
      .byte(0x4b)
      .byte(0x04)
      .byte(0x7f)
      .byte(0x41)
      .byte(0x7f)
      .byte(0x05)
      .byte(0x23)
      .bytes(P)
      .byte(0x23)
      .bytes(P)
      .byte(0x20)
      .byte(0)
      .byte(0x6a)
      .byte(0x24)
      .bytes(P)
      .byte(0x0b)
      .byte(0x0b)
    o.u32(grow.len).bytes(grow.result())
    // Bounds of [a, a+n) against the memory size (local 3): traps as the engine would.
    //   (local.set $size (i32.shl (global.get $pages) (i32.const 16)))
    //   (if (i32.or (i32.gt_u n size) (i32.gt_u a (i32.sub size n)))
    //     (then (drop (i32.load8_u (i32.const -1))) unreachable))
    const check = (o: Out, a: number, n: number) => {
      o.byte(0x20).byte(n).byte(0x20).byte(3).byte(0x4b)
      o.byte(0x20).byte(a).byte(0x20).byte(3).byte(0x20).byte(n).byte(0x6b).byte(0x4b).byte(0x72)
      // Trap as the engine does, with "memory access out of bounds": a load at the last
      // address of the 4 GiB space, beyond every chunk (unreachable after it, should one not be).
      o.byte(0x04).byte(0x40).byte(0x41).byte(0x7f).byte(0x2d).byte(0).byte(0).byte(0x1a).byte(0x00).byte(0x0b)
    }
    const size = (o: Out) => o.byte(0x23).bytes(P).byte(0x41).byte(16).byte(0x74).byte(0x21).byte(3)
    // (func $copy (param $dst $src $n i32) (local $size i32) ... (memory.copy (+ base dst) (+ base src) n))
    const copy = new Out().byte(1).byte(1).byte(0x7f)
    size(copy)
    check(copy, 0, 2)
    check(copy, 1, 2)
    copy.byte(0x20).byte(0).byte(0x23).bytes(B).byte(0x6a).byte(0x20).byte(1).byte(0x23).bytes(B).byte(0x6a).byte(0x20).byte(2)
    copy.byte(0xfc).u32(10).byte(0).byte(0).byte(0x0b)
    o.u32(copy.len).bytes(copy.result())
    // (func $fill (param $dst $value $n i32) (local $size i32) ... (memory.fill (+ base dst) value n))
    const fill = new Out().byte(1).byte(1).byte(0x7f)
    size(fill)
    check(fill, 0, 2)
    fill.byte(0x20).byte(0).byte(0x23).bytes(B).byte(0x6a).byte(0x20).byte(1).byte(0x20).byte(2)
    fill.byte(0xfc).u32(11).byte(0).byte(0x0b)
    o.u32(fill.len).bytes(fill.result())
    replaced.set(10, o.result())
  }

  return {
    bytes: reassemble(table, replaced),
    layout: { regionBytes, strideBytes: regionBytes + GUARD_BYTES, initialPages, maxPages, data, shared },
  }
}

interface BodyCtx {
  /** `i32.const MASK  i32.and`, encoded once. */
  maskOps: Uint8Array
  base: number
  pages: number
  growFunc: number
  copyFunc: number
  fillFunc: number
  /** Parameters of the function being rewritten (its first locals). */
  params: number
}

/** Value type of what each store (0x36..0x3e) stores: the scratch local it goes through (0 i32, 1 i64, 2 f32, 3 f64). */
const STORE_SCRATCH = [0, 1, 2, 3, 0, 0, 1, 1, 1]
const SCRATCH_TYPES = [0x7f, 0x7e, 0x7d, 0x7c]

/** SIMD sub-opcodes that access memory. */
function simdTouchesMemory(sub: number): boolean {
  return sub <= 11 || sub === 92 || sub === 93 || (sub >= 84 && sub <= 91)
}

/**
 * Rewrite one function body [start, end) into `o`: confine its loads and stores, route its
 * memory.size/grow/copy/fill. Stores get four scratch locals (i32, i64, f32, f64) appended
 * after the function's own, to hold the value while the address is computed.
 */
function confineBody(bytes: Uint8Array, start: number, end: number, o: Out, x: BodyCtx): void {
  const c = new Cursor(bytes, start, end)
  const { entries, declared } = readLocals(c)
  const localsEnd = c.pos
  // Added locals: $b (the base, read from the global once at entry: a register, where the
  // global is a load from the instance on every access, ~1.6x the time of a memory-bound
  // loop), then the four store scratch locals.
  const b = x.params + declared
  const scratch = b + 1
  const code = new Out(end - localsEnd + 64)
  const confineOps = new Out(8).bytes(x.maskOps).byte(0x20).u32(b).byte(0x6a).result()
  let stores = false
  let accesses = false
  let copied = localsEnd
  const flush = (to: number) => {
    code.bytes(bytes.subarray(copied, to))
  }
  /** (addr) -> (base + (addr + big offset) & mask); returns the offset left in the instruction. */
  const confine = (offset: number): number => {
    let kept = offset
    if (offset >= KEPT_OFFSET) {
      code
        .byte(0x41)
        .s32(offset | 0)
        .byte(0x6a)
      kept = 0
    }
    code.bytes(confineOps)
    return kept
  }
  while (c.pos < end) {
    const at = c.pos
    const op = c.byte()
    if (op >= 0x28 && op <= 0x3e) {
      accesses = true
      const align = c.u32()
      if (align & 0x40) throw new Unsupported('multiple memories')
      const offset = c.u32()
      flush(at)
      if (op >= 0x36) {
        stores = true
        const local = scratch + STORE_SCRATCH[op - 0x36]!
        code.byte(0x21).u32(local)
        const kept = confine(offset)
        code.byte(0x20).u32(local).byte(op).u32(align).u32(kept)
      } else {
        const kept = confine(offset)
        code.byte(op).u32(align).u32(kept)
      }
      copied = c.pos
      continue
    }
    switch (op) {
      case 0x3f: // memory.size
        if (c.u32() !== 0) throw new Unsupported('multiple memories')
        flush(at)
        code.byte(0x23).u32(x.pages)
        copied = c.pos
        continue
      case 0x40: // memory.grow
        if (c.u32() !== 0) throw new Unsupported('multiple memories')
        flush(at)
        code.byte(0x10).u32(x.growFunc)
        copied = c.pos
        continue
      case 0xfc: {
        const sub = c.u32()
        if (sub === 8 || sub === 9) throw new Unsupported('passive data segments (memory.init, data.drop)')
        if (sub === 10 || sub === 11) {
          const mems = sub === 10 ? [c.u32(), c.u32()] : [c.u32()]
          if (mems.some((m) => m !== 0)) throw new Unsupported('multiple memories')
          flush(at)
          code.byte(0x10).u32(sub === 10 ? x.copyFunc : x.fillFunc)
          copied = c.pos
          continue
        }
        c.pos = at + 1
        immediates(c, op)
        continue
      }
      case 0xfd: {
        const sub = c.u32()
        if (simdTouchesMemory(sub)) throw new Unsupported('SIMD loads or stores')
        c.pos = at + 1
        immediates(c, op)
        continue
      }
      case 0xfe:
        throw new Unsupported('atomic memory instructions')
      default:
        immediates(c, op)
    }
  }
  flush(end)
  if (!accesses) {
    o.bytes(bytes.subarray(start, localsEnd)).bytes(code.result())
    return
  }
  // Locals: the function's own, $b, then the scratch locals when it stores; $b := $base.
  o.u32(entries + 1 + (stores ? 4 : 0)).bytes(bytes.subarray(start + lebSize(bytes, start), localsEnd))
  o.byte(1).byte(0x7f)
  if (stores) for (const t of SCRATCH_TYPES) o.byte(1).byte(t)
  o.byte(0x23).u32(x.base).byte(0x21).u32(b)
  o.bytes(code.result())
}
