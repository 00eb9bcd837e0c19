/**
 * The contract between the runtime and a state store (the adapters implement it).
 * @packageDocumentation
 */
/**
 * Where `sync` puts a function's serialized state, keyed by state id. Small on purpose:
 * an adapter is a plain object with three required methods. Methods may be synchronous
 * or return promises. A failed write must reject (or throw); the runtime reports it as a
 * `state-sync-failed` event, keeps the newest value and retries it (a value it finally
 * cannot write is a `state-lost` event): it never drops one silently.
 *
 * @example
 * ```ts
 * const store: StateStore = {
 *   map: new Map<string, Uint8Array>(),
 *   get(id) { return this.map.get(id) },
 *   set(id, data) { this.map.set(id, data) },
 *   delete(id) { this.map.delete(id) },
 * }
 * new Runtime({ stateStore: store })
 * ```
 */
export interface StateStore {
  /** The stored state, or `undefined` when there is none. */
  get(stateId: string): Promise<Uint8Array | undefined> | Uint8Array | undefined
  /** Store `data` under `stateId`, replacing what was there. The runtime passes its own copy. */
  set(stateId: string, data: Uint8Array): Promise<void> | void
  /** Remove the state; deleting a missing id is not an error. */
  delete(stateId: string): Promise<void> | void
  /** Every state id held (optional). */
  list?(): Promise<string[]> | string[]
  /** Release connections or handles (optional). The runtime never calls it: whoever created the store owns it. */
  dispose?(): Promise<void> | void
  /**
   * Optimistic concurrency (optional): write only if the stored version is `expected`
   * (0 = absent). Resolves to the new version, or `{ conflict: current }` without writing.
   * Versions start at 1 for the first write and grow by one per successful write (set or setIfVersion).
   */
  setIfVersion?(stateId: string, data: Uint8Array, expected: number): Promise<number | { conflict: number }> | number | { conflict: number }
  /** The stored value with its version (optional, pairs with setIfVersion). */
  getVersioned?(stateId: string): Promise<{ data: Uint8Array; version: number } | undefined> | { data: Uint8Array; version: number } | undefined
}

/**
 * A {@link StateStore} whose methods all return promises and whose optional parts (`list`,
 * `dispose`, versions) are all there: what the Redis, SQLite and IndexedDB adapters return.
 *
 * @example
 * ```ts
 * const store: AsyncVersionedStore = redisStore({ url: 'redis://127.0.0.1:6379' })
 * const v = await store.setIfVersion('counter', new Uint8Array([1]), 0) // 1, or { conflict: n }
 * ```
 */
export interface AsyncVersionedStore extends StateStore {
  get(stateId: string): Promise<Uint8Array | undefined>
  set(stateId: string, data: Uint8Array): Promise<void>
  delete(stateId: string): Promise<void>
  list(): Promise<string[]>
  dispose(): Promise<void>
  setIfVersion(stateId: string, data: Uint8Array, expected: number): Promise<number | { conflict: number }>
  getVersioned(stateId: string): Promise<{ data: Uint8Array; version: number } | undefined>
}
