/**
 * The internals a runtime's parts share: routing (the {@link Router} it extends), the
 * registry of its instances (the in-process transport's map), the scheduler and the state
 * stores. The public `Runtime` is a facade over it; actors see it as their
 * {@link ActorContext}; the test kit and the inspector see it as {@link RuntimeInternals}.
 * @packageDocumentation
 */
import type { EventEmitter } from 'eventemitter3'
import type { Actor } from '../actor/actor'
import type { ActorContext } from '../actor/context'
import { Scheduler } from '../actor/scheduler'
import type { Clock } from '../clock'
import type { RuntimeEvents } from '../events'
import type { InstanceId } from '../ids'
import { InProcessTransport } from '../routing/in-process'
import { Router } from '../routing/router'
import type { Recipient, Transport } from '../routing/transport'
import { StateStores } from '../state/stores'
import type { StateStore } from '../state/store'
import type { StateWriteOptions } from '../state/writer'

/**
 * A runtime's shared internals.
 *
 * @example
 * ```ts
 * const sys = new System(nodeId, realClock, { nodeLocal: memoryStore(), global: memoryStore() }, emitter, false)
 * sys.actors.set(actor.id.function, actor)
 * ```
 * @internal
 */
export class System extends Router implements ActorContext {
  readonly scheduler = new Scheduler()
  readonly state: StateStores
  /** This runtime's instances, as the in-process transport delivers to them. */
  readonly local: InProcessTransport<Actor>

  constructor(
    nodeId: string,
    clock: Clock,
    stores: { nodeLocal: StateStore; global: StateStore },
    events: EventEmitter<RuntimeEvents>,
    optimistic: boolean,
    writeOptions: StateWriteOptions = {},
    remote: Transport | null = null,
  ) {
    const local = new InProcessTransport<Actor>(remote)
    super(nodeId, clock, events, local)
    this.local = local
    this.state = new StateStores(stores, optimistic, clock, (name, ev) => this.emit(name, ev), writeOptions)
  }

  /** The live instances by function id. */
  get actors(): Map<string, Actor> {
    return this.local.local
  }

  /** The instance of this runtime at `id`, or undefined. */
  actorAt(id: InstanceId): Actor | undefined {
    return this.local.localAt(id)
  }

  unregister(r: Recipient): void {
    if (this.actors.get(r.id.function) === r) this.actors.delete(r.id.function)
  }
}

/**
 * What the test kit (`edgeless/testing`), the inspection stream and the inspector may reach
 * inside a runtime: a narrow view, not a stable API.
 *
 * @example
 * ```ts
 * const sys = runtime.internals()
 * sys.lookup(id)?.name
 * ```
 * @internal
 */
export interface RuntimeInternals {
  readonly hostId: InstanceId
  readonly hostIdBytes: Uint8Array
  /** The live instances by function id. */
  readonly actors: ReadonlyMap<string, Pick<Actor, 'name' | 'id' | 'status' | 'mailbox'>>
  readonly scheduler: Pick<Scheduler, 'interleave' | 'processed' | 'idle'>
  /** Sees every cast and call (the test kit's trace). */
  tracer: System['tracer']
  /** The installed observer (see `Runtime.observe`); null when none. */
  readonly observer: System['observer']
  readonly bytes: System['bytes']
  lookup: System['lookup']
  /** The instance at `id` as inspection sees it. */
  actorAt(id: InstanceId): Pick<Actor, 'name' | 'id' | 'status' | 'mailbox'> | undefined
  castTo: System['castTo']
  call: System['call']
}
