/**
 * The handle on a spawned instance.
 * @packageDocumentation
 */
import type { Actor, ActorStatus } from '../actor/actor'
import type { CallResult } from '../call-result'
import type { InstanceId } from '../ids'
import type { CallOptions, InstanceInfo, StopOptions } from '../options'
import type { Payload } from '../payload'

/** An instance's address: its id, or anything that carries one (an {@link ActorRef}). */
export type Target = InstanceId | { readonly id: InstanceId }

/** The id of a target. @internal */
export const idOf = (t: Target): InstanceId => ('id' in t && typeof t.id === 'object' ? t.id : (t as InstanceId))

/** What a ref forwards to (the runtime that made it). @internal */
export interface RefOwner {
  cast(target: Target, payload: Payload): void
  call(target: Target, payload: Payload, options?: CallOptions): Promise<CallResult>
  stop(target: Target, options?: StopOptions): Promise<void>
  setOutput(instance: Target, alias: string, target: Target | null): void
  inspect(target: Target): InstanceInfo | undefined
}

/**
 * A handle on a spawned instance: its address plus shortcuts to the runtime's methods.
 *
 * @example
 * ```ts
 * const pong = await rt.spawn({ name: 'pong', module: bytes })
 * const r = await pong.call('hi')
 * await pong.stop()
 * ```
 */
export class ActorRef {
  /** @internal */
  constructor(
    private readonly rt: RefOwner,
    readonly id: InstanceId,
    readonly name: string,
    actor?: Actor,
  ) {
    this.actor = actor
  }
  /**
   * @internal The actor this ref was made for, while it lives: `runtime.cast(ref)` and
   * friends skip the id lookup (~8 ns of a cast). Checked against its status and runtime;
   * a permanent instance re-spawned at the same address is found by id and cached again.
   * Dropped when found stopped; until then a ref held to a stopped instance keeps its actor
   * object (its guest and memory are released at the stop).
   */
  actor: Actor | undefined
  /** @internal */
  ownedBy(rt: RefOwner): boolean {
    return this.rt === rt
  }
  /** Fire and forget. */
  cast(payload: Payload): void {
    this.rt.cast(this, payload)
  }
  /** Call and wait for the answer. */
  call(payload: Payload, options?: CallOptions): Promise<CallResult> {
    return this.rt.call(this, payload, options)
  }
  /** Stop gracefully (see `Runtime.stop`). */
  stop(options?: StopOptions): Promise<void> {
    return this.rt.stop(this, options)
  }
  /** Point `alias` at another instance, or remove it with `null`. */
  setOutput(alias: string, target: Target | null): void {
    this.rt.setOutput(this, alias, target)
  }
  /** Current status; `stopped` once it is gone. */
  get status(): ActorStatus {
    return this.rt.inspect(this)?.status ?? 'stopped'
  }
}
