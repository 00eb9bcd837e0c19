/**
 * The Node entry of edgeless: everything of the core, plus a {@link Runtime} whose
 * default loader reads module paths and `file:` URLs from disk.
 * @packageDocumentation
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { Runtime as CoreRuntime, type RuntimeOptions } from '../runtime'
import { fetchLoader, type SourceLoader } from '../wasm/loader'

export * from '../index'

/**
 * Loads a module source in Node: a file path (relative to the working directory), a
 * `file:` URL, or an `http(s):`/`data:` URL (fetched).
 *
 * @example
 * ```ts
 * const bytes = await fileLoader('./pong.wasm')
 * ```
 */
export const fileLoader: SourceLoader = async (ref) => {
  const s = typeof ref === 'string' ? ref : ref.href
  if (/^file:/i.test(s)) return new Uint8Array(await readFile(fileURLToPath(s)))
  if (/^[a-z][a-z0-9+.-]+:/i.test(s) && !/^[a-z]:[\\/]/i.test(s)) return fetchLoader(ref)
  return new Uint8Array(await readFile(s))
}

/**
 * The runtime with Node defaults: module sources may be file paths.
 *
 * @example
 * ```ts
 * import { Runtime } from 'edgeless'
 * const rt = new Runtime()
 * const pong = await rt.spawn({ name: 'pong', module: './pong.wasm' })
 * ```
 */
export class Runtime extends CoreRuntime {
  constructor(options: RuntimeOptions = {}) {
    super({ loadSource: fileLoader, ...options })
  }
}
