/**
 * The Node entry of edgeless: everything of the core, plus a {@link Runtime} whose
 * default loader reads module paths and `file:` URLs from disk.
 * @packageDocumentation
 */
import { lookup } from 'node:dns/promises'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Runtime as CoreRuntime, type RuntimeOptions } from '../runtime'
import { fetchLoader, type SourceLoader } from '../wasm/loader'
import { httpEgress, type HttpEgressOptions } from '../resources/http-egress'
import { setTransformCache, type TransformCache } from '../wasm/asyncify'

export { setTransformCache }
export type { TransformCache }
import type { WorkflowSpec } from '../workflow/spec'
import type { WorkflowHandle, WorkflowOptions } from '../workflow/workflow'
import type { WorkflowProblem } from '../workflow/resource'
import { fileLog, fileLogResource } from './resources/file-log'
import { httpIngressResource } from './resources/http-ingress'
import { redisResource } from './resources/redis'
import { isolateInWorker } from './worker-guest'

export * from '../index'
export { fileLog, fileLogResource, httpIngressResource, redisResource }
export type { FileLogOptions } from './resources/file-log'
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

let cacheInstalled = false
function installDefaultCache(): void {
  if (cacheInstalled) return
  cacheInstalled = true
  const env = process.env['EDGELESS_CACHE_DIR']
  if (env === 'off') return
  setTransformCache(fileTransformCache(env || join(tmpdir(), 'edgeless-cache')))
}

/**
 * Options of the Node {@link Runtime}: the core's, plus where files may be written.
 *
 * @example
 * ```ts
 * const rt = new Runtime({ logRoot: '/var/log/edgeless' })
 * ```
 */
export interface NodeRuntimeOptions extends RuntimeOptions {
  /**
   * The folder `file-log` resources write in (relative filenames resolve against it, and no
   * file outside it is written). Default: each workflow's own folder. The CLI's `--log-root`.
   */
  logRoot?: string
  /**
   * What `http-egress` resources may reach and read (allowed hosts, private addresses,
   * response size). Default: any public host, no loopback/link-local/private address (host
   * names are resolved and every address checked), 16 MiB per response. The CLI's
   * `--allow-host`, `--allow-private`, `--max-response-bytes`.
   */
  egress?: Omit<HttpEgressOptions, 'resolve'>
}

/** Every address a host name resolves to, as the egress policy checks them. */
async function resolveAll(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address)
}

export class Runtime extends CoreRuntime {
  constructor(options: NodeRuntimeOptions = {}) {
    installDefaultCache()
    const { logRoot, egress, ...core } = options
    const fileLogClass = logRoot !== undefined ? fileLog({ logRoot }) : fileLogResource
    const egressClass = httpEgress({ ...egress, resolve: resolveAll })
    super({ loadSource: fileLoader, resolveRef: resolveCodePath, isolate: isolateInWorker, ...core, resources: [fileLogClass, httpIngressResource, redisResource, egressClass, ...(options.resources ?? [])] })
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
