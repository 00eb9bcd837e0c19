/**
 * The one way a guest handler is run: observers told it started and finished (with its
 * wall time), a synchronous or asynchronous finish, and a failure kept for the caller to
 * classify. The actor's message loop, init, restart, hibernation and stop all go through it.
 * @packageDocumentation
 */
import type { Guest } from '../guest'
import { isThenable } from '../guest'
import type { ObservedActor, Observer, InvocationKind } from '../observer'
import { wallNow } from '../observer'
import type { Message } from '../routing/message'

/** What {@link invoke} needs of the instance whose handler it runs. @internal */
export interface Invoked extends ObservedActor {
  readonly guest: Guest
  /** The trace of the invocation (the message's, or 0 for init and stop). */
  readonly trace: number
  readonly sys: { readonly observer: Observer | null }
}

/**
 * Returned by {@link invoke} when the handler threw synchronously; {@link thrown} gives the
 * error. A marker instead of an exception or a result object: the message loop runs this
 * for every message, and an allocation per message costs more than the whole dispatch.
 * @internal
 */
export const THREW: unique symbol = Symbol('threw')

let lastThrown: unknown

/** The error of the invocation that just returned {@link THREW} (read once, at once). @internal */
export function thrown(): unknown {
  const e = lastThrown
  lastThrown = undefined
  return e
}

/**
 * Run one handler of `a`'s guest: `cast`/`call` with `msg`, `init` with `payload` and
 * `state`, or `stop`. Returns the handler's value; a promise of it when the handler is
 * asynchronous (rejected with the raw failure); or {@link THREW} when it threw synchronously.
 * Observers see `started` and `finished` (ok or not) with the wall time in between; without
 * observers this costs one null check.
 *
 * @example
 * ```ts
 * const r = invoke(actor, 'cast', msg)
 * if (r === THREW) actor.crashed('cast', thrown(), msg)
 * ```
 * @internal
 */
export function invoke(a: Invoked, kind: InvocationKind, msg: Message | null, payload?: Uint8Array, state?: Uint8Array): unknown {
  const obs = a.sys.observer
  const trace = a.trace
  const t0 = obs ? wallNow() : 0
  if (obs) obs.started?.(a, kind, trace)
  let r: unknown
  try {
    const g = a.guest
    // One branch per handler, so each guest call site stays monomorphic.
    if (kind === 'cast') r = g.cast(msg!.src, msg!.srcBytes, msg!.payload)
    else if (kind === 'call') r = g.call(msg!.src, msg!.srcBytes, msg!.payload)
    else if (kind === 'init') r = g.init(payload, state)
    else r = g.stop()
  } catch (e) {
    if (obs) obs.finished?.(a, kind, trace, wallNow() - t0, false)
    lastThrown = e
    return THREW
  }
  if (isThenable(r)) {
    if (!obs) return r
    return Promise.resolve(r).then(
      (v) => {
        obs.finished?.(a, kind, trace, wallNow() - t0, true)
        return v
      },
      (e: unknown) => {
        obs.finished?.(a, kind, trace, wallNow() - t0, false)
        throw e
      },
    )
  }
  if (obs) obs.finished?.(a, kind, trace, wallNow() - t0, true)
  return r
}
