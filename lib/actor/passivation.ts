import type { Clock } from '../clock'
import { EdgelessError } from '../errors'

/**
 * Passivation: idle instances are hibernated — their `handle_stop` runs, their wasm
 * instance (memory, worker) is released, their state stays in the store — and come back
 * transparently on their next message, through `handle_init(init payload, last synced
 * state)`, exactly as after a restart. A hibernated instance keeps its address, its
 * mailbox, its delayed casts and its supervision; it costs a few hundred bytes instead of a
 * wasm instance. So a process can address far more instances than it could keep alive (V8
 * caps a process near 13,000 live wasm memories).
 *
 * Only instances spawned with `passivate: true` (or a workflow function annotated
 * `"passivate": "true"`) take part: a function is passivation-safe when everything it must
 * not lose is in its synced state (or synced by its `handle_stop`).
 *
 * @example
 * ```ts
 * const rt = new Runtime({ passivation: { idleMs: 30_000, maxActive: 5_000 } })
 * const counter = await rt.spawn({ name: 'c1', module: './counter.wasm', passivate: true })
 * ```
 */
export interface PassivationOptions {
  /** Hibernate an instance once it has been idle for between `idleMs` and twice that. Default: never for idleness (only `maxActive`). */
  idleMs?: number
  /**
   * At most this many passivating instances are live: activating one more hibernates the
   * least recently used idle one (a CLOCK sweep, O(1) amortised). A soft cap: when every
   * live one is busy, the count goes over, and comes back down at the next activation or
   * idle sweep that finds an idle one. Default: no cap.
   */
  maxActive?: number
}

/** What the passivator needs of an instance. @internal */
export interface Passivating {
  /** Set by every message the instance processes; cleared by the sweep (the CLOCK's reference bit). */
  touched: boolean
  /** Index in the passivator's ring while live; -1 otherwise. */
  slot: number
  /** Start hibernating if the instance is idle; false (nothing happens) when it is not. */
  hibernate(): boolean
}

/** Counters of a runtime's passivation. */
export interface PassivationStats {
  /** Passivating instances that are live now. */
  active: number
  /** Hibernations since the runtime started. */
  hibernations: number
  /** Activations (a message woke a hibernated instance) since the runtime started. */
  activations: number
}

/**
 * Keeps the live passivating instances in a ring and hibernates the cold ones: the second
 * chance (CLOCK) approximation of least-recently-used, which needs one boolean write per
 * message instead of reordering a list.
 * @internal
 */
export class Passivator {
  private readonly ring: Array<Passivating | undefined> = []
  private readonly free: number[] = []
  private hand = 0
  private timer: unknown = null
  readonly idleMs: number
  readonly maxActive: number
  active = 0
  hibernations = 0
  activations = 0

  constructor(
    private readonly clock: Clock,
    o: PassivationOptions,
  ) {
    this.idleMs = o.idleMs ?? Infinity
    this.maxActive = o.maxActive ?? Infinity
    if (!(this.idleMs > 0))
      throw new EdgelessError('invalid-argument', `passivation.idleMs must be a positive number of milliseconds (or omitted), got ${o.idleMs}.`)
    if (!(this.maxActive >= 1) || (Number.isFinite(this.maxActive) && !Number.isInteger(this.maxActive)))
      throw new EdgelessError('invalid-argument', `passivation.maxActive must be a positive integer (or omitted), got ${o.maxActive}.`)
  }

  /** `a` is live (spawned or activated): track it, and make room if over the cap. */
  live(a: Passivating): void {
    if (a.slot >= 0) return
    a.touched = true
    const slot = this.free.pop()
    if (slot === undefined) {
      a.slot = this.ring.length
      this.ring.push(a)
    } else {
      a.slot = slot
      this.ring[slot] = a
    }
    this.active++
    if (this.active > this.maxActive) this.evict(a)
    this.arm()
  }

  /** `a` is no longer live (hibernating or stopped). */
  gone(a: Passivating): void {
    if (a.slot < 0) return
    this.ring[a.slot] = undefined
    this.free.push(a.slot)
    a.slot = -1
    this.active--
  }

  /**
   * Hibernate one cold idle instance other than `except`: instances touched since the hand
   * last passed get a second chance. Two turns of the ring at most; a soft cap when all
   * are busy.
   */
  private evict(except: Passivating): void {
    const n = this.ring.length
    for (let i = 0; i < 2 * n; i++) {
      const a = this.ring[this.hand]
      this.hand = this.hand + 1 === n ? 0 : this.hand + 1
      if (a === undefined || a === except) continue
      if (a.touched) {
        a.touched = false
        continue
      }
      if (a.hibernate()) return
    }
  }

  /** The idle sweep runs every `idleMs` while anything is live. */
  private arm(): void {
    if (this.timer !== null || !Number.isFinite(this.idleMs) || this.active === 0) return
    this.timer = this.clock.setTimeout(() => {
      this.timer = null
      this.sweep()
      this.arm()
    }, this.idleMs)
    // A sweep must not keep a Node process alive on its own.
    ;(this.timer as { unref?: () => void }).unref?.()
  }

  /** Hibernate what was not touched since the previous sweep; clear the bit of the rest. */
  sweep(): void {
    for (let i = 0; i < this.ring.length; i++) {
      const a = this.ring[i]
      if (a === undefined) continue
      if (a.touched) a.touched = false
      else a.hibernate()
    }
  }

  /** Stop the sweep timer (runtime shutdown). */
  close(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer)
    this.timer = null
  }

  stats(): PassivationStats {
    return { active: this.active, hibernations: this.hibernations, activations: this.activations }
  }
}
