import { Cursor } from './cursor'

/**
 * Reading and writing wasm binaries, shared by the load-time rewriters: the fuel meter and
 * memory cap (meter.ts) and dense memory (dense.ts). Plain byte-level passes, no binaryen:
 * it would cost a second to load for every guest.
 * @internal
 */

/** Order of the known sections (ids), for inserting a section the module lacks. */
export const SECTION_ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11]

export interface Section {
  id: number
  start: number
  end: number
  name?: string
}

/** A growable byte buffer. */
export class Out {
  private buf: Uint8Array
  len = 0
  constructor(size = 1024) {
    this.buf = new Uint8Array(size)
  }
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.len + n) size *= 2
    const b = new Uint8Array(size)
    b.set(this.buf.subarray(0, this.len))
    this.buf = b
  }
  byte(v: number): this {
    this.room(1)
    this.buf[this.len++] = v
    return this
  }
  bytes(b: Uint8Array): this {
    this.room(b.length)
    this.buf.set(b, this.len)
    this.len += b.length
    return this
  }
  u32(v: number): this {
    let x = v >>> 0
    do {
      let byte = x & 0x7f
      x >>>= 7
      if (x !== 0) byte |= 0x80
      this.byte(byte)
    } while (x !== 0)
    return this
  }
  /** Signed LEB128 of an i32 (i32.const immediates), without the BigInt of {@link s64}. */
  s32(v: number): this {
    let x = v | 0
    for (;;) {
      const byte = x & 0x7f
      x >>= 7
      if ((x === 0 && (byte & 0x40) === 0) || (x === -1 && (byte & 0x40) !== 0)) return this.byte(byte)
      this.byte(byte | 0x80)
    }
  }
  /** Signed LEB128 of a safe integer (i64.const immediates). */
  s64(v: number): this {
    let x = BigInt(v)
    for (;;) {
      const byte = Number(x & 0x7fn)
      x >>= 7n
      if ((x === 0n && (byte & 0x40) === 0) || (x === -1n && (byte & 0x40) !== 0)) return this.byte(byte)
      this.byte(byte | 0x80)
    }
  }
  name(s: string): this {
    const b = new TextEncoder().encode(s)
    return this.u32(b.length).bytes(b)
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.len)
  }
}

/** Instructions a rewriter does not know: it refuses the module rather than guess their size. */
export class UnknownOpcode extends Error {}

export const SINGLE_BYTE_VALTYPES = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f])

/** Skip a block type: 0x40, a value type, or a type index (s33). */
export function blockType(c: Cursor): void {
  const b = c.b[c.pos]
  if (b === undefined) throw new RangeError('unexpected end of a function body')
  if (b === 0x40 || SINGLE_BYTE_VALTYPES.has(b)) {
    c.pos++
    return
  }
  if (b === 0x63 || b === 0x64) {
    c.pos++
    c.leb()
    return
  } // (ref null? ht)
  c.leb()
}

export function memarg(c: Cursor): void {
  const align = c.u32()
  if (align & 0x40) c.u32() // multi-memory: a memory index follows
  c.leb() // offset (u64 for memory64)
}

// Opcodes, by what follows them.
export const OP = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  try: 0x06,
  end: 0x0b,
  delegate: 0x18,
  memoryGrow: 0x40,
  call: 0x10,
} as const

/** Read one instruction's immediates (the opcode at c.pos - 1 was `op`). */
export function immediates(c: Cursor, op: number): void {
  if (op >= 0x45 && op <= 0xc4) return // numeric, sign extension: none
  if (op >= 0x28 && op <= 0x3e) {
    memarg(c)
    return
  } // loads and stores
  switch (op) {
    case 0x00:
    case 0x01:
    case 0x05:
    case 0x0b:
    case 0x0f:
    case 0x1a:
    case 0x1b:
    case 0x19:
    case 0xd1:
    case 0xd3:
      return
    case 0x02:
    case 0x03:
    case 0x04:
    case 0x06:
      blockType(c)
      return
    case 0x07:
    case 0x08:
    case 0x09:
    case 0x0c:
    case 0x0d:
    case 0x10:
    case 0x12:
    case 0x18:
    case 0x20:
    case 0x21:
    case 0x22:
    case 0x23:
    case 0x24:
    case 0x25:
    case 0x26:
    case 0xd2:
    case 0xd4:
    case 0xd5:
      c.u32()
      return
    case 0x0e: {
      // br_table
      for (let n = c.u32(); n > 0; n--) c.u32()
      c.u32()
      return
    }
    case 0x11:
    case 0x13: // call_indirect, return_call_indirect: type, table
      c.u32()
      c.u32()
      return
    case 0x1c: {
      // select t*
      for (let n = c.u32(); n > 0; n--) {
        const t = c.byte()
        if (t === 0x63 || t === 0x64) c.leb()
      }
      return
    }
    case 0x3f:
    case 0x40: // memory.size, memory.grow
      c.u32()
      return
    case 0x41:
    case 0x42:
      c.leb()
      return
    case 0x43:
      c.skip(4)
      return
    case 0x44:
      c.skip(8)
      return
    case 0xd0: {
      // ref.null ht
      const t = c.b[c.pos]
      if (t !== undefined && SINGLE_BYTE_VALTYPES.has(t)) c.pos++
      else c.leb()
      return
    }
    case 0xfc: {
      const sub = c.u32()
      if (sub <= 7) return // saturating truncations
      switch (sub) {
        case 8:
          c.u32()
          c.u32()
          return // memory.init data mem
        case 9:
        case 13:
        case 15:
        case 16:
        case 17:
          c.u32()
          return // data.drop, elem.drop, table.grow/size/fill
        case 10:
        case 12:
        case 14:
          c.u32()
          c.u32()
          return // memory.copy, table.init, table.copy
        case 11:
          c.u32()
          return // memory.fill
      }
      throw new UnknownOpcode(`0xfc ${sub}`)
    }
    case 0xfd: {
      const sub = c.u32()
      if (sub <= 11 || sub === 92 || sub === 93) {
        memarg(c)
        return
      } // v128 loads and stores
      if (sub === 12 || sub === 13) {
        c.skip(16)
        return
      } // v128.const, i8x16.shuffle
      if (sub >= 21 && sub <= 34) {
        c.skip(1)
        return
      } // extract/replace lane
      if (sub >= 84 && sub <= 91) {
        memarg(c)
        c.skip(1)
        return
      } // load/store lane
      if (sub <= 0x113) return // everything else in SIMD and relaxed SIMD: no immediates
      throw new UnknownOpcode(`0xfd ${sub}`)
    }
    case 0xfe: {
      const sub = c.u32()
      if (sub === 3) {
        c.skip(1)
        return
      } // atomic.fence
      if (sub <= 0x4e) {
        memarg(c)
        return
      }
      throw new UnknownOpcode(`0xfe ${sub}`)
    }
  }
  throw new UnknownOpcode(`0x${op.toString(16).padStart(2, '0')}`)
}

/** Bytes taken by the LEB128 at `pos`. */
export function lebSize(b: Uint8Array, pos: number): number {
  let n = 1
  while ((b[pos + n - 1]! & 0x80) !== 0) n++
  return n
}

/** 1048576 -> "1 MiB". */
export function fmtBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`
  return `${n} bytes`
}

/** The sections of `bytes` (after the 8-byte header), with a custom section's name. */
export function readSections(bytes: Uint8Array): Section[] {
  const sections: Section[] = []
  const top = new Cursor(bytes, 8, bytes.length)
  while (top.pos < bytes.length) {
    const id = top.byte()
    const size = top.u32()
    const start = top.pos
    top.skip(size)
    const s: Section = { id, start, end: top.pos }
    if (id === 0) s.name = new Cursor(bytes, start, top.pos).name()
    sections.push(s)
  }
  return sections
}

/**
 * A module's sections by id, and what both rewriters ask of them: a section's item count,
 * its items (to append to), the names it exports, and a vector section with items appended.
 */
export class SectionTable {
  readonly sections: Section[]
  constructor(readonly bytes: Uint8Array) {
    this.sections = readSections(bytes)
  }
  /** The first section with this id. */
  readonly find = (id: number): Section | undefined => this.sections.find((s) => s.id === id)
  /** The item count of vector section `id` (0 when the module has none). */
  count(id: number): number {
    const s = this.find(id)
    return s ? new Cursor(this.bytes, s.start, s.end).u32() : 0
  }
  /** The items of vector section `id`, after its count (empty when the module has none). */
  items(id: number): Uint8Array {
    const s = this.find(id)
    return s ? this.bytes.subarray(s.start + lebSize(this.bytes, s.start), s.end) : new Uint8Array(0)
  }
  /** Vector section `id` with `added` more items, which `write` appends. */
  appended(id: number, added: number, write: (o: Out) => void): Uint8Array {
    const o = new Out().u32(this.count(id) + added).bytes(this.items(id))
    write(o)
    return o.result()
  }
  /** The names of the module's exports. */
  exportNames(): Set<string> {
    const names = new Set<string>()
    const exp = this.find(7)
    if (exp) {
      const c = new Cursor(this.bytes, exp.start, exp.end)
      for (let n = c.u32(); n > 0; n--) {
        names.add(c.name())
        c.byte()
        c.u32()
      }
    }
    return names
  }
}

/**
 * The module again with `replaced` sections in place of the originals (by id; an empty
 * array drops the section), missing ones inserted in order. DWARF custom sections are
 * dropped: they address code offsets that a rewrite moves.
 */
export function reassemble(table: SectionTable, replaced: Map<number, Uint8Array | null>): Uint8Array {
  const { bytes, sections } = table
  const out = new Out(bytes.length * 2 + 256)
  out.bytes(bytes.subarray(0, 8))
  const emit = (id: number, content: Uint8Array | null) => {
    if (content !== null) out.byte(id).u32(content.length).bytes(content)
  }
  const rank = (id: number) => SECTION_ORDER.indexOf(id)
  const has = (id: number) => sections.some((s) => s.id === id)
  const pending = [...replaced.keys()].filter((id) => !has(id)).sort((a, b) => rank(a) - rank(b))
  for (const s of sections) {
    if (s.id !== 0) {
      while (pending.length && rank(pending[0]!) < rank(s.id)) {
        const id = pending.shift()!
        emit(id, replaced.get(id)!)
      }
    } else if (s.name?.startsWith('.debug_')) {
      continue
    }
    if (s.id !== 0 && replaced.has(s.id)) emit(s.id, replaced.get(s.id)!)
    else emit(s.id, bytes.subarray(s.start, s.end))
  }
  for (const id of pending) emit(id, replaced.get(id)!)
  return out.result()
}

/** The index-space counts and signatures both rewriters need. */
export interface ModuleIndex {
  importedFuncs: number
  importedGlobals: number
  importedMemories: number
  /** Parameter count of every type. */
  typeParams: number[]
  /** Type index of every defined function. */
  funcTypes: number[]
}

/** Read the import, type and function sections of `bytes` (GC types are refused as unknown). */
export function readModuleIndex(table: SectionTable): ModuleIndex {
  const { bytes, find } = table
  const ix: ModuleIndex = { importedFuncs: 0, importedGlobals: 0, importedMemories: 0, typeParams: [], funcTypes: [] }
  const imp = find(2)
  if (imp) {
    const c = new Cursor(bytes, imp.start, imp.end)
    for (let n = c.u32(); n > 0; n--) {
      c.name()
      c.name()
      const kind = c.byte()
      if (kind === 0) {
        ix.importedFuncs++
        c.u32()
      } else if (kind === 1) {
        c.byte()
        const f = c.byte()
        c.u32()
        if (f & 1) c.u32()
      } else if (kind === 2) {
        ix.importedMemories++
        const f = c.byte()
        c.u32()
        if (f & 1) c.u32()
      } else if (kind === 3) {
        ix.importedGlobals++
        const t = c.byte()
        if (t === 0x63 || t === 0x64) c.leb()
        c.byte()
      } else if (kind === 4) {
        c.byte()
        c.u32()
      } else throw new RangeError(`import kind ${kind}`)
    }
  }
  const types = find(1)
  if (types) {
    const c = new Cursor(bytes, types.start, types.end)
    for (let n = c.u32(); n > 0; n--) {
      const form = c.byte()
      if (form !== 0x60) throw new UnknownOpcode(`type form 0x${form.toString(16)} (GC types)`)
      const params = c.u32()
      for (let k = 0; k < params; k++) {
        const t = c.byte()
        if (t === 0x63 || t === 0x64) c.leb()
      }
      for (let k = c.u32(); k > 0; k--) {
        const t = c.byte()
        if (t === 0x63 || t === 0x64) c.leb()
      }
      ix.typeParams.push(params)
    }
  }
  const funcs = find(3)
  if (funcs) {
    const c = new Cursor(bytes, funcs.start, funcs.end)
    for (let n = c.u32(); n > 0; n--) ix.funcTypes.push(c.u32())
  }
  return ix
}

/** Read a function body's local declarations at `c`: how many entries, how many locals in all. */
export function readLocals(c: Cursor): { entries: number; declared: number } {
  let declared = 0
  const entries = c.u32()
  for (let n = entries; n > 0; n--) {
    declared += c.u32()
    const t = c.byte()
    if (t === 0x63 || t === 0x64) c.leb()
  }
  return { entries, declared }
}

/**
 * True when `bytes` exports a function `name` that is defined (not imported) and does
 * nothing: no locals, a body of just `end`. What a Rust `pub extern "C" fn f() {}` compiles
 * to, e.g. the std SDK's edgeless_mem_clear. False when unsure.
 */
export function exportsEmptyFunction(bytes: Uint8Array, name: string): boolean {
  try {
    const table = new SectionTable(bytes)
    const exp = table.find(7)
    const code = table.find(10)
    if (!exp || !code) return false
    let fn = -1
    const e = new Cursor(bytes, exp.start, exp.end)
    for (let n = e.u32(); n > 0; n--) {
      const n2 = e.name()
      const kind = e.byte()
      const idx = e.u32()
      if (n2 === name && kind === 0) fn = idx
    }
    const defined = fn - readModuleIndex(table).importedFuncs
    if (fn < 0 || defined < 0) return false
    const c = new Cursor(bytes, code.start, code.end)
    const count = c.u32()
    if (defined >= count) return false
    for (let i = 0; i < defined; i++) c.skip(c.u32())
    const size = c.u32()
    return size === 2 && bytes[c.pos] === 0 && bytes[c.pos + 1] === 0x0b
  } catch {
    return false
  }
}
