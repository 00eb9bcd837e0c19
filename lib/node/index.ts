/**
 * The Node entry of edgeless: everything of the core, plus a {@link Runtime} whose
 * default loader reads module paths and `file:` URLs from disk.
 * @packageDocumentation
 */
import { lookup } from 'node:dns/promises'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { DEFAULT_MAX_MODULE_BYTES, DEFAULT_MAX_WORKFLOW_BYTES, fetchBounded, readBounded, refusal, type ReadLimit } from './read-bounded'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Runtime as CoreRuntime } from '../runtime/runtime'
import type { RuntimeOptions } from '../options'
import type { SourceLoader } from '../wasm/loader'
import { httpEgress, type HttpEgressOptions } from '../resources/http-egress'
import { setAsyncifyRunner, setTransformCache, type TransformCache } from '../wasm/asyncify'
import { asyncifyInWorker } from './asyncify-client'

export { setTransformCache }
export type { TransformCache }
import { workflowError, type WorkflowSpec } from '../workflow/spec'
import { EdgelessError } from '../errors'
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
export { DEFAULT_MAX_MODULE_BYTES, DEFAULT_MAX_WORKFLOW_BYTES, fetchBounded, readBounded } from './read-bounded'
export type { ReadLimit } from './read-bounded'

const moduleLimit = (maxBytes: number): ReadLimit => ({ what: 'a module', maxBytes, option: 'maxModuleBytes (CLI --max-module-bytes)' })

/**
 * A Node loader of module sources: a file path (relative to the working directory), a
 * `file:` URL, or an `http(s):`/`data:` URL (fetched). Files must be regular files of at
 * most `maxBytes` (see {@link readBounded}).
 *
 * @example
 * ```ts
 * const rt = new Runtime({ loadSource: boundedFileLoader(64 * 1024 * 1024) })
 * ```
 */
export function boundedFileLoader(maxBytes: number = DEFAULT_MAX_MODULE_BYTES): SourceLoader {
  return limitedLoader(() => moduleLimit(maxBytes))
}

function limitedLoader(limitOf: (path: string) => ReadLimit): SourceLoader {
  return async (ref) => {
    const s = typeof ref === 'string' ? ref : ref.href
    if (/^file:/i.test(s)) {
      const path = fileURLToPath(s)
      return readBounded(path, limitOf(path))
    }
    if (/^[a-z][a-z0-9+.-]+:/i.test(s) && !/^[a-z]:[\\/]/i.test(s)) return fetchBounded(s, limitOf(s))
    return readBounded(s, limitOf(s))
  }
}

const workflowLimit = (maxBytes: number): ReadLimit => ({ what: 'a workflow file', maxBytes, option: 'maxWorkflowBytes (CLI --max-workflow-bytes)' })

/**
 * Loads a module source in Node: a file path (relative to the working directory), a
 * `file:` URL, or an `http(s):`/`data:` URL (fetched). Files must be regular files of at
 * most 256 MiB ({@link DEFAULT_MAX_MODULE_BYTES}).
 *
 * @example
 * ```ts
 * const bytes = await fileLoader('./pong.wasm')
 * ```
 */
export const fileLoader: SourceLoader = boundedFileLoader()

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
      try {
        return new Uint8Array(await readFile(join(dir, `${key}.wasm`)))
      } catch {
        return undefined
      }
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
  /**
   * Largest module file read, in bytes (a workflow's `code`, a spawn's path). Default 256 MiB
   * ({@link DEFAULT_MAX_MODULE_BYTES}). Only regular files are read at all. Ignored when you
   * pass your own `loadSource`. The CLI's `--max-module-bytes`.
   */
  maxModuleBytes?: number
  /**
   * Largest workflow file read, in bytes. Default 16 MiB ({@link DEFAULT_MAX_WORKFLOW_BYTES}).
   * The CLI's `--max-workflow-bytes`.
   */
  maxWorkflowBytes?: number
}

/** Every address a host name resolves to, as the egress policy checks them. */
async function resolveAll(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address)
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
  private readonly maxWorkflowBytes: number
  /** Workflow files being read (path -> how many reads), see the constructor. */
  private readonly workflowPaths: Map<string, number>

  constructor(options: NodeRuntimeOptions = {}) {
    installNodeDefaults()
    const { logRoot, egress, maxModuleBytes, maxWorkflowBytes, ...core } = options
    const fileLogClass = logRoot !== undefined ? fileLog({ logRoot }) : fileLogResource
    const egressClass = httpEgress({ ...egress, resolve: resolveAll })
    for (const [k, v] of [
      ['maxModuleBytes', maxModuleBytes],
      ['maxWorkflowBytes', maxWorkflowBytes],
    ] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 1))
        throw new EdgelessError('invalid-argument', `${k} must be a positive whole number of bytes, got ${String(v)}.`, { [k]: v })
    }
    // The core reads workflow files with the same loader as modules: the paths of workflows
    // being started or validated get the workflow file limit.
    const workflowPaths = new Map<string, number>()
    const maxWf = maxWorkflowBytes ?? DEFAULT_MAX_WORKFLOW_BYTES
    const loadSource = limitedLoader((path) => (workflowPaths.has(path) ? workflowLimit(maxWf) : moduleLimit(maxModuleBytes ?? DEFAULT_MAX_MODULE_BYTES)))
    super({
      loadSource,
      resolveRef: resolveCodePath,
      isolate: isolateInWorker,
      ...core,
      resources: [fileLogClass, httpIngressResource, redisResource, egressClass, ...(options.resources ?? [])],
    })
    this.maxWorkflowBytes = maxWf
    this.workflowPaths = workflowPaths
  }

  // A workflow path is made absolute first, so its default name (folder/file) and the
  // resolution of its `code` paths do not depend on the working directory.
  override async startWorkflow(workflow: WorkflowSpec | string | URL, options?: WorkflowOptions): Promise<WorkflowHandle> {
    const w = absolute(workflow)
    const problems = await this.fileProblems(w)
    if (problems.length) throw workflowError(problems, `Workflow ${w as string}`)
    return this.asWorkflow(w, () => super.startWorkflow(w as WorkflowSpec | string | URL, options))
  }

  override async validateWorkflow(workflow: WorkflowSpec | string | URL, options?: WorkflowOptions): Promise<WorkflowProblem[]> {
    const w = absolute(workflow)
    const problems = await this.fileProblems(w)
    if (problems.length) return problems
    return this.asWorkflow(w, () => super.validateWorkflow(w as WorkflowSpec | string | URL, options))
  }

  /** Run `f` with `w` (when a path) read under the workflow file limit. */
  private async asWorkflow<T>(w: unknown, f: () => Promise<T>): Promise<T> {
    const key = typeof w === 'string' ? w : w instanceof URL ? w.href : undefined
    if (key === undefined) return f()
    this.workflowPaths.set(key, (this.workflowPaths.get(key) ?? 0) + 1)
    try {
      return await f()
    } finally {
      const n = this.workflowPaths.get(key)! - 1
      if (n === 0) this.workflowPaths.delete(key)
      else this.workflowPaths.set(key, n)
    }
  }

  /** A workflow file must be a regular file of at most maxWorkflowBytes (checked before it is read). */
  private async fileProblems(w: unknown): Promise<WorkflowProblem[]> {
    if (typeof w !== 'string' || isUrl(w)) return []
    const why = await refusal(w, workflowLimit(this.maxWorkflowBytes))
    return why ? [{ file: w, entity: 'workflow', field: '(file)', message: why }] : []
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
