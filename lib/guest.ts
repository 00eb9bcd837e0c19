/**
 * The narrow interfaces between an actor and what it drives: {@link Guest} (a wasm instance
 * or a JS function) and {@link GuestHost} (the host functions the guest reaches), plus the
 * classification of a guest's failures.
 * @packageDocumentation
 */
import type { CallResult } from './call-result'
import { EdgelessError } from './errors'
import type { TrapKind } from './events'
import type { InstanceId } from './ids'

/**
 * What an actor drives: a wasm instance or a JS function. Each method may finish
 * synchronously or return a promise (a guest blocked on a call, an async JS handler).
 * A thrown error or rejected promise is a crash of the instance.
 * @internal
 */
export interface Guest {
  init(payload: Uint8Array | undefined, state: Uint8Array | undefined): void | Promise<void>
  cast(src: InstanceId, srcBytes: Uint8Array, msg: Uint8Array): void | Promise<void>
  call(src: InstanceId, srcBytes: Uint8Array, msg: Uint8Array): CallResult | Promise<CallResult>
  stop(): void | Promise<void>
  /** Release what the guest holds (a worker thread); called when it is replaced or its instance ends. */
  dispose?(): void
  /**
   * True when the guest copies a cast's payload and keeps no reference to the array once
   * `cast` has returned synchronously (an in-thread wasm instance): the array may then be
   * reused (lib/routing/ownership.ts).
   */
  readonly copiesPayload?: boolean
  /**
   * Present when the guest can lend its call payloads and take replies in a buffer it reuses
   * (an in-thread wasm instance): routing reads these flags instead of knowing the class.
   */
  readonly lender?: LendingGuest
}

/**
 * A guest that lends: its call payloads may be handed to routing as views into its memory
 * (valid while it is blocked in the call), and a callee that runs synchronously may answer
 * it in a reused buffer, because it copies replies into its memory at once. The rules of
 * when a lent view must be copied are routing's (lib/routing/router.ts, `Router.call`).
 * @internal
 */
export interface LendingGuest {
  /** Routing saw this guest's calls: lend payloads from the next call on. */
  lends: boolean
  /** The payload view lent to the call running now; null otherwise. */
  readonly lent: Uint8Array | null
  /** The reply of the call running now may be a reused buffer (set by routing around a synchronous call). */
  lendReply: boolean
}

/**
 * The host functions a guest reaches (the `env` imports, or a JS function's context).
 * Implemented by the actor; every method is safe to call with any input.
 * @internal
 */
export interface GuestHost {
  readonly name: string
  readonly id: InstanceId
  readonly idBytes: Uint8Array
  cast(alias: string, payload: Uint8Array): void
  castRaw(target: InstanceId, payload: Uint8Array): void
  call(alias: string, payload: Uint8Array): CallResult | Promise<CallResult>
  callRaw(target: InstanceId, payload: Uint8Array): CallResult | Promise<CallResult>
  delayedCast(delayMs: number, alias: string, payload: Uint8Array): void
  sync(state: Uint8Array): void
  log(level: number, target: string, text: string): void
  /** An alias that is not valid UTF-8: reported, and treated as an unknown alias. */
  invalidAlias(op: 'cast' | 'call' | 'delayed_cast', bytes: Uint8Array): void
  /** A call needed to wait but the guest cannot suspend. */
  cannotSuspend(): void
}

/** True for promises and other thenables. */
export function isThenable<T>(v: unknown): v is PromiseLike<T> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function'
}

/**
 * Turn whatever a guest invocation threw into a typed error and a trap kind.
 * V8 reports wasm traps as `WebAssembly.RuntimeError` and stack exhaustion as `RangeError`.
 */
export function classifyFailure(e: unknown, name: string, handler: string): { trap: TrapKind; error: EdgelessError } {
  if (e instanceof EdgelessError) {
    // The guest limits (lib/wasm/instance.ts) report their traps typed: details.trap.
    const limit = e.details['trap']
    if (e.code === 'trap' && (limit === 'out-of-fuel' || limit === 'out-of-memory' || limit === 'deadline')) return { trap: limit, error: e }
    return { trap: e.code === 'guest-fault' ? 'guest-fault' : 'other', error: e }
  }
  const msg = e instanceof Error ? e.message : String(e)
  let trap: TrapKind = 'exception'
  if (e instanceof WebAssembly.RuntimeError) {
    // V8's trap messages (Node 20 / Chromium): "unreachable", "memory access out of bounds",
    // "divide by zero", "divide result unrepresentable", "float unrepresentable in integer
    // range", "null function or function signature mismatch", "table index is out of bounds".
    if (/unreachable/i.test(msg)) trap = 'unreachable'
    else if (/divide by zero|remainder by zero/i.test(msg)) trap = 'divide-by-zero'
    else if (/divide result unrepresentable|integer overflow/i.test(msg)) trap = 'integer-overflow'
    else if (/float unrepresentable|invalid conversion/i.test(msg)) trap = 'invalid-conversion'
    else if (/function signature mismatch|null function|table index|indirect call/i.test(msg)) trap = 'indirect-call'
    else if (/out of bounds|memory access/i.test(msg)) trap = 'out-of-bounds'
    else if (/call stack/i.test(msg)) trap = 'stack-overflow'
    else trap = 'other'
  } else if (e instanceof RangeError && /call stack/i.test(msg)) {
    trap = 'stack-overflow'
  }
  const hint = trap === 'unreachable' ? ' (a Rust panic or an explicit unreachable)' : ''
  return {
    trap,
    error: new EdgelessError(
      'trap',
      `${name} crashed in handle_${handler}: ${msg}${hint}. The message is not retried; the instance's supervisor restarts it or gives up according to its restart type. Fix the function.`,
      { name, handler, trap },
      { cause: e },
    ),
  }
}
