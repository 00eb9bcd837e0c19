/**
 * The public facade of a runtime: it wires the parts (system, spawner, supervision,
 * passivation, workflows) together and forwards to them; the work is theirs.
 * @packageDocumentation
 */
import { EventEmitter } from 'eventemitter3'
import { type Actor, NO_OUTPUTS } from '../actor/actor'
import { Passivator, type PassivationStats } from '../actor/passivation'
import { errResult, type CallResult } from '../call-result'
import { realClock } from '../clock'
import { EdgelessError } from '../errors'
import type { RuntimeEvents } from '../events'
import { isUuid, randomUuid, type InstanceId } from '../ids'
import { OBSERVER_HOOKS, type Observer } from '../observer'
import {
  checkCapacity,
  checkEnum,
  checkMaxInvocationMs,
  DEFAULT_FUEL,
  DEFAULT_MAX_INVOCATION_MS,
  DEFAULT_QUOTAS,
  memoryCapFor,
  type CallOptions,
  type InstanceInfo,
  type RuntimeOptions,
  type SpawnOptions,
  type StopOptions,
} from '../options'
import { ownBytes, type Payload } from '../payload'
import { httpEgressResource } from '../resources/http-egress'
import { memoryStore } from '../state/memory'
import { resolveSupervision, Supervisor } from '../supervision/supervisor'
import { fetchLoader, loadFunctionModule, type FunctionModule, type ModuleSource, type SourceLoader } from '../wasm/loader'
import { readWorkflow, resolveRef } from '../workflow/read'
import type { ResourceClass, WorkflowProblem } from '../workflow/resource'
import { workflowError, type WorkflowSpec } from '../workflow/spec'
import { checkWorkflow, launchWorkflow, WorkflowHandle, type WorkflowEnv, type WorkflowOptions } from '../workflow/workflow'
import { ActorRef, idOf, type RefOwner, type Target } from './actor-ref'
import { attachConsole } from './console'
import { Spawner } from './spawner'
import { System, type RuntimeInternals } from './system'

export { ActorRef }

/**
 * Runs EDGELESS functions — wasm modules built against `edgeless_function`, or JS
 * functions — as actors with mailboxes and gen_server semantics: `cast`, `call` (with
 * timeouts and deadlock detection), aliases, delayed casts and `sync` to a state store.
 * Emits typed {@link RuntimeEvents} (`log`, `crash`, `warning`, `dead-letter`, ...).
 *
 * @example
 * ```ts
 * import { Runtime, utf8 } from 'edgeless'
 * const rt = new Runtime()
 * const pong = await rt.spawn({ name: 'ponger', module: './pong.wasm' })
 * const ping = await rt.spawn({ name: 'pinger', module: './ping.wasm', outputs: { ponger: pong } })
 * const r = await rt.call(pong, 'hi')
 * if (r.kind === 'reply') console.log(utf8(r.data)) // PONG
 * await rt.shutdown()
 * ```
 */
export class Runtime extends EventEmitter<RuntimeEvents> implements RefOwner {
  /** This node's id; every instance id carries it. */
  readonly nodeId: string
  private readonly sys: System
  private readonly loader: SourceLoader
  private readonly callTimeoutMs: number
  private readonly fuel: number
  private readonly maxMemoryBytes: number | undefined
  private readonly dense: boolean
  private readonly spawner: Spawner
  private readonly spawning = new Set<Promise<unknown>>()
  private readonly classes = new Map<string, ResourceClass>()
  private readonly workflows = new Map<string, WorkflowHandle>()
  private readonly workflowEnv: WorkflowEnv
  private readonly passivator: Passivator

  constructor(options: RuntimeOptions = {}) {
    super()
    this.nodeId = options.nodeId ?? randomUuid()
    if (!isUuid(this.nodeId)) throw new EdgelessError('invalid-argument', `nodeId must be a UUID, got ${JSON.stringify(options.nodeId)}.`)
    this.callTimeoutMs = options.callTimeoutMs ?? 5000
    if (!(this.callTimeoutMs > 0))
      throw new EdgelessError('invalid-argument', `callTimeoutMs must be a positive number of milliseconds (or Infinity), got ${options.callTimeoutMs}.`)
    this.loader = options.loadSource ?? fetchLoader
    const fallback = options.stateStore ?? memoryStore()
    const stores = { nodeLocal: options.stateStores?.['node-local'] ?? fallback, global: options.stateStores?.global ?? fallback }
    const statePolicy = checkEnum('statePolicy', options.statePolicy ?? 'node-local', 'statePolicy')
    this.sys = new System(
      this.nodeId,
      options.clock ?? realClock,
      stores,
      this,
      options.optimisticConcurrency === true,
      options.stateWrites,
      options.remote ?? null,
    )
    this.fuel = options.fuel ?? DEFAULT_FUEL
    this.maxMemoryBytes = options.maxMemoryBytes
    if (options.dense !== undefined && typeof options.dense !== 'boolean')
      throw new EdgelessError('invalid-argument', `RuntimeOptions.dense must be a boolean, got ${JSON.stringify(options.dense)}.`)
    this.dense = options.dense === true
    const mailboxCapacity = checkCapacity(options.mailboxCapacity ?? 10_000, 'mailboxCapacity')
    const overflow = checkEnum('overflow', options.overflow ?? 'reject', 'overflow')
    this.passivator = new Passivator(this.sys.clock, options.passivation ?? {})
    // Resolved whole (so a bad strategy is refused), then used one_for_one: the standalone
    // instances are unrelated.
    const root = new Supervisor(this.sys, undefined, { ...resolveSupervision(options.supervision), strategy: 'one_for_one' }, (reason, history, child) => {
      // Outside a workflow there is nothing to stop but the instance that crashed too often.
      this.sys.emit('escalation', { name: child.name, instance: child.id, reason, history })
      child.giveUp(reason)
    })
    this.spawner = new Spawner(
      this.sys,
      {
        nodeId: this.nodeId,
        loader: this.loader,
        callTimeoutMs: this.callTimeoutMs,
        stopTimeoutMs: options.stopTimeoutMs ?? 5000,
        suspendBufferBytes: options.suspendBufferBytes ?? 16 * 1024,
        fuel: this.fuel,
        maxMemoryBytes: this.maxMemoryBytes,
        maxInvocationMs: checkMaxInvocationMs(options.maxInvocationMs ?? DEFAULT_MAX_INVOCATION_MS, 'RuntimeOptions.maxInvocationMs'),
        dense: this.dense,
        quotas: { ...DEFAULT_QUOTAS, ...options.quotas },
        mailboxCapacity,
        overflow,
        statePolicy,
        isolate: options.isolate,
        passivator: this.passivator,
      },
      root,
      this,
    )
    this.registerResource(httpEgressResource)
    for (const cls of options.resources ?? []) this.registerResource(cls)
    this.workflowEnv = {
      loader: this.loader,
      resolveRef: options.resolveRef ?? resolveRef,
      resourceClass: (t) => this.classes.get(t),
      resourceClasses: () => [...this.classes.keys()],
      resourceConfig: options.resourceConfig ?? {},
      limits: { fuel: this.fuel, maxMemoryBytes: this.maxMemoryBytes },
      dense: this.dense,
    }
    const level = options.consoleLog ?? 'info'
    if (level !== false) attachConsole(this, level)
  }

  /** The host application's own address (the sender of casts and calls made through the runtime). */
  get hostId(): InstanceId {
    return this.sys.hostId
  }

  /**
   * Load, validate and compile a wasm function once, to spawn it many times.
   * Throws {@link EdgelessError} (`invalid-module`, `missing-export`, `unknown-import`, `load-failed`).
   *
   * @example
   * ```ts
   * const mod = await rt.load('./pong.wasm')
   * ```
   */
  load(source: ModuleSource): Promise<FunctionModule> {
    return loadFunctionModule(
      source,
      this.loader,
      undefined,
      { fuel: this.fuel, maxMemoryBytes: memoryCapFor(undefined, this.maxMemoryBytes, this.dense) },
      this.dense,
    )
  }

  /**
   * Start an instance: load the module (or take the JS function), instantiate, run
   * `handle_init(initPayload, stored state)`, and return its handle. A crash in init rejects
   * with the `trap` error (and emits `crash`).
   *
   * @example
   * ```ts
   * const pong = await rt.spawn({ name: 'pong', module: './pong.wasm' })
   * ```
   */
  spawn(options: SpawnOptions): Promise<ActorRef> {
    return this.track(this.doSpawn(options))
  }

  private async doSpawn(o: SpawnOptions): Promise<ActorRef> {
    const p = await this.spawner.prepare(o)
    this.spawner.register(p)
    return this.spawner.activate(p)
  }

  /** Keep a start in flight known, so shutdown waits for it. */
  private track<T>(p: Promise<T>): Promise<T> {
    this.spawning.add(p)
    const done = () => {
      this.spawning.delete(p)
    }
    p.then(done, done)
    return p
  }

  /**
   * Send a message and do not wait. Messages from one sender to one instance are processed
   * in the order sent. Throws `unknown-instance` for an id that is not live.
   *
   * @example
   * ```ts
   * rt.cast(ping, 'wakeup')
   * ```
   */
  cast(target: Target, payload: Payload): void {
    const a = this.actorOf(target)
    const sys = this.sys
    // A short payload is copied into a reused array (lib/routing/ownership.ts), unless a
    // tracer records the messages (it keeps the payload).
    const pooled = sys.tracer !== null ? undefined : sys.bytes.copyPayload(payload)
    if (pooled !== undefined) sys.castTo(sys.hostId, sys.hostIdBytes, a, pooled, undefined, 0, true)
    else sys.castTo(sys.hostId, sys.hostIdBytes, a, ownBytes(payload))
  }

  /**
   * Call an instance and wait for its answer. Never rejects for the callee's sake: a
   * timeout, a crash, an Err answer or an unknown instance is `{ kind: 'err', error }`. It
   * rejects only for the caller's own mistake: `runtime-shutdown` once the runtime is shut down.
   *
   * @example
   * ```ts
   * const r = await rt.call(pong, 'PING', { timeoutMs: 100 })
   * ```
   */
  async call(target: Target, payload: Payload, options: CallOptions = {}): Promise<CallResult> {
    this.assertOpen()
    const bytes = ownBytes(payload)
    const a = this.sys.lookup(idOf(target))
    if (!a) return errResult('unknown-instance', `No live instance ${idOf(target).function} on this runtime.`)
    return this.sys.call(null, this.sys.hostId, this.sys.hostIdBytes, a, bytes, options.timeoutMs ?? this.callTimeoutMs)
  }

  /**
   * Stop an instance gracefully: the message being processed finishes, queued messages are
   * refused (dead letters; waiting callers get Err), timers are cancelled, `handle_stop` runs,
   * pending state writes are flushed. Stopping a stopped instance is a no-op.
   *
   * @example
   * ```ts
   * await rt.stop(ping)
   * ```
   */
  async stop(target: Target, options: StopOptions = {}): Promise<void> {
    const a = this.sys.actorAt(idOf(target))
    if (a) await a.stop(options)
  }

  /**
   * Change one alias of an instance's output mapping (upstream's `patch`); `null` removes it.
   *
   * @example
   * ```ts
   * rt.setOutput(ping, 'ponger', otherPong)
   * ```
   */
  setOutput(instance: Target, alias: string, target: Target | null): void {
    const a = this.actorOf(instance)
    const to = target === null ? null : this.spawner.checkTarget(target, alias)
    // The shared empty mapping is never written: the instance gets one of its own.
    if (a.outputs === NO_OUTPUTS) a.outputs = new Map()
    if (to === null) a.outputs.delete(alias)
    else a.outputs.set(alias, to)
  }

  /**
   * A snapshot of one instance, or `undefined` if it is not live.
   *
   * @example
   * ```ts
   * rt.inspect(pong)?.status // 'running'
   * ```
   */
  inspect(target: Target): InstanceInfo | undefined {
    const a = this.sys.actorAt(idOf(target))
    if (!a) return undefined
    return {
      name: a.name,
      id: a.id,
      status: a.status,
      mailbox: a.mailbox.length,
      busy: a.busy,
      ...(a.waitingOn ? { waitingOn: a.waitingOn.name } : {}),
      stateId: a.stateId,
      outputs: Object.fromEntries(a.outputs),
      ...(a.lastError ? { lastError: a.lastError } : {}),
      restarts: a.restarts,
      restartType: a.restartType,
      mailboxCapacity: a.mailboxCapacity,
      timers: a.pendingTimers,
    }
  }

  /**
   * Hibernate an idle instance spawned with `passivate` now (see {@link PassivationOptions}):
   * its `handle_stop` runs and its instance is released; its next message brings it back.
   * False when it is busy, has queued messages, is not running or does not passivate.
   *
   * @example
   * ```ts
   * const c = await rt.spawn({ name: 'c', module: './counter.wasm', passivate: true })
   * rt.hibernate(c) // true; rt.inspect(c)?.status === 'hibernated'
   * ```
   */
  hibernate(target: Target): boolean {
    return this.sys.actorAt(idOf(target))?.hibernate() ?? false
  }

  /**
   * Passivation counters: live passivating instances, hibernations and activations so far.
   *
   * @example
   * ```ts
   * const { active, activations } = rt.passivationStats()
   * ```
   */
  passivationStats(): PassivationStats {
    return this.passivator.stats()
  }

  /**
   * Every live instance.
   *
   * @example
   * ```ts
   * for (const i of rt.instances()) console.log(i.name, i.status)
   * ```
   */
  instances(): InstanceInfo[] {
    return [...this.sys.actors.values()].map((a) => this.inspect(a.id)!)
  }

  /**
   * Stop every instance (as {@link Runtime.stop}) and refuse further work. Idempotent.
   *
   * @example
   * ```ts
   * await rt.shutdown()
   * ```
   */
  async shutdown(): Promise<void> {
    this.spawner.close()
    this.passivator.close()
    this.spawner.root.shutdown()
    await Promise.allSettled([...this.spawning])
    await Promise.all([...this.workflows.values()].map((w) => w.stop()))
    await Promise.all([...this.sys.actors.values()].map((a) => a.stop()))
  }

  /**
   * Add a resource class (or replace one with the same `classType`), so workflows can name it.
   *
   * @example
   * ```ts
   * rt.registerResource({ classType: 'upper', create: () => ({ handleCall: (_s, m) => reply(utf8(m).toUpperCase()) }) })
   * ```
   */
  registerResource(cls: ResourceClass): void {
    if (!cls || typeof cls.classType !== 'string' || cls.classType === '' || typeof cls.create !== 'function') {
      throw new EdgelessError('invalid-argument', 'A resource class needs a non-empty `classType` and a `create(init)` function.')
    }
    this.classes.set(cls.classType, cls)
  }

  /** The registered resource class types. */
  resourceClasses(): string[] {
    return [...this.classes.keys()]
  }

  /**
   * Check a workflow without starting it: structure, names, output mappings, code (read,
   * compiled, checked against the ABI), resource classes and their configurations. Returns
   * every problem found (empty when it can start).
   *
   * @example
   * ```ts
   * for (const p of await rt.validateWorkflow('workflow.json')) console.error(formatProblem(p))
   * ```
   */
  async validateWorkflow(workflow: WorkflowSpec | string | URL, options: WorkflowOptions = {}): Promise<WorkflowProblem[]> {
    const { spec, file, problems, base } = await readWorkflow(workflow, this.loader)
    if (problems.length) return problems
    return (await checkWorkflow(this.workflowEnv, spec, { ...(base !== undefined ? { base } : {}), ...options }, file)).problems
  }

  /**
   * Validate and start a workflow (upstream's `workflow.json`, as an object, a path in Node,
   * or a URL): every function is spawned and initialised with its `init-payload`
   * annotation, every resource created, output mappings become aliases. Any problem throws
   * one `invalid-workflow` error listing them all, and nothing starts.
   *
   * Each function's state id is `<workflow name>/<function name>` (or its `state-id`
   * annotation), so starting the same workflow again with a persistent store resumes it.
   *
   * @example
   * ```ts
   * const wf = await rt.startWorkflow('examples/ping-pong/workflow.json')
   * await wf.stop()
   * ```
   */
  startWorkflow(workflow: WorkflowSpec | string | URL, options: WorkflowOptions = {}): Promise<WorkflowHandle> {
    return this.track(this.doStartWorkflow(workflow, options))
  }

  private async doStartWorkflow(workflow: WorkflowSpec | string | URL, options: WorkflowOptions): Promise<WorkflowHandle> {
    this.assertOpen()
    const { spec, file, problems: readProblems, base } = await readWorkflow(workflow, this.loader)
    const label = file !== undefined ? `Workflow ${file}` : 'The workflow'
    if (readProblems.length) throw workflowError(readProblems, label)
    const { problems, validated } = await checkWorkflow(this.workflowEnv, spec, { ...(base !== undefined ? { base } : {}), ...options }, file)
    if (problems.length) throw workflowError(problems, label)
    if (this.workflows.has(validated.name)) {
      throw new EdgelessError(
        'invalid-argument',
        `A workflow named "${validated.name}" already runs on this runtime. Stop it first, or pass a different { name } (the name also keys the workflow's state).`,
        { workflow: validated.name },
      )
    }
    this.assertOpen()
    // Reserve the name while starting, so two concurrent starts of one workflow cannot both run.
    const placeholder = {} as WorkflowHandle
    this.workflows.set(validated.name, placeholder)
    try {
      const h = await launchWorkflow(this.spawner, this, this.sys, this.nodeId, validated, options, (h) => {
        if (this.workflows.get(h.name) === h) this.workflows.delete(h.name)
        this.sys.emit('workflow-stop', { workflow: h.name, workflowId: h.id })
      })
      this.workflows.set(validated.name, h)
      this.sys.emit('workflow-start', { workflow: h.name, workflowId: h.id, instances: h.instances().map((i) => i.name) })
      return h
    } catch (e) {
      if (this.workflows.get(validated.name) === placeholder) this.workflows.delete(validated.name)
      throw e
    }
  }

  /**
   * The running workflows.
   *
   * @example
   * ```ts
   * for (const wf of rt.runningWorkflows()) await wf.stop()
   * ```
   */
  runningWorkflows(): WorkflowHandle[] {
    return [...this.workflows.values()].filter((w) => w instanceof WorkflowHandle)
  }

  /**
   * Install inspection hooks (see {@link Observer}): per-message start/finish with durations,
   * mailbox depth, timers, sends with trace ids. Returns the function that removes them.
   * Without observers every hook point costs one null check.
   *
   * @example
   * ```ts
   * const off = rt.observe({ finished: (a, kind, trace, ms) => console.log(a.name, kind, ms) })
   * off()
   * ```
   */
  observe(observer: Observer): () => void {
    this.observers.push(observer)
    this.installObservers()
    return () => {
      const i = this.observers.indexOf(observer)
      if (i >= 0) this.observers.splice(i, 1)
      this.installObservers()
    }
  }

  private readonly observers: Observer[] = []

  private installObservers(): void {
    const list = [...this.observers]
    if (list.length === 0) {
      this.sys.observer = null
      return
    }
    if (list.length === 1) {
      this.sys.observer = list[0]!
      return
    }
    // One observer that calls every installed one, hook by hook (OBSERVER_HOOKS is checked
    // against the Observer interface, so a new hook cannot be forgotten here).
    const fan: Record<string, (...args: unknown[]) => void> = {}
    for (const k of OBSERVER_HOOKS)
      fan[k] = (...args: unknown[]) => {
        for (const o of list) (o[k] as ((...a: unknown[]) => void) | undefined)?.(...args)
      }
    this.sys.observer = fan as Observer
  }

  /** The runtime's internals, for the test kit (`edgeless/testing`) and the inspector. Not a stable API. @internal */
  internals(): RuntimeInternals {
    return this.sys
  }

  private assertOpen(): void {
    this.spawner.assertOpen()
  }

  private actorOf(target: Target): Actor {
    const ref = target instanceof ActorRef && target.ownedBy(this) ? target : undefined
    const cached = ref?.actor
    if (cached !== undefined) {
      if (cached.status !== 'stopped') return cached
      ref!.actor = undefined // do not keep a stopped actor alive through a ref
    }
    const id = idOf(target)
    const a = id && this.sys.actorAt(id)
    if (!a)
      throw new EdgelessError('unknown-instance', `No live instance ${id?.function} on this runtime (stopped, or spawned on another runtime).`, { target: id })
    if (ref !== undefined) ref.actor = a
    return a
  }
}
