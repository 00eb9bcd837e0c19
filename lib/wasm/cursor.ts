/**
 * Reads a wasm binary from `pos` up to `end`: bytes, LEB128 numbers, names, limits. Every read
 * is bounds-checked and throws a RangeError past `end`. Shared by the module-shape parser and
 * the meter's rewriter.
 * @internal
 */
export class Cursor {
  constructor(
    readonly b: Uint8Array,
    public pos = 0,
    readonly end = b.length,
  ) {}
  byte(): number {
    if (this.pos >= this.end) throw new RangeError('unexpected end of a section')
    return this.b[this.pos++]!
  }
  u32(): number {
    let result = 0
    let shift = 0
    for (;;) {
      const byte = this.byte()
      if (shift < 32) result |= (byte & 0x7f) << shift
      if ((byte & 0x80) === 0) return result >>> 0
      shift += 7
      if (shift > 35) throw new RangeError('bad LEB128')
    }
  }
  /** Skip any LEB128 (signed or unsigned, up to 64 bits). */
  leb(): void {
    for (let i = 0; i < 10; i++) if ((this.byte() & 0x80) === 0) return
    throw new RangeError('bad LEB128')
  }
  skip(n: number): void {
    if (this.pos + n > this.end) throw new RangeError('unexpected end of a section')
    this.pos += n
  }
  /** The next `n` bytes, as a view. */
  bytes(n: number): Uint8Array {
    const start = this.pos
    this.skip(n)
    return this.b.subarray(start, start + n)
  }
  name(): string {
    return new TextDecoder().decode(this.bytes(this.u32()))
  }
  /** A table's or memory's limits. */
  limits(): { initial: number; maximum?: number } {
    const flags = this.byte()
    const initial = this.u32()
    return flags & 1 ? { initial, maximum: this.u32() } : { initial }
  }
}
