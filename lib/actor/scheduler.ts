/**
 * The scheduler: gives ready actors turns in microtasks, a bounded slice each, and yields
 * to the event loop after a budget of messages.
 * @packageDocumentation
 */
import { Mailbox } from './mailbox'

/** Something the scheduler can give a turn: it processes up to `max` messages and says how many. */
export interface Runnable {
  /** @internal set by the scheduler while the runnable waits in its ready queue */
  queued: boolean
  runSlice(max: number): number
}

type Macrotask = (fn: () => void) => void

// Yield to the host's event loop with the cheapest macrotask available: setImmediate in
// Node, a MessageChannel in browsers (setTimeout(0) is clamped to 4 ms after nesting).
const macrotask: Macrotask = (() => {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown; MessageChannel?: typeof MessageChannel }
  if (typeof g.setImmediate === 'function')
    return (fn) => {
      g.setImmediate!(fn)
    }
  if (typeof g.MessageChannel === 'function') {
    const ch = new g.MessageChannel()
    const q: Array<() => void> = []
    ch.port1.onmessage = () => q.shift()?.()
    return (fn) => {
      q.push(fn)
      ch.port2.postMessage(0)
    }
  }
  return (fn) => {
    setTimeout(fn, 0)
  }
})()

/**
 * Runs ready actors. Messages are processed in microtasks (cheap, no timer per message);
 * after `turnBudget` messages in one turn the scheduler yields a macrotask so timers, I/O
 * and the page stay responsive even when actors keep each other busy forever.
 * Each actor gets at most `slice` messages per visit, so one flooded mailbox cannot starve
 * the others.
 */
export class Scheduler {
  private readonly ready = new Mailbox<Runnable>(64)
  private pending = false
  private readonly runBound = () => this.run()
  /** Seeded interleaving (tests): pick a random ready actor and a random slice. */
  private random: (() => number) | null = null
  private shuffled: Runnable[] = []
  /** Messages processed so far (lets a test kit tell a quiet system from a busy one). */
  processed = 0

  constructor(
    private readonly slice = 64,
    private readonly turnBudget = 4096,
  ) {}

  /**
   * Switch to a seeded random interleaving of independent actors: each turn goes to a random
   * ready actor for 1..4 messages. Per-mailbox order is untouched (a mailbox is FIFO), so
   * every interleaving is one a real system could produce. `null` restores FIFO fairness.
   */
  interleave(random: (() => number) | null): void {
    this.random = random
  }

  /** True when no actor is waiting for a turn. */
  get idle(): boolean {
    return !this.pending
  }

  /** Put a runnable in the ready queue (once) and make sure a turn is coming. */
  schedule(r: Runnable): void {
    if (r.queued) return
    r.queued = true
    this.ready.push(r)
    if (!this.pending) {
      this.pending = true
      queueMicrotask(this.runBound)
    }
  }

  private run(): void {
    if (this.random) {
      this.runShuffled(this.random)
      return
    }
    let done = 0
    for (let r = this.ready.shift(); r !== undefined; r = this.ready.shift()) {
      r.queued = false
      const n = r.runSlice(this.slice)
      done += n
      this.processed += n
      if (done >= this.turnBudget && this.ready.length > 0) {
        macrotask(this.runBound)
        return
      }
    }
    this.pending = false
  }

  private runShuffled(random: () => number): void {
    for (let r = this.ready.shift(); r !== undefined; r = this.ready.shift()) this.shuffled.push(r)
    let done = 0
    while (this.shuffled.length > 0) {
      const i = Math.floor(random() * this.shuffled.length)
      const r = this.shuffled[i]!
      this.shuffled[i] = this.shuffled[this.shuffled.length - 1]!
      this.shuffled.pop()
      r.queued = false
      const n = r.runSlice(1 + Math.floor(random() * 4))
      done += n
      this.processed += n
      // Anything made ready meanwhile joins the draw.
      for (let q = this.ready.shift(); q !== undefined; q = this.ready.shift()) this.shuffled.push(q)
      if (done >= this.turnBudget && this.shuffled.length > 0) {
        macrotask(this.runBound)
        return
      }
    }
    this.pending = false
  }
}
