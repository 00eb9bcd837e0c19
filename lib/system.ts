import type { EventEmitter } from 'eventemitter3'
import type { StateStore } from '../adapters/types'
import type { Actor, Message } from './actor'
import { errResult, type CallResult } from './call-result'
import type { Clock } from './clock'
import type { RuntimeEvents } from './events'
import { isThenable } from './guest'
import { instanceIdBytes, type InstanceId } from './ids'
import { PendingCall } from './pending-call'
import type { Observer } from './observer'
import { Scheduler } from './scheduler'
import { StateWriter, type StateWriteOptions } from './state-writer'

/**
 * Where a function's state lives, as upstream names the policies: `transient` (nothing is
 * written; a restart in this process still gets the last synced state from memory),
 * `node-local` (this node's store: files, SQLite, memory) or `global` (a store shared by
 * nodes, e.g. Redis). Mapped to stores by {@link RuntimeOptions.stateStores}.
 */
/**
 * Observes messages for the test kit's trace. `message` is called when a cast or call is
 * sent; for a call it may return a function that receives the answer.
 * @internal
 */
export interface Tracer {
  message(kind: 'cast' | 'call', from: InstanceId, to: Actor, payload: Uint8Array, alias: string | undefined): ((r: CallResult) => void) | void
}

export type StatePolicy = 'transient' | 'node-local' | 'global'

/** Nested synchronous calls deeper than this take the queued path, so long chains cannot overflow the JS stack. */
const MAX_SYNC_DEPTH = 32

/**
 * The internals shared by a runtime's actors: the registry, the scheduler, the clock,
 * message routing, calls with cycle detection and timeouts, and ordered state writes.
 * The public {@link Runtime} is a thin facade over it.
 * @internal
 */
export class System {
  readonly actors = new Map<string, Actor>()
  readonly scheduler = new Scheduler()
  readonly hostId: InstanceId
  readonly hostIdBytes: Uint8Array
  private syncDepth = 0
  readonly writer: StateWriter

  constructor(
    readonly nodeId: string,
    readonly clock: Clock,
    readonly stores: { nodeLocal: StateStore; global: StateStore },
    private readonly events: EventEmitter<RuntimeEvents>,
    writeOptions: StateWriteOptions = {},
  ) {
    this.writer = new StateWriter(clock, (name, ...args) => this.emit(name, ...args), writeOptions)
    // The host application's own address: the nil function id on this node.
    this.hostId = { node: nodeId, function: '00000000-0000-0000-0000-000000000000' }
    this.hostIdBytes = instanceIdBytes(this.hostId)
  }

  emit<K extends keyof RuntimeEvents>(name: K, ...args: RuntimeEvents[K]): void {
    // Listener exceptions must not reach the mailbox loop or a guest's import.
    try {
      ;(this.events.emit as (n: K, ...a: RuntimeEvents[K]) => boolean)(name, ...args)
    } catch (e) {
      queueMicrotask(() => { throw e })
    }
  }

  lookup(id: InstanceId): Actor | undefined {
    const a = this.actors.get(id.function)
    return a && a.id.node === id.node ? a : undefined
  }

  /** Sees every cast and call (the test kit's trace); `null` costs one check per message. */
  tracer: Tracer | null = null
  /** Inspection hooks (see {@link Observer}); `null` costs one check per point. */
  observer: Observer | null = null
  /** The last trace id handed out. */
  private traces = 0

  /** Enqueue a cast; refused messages become dead letters. */
  castTo(from: InstanceId, fromBytes: Uint8Array, target: Actor, payload: Uint8Array, alias?: string, trace = 0): void {
    if (this.tracer) this.tracer.message('cast', from, target, payload, alias)
    const t = trace || ++this.traces
    if (this.observer) this.observer.sent?.(from, target, 'cast', t, payload.length, alias)
    target.enqueue({ kind: 0, src: from, srcBytes: fromBytes, payload, pending: null, trace: t })
  }

  /**
   * A call from `caller` (null = the host application) to `target`. Answered synchronously
   * when the target is idle with an empty mailbox and answers without waiting (the fast
   * path); otherwise queued behind earlier messages, with a timeout.
   */
  call(caller: Actor | null, from: InstanceId, fromBytes: Uint8Array, target: Actor, payload: Uint8Array, timeoutMs: number, alias?: string, trace = 0): CallResult | Promise<CallResult> {
    const t = trace || ++this.traces
    if (this.observer) this.observer.sent?.(from, target, 'call', t, payload.length, alias)
    if (this.tracer === null) return this.callInner(caller, from, fromBytes, target, payload, timeoutMs, t)
    const done = this.tracer.message('call', from, target, payload, alias)
    const r = this.callInner(caller, from, fromBytes, target, payload, timeoutMs, t)
    if (!done) return r
    if (isThenable<CallResult>(r)) return Promise.resolve(r).then((v) => { done(v); return v })
    done(r)
    return r
  }

  private callInner(caller: Actor | null, from: InstanceId, fromBytes: Uint8Array, target: Actor, payload: Uint8Array, timeoutMs: number, trace: number): CallResult | Promise<CallResult> {
    if (caller) {
      const cycle = this.findCycle(caller, target)
      if (cycle) {
        const names = cycle.map((a) => a.name)
        const r = errResult('call-cycle', cycle.length === 2
          ? `"${caller.name}" called itself; it would wait for its own answer forever. Cast to "self" instead, or restructure.`
          : `Call cycle ${names.join(' -> ')}: every instance in it waits for the next, so none could answer. Break the cycle (make one of the calls a cast).`, { cycle: names })
        this.emit('call-cycle', { caller: caller.name, callerInstance: caller.id, target: target.name, targetInstance: target.id, cycle: names, error: r.error })
        return r
      }
    }
    const pc = new PendingCall(this, caller, target, timeoutMs)
    const msg: Message = { kind: 1, src: from, srcBytes: fromBytes, payload, pending: pc, trace }
    if (target.canRunNow() && this.syncDepth < MAX_SYNC_DEPTH) {
      if (caller) caller.waitingOn = target
      this.syncDepth++
      try {
        target.runNow(msg)
      } finally {
        this.syncDepth--
      }
      if (pc.settled) return pc.result
      return pc.wait()
    }
    target.enqueue(msg)
    return pc.wait()
  }

  /** The cycle `caller -> target -> ... -> caller` of waiting instances that this call would close, if any. */
  private findCycle(caller: Actor, target: Actor): Actor[] | undefined {
    const path: Actor[] = [caller]
    for (let t: Actor | null = target; t; t = t.waitingOn) {
      path.push(t)
      if (t === caller) return path
      if (path.length > this.actors.size + 1) break
    }
    return undefined
  }

  /** Persist `data` for `actor` under its policy's store (nothing for `transient`). */
  persist(actor: Actor, data: Uint8Array): void {
    if (actor.statePolicy === 'transient') return
    this.writer.write(actor, this.storeFor(actor.statePolicy), actor.stateId, data)
  }

  /** The store of a state policy. */
  storeFor(policy: Exclude<StatePolicy, 'transient'>): StateStore {
    return policy === 'global' ? this.stores.global : this.stores.nodeLocal
  }

  /** Resolves when every write for `stateId` issued so far has finished; false if it timed out (reported as `state-lost`). */
  flushState(stateId: string, timeoutMs?: number): Promise<boolean> {
    return this.writer.flush(stateId, timeoutMs)
  }
}
