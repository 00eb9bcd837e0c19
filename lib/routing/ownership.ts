/**
 * Who owns the bytes of a message, in one place: the copy at send, the pool of reused
 * arrays for short payloads the host casts, and when such an array comes back. (The
 * lending of a calling wasm guest's payload views, and where a lent view must be copied,
 * is the call path's: `Router.call`.)
 * @packageDocumentation
 */
import type { Payload } from '../payload'

/** Payloads up to this many bytes are copied into pooled arrays (see {@link BytePool}). */
export const POOLED_BYTES = 16
/** Arrays kept per length. */
const KEEP = 1024

/**
 * Reused arrays for the copies of short cast payloads the host sends (`runtime.cast`).
 *
 * Why: the runtime copies a payload when it is sent (the sender may change its array
 * afterwards), and creating a typed array costs 33–53 ns in Node 20 whatever its size: a
 * third of a cast into a wasm guest. A wasm guest copies the payload into its own memory and
 * keeps no reference, so once it has handled the cast the array can carry the next one.
 * Only arrays handed out here come back (Message.pooled), and only from a guest that copies
 * ({@link Guest.copiesPayload}), after a synchronous success; anything else (a JS handler
 * that may keep it, a dead letter, a crash, a tracer that recorded it) simply keeps its
 * array, which the GC reclaims as before.
 * @internal
 */
export class BytePool {
  private readonly free: Uint8Array[][] = Array.from({ length: POOLED_BYTES + 1 }, () => [])

  /** A pooled copy of `b`, or undefined when it is longer than {@link POOLED_BYTES}. */
  copyBytes(b: Uint8Array): Uint8Array | undefined {
    const n = b.length
    if (n > POOLED_BYTES) return undefined
    const a = this.free[n]!.pop() ?? new Uint8Array(n)
    for (let i = 0; i < n; i++) a[i] = b[i]!
    return a
  }

  /** `s` encoded as UTF-8 in a pooled array, or undefined unless it is short ASCII. */
  copyString(s: string): Uint8Array | undefined {
    const n = s.length
    if (n > POOLED_BYTES) return undefined
    const stack = this.free[n]!
    const a = stack.pop() ?? new Uint8Array(n)
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) {
        stack.push(a)
        return undefined
      }
      a[i] = c
    }
    return a
  }

  /** A pooled copy of a payload the host casts (bytes, or a string as UTF-8), or undefined when it does not fit the pool. */
  copyPayload(p: Payload): Uint8Array | undefined {
    return p instanceof Uint8Array ? this.copyBytes(p) : typeof p === 'string' ? this.copyString(p) : undefined
  }

  /**
   * A message was handled synchronously by `guest`: its pooled payload comes back when the
   * guest copied it into its own memory (an in-thread wasm guest); any other keeps its array.
   */
  handled(msg: { readonly pooled?: boolean; readonly payload: Uint8Array }, guest: { readonly copiesPayload?: boolean }): void {
    if (msg.pooled === true && guest.copiesPayload === true) this.give(msg.payload)
  }

  /** Take back an array {@link copyBytes} or {@link copyString} handed out, once nothing refers to it. */
  give(a: Uint8Array): void {
    const stack = this.free[a.length]
    if (stack !== undefined && stack.length < KEEP) stack.push(a)
  }
}
