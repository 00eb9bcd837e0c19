/**
 * Workflows: validation of a parsed `workflow.json` (code loaded and checked, resource
 * classes and annotations), the start of its members through the spawner, and the
 * {@link WorkflowHandle} of a running one.
 * @packageDocumentation
 */
import { EdgelessError } from '../errors'
import type { InstanceId } from '../ids'
import { randomUuid } from '../ids'
import type { FunctionModule, SourceLoader } from '../wasm/loader'
import type { GuestLimits } from '../wasm/limits'
import { loadFunctionModule } from '../wasm/loader'
import { denseFor } from '../wasm/dense'
import type { EdgeFunction } from '../js-function'
import {
  annotationOptions,
  annotationProblems,
  FUNCTION_ANNOTATIONS,
  memoryCapFor,
  WORKFLOW_ANNOTATIONS,
  type InstanceInfo,
  type SpawnOptions,
  type StopOptions,
  type SupervisionOptions,
} from '../options'
import type { ActorRef, RefOwner } from '../runtime/actor-ref'
import type { PreparedSpawn, Spawner } from '../runtime/spawner'
import { resolveSupervision, Supervisor, type SupervisorEnv } from '../supervision/supervisor'
import type { ResourceClass, WorkflowProblem } from './resource'
import { boundProblem, parseWorkflow, workflowError, type ParsedFunction, type ParsedResource, type ParsedWorkflow, type WorkflowSpec } from './spec'

/**
 * How to start (or validate) a workflow.
 *
 * @example
 * ```ts
 * await rt.startWorkflow('examples/ping-pong/workflow.json', { name: 'pp', resourceConfig: { 'http-ingress': { port: '8080' } } })
 * ```
 */
export interface WorkflowOptions {
  /**
   * The workflow's name on this runtime: two workflows with the same name cannot run at once,
   * and it prefixes every function's default state id (`<name>/<function>`), so a workflow
   * started again under the same name resumes its state. Default: for a file, its folder and
   * file name (`ping-pong/workflow`); for an object, a hash of its function and resource names.
   */
  name?: string
  /** Where relative `code` paths resolve from (a file path or URL of the workflow). Set for you when you pass a path. */
  base?: string
  /** Settings merged under each resource's `configurations`, per class type (the CLI's `--http-port` lands here). */
  resourceConfig?: Record<string, Record<string, string>>
  /** Timeout of calls made by the workflow's functions, in ms. Default: the runtime's. */
  callTimeoutMs?: number
  /**
   * How the workflow's supervisor handles crashes. Overrides the workflow's annotations
   * `restart-strategy`, `max-restarts`, `restart-period-ms`. Default: one_for_one, 3 in 5000 ms.
   */
  supervision?: SupervisionOptions
  /**
   * Run these members as the given JS functions instead of their module or resource class
   * (test doubles): same name, address and output mapping. Their code is not loaded.
   */
  replace?: Record<string, EdgeFunction | (() => EdgeFunction)>
}

/** One instance of a running workflow. */
export interface WorkflowInstanceInfo extends InstanceInfo {
  /** `function` or `resource`. */
  kind: 'function' | 'resource'
  /** For a resource, its class type; for a function, its class id. */
  classType: string
}

/** Upstream resource classes not implemented here, with what they are (named in the validation problem). */
const UPSTREAM_ONLY_CLASSES: Record<string, string> = {
  dda: 'resource for a Data Distribution Agent (coatyio/dda)',
  'kafka-egress': 'Apache Kafka producer',
  sqlx: 'SQL database resource',
  ollama: 'Ollama chatbot resource',
  'http-poster': 'resource that posts each cast to a web server',
  'file-pusher': 'resource that casts files of a local folder periodically',
}

/** What validation produced: the parsed workflow, compiled modules and resource classes. @internal */
export interface ValidatedWorkflow {
  parsed: ParsedWorkflow
  modules: Map<string, FunctionModule>
  classes: Map<string, ResourceClass>
  configs: Map<string, Record<string, string>>
  file?: string
  name: string
}

/** What the validation pass needs from the runtime. @internal */
export interface WorkflowEnv {
  loader: SourceLoader
  resolveRef(code: string, base: string | undefined): string
  resourceClass(classType: string): ResourceClass | undefined
  resourceClasses(): string[]
  resourceConfig: Record<string, Record<string, string>>
  /** The runtime's default guest limits. */
  limits: GuestLimits
  /** The runtime's default for dense memory (RuntimeOptions.dense). */
  dense: boolean
}

/**
 * Validate everything before anything starts: structure, code (read, compiled and checked
 * against the ABI), resource classes and their required configurations. Returns the
 * problems; an empty list means the workflow can start.
 * @internal
 */
export async function checkWorkflow(
  env: WorkflowEnv,
  spec: unknown,
  options: WorkflowOptions,
  file: string | undefined,
): Promise<{ problems: WorkflowProblem[]; validated: ValidatedWorkflow }> {
  const problems: WorkflowProblem[] = []
  const parsed = parseWorkflow(spec, problems, file)
  // A function a JS stand-in replaces runs none of its own code, so its type (upstream's
  // CONTAINER, say) is no obstacle: that is the documented way to run such a workflow here.
  const replacedType = (p: WorkflowProblem) =>
    p.entity === 'function' &&
    p.field === 'class_specification.function_type' &&
    options.replace?.[p.name ?? ''] !== undefined &&
    parsed.functions.some((f) => f.name === p.name && f.functionType !== '')
  problems.splice(0, problems.length, ...problems.filter((p) => !replacedType(p)))
  // Bounded: messages echo the workflow's own values, which may be megabytes long.
  const at = (p: Omit<WorkflowProblem, 'file'>) => problems.push(boundProblem(file === undefined ? p : { file, ...p }))
  const modules = new Map<string, FunctionModule>()
  await Promise.all(
    parsed.functions.map(async (f) => {
      // Functions whose type or code field is already reported are not loaded (one problem each),
      // nor are those a test replaces.
      if (f.functionType !== 'RUST_WASM' || (f.code === undefined && f.binary === undefined) || options.replace?.[f.name]) return
      const field = f.binary ? 'class_specification.binary' : 'class_specification.code'
      let source: Uint8Array | string
      try {
        source = f.binary ?? env.resolveRef(f.code!, options.base)
      } catch (e) {
        at({ entity: 'function', name: f.name, field, message: `cannot resolve "${f.code}": ${(e as Error).message}` })
        return
      }
      try {
        // Loaded with the limits it will run under, so the spawn reuses this compile.
        const own = annotatedLimits(f.annotations)
        const dv = f.annotations['dense']
        const dense = denseFor(dv === undefined ? undefined : dv === 'true', env.dense, f.annotations['isolation'])
        const limits = { fuel: own.fuel ?? env.limits.fuel, maxMemoryBytes: memoryCapFor(own.maxMemoryBytes, env.limits.maxMemoryBytes, dense) }
        modules.set(f.name, await loadFunctionModule(source, env.loader, `function "${f.name}"`, limits, dense))
      } catch (e) {
        const msg = (e as Error).message
        at({ entity: 'function', name: f.name, field, message: e instanceof EdgelessError && e.code === 'load-failed' ? `cannot read the code: ${msg}` : msg })
      }
    }),
  )
  const classes = new Map<string, ResourceClass>()
  const configs = new Map<string, Record<string, string>>()
  for (const name of Object.keys(options.replace ?? {})) {
    if (!parsed.functions.some((f) => f.name === name) && !parsed.resources.some((r) => r.name === name)) {
      at({ entity: 'workflow', field: `replace.${name}`, message: `"${name}" is no function or resource of this workflow, so it cannot be replaced` })
    }
  }
  for (const r of parsed.resources) {
    if (options.replace?.[r.name]) continue
    const cls = env.resourceClass(r.classType)
    if (!cls) {
      const upstreamOnly = UPSTREAM_ONLY_CLASSES[r.classType]
      const hint =
        upstreamOnly === undefined
          ? 'fix the name or register the class with runtime.registerResource()'
          : `it is upstream's ${upstreamOnly}, which this runtime does not implement: register a class of that name with runtime.registerResource(), or stand a JS function in for the resource with startWorkflow(file, { replace: { ${JSON.stringify(r.name)}: fn } }) (docs/workflows.md, "Container functions")`
      at({
        entity: 'resource',
        name: r.name,
        field: 'class_type',
        message: `"${r.classType}" is not a resource class of this runtime (known: ${env.resourceClasses().join(', ')}); ${hint}`,
      })
      continue
    }
    classes.set(r.name, cls)
    const config = { ...env.resourceConfig[r.classType], ...options.resourceConfig?.[r.classType], ...r.config }
    configs.set(r.name, config)
    for (const key of cls.required ?? []) {
      if (config[key] === undefined || config[key] === '')
        at({
          entity: 'resource',
          name: r.name,
          field: `configurations.${key}`,
          message: `is required by "${r.classType}"; add it to the resource's configurations`,
        })
    }
    for (const p of cls.validate?.(config) ?? [])
      at({ entity: 'resource', name: r.name, field: p.field.startsWith('configurations.') ? p.field : `configurations.${p.field}`, message: p.message })
  }
  checkAnnotations(parsed, at)
  // Problems are reported in the order of the file, not the order loads finished.
  const order = (p: WorkflowProblem) => {
    const fi = parsed.functions.findIndex((f) => f.name === p.name)
    const ri = parsed.resources.findIndex((r) => r.name === p.name)
    return p.entity === 'workflow' ? -1 : p.entity === 'function' ? Math.max(fi, 0) : 10_000 + Math.max(ri, 0)
  }
  problems.sort((a, b) => order(a) - order(b))
  return {
    problems,
    validated: { parsed, modules, classes, configs, ...(file !== undefined ? { file } : {}), name: options.name ?? defaultName(parsed, file) },
  }
}

/** The guest limits a function's `fuel` / `max-memory` annotations set (valid values only; validation reports the rest). */
function annotatedLimits(a: Record<string, string>): { fuel?: number; maxMemoryBytes?: number } {
  const { fuel, maxMemoryBytes } = annotationOptions(a, FUNCTION_ANNOTATIONS)
  return { ...(fuel !== undefined ? { fuel } : {}), ...(maxMemoryBytes !== undefined ? { maxMemoryBytes } : {}) }
}

/** Annotations that set options, checked against the one table of legal values: a typo must not silently mean "the default". */
function checkAnnotations(parsed: ParsedWorkflow, at: (p: Omit<WorkflowProblem, 'file'>) => void): void {
  for (const [key, message] of annotationProblems(parsed.annotations, WORKFLOW_ANNOTATIONS)) at({ entity: 'workflow', field: `annotations.${key}`, message })
  for (const f of parsed.functions) {
    for (const [key, message] of annotationProblems(f.annotations, FUNCTION_ANNOTATIONS))
      at({ entity: 'function', name: f.name, field: `annotations.${key}`, message })
  }
}

/** The workflow's supervision: API options over annotations over defaults. @internal */
export function workflowSupervision(parsed: ParsedWorkflow, options: WorkflowOptions): SupervisionOptions {
  return { ...annotationOptions(parsed.annotations, WORKFLOW_ANNOTATIONS), ...options.supervision }
}

/** A stable name: the file's folder and stem, or a hash of the workflow's names. */
function defaultName(parsed: ParsedWorkflow, file: string | undefined): string {
  if (file !== undefined) {
    const parts = file
      .replace(/\\/g, '/')
      .replace(/\.json$/i, '')
      .split('/')
      .filter((s) => s !== '' && s !== '.')
    return parts.slice(-2).join('/') || 'workflow'
  }
  const key = [...parsed.functions.map((f) => `f:${f.name}`), ...parsed.resources.map((r) => `r:${r.name}:${r.classType}`)].join('|')
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return `workflow-${(h >>> 0).toString(16).padStart(8, '0')}`
}

interface Member {
  name: string
  kind: 'function' | 'resource'
  classType: string
  id: InstanceId
  ref: ActorRef | null
}

/**
 * A running workflow: its instances by logical name, live patching of output mappings,
 * and a graceful stop. Returned by {@link Runtime.startWorkflow}.
 *
 * @example
 * ```ts
 * const wf = await rt.startWorkflow('examples/ping-pong/workflow.json')
 * console.log(wf.instances().map((i) => `${i.name}: ${i.status}`))
 * wf.patch('pinger', { ponger: 'ponger2' })
 * await wf.stop()
 * ```
 */
export class WorkflowHandle {
  /** A fresh UUID per start, as upstream's workflow id. */
  readonly id: string
  /** The workflow's name on this runtime (see {@link WorkflowOptions.name}). */
  readonly name: string
  /** The workflow file, when it came from one. */
  readonly file: string | undefined
  private readonly members = new Map<string, Member>()
  private stopping: Promise<void> | null = null
  /** @internal */
  supervisor!: Supervisor

  /** @internal */
  constructor(
    private readonly rt: RefOwner,
    nodeId: string,
    v: ValidatedWorkflow,
    id: string,
    private readonly onStopped: () => void,
  ) {
    this.id = id
    this.name = v.name
    this.file = v.file
    for (const f of v.parsed.functions)
      this.members.set(f.name, { name: f.name, kind: 'function', classType: f.classId, id: { node: nodeId, function: randomUuid() }, ref: null })
    for (const r of v.parsed.resources)
      this.members.set(r.name, { name: r.name, kind: 'resource', classType: r.classType, id: { node: nodeId, function: randomUuid() }, ref: null })
  }

  /** @internal */
  idOf(name: string): InstanceId | undefined {
    return this.members.get(name)?.id
  }

  /** @internal */
  setRef(name: string, ref: ActorRef): void {
    this.members.get(name)!.ref = ref
  }

  /**
   * The handle on one instance by its logical name, to cast or call it from the application.
   *
   * @example
   * ```ts
   * const r = await wf.get('ponger')!.call('PING')
   * ```
   */
  get(name: string): ActorRef | undefined {
    return this.members.get(name)?.ref ?? undefined
  }

  /**
   * Every instance of the workflow, in workflow order (functions, then resources).
   *
   * @example
   * ```ts
   * wf.instances().filter((i) => i.status === 'failed')
   * ```
   */
  instances(): WorkflowInstanceInfo[] {
    const out: WorkflowInstanceInfo[] = []
    for (const m of this.members.values()) {
      const info = this.rt.inspect(m.id)
      if (info) out.push({ ...info, kind: m.kind, classType: m.classType })
    }
    return out
  }

  /** True until {@link WorkflowHandle.stop} is called. */
  get running(): boolean {
    return this.stopping === null
  }

  /**
   * Replace the output mapping of one function or resource (upstream's `patch`): every
   * alias -> logical name of this workflow. Takes effect for the next cast or call; delayed
   * casts already scheduled keep the target they resolved. Throws `invalid-workflow` naming
   * every unknown name, and changes nothing in that case.
   *
   * @example
   * ```ts
   * wf.patch('sensor', { output: 'filter-2' })
   * ```
   */
  patch(name: string, mapping: Record<string, string>): void {
    const m = this.members.get(name)
    const problems: WorkflowProblem[] = []
    if (!m)
      problems.push({
        entity: 'workflow',
        field: 'patch',
        message: `"${name}" is no function or resource of workflow "${this.name}" (it has: ${[...this.members.keys()].join(', ')})`,
      })
    for (const [alias, target] of Object.entries(mapping ?? {})) {
      if (typeof target !== 'string' || !this.members.has(target))
        problems.push({
          entity: m?.kind ?? 'function',
          name,
          field: `output_mapping.${alias}`,
          message: `"${String(target)}" is no function or resource of this workflow; patch to one of: ${[...this.members.keys()].join(', ')}`,
        })
    }
    if (problems.length) throw workflowError(problems, `Patching workflow "${this.name}"`)
    if (!this.rt.inspect(m!.id))
      throw new EdgelessError(
        'unknown-instance',
        `"${name}" of workflow "${this.name}" is not running (the workflow stopped, or the instance failed and was removed).`,
        { name },
      )
    const current = this.rt.inspect(m!.id)!.outputs
    for (const alias of Object.keys(current)) if (!(alias in mapping)) this.rt.setOutput(m!.id, alias, null)
    for (const [alias, target] of Object.entries(mapping)) this.rt.setOutput(m!.id, alias, this.members.get(target)!.id)
  }

  /**
   * Stop the workflow gracefully: first every function (each finishes its current message,
   * runs its stop handler, flushes its state), then every resource, so messages functions
   * send while stopping still reach a file log. With `{ drain: true }` each first processes
   * what is queued in its mailbox. Nothing is restarted meanwhile. Idempotent.
   *
   * @example
   * ```ts
   * await wf.stop()
   * ```
   */
  stop(options: StopOptions = {}): Promise<void> {
    this.stopping ??= (async () => {
      // The supervisor first: nothing restarts while the workflow goes down.
      this.supervisor?.shutdown()
      const of = (kind: Member['kind']) => [...this.members.values()].filter((m) => m.kind === kind)
      await Promise.all(of('function').map((m) => this.rt.stop(m.id, options)))
      await Promise.all(of('resource').map((m) => this.rt.stop(m.id, options)))
      this.onStopped()
    })()
    return this.stopping
  }
}

/**
 * Start a validated workflow: build every instance first (so a failure starts nothing),
 * register them all (messages sent during init queue up instead of being lost), then run
 * each `handle_init` in workflow order. If one fails to initialise, the ones already
 * running are stopped and the error is thrown.
 * @internal
 */
export async function launchWorkflow(
  spawner: Spawner,
  owner: RefOwner,
  sys: SupervisorEnv,
  nodeId: string,
  v: ValidatedWorkflow,
  options: WorkflowOptions,
  onStopped: (h: WorkflowHandle) => void,
): Promise<WorkflowHandle> {
  const id = randomUuid()
  let handle: WorkflowHandle | undefined
  handle = new WorkflowHandle(owner, nodeId, v, id, () => onStopped(handle!))
  const h = handle
  // Escalation (restart intensity exceeded) stops the whole workflow, as an OTP supervisor
  // that gives up takes its children down with it.
  h.supervisor = new Supervisor(
    sys,
    v.name,
    resolveSupervision(workflowSupervision(v.parsed, options), `workflow "${v.name}" supervision`),
    (reason, history, child) => {
      sys.emit('escalation', { workflow: v.name, name: child.name, instance: child.id, reason, history })
      void h.stop()
    },
  )
  const outputs = (mapping: Record<string, string>) => Object.fromEntries(Object.entries(mapping).map(([alias, target]) => [alias, h.idOf(target)!]))
  const prepared: Array<{ name: string; p: PreparedSpawn }> = []
  const label = `workflow "${v.name}"`
  try {
    for (const f of v.parsed.functions) {
      const stub = options.replace?.[f.name]
      const spec = functionSpawn(f, v, h, outputs(f.mapping), options, stub)
      prepared.push({ name: f.name, p: await spawner.prepare(spec) })
    }
    for (const r of v.parsed.resources) {
      const fn = options.replace?.[r.name] ?? (await createResource(sys, r, v, h))
      prepared.push({
        name: r.name,
        p: await spawner.prepare({ name: r.name, fn, functionId: h.idOf(r.name)!.function, outputs: outputs(r.mapping), stateId: `${v.name}/${r.name}` }),
      })
    }
  } catch (e) {
    for (const { p } of prepared) p.actor.discard()
    throw startError(e, label)
  }
  for (const { p } of prepared) spawner.register(p, h.supervisor)
  const started: string[] = []
  for (const [i, { name, p }] of prepared.entries()) {
    try {
      h.setRef(name, await spawner.activate(p))
      started.push(name)
    } catch (e) {
      for (const rest of prepared.slice(i + 1)) rest.p.actor.discard()
      await h.stop()
      throw startError(e, label, name)
    }
  }
  return h
}

function functionSpawn(
  f: ParsedFunction,
  v: ValidatedWorkflow,
  h: WorkflowHandle,
  outputs: Record<string, InstanceId>,
  options: WorkflowOptions,
  stub?: EdgeFunction | (() => EdgeFunction),
): SpawnOptions {
  const init = f.annotations['init-payload']
  const code = stub ? { fn: stub } : { module: v.modules.get(f.name)! }
  return {
    ...code,
    name: f.name,
    functionId: h.idOf(f.name)!.function,
    outputs,
    stateId: f.annotations['state-id'] || `${v.name}/${f.name}`,
    ...(init !== undefined ? { initPayload: init } : {}),
    ...(options.callTimeoutMs !== undefined ? { callTimeoutMs: options.callTimeoutMs } : {}),
    // Every annotation that sets a spawn option, by the one table (lib/options.ts).
    ...annotationOptions(f.annotations, FUNCTION_ANNOTATIONS),
  }
}

async function createResource(sys: SupervisorEnv, r: ParsedResource, v: ValidatedWorkflow, h: WorkflowHandle) {
  const cls = v.classes.get(r.name)!
  const instance = h.idOf(r.name)!
  try {
    // Relative paths in a resource's configuration (file-log's filename) resolve against the
    // workflow file's folder, so a workflow folder is self-contained wherever it is run from.
    const file = v.file !== undefined && !/^[a-z][a-z0-9+.-]+:/i.test(v.file) ? v.file.replace(/\\/g, '/') : undefined
    const baseDir = file?.includes('/') ? file.slice(0, file.lastIndexOf('/')) || '/' : undefined
    return await cls.create({
      name: r.name,
      workflowId: h.id,
      ...(baseDir !== undefined ? { baseDir } : {}),
      config: v.configs.get(r.name)!,
      warn: (message, details = {}) => sys.emit('warning', { code: 'resource-error', name: r.name, instance, message, details }),
    })
  } catch (e) {
    if (e instanceof EdgelessError) throw e
    throw new EdgelessError(
      'resource-failed',
      `Resource "${r.name}" (${r.classType}) could not be created: ${(e as Error)?.message ?? e}.`,
      { name: r.name },
      { cause: e },
    )
  }
}

function startError(e: unknown, label: string, name?: string): EdgelessError {
  if (e instanceof EdgelessError) {
    return new EdgelessError(
      e.code,
      `Starting ${label} failed${name ? ` at "${name}"` : ''}: ${e.message}`,
      { ...e.details, ...(name ? { instance: name } : {}) },
      { cause: e },
    )
  }
  return new EdgelessError('resource-failed', `Starting ${label} failed${name ? ` at "${name}"` : ''}: ${(e as Error)?.message ?? e}`, {}, { cause: e })
}

export type { WorkflowSpec }
