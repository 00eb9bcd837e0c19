/**
 * Telemetry with upstream EDGELESS's parity (edgeless_telemetry): per function name, the
 * durations upstream reports — instantiate, init, every completed cast and call, stop — as
 * histograms, and counters of exits (stopped normally / crashed / failed), messages,
 * crashes, restarts and dead letters. Read them as plain objects ({@link Metrics.snapshot})
 * or as Prometheus text (`toPrometheus` in `./prometheus`).
 *
 * Platform-neutral (no `node:*`).
 * @packageDocumentation
 */
import type { InvocationKind, Observer } from '../observer'
import type { Runtime } from '../runtime/runtime'

/**
 * Default histogram bucket upper bounds, in seconds: 10 µs to 10 s. (Upstream's Prometheus
 * target uses 0.1 s … 1 s, which puts every wasm handler in the first bucket.)
 */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
])

/** One histogram, read out. Durations are in seconds. */
export interface HistogramSnapshot {
  count: number
  /** Sum of the observations (s). */
  sum: number
  /** Smallest and largest observation (0 when `count` is 0). */
  min: number
  max: number
  /** Cumulative counts per upper bound `le` (s), the last one `Infinity` (= `count`). */
  buckets: Array<{ le: number; count: number }>
  /** Quantiles (s) of the most recent observations (see {@link MetricsOptions.reservoir}); 0 when empty. */
  p50: number
  p95: number
  p99: number
}

/** How instances of a function ended (upstream's `FunctionExit` statuses). */
export interface ExitCounts {
  /** Stopped normally (`stop`, a workflow or runtime shutdown). Upstream: `Ok`. */
  stopped: number
  /** A handler trapped or threw. Upstream: `CodeError`. */
  crashed: number
  /** Given up on (temporary, or restart intensity exceeded). Upstream: `InternalError`. */
  failed: number
}

/** Everything measured for one function name. */
export interface FunctionMetrics {
  /** Building an instance (wasm instantiation or the JS function). */
  instantiate: HistogramSnapshot
  /** Handler durations, completed invocations only (a crash is counted in `crashes`). */
  handlers: Record<InvocationKind, HistogramSnapshot>
  /** Casts and calls handled (completed or crashed). */
  messages: { cast: number; call: number }
  exits: ExitCounts
  crashes: number
  restarts: number
  deadLetters: number
  /** Passivation: hibernated instances woken by a message, and instances hibernated. */
  activations: number
  hibernations: number
  /** Gauges at snapshot time: addressable instances of the function (hibernated ones included), the hibernated ones, and messages waiting in their mailboxes. */
  instances: number
  hibernated: number
  mailbox: number
}

/** A read-out of every function's metrics. */
export interface MetricsSnapshot {
  /** `Date.now()` of the snapshot. */
  time: number
  /** The histograms' bucket bounds (s). */
  buckets: readonly number[]
  functions: Record<string, FunctionMetrics>
}

/** Options of {@link collectMetrics}. */
export interface MetricsOptions {
  /** Bucket upper bounds in seconds, ascending. Default {@link DEFAULT_BUCKETS}. */
  buckets?: readonly number[]
  /** Quantiles are computed over this many most recent observations per histogram. Default 1024. */
  reservoir?: number
}

/**
 * A running metrics collector (see {@link collectMetrics}).
 *
 * @example
 * ```ts
 * const m = collectMetrics(rt)
 * console.log(m.snapshot().functions.ponger.handlers.call.p99)
 * m.close()
 * ```
 */
export interface Metrics {
  /** The current figures, as plain objects (safe to keep, serialise, compare). */
  snapshot(): MetricsSnapshot
  /** Forget everything measured so far. */
  reset(): void
  /** Stop collecting (removes the observer and the event listeners). Idempotent. */
  close(): void
}

class Histogram {
  readonly counts: Float64Array
  count = 0
  sum = 0
  min = Infinity
  max = -Infinity
  private readonly ring: Float64Array
  private filled = 0
  private next = 0

  constructor(
    private readonly bounds: readonly number[],
    reservoir: number,
  ) {
    this.counts = new Float64Array(bounds.length + 1)
    this.ring = new Float64Array(reservoir)
  }

  observe(v: number): void {
    const b = this.bounds
    let i = 0
    while (i < b.length && v > b[i]!) i++
    this.counts[i]!++
    this.count++
    this.sum += v
    if (v < this.min) this.min = v
    if (v > this.max) this.max = v
    this.ring[this.next] = v
    this.next = (this.next + 1) % this.ring.length
    if (this.filled < this.ring.length) this.filled++
  }

  snapshot(): HistogramSnapshot {
    const buckets: Array<{ le: number; count: number }> = []
    let cum = 0
    for (let i = 0; i < this.counts.length; i++) {
      cum += this.counts[i]!
      buckets.push({ le: i < this.bounds.length ? this.bounds[i]! : Infinity, count: cum })
    }
    const sorted = Array.from(this.ring.subarray(0, this.filled)).sort((a, b) => a - b)
    const q = (p: number) => (sorted.length ? sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]! : 0)
    return {
      count: this.count,
      sum: this.sum,
      min: this.count ? this.min : 0,
      max: this.count ? this.max : 0,
      buckets,
      p50: q(0.5),
      p95: q(0.95),
      p99: q(0.99),
    }
  }
}

class FunctionStats {
  readonly instantiate: Histogram
  readonly handlers: Record<InvocationKind, Histogram>
  cast = 0
  call = 0
  stopped = 0
  crashedExits = 0
  failed = 0
  crashes = 0
  restarts = 0
  deadLetters = 0
  activations = 0
  hibernations = 0

  constructor(bounds: readonly number[], reservoir: number) {
    this.instantiate = new Histogram(bounds, reservoir)
    this.handlers = {
      init: new Histogram(bounds, reservoir),
      cast: new Histogram(bounds, reservoir),
      call: new Histogram(bounds, reservoir),
      stop: new Histogram(bounds, reservoir),
    }
  }
}

/**
 * Start collecting metrics of `runtime` (an observer plus event listeners; {@link Metrics.close}
 * removes them). Durations are wall time, recorded in seconds.
 *
 * Metric families (as `toPrometheus` names them):
 * `edgeless_instantiate_duration_seconds`, `edgeless_handler_duration_seconds{handler=init|cast|call|stop}`,
 * `edgeless_messages_total{kind}`, `edgeless_function_exits_total{status}`, `edgeless_crashes_total`,
 * `edgeless_restarts_total`, `edgeless_dead_letters_total`, and the gauges `edgeless_instances`
 * and `edgeless_mailbox_messages`; all labelled `function`.
 *
 * @example
 * ```ts
 * const m = collectMetrics(rt)
 * const s = m.snapshot()
 * console.log(s.functions.ponger.handlers.call.count, s.functions.ponger.handlers.call.p50)
 * ```
 */
export function collectMetrics(runtime: Runtime, options: MetricsOptions = {}): Metrics {
  const bounds = [...(options.buckets ?? DEFAULT_BUCKETS)]
  for (let i = 0; i < bounds.length; i++) {
    if (!(bounds[i]! > 0) || !Number.isFinite(bounds[i]!) || (i > 0 && !(bounds[i]! > bounds[i - 1]!)))
      throw new RangeError(`collectMetrics: buckets must be finite, positive and ascending, got [${bounds.join(', ')}].`)
  }
  const reservoir = options.reservoir ?? 1024
  if (!(Number.isInteger(reservoir) && reservoir >= 1)) throw new RangeError(`collectMetrics: reservoir must be a positive integer, got ${reservoir}.`)
  let stats = new Map<string, FunctionStats>()
  const of = (name: string): FunctionStats => {
    let s = stats.get(name)
    if (s === undefined) {
      s = new FunctionStats(bounds, reservoir)
      stats.set(name, s)
    }
    return s
  }
  /** Instances given up on: their later `stop` is not a normal exit. */
  const failedIds = new Set<string>()

  const observer: Observer = {
    instantiated(a, ms) {
      of(a.name).instantiate.observe(ms / 1000)
    },
    finished(a, kind, _trace, ms, ok) {
      const s = of(a.name)
      if (ok) s.handlers[kind].observe(ms / 1000)
      if (kind === 'cast') s.cast++
      else if (kind === 'call') s.call++
    },
  }
  const handlers = {
    crash: (e: { name: string }) => {
      const s = of(e.name)
      s.crashes++
      s.crashedExits++
    },
    restart: (e: { name: string }) => {
      of(e.name).restarts++
    },
    'dead-letter': (e: { name: string }) => {
      of(e.name).deadLetters++
    },
    lifecycle: (e: { name: string; instance: { function: string }; to: string }) => {
      if (e.to === 'activating') of(e.name).activations++
      else if (e.to === 'hibernating') of(e.name).hibernations++
      if (e.to !== 'failed') return
      of(e.name).failed++
      failedIds.add(e.instance.function)
    },
    stop: (e: { name: string; instance: { function: string } }) => {
      if (failedIds.delete(e.instance.function)) return
      of(e.name).stopped++
    },
  }
  type AnyOn = (name: string, fn: (...a: never[]) => void) => unknown
  for (const [name, fn] of Object.entries(handlers)) (runtime.on as unknown as AnyOn).call(runtime, name, fn)
  const unobserve = runtime.observe(observer)
  let open = true

  return {
    snapshot(): MetricsSnapshot {
      const live = new Map<string, { instances: number; hibernated: number; mailbox: number }>()
      for (const i of runtime.instances()) {
        const g = live.get(i.name) ?? { instances: 0, hibernated: 0, mailbox: 0 }
        g.instances++
        if (i.status === 'hibernated') g.hibernated++
        g.mailbox += i.mailbox
        live.set(i.name, g)
        of(i.name)
      }
      const functions: Record<string, FunctionMetrics> = {}
      for (const name of [...stats.keys()].sort()) {
        const s = stats.get(name)!
        const g = live.get(name)
        functions[name] = {
          instantiate: s.instantiate.snapshot(),
          handlers: { init: s.handlers.init.snapshot(), cast: s.handlers.cast.snapshot(), call: s.handlers.call.snapshot(), stop: s.handlers.stop.snapshot() },
          messages: { cast: s.cast, call: s.call },
          exits: { stopped: s.stopped, crashed: s.crashedExits, failed: s.failed },
          crashes: s.crashes,
          restarts: s.restarts,
          deadLetters: s.deadLetters,
          activations: s.activations,
          hibernations: s.hibernations,
          instances: g?.instances ?? 0,
          hibernated: g?.hibernated ?? 0,
          mailbox: g?.mailbox ?? 0,
        }
      }
      return { time: Date.now(), buckets: Object.freeze([...bounds]), functions }
    },
    reset(): void {
      stats = new Map()
    },
    close(): void {
      if (!open) return
      open = false
      unobserve()
      for (const [name, fn] of Object.entries(handlers)) (runtime.off as unknown as AnyOn).call(runtime, name, fn)
    },
  }
}
