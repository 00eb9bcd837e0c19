/**
 * What an actor needs of its runtime: routing (the {@link Router} it sends through), the
 * scheduler that gives it turns, the state stores, and the registry it leaves when stopped.
 * @packageDocumentation
 */
import type { Router } from '../routing/router'
import type { Recipient } from '../routing/transport'
import type { StateStores } from '../state/stores'
import type { Scheduler } from './scheduler'

/**
 * The runtime as its actors see it (implemented by the runtime's `System`).
 *
 * @example
 * ```ts
 * const actor = new Actor(system, init) // system: ActorContext
 * ```
 * @internal
 */
export interface ActorContext extends Router {
  readonly scheduler: Scheduler
  readonly state: StateStores
  /** Forget a stopped instance, if it is still the one registered at its id. */
  unregister(r: Recipient): void
}
