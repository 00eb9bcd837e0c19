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
  if (typeof g.setImmediate === 'function') return (fn) => { g.setImmediate!(fn) }
  if (typeof g.MessageChannel === 'function') {
    const ch = new g.MessageChannel()
    const q: Array<() => void> = []
    ch.port1.onmessage = () => q.shift()?.()
    return (fn) => { q.push(fn); ch.port2.postMessage(0) }
  }
  return (fn) => { setTimeout(fn, 0) }
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

  constructor(
    private readonly slice = 64,
    private readonly turnBudget = 4096,
  ) {}

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
    let done = 0
    for (let r = this.ready.shift(); r !== undefined; r = this.ready.shift()) {
      r.queued = false
      done += r.runSlice(this.slice)
      if (done >= this.turnBudget && this.ready.length > 0) {
        macrotask(this.runBound)
        return
      }
    }
    this.pending = false
  }
}
