/**
 * `edgeless/adapters/memory`: the embedded default {@link StateStore}, kept in a `Map` for
 * the life of the process. It is the core's own store (lib/state/memory.ts); this entry
 * gives it the same import path as the other adapters.
 *
 * @example
 * ```ts
 * import { memoryStore } from 'edgeless/adapters/memory'
 * const rt = new Runtime({ stateStore: memoryStore() })
 * ```
 * @packageDocumentation
 */
export { memoryStore } from '../lib/state/memory'
export type { StateStore } from '../lib/state/store'
