import type { EventEmitter } from 'eventemitter3'
import type { StateStore } from '../adapters/types'
import type { Actor, Message } from './actor'
import { errResult, type CallResult } from './call-result'
import type { Clock } from './clock'
import { EdgelessError } from './errors'
import type { RuntimeEvents } from './events'
import { isThenable } from './guest'
import { instanceIdBytes, type InstanceId } from './ids'
import { PendingCall } from './pending-call'
import { Scheduler } from './scheduler'

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
  /** In-flight writes per state id; `next` holds the newest version waiting its turn. */
  private readonly writes = new Map<string, { next: Uint8Array | null; done: Promise<void> }>()

  constructor(
    readonly nodeId: string,
    readonly clock: Clock,
    readonly store: StateStore,
    private readonly events: EventEmitter<RuntimeEvents>,
  ) {
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

  /** Enqueue a cast; refused messages become dead letters. */
  castTo(from: InstanceId, fromBytes: Uint8Array, target: Actor, payload: Uint8Array): void {
    target.enqueue({ kind: 0, src: from, srcBytes: fromBytes, payload, pending: null })
  }

  /**
   * A call from `caller` (null = the host application) to `target`. Answered synchronously
   * when the target is idle with an empty mailbox and answers without waiting (the fast
   * path); otherwise queued behind earlier messages, with a timeout.
   */
  call(caller: Actor | null, from: InstanceId, fromBytes: Uint8Array, target: Actor, payload: Uint8Array, timeoutMs: number): CallResult | Promise<CallResult> {
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
    const msg: Message = { kind: 1, src: from, srcBytes: fromBytes, payload, pending: pc }
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

  /** Persist `data` for `actor`, keeping writes per state id in order and coalescing bursts. */
  persist(actor: Actor, data: Uint8Array): void {
    const key = actor.stateId
    const pending = this.writes.get(key)
    if (pending) {
      pending.next = data
      return
    }
    const entry: { next: Uint8Array | null; done: Promise<void> } = { next: null, done: Promise.resolve() }
    let r: unknown
    try {
      r = this.store.set(key, data)
    } catch (e) {
      this.writeFailed(actor, key, e)
      return
    }
    if (!isThenable(r)) {
      this.emit('state-written', { name: actor.name, instance: actor.id, stateId: key, bytes: data.length })
      return
    }
    this.writes.set(key, entry)
    entry.done = (async () => {
      let current: Uint8Array | null = data
      let first = true
      while (current) {
        try {
          if (first) await r
          else await this.store.set(key, current)
          this.emit('state-written', { name: actor.name, instance: actor.id, stateId: key, bytes: current.length })
        } catch (e) {
          this.writeFailed(actor, key, e)
        }
        first = false
        current = entry.next
        entry.next = null
      }
      this.writes.delete(key)
    })()
  }

  private writeFailed(actor: Actor, stateId: string, e: unknown): void {
    const error = new EdgelessError('state-store-failed', `Writing the state of "${actor.name}" (state id ${stateId}) failed: ${(e as Error)?.message ?? e}. The store may be down; the state is kept in memory and the next sync retries.`, { stateId }, { cause: e })
    this.emit('state-error', { name: actor.name, instance: actor.id, stateId, error })
  }

  /** Resolves when every write for `stateId` issued so far has finished. */
  async flushState(stateId: string): Promise<void> {
    for (let w = this.writes.get(stateId); w; w = this.writes.get(stateId)) await w.done
  }
}
