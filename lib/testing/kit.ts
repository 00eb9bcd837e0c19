/**
 * The test kit: a runtime on a virtual clock with a message trace, stubs, injected messages
 * and seeded interleavings.
 * @packageDocumentation
 */
import type { CallResult } from '../call-result'
import { EdgelessError } from '../errors'
import { instanceIdBytes, isUuid, type InstanceId } from '../ids'
import { ownBytes, type Payload } from '../payload'
import { Runtime as CoreRuntime, type ActorRef } from '../runtime/runtime'
import type { RuntimeOptions, SpawnOptions } from '../options'
import type { WorkflowSpec } from '../workflow/spec'
import type { WorkflowHandle, WorkflowOptions } from '../workflow/workflow'
import { Stub, type StubScript } from './stub'
import { Trace } from './trace'
import { VirtualClock } from './virtual-clock'

/**
 * Options of a {@link TestKit}: the runtime's options (its clock is always virtual), plus
 * `seed` for seeded interleaving and `Runtime` to use another Runtime class (in Node, pass
 * the one from `edgeless` so workflow paths and module paths are files).
 *
 * @example
 * ```ts
 * import { Runtime } from 'edgeless'
 * const kit = createTestKit({ Runtime, seed: 42 })
 * ```
 */
export interface TestKitOptions extends Omit<RuntimeOptions, 'clock'> {
  /**
   * Shake out ordering bugs: ready actors take turns in a random order drawn from this seed
   * (1..4 messages per turn). The seed is in every failure message of the matchers and in
   * {@link TestKit.describeRun}; the same seed replays the same interleaving.
   */
  seed?: number
  /** The Runtime class to build (default: the platform-neutral core's). */
  Runtime?: new (
    options: RuntimeOptions,
  ) => CoreRuntime
}

type Target = ActorRef | InstanceId | string

/** mulberry32: small, fast, seeded. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const macrotask = (): Promise<void> =>
  new Promise((r) => {
    const g = globalThis as { setImmediate?: (fn: () => void) => unknown }
    if (typeof g.setImmediate === 'function') g.setImmediate(r)
    else setTimeout(r, 0)
  })

/**
 * A runtime for deterministic tests: virtual time, a message trace, stubs, injected
 * messages, optional seeded interleaving. Works with wasm and JS functions and workflow files.
 *
 * @example
 * ```ts
 * const kit = createTestKit({ Runtime })
 * const wf = await kit.startWorkflow('examples/ping-pong/workflow.json')
 * await kit.advance(10_000)                       // ten virtual seconds, in milliseconds of real time
 * expect(kit.trace.between('pinger', 'ponger')).toHaveLength(11)
 * await kit.shutdown()
 * ```
 */
export class TestKit {
  readonly clock = new VirtualClock()
  readonly trace = new Trace()
  readonly runtime: CoreRuntime
  /** The interleaving seed, when one was given. */
  readonly seed: number | undefined
  private readonly workflows: WorkflowHandle[] = []
  private readonly callTimeoutMs: number

  constructor(options: TestKitOptions = {}) {
    const { seed, Runtime = CoreRuntime, ...rest } = options
    this.seed = seed
    this.callTimeoutMs = rest.callTimeoutMs ?? 5000
    // Restart backoff jitter must not use Math.random either: same inputs, same trace.
    const random = seededRandom((seed ?? 1) ^ 0x9e3779b9)
    this.runtime = new Runtime({ consoleLog: false, ...rest, clock: this.clock, supervision: { random, ...rest.supervision } })
    const sys = this.runtime.internals()
    if (seed !== undefined) sys.scheduler.interleave(seededRandom(seed))
    const name = (id: InstanceId) => this.nameOf(id)
    sys.tracer = {
      message: (kind, from, to, payload, alias) => {
        this.trace.add({ time: this.clock.now(), kind, from: name(from), to: to.name, ...(alias !== undefined ? { alias } : {}), payload: payload.slice() })
        if (kind === 'call')
          return (result: CallResult) => {
            this.trace.add({ time: this.clock.now(), kind: 'reply', from: name(from), to: to.name, result })
          }
      },
    }
    this.runtime.on('crash', (e) => {
      this.trace.add({ time: this.clock.now(), kind: 'crash', from: e.name, to: e.name, detail: `handle_${e.handler} ${e.trap}` })
    })
    this.runtime.on('restart', (e) => {
      this.trace.add({ time: this.clock.now(), kind: 'restart', from: e.name, to: e.name, detail: `#${e.restarts}` })
    })
    this.runtime.on('dead-letter', (e) => {
      this.trace.add({ time: this.clock.now(), kind: 'dead-letter', from: name(e.from), to: e.name, payload: e.payload, detail: e.reason.code })
    })
  }

  /** Let every actor process what it can, without moving time. */
  async runUntilIdle(): Promise<void> {
    const sys = this.runtime.internals()
    let quiet = 0
    let waitedForStarts = 0
    for (let i = 0; i < 20_000; i++) {
      const before = sys.scheduler.processed + this.trace.entries.length
      await macrotask()
      // An instance being (re)started waits for real async work (instantiation): give it time.
      let starting = false
      for (const a of sys.actors.values())
        if (a.status === 'starting' || a.status === 'restarting' || a.status === 'activating' || a.status === 'hibernating') {
          starting = true
          break
        }
      if (starting && waitedForStarts++ < 500) {
        quiet = 0
        continue
      }
      if (sys.scheduler.idle && sys.scheduler.processed + this.trace.entries.length === before) {
        if (++quiet >= 3) return
      } else {
        quiet = 0
      }
    }
    throw new EdgelessError(
      'invalid-argument',
      `The actors never went quiet after 20,000 turns: they keep messaging each other without time passing (a livelock). ${this.describeRun()}`,
    )
  }

  /**
   * Move virtual time forward by `ms`: every timer due in that window fires in order (delayed
   * casts, call timeouts, restart backoffs), with the actors processing their messages in
   * between. Takes milliseconds of real time.
   */
  async advance(ms: number): Promise<void> {
    const until = this.clock.now() + ms
    await this.runUntilIdle()
    while (this.clock.fireNext(until)) await this.runUntilIdle()
    this.clock.jumpTo(until)
    await this.runUntilIdle()
  }

  /** Same as {@link TestKit.advance}. */
  runFor(ms: number): Promise<void> {
    return this.advance(ms)
  }

  /** A test double; spawn it, or pass `stub.fn` in `startWorkflow(..., { replace })`. */
  stub(script?: StubScript): Stub {
    return new Stub(
      script,
      () => this.clock.now(),
      () => this.describeRun(),
    )
  }

  /** Spawn an instance (as {@link Runtime.spawn}). */
  spawn(options: SpawnOptions): Promise<ActorRef> {
    return this.runtime.spawn(options)
  }

  /** Start a workflow (as {@link Runtime.startWorkflow}); its member names work in `cast`/`call`/`get`. */
  async startWorkflow(workflow: WorkflowSpec | string | URL, options?: WorkflowOptions): Promise<WorkflowHandle> {
    const wf = await this.runtime.startWorkflow(workflow, options)
    this.workflows.push(wf)
    await this.runUntilIdle()
    return wf
  }

  /** A member of a workflow started through the kit, by name. */
  get(name: string): ActorRef {
    for (const wf of this.workflows) {
      const r = wf.get(name)
      if (r) return r
    }
    throw new EdgelessError('unknown-instance', `No member "${name}" in the workflows started through this test kit.`)
  }

  /** Inject a cast as if `from` (a member name or an id; default the host) sent it. */
  cast(target: Target, payload: Payload, options: { from?: Target } = {}): void {
    const sys = this.runtime.internals()
    const to = sys.lookup(this.idOf(target))
    if (!to) throw new EdgelessError('unknown-instance', `No live instance for ${String(typeof target === 'string' ? target : this.idOf(target).function)}.`)
    const from = options.from === undefined ? sys.hostId : this.idOf(options.from)
    sys.castTo(from, instanceIdBytes(from), to, ownBytes(payload))
  }

  /** Inject a call as if `from` made it; resolves with the answer (time must advance for a timeout to fire). */
  async call(target: Target, payload: Payload, options: { from?: Target; timeoutMs?: number } = {}): Promise<CallResult> {
    const sys = this.runtime.internals()
    const to = sys.lookup(this.idOf(target))
    if (!to) return { kind: 'err', error: new EdgelessError('unknown-instance', `No live instance for ${String(target)}.`) }
    const from = options.from === undefined ? sys.hostId : this.idOf(options.from)
    const r = sys.call(null, from, instanceIdBytes(from), to, ownBytes(payload), options.timeoutMs ?? this.callTimeoutMs)
    await this.runUntilIdle()
    return r
  }

  /** What `name` sent, grouped by alias (from the trace). */
  sent(name: string): Record<string, string[]> {
    return this.trace.sentBy(name)
  }

  /** The seed (for replay) and the tail of the trace: what a failing test should print. */
  describeRun(last = 30): string {
    return `${this.seed !== undefined ? `Interleaving seed ${this.seed} (replay with the same seed).\n` : ''}Last messages:\n${this.trace.format(last)}`
  }

  /** Stop everything. */
  async shutdown(): Promise<void> {
    const done = this.runtime.shutdown()
    // Stops wait on the clock (stop timeouts, flush timeouts): let virtual time pass for them.
    for (let i = 0; i < 1000; i++) {
      const settled = await Promise.race([done.then(() => true), macrotask().then(() => false)])
      if (settled) return
      const next = this.clock.nextAt()
      if (next !== undefined) this.clock.fireNext(next)
    }
    await done
  }

  private idOf(t: Target): InstanceId {
    if (typeof t === 'string') return this.get(t).id
    if ('id' in t && typeof t.id === 'object') return t.id
    const id = t as InstanceId
    if (!isUuid(id.node) || !isUuid(id.function)) throw new EdgelessError('invalid-argument', `Not an instance: ${JSON.stringify(t)}.`)
    return id
  }

  private nameOf(id: InstanceId): string {
    const sys = this.runtime.internals()
    if (id.function === sys.hostId.function) return 'host'
    return sys.actors.get(id.function)?.name ?? `?${id.function.slice(0, 8)}`
  }
}

/**
 * Make a {@link TestKit}.
 *
 * @example
 * ```ts
 * const kit = createTestKit({ Runtime, seed: Number(process.env.SEED ?? 1) })
 * ```
 */
export function createTestKit(options: TestKitOptions = {}): TestKit {
  return new TestKit(options)
}
