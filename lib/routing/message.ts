/**
 * A message on its way to an instance: what routing hands to a recipient's mailbox.
 * @packageDocumentation
 */
import type { InstanceId } from '../ids'
import type { CallResult } from '../call-result'

/**
 * The answer side of a call, as the callee's mailbox sees it (a `PendingCall`): settled
 * once, by the answer, a crash, a refusal or the timeout.
 * @internal
 */
export interface CallAnswer {
  settle(r: CallResult): void
}

/**
 * A message in a mailbox: kind 0 = cast, 1 = call (with the call it answers).
 *
 * @example
 * ```ts
 * recipient.enqueue({ kind: 0, src, srcBytes, payload, pending: null, trace: 0 })
 * ```
 * @internal
 */
export interface Message {
  kind: 0 | 1
  src: InstanceId
  srcBytes: Uint8Array
  payload: Uint8Array
  pending: CallAnswer | null
  /** Trace id: inherited by the messages its handler sends. */
  trace: number
  /** The payload is an array of the runtime's BytePool, given back once handled (lib/routing/ownership.ts). */
  pooled?: boolean
}
