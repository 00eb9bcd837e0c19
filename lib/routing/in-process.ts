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

  resolve(id: InstanceId): R | undefined {
    const a = this.local.get(id.function)
    return a && a.id.node === id.node ? a : undefined
  }
}
