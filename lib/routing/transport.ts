/**
 * The seam between routing and delivery: routing (casts, calls, cycle detection, timeouts,
 * byte ownership) works on {@link Recipient}s that a {@link Transport} resolves from
 * instance ids. Today's transport is in-process ({@link InProcessTransport}); a cluster
 * transport resolves ids of instances hosted elsewhere to recipients that forward over the
 * network, with the same contract, without touching actor or supervision code.
 * @packageDocumentation
 */
import type { LendingGuest } from '../guest'
import type { InstanceId } from '../ids'
import type { Message } from './message'

/**
 * What routing needs of an instance a message is for (a local actor, or a stand-in for one
 * hosted elsewhere). Also what it needs of a caller: its name and id for reports, and its
 * waits-for edge for cycle detection.
 *
 * @example
 * ```ts
 * const r = transport.resolve(id)
 * if (r) r.enqueue({ kind: 0, src, srcBytes, payload, pending: null, trace: 0 })
 * ```
 * @internal
 */
export interface Recipient {
  readonly name: string
  readonly id: InstanceId
  /** Accept a message, or refuse it (a dead letter; a call is answered Err at once). */
  enqueue(msg: Message): void
  /** True when a call can be processed right now, inside the caller's call, without overtaking anything. */
  canRunNow(): boolean
  /** Process `msg` now (the synchronous call path); the caller checked {@link canRunNow}. */
  runNow(msg: Message): void
  /** A handler runs (or is suspended in a call). */
  readonly busy: boolean
  /** The recipient this one is blocked on in a call: the waits-for edge cycle detection walks. */
  waitingOn: Recipient | null
  /** What its guest does with payload bytes (see {@link LendingGuest}). */
  readonly guest: { readonly copiesPayload?: boolean; readonly lender?: LendingGuest }
}

/**
 * How messages reach instances: resolves an instance id to the {@link Recipient} that takes
 * its messages, or `undefined` when no instance is reachable at that id.
 *
 * @example
 * ```ts
 * const transport: Transport = new InProcessTransport(nodeId)
 * transport.resolve({ node: nodeId, function: fid })?.enqueue(msg)
 * ```
 * @internal
 */
export interface Transport {
  /** A short name for reports (`in-process`, `nats`). */
  readonly kind: string
  resolve(id: InstanceId): Recipient | undefined
}
