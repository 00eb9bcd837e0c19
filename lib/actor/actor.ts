/**
 * One function instance: its mailbox, the processing of one message at a time, crashes,
 * init and restart, and stop. The guest's imports are its base class's ({@link ActorHost}),
 * hibernation is in `hibernation.ts`, and every handler runs through {@link invoke}.
 * @packageDocumentation
 */
import { errResult, type CallResult } from '../call-result'
import { EdgelessError } from '../errors'
import type { CrashRecord, Handler } from '../events'
import { classifyFailure, isThenable, type Guest } from '../guest'
import type { RestartType, OverflowPolicy } from '../options'
import type { Message } from '../routing/message'
import type { Recipient } from '../routing/transport'
import type { ActorContext } from './context'
import { activate, DORMANT, hibernate, IDLE_MAILBOX, loadState, park } from './hibernation'
import { ActorHost, type ActorInit } from './host'
import { invoke, THREW, thrown } from './invoke'
import { wallNow } from '../observer'
import { initialLifecycle, nextLifecycle, statusHas, type ActorStatus, type LifecycleEvent, type LifecycleSnapshot } from './lifecycle'
import { Mailbox } from './mailbox'
import type { Passivating, Passivator } from './passivation'
import type { Runnable } from './scheduler'

export type { ActorStatus } from './lifecycle'
export { NO_OUTPUTS, type ActorInit } from './host'

/**
 * What an actor asks of its supervisor (implemented by `Supervisor`): the supervisor
 * decides what a crash or a normal stop leads to; the actor does the restarting.
 * @internal
 */
export interface ActorSupervisor {
  /** A child crashed (its status is `crashed`, its mailbox kept). */
  childCrashed(a: Actor, rec: CrashRecord): void
  /** A child stopped normally; `respawn` brings a permanent one back. */
  childStoppedNormally(a: Actor, respawn: () => Promise<void>): void
  /** Replace `old` by `fresh` at the same position (a permanent child re-spawned). */
  replace(old: Actor, fresh: Actor): void
  remove(a: Actor): void
  /** The group is being stopped: nothing restarts. */
  readonly stopping: boolean
}

/**
 * One function instance: a mailbox processed one message at a time, in order, by its
 * guest. Failures are data: a guest that throws or traps becomes a `crash` event and a
 * lifecycle transition (see `lifecycleMachine`); its supervisor decides what follows.
 * It never throws into the scheduler.
 *
 * @example
 * ```ts
 * const actor = new Actor(system, init)
 * actor.guest = await init.makeGuest(actor)
 * await actor.init(payload, state)
 * actor.enqueue(msg)
 * ```
 * @internal
 */
export class Actor extends ActorHost implements Runnable, Passivating, Recipient {
  queued = false
  /** Mirror of the lifecycle snapshot's value: read on every message, so a plain field. */
  status: ActorStatus = 'starting'
  /** Mirror of the status's `accepts` tag (messages queue up rather than being refused): read on every message. */
  private accepting = true
  /** Shared {@link IDLE_MAILBOX} until the first message: most lazily spawned instances never get one. */
  mailbox: Mailbox<Message> = IDLE_MAILBOX
  /** Payload bytes waiting in the mailbox (bounded by `quotas.maxMailboxBytes`). */
  private queuedBytes = 0
  readonly stopTimeoutMs: number
  readonly restartType: RestartType
  readonly mailboxCapacity: number
  readonly overflow: OverflowPolicy
  readonly initPayload: Uint8Array | undefined
  readonly syncWait: boolean
  guest!: Guest
  supervisor: ActorSupervisor | null = null
  lastError: EdgelessError | undefined
  restarts = 0
  /** Passivation's reference bit: set by every message processed. */
  touched = false
  /** Passivation's ring slot while live (-1: not tracked). */
  slot = -1
  /** Passivation: the state is in the store, not in {@link lastState} (hibernated, or a lazy spawn); read it before the next init. */
  stateFromStore = false
  readonly passivator: Passivator | null
  /** Reads this instance's state from its store. */
  readonly readState: ActorInit['readState']
  private snap: LifecycleSnapshot = initialLifecycle()
  /** Builds a fresh guest for this instance (restart, activation). */
  readonly makeGuest: ActorInit['makeGuest']
  private idleWaiters: Array<() => void> | null = null
  private stopping: Promise<void> | null = null
  /** Set while a sibling's crash shuts this one down for a group restart. */
  private halting: Promise<void> | null = null
  /** Processing continues in `stopping` while a drain empties the mailbox. */
  private draining = false
  /** True while the very first init runs: its crash fails the spawn instead of restarting. */
  private firstInit = false
  /** Called once stopped (the runtime tells the supervisor, which may re-spawn a permanent child). */
  onStopped: ((a: Actor) => void) | null = null

  constructor(sys: ActorContext, init: ActorInit) {
    super(sys, init)
    this.stopTimeoutMs = init.stopTimeoutMs
    this.restartType = init.restartType
    this.mailboxCapacity = init.mailboxCapacity
    this.overflow = init.overflow
    this.makeGuest = init.makeGuest
    this.initPayload = init.initPayload
    this.syncWait = init.syncMode === 'wait'
    this.passivator = init.passivator
    this.readState = init.readState
  }

  /**
   * With `sync: 'wait'`, hold the mailbox until this instance's state write is acknowledged
   * (a store that is down holds it until the write succeeds or the instance is stopped).
   * True when it holds.
   */
  private holdForSync(): boolean {
    if (!this.syncWait || !this.sys.state.writer.has(this.stateId)) return false
    this.busy = true
    void this.sys.state.writer.flush(this.stateId, Infinity).then(() => {
      this.busy = false
      this.afterAsync()
    })
    return true
  }

  /** Apply a lifecycle event; false (and nothing changes) when the machine refuses it. @internal */
  to(event: LifecycleEvent): boolean {
    const next = nextLifecycle(this.snap, event)
    if (!next) return false
    const from = this.status
    this.snap = next
    this.status = next.value as ActorStatus
    this.accepting = statusHas(this.status, 'accepts')
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
    if (!this.accepting) {
      this.refuse(msg, this.status === 'failed' ? 'instance-failed' : 'instance-stopped')
      return
    }
    const size = msg.payload.length
    const maxBytes = this.quotas.maxMailboxBytes
    if (this.mailbox.length >= this.mailboxCapacity || this.queuedBytes + size > maxBytes) {
      // A message larger than the whole bound cannot be made room for.
      if (this.overflow === 'reject' || size > maxBytes) {
        this.overflowed(msg)
        return
      }
      while (this.mailbox.length > 0 && (this.mailbox.length >= this.mailboxCapacity || this.queuedBytes + size > maxBytes)) this.overflowed(this.take()!)
    }
    if (this.mailbox === IDLE_MAILBOX) this.mailbox = new Mailbox<Message>()
    this.mailbox.push(msg)
    this.queuedBytes += size
    this.sys.observer?.enqueued?.(this, msg.kind === 0 ? 'cast' : 'call', msg.trace, this.mailbox.length)
    const s = this.status
    if (s === 'running') {
      if (!this.busy) this.sys.scheduler.schedule(this)
    } else if (s === 'hibernated') activate(this)
  }

  /** The next message of the mailbox, its bytes no longer counted as queued. */
  private take(): Message | undefined {
    const m = this.mailbox.shift()
    if (m !== undefined) this.queuedBytes -= m.payload.length
    return m
  }

  private overflowed(msg: Message): void {
    const kind = msg.kind === 0 ? 'cast' : 'call'
    const maxBytes = this.quotas.maxMailboxBytes
    const full =
      this.mailbox.length >= this.mailboxCapacity
        ? `${this.mailboxCapacity} messages`
        : `${this.queuedBytes} of ${maxBytes} bytes queued, the ${kind} has ${msg.payload.length}`
    const reason = new EdgelessError(
      'mailbox-full',
      `"${this.name}"'s mailbox is full (${full}); ${this.overflow === 'reject' || msg.payload.length > maxBytes ? `the new ${kind} was refused` : `the oldest queued ${kind} was dropped`}. Slow the sender down, raise mailboxCapacity or quotas.maxMailboxBytes, or pick the other overflow policy.`,
      { name: this.name, capacity: this.mailboxCapacity, policy: this.overflow, queuedBytes: this.queuedBytes, maxBytes },
    )
    msg.pending?.settle({ kind: 'err', error: reason })
    this.sys.emit('mailbox-full', {
      name: this.name,
      instance: this.id,
      from: msg.src,
      kind,
      capacity: this.mailboxCapacity,
      policy: this.overflow,
      bytes: msg.payload.length,
      queuedBytes: this.queuedBytes,
      maxBytes,
    })
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
      const msg = this.take()
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
    const r = invoke(this, handler, msg)
    if (r === THREW) {
      this.busy = false
      this.crashed(handler, thrown(), msg)
      return
    }
    if (isThenable<void | CallResult>(r)) {
      r.then(
        (v) => {
          this.busy = false
          msg.pending?.settle(this.checkedReply(v as CallResult))
          if (!this.holdForSync()) this.afterAsync()
        },
        (e: unknown) => {
          this.busy = false
          this.crashed(handler, e, msg)
        },
      )
      return
    }
    this.busy = false
    msg.pending?.settle(this.checkedReply(r as CallResult))
    // The guest copied the payload into its memory: its pooled array can carry another.
    this.sys.bytes.handled(msg, this.guest)
    this.holdForSync()
  }

  /** A reply over `quotas.maxPayloadBytes` becomes Err `quota-exceeded` (and a `quota` warning), so a guest cannot hand the host an unbounded answer. */
  private checkedReply(r: CallResult): CallResult {
    if (r === undefined || r.kind !== 'reply' || r.data.length <= this.quotas.maxPayloadBytes) return r
    return this.replyTooBig(r.data.length)
  }

  private afterAsync(): void {
    if (this.processing && this.mailbox.length > 0) this.sys.scheduler.schedule(this)
    else this.notifyIdle()
  }

  private refuse(msg: Message, code: 'instance-failed' | 'instance-stopped'): void {
    const reason =
      code === 'instance-failed'
        ? new EdgelessError(
            code,
            `"${this.name}" crashed (${this.lastError?.message ?? 'unknown reason'}) and is not restarted, so it takes no messages. Fix the crash, or give it a restart type that restarts it.`,
            { name: this.name },
          )
        : new EdgelessError(code, `"${this.name}" is ${this.status}; the message was not delivered. Send to a running instance.`, { name: this.name })
    msg.pending?.settle({ kind: 'err', error: reason })
    this.sys.emit('dead-letter', { name: this.name, instance: this.id, from: msg.src, kind: msg.kind === 0 ? 'cast' : 'call', payload: msg.payload, reason })
  }

  private refuseAll(code: 'instance-failed' | 'instance-stopped'): void {
    for (let m = this.take(); m !== undefined; m = this.take()) this.refuse(m, code)
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

  /**
   * A crash in `handle_stop` (of a stop, a hibernation or a group restart): reported, and
   * kept as the last error unless `keepLastError`; the instance goes on being stopped.
   * @internal
   */
  stopHandlerFailed(e: unknown, keepLastError = false): void {
    const { trap, error } = classifyFailure(e, this.name, 'stop')
    if (!keepLastError) this.lastError = error
    this.sys.emit('crash', { name: this.name, instance: this.id, handler: 'stop', trap, error })
  }

  /** Stop trying: the instance is `failed` and refuses messages until stopped. */
  giveUp(reason: EdgelessError): void {
    if (!this.to({ type: 'GIVE_UP' })) return
    // lastError stays the crash itself (what to fix); the reason for giving up is an event.
    this.sys.emit('warning', { code: 'gave-up', name: this.name, instance: this.id, message: reason.message, details: { reason: reason.code } })
    // It will not come back at this address, so its delayed casts die with it.
    this.cancelTimers()
    this.refuseAll('instance-failed')
  }

  /** Wake whoever waits for this instance to be idle. @internal */
  notifyIdle(): void {
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
    // A synchronous init goes on synchronously (no await in between), as it always has.
    const r = invoke(this, 'init', null, payload, state)
    let failure: { e: unknown } | undefined = r === THREW ? { e: thrown() } : undefined
    if (failure === undefined && isThenable(r)) {
      try {
        await r
      } catch (e) {
        failure = { e }
      }
    }
    if (failure !== undefined) {
      this.busy = false
      this.crashed('init', failure.e)
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
   * Run `handle_stop` (of a stop, a hibernation or a group restart) to its end, reporting a
   * crash in it. Synchronous for a synchronous guest; otherwise the promise of its end.
   * @internal
   */
  runStopHandler(keepLastError = false): void | Promise<void> {
    this.trace = 0
    const r = invoke(this, 'stop', null)
    if (r === THREW) return this.stopHandlerFailed(thrown(), keepLastError)
    if (isThenable(r))
      return Promise.resolve(r).then(
        () => undefined,
        (e: unknown) => this.stopHandlerFailed(e, keepLastError),
      )
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
        // A crash here is reported; the crash that caused the group restart stays the last error.
        await this.runStopHandler(true)
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
      const obs = this.sys.observer
      const t0 = obs ? wallNow() : 0
      const guest = await this.makeGuest(this)
      if (this.status !== 'restarting') {
        // Stopped while instantiating: the stop already released what it knew of.
        guest.dispose?.()
        return
      }
      this.guest = guest
      this.sys.observer?.instantiated?.(this, wallNow() - t0)
      // A crash in an activation's state read left the state in the store.
      await loadState(this)
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

  // ---- passivation (lib/actor/hibernation.ts) ----------------------------------------

  /**
   * Hibernate if idle (see `hibernate` in hibernation.ts). False when it is not idle or not
   * passivating.
   */
  hibernate(): boolean {
    return hibernate(this)
  }

  /** A lazy spawn: addressable and hibernated before its first instantiation. */
  park(): void {
    park(this)
  }

  // ---- stop ------------------------------------------------------------------------

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
    let skipStop = statusHas(this.status, 'guest-halted') || this.guest === DORMANT
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
      this.lastError = new EdgelessError(
        'instance-stopped',
        `"${this.name}" was still in a handler ${this.stopTimeoutMs} ms after stop was requested; the handler was abandoned and handle_stop skipped. Make handlers finish, or raise stopTimeoutMs.`,
        { name: this.name },
      )
      this.sys.emit('warning', {
        code: 'stop-timeout',
        name: this.name,
        instance: this.id,
        message: this.lastError.message,
        details: { stopTimeoutMs: this.stopTimeoutMs },
      })
    }
    this.refuseAll('instance-stopped')
    this.cancelTimers()
    if (!skipStop) {
      this.busy = true
      const ended = this.runStopHandler()
      if (ended) await ended
      this.busy = false
      // A delayed cast scheduled by handle_stop itself dies with the instance too.
      this.cancelTimers()
    }
    this.guest.dispose?.()
    this.guest = DORMANT
    this.passivator?.gone(this)
    await this.sys.state.flush(this.stateId)
    this.to({ type: 'STOPPED' })
    this.sys.unregister(this)
    this.sys.emit('stop', { name: this.name, instance: this.id })
    this.onStopped?.(this)
  }

  /**
   * Remove an instance whose init never ran or failed: refuse what was queued for it,
   * cancel its timers, unregister it. No stop handler (the guest was never initialised).
   */
  discard(): void {
    if (this.status === 'stopped') return
    this.to({ type: 'STOP' })
    this.to({ type: 'STOPPED' })
    this.status = 'stopped'
    this.accepting = false
    this.refuseAll('instance-stopped')
    this.cancelTimers()
    this.guest?.dispose?.()
    this.passivator?.gone(this)
    this.supervisor?.remove(this)
    this.sys.unregister(this)
  }

  /** Give the mailbox back to the shared idle one when empty, and drop what a never-touched instance does not hold (hibernation). @internal */
  shrink(): void {
    if (this.mailbox.length === 0) this.mailbox = IDLE_MAILBOX
    if (this.timers !== null && this.timers.size === 0) this.timers = null
    this.dropIdBytes()
  }
}
