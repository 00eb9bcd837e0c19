import { errResult, type CallResult } from './call-result'
import { EdgelessError } from './errors'
import type { Handler } from './events'
import { classifyFailure, isThenable, type Guest, type GuestHost } from './guest'
import { formatInstanceId, instanceIdBytes, type InstanceId } from './ids'
import { initialLifecycle, nextLifecycle, type ActorStatus, type LifecycleEvent, type LifecycleSnapshot } from './lifecycle'
import { Mailbox } from './mailbox'
import { wallNow } from './observer'
import type { Passivating, Passivator } from './passivation'
import type { PendingCall } from './pending-call'
import type { Runnable } from './scheduler'
import type { RestartType, Supervisor } from './supervisor'
import type { StatePolicy, System } from './system'

export type { ActorStatus } from './lifecycle'

/** A message in a mailbox: kind 0 = cast, 1 = call (with the call it answers). @internal */
export interface Message {
  kind: 0 | 1
  src: InstanceId
  srcBytes: Uint8Array
  payload: Uint8Array
  pending: PendingCall | null
  /** Trace id: inherited by the messages its handler sends. */
  trace: number
  /** The payload is an array of the runtime's BytePool, given back once handled (lib/byte-pool.ts). */
  pooled?: boolean
}

/** What an actor does when its mailbox is full: refuse the new message, or drop the oldest queued one. */
export type OverflowPolicy = 'reject' | 'drop-oldest'

/** Options an actor is built with. @internal */
export interface ActorInit {
  name: string
  id: InstanceId
  stateId: string
  callTimeoutMs: number
  /** How long stop waits for a running handler before abandoning it. */
  stopTimeoutMs: number
  outputs: Map<string, InstanceId>
  restartType: RestartType
  mailboxCapacity: number
  overflow: OverflowPolicy
  /** Builds a fresh guest (a new wasm instance, or the JS function again) for restarts. Shared by instances spawned alike. */
  makeGuest: (a: Actor) => Guest | Promise<Guest>
  initPayload: Uint8Array | undefined
  statePolicy: StatePolicy
  /** `wait`: after a handler that synced, the next message waits until the store acknowledged the write. */
  syncMode: 'async' | 'wait'
  /** Optimistic concurrency: the version read at spawn (0 = absent); `undefined` when off. */
  stateVersion: number | undefined
  quotas: Required<HostQuotas>
  /** The runtime's passivator when this instance may be hibernated; null when it may not. */
  passivator: Passivator | null
  /** Reads this instance's state from its store (sets the version under optimistic concurrency). */
  readState: (a: Actor) => Promise<Uint8Array | undefined>
}

/**
 * The output mapping of every instance spawned without one (a million lazily spawned
 * instances need not hold a million empty maps). Never written: the runtime's `setOutput`
 * gives an instance a map of its own first.
 * @internal
 */
export const NO_OUTPUTS: ReadonlyMap<string, InstanceId> = new Map()

/**
 * The mailbox of every instance that never received a message. Never pushed to (only
 * `enqueue` pushes, and it gives the instance a mailbox of its own first), so it stays empty.
 */
const IDLE_MAILBOX = new Mailbox<Message>()

/** The guest of a hibernated instance: nothing to run, nothing to release. */
const DORMANT: Guest = {
  init() {},
  cast() {},
  call: () => ({ kind: 'noreply' }),
  stop() {},
}

/**
 * Host resources one instance may use, so a guest cannot exhaust the host: what exceeds a
 * quota is refused (a call gets Err `quota-exceeded`, other operations are dropped) and
 * reported as a `warning` event with code `quota`, never host memory growth.
 *
 * @example
 * ```ts
 * new Runtime({ quotas: { maxPendingTimers: 100, maxPayloadBytes: 1 << 20, maxLogLinesPerSecond: 50 } })
 * ```
 */
export interface HostQuotas {
  /** Delayed casts scheduled and not yet fired. Default 10,000. */
  maxPendingTimers?: number
  /** Bytes of one cast, call, reply-to-host, delayed cast or sync payload. Default 16 MiB. */
  maxPayloadBytes?: number
  /** Log lines per second (more are dropped and counted). Default 1,000. */
  maxLogLinesPerSecond?: number
}

/** The defaults of {@link HostQuotas}. */
export const DEFAULT_QUOTAS: Readonly<Required<HostQuotas>> = Object.freeze({ maxPendingTimers: 10_000, maxPayloadBytes: 16 * 1024 * 1024, maxLogLinesPerSecond: 1000 })

const LEVEL_NAMES = ['error', 'error', 'warn', 'info', 'debug', 'trace'] as const

/**
 * One function instance: a mailbox processed one message at a time, in order, by its
 * guest. It is also the guest's host: every `env` import lands on a method here.
 * Failures are data: a guest that throws or traps becomes a `crash` event and a
 * lifecycle transition (see {@link lifecycleMachine}); its supervisor decides what follows.
 * It never throws into the scheduler.
 * @internal
 */
export class Actor implements GuestHost, Runnable, Passivating {
  queued = false
  /** Mirror of the lifecycle snapshot's value: read on every message, so a plain field. */
  status: ActorStatus = 'starting'
  /** True while a handler runs (or is suspended waiting for a call). */
  busy = false
  /** The instance this one is blocked on in a call, for cycle detection. */
  waitingOn: Actor | null = null
  /** Shared {@link IDLE_MAILBOX} until the first message: most lazily spawned instances never get one. */
  mailbox: Mailbox<Message> = IDLE_MAILBOX
  readonly name: string
  readonly id: InstanceId
  private idBytesCache: Uint8Array | null = null
  readonly stateId: string
  /** The output mapping; instances spawned without one share {@link NO_OUTPUTS} until their first `setOutput`. */
  outputs: Map<string, InstanceId>
  readonly callTimeoutMs: number
  readonly stopTimeoutMs: number
  readonly restartType: RestartType
  readonly mailboxCapacity: number
  readonly overflow: OverflowPolicy
  readonly initPayload: Uint8Array | undefined
  readonly statePolicy: StatePolicy
  readonly syncWait: boolean
  stateVersion: number | undefined
  readonly quotas: Required<HostQuotas>
  private logWindow = 0
  private logCount = 0
  private logDropped = 0
  guest!: Guest
  supervisor: Supervisor | null = null
  lastError: EdgelessError | undefined
  /** The newest state this instance synced (or was started with): what a restart hands to init. */
  lastState: Uint8Array | undefined
  restarts = 0
  /** Trace id of the message being handled (0 outside handlers: the sends start a new trace). */
  trace = 0
  /** Passivation's reference bit: set by every message processed. */
  touched = false
  /** Passivation's ring slot while live (-1: not tracked). */
  slot = -1
  /** Passivation: the state is in the store, not in {@link lastState} (hibernated, or a lazy spawn); read it before the next init. */
  stateFromStore = false
  /** The store acknowledged {@link lastState} (so a hibernation may drop the in-memory copy). */
  stateAcked = true
  readonly passivator: Passivator | null
  private readonly readState: (a: Actor) => Promise<Uint8Array | undefined>
  private snap: LifecycleSnapshot = initialLifecycle()
  private readonly makeGuest: (a: Actor) => Guest | Promise<Guest>
  /** Pending delayed casts; allocated by the first (most instances never schedule one). */
  private timers: Set<unknown> | null = null
  private idleWaiters: Array<() => void> | null = null
  private stopping: Promise<void> | null = null
  /** Set while a sibling's crash shuts this one down for a group restart. */
  private halting: Promise<void> | null = null
  /** Processing continues in `stopping` while a drain empties the mailbox. */
  private draining = false

  /** The id as upstream's 32 bytes (made on first use: a hibernated instance may never need it). */
  get idBytes(): Uint8Array {
    return (this.idBytesCache ??= instanceIdBytes(this.id))
  }

  constructor(private readonly sys: System, init: ActorInit) {
    this.name = init.name
    this.id = init.id
    this.stateId = init.stateId
    this.outputs = init.outputs
    this.callTimeoutMs = init.callTimeoutMs
    this.stopTimeoutMs = init.stopTimeoutMs
    this.restartType = init.restartType
    this.mailboxCapacity = init.mailboxCapacity
    this.overflow = init.overflow
    this.makeGuest = init.makeGuest
    this.initPayload = init.initPayload
    this.statePolicy = init.statePolicy
    this.syncWait = init.syncMode === 'wait'
    this.stateVersion = init.stateVersion
    this.quotas = init.quotas
    this.passivator = init.passivator
    this.readState = init.readState
  }

  /** Report an operation refused by a quota. */
  private overQuota(quota: keyof HostQuotas, op: string, details: Record<string, unknown>): void {
    const limit = this.quotas[quota]
    this.sys.emit('warning', {
      code: 'quota', name: this.name, instance: this.id,
      message: `"${this.name}" exceeded its ${quota} quota (${limit}) in ${op}; the ${op} was ${op === 'call' ? 'answered Err' : 'dropped'}. Fix the function, or raise quotas.${quota}.`,
      details: { quota, limit, op, ...details },
    })
  }

  /** True (and reported) when a payload is over the size quota. */
  private tooBig(payload: Uint8Array, op: string): boolean {
    if (payload.length <= this.quotas.maxPayloadBytes) return false
    this.overQuota('maxPayloadBytes', op, { bytes: payload.length })
    return true
  }

  /**
   * With `sync: 'wait'`, hold the mailbox until this instance's state write is acknowledged
   * (a store that is down holds it until the write succeeds or the instance is stopped).
   * True when it holds.
   */
  private holdForSync(): boolean {
    if (!this.syncWait || !this.sys.writer.has(this.stateId)) return false
    this.busy = true
    void this.sys.writer.flush(this.stateId, Infinity).then(() => {
      this.busy = false
      this.afterAsync()
    })
    return true
  }

  /** Apply a lifecycle event; false (and nothing changes) when the machine refuses it. */
  private to(event: LifecycleEvent): boolean {
    const next = nextLifecycle(this.snap, event)
    if (!next) return false
    const from = this.status
    this.snap = next
    this.status = next.value as ActorStatus
    if (from !== this.status) this.sys.emit('lifecycle', { name: this.name, instance: this.id, from, to: this.status })
    return true
  }

  /** May messages be taken from the mailbox now? */
  private get processing(): boolean {
    return this.status === 'running' || (this.draining && this.status === 'stopping')
  }

  // ---- mailbox ---------------------------------------------------------------------

  /**
   * Accept a message, or refuse it (dead letter; a call is answered Err at once). While
   * the instance is crashed or restarting, messages wait for the restarted instance.
   */
  enqueue(msg: Message): void {
    const s = this.status
    if (s !== 'running' && s !== 'starting' && s !== 'crashed' && s !== 'restarting' && s !== 'hibernated' && s !== 'hibernating' && s !== 'activating') {
      this.refuse(msg, s === 'failed' ? 'instance-failed' : 'instance-stopped')
      return
    }
    if (this.mailbox.length >= this.mailboxCapacity) {
      if (this.overflow === 'reject') {
        this.overflowed(msg)
        return
      }
      this.overflowed(this.mailbox.shift()!)
    }
    if (this.mailbox === IDLE_MAILBOX) this.mailbox = new Mailbox<Message>()
    this.mailbox.push(msg)
    this.sys.observer?.enqueued?.(this, msg.kind === 0 ? 'cast' : 'call', msg.trace, this.mailbox.length)
    if (s === 'running') {
      if (!this.busy) this.sys.scheduler.schedule(this)
    } else if (s === 'hibernated') this.activate()
  }

  private overflowed(msg: Message): void {
    const kind = msg.kind === 0 ? 'cast' : 'call'
    const reason = new EdgelessError('mailbox-full', `"${this.name}"'s mailbox is full (${this.mailboxCapacity} messages); ${this.overflow === 'reject' ? `the new ${kind} was refused` : `the oldest queued ${kind} was dropped`}. Slow the sender down, raise mailboxCapacity, or pick the other overflow policy.`, { name: this.name, capacity: this.mailboxCapacity, policy: this.overflow })
    msg.pending?.settle({ kind: 'err', error: reason })
    this.sys.emit('mailbox-full', { name: this.name, instance: this.id, from: msg.src, kind, capacity: this.mailboxCapacity, policy: this.overflow })
    this.sys.emit('dead-letter', { name: this.name, instance: this.id, from: msg.src, kind, payload: msg.payload, reason })
  }

  /** True when a call can be processed right now without overtaking anything. */
  canRunNow(): boolean {
    return this.status === 'running' && !this.busy && this.mailbox.length === 0
  }

  /** Process `msg` immediately (the synchronous call path); the caller checked {@link canRunNow}. */
  runNow(msg: Message): void {
    this.process(msg)
    if (!this.busy && this.mailbox.length > 0 && this.status === 'running') this.sys.scheduler.schedule(this)
  }

  runSlice(max: number): number {
    let n = 0
    while (n < max && !this.busy && this.processing) {
      const msg = this.mailbox.shift()
      if (msg === undefined) break
      n++
      this.process(msg)
    }
    if (!this.busy) {
      if (this.processing && this.mailbox.length > 0) this.sys.scheduler.schedule(this)
      else this.notifyIdle()
    }
    return n
  }

  private process(msg: Message): void {
    this.busy = true
    this.touched = true
    this.trace = msg.trace
    const handler: Handler = msg.kind === 0 ? 'cast' : 'call'
    const obs = this.sys.observer
    const t0 = obs ? wallNow() : 0
    obs?.started?.(this, handler, msg.trace)
    let r: void | CallResult | Promise<void | CallResult>
    try {
      r = msg.kind === 0 ? this.guest.cast(msg.src, msg.srcBytes, msg.payload) : this.guest.call(msg.src, msg.srcBytes, msg.payload)
    } catch (e) {
      this.busy = false
      obs?.finished?.(this, handler, msg.trace, wallNow() - t0, false)
      this.crashed(handler, e, msg)
      return
    }
    if (isThenable<void | CallResult>(r)) {
      r.then(
        (v) => {
          this.busy = false
          obs?.finished?.(this, handler, msg.trace, wallNow() - t0, true)
          msg.pending?.settle(v as CallResult)
          if (!this.holdForSync()) this.afterAsync()
        },
        (e: unknown) => {
          this.busy = false
          obs?.finished?.(this, handler, msg.trace, wallNow() - t0, false)
          this.crashed(handler, e, msg)
        },
      )
      return
    }
    this.busy = false
    if (obs) obs.finished?.(this, handler, msg.trace, wallNow() - t0, true)
    msg.pending?.settle(r as CallResult)
    // The guest copied the payload into its memory: its pooled array can carry another.
    if (msg.pooled === true && this.guest.copiesPayload === true) this.sys.bytes.give(msg.payload)
    this.holdForSync()
  }

  private afterAsync(): void {
    if (this.processing && this.mailbox.length > 0) this.sys.scheduler.schedule(this)
    else this.notifyIdle()
  }

  private refuse(msg: Message, code: 'instance-failed' | 'instance-stopped'): void {
    const reason = code === 'instance-failed'
      ? new EdgelessError(code, `"${this.name}" crashed (${this.lastError?.message ?? 'unknown reason'}) and is not restarted, so it takes no messages. Fix the crash, or give it a restart type that restarts it.`, { name: this.name })
      : new EdgelessError(code, `"${this.name}" is ${this.status}; the message was not delivered. Send to a running instance.`, { name: this.name })
    msg.pending?.settle({ kind: 'err', error: reason })
    this.sys.emit('dead-letter', { name: this.name, instance: this.id, from: msg.src, kind: msg.kind === 0 ? 'cast' : 'call', payload: msg.payload, reason })
  }

  private refuseAll(code: 'instance-failed' | 'instance-stopped'): void {
    for (let m = this.mailbox.shift(); m !== undefined; m = this.mailbox.shift()) this.refuse(m, code)
  }

  /**
   * A handler failed. The message it was processing is not retried (at most once, as
   * gen_server): it becomes a dead letter, and a caller waiting for it gets Err at once.
   * Messages queued behind it stay in the mailbox for the restarted instance, and delayed
   * casts this instance scheduled stay pending: it keeps its address, so they reach the
   * restarted one. The supervisor decides what happens next.
   */
  crashed(handler: Handler, e: unknown, msg?: Message): void {
    const { trap, error } = classifyFailure(e, this.name, handler)
    this.lastError = error
    this.to({ type: 'CRASH' })
    this.sys.emit('crash', { name: this.name, instance: this.id, handler, trap, error })
    if (msg) {
      const kind = msg.kind === 0 ? 'cast' : 'call'
      msg.pending?.settle(errResult('callee-crashed', `"${this.name}" crashed while handling the call: ${error.message}`, { name: this.name, trap }))
      this.sys.emit('dead-letter', { name: this.name, instance: this.id, from: msg.src, kind, payload: msg.payload, reason: error })
    }
    this.notifyIdle()
    // A crash while stopping (a drained message) needs no supervision: the stop goes on.
    if (this.status !== 'crashed') return
    // The first init of a spawn failing fails the spawn (OTP's start_child error); the
    // caller discards the instance. Every later crash is the supervisor's to handle.
    if (this.firstInit) return
    const rec = { name: this.name, instance: this.id, at: this.sys.clock.now(), handler, error }
    if (this.supervisor) this.supervisor.childCrashed(this, rec)
    else this.giveUp(error)
  }

  /** True while the very first init runs: its crash fails the spawn instead of restarting. */
  private firstInit = false

  /** Stop trying: the instance is `failed` and refuses messages until stopped. */
  giveUp(reason: EdgelessError): void {
    if (!this.to({ type: 'GIVE_UP' })) return
    // lastError stays the crash itself (what to fix); the reason for giving up is an event.
    this.sys.emit('warning', { code: 'gave-up', name: this.name, instance: this.id, message: reason.message, details: { reason: reason.code } })
    // It will not come back at this address, so its delayed casts die with it.
    this.cancelTimers()
    this.refuseAll('instance-failed')
  }

  private notifyIdle(): void {
    if (this.idleWaiters === null) return
    const ws = this.idleWaiters
    this.idleWaiters = null
    for (const w of ws) w()
  }

  /** Resolves true when no handler runs, or false if that takes longer than `ms`. */
  private whenIdle(ms: number): Promise<boolean> {
    if (!this.busy) return Promise.resolve(true)
    return new Promise((res) => {
      const timer = Number.isFinite(ms) ? this.sys.clock.setTimeout(() => res(false), ms) : null
      ;(this.idleWaiters ??= []).push(() => {
        if (timer !== null) this.sys.clock.clearTimeout(timer)
        res(true)
      })
    })
  }

  /** Resolves when the mailbox is empty and no handler runs (during a drain), or false after `ms`. */
  private async whenDrained(ms: number): Promise<boolean> {
    const deadline = this.sys.clock.now() + ms
    while (this.busy || this.mailbox.length > 0) {
      if (this.status !== 'stopping') return true
      const left = deadline - this.sys.clock.now()
      if (left <= 0) return false
      if (!this.busy) this.sys.scheduler.schedule(this)
      if (!(await this.whenIdle(left))) return false
      // Let the scheduler take the next slice.
      if (this.mailbox.length > 0 && !this.busy) await new Promise<void>((r) => queueMicrotask(r))
    }
    return true
  }

  // ---- lifecycle -------------------------------------------------------------------

  /**
   * Run handle_init. The first init of a spawn (`first`) that crashes fails the spawn (it is
   * reported and the caller discards the instance); a crash in a restart's init goes to the
   * supervisor like any crash. Resolves true on success.
   */
  async init(payload: Uint8Array | undefined, state: Uint8Array | undefined, first = true): Promise<boolean> {
    this.busy = true
    // Sends from init start their own traces (not the trace of the message handled last).
    this.trace = 0
    this.firstInit = first
    if (first) this.lastState = state
    const obs = this.sys.observer
    const t0 = obs ? wallNow() : 0
    obs?.started?.(this, 'init', 0)
    try {
      const r = this.guest.init(payload, state)
      if (isThenable(r)) await r
      obs?.finished?.(this, 'init', 0, wallNow() - t0, true)
    } catch (e) {
      this.busy = false
      obs?.finished?.(this, 'init', 0, wallNow() - t0, false)
      this.crashed('init', e)
      this.firstInit = false
      return false
    }
    this.firstInit = false
    this.busy = false
    if (!this.to({ type: 'INIT_OK' })) {
      // Stopped while initialising: the stop takes it from here.
      this.notifyIdle()
      return this.status !== 'stopped'
    }
    if (this.mailbox.length > 0) this.sys.scheduler.schedule(this)
    this.notifyIdle()
    return true
  }

  /**
   * A sibling crashed and the strategy restarts this one too: shut the running instance
   * down (its current message finishes, handle_stop runs, its state is flushed) but keep
   * its mailbox and address for the restart.
   */
  haltForRestart(): Promise<void> {
    if (this.status !== 'running') return Promise.resolve()
    this.to({ type: 'RESTART' })
    this.trace = 0
    this.halting = (async () => {
      if (await this.whenIdle(this.stopTimeoutMs)) {
        this.busy = true
        try {
          const r = this.guest.stop()
          if (isThenable(r)) await r
        } catch (e) {
          const { trap, error } = classifyFailure(e, this.name, 'stop')
          this.sys.emit('crash', { name: this.name, instance: this.id, handler: 'stop', trap, error })
        }
        this.busy = false
      }
    })()
    return this.halting
  }

  /**
   * Restart at the same address: a fresh guest, `handle_init(init payload, last synced
   * state)`, then the mailbox that waited. A no-op unless crashed or halted for a restart.
   */
  async restart(): Promise<void> {
    if (this.status === 'crashed') this.to({ type: 'RESTART' })
    else if (this.status !== 'restarting') return
    if (this.halting) await this.halting
    this.halting = null
    if (this.status !== 'restarting') return
    this.restarts++
    this.guest.dispose?.()
    this.guest = DORMANT
    try {
      const t0 = this.sys.observer ? wallNow() : 0
      const guest = await this.makeGuest(this)
      if (this.status !== 'restarting') {
        // Stopped while instantiating: the stop already released what it knew of.
        guest.dispose?.()
        return
      }
      this.guest = guest
      this.sys.observer?.instantiated?.(this, wallNow() - t0)
      // A crash in an activation's state read left the state in the store.
      await this.loadState()
    } catch (e) {
      this.crashed('init', e)
      return
    }
    // The restart gets the state from memory (the newest synced, even if the store has not
    // acknowledged it yet), so a store that is down does not delay it.
    if (this.status !== 'restarting') return
    const ok = await this.init(this.initPayload, this.lastState, false)
    if (ok) {
      this.passivator?.live(this)
      this.sys.emit('restart', { name: this.name, instance: this.id, restarts: this.restarts })
    }
  }

  // ---- passivation -----------------------------------------------------------------

  /**
   * Hibernate if idle (running, no handler, empty mailbox): `handle_stop` runs, the guest is
   * released, and the instance stays addressable. Its in-memory copy of the state is dropped
   * once the store has acknowledged it (under `transient`, memory is the only copy and it is
   * kept). Synchronous for a synchronous guest. False when it is not idle or not passivating.
   */
  hibernate(): boolean {
    if (this.passivator === null || this.status !== 'running' || this.busy || this.mailbox.length > 0) return false
    this.to({ type: 'HIBERNATE' })
    this.passivator.gone(this)
    this.passivator.hibernations++
    this.busy = true
    this.trace = 0
    const obs = this.sys.observer
    const t0 = obs ? wallNow() : 0
    obs?.started?.(this, 'stop', 0)
    let r: void | Promise<void>
    try {
      r = this.guest.stop()
    } catch (e) {
      obs?.finished?.(this, 'stop', 0, wallNow() - t0, false)
      this.hibernated(e, true)
      return true
    }
    if (isThenable(r)) {
      r.then(
        () => { obs?.finished?.(this, 'stop', 0, wallNow() - t0, true); this.hibernated(undefined, false) },
        (e: unknown) => { obs?.finished?.(this, 'stop', 0, wallNow() - t0, false); this.hibernated(e, true) },
      )
      return true
    }
    obs?.finished?.(this, 'stop', 0, wallNow() - t0, true)
    this.hibernated(undefined, false)
    return true
  }

  private hibernated(e: unknown, failed: boolean): void {
    this.busy = false
    if (failed) {
      // A crash in handle_stop is reported; the instance is released all the same (its next
      // activation starts from the last synced state, as a restart would).
      const { trap, error } = classifyFailure(e, this.name, 'stop')
      this.lastError = error
      this.sys.emit('crash', { name: this.name, instance: this.id, handler: 'stop', trap, error })
    }
    if (this.status !== 'hibernating') {
      // Stopped meanwhile: the stop, waiting for this handler, takes it from here.
      this.notifyIdle()
      return
    }
    this.guest.dispose?.()
    this.guest = DORMANT
    if (this.statePolicy !== 'transient' && this.stateAcked) {
      this.lastState = undefined
      this.stateFromStore = true
    }
    // Back to the footprint of an instance that was never touched.
    if (this.mailbox.length === 0) this.mailbox = IDLE_MAILBOX
    if (this.timers !== null && this.timers.size === 0) this.timers = null
    this.idBytesCache = null
    this.to({ type: 'HIBERNATED' })
    this.notifyIdle()
    // Messages that arrived while handle_stop ran wake it at once.
    if (this.mailbox.length > 0) this.activate()
  }

  /** A lazy spawn: addressable and hibernated before its first instantiation. */
  park(): void {
    this.stateFromStore = this.statePolicy !== 'transient'
    this.guest = DORMANT
    if (!this.to({ type: 'HIBERNATED' })) return
    if (this.mailbox.length > 0) this.activate()
  }

  /** A message reached a hibernated instance: instantiate, init with the last state, then process the mailbox. */
  private activate(): void {
    if (!this.to({ type: 'ACTIVATE' })) return
    if (this.passivator) this.passivator.activations++
    void this.wake()
  }

  private async wake(): Promise<void> {
    const obs = this.sys.observer
    const t0 = obs ? wallNow() : 0
    let guest: Guest | undefined
    try {
      guest = await this.makeGuest(this)
      if (this.status !== 'activating') {
        guest.dispose?.()
        return
      }
      obs?.instantiated?.(this, wallNow() - t0)
      await this.loadState()
    } catch (e) {
      guest?.dispose?.()
      // An instantiation or state-read failure is a crash of init: the supervisor restarts
      // it (with backoff) and the queued messages wait.
      if (this.status === 'activating') this.crashed('init', e)
      return
    }
    // The guest becomes the instance's only now: a stop that came while the state was read
    // must not run handle_stop on a guest whose handle_init never ran.
    if (this.status !== 'activating') {
      guest.dispose?.()
      return
    }
    this.guest = guest
    if (await this.init(this.initPayload, this.lastState, false)) this.passivator?.live(this)
  }

  /** Read the state from the store when this instance does not hold it in memory. */
  private async loadState(): Promise<void> {
    if (!this.stateFromStore) return
    const state = await this.readState(this)
    this.lastState = state
    this.stateFromStore = false
    this.stateAcked = true
  }

  /** The store acknowledged a write of this instance's state. */
  stateWritten(data: Uint8Array): void {
    if (data === this.lastState) this.stateAcked = true
  }

  /**
   * Stop. By default the message being processed finishes and the queued ones are refused
   * (dead letters; waiting callers get Err); with `drain`, the queued ones are processed
   * first (new ones are refused meanwhile). Then timers are cancelled, handle_stop runs
   * (unless the guest crashed), pending state writes are flushed.
   */
  stop(options: { drain?: boolean } = {}): Promise<void> {
    this.stopping ??= this.doStop(options.drain === true)
    return this.stopping
  }

  private async doStop(drain: boolean): Promise<void> {
    // A crashed, failed or halted guest is not called again: its stop handler is skipped.
    // So is a hibernating one (its handle_stop is running or ran) and a dormant one.
    let skipStop = this.status === 'failed' || this.status === 'crashed' || this.status === 'restarting' || this.status === 'hibernating' || this.guest === DORMANT
    const wasRunning = this.status === 'running'
    if (!this.to({ type: 'STOP' })) return
    this.draining = drain && wasRunning
    let idle = this.draining ? await this.whenDrained(this.stopTimeoutMs) : await this.whenIdle(this.stopTimeoutMs)
    this.draining = false
    if (idle && this.busy) idle = await this.whenIdle(this.stopTimeoutMs)
    if (!idle) {
      // A handler that never finishes (an async JS handler that never settles) must not
      // hold the stop forever. It is abandoned; its stop handler is skipped because the
      // instance is still inside a handler.
      skipStop = true
      this.lastError = new EdgelessError('instance-stopped', `"${this.name}" was still in a handler ${this.stopTimeoutMs} ms after stop was requested; the handler was abandoned and handle_stop skipped. Make handlers finish, or raise stopTimeoutMs.`, { name: this.name })
      this.sys.emit('warning', { code: 'stop-timeout', name: this.name, instance: this.id, message: this.lastError.message, details: { stopTimeoutMs: this.stopTimeoutMs } })
    }
    this.refuseAll('instance-stopped')
    this.cancelTimers()
    if (!skipStop) {
      this.busy = true
      this.trace = 0
      const obs = this.sys.observer
      const t0 = obs ? wallNow() : 0
      try {
        const r = this.guest.stop()
        if (isThenable(r)) await r
        obs?.finished?.(this, 'stop', 0, wallNow() - t0, true)
      } catch (e) {
        obs?.finished?.(this, 'stop', 0, wallNow() - t0, false)
        const { trap, error } = classifyFailure(e, this.name, 'stop')
        this.lastError = error
        this.sys.emit('crash', { name: this.name, instance: this.id, handler: 'stop', trap, error })
      }
      this.busy = false
      // A delayed cast scheduled by handle_stop itself dies with the instance too.
      this.cancelTimers()
    }
    this.guest.dispose?.()
    this.guest = DORMANT
    this.passivator?.gone(this)
    await this.sys.flushState(this.stateId)
    this.to({ type: 'STOPPED' })
    if (this.sys.actors.get(this.id.function) === this) this.sys.actors.delete(this.id.function)
    this.sys.emit('stop', { name: this.name, instance: this.id })
    this.onStopped?.(this)
  }

  /** Called once stopped (the runtime tells the supervisor, which may re-spawn a permanent child). */
  onStopped: ((a: Actor) => void) | null = null

  /**
   * Remove an instance whose init never ran or failed: refuse what was queued for it,
   * cancel its timers, unregister it. No stop handler (the guest was never initialised).
   */
  discard(): void {
    if (this.status === 'stopped') return
    this.to({ type: 'STOP' })
    this.to({ type: 'STOPPED' })
    this.status = 'stopped'
    this.refuseAll('instance-stopped')
    this.cancelTimers()
    this.guest?.dispose?.()
    this.passivator?.gone(this)
    this.supervisor?.remove(this)
    if (this.sys.actors.get(this.id.function) === this) this.sys.actors.delete(this.id.function)
  }

  cancelTimers(): void {
    const timers = this.timers
    if (timers === null) return
    if (this.sys.observer && timers.size) for (let i = 0; i < timers.size; i++) this.sys.observer.timer?.(this, 'cancelled', 0, 0)
    for (const t of timers) this.sys.clock.clearTimeout(t)
    this.timers = null
  }

  /** Delayed casts this instance has scheduled and that have not fired. */
  get pendingTimers(): number {
    return this.timers?.size ?? 0
  }

  // ---- GuestHost: what the guest's imports do -------------------------------------

  private resolve(alias: string, op: string): InstanceId | undefined {
    if (alias === 'self') return this.id
    const id = this.outputs.get(alias)
    if (id === undefined) {
      this.sys.emit('warning', {
        code: 'unknown-alias', name: this.name, instance: this.id,
        message: `"${this.name}" used alias "${alias}" in ${op}, but its output mapping has no such alias (it has: ${[...this.outputs.keys()].join(', ') || 'none'}). The ${op} was dropped${op === 'call' ? ' and answered Err' : ''}; add the alias to the output mapping.`,
        details: { alias, op },
      })
    }
    return id
  }

  private target(id: InstanceId, op: string): Actor | undefined {
    const a = this.sys.lookup(id)
    if (!a) {
      this.sys.emit('warning', {
        code: 'unknown-instance', name: this.name, instance: this.id,
        message: `"${this.name}" sent a ${op} to ${formatInstanceId(id)}, which is not a live instance on this node; it was dropped.`,
        details: { target: id, op },
      })
    }
    return a
  }

  cast(alias: string, payload: Uint8Array): void {
    if (this.tooBig(payload, 'cast')) return
    const id = this.resolve(alias, 'cast')
    if (id) this.castRaw(id, payload, alias)
  }

  castRaw(targetId: InstanceId, payload: Uint8Array, alias?: string): void {
    if (alias === undefined && this.tooBig(payload, 'cast')) return
    const t = this.target(targetId, 'cast')
    if (t) this.sys.castTo(this.id, this.idBytes, t, payload, alias, this.busy ? this.trace : 0)
  }

  call(alias: string, payload: Uint8Array): CallResult | Promise<CallResult> {
    const id = this.resolve(alias, 'call')
    if (!id) return errResult('unknown-alias', `"${this.name}" has no output alias "${alias}".`, { alias })
    return this.callRaw(id, payload, alias)
  }

  callRaw(targetId: InstanceId, payload: Uint8Array, alias?: string): CallResult | Promise<CallResult> {
    if (this.tooBig(payload, 'call')) return errResult('quota-exceeded', `"${this.name}" tried to call with ${payload.length} bytes, over its maxPayloadBytes quota (${this.quotas.maxPayloadBytes}).`, { bytes: payload.length })
    const t = this.target(targetId, 'call')
    if (!t) return errResult('unknown-instance', `No live instance ${formatInstanceId(targetId)}.`, { target: targetId })
    // A call made outside any handler (a resource answering an HTTP request, a JS timer)
    // does not block this instance's mailbox, so it adds no waits-for edge: several may be
    // in flight at once, and none can be part of a deadlock cycle.
    return this.sys.call(this.busy ? this : null, this.id, this.idBytes, t, payload, this.callTimeoutMs, alias, this.busy ? this.trace : 0)
  }

  delayedCast(delayMs: number, alias: string, payload: Uint8Array): void {
    // The alias is resolved now, as upstream does: a later patch of the mapping does not redirect it.
    if (this.tooBig(payload, 'delayed_cast')) return
    const timers = (this.timers ??= new Set())
    if (timers.size >= this.quotas.maxPendingTimers) {
      this.overQuota('maxPendingTimers', 'delayed_cast', { pending: timers.size })
      return
    }
    const id = this.resolve(alias, 'delayed_cast')
    if (!id) return
    const trace = this.busy ? this.trace : 0
    const timer = this.sys.clock.setTimeout(() => {
      timers.delete(timer)
      this.sys.observer?.timer?.(this, 'fired', delayMs, trace)
      const t = this.sys.lookup(id)
      if (t) this.sys.castTo(this.id, this.idBytes, t, payload, alias, trace)
      else this.target(id, 'delayed cast')
    }, delayMs)
    timers.add(timer)
    this.sys.observer?.timer?.(this, 'set', delayMs, trace)
  }

  sync(state: Uint8Array): void {
    if (this.tooBig(state, 'sync')) return
    this.lastState = state
    this.stateAcked = false
    this.sys.persist(this, state)
  }

  log(level: number, target: string, text: string): void {
    const now = this.sys.clock.now()
    if (now - this.logWindow >= 1000) {
      if (this.logDropped > 0) this.overQuota('maxLogLinesPerSecond', 'log', { dropped: this.logDropped })
      this.logWindow = now
      this.logCount = 0
      this.logDropped = 0
    }
    if (++this.logCount > this.quotas.maxLogLinesPerSecond) {
      // Counted, reported once per window (above), never buffered.
      this.logDropped++
      return
    }
    const lv = (level >= 1 && level <= 5 ? level : 1) as 1 | 2 | 3 | 4 | 5
    this.sys.emit('log', { level: lv, levelName: LEVEL_NAMES[lv], name: this.name, instance: this.id, target, text })
  }

  invalidAlias(op: 'cast' | 'call' | 'delayed_cast', bytes: Uint8Array): void {
    this.sys.emit('warning', {
      code: 'invalid-utf8', name: this.name, instance: this.id,
      message: `"${this.name}" used an alias that is not valid UTF-8 (${bytes.length} bytes) in ${op}; it is treated as an unknown alias and the ${op} ${op === 'call' ? 'answered Err' : 'dropped'}.`,
      details: { op, bytes: [...bytes] },
    })
  }

  cannotSuspend(): void {
    // The answer will never reach this guest, so it no longer waits on anyone.
    this.waitingOn = null
    this.sys.emit('warning', {
      code: 'cannot-suspend', name: this.name, instance: this.id,
      message: `"${this.name}" made a call that must wait, but its module was given precompiled without asyncify, so it cannot block; the call was answered Err. Pass the module's bytes instead of a WebAssembly.Module.`,
      details: {},
    })
  }
}
