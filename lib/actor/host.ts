/**
 * The host side of an instance: its identity, and what the guest's imports do (`cast`,
 * `call`, `delayed_cast`, `sync`, `telemetry_log`, ...) under the instance's quotas and log
 * rate limit. {@link Actor} extends it with the mailbox and the lifecycle.
 * @packageDocumentation
 */
import { errResult, type CallResult } from '../call-result'
import type { Guest, GuestHost } from '../guest'
import { formatInstanceId, instanceIdBytes, type InstanceId } from '../ids'
import type { HostQuotas, OverflowPolicy, RestartType, StatePolicy } from '../options'
import type { Message } from '../routing/message'
import type { Recipient } from '../routing/transport'
import type { StatefulInstance } from '../state/stores'
import type { Passivator } from './passivation'
import type { ActorContext } from './context'

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
  makeGuest: (host: GuestHost) => Guest | Promise<Guest>
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
  readState: (a: StatefulInstance & { readonly name: string }) => Promise<Uint8Array | undefined>
}

/**
 * The output mapping of every instance spawned without one (a million lazily spawned
 * instances need not hold a million empty maps). Never written: the runtime's `setOutput`
 * gives an instance a map of its own first.
 * @internal
 */
export const NO_OUTPUTS: ReadonlyMap<string, InstanceId> = new Map()

const LEVEL_NAMES = ['error', 'error', 'warn', 'info', 'debug', 'trace'] as const

/** How much of a guest's alias a warning shows (an alias is the guest's own bytes, of any length). */
const SHOWN_ALIAS = 64

/** An alias as a warning shows it: quoted, cut after {@link SHOWN_ALIAS} characters with its length. */
function shownAlias(alias: string): string {
  return alias.length > SHOWN_ALIAS ? `"${alias.slice(0, SHOWN_ALIAS)}…" (${alias.length} characters)` : `"${alias}"`
}

/**
 * The guest's host: every `env` import (and a JS function's context) lands on a method
 * here. Every method is safe with any input: what a quota refuses is a `warning` event
 * with the figure (a call gets Err), never host memory growth.
 * @internal
 */
export abstract class ActorHost implements GuestHost, StatefulInstance, Recipient {
  readonly name: string
  readonly id: InstanceId
  private idBytesCache: Uint8Array | null = null
  readonly stateId: string
  /** The output mapping; instances spawned without one share {@link NO_OUTPUTS} until their first `setOutput`. */
  outputs: Map<string, InstanceId>
  readonly callTimeoutMs: number
  readonly statePolicy: StatePolicy
  stateVersion: number | undefined
  readonly quotas: Required<HostQuotas>
  /** True while a handler runs (or is suspended waiting for a call). */
  busy = false
  /** Trace id of the message being handled (0 outside handlers: the sends start a new trace). */
  trace = 0
  /** The instance this one is blocked on in a call, for cycle detection. */
  waitingOn: Recipient | null = null
  /** The newest state this instance synced (or was started with): what a restart hands to init. */
  lastState: Uint8Array | undefined
  /** The store acknowledged {@link lastState} (so a hibernation may drop the in-memory copy). */
  stateAcked = true
  private logWindow = 0
  private logCount = 0
  private logDropped = 0
  /** Pending delayed casts; allocated by the first (most instances never schedule one). */
  protected timers: Set<unknown> | null = null
  /** Payload bytes the pending delayed casts hold (bounded by `quotas.maxTimerBytes`). */
  private timerBytes = 0
  /** The wasm instance or JS function it drives. */
  abstract guest: Guest
  // The mailbox side of a recipient, implemented by the Actor.
  abstract enqueue(msg: Message): void
  abstract canRunNow(): boolean
  abstract runNow(msg: Message): void

  constructor(
    /** The runtime, as its actors see it. */
    readonly sys: ActorContext,
    init: ActorInit,
  ) {
    this.name = init.name
    this.id = init.id
    this.stateId = init.stateId
    this.outputs = init.outputs
    this.callTimeoutMs = init.callTimeoutMs
    this.statePolicy = init.statePolicy
    this.stateVersion = init.stateVersion
    this.quotas = init.quotas
  }

  /** The id as upstream's 32 bytes (made on first use: a hibernated instance may never need it). */
  get idBytes(): Uint8Array {
    return (this.idBytesCache ??= instanceIdBytes(this.id))
  }

  /** Drop the cached id bytes (a hibernated instance goes back to the footprint of an untouched one). */
  protected dropIdBytes(): void {
    this.idBytesCache = null
  }

  /** Report an operation refused by a quota. */
  private overQuota(quota: keyof HostQuotas, op: string, details: Record<string, unknown>): void {
    const limit = this.quotas[quota]
    const outcome = op === 'call' ? 'answered Err' : op === 'reply' ? 'replaced by Err for the caller' : 'dropped'
    this.sys.emit('warning', {
      code: 'quota',
      name: this.name,
      instance: this.id,
      message: `"${this.name}" exceeded its ${quota} quota (${limit}) in ${op}; the ${op} was ${outcome}. Fix the function, or raise quotas.${quota}.`,
      details: { quota, limit, op, ...details },
    })
  }

  /** The Err for a reply over the size quota, reported as a `quota` warning. */
  protected replyTooBig(bytes: number): CallResult {
    this.overQuota('maxPayloadBytes', 'reply', { bytes })
    return errResult(
      'quota-exceeded',
      `"${this.name}" answered with ${bytes} bytes, over its maxPayloadBytes quota (${this.quotas.maxPayloadBytes}); the caller got Err instead. Answer less, or raise quotas.maxPayloadBytes.`,
      { bytes, limit: this.quotas.maxPayloadBytes },
    )
  }

  /** True (and reported) when a payload is over the size quota. */
  private tooBig(payload: Uint8Array, op: string): boolean {
    if (payload.length <= this.quotas.maxPayloadBytes) return false
    this.overQuota('maxPayloadBytes', op, { bytes: payload.length })
    return true
  }

  private resolve(alias: string, op: string): InstanceId | undefined {
    if (alias === 'self') return this.id
    const id = this.outputs.get(alias)
    if (id === undefined) {
      this.sys.emit('warning', {
        code: 'unknown-alias',
        name: this.name,
        instance: this.id,
        message: `"${this.name}" used alias ${shownAlias(alias)} in ${op}, but its output mapping has no such alias (it has: ${[...this.outputs.keys()].join(', ') || 'none'}). The ${op} was dropped${op === 'call' ? ' and answered Err' : ''}; add the alias to the output mapping.`,
        details: { alias: alias.length > SHOWN_ALIAS ? alias.slice(0, SHOWN_ALIAS) : alias, aliasLength: alias.length, op },
      })
    }
    return id
  }

  private target(id: InstanceId, op: string): Recipient | undefined {
    const a = this.sys.lookup(id)
    if (!a) {
      this.sys.emit('warning', {
        code: 'unknown-instance',
        name: this.name,
        instance: this.id,
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
    if (this.tooBig(payload, 'call'))
      return errResult(
        'quota-exceeded',
        `"${this.name}" tried to call with ${payload.length} bytes, over its maxPayloadBytes quota (${this.quotas.maxPayloadBytes}).`,
        { bytes: payload.length },
      )
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
    if (this.timerBytes + payload.length > this.quotas.maxTimerBytes) {
      this.overQuota('maxTimerBytes', 'delayed_cast', { bytes: payload.length, pendingBytes: this.timerBytes })
      return
    }
    const id = this.resolve(alias, 'delayed_cast')
    if (!id) return
    const trace = this.busy ? this.trace : 0
    this.timerBytes += payload.length
    const timer = this.sys.clock.setTimeout(() => {
      timers.delete(timer)
      this.timerBytes -= payload.length
      this.sys.observer?.timer?.(this, 'fired', delayMs, trace)
      const t = this.sys.lookup(id)
      if (t) this.sys.castTo(this.id, this.idBytes, t, payload, alias, trace)
      else this.target(id, 'delayed cast')
    }, delayMs)
    timers.add(timer)
    this.sys.observer?.timer?.(this, 'set', delayMs, trace)
  }

  /** Cancel every pending delayed cast. */
  cancelTimers(): void {
    const timers = this.timers
    if (timers === null) return
    if (this.sys.observer && timers.size) for (let i = 0; i < timers.size; i++) this.sys.observer.timer?.(this, 'cancelled', 0, 0)
    for (const t of timers) this.sys.clock.clearTimeout(t)
    this.timers = null
    this.timerBytes = 0
  }

  /** Delayed casts this instance has scheduled and that have not fired. */
  get pendingTimers(): number {
    return this.timers?.size ?? 0
  }

  sync(state: Uint8Array): void {
    if (this.tooBig(state, 'sync')) return
    this.lastState = state
    this.stateAcked = false
    this.sys.state.persist(this, state)
  }

  /** The store acknowledged a write of this instance's state. */
  stateWritten(data: Uint8Array): void {
    if (data === this.lastState) this.stateAcked = true
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
      code: 'invalid-utf8',
      name: this.name,
      instance: this.id,
      message: `"${this.name}" used an alias that is not valid UTF-8 (${bytes.length} bytes) in ${op}; it is treated as an unknown alias and the ${op} ${op === 'call' ? 'answered Err' : 'dropped'}.`,
      // The first bytes only: a guest's alias may be megabytes, and an event is kept by listeners.
      details: { op, bytes: [...bytes.subarray(0, SHOWN_ALIAS)], length: bytes.length },
    })
  }

  cannotSuspend(): void {
    // The answer will never reach this guest, so it no longer waits on anyone.
    this.waitingOn = null
    this.sys.emit('warning', {
      code: 'cannot-suspend',
      name: this.name,
      instance: this.id,
      message: `"${this.name}" made a call that must wait, but its module was given precompiled without asyncify, so it cannot block; the call was answered Err. Pass the module's bytes instead of a WebAssembly.Module.`,
      details: {},
    })
  }
}
