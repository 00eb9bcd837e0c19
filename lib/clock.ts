/**
 * The time source of a runtime: delayed casts and call timeouts go through it, so a
 * test can swap in a virtual clock and decide when time passes.
 *
 * @example
 * ```ts
 * const rt = new Runtime({ clock: myVirtualClock })
 * ```
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin. */
  now(): number
  /** Run `fn` once after `ms` milliseconds; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown
  /** Cancel a timer; cancelling a fired or cancelled timer is a no-op. */
  clearTimeout(handle: unknown): void
}

/**
 * The real clock (`setTimeout` of the platform). A pending delayed cast keeps a Node
 * process alive, as a running EDGELESS node stays up; `runtime.shutdown()` clears them all.
 *
 * @example
 * ```ts
 * new Runtime({ clock: realClock })
 * ```
 */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    // Node caps timers at 2^31-1 ms; longer delays are clamped rather than firing at once.
    return globalThis.setTimeout(fn, Math.min(Math.max(0, ms), 0x7fffffff))
  },
  clearTimeout(handle) {
    globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>)
  },
}
