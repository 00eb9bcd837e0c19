import type { Clock } from '../clock'

interface Timer {
  at: number
  seq: number
  fn: () => void
}

/**
 * A clock whose time only moves when a test says so (xstate's `SimulatedClock`, for
 * EDGELESS): delayed casts, call timeouts and restart backoffs fire in virtual time, in
 * order of due time and then of scheduling, instantly in real time.
 * Usually driven through a {@link TestKit} (`advance`, `runFor`), which also lets the actors
 * process their messages between timers.
 *
 * @example
 * ```ts
 * const clock = new VirtualClock()
 * const rt = new Runtime({ clock })
 * clock.fireNext(1000) // fire the next timer due within the first virtual second
 * ```
 */
export class VirtualClock implements Clock {
  private t = 0
  private seq = 0
  private readonly timers = new Map<number, Timer>()

  /** Virtual milliseconds since the clock was made. */
  now(): number {
    return this.t
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const seq = ++this.seq
    this.timers.set(seq, { at: this.t + Math.max(0, Number.isFinite(ms) ? ms : 0), seq, fn })
    return seq
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number)
  }

  /** Timers scheduled and not yet fired. */
  get pending(): number {
    return this.timers.size
  }

  /** When the next timer is due, or `undefined`. */
  nextAt(): number | undefined {
    return this.next()?.at
  }

  /** Fire the earliest timer due at or before `until` (time jumps to it). False when there is none. */
  fireNext(until: number): boolean {
    const t = this.next()
    if (!t || t.at > until) return false
    this.timers.delete(t.seq)
    if (t.at > this.t) this.t = t.at
    t.fn()
    return true
  }

  /** Move time forward to `to` without firing anything (never backwards). */
  jumpTo(to: number): void {
    if (to > this.t) this.t = to
  }

  private next(): Timer | undefined {
    let best: Timer | undefined
    for (const t of this.timers.values()) if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t
    return best
  }
}
