/**
 * The Node entry of edgeless: everything of the core, plus a {@link Runtime} whose
 * default loader reads module paths and `file:` URLs from disk.
 * @packageDocumentation
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Runtime as CoreRuntime } from '../runtime/runtime'
import type { RuntimeOptions } from '../options'
import { fetchLoader, type SourceLoader } from '../wasm/loader'
import { setAsyncifyRunner, setTransformCache, type TransformCache } from '../wasm/asyncify'
import { asyncifyInWorker } from './asyncify-client'

export { setTransformCache }
export type { TransformCache }
import type { WorkflowSpec } from '../workflow/spec'
import type { WorkflowHandle, WorkflowOptions } from '../workflow/workflow'
import type { WorkflowProblem } from '../workflow/resource'
import { fileLogResource } from './resources/file-log'
import { httpIngressResource } from './resources/http-ingress'
import { redisResource } from './resources/redis'
import { isolateInWorker } from './worker-guest'

export * from '../index'
export { fileLogResource, httpIngressResource, redisResource }
export { ingressAddress } from './resources/http-ingress'

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
/**
 * A file cache of asyncified modules (see {@link setTransformCache}): one file per input
 * hash under `dir`, written atomically. Default folder: `$EDGELESS_CACHE_DIR`, else
 * `<tmpdir>/edgeless-cache`. Set `EDGELESS_CACHE_DIR=off` to disable it.
 *
 * @example
 * ```ts
 * setTransformCache(fileTransformCache('/var/cache/edgeless'))
 * ```
 */
export function fileTransformCache(dir: string): TransformCache {
  let n = 0
  return {
    async get(key) {
      try { return new Uint8Array(await readFile(join(dir, `${key}.wasm`))) } catch { return undefined }
    },
    async set(key, bytes) {
      await mkdir(dir, { recursive: true })
      const tmp = join(dir, `.${key}.${process.pid}.${++n}.tmp`)
      await writeFile(tmp, bytes)
      await rename(tmp, join(dir, `${key}.wasm`))
    },
  }
}

/**
 * The folder of the default transform cache: `$EDGELESS_CACHE_DIR`, else
 * `<tmpdir>/edgeless-cache`; undefined when `EDGELESS_CACHE_DIR=off`.
 * @internal
 */
export function defaultCacheDir(): string | undefined {
  const env = process.env['EDGELESS_CACHE_DIR']
  if (env === 'off') return undefined
  return env || join(tmpdir(), 'edgeless-cache')
}

let defaultsInstalled = false
/**
 * Node's defaults for preparing guests, installed by the first Runtime: the file cache, and
 * asyncify in a worker thread (it loads binaryen whatever sandbox this thread runs in, e.g.
 * jest's CommonJS VM, and keeps the seconds of the pass off this thread).
 */
function installNodeDefaults(): void {
  if (defaultsInstalled) return
  defaultsInstalled = true
  setAsyncifyRunner(asyncifyInWorker)
  const dir = defaultCacheDir()
  if (dir !== undefined) setTransformCache(fileTransformCache(dir))
}

export class Runtime extends CoreRuntime {
  constructor(options: RuntimeOptions = {}) {
    installNodeDefaults()
    super({ loadSource: fileLoader, resolveRef: resolveCodePath, isolate: isolateInWorker, ...options, resources: [fileLogResource, httpIngressResource, redisResource, ...(options.resources ?? [])] })
  }

  // A workflow path is made absolute first, so its default name (folder/file) and the
  // resolution of its `code` paths do not depend on the working directory.
  override startWorkflow(workflow: WorkflowSpec | string | URL, options?: WorkflowOptions): Promise<WorkflowHandle> {
    return super.startWorkflow(absolute(workflow) as WorkflowSpec | string | URL, options)
  }

  override validateWorkflow(workflow: WorkflowSpec | string | URL, options?: WorkflowOptions): Promise<WorkflowProblem[]> {
    return super.validateWorkflow(absolute(workflow) as WorkflowSpec | string | URL, options)
  }
}

const isUrl = (s: string) => /^[a-z][a-z0-9+.-]+:/i.test(s) && !/^[a-z]:[\\/]/i.test(s)

function absolute<T>(w: T): T | string {
  if (typeof w === 'string' && !isUrl(w)) return resolve(w)
  if (typeof w === 'string' && /^file:/i.test(w)) return fileURLToPath(w)
  if (w instanceof URL && w.protocol === 'file:') return fileURLToPath(w)
  return w
}

/** `code` relative to the workflow file's folder (or a URL relative to a URL). */
function resolveCodePath(code: string, base: string | undefined): string {
  if (isUrl(code)) return code
  if (base !== undefined && isUrl(base)) return new URL(code, base).href
  if (isAbsolute(code) || base === undefined) return resolve(code)
  return resolve(dirname(base), code)
}
export { buildAssemblyScript } from './build'
export type { AssemblyScriptBuildOptions, AssemblyScriptBuildResult } from './build'
export * from './inspector'
