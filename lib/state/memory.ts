import type { StateStore } from './store'

export type { StateStore } from './store'

/**
 * The embedded default store: states live in a `Map` for the life of the process.
 * Values are copied in and out, so a caller mutating a buffer cannot change stored state.
 *
 * @example
 * ```ts
 * import { memoryStore } from 'edgeless/adapters/memory'
 * const store = memoryStore()
 * const rt = new Runtime({ stateStore: store })
 * ```
 */
export function memoryStore(initial?: Iterable<[string, Uint8Array]>): StateStore & { readonly size: number } {
  // Each value carries a version (1 on first write, +1 per write) for optimistic concurrency.
  const map = new Map<string, { data: Uint8Array; version: number }>()
  const put = (id: string, data: Uint8Array) => {
    const version = (map.get(id)?.version ?? 0) + 1
    map.set(id, { data: data.slice(), version })
    return version
  }
  if (initial) for (const [k, v] of initial) put(k, v)
  return {
    get: (id) => map.get(id)?.data.slice(),
    set: (id, data) => {
      put(id, data)
    },
    delete: (id) => {
      map.delete(id)
    },
    list: () => [...map.keys()],
    dispose: () => {
      map.clear()
    },
    getVersioned: (id) => {
      const e = map.get(id)
      return e && { data: e.data.slice(), version: e.version }
    },
    setIfVersion: (id, data, expected) => {
      const current = map.get(id)?.version ?? 0
      return current === expected ? put(id, data) : { conflict: current }
    },
    get size() {
      return map.size
    },
  }
}
