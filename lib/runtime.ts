import { EventEmitter } from 'eventemitter3'
import { memoryStore } from '../adapters/memory'
import type { StateStore } from '../adapters/types'
import { Actor, NO_OUTPUTS, DEFAULT_QUOTAS, type ActorStatus, type HostQuotas, type OverflowPolicy } from './actor'
import { checkRestartType, resolveSupervision, Supervisor, type RestartType, type SupervisionOptions } from './supervisor'
import { errResult, type CallResult } from './call-result'
import { realClock, type Clock } from './clock'
import { EdgelessError } from './errors'
import type { LogEvent, LogLevelName, RuntimeEvents } from './events'
import { isUuid, randomUuid, type InstanceId } from './ids'
import { JsGuest, type EdgeFunction } from './js-function'
import { ownBytes, toBytes, type Payload } from './payload'
import { System, type StatePolicy } from './system'
import { wallNow, type Observer } from './observer'
import { Passivator, type PassivationOptions, type PassivationStats } from './passivation'
import type { StateWriteOptions } from './state-writer'
import { WasmGuest } from './wasm/instance'
import type { GuestLimits } from './wasm/limits'
import type { Guest, GuestHost } from './guest'
import { fetchLoader, loadFunctionModule, type FunctionModule, type ModuleSource, type SourceLoader } from './wasm/loader'
import { denseFor } from './wasm/dense'
import { httpEgressResource } from './resources/http-egress'
import type { ResourceClass, WorkflowProblem } from './workflow/resource'
import { workflowError, type WorkflowSpec } from './workflow/spec'
import { checkWorkflow, launchWorkflow, WorkflowHandle, type WorkflowEnv, type WorkflowOptions } from './workflow/workflow'
import type { WarningEvent } from './events'
import { utf8Strict } from './payload'

/**
 * Options of a {@link Runtime}. Everything has an embedded default: in-memory state, the
 * real clock, a 5 s call timeout, logs on the console.
 *
 * @example
 * ```ts
 * const rt = new Runtime({ callTimeoutMs: 1000, consoleLog: 'warn' })
 * ```
 */
export interface RuntimeOptions {
  /** This node's id (a UUID); random by default. */
  nodeId?: string
  /** Time source for delayed casts and call timeouts. Default: {@link realClock}. */
  clock?: Clock
  /** Where `sync` writes state (both the node-local and the global policy, unless `stateStores` says otherwise). Default: a fresh in-memory store. */
  stateStore?: StateStore
  /** A store per state policy, e.g. `{ 'node-local': fileStore(...), global: redisStore(...) }`. Missing ones fall back to `stateStore`. */
  stateStores?: { 'node-local'?: StateStore; global?: StateStore }
  /** The policy of instances that do not choose one. Default `'node-local'`. */
  statePolicy?: StatePolicy
  /** Retries, buffer bound and flush timeout of state writes (see {@link StateWriteOptions}). */
  stateWrites?: StateWriteOptions
  /**
   * Optimistic concurrency: each instance remembers the version of the state it read, and its
   * writes only land if nobody else wrote in between (else a `state-conflict` event). For
   * runtimes sharing a global store. The stores must implement `setIfVersion`/`getVersioned`.
   */
  optimisticConcurrency?: boolean
  /** Default timeout of every call, in ms (gen_server's 5000). `Infinity` disables it. */
  callTimeoutMs?: number
  /** Reads string and URL module sources. The Node entry reads files; the core uses `fetch`. */
  loadSource?: SourceLoader
  /** Print logs, warnings and crashes on the console from this level up, or `false` for silence. Default `'info'`. */
  consoleLog?: LogLevelName | false
  /** How long stopping an instance waits for its running handler, in ms, before abandoning it. Default 5000. */
  stopTimeoutMs?: number
  /** Bytes of guest memory borrowed to save a guest's stack while it waits for a call. Default 16 KiB. */
  suspendBufferBytes?: number
  /** Fuel per invocation of every wasm guest (see {@link GuestLimits}). Default {@link DEFAULT_FUEL}; `Infinity` disables metering. */
  fuel?: number
  /** Memory cap of every wasm guest, in bytes. Default: none. */
  maxMemoryBytes?: number
  /** Host quotas of every instance (see {@link HostQuotas}). */
  quotas?: HostQuotas
  /**
   * Builds guests that run in a worker (`spawn({ isolation: 'worker' })`). The Node entry
   * provides one on `node:worker_threads`; the core has none.
   */
  isolate?: IsolateGuest
  /** Default mailbox capacity of every instance (messages). Default 10,000. */
  mailboxCapacity?: number
  /** Default overflow policy of every mailbox. Default `'reject'`. */
  overflow?: OverflowPolicy
  /** How the runtime supervises instances spawned outside a workflow (strategy is one_for_one). Default: 3 restarts in 5000 ms, 10 ms backoff doubling to 1 s. */
  supervision?: SupervisionOptions
  /** Resource classes to add to the built-in ones (see {@link Runtime.registerResource}). */
  resources?: ResourceClass[]
  /** Settings merged under every workflow resource's `configurations`, per class type, e.g. `{ 'http-ingress': { port: '8080' } }`. */
  resourceConfig?: Record<string, Record<string, string>>
  /** Resolves a workflow's `code` path against the workflow's location. The core treats both as URLs or POSIX paths; the Node entry uses `node:path`. */
  resolveRef?: (code: string, base: string | undefined) => string
  /** When instances spawned with `passivate: true` are hibernated (see {@link PassivationOptions}). Default: only on {@link Runtime.hibernate}. */
  passivation?: PassivationOptions
  /** Dense memory for every wasm instance (see {@link SpawnOptions.dense}). Default `false`. */
  dense?: boolean
}

/**
 * How to start an instance: a wasm `module` or a JS `fn`, a logical `name`, and optionally
 * its output mapping, init payload and state id.
 *
 * @example
 * ```ts
 * await rt.spawn({ name: 'pinger', module: './ping.wasm', outputs: { ponger: pong }, initPayload: 'period=100' })
 * ```
 */
export interface SpawnOptions {
  /** Logical name (used in logs and events). */
  name: string
  /** A wasm EDGELESS function. Exactly one of `module` and `fn`. */
  module?: ModuleSource
  /** A JS function, or a factory called once per instance (for per-instance closures). */
  fn?: EdgeFunction | (() => EdgeFunction)
  /** Alias -> target: what `cast("alias")` and `call("alias")` reach. */
  outputs?: Record<string, InstanceId | { readonly id: InstanceId }>
  /** Handed to `handle_init` (upstream's `init-payload` annotation). Empty means none. */
  initPayload?: Payload
  /** Key of the instance's state in the store. Default: the instance's function id (as upstream). */
  stateId?: string
  /** `transient`, `node-local` or `global` (see {@link StatePolicy}). Default: the runtime's. */
  statePolicy?: StatePolicy
  /** `'wait'`: after a handler that synced, the next message waits until the write is acknowledged. Default `'async'`. */
  sync?: 'async' | 'wait'
  /** The function id to use (a UUID); random by default. */
  functionId?: string
  /** Timeout of the calls this instance makes, in ms. Default: the runtime's. */
  callTimeoutMs?: number
  /** Fuel per invocation (wasm only). Default: the runtime's. `Infinity` disables metering. */
  fuel?: number
  /** Memory cap in bytes (wasm only). Default: the runtime's. */
  maxMemoryBytes?: number
  /**
   * Dense memory (wasm only): the instance lives in a region of a big memory shared with
   * other instances, instead of a memory of its own. A process then holds far more live
   * instances (V8 reserves 10 GiB of address space per memory, which caps own memories
   * near 13,000; dense ones reach 100,000 and beyond) and instantiates them several times
   * faster (no memory to allocate, no GC for it).
   *
   * The module is rewritten at load time: every load and store is confined to the
   * instance's region (a mask and a base), so instances stay isolated. Costs and limits:
   * - guest code runs somewhat slower (an `and` and an `add` per memory access; see the
   *   README's benchmark table);
   * - the memory has a cap: `maxMemoryBytes`, or by default twice the module's initial
   *   memory (at least 8 MiB more), at most 1 GiB; growth beyond it fails (`out-of-memory`);
   * - an access beyond the memory's size but inside its region does not trap (it cannot
   *   reach another instance either);
   * - modules with passive data segments, SIMD or atomic memory instructions, or an
   *   imported memory are refused (`invalid-module`); Rust and AssemblyScript guests have
   *   none (a start function, which AssemblyScript emits, runs once the instance is placed);
   * - inline isolation only, and the module must be given as bytes, a path or a URL.
   *
   * Default: the runtime's (`RuntimeOptions.dense`, default `false`). Workflow annotation:
   * `"dense": "true"`.
   *
   * @example
   * ```ts
   * const counter = await rt.load('./counter.wasm')
   * for (let i = 0; i < 100_000; i++) await rt.spawn({ name: `c${i}`, module: counter, dense: true })
   * ```
   */
  dense?: boolean
  /** When a crash (or a normal stop) restarts it: `transient` (default), `permanent` or `temporary`. */
  restart?: RestartType
  /** Host quotas of this instance, over the runtime's. */
  quotas?: HostQuotas
  /**
   * `'worker'` runs the wasm instance in its own worker thread: CPU-heavy functions run in
   * parallel, and a guest stuck past `deadlineMs` is terminated (then restarted by its
   * supervisor). Casts and calls keep every guarantee (ordering, timeouts, cycle detection).
   * Default `'inline'` (the caller's thread).
   */
  isolation?: 'inline' | 'worker'
  /** Wall-clock limit of one invocation of a worker-isolated instance, in ms. Default 30,000. */
  deadlineMs?: number
  /** Mailbox capacity in messages. Default: the runtime's (10,000). */
  mailboxCapacity?: number
  /** What a full mailbox does: `reject` the new message (default) or `drop-oldest`. */
  overflow?: OverflowPolicy
  /**
   * May be hibernated when idle (see {@link PassivationOptions}): `handle_stop` runs, the
   * instance is released, and the next message re-creates it with `handle_init(init payload,
   * last synced state)`. For functions whose state is all in `sync`. Default false.
   */
  passivate?: boolean
  /**
   * Register the instance hibernated, without instantiating it or reading its state: the
   * first message does both (a crash there goes to the supervisor, not to `spawn`). Spawning
   * a million addressable instances this way takes seconds. Implies `passivate`.
   */
  lazy?: boolean
}

/**
 * What an instance looks like from outside.
 *
 * @example
 * ```ts
 * console.log(rt.inspect(ref.id)?.mailbox)
 * ```
 */
export interface InstanceInfo {
  name: string
  id: InstanceId
  status: ActorStatus
  /** Messages waiting in the mailbox. */
  mailbox: number
  /** A handler is running or suspended. */
  busy: boolean
  /** Name of the instance this one is blocked on in a call, if any. */
  waitingOn?: string
  stateId: string
  outputs: Record<string, InstanceId>
  lastError?: EdgelessError
  /** Times it was restarted at this address. */
  restarts: number
  restartType: RestartType
  mailboxCapacity: number
  /** Delayed casts scheduled and not yet fired. */
  timers: number
}

/** Options of {@link Runtime.stop}. */
export interface StopOptions {
  /** Process the messages already queued before stopping (new ones are refused meanwhile). Default false: they are dead-lettered. */
  drain?: boolean
}

/** Options of a single call. */
export interface CallOptions {
  /** Override the runtime's call timeout for this call, in ms. */
  timeoutMs?: number
}

type Target = InstanceId | { readonly id: InstanceId }

/**
 * Builds a guest that runs `fm` outside the caller's thread for `host`, with `limits`, and
 * terminates it when one invocation exceeds `deadlineMs`.
 */
export type IsolateGuest = (fm: FunctionModule, host: GuestHost, limits: GuestLimits, deadlineMs: number) => Promise<Guest>

/**
 * Fuel per invocation when none is configured: generous (hundreds of milliseconds of guest
 * work), but finite, so an infinite loop ends as an `out-of-fuel` crash instead of a hang.
 */
export const DEFAULT_FUEL = 1_000_000_000

/** An instance built but not yet initialised (see {@link Runtime.prepareSpawn}). @internal */
export interface PreparedSpawn {
  readonly actor: Actor
  readonly payload: Uint8Array | undefined
  readonly state: Uint8Array | undefined
  readonly options: SpawnOptions
  /** Registered hibernated, instantiated by its first message. */
  readonly lazy: boolean
}

const LEVEL_RANK: Record<LogLevelName, number> = { error: 1, warn: 2, info: 3, debug: 4, trace: 5 }

/**
 * A handle on a spawned instance: its address plus shortcuts to the runtime's methods.
 *
 * @example
 * ```ts
 * const pong = await rt.spawn({ name: 'pong', module: bytes })
 * const r = await pong.call('hi')
 * await pong.stop()
 * ```
 */
export class ActorRef {
  /** @internal */
  constructor(private readonly rt: Runtime, readonly id: InstanceId, readonly name: string, actor?: Actor) {
    this.actor = actor
  }
  /**
   * @internal The actor this ref was made for, while it lives: `runtime.cast(ref)` and
   * friends skip the id lookup (~8 ns of a cast). Checked against its status and runtime;
   * a permanent instance re-spawned at the same address is found by id and cached again.
   * Dropped when found stopped; until then a ref held to a stopped instance keeps its actor
   * object (its guest and memory are released at the stop).
   */
  actor: Actor | undefined
  /** @internal */
  ownedBy(rt: Runtime): boolean {
    return this.rt === rt
  }
  /** Fire and forget. */
  cast(payload: Payload): void {
    this.rt.cast(this, payload)
  }
  /** Call and wait for the answer. */
  call(payload: Payload, options?: CallOptions): Promise<CallResult> {
    return this.rt.call(this, payload, options)
  }
  /** Stop gracefully (see {@link Runtime.stop}). */
  stop(options?: StopOptions): Promise<void> {
    return this.rt.stop(this, options)
  }
  /** Point `alias` at another instance, or remove it with `null`. */
  setOutput(alias: string, target: Target | null): void {
    this.rt.setOutput(this, alias, target)
  }
  /** Current status; `stopped` once it is gone. */
  get status(): ActorStatus {
    return this.rt.inspect(this)?.status ?? 'stopped'
  }
}

const idOf = (t: Target): InstanceId => ('id' in t && typeof t.id === 'object' ? t.id : (t as InstanceId))

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
export class Runtime extends EventEmitter<RuntimeEvents> {
  /** This node's id; every instance id carries it. */
  readonly nodeId: string
  private readonly sys: System
  private readonly loader: SourceLoader
  private readonly callTimeoutMs: number
  private readonly suspendBufferBytes: number
  private readonly stopTimeoutMs: number
  private closed = false
  private readonly spawning = new Set<Promise<unknown>>()
  private readonly classes = new Map<string, ResourceClass>()
  private readonly workflows = new Map<string, WorkflowHandle>()
  private readonly workflowEnv: WorkflowEnv
  private readonly mailboxCapacity: number
  private readonly overflow: OverflowPolicy
  private readonly fuel: number
  private readonly statePolicy: StatePolicy
  private readonly quotas: Required<HostQuotas>
  private readonly isolate: IsolateGuest | undefined
  private readonly optimistic: boolean
  private readonly maxMemoryBytes: number | undefined
  private readonly dense: boolean
  private readonly passivator: Passivator
  /** Supervises instances spawned outside workflows. */
  private readonly root: Supervisor
  private readonly specs = new WeakMap<Actor, SpawnOptions>()

  constructor(options: RuntimeOptions = {}) {
    super()
    this.nodeId = options.nodeId ?? randomUuid()
    if (!isUuid(this.nodeId)) throw new EdgelessError('invalid-argument', `nodeId must be a UUID, got ${JSON.stringify(options.nodeId)}.`)
    this.callTimeoutMs = options.callTimeoutMs ?? 5000
    if (!(this.callTimeoutMs > 0)) throw new EdgelessError('invalid-argument', `callTimeoutMs must be a positive number of milliseconds (or Infinity), got ${options.callTimeoutMs}.`)
    this.loader = options.loadSource ?? fetchLoader
    this.suspendBufferBytes = options.suspendBufferBytes ?? 16 * 1024
    this.stopTimeoutMs = options.stopTimeoutMs ?? 5000
    const fallback = options.stateStore ?? memoryStore()
    const stores = { nodeLocal: options.stateStores?.['node-local'] ?? fallback, global: options.stateStores?.global ?? fallback }
    this.statePolicy = checkPolicy(options.statePolicy ?? 'node-local', 'statePolicy')
    this.optimistic = options.optimisticConcurrency === true
    if (this.optimistic) {
      for (const [policy, st] of Object.entries(stores)) {
        if (typeof st.setIfVersion !== 'function' || typeof st.getVersioned !== 'function') throw new EdgelessError('invalid-argument', `optimisticConcurrency needs stores with versions (setIfVersion and getVersioned); the ${policy === 'nodeLocal' ? 'node-local' : 'global'} store has none. Use the memory, redis or sqlite adapter, or turn it off.`)
      }
    }
    this.sys = new System(this.nodeId, options.clock ?? realClock, stores, this, options.stateWrites)
    this.fuel = options.fuel ?? DEFAULT_FUEL
    this.quotas = { ...DEFAULT_QUOTAS, ...options.quotas }
    this.isolate = options.isolate
    this.maxMemoryBytes = options.maxMemoryBytes
    if (options.dense !== undefined && typeof options.dense !== 'boolean') throw new EdgelessError('invalid-argument', `RuntimeOptions.dense must be a boolean, got ${JSON.stringify(options.dense)}.`)
    this.dense = options.dense === true
    this.mailboxCapacity = checkCapacity(options.mailboxCapacity ?? 10_000, 'mailboxCapacity')
    this.overflow = checkOverflow(options.overflow ?? 'reject', 'overflow')
    this.passivator = new Passivator(this.sys.clock, options.passivation ?? {})
    // Resolved whole (so a bad strategy is refused), then used one_for_one: the standalone
    // instances are unrelated.
    this.root = new Supervisor(this.sys, undefined, { ...resolveSupervision(options.supervision), strategy: 'one_for_one' }, (reason, history, child) => {
      // Outside a workflow there is nothing to stop but the instance that crashed too often.
      this.sys.emit('escalation', { name: child.name, instance: child.id, reason, history })
      child.giveUp(reason)
    })
    this.registerResource(httpEgressResource)
    for (const cls of options.resources ?? []) this.registerResource(cls)
    this.workflowEnv = {
      loader: this.loader,
      resolveRef: options.resolveRef ?? resolveRef,
      resourceClass: (t) => this.classes.get(t),
      resourceClasses: () => [...this.classes.keys()],
      resourceConfig: options.resourceConfig ?? {},
      limits: { fuel: options.fuel ?? DEFAULT_FUEL, maxMemoryBytes: options.maxMemoryBytes },
      dense: this.dense,
    }
    const level = options.consoleLog ?? 'info'
    if (level !== false) this.attachConsole(LEVEL_RANK[level])
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
    return loadFunctionModule(source, this.loader, undefined, { fuel: this.fuel, maxMemoryBytes: this.maxMemoryBytes }, this.dense)
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
    const p = this.doSpawn(options)
    this.spawning.add(p)
    const done = () => { this.spawning.delete(p) }
    p.then(done, done)
    return p
  }

  private async doSpawn(o: SpawnOptions): Promise<ActorRef> {
    const p = await this.prepareSpawn(o)
    this.registerPrepared(p)
    return this.activatePrepared(p)
  }

  /**
   * Everything of a spawn that can fail before the instance exists: options, module,
   * instantiation, reading the stored state. Nothing is registered yet.
   * @internal
   */
  async prepareSpawn(o: SpawnOptions): Promise<PreparedSpawn> {
    this.assertOpen()
    if (!o || typeof o.name !== 'string' || o.name === '') throw new EdgelessError('invalid-argument', 'spawn needs a non-empty `name`.')
    if ((o.module === undefined) === (o.fn === undefined)) throw new EdgelessError('invalid-argument', `spawn("${o.name}") needs exactly one of \`module\` (wasm) and \`fn\` (a JS function).`)
    const functionId = o.functionId ?? randomUuid()
    if (!isUuid(functionId)) throw new EdgelessError('invalid-argument', `functionId must be a UUID, got ${JSON.stringify(functionId)}.`)
    if (this.sys.actors.has(functionId)) throw new EdgelessError('invalid-argument', `An instance with function id ${functionId} already runs.`)
    const given = Object.entries(o.outputs ?? {})
    const outputs = given.length === 0 ? (NO_OUTPUTS as Map<string, InstanceId>) : new Map<string, InstanceId>()
    for (const [alias, t] of given) outputs.set(alias, this.checkTarget(t, `outputs.${alias}`))
    const limits: GuestLimits = { fuel: o.fuel ?? this.fuel, maxMemoryBytes: o.maxMemoryBytes ?? this.maxMemoryBytes }
    if (o.dense !== undefined && typeof o.dense !== 'boolean') throw new EdgelessError('invalid-argument', `spawn("${o.name}").dense must be a boolean, got ${JSON.stringify(o.dense)}.`)
    const dense = denseFor(o.dense, this.dense, o.isolation)
    if (dense && o.isolation === 'worker') throw new EdgelessError('invalid-argument', `spawn("${o.name}"): dense memory and worker isolation do not go together (a worker per instance defeats density); choose one.`)
    const fm = o.module !== undefined ? await loadFunctionModule(o.module, this.loader, `function "${o.name}"`, limits, dense) : undefined
    const restartType = checkRestartType(o.restart, `spawn("${o.name}").restart`)
    const statePolicy = checkPolicy(o.statePolicy ?? this.statePolicy, `spawn("${o.name}").statePolicy`)
    if (o.sync !== undefined && o.sync !== 'async' && o.sync !== 'wait') throw new EdgelessError('invalid-argument', `spawn("${o.name}").sync must be 'async' or 'wait', got ${JSON.stringify(o.sync)}.`)
    const mailboxCapacity = checkCapacity(o.mailboxCapacity ?? this.mailboxCapacity, `spawn("${o.name}").mailboxCapacity`)
    const overflow = checkOverflow(o.overflow ?? this.overflow, `spawn("${o.name}").overflow`)
    const payload = o.initPayload === undefined ? undefined : toBytes(o.initPayload)
    let actor: Actor
    // A restart builds a fresh guest the same way: a new wasm instance (new memory), or the
    // JS function again (a factory is called again; a plain object is reused).
    const isolation = o.isolation ?? 'inline'
    if (isolation !== 'inline' && isolation !== 'worker') throw new EdgelessError('invalid-argument', `spawn("${o.name}").isolation must be 'inline' or 'worker', got ${JSON.stringify(o.isolation)}.`)
    if (isolation === 'worker' && !fm) throw new EdgelessError('invalid-argument', `spawn("${o.name}"): worker isolation runs wasm modules; a JS function runs inline.`)
    if (isolation === 'worker' && !this.isolate) throw new EdgelessError('invalid-argument', `spawn("${o.name}"): worker isolation needs a worker implementation; use the Node entry (import { Runtime } from 'edgeless' in Node) or pass RuntimeOptions.isolate.`)
    const lazy = o.lazy === true
    const passivate = lazy || o.passivate === true
    if (o.passivate !== undefined && typeof o.passivate !== 'boolean') throw new EdgelessError('invalid-argument', `spawn("${o.name}").passivate must be a boolean, got ${JSON.stringify(o.passivate)}.`)
    if (o.lazy !== undefined && typeof o.lazy !== 'boolean') throw new EdgelessError('invalid-argument', `spawn("${o.name}").lazy must be a boolean, got ${JSON.stringify(o.lazy)}.`)
    const deadlineMs = o.deadlineMs ?? 30_000
    if (!(deadlineMs > 0)) throw new EdgelessError('invalid-argument', `spawn("${o.name}").deadlineMs must be a positive number of milliseconds, got ${o.deadlineMs}.`)
    const makeGuest = fm
      ? this.wasmGuestFactory(fm, isolation, limits, deadlineMs)
      : () => new JsGuest(typeof o.fn === 'function' ? o.fn() : o.fn!, actor)
    actor = new Actor(this.sys, {
      name: o.name,
      id: { node: this.nodeId, function: functionId },
      stateId: o.stateId ?? functionId,
      callTimeoutMs: o.callTimeoutMs ?? this.callTimeoutMs,
      stopTimeoutMs: this.stopTimeoutMs,
      outputs,
      restartType, mailboxCapacity, overflow, makeGuest,
      initPayload: payload && payload.length ? payload : undefined,
      statePolicy,
      // Shared unless overridden (a million instances need not hold a million copies).
      quotas: o.quotas ? { ...this.quotas, ...o.quotas } : this.quotas,
      syncMode: o.sync === 'wait' ? 'wait' : 'async',
      stateVersion: undefined,
      passivator: passivate ? this.passivator : null,
      readState: this.readState,
    })
    // A lazy instance is instantiated, and reads its state, on its first message.
    if (lazy) return { actor, payload: actor.initPayload, state: undefined, options: o, lazy }
    const t0 = this.sys.observer ? wallNow() : 0
    actor.guest = await makeGuest(actor)
    this.sys.observer?.instantiated?.(actor, wallNow() - t0)
    const state = await this.readState(actor)
    return { actor, payload: actor.initPayload, state, options: o, lazy }
  }

  /** Guest factories by module and limits: instances spawned alike share one (no closure per instance). */
  private readonly factories = new WeakMap<FunctionModule, Map<string, (a: Actor) => Promise<Guest>>>()

  private wasmGuestFactory(fm: FunctionModule, isolation: 'inline' | 'worker', limits: GuestLimits, deadlineMs: number): (a: Actor) => Promise<Guest> {
    const key = `${isolation}:${limits.fuel}:${limits.maxMemoryBytes}:${deadlineMs}`
    let byKey = this.factories.get(fm)
    if (!byKey) this.factories.set(fm, (byKey = new Map()))
    let f = byKey.get(key)
    if (!f) {
      const isolate = this.isolate
      const suspendBytes = this.suspendBufferBytes
      f = async (actor: Actor) => {
        try {
          if (isolation === 'worker') return await isolate!(fm, actor, limits, deadlineMs)
          return await WasmGuest.create(fm, actor, suspendBytes, limits)
        } catch (e) {
          throw new EdgelessError('invalid-module', `Instantiating function "${actor.name}" failed: ${(e as Error).message}.`, { name: actor.name }, { cause: e })
        }
      }
      byKey.set(key, f)
    }
    return f
  }

  /**
   * Read an instance's state from its policy's store, after the writes already issued for
   * it; with optimistic concurrency, remember the version read. Shared by every actor (one
   * function, not a closure per instance).
   */
  private readonly readState = async (actor: Actor): Promise<Uint8Array | undefined> => {
    if (actor.statePolicy === 'transient') return undefined
    await this.sys.flushState(actor.stateId)
    let state: Uint8Array | undefined
    try {
      const store = this.sys.storeFor(actor.statePolicy)
      if (this.optimistic) {
        const v = await store.getVersioned!(actor.stateId)
        state = v?.data
        actor.stateVersion = v?.version ?? 0
      } else {
        state = (await store.get(actor.stateId)) ?? undefined
      }
    } catch (e) {
      throw new EdgelessError('state-store-failed', `Reading the state of "${actor.name}" (state id ${actor.stateId}) failed: ${(e as Error).message}. Check the state store.`, { stateId: actor.stateId }, { cause: e })
    }
    return state && state.length ? state : undefined
  }

  /**
   * Make a prepared instance addressable: messages sent to it from now on queue up and are
   * processed once its init has run.
   * @internal
   */
  registerPrepared(p: PreparedSpawn, supervisor: Supervisor = this.root): void {
    this.assertOpen()
    if (this.sys.actors.has(p.actor.id.function)) throw new EdgelessError('invalid-argument', `An instance with function id ${p.actor.id.function} already runs.`)
    this.sys.actors.set(p.actor.id.function, p.actor)
    // Kept to re-spawn a permanent instance after a normal stop; nothing else needs it.
    if (p.actor.restartType === 'permanent') this.specs.set(p.actor, p.options)
    supervisor.add(p.actor)
    p.actor.onStopped = (a) => a.supervisor?.childStoppedNormally(a, () => this.respawn(a))
  }

  /** A permanent instance stopped on its own: a fresh one at the same address, with its last state. */
  private async respawn(old: Actor): Promise<void> {
    const spec = this.specs.get(old)
    const sup = old.supervisor
    if (!spec || !sup || this.closed || this.sys.actors.has(old.id.function)) return
    try {
      const p = await this.prepareSpawn({ ...spec, lazy: false, passivate: spec.passivate === true || spec.lazy === true, functionId: old.id.function, outputs: Object.fromEntries(old.outputs), stateId: old.stateId })
      if (this.closed || sup.stopping || this.sys.actors.has(old.id.function)) return
      this.sys.actors.set(old.id.function, p.actor)
      this.specs.set(p.actor, spec)
      sup.replace(old, p.actor)
      p.actor.onStopped = old.onStopped
      p.actor.restarts = old.restarts + 1
      const ok = await p.actor.init(p.payload, old.lastState ?? p.state, false)
      if (ok) this.sys.emit('restart', { name: p.actor.name, instance: p.actor.id, restarts: p.actor.restarts })
    } catch (e) {
      sup.remove(old)
      const error = e instanceof EdgelessError ? e : new EdgelessError('invalid-module', `Re-spawning "${old.name}" failed: ${(e as Error)?.message ?? e}`, {}, { cause: e })
      this.sys.emit('crash', { name: old.name, instance: old.id, handler: 'init', trap: 'other', error })
    }
  }

  /**
   * Run handle_init of a registered instance. On a crash the instance is removed and the
   * crash error is thrown.
   * @internal
   */
  async activatePrepared(p: PreparedSpawn): Promise<ActorRef> {
    const { actor } = p
    if (p.lazy) {
      actor.park()
    } else {
      const ok = await actor.init(p.payload, p.state)
      if (!ok) {
        actor.discard()
        throw actor.lastError!
      }
      if (actor.status === 'running') actor.passivator?.live(actor)
    }
    this.sys.emit('spawn', { name: actor.name, instance: actor.id })
    return new ActorRef(this, actor.id, actor.name, actor)
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
    // A short payload is copied into a reused array (lib/byte-pool.ts), unless a tracer
    // records the messages (it keeps the payload).
    const pooled = sys.tracer !== null ? undefined : payload instanceof Uint8Array ? sys.bytes.copyBytes(payload) : typeof payload === 'string' ? sys.bytes.copyString(payload) : undefined
    if (pooled !== undefined) sys.castTo(sys.hostId, sys.hostIdBytes, a, pooled, undefined, 0, true)
    else sys.castTo(sys.hostId, sys.hostIdBytes, a, ownBytes(payload))
  }

  /**
   * Call an instance and wait for its answer. Never rejects for the callee's sake: a
   * timeout, a crash or an Err answer is `{ kind: 'err', error }`.
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
    const a = this.sys.lookup(idOf(target))
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
    const to = target === null ? null : this.checkTarget(target, alias)
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
    const a = this.sys.lookup(idOf(target))
    if (!a) return undefined
    return {
      name: a.name, id: a.id, status: a.status, mailbox: a.mailbox.length, busy: a.busy,
      ...(a.waitingOn ? { waitingOn: a.waitingOn.name } : {}),
      stateId: a.stateId, outputs: Object.fromEntries(a.outputs),
      ...(a.lastError ? { lastError: a.lastError } : {}),
      restarts: a.restarts, restartType: a.restartType, mailboxCapacity: a.mailboxCapacity, timers: a.pendingTimers,
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
    return this.sys.lookup(idOf(target))?.hibernate() ?? false
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
    this.closed = true
    this.passivator.close()
    this.root.shutdown()
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
    const { spec, file, problems, base } = await this.readWorkflow(workflow)
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
    const p = this.doStartWorkflow(workflow, options)
    this.spawning.add(p)
    const done = () => { this.spawning.delete(p) }
    p.then(done, done)
    return p
  }

  private async doStartWorkflow(workflow: WorkflowSpec | string | URL, options: WorkflowOptions): Promise<WorkflowHandle> {
    this.assertOpen()
    const { spec, file, problems: readProblems, base } = await this.readWorkflow(workflow)
    const label = file !== undefined ? `Workflow ${file}` : 'The workflow'
    if (readProblems.length) throw workflowError(readProblems, label)
    const { problems, validated } = await checkWorkflow(this.workflowEnv, spec, { ...(base !== undefined ? { base } : {}), ...options }, file)
    if (problems.length) throw workflowError(problems, label)
    if (this.workflows.has(validated.name)) {
      throw new EdgelessError('invalid-argument', `A workflow named "${validated.name}" already runs on this runtime. Stop it first, or pass a different { name } (the name also keys the workflow's state).`, { workflow: validated.name })
    }
    this.assertOpen()
    // Reserve the name while starting, so two concurrent starts of one workflow cannot both run.
    const placeholder = {} as WorkflowHandle
    this.workflows.set(validated.name, placeholder)
    try {
      const h = await launchWorkflow(this, this.sys, validated, options, (h) => {
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

  private async readWorkflow(workflow: WorkflowSpec | string | URL): Promise<{ spec: unknown; file?: string; base?: string; problems: WorkflowProblem[] }> {
    if (typeof workflow !== 'string' && !(workflow instanceof URL)) return { spec: workflow, problems: [] }
    const file = typeof workflow === 'string' ? workflow : workflow.href
    const problem = (message: string): WorkflowProblem[] => [{ file, entity: 'workflow', field: '(file)', message }]
    let bytes: Uint8Array
    try {
      bytes = await this.loader(workflow)
    } catch (e) {
      return { spec: undefined, file, base: file, problems: problem(`cannot read the workflow file: ${(e as Error).message}; check the path`) }
    }
    const text = utf8Strict(bytes)
    if (text === undefined) return { spec: undefined, file, base: file, problems: problem('is not UTF-8 text; a workflow is a JSON file') }
    try {
      return { spec: JSON.parse(text), file, base: file, problems: [] }
    } catch (e) {
      return { spec: undefined, file, base: file, problems: problem(`is not valid JSON (${(e as Error).message}); fix the syntax`) }
    }
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
    if (list.length === 0) { this.sys.observer = null; return }
    if (list.length === 1) { this.sys.observer = list[0]!; return }
    const fan = <K extends keyof Observer>(k: K) => (...args: unknown[]) => { for (const o of list) (o[k] as ((...a: unknown[]) => void) | undefined)?.(...args) }
    this.sys.observer = { enqueued: fan('enqueued'), started: fan('started'), finished: fan('finished'), timer: fan('timer'), instantiated: fan('instantiated'), sent: fan('sent') }
  }

  /** The runtime's internals, for the test kit (`edgeless/testing`). Not a stable API. @internal */
  internals(): System {
    return this.sys
  }

  /** @internal */
  emitWarning(ev: WarningEvent): void {
    this.sys.emit('warning', ev)
  }

  private assertOpen(): void {
    if (this.closed) throw new EdgelessError('runtime-shutdown', 'The runtime has been shut down; create a new Runtime.')
  }

  private actorOf(target: Target): Actor {
    const ref = target instanceof ActorRef && target.ownedBy(this) ? target : undefined
    const cached = ref?.actor
    if (cached !== undefined) {
      if (cached.status !== 'stopped') return cached
      ref!.actor = undefined // do not keep a stopped actor alive through a ref
    }
    const id = idOf(target)
    const a = id && this.sys.lookup(id)
    if (!a) throw new EdgelessError('unknown-instance', `No live instance ${id?.function} on this runtime (stopped, or spawned on another runtime).`, { target: id })
    if (ref !== undefined) ref.actor = a
    return a
  }

  private checkTarget(t: Target, what: string): InstanceId {
    const id = t ? idOf(t) : undefined
    if (!id || !isUuid(id.node) || !isUuid(id.function)) throw new EdgelessError('invalid-argument', `${what} must be an InstanceId or an ActorRef, got ${JSON.stringify(t)}.`)
    return { node: id.node, function: id.function }
  }

  private attachConsole(rank: number): void {
    const short = (id: InstanceId) => id.function.slice(0, 8)
    this.on('log', (e: LogEvent) => {
      if (e.level > rank) return
      const line = `[edgeless] ${e.levelName.toUpperCase()} ${e.name}(${short(e.instance)}) ${e.target}: ${e.text}`
      if (e.level === 1) console.error(line)
      else if (e.level === 2) console.warn(line)
      else console.log(line)
    })
    if (rank >= 1) this.on('state-lost', (e) => console.error(`[edgeless] ERROR ${e.error.message}`))
    if (rank >= 1) this.on('crash', (e) => console.error(`[edgeless] CRASH ${e.name}(${short(e.instance)}) in ${e.handler}: ${e.error.message}`))
    if (rank >= 2) {
      this.on('warning', (e) => console.warn(`[edgeless] WARN ${e.name}(${short(e.instance)}): ${e.message}`))
      this.on('call-timeout', (e) => console.warn(`[edgeless] WARN ${e.error.message}`))
      this.on('call-cycle', (e) => console.warn(`[edgeless] WARN ${e.error.message}`))
      this.on('state-sync-failed', (e) => console.warn(`[edgeless] WARN ${e.error.message}`))
      this.on('state-conflict', (e) => console.warn(`[edgeless] WARN ${e.error.message}`))
    }
  }
}

/**
 * Resolve a workflow's `code` against the workflow's location: URLs (`https:`, `file:`)
 * with URL rules, otherwise as POSIX paths relative to the workflow file's folder.
 */
function resolveRef(code: string, base: string | undefined): string {
  if (/^[a-z][a-z0-9+.-]+:/i.test(code) || base === undefined) return code
  if (/^[a-z][a-z0-9+.-]+:/i.test(base)) return new URL(code, base).href
  if (code.startsWith('/')) return code
  const slash = base.lastIndexOf('/')
  return slash < 0 ? code : `${base.slice(0, slash + 1)}${code}`
}

function checkCapacity(n: number, what: string): number {
  if (!(Number.isInteger(n) && n >= 1) && n !== Infinity) throw new EdgelessError('invalid-argument', `${what} must be a positive integer (or Infinity), got ${n}.`)
  return n
}

function checkOverflow(p: string, what: string): OverflowPolicy {
  if (p !== 'reject' && p !== 'drop-oldest') throw new EdgelessError('invalid-argument', `${what} must be 'reject' or 'drop-oldest', got ${JSON.stringify(p)}.`)
  return p
}

function checkPolicy(p: string, what: string): StatePolicy {
  if (p !== 'transient' && p !== 'node-local' && p !== 'global') throw new EdgelessError('invalid-argument', `${what} must be 'transient', 'node-local' or 'global', got ${JSON.stringify(p)}.`)
  return p
}
