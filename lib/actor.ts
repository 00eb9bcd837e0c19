import type { StateStore } from '../adapters/types'
import { errResult, type CallResult } from './call-result'
import { EdgelessError } from './errors'
import type { Handler } from './events'
import { classifyFailure, isThenable, type Guest, type GuestHost } from './guest'
import { formatInstanceId, instanceIdBytes, type InstanceId } from './ids'
import { Mailbox } from './mailbox'
import type { PendingCall } from './pending-call'
import type { Runnable } from './scheduler'
import type { System } from './system'

/** A message in a mailbox: kind 0 = cast, 1 = call (with the call it answers). @internal */
export interface Message {
  kind: 0 | 1
  src: InstanceId
  srcBytes: Uint8Array
  payload: Uint8Array
  pending: PendingCall | null
}

/**
 * Where an instance is in its life. `failed`: a handler crashed; the instance refuses
 * messages until it is stopped (or, with supervision, restarted).
 */
export type ActorStatus = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed'

/** Options an actor is built with. @internal */
export interface ActorInit {
  name: string
  id: InstanceId
  stateId: string
  callTimeoutMs: number
  /** How long stop waits for a running handler before abandoning it. */
  stopTimeoutMs: number
  outputs: Map<string, InstanceId>
}

const LEVEL_NAMES = ['error', 'error', 'warn', 'info', 'debug', 'trace'] as const

/**
 * One function instance: a mailbox processed one message at a time, in order, by its
 * guest. It is also the guest's host: every `env` import lands on a method here.
 * Failures are data: a guest that throws or traps becomes a `crash` event and a `failed`
 * status, never an exception in the scheduler.
 * @internal
 */
export class Actor implements GuestHost, Runnable {
  queued = false
  status: ActorStatus = 'starting'
  /** True while a handler runs (or is suspended waiting for a call). */
  busy = false
  /** The instance this one is blocked on in a call, for cycle detection. */
  waitingOn: Actor | null = null
  readonly mailbox = new Mailbox<Message>()
  readonly name: string
  readonly id: InstanceId
  readonly idBytes: Uint8Array
  readonly stateId: string
  readonly outputs: Map<string, InstanceId>
  readonly callTimeoutMs: number
  readonly stopTimeoutMs: number
  guest!: Guest
  lastError: EdgelessError | undefined
  lastState: Uint8Array | undefined
  private readonly timers = new Set<unknown>()
  private idleWaiters: Array<() => void> = []
  private stopping: Promise<void> | null = null

  constructor(private readonly sys: System, init: ActorInit) {
    this.name = init.name
    this.id = init.id
    this.idBytes = instanceIdBytes(init.id)
    this.stateId = init.stateId
    this.outputs = init.outputs
    this.callTimeoutMs = init.callTimeoutMs
    this.stopTimeoutMs = init.stopTimeoutMs
  }

  get store(): StateStore {
    return this.sys.store
  }

  // ---- mailbox ---------------------------------------------------------------------

  /** Accept a message, or refuse it (dead letter; a call is answered Err at once). */
  enqueue(msg: Message): void {
    if (this.status !== 'running' && this.status !== 'starting') {
      this.refuse(msg, this.status === 'failed' ? 'instance-failed' : 'instance-stopped')
      return
    }
    this.mailbox.push(msg)
    if (this.status === 'running' && !this.busy) this.sys.scheduler.schedule(this)
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
    while (n < max && !this.busy && this.status === 'running') {
      const msg = this.mailbox.shift()
      if (msg === undefined) break
      n++
      this.process(msg)
    }
    if (!this.busy) {
      if (this.status === 'running' && this.mailbox.length > 0) this.sys.scheduler.schedule(this)
      else this.notifyIdle()
    }
    return n
  }

  private process(msg: Message): void {
    this.busy = true
    const handler: Handler = msg.kind === 0 ? 'cast' : 'call'
    let r: void | CallResult | Promise<void | CallResult>
    try {
      r = msg.kind === 0 ? this.guest.cast(msg.src, msg.srcBytes, msg.payload) : this.guest.call(msg.src, msg.srcBytes, msg.payload)
    } catch (e) {
      this.busy = false
      this.crashed(handler, e, msg)
      return
    }
    if (isThenable<void | CallResult>(r)) {
      r.then(
        (v) => {
          this.busy = false
          msg.pending?.settle(v as CallResult)
          this.afterAsync()
        },
        (e: unknown) => {
          this.busy = false
          this.crashed(handler, e, msg)
        },
      )
      return
    }
    this.busy = false
    msg.pending?.settle(r as CallResult)
  }

  private afterAsync(): void {
    if (this.status === 'running' && this.mailbox.length > 0) this.sys.scheduler.schedule(this)
    else this.notifyIdle()
  }

  private refuse(msg: Message, code: 'instance-failed' | 'instance-stopped'): void {
    const reason = code === 'instance-failed'
      ? new EdgelessError(code, `"${this.name}" crashed earlier (${this.lastError?.message ?? 'unknown reason'}) and takes no messages. Restart it (spawn again) or fix the crash.`, { name: this.name })
      : new EdgelessError(code, `"${this.name}" is ${this.status}; the message was not delivered. Send to a running instance.`, { name: this.name })
    msg.pending?.settle({ kind: 'err', error: reason })
    this.sys.emit('dead-letter', { name: this.name, instance: this.id, from: msg.src, kind: msg.kind === 0 ? 'cast' : 'call', payload: msg.payload, reason })
  }

  /**
   * A handler failed: mark the instance failed, tell everyone concerned, refuse what is queued.
   * Delayed casts it scheduled before the crash stay pending (they were sent before it
   * failed; a supervisor restarting it at the same address will receive its own); stopping
   * the failed instance cancels them.
   */
  crashed(handler: Handler, e: unknown, msg?: Message): void {
    const { trap, error } = classifyFailure(e, this.name, handler)
    this.status = 'failed'
    this.lastError = error
    this.sys.emit('crash', { name: this.name, instance: this.id, handler, trap, error })
    msg?.pending?.settle(errResult('callee-crashed', `"${this.name}" crashed while handling the call: ${error.message}`, { name: this.name, trap }))
    for (let m = this.mailbox.shift(); m !== undefined; m = this.mailbox.shift()) this.refuse(m, 'instance-failed')
    this.notifyIdle()
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length === 0) return
    const ws = this.idleWaiters
    this.idleWaiters = []
    for (const w of ws) w()
  }

  /** Resolves true when no handler runs, or false if that takes longer than `ms`. */
  private whenIdle(ms: number): Promise<boolean> {
    if (!this.busy) return Promise.resolve(true)
    return new Promise((res) => {
      const timer = Number.isFinite(ms) ? this.sys.clock.setTimeout(() => res(false), ms) : null
      this.idleWaiters.push(() => {
        if (timer !== null) this.sys.clock.clearTimeout(timer)
        res(true)
      })
    })
  }

  // ---- lifecycle -------------------------------------------------------------------

  /** Run handle_init; resolves true on success, false after a crash (already reported). */
  async init(payload: Uint8Array | undefined, state: Uint8Array | undefined): Promise<boolean> {
    this.busy = true
    try {
      const r = this.guest.init(payload, state)
      if (isThenable(r)) await r
    } catch (e) {
      this.busy = false
      this.crashed('init', e)
      return false
    }
    this.busy = false
    if (this.status === 'starting') this.status = 'running'
    if (this.mailbox.length > 0) this.sys.scheduler.schedule(this)
    return true
  }

  /** Stop gracefully: let the current message finish, refuse the rest, cancel timers, run handle_stop. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop()
    return this.stopping
  }

  private async doStop(): Promise<void> {
    let failed = this.status === 'failed'
    this.status = 'stopping'
    if (!(await this.whenIdle(this.stopTimeoutMs))) {
      // A handler that never finishes (an async JS handler that never settles) must not
      // hold the stop forever. It is abandoned; its stop handler is skipped because the
      // instance is still inside a handler.
      failed = true
      this.lastError = new EdgelessError('instance-stopped', `"${this.name}" was still in a handler ${this.stopTimeoutMs} ms after stop was requested; the handler was abandoned and handle_stop skipped. Make handlers finish, or raise stopTimeoutMs.`, { name: this.name })
      this.sys.emit('warning', { code: 'stop-timeout', name: this.name, instance: this.id, message: this.lastError.message, details: { stopTimeoutMs: this.stopTimeoutMs } })
    }
    for (let m = this.mailbox.shift(); m !== undefined; m = this.mailbox.shift()) this.refuse(m, 'instance-stopped')
    this.cancelTimers()
    if (!failed) {
      this.busy = true
      try {
        const r = this.guest.stop()
        if (isThenable(r)) await r
      } catch (e) {
        const { trap, error } = classifyFailure(e, this.name, 'stop')
        this.lastError = error
        this.sys.emit('crash', { name: this.name, instance: this.id, handler: 'stop', trap, error })
      }
      this.busy = false
      // A delayed cast scheduled by handle_stop itself dies with the instance too.
      this.cancelTimers()
    }
    await this.sys.flushState(this.stateId)
    this.status = 'stopped'
    this.sys.actors.delete(this.id.function)
    this.sys.emit('stop', { name: this.name, instance: this.id })
  }

  /**
   * Remove an instance whose init never ran or failed: refuse what was queued for it,
   * cancel its timers, unregister it. No stop handler (the guest was never initialised).
   */
  discard(): void {
    if (this.status === 'stopped') return
    this.status = 'stopped'
    for (let m = this.mailbox.shift(); m !== undefined; m = this.mailbox.shift()) this.refuse(m, 'instance-stopped')
    this.cancelTimers()
    if (this.sys.actors.get(this.id.function) === this) this.sys.actors.delete(this.id.function)
  }

  cancelTimers(): void {
    for (const t of this.timers) this.sys.clock.clearTimeout(t)
    this.timers.clear()
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
    const id = this.resolve(alias, 'cast')
    if (id) this.castRaw(id, payload)
  }

  castRaw(targetId: InstanceId, payload: Uint8Array): void {
    const t = this.target(targetId, 'cast')
    if (t) this.sys.castTo(this.id, this.idBytes, t, payload)
  }

  call(alias: string, payload: Uint8Array): CallResult | Promise<CallResult> {
    const id = this.resolve(alias, 'call')
    if (!id) return errResult('unknown-alias', `"${this.name}" has no output alias "${alias}".`, { alias })
    return this.callRaw(id, payload)
  }

  callRaw(targetId: InstanceId, payload: Uint8Array): CallResult | Promise<CallResult> {
    const t = this.target(targetId, 'call')
    if (!t) return errResult('unknown-instance', `No live instance ${formatInstanceId(targetId)}.`, { target: targetId })
    // A call made outside any handler (a resource answering an HTTP request, a JS timer)
    // does not block this instance's mailbox, so it adds no waits-for edge: several may be
    // in flight at once, and none can be part of a deadlock cycle.
    return this.sys.call(this.busy ? this : null, this.id, this.idBytes, t, payload, this.callTimeoutMs)
  }

  delayedCast(delayMs: number, alias: string, payload: Uint8Array): void {
    // The alias is resolved now, as upstream does: a later patch of the mapping does not redirect it.
    const id = this.resolve(alias, 'delayed_cast')
    if (!id) return
    const timer = this.sys.clock.setTimeout(() => {
      this.timers.delete(timer)
      const t = this.sys.lookup(id)
      if (t) this.sys.castTo(this.id, this.idBytes, t, payload)
      else this.target(id, 'delayed cast')
    }, delayMs)
    this.timers.add(timer)
  }

  sync(state: Uint8Array): void {
    this.lastState = state
    this.sys.persist(this, state)
  }

  log(level: number, target: string, text: string): void {
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
