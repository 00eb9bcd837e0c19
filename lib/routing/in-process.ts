/**
 * The in-process {@link Transport}: the instances of this runtime, by function id.
 * @packageDocumentation
 */
import type { InstanceId } from '../ids'
import type { Recipient, Transport } from './transport'

/**
 * Delivery inside one process: a recipient is the instance registered at the id's function
 * id on this node. The registry of the runtime's instances is this transport's map.
 *
 * @example
 * ```ts
 * const t = new InProcessTransport<Actor>()
 * t.local.set(actor.id.function, actor)
 * t.resolve(actor.id) === actor // true
 * ```
 * @internal
 */
export class InProcessTransport<R extends Recipient> implements Transport {
  readonly kind = 'in-process'
  /** The live instances by function id. */
  readonly local = new Map<string, R>()

  constructor(
    /** Where ids of instances not hosted here resolve (another transport, e.g. a cluster's); none by default. */
    private readonly remote: Transport | null = null,
  ) {}

  resolve(id: InstanceId): Recipient | undefined {
    const a = this.localAt(id)
    if (a !== undefined) return a
    return this.remote === null ? undefined : this.remote.resolve(id)
  }

  /** The instance hosted here at `id`, never a remote one. */
  localAt(id: InstanceId): R | undefined {
    const a = this.local.get(id.function)
    return a && a.id.node === id.node ? a : undefined
  }
}
