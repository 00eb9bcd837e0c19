import type { StateStore } from './types'

export type { StateStore } from './types'

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
  const map = new Map<string, Uint8Array>()
  if (initial) for (const [k, v] of initial) map.set(k, v.slice())
  return {
    get: (id) => map.get(id)?.slice(),
    set: (id, data) => { map.set(id, data.slice()) },
    delete: (id) => { map.delete(id) },
    list: () => [...map.keys()],
    dispose: () => { map.clear() },
    get size() { return map.size },
  }
}
