/**
 * Hibernation and activation of one instance (passivation): `handle_stop` runs and the
 * guest is released while the instance stays addressable; its next message brings it
 * back through `handle_init(init payload, last synced state)`, as a restart would. The
 * policy of *when* (idle time, a cap on live instances) is the {@link Passivator}'s.
 * @packageDocumentation
 */
import type { Handler } from '../events'
import type { Guest, GuestHost } from '../guest'
import type { InstanceId } from '../ids'
import { wallNow, type Observer } from '../observer'
import type { StatePolicy } from '../options'
import type { Message } from '../routing/message'
import type { StatefulInstance } from '../state/stores'
import type { ActorStatus, LifecycleEvent } from './lifecycle'
import { Mailbox } from './mailbox'
import type { Passivating, Passivator } from './passivation'

/**
 * The mailbox of every instance that never received a message (or hibernated with an
 * empty one). Never pushed to: `enqueue` gives the instance a mailbox of its own first.
 * @internal
 */
export const IDLE_MAILBOX = new Mailbox<Message>()

/** The guest of a hibernated (or stopped) instance: nothing to run, nothing to release. @internal */
export const DORMANT: Guest = {
  init() {},
  cast() {},
  call: () => ({ kind: 'noreply' }),
  stop() {},
}

/** What hibernation needs of an actor (the `Actor` class). @internal */
export interface Hibernating extends Passivating, GuestHost, StatefulInstance {
  readonly name: string
  readonly id: InstanceId
  readonly status: ActorStatus
  busy: boolean
  guest: Guest
  readonly mailbox: { readonly length: number }
  readonly statePolicy: StatePolicy
  readonly passivator: Passivator | null
  readonly initPayload: Uint8Array | undefined
  lastState: Uint8Array | undefined
  stateAcked: boolean
  stateFromStore: boolean
  readonly sys: { readonly observer: Observer | null }
  readonly makeGuest: (host: GuestHost) => Guest | Promise<Guest>
  readonly readState: (a: StatefulInstance & { readonly name: string }) => Promise<Uint8Array | undefined>
  to(event: LifecycleEvent): boolean
  notifyIdle(): void
  runStopHandler(): void | Promise<void>
  crashed(handler: Handler, e: unknown): void
  init(payload: Uint8Array | undefined, state: Uint8Array | undefined, first?: boolean): Promise<boolean>
  shrink(): void
}

/**
 * Hibernate if idle (running, no handler, empty mailbox): `handle_stop` runs, the guest is
 * released, and the instance stays addressable. Its in-memory copy of the state is dropped
 * once the store has acknowledged it (under `transient`, memory is the only copy and it is
 * kept). Synchronous for a synchronous guest. False when it is not idle or not passivating.
 * @internal
 */
export function hibernate(a: Hibernating): boolean {
  if (a.passivator === null || a.status !== 'running' || a.busy || a.mailbox.length > 0) return false
  a.to({ type: 'HIBERNATE' })
  a.passivator.gone(a)
  a.passivator.hibernations++
  a.busy = true
  // A crash in handle_stop is reported; the instance is released all the same (its next
  // activation starts from the last synced state, as a restart would).
  const ended = a.runStopHandler()
  if (ended) void ended.then(() => hibernated(a))
  else hibernated(a)
  return true
}

function hibernated(a: Hibernating): void {
  a.busy = false
  if (a.status !== 'hibernating') {
    // Stopped meanwhile: the stop, waiting for this handler, takes it from here.
    a.notifyIdle()
    return
  }
  a.guest.dispose?.()
  a.guest = DORMANT
  if (a.statePolicy !== 'transient' && a.stateAcked) {
    a.lastState = undefined
    a.stateFromStore = true
  }
  // Back to the footprint of an instance that was never touched.
  a.shrink()
  a.to({ type: 'HIBERNATED' })
  a.notifyIdle()
  // Messages that arrived while handle_stop ran wake it at once.
  if (a.mailbox.length > 0) activate(a)
}

/** A lazy spawn: addressable and hibernated before its first instantiation. @internal */
export function park(a: Hibernating): void {
  a.stateFromStore = a.statePolicy !== 'transient'
  a.guest = DORMANT
  if (!a.to({ type: 'HIBERNATED' })) return
  if (a.mailbox.length > 0) activate(a)
}

/** A message reached a hibernated instance: instantiate, init with the last state, then process the mailbox. @internal */
export function activate(a: Hibernating): void {
  if (!a.to({ type: 'ACTIVATE' })) return
  if (a.passivator) a.passivator.activations++
  void wake(a)
}

async function wake(a: Hibernating): Promise<void> {
  const obs = a.sys.observer
  const t0 = obs ? wallNow() : 0
  let guest: Guest | undefined
  try {
    guest = await a.makeGuest(a)
    if (a.status !== 'activating') {
      guest.dispose?.()
      return
    }
    obs?.instantiated?.(a, wallNow() - t0)
    await loadState(a)
  } catch (e) {
    guest?.dispose?.()
    // An instantiation or state-read failure is a crash of init: the supervisor restarts
    // it (with backoff) and the queued messages wait.
    if (a.status === 'activating') a.crashed('init', e)
    return
  }
  // The guest becomes the instance's only now: a stop that came while the state was read
  // must not run handle_stop on a guest whose handle_init never ran.
  if (a.status !== 'activating') {
    guest.dispose?.()
    return
  }
  a.guest = guest
  if (await a.init(a.initPayload, a.lastState, false)) a.passivator?.live(a)
}

/** Read the state from the store when the instance does not hold it in memory. @internal */
export async function loadState(a: Hibernating): Promise<void> {
  if (!a.stateFromStore) return
  const state = await a.readState(a)
  a.lastState = state
  a.stateFromStore = false
  a.stateAcked = true
}
