/**
 * A runtime's state: the store of each policy, the ordered writer in front of them, and the
 * read of an instance's state at spawn, restart and activation.
 * @packageDocumentation
 */
import type { Clock } from '../clock'
import { EdgelessError } from '../errors'
import type { RuntimeEvents } from '../events'
import type { StatePolicy } from '../options'
import type { StateStore } from './store'
import { StateWriter, type StateOwner, type StateWriteOptions } from './writer'

/** What the state layer knows of an instance. @internal */
export interface StatefulInstance extends StateOwner {
  readonly stateId: string
  readonly statePolicy: StatePolicy
}

/**
 * The stores of the `node-local` and `global` policies (`transient` has none) behind one
 * {@link StateWriter}, so writes of every instance are ordered, coalesced and retried alike.
 *
 * @example
 * ```ts
 * const state = new StateStores({ nodeLocal: memoryStore(), global: redis }, false, realClock, emit)
 * state.persist(instance, bytes)
 * await state.flush(instance.stateId)
 * ```
 * @internal
 */
export class StateStores {
  readonly writer: StateWriter
  readonly nodeLocal: StateStore
  readonly global: StateStore

  constructor(
    stores: { nodeLocal: StateStore; global: StateStore },
    /** Optimistic concurrency: reads remember versions, writes compare them (see RuntimeOptions.optimisticConcurrency). */
    readonly optimistic: boolean,
    clock: Clock,
    emit: <K extends keyof RuntimeEvents>(name: K, ev: RuntimeEvents[K][0]) => void,
    writeOptions: StateWriteOptions = {},
  ) {
    this.nodeLocal = stores.nodeLocal
    this.global = stores.global
    if (optimistic) {
      for (const [policy, st] of Object.entries(stores)) {
        if (typeof st.setIfVersion !== 'function' || typeof st.getVersioned !== 'function')
          throw new EdgelessError(
            'invalid-argument',
            `optimisticConcurrency needs stores with versions (setIfVersion and getVersioned); the ${policy === 'nodeLocal' ? 'node-local' : 'global'} store has none. Use the memory, redis or sqlite adapter, or turn it off.`,
          )
      }
    }
    this.writer = new StateWriter(clock, (name, ...args) => emit(name, args[0]), writeOptions)
  }

  /** The store of a state policy. */
  storeFor(policy: Exclude<StatePolicy, 'transient'>): StateStore {
    return policy === 'global' ? this.global : this.nodeLocal
  }

  /** Persist `data` for `owner` under its policy's store (nothing for `transient`). */
  persist(owner: StatefulInstance, data: Uint8Array): void {
    if (owner.statePolicy === 'transient') return
    this.writer.write(owner, this.storeFor(owner.statePolicy), owner.stateId, data)
  }

  /** Resolves when every write for `stateId` issued so far has finished; false if it timed out (reported as `state-lost`). */
  flush(stateId: string, timeoutMs?: number): Promise<boolean> {
    return this.writer.flush(stateId, timeoutMs)
  }

  /**
   * Read an instance's state from its policy's store, after the writes already issued for
   * it; with optimistic concurrency, remember the version read. Empty means none.
   */
  async read(owner: StatefulInstance & { readonly name: string }): Promise<Uint8Array | undefined> {
    if (owner.statePolicy === 'transient') return undefined
    await this.flush(owner.stateId)
    let state: Uint8Array | undefined
    try {
      const store = this.storeFor(owner.statePolicy)
      if (this.optimistic) {
        const v = await store.getVersioned!(owner.stateId)
        state = v?.data
        owner.stateVersion = v?.version ?? 0
      } else {
        state = (await store.get(owner.stateId)) ?? undefined
      }
    } catch (e) {
      throw new EdgelessError(
        'state-store-failed',
        `Reading the state of "${owner.name}" (state id ${owner.stateId}) failed: ${(e as Error).message}. Check the state store.`,
        { stateId: owner.stateId },
        { cause: e },
      )
    }
    return state?.length ? state : undefined
  }
}
