/**
 * How instances come to be: a spawn is prepared (everything that can fail before the
 * instance exists), registered (addressable), then activated (`handle_init`); a permanent
 * instance that stopped normally is re-spawned here too, when its supervisor says so.
 * Workflows start their members through the same three steps.
 * @packageDocumentation
 */
import { Actor, NO_OUTPUTS } from '../actor/actor'
import type { Passivator } from '../actor/passivation'
import { EdgelessError } from '../errors'
import type { Guest, GuestHost } from '../guest'
import { isUuid, randomUuid, type InstanceId } from '../ids'
import { JsGuest } from '../js-function'
import { wallNow } from '../observer'
import {
  checkCapacity,
  checkEnum,
  checkMaxInvocationMs,
  denseConflict,
  memoryCapFor,
  type HostQuotas,
  type IsolateGuest,
  type OverflowPolicy,
  type SpawnOptions,
  type StatePolicy,
} from '../options'
import { toBytes } from '../payload'
import { checkRestartType, type Supervisor } from '../supervision/supervisor'
import { denseFor } from '../wasm/dense'
import { WasmGuest } from '../wasm/instance'
import type { GuestLimits } from '../wasm/limits'
import { loadFunctionModule, type FunctionModule, type SourceLoader } from '../wasm/loader'
import { ActorRef, idOf, type RefOwner, type Target } from './actor-ref'
import type { System } from './system'

/** An instance built but not yet initialised (see {@link Spawner.prepare}). @internal */
export interface PreparedSpawn {
  readonly actor: Actor
  readonly payload: Uint8Array | undefined
  readonly state: Uint8Array | undefined
  readonly options: SpawnOptions
  /** Registered hibernated, instantiated by its first message. */
  readonly lazy: boolean
}

/** The runtime's defaults a spawn falls back on. @internal */
export interface SpawnDefaults {
  readonly nodeId: string
  readonly loader: SourceLoader
  readonly callTimeoutMs: number
  readonly stopTimeoutMs: number
  readonly suspendBufferBytes: number
  readonly fuel: number
  readonly maxMemoryBytes: number | undefined
  readonly maxInvocationMs: number
  readonly dense: boolean
  readonly quotas: Required<HostQuotas>
  readonly mailboxCapacity: number
  readonly overflow: OverflowPolicy
  readonly statePolicy: StatePolicy
  readonly isolate: IsolateGuest | undefined
  readonly passivator: Passivator
}

/**
 * Prepares, registers, activates and re-spawns instances for a runtime (and its workflows).
 *
 * @example
 * ```ts
 * const p = await spawner.prepare({ name: 'pong', module })
 * spawner.register(p)
 * const ref = await spawner.activate(p)
 * ```
 * @internal
 */
export class Spawner {
  private closed = false
  /** Kept to re-spawn a permanent instance after a normal stop; nothing else needs it. */
  private readonly specs = new WeakMap<Actor, SpawnOptions>()
  /** Guest factories by module and limits: instances spawned alike share one (no closure per instance). */
  private readonly factories = new WeakMap<FunctionModule, Map<string, (host: GuestHost) => Promise<Guest>>>()

  constructor(
    private readonly sys: System,
    private readonly d: SpawnDefaults,
    /** Supervises instances spawned outside workflows. */
    readonly root: Supervisor,
    /** Whom the refs it hands out forward to (the runtime). */
    private readonly owner: RefOwner,
  ) {}

  /** Refuse further work (the runtime shut down). */
  close(): void {
    this.closed = true
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** Throws `runtime-shutdown` once closed. */
  assertOpen(): void {
    if (this.closed) throw new EdgelessError('runtime-shutdown', 'The runtime has been shut down; create a new Runtime.')
  }

  /** Check an output target: an InstanceId or an ActorRef; throws `invalid-argument` naming `what`. */
  checkTarget(t: Target, what: string): InstanceId {
    const id = t ? idOf(t) : undefined
    if (!id || !isUuid(id.node) || !isUuid(id.function))
      throw new EdgelessError('invalid-argument', `${what} must be an InstanceId or an ActorRef, got ${JSON.stringify(t)}.`)
    return { node: id.node, function: id.function }
  }

  /**
   * Everything of a spawn that can fail before the instance exists: options, module,
   * instantiation, reading the stored state. Nothing is registered yet.
   */
  async prepare(o: SpawnOptions): Promise<PreparedSpawn> {
    this.assertOpen()
    const d = this.d
    if (!o || typeof o.name !== 'string' || o.name === '') throw new EdgelessError('invalid-argument', 'spawn needs a non-empty `name`.')
    if ((o.module === undefined) === (o.fn === undefined))
      throw new EdgelessError('invalid-argument', `spawn("${o.name}") needs exactly one of \`module\` (wasm) and \`fn\` (a JS function).`)
    const where = `spawn("${o.name}")`
    const functionId = o.functionId ?? randomUuid()
    if (!isUuid(functionId)) throw new EdgelessError('invalid-argument', `functionId must be a UUID, got ${JSON.stringify(functionId)}.`)
    if (this.sys.actors.has(functionId)) throw new EdgelessError('invalid-argument', `An instance with function id ${functionId} already runs.`)
    const given = Object.entries(o.outputs ?? {})
    const outputs = given.length === 0 ? (NO_OUTPUTS as Map<string, InstanceId>) : new Map<string, InstanceId>()
    for (const [alias, t] of given) outputs.set(alias, this.checkTarget(t, `outputs.${alias}`))
    if (o.dense !== undefined && typeof o.dense !== 'boolean')
      throw new EdgelessError('invalid-argument', `${where}.dense must be a boolean, got ${JSON.stringify(o.dense)}.`)
    const dense = denseFor(o.dense, d.dense, o.isolation)
    const limits: GuestLimits = { fuel: o.fuel ?? d.fuel, maxMemoryBytes: memoryCapFor(o.maxMemoryBytes, d.maxMemoryBytes, dense) }
    const conflict = denseConflict(dense, o.isolation)
    if (conflict) throw new EdgelessError('invalid-argument', `${where}: ${conflict}; choose one.`)
    const fm = o.module !== undefined ? await loadFunctionModule(o.module, d.loader, `function "${o.name}"`, limits, dense) : undefined
    const restartType = checkRestartType(o.restart, `${where}.restart`)
    const statePolicy = checkEnum('statePolicy', o.statePolicy ?? d.statePolicy, `${where}.statePolicy`)
    if (o.sync !== undefined) checkEnum('sync', o.sync, `${where}.sync`)
    const mailboxCapacity = checkCapacity(o.mailboxCapacity ?? d.mailboxCapacity, `${where}.mailboxCapacity`)
    const overflow = checkEnum('overflow', o.overflow ?? d.overflow, `${where}.overflow`)
    const payload = o.initPayload === undefined ? undefined : toBytes(o.initPayload)
    // A restart builds a fresh guest the same way: a new wasm instance (new memory), or the
    // JS function again (a factory is called again; a plain object is reused).
    const isolation = checkEnum('isolation', o.isolation ?? 'inline', `${where}.isolation`)
    if (isolation === 'worker' && !fm) throw new EdgelessError('invalid-argument', `${where}: worker isolation runs wasm modules; a JS function runs inline.`)
    if (isolation === 'worker' && !d.isolate)
      throw new EdgelessError(
        'invalid-argument',
        `${where}: worker isolation needs a worker implementation; use the Node entry (import { Runtime } from 'edgeless' in Node) or pass RuntimeOptions.isolate.`,
      )
    const lazy = o.lazy === true
    const passivate = lazy || o.passivate === true
    if (o.passivate !== undefined && typeof o.passivate !== 'boolean')
      throw new EdgelessError('invalid-argument', `${where}.passivate must be a boolean, got ${JSON.stringify(o.passivate)}.`)
    if (o.lazy !== undefined && typeof o.lazy !== 'boolean')
      throw new EdgelessError('invalid-argument', `${where}.lazy must be a boolean, got ${JSON.stringify(o.lazy)}.`)
    const deadlineMs = o.deadlineMs ?? 30_000
    if (!(deadlineMs > 0)) throw new EdgelessError('invalid-argument', `${where}.deadlineMs must be a positive number of milliseconds, got ${o.deadlineMs}.`)
    // A worker holds its own thread, and its blocking calls wait in it: deadlineMs bounds it.
    if (o.maxInvocationMs !== undefined) checkMaxInvocationMs(o.maxInvocationMs, `${where}.maxInvocationMs`)
    limits.maxInvocationMs = isolation === 'worker' ? Infinity : (o.maxInvocationMs ?? d.maxInvocationMs)
    const makeGuest = fm
      ? this.wasmGuestFactory(fm, isolation, limits, deadlineMs)
      : (host: GuestHost) => new JsGuest(typeof o.fn === 'function' ? o.fn() : o.fn!, host)
    const actor = new Actor(this.sys, {
      name: o.name,
      id: { node: d.nodeId, function: functionId },
      stateId: o.stateId ?? functionId,
      callTimeoutMs: o.callTimeoutMs ?? d.callTimeoutMs,
      stopTimeoutMs: d.stopTimeoutMs,
      outputs,
      restartType,
      mailboxCapacity,
      overflow,
      makeGuest,
      initPayload: payload?.length ? payload : undefined,
      statePolicy,
      // Shared unless overridden (a million instances need not hold a million copies).
      quotas: o.quotas ? { ...d.quotas, ...o.quotas } : d.quotas,
      syncMode: o.sync === 'wait' ? 'wait' : 'async',
      stateVersion: undefined,
      passivator: passivate ? d.passivator : null,
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

  /** Reads an instance's state (one function shared by every actor, not a closure each). */
  private readonly readState = (a: Parameters<System['state']['read']>[0]) => this.sys.state.read(a)

  private wasmGuestFactory(fm: FunctionModule, isolation: 'inline' | 'worker', limits: GuestLimits, deadlineMs: number): (host: GuestHost) => Promise<Guest> {
    const key = `${isolation}:${limits.fuel}:${limits.maxMemoryBytes}:${limits.maxInvocationMs}:${deadlineMs}`
    let byKey = this.factories.get(fm)
    if (!byKey) this.factories.set(fm, (byKey = new Map()))
    let f = byKey.get(key)
    if (!f) {
      const isolate = this.d.isolate
      const suspendBytes = this.d.suspendBufferBytes
      f = async (host: GuestHost) => {
        try {
          if (isolation === 'worker') return await isolate!(fm, host, limits, deadlineMs)
          return await WasmGuest.create(fm, host, suspendBytes, limits)
        } catch (e) {
          throw new EdgelessError('invalid-module', `Instantiating function "${host.name}" failed: ${(e as Error).message}.`, { name: host.name }, { cause: e })
        }
      }
      byKey.set(key, f)
    }
    return f
  }

  /**
   * Make a prepared instance addressable: messages sent to it from now on queue up and are
   * processed once its init has run.
   */
  register(p: PreparedSpawn, supervisor: Supervisor = this.root): void {
    this.assertOpen()
    if (this.sys.actors.has(p.actor.id.function))
      throw new EdgelessError('invalid-argument', `An instance with function id ${p.actor.id.function} already runs.`)
    this.sys.actors.set(p.actor.id.function, p.actor)
    if (p.actor.restartType === 'permanent') this.specs.set(p.actor, p.options)
    supervisor.add(p.actor)
    p.actor.onStopped = (a) => a.supervisor?.childStoppedNormally(a, () => this.respawn(a))
  }

  /**
   * Run handle_init of a registered instance. On a crash the instance is removed and the
   * crash error is thrown.
   */
  async activate(p: PreparedSpawn): Promise<ActorRef> {
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
    return new ActorRef(this.owner, actor.id, actor.name, actor)
  }

  /**
   * A permanent instance stopped on its own and its supervisor brings it back: a fresh one
   * at the same address, with its last state. (A crash restarts the same actor in place,
   * `Actor.restart`; a stopped actor's lifecycle is over, so this builds a new one.)
   */
  private async respawn(old: Actor): Promise<void> {
    const spec = this.specs.get(old)
    const sup = old.supervisor
    if (!spec || !sup || this.closed || this.sys.actors.has(old.id.function)) return
    try {
      const p = await this.prepare({
        ...spec,
        lazy: false,
        passivate: spec.passivate === true || spec.lazy === true,
        functionId: old.id.function,
        outputs: Object.fromEntries(old.outputs),
        stateId: old.stateId,
      })
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
      const error =
        e instanceof EdgelessError
          ? e
          : new EdgelessError('invalid-module', `Re-spawning "${old.name}" failed: ${(e as Error)?.message ?? e}`, {}, { cause: e })
      this.sys.emit('crash', { name: old.name, instance: old.id, handler: 'init', trap: 'other', error })
    }
  }
}
