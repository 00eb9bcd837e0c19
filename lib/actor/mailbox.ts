/**
 * A mailbox: a growable ring buffer of messages, first in first out.
 * @packageDocumentation
 */
/** The buffer of every mailbox that never held a message (never written: push grows first). */
const EMPTY: unknown[] = []

/**
 * A FIFO queue on a growable ring buffer: push and shift are O(1) and allocate nothing
 * once the buffer has grown to the working size (Array#shift is O(n) on large queues).
 * The capacity is a power of two, so wrapping is a mask (`%` is a division, ~5% of a cast).
 */
export class Mailbox<T> {
  private buf: Array<T | undefined>
  private head = 0
  private size = 0

  /** `initialCapacity` 0 (the default) allocates the buffer on the first push: most of a million lazily spawned instances never receive a message. */
  constructor(initialCapacity = 0) {
    let cap = 8
    while (cap < initialCapacity) cap *= 2
    this.buf = initialCapacity > 0 ? new Array<T | undefined>(cap) : (EMPTY as Array<T | undefined>)
  }

  get length(): number {
    return this.size
  }

  push(item: T): void {
    if (this.size === this.buf.length) this.grow()
    this.buf[(this.head + this.size) & (this.buf.length - 1)] = item
    this.size++
  }

  shift(): T | undefined {
    if (this.size === 0) return undefined
    const item = this.buf[this.head]
    this.buf[this.head] = undefined // let the message be collected
    this.head = (this.head + 1) & (this.buf.length - 1)
    this.size--
    return item
  }

  /** Remove and return everything, oldest first. */
  drain(): T[] {
    const out: T[] = []
    for (let m = this.shift(); m !== undefined; m = this.shift()) out.push(m)
    return out
  }

  private grow(): void {
    const next = new Array<T | undefined>(Math.max(8, this.buf.length * 2))
    for (let i = 0; i < this.size; i++) next[i] = this.buf[(this.head + i) % this.buf.length]
    this.buf = next
    this.head = 0
  }
}
