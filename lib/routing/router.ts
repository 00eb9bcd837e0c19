/**
 * Message routing: casts, calls (the synchronous fast path, queued calls with timeouts),
 * cycle detection over the waits-for edges, trace ids, and the lending of payload bytes.
 * It resolves instance ids through a {@link Transport} and works on {@link Recipient}s, so
 * it knows no actor, guest or wasm class.
 * @packageDocumentation
 */
import type { EventEmitter } from 'eventemitter3'
import { errResult, NOREPLY_RESULT, type CallResult } from '../call-result'
import type { Clock } from '../clock'
import type { RuntimeEvents } from '../events'
import { isThenable } from '../guest'
import { instanceIdBytes, type InstanceId } from '../ids'
import type { Observer } from '../observer'
import type { Message } from './message'
import { BytePool } from './ownership'
import { PendingCall, type CallEnv } from './pending-call'
import type { Recipient, Transport } from './transport'

/**
 * Observes messages for the test kit's trace. `message` is called when a cast or call is
 * sent; for a call it may return a function that receives the answer.
 * @internal
 */
export interface Tracer {
  message(kind: 'cast' | 'call', from: InstanceId, to: Recipient, payload: Uint8Array, alias: string | undefined): ((r: CallResult) => void) | void
}

/** Nested synchronous calls deeper than this take the queued path, so long chains cannot overflow the JS stack. */
const MAX_SYNC_DEPTH = 32

const NO_BYTES = new Uint8Array(0)

/**
 * A waits-for chain longer than this is not walked further (defensive: every edge is
 * checked for a cycle when it is made, so chains are acyclic and shorter than the number
 * of instances).
 */
const MAX_CHAIN = 1 << 22

/**
 * Routes messages between the instances a {@link Transport} resolves, and from the host
 * application (the nil function id on this node). Events go to the runtime's emitter.
 *
 * @example
 * ```ts
 * const router = new Router(nodeId, realClock, emitter, new InProcessTransport())
 * router.castTo(router.hostId, router.hostIdBytes, router.lookup(id)!, bytes)
 * ```
 * @internal
 */
export class Router implements CallEnv {
  readonly hostId: InstanceId
  readonly hostIdBytes: Uint8Array
  private syncDepth = 0
  /**
   * The message and pending call of a synchronous call, one pair per nesting depth, used
   * again by the next synchronous call at that depth once the callee has answered and let
   * go of them (a call that waits takes its pair out: `undefined` here until replaced).
   */
  private readonly syncMsgs: Array<Message | undefined> = []
  private readonly syncCalls: Array<PendingCall | undefined> = []
  /** Payloads lent by a wasm caller (views into its memory) to the synchronous calls running now, innermost last. */
  private readonly lentPayloads: Uint8Array[] = []

  constructor(
    readonly nodeId: string,
    readonly clock: Clock,
    private readonly events: EventEmitter<RuntimeEvents>,
    /** Where instance ids resolve to recipients. */
    readonly transport: Transport,
  ) {
    // The host application's own address: the nil function id on this node.
    this.hostId = { node: nodeId, function: '00000000-0000-0000-0000-000000000000' }
    this.hostIdBytes = instanceIdBytes(this.hostId)
  }

  /** Emit an event (every event has one argument: a rest parameter would cost an array per event, a `log` per guest log line). */
  emit<K extends keyof RuntimeEvents>(name: K, ev: RuntimeEvents[K][0]): void {
    if (name === 'dead-letter' && this.lentPayloads.length > 0) {
      // A callee crashed on a lent payload: listeners get bytes of their own, not a view
      // into the caller's memory.
      const dl = ev as RuntimeEvents['dead-letter'][0]
      if (this.lentPayloads.includes(dl.payload)) ev = { ...dl, payload: dl.payload.slice() }
    }
    // Listener exceptions must not reach the mailbox loop or a guest's import.
    try {
      ;(this.events.emit as (n: K, e: RuntimeEvents[K][0]) => boolean)(name, ev)
    } catch (e) {
      queueMicrotask(() => {
        throw e
      })
    }
  }

  /** The recipient of messages for `id`, or undefined when no instance is reachable there. */
  lookup(id: InstanceId): Recipient | undefined {
    return this.transport.resolve(id)
  }

  /** Sees every cast and call (the test kit's trace); `null` costs one check per message. */
  tracer: Tracer | null = null
  /** Inspection hooks (see {@link Observer}); `null` costs one check per point. */
  observer: Observer | null = null
  /** The last trace id handed out. */
  private traces = 0

  /** Enqueue a cast; refused messages become dead letters. */
  castTo(from: InstanceId, fromBytes: Uint8Array, target: Recipient, payload: Uint8Array, alias?: string, trace = 0, pooled = false): void {
    if (this.tracer) this.tracer.message('cast', from, target, payload, alias)
    const t = trace || ++this.traces
    if (this.observer) this.observer.sent?.(from, target, 'cast', t, payload.length, alias)
    target.enqueue({ kind: 0, src: from, srcBytes: fromBytes, payload, pending: null, trace: t, pooled })
  }

  /** Arrays for the copies of short payloads the host casts (lib/routing/ownership.ts). */
  readonly bytes = new BytePool()

  /**
   * A call from `caller` (null = the host application) to `target`. Answered synchronously
   * when the target is idle with an empty mailbox and answers without waiting (the fast
   * path); otherwise queued behind earlier messages, with a timeout.
   *
   * A wasm caller may lend its payload (see {@link LendingGuest}): a view into its
   * memory, which stays as it is only while the caller is blocked in this call. It is used
   * as it is where the bytes are copied before the caller can run again — by a wasm callee
   * that runs now, which copies them into its own memory first thing — and copied wherever
   * it could be kept: a queued message, a JS callee, the tracer, a callee that suspends, a
   * dead letter. Such a caller copies the reply into its memory at once, so a wasm callee
   * that runs now may answer in a buffer of its own that it reuses (LendingGuest.lendReply).
   */
  call(
    caller: Recipient | null,
    from: InstanceId,
    fromBytes: Uint8Array,
    target: Recipient,
    payload: Uint8Array,
    timeoutMs: number,
    alias?: string,
    trace = 0,
  ): CallResult | Promise<CallResult> {
    const t = trace || ++this.traces
    let lent = false
    if (caller !== null) {
      const g = caller.guest.lender
      // A guest whose calls come here may lend its payloads from its next call on.
      if (g !== undefined) {
        if (payload === g.lent) lent = true
        else g.lends = true
      }
    }
    if (this.observer) this.observer.sent?.(from, target, 'call', t, payload.length, alias)
    if (this.tracer === null) return this.callInner(caller, from, fromBytes, target, payload, timeoutMs, t, lent)
    // The trace keeps the payload and the answer: bytes of its own, and no lent reply.
    if (lent) payload = payload.slice()
    const done = this.tracer.message('call', from, target, payload, alias)
    const r = this.callInner(caller, from, fromBytes, target, payload, timeoutMs, t, false)
    if (!done) return r
    if (isThenable<CallResult>(r))
      return Promise.resolve(r).then((v) => {
        done(v)
        return v
      })
    done(r)
    return r
  }

  private callInner(
    caller: Recipient | null,
    from: InstanceId,
    fromBytes: Uint8Array,
    target: Recipient,
    payload: Uint8Array,
    timeoutMs: number,
    trace: number,
    lent: boolean,
  ): CallResult | Promise<CallResult> {
    if (caller && this.closesCycle(caller, target)) return this.cycleRefused(caller, target)
    const depth = this.syncDepth
    if (!target.canRunNow() || depth >= MAX_SYNC_DEPTH) {
      const pc = new PendingCall(this, caller, target, timeoutMs)
      target.enqueue({ kind: 1, src: from, srcBytes: fromBytes, payload: lent ? payload.slice() : payload, pending: pc, trace, pooled: false })
      return pc.wait()
    }
    // The fast path: the callee runs the call now, inside this call.
    // A lending callee (in-thread wasm) copies the payload into its memory first thing; any
    // other (a JS handler) may keep its message.
    const callee = target.guest.lender
    const wasm = callee !== undefined
    if (lent && !wasm) payload = payload.slice()
    let pc = this.syncCalls[depth]
    if (pc === undefined) pc = this.syncCalls[depth] = new PendingCall(this, caller, target, timeoutMs)
    else pc.reuse(caller, target, timeoutMs)
    let msg = this.syncMsgs[depth]
    if (msg === undefined) msg = this.syncMsgs[depth] = { kind: 1, src: from, srcBytes: fromBytes, payload, pending: pc, trace, pooled: false }
    else {
      msg.src = from
      msg.srcBytes = fromBytes
      msg.payload = payload
      msg.pending = pc
      msg.trace = trace
    }
    const lending = lent && wasm
    if (lending) {
      this.lentPayloads.push(payload)
      callee!.lendReply = true
    }
    if (caller) caller.waitingOn = target
    this.syncDepth = depth + 1
    let over = false
    try {
      target.runNow(msg)
      // Answered, and the callee's handler is over: nothing holds the pair any more.
      over = pc.settled && !target.busy
    } finally {
      this.syncDepth = depth
      if (lending) {
        this.lentPayloads.pop()
        callee!.lendReply = false
      }
      if (!over) {
        // Still running (suspended in a call of its own): the pair is the callee's until it
        // answers, and the message needs bytes of its own (a crash would make it a dead
        // letter) before the caller can run again.
        this.syncCalls[depth] = undefined
        this.syncMsgs[depth] = undefined
        if (lending && msg.payload === payload) msg.payload = payload.slice()
      }
    }
    if (!over) return pc.settled ? pc.result : pc.wait()
    const r = pc.result
    pc.result = NOREPLY_RESULT
    msg.payload = NO_BYTES
    return r
  }

  /** Would a call from `caller` to `target` close a cycle `caller -> target -> ... -> caller` of waiting instances? */
  private closesCycle(caller: Recipient, target: Recipient): boolean {
    let n = 1
    for (let t: Recipient | null = target; t; t = t.waitingOn) {
      n++
      if (t === caller) return true
      if (n > MAX_CHAIN) break
    }
    return false
  }

  /** Refuse a call that would close a cycle (reported as `call-cycle`). */
  private cycleRefused(caller: Recipient, target: Recipient): CallResult {
    const cycle: Recipient[] = [caller]
    for (let t: Recipient | null = target; t; t = t.waitingOn) {
      cycle.push(t)
      if (t === caller) break
    }
    const names = cycle.map((a) => a.name)
    const r = errResult(
      'call-cycle',
      cycle.length === 2
        ? `"${caller.name}" called itself; it would wait for its own answer forever. Cast to "self" instead, or restructure.`
        : `Call cycle ${names.join(' -> ')}: every instance in it waits for the next, so none could answer. Break the cycle (make one of the calls a cast).`,
      { cycle: names },
    )
    this.emit('call-cycle', { caller: caller.name, callerInstance: caller.id, target: target.name, targetInstance: target.id, cycle: names, error: r.error })
    return r
  }
}
