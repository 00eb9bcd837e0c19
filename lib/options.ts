/**
 * Every option of the runtime, of a spawn and of supervision, with ONE table of the legal
 * values of each enumerated option: the spawn, the runtime's constructor and the workflow
 * annotations all check against it (and their messages are made from it), so a value is
 * legal in all three or in none.
 * @packageDocumentation
 */
import type { Clock } from './clock'
import { EdgelessError } from './errors'
import type { LogLevelName, CrashRecord } from './events'
import type { Guest, GuestHost } from './guest'
import type { InstanceId } from './ids'
import type { EdgeFunction } from './js-function'
import type { Payload } from './payload'
import type { ActorStatus } from './actor/lifecycle'
import type { PassivationOptions } from './actor/passivation'
import type { StateStore } from './state/store'
import type { StateWriteOptions } from './state/writer'
import type { FunctionModule, ModuleSource, SourceLoader } from './wasm/loader'
import type { Transport } from './routing/transport'
import type { GuestLimits } from './wasm/limits'
import type { ResourceClass } from './workflow/resource'

export type { CrashRecord }

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
  /** Memory cap of every wasm guest, in bytes. Default {@link DEFAULT_MAX_MEMORY_BYTES} (256 MiB) for a memory of its own; dense instances have their own rule. */
  maxMemoryBytes?: number
  /**
   * How long one invocation of an inline wasm guest may hold the thread while calling the
   * host, in ms (see {@link GuestLimits.maxInvocationMs}). Default
   * {@link DEFAULT_MAX_INVOCATION_MS}; `Infinity` turns it off.
   */
  maxInvocationMs?: number
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
  /**
   * Experimental, the seam cluster mode plugs into: how ids of instances this runtime does
   * not host resolve to recipients (see {@link Transport}). Local instances never go through
   * it. Default: none (an id of another node is an unknown instance).
   */
  remote?: Transport
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
export type SpawnOptions = SpawnSettings & SpawnCode

/**
 * The code of an instance: exactly one of a wasm `module` and a JS `fn` (giving neither or
 * both is a type error, and a runtime `invalid-argument` error for untyped callers).
 *
 * @example
 * ```ts
 * const code: SpawnCode = { module: './pong.wasm' }
 * ```
 */
export type SpawnCode =
  | {
      /** A wasm EDGELESS function: bytes, a path (Node), a URL, a `WebAssembly.Module`, or the result of `rt.load(...)`. */
      module: ModuleSource
      fn?: undefined
    }
  | {
      /** A JS function, or a factory called once per instance (for per-instance closures). */
      fn: EdgeFunction | (() => EdgeFunction)
      module?: undefined
    }

/**
 * Everything of {@link SpawnOptions} but the code: the name, outputs, state, limits and
 * supervision of an instance.
 *
 * @example
 * ```ts
 * const common: SpawnSettings = { name: 'pong', callTimeoutMs: 1000 }
 * await rt.spawn({ ...common, module: './pong.wasm' })
 * ```
 */
export interface SpawnSettings {
  /** Logical name (used in logs and events). */
  name: string
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
   * How long one invocation may hold the thread while calling the host, in ms (inline wasm
   * only; see {@link GuestLimits.maxInvocationMs}). Past it the instance crashes with a
   * `deadline` trap. Default: the runtime's; a worker-isolated instance has none (its
   * `deadlineMs` bounds it). Workflow annotation: `"max-invocation-ms"`.
   *
   * @example
   * ```ts
   * await rt.spawn({ name: 'exporter', module: './exporter.wasm', maxInvocationMs: 2000 })
   * ```
   */
  maxInvocationMs?: number
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

/**
 * {@link GuestLimits.maxInvocationMs} when none is configured. With {@link DEFAULT_FUEL}
 * (pure computation: ~0.1-0.5 s) it keeps any one invocation of an inline guest from holding
 * the event loop much beyond a quarter of a second, however costly its host calls are: a
 * guest looping on `cast` to its own full mailbox (~13 us a call) held it for minutes.
 */
export const DEFAULT_MAX_INVOCATION_MS = 250

/**
 * Where a function's state lives, as upstream names the policies: `transient` (nothing is
 * written; a restart in this process still gets the last synced state from memory),
 * `node-local` (this node's store: files, SQLite, memory) or `global` (a store shared by
 * nodes, e.g. Redis). Mapped to stores by {@link RuntimeOptions.stateStores}.
 *
 * @example
 * ```ts
 * new Runtime({ statePolicy: 'global', stateStores: { global: redisStore({ url }) } })
 * ```
 */
export type StatePolicy = 'transient' | 'node-local' | 'global'

/** What an actor does when its mailbox is full: refuse the new message, or drop the oldest queued one. */
export type OverflowPolicy = 'reject' | 'drop-oldest'

/**
 * Host resources one instance may use, so a guest cannot exhaust the host: what exceeds a
 * quota is refused (a call gets Err `quota-exceeded`, other operations are dropped) and
 * reported as a `warning` event with code `quota`, never host memory growth.
 *
 * @example
 * ```ts
 * new Runtime({ quotas: { maxPendingTimers: 100, maxPayloadBytes: 1 << 20, maxLogLinesPerSecond: 50 } })
 * ```
 */
export interface HostQuotas {
  /** Delayed casts scheduled and not yet fired. Default 10,000. */
  maxPendingTimers?: number
  /** Bytes of one cast, call, reply, delayed cast or sync payload. Default 16 MiB. */
  maxPayloadBytes?: number
  /** Log lines per second (more are dropped and counted). Default 1,000. */
  maxLogLinesPerSecond?: number
  /**
   * Payload bytes waiting in one mailbox. A message that would go over is treated as one
   * over `mailboxCapacity` (refused, or the oldest dropped, by the overflow policy; a
   * `mailbox-full` event with the figures). Default 64 MiB.
   */
  maxMailboxBytes?: number
  /** Payload bytes held by one instance's pending delayed casts (more are dropped, a `quota` warning). Default 64 MiB. */
  maxTimerBytes?: number
}

/** The defaults of {@link HostQuotas}. */
export const DEFAULT_QUOTAS: Readonly<Required<HostQuotas>> = Object.freeze({
  maxPendingTimers: 10_000,
  maxPayloadBytes: 16 * 1024 * 1024,
  maxLogLinesPerSecond: 1000,
  maxMailboxBytes: 64 * 1024 * 1024,
  maxTimerBytes: 64 * 1024 * 1024,
})

/**
 * The memory cap of a wasm instance with a memory of its own when none is configured:
 * upstream's example functions use a few MiB; a guest that grows past this fails its
 * `memory.grow` (an `out-of-memory` crash) instead of taking the host's memory. Dense
 * instances keep their own default (see {@link SpawnOptions.dense}).
 */
export const DEFAULT_MAX_MEMORY_BYTES = 256 * 1024 * 1024

/**
 * The memory cap an instance gets: the one asked for it, else the runtime's, else
 * {@link DEFAULT_MAX_MEMORY_BYTES} for a memory of its own (a dense instance's region
 * rule applies otherwise). @internal
 */
export function memoryCapFor(asked: number | undefined, runtime: number | undefined, dense: boolean): number | undefined {
  return asked ?? runtime ?? (dense ? undefined : DEFAULT_MAX_MEMORY_BYTES)
}

/**
 * When a supervisor restarts an instance, by OTP's names:
 * - `permanent`: always — after a crash, and after a normal stop of that one instance
 *   (`rt.stop(ref)`); only stopping the whole workflow or runtime ends it;
 * - `transient` (the default): after a crash only;
 * - `temporary`: never; a crash leaves it `failed`.
 *
 * OTP's default is `permanent`; ours is `transient` because the only normal exit of an
 * EDGELESS function is a deliberate stop, which should stay a stop.
 *
 * @example
 * ```ts
 * await rt.spawn({ name: 'worker', module, restart: 'permanent' })
 * ```
 */
export type RestartType = 'permanent' | 'transient' | 'temporary'

/**
 * Which instances restart when one crashes (OTP's strategies; order = order in the workflow):
 * `one_for_one` only the crashed one; `one_for_all` every instance of the workflow;
 * `rest_for_one` the crashed one and every instance after it.
 */
export type RestartStrategy = 'one_for_one' | 'one_for_all' | 'rest_for_one'

/**
 * Delay before a restart: `initialMs * factor^(n-1)`, capped at `maxMs`, where n counts the
 * restarts within the intensity period; then multiplied by a random factor in
 * `[1 - jitter, 1 + jitter]` so instances that crashed together do not restart in lockstep.
 */
export interface BackoffOptions {
  /** Default 10 ms. 0 restarts at once (as OTP). */
  initialMs?: number
  /** Default 2. */
  factor?: number
  /** Default 1000 ms. */
  maxMs?: number
  /** Default 0.2 (±20%). */
  jitter?: number
}

/**
 * How a supervisor treats crashes: strategy, restart intensity (at most `maxRestarts`
 * restarts within `periodMs`, default 3 in 5000 ms as OTP; one more escalates) and backoff.
 *
 * @example
 * ```ts
 * await rt.startWorkflow('wf.json', { supervision: { strategy: 'rest_for_one', maxRestarts: 10, periodMs: 60_000 } })
 * ```
 */
export interface SupervisionOptions {
  strategy?: RestartStrategy
  maxRestarts?: number
  periodMs?: number
  backoff?: BackoffOptions
  /** Source of jitter (tests pass a seeded one). Default `Math.random`. */
  random?: () => number
}

/**
 * The legal values of every enumerated option, written once. The spawn, the runtime's
 * constructor, supervision and the workflow annotations check against this table, and
 * their messages list its values.
 *
 * | option | values | default | annotation |
 * |---|---|---|---|
 * | `statePolicy` | `transient`, `node-local`, `global` | `node-local` | `state-policy` |
 * | `overflow` | `reject`, `drop-oldest` | `reject` | `mailbox-overflow` |
 * | `restart` | `permanent`, `transient`, `temporary` | `transient` | `restart` |
 * | `strategy` | `one_for_one`, `one_for_all`, `rest_for_one` | `one_for_one` | `restart-strategy` (workflow) |
 * | `isolation` | `inline`, `worker` | `inline` | `isolation` |
 * | `sync` | `async`, `wait` | `async` | `state-sync` |
 *
 * @example
 * ```ts
 * OPTION_VALUES.overflow // ['reject', 'drop-oldest']
 * ```
 */
export const OPTION_VALUES = {
  statePolicy: ['transient', 'node-local', 'global'],
  overflow: ['reject', 'drop-oldest'],
  restart: ['permanent', 'transient', 'temporary'],
  strategy: ['one_for_one', 'one_for_all', 'rest_for_one'],
  isolation: ['inline', 'worker'],
  sync: ['async', 'wait'],
} as const satisfies Record<string, readonly string[]>

/** An enumerated option of {@link OPTION_VALUES}. */
export type EnumOption = keyof typeof OPTION_VALUES

/** `'a', 'b' or 'c'` (API) or `a, b or c` (annotations). @internal */
export function orList(values: readonly string[], quote: boolean): string {
  const q = values.map((v) => (quote ? `'${v}'` : v))
  return q.length === 1 ? q[0]! : `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`
}

/**
 * Check an enumerated option against {@link OPTION_VALUES}; throws `invalid-argument` naming
 * `where` and the legal values. @internal
 */
export function checkEnum<K extends EnumOption>(key: K, v: unknown, where: string): (typeof OPTION_VALUES)[K][number] {
  const values: readonly string[] = OPTION_VALUES[key]
  if (typeof v !== 'string' || !values.includes(v))
    throw new EdgelessError('invalid-argument', `${where} must be ${orList(values, true)}, got ${JSON.stringify(v)}.`)
  return v as (typeof OPTION_VALUES)[K][number]
}

/** Check a maxInvocationMs: a positive number of milliseconds or Infinity. @internal */
export function checkMaxInvocationMs(ms: number, what: string): number {
  if (!(typeof ms === 'number' && ms > 0))
    throw new EdgelessError('invalid-argument', `${what} must be a positive number of milliseconds (or Infinity to turn the limit off), got ${String(ms)}.`)
  return ms
}

/** Check a mailbox capacity: a positive integer or Infinity. @internal */
export function checkCapacity(n: number, what: string): number {
  if (!(Number.isInteger(n) && n >= 1) && n !== Infinity)
    throw new EdgelessError('invalid-argument', `${what} must be a positive integer (or Infinity), got ${n}.`)
  return n
}

/**
 * The one rule for dense memory against worker isolation (a worker per instance defeats
 * density): the message when both are asked for, or `undefined`. Used by the spawn and by
 * workflow validation. @internal
 */
export function denseConflict(dense: boolean, isolation: string | undefined): string | undefined {
  return dense && isolation === 'worker' ? 'dense memory and worker isolation do not go together (a worker per instance defeats density)' : undefined
}

/** An integer annotation's rule. */
interface IntRule {
  min: number
  /** `"Infinity"` is legal too. */
  infinity?: boolean
  /** What a legal value is, for the message. */
  what: string
}

/**
 * A function annotation that sets a spawn option: its legal values (from
 * {@link OPTION_VALUES} where the option has them) or integer rule, and the options a legal
 * value gives.
 */
interface AnnotationRule {
  values?: readonly string[]
  int?: IntRule
  options(v: string): Partial<SpawnSettings>
}

const int = (v: string): number => (/^\d+$/.test(v.trim()) ? Number(v) : NaN)
const intOk = (r: IntRule, v: string): boolean => (r.infinity === true && v === 'Infinity') || int(v) >= r.min
const intOf = (v: string): number => (v === 'Infinity' ? Infinity : int(v))

/**
 * The workflow annotations of a function that set spawn options (upstream's own, such as
 * `init-payload` and `state-id`, are read by the workflow loader). One row per annotation:
 * validation and the spawn both read it.
 * @internal
 */
export const FUNCTION_ANNOTATIONS: Readonly<Record<string, AnnotationRule>> = {
  restart: { values: OPTION_VALUES.restart, options: (v) => ({ restart: v as RestartType }) },
  'mailbox-capacity': { int: { min: 1, what: 'a positive integer (messages)' }, options: (v) => ({ mailboxCapacity: int(v) }) },
  isolation: { values: OPTION_VALUES.isolation, options: (v) => ({ isolation: v as 'inline' | 'worker' }) },
  'deadline-ms': { int: { min: 1, what: 'a positive integer (milliseconds)' }, options: (v) => ({ deadlineMs: int(v) }) },
  fuel: { int: { min: 1, infinity: true, what: 'a positive integer (fuel per invocation) or "Infinity"' }, options: (v) => ({ fuel: intOf(v) }) },
  'max-memory': { int: { min: 65536, what: 'an integer number of bytes, at least 65536 (one wasm page)' }, options: (v) => ({ maxMemoryBytes: int(v) }) },
  'max-invocation-ms': {
    int: { min: 1, infinity: true, what: 'a positive integer (milliseconds) or "Infinity"' },
    options: (v) => ({ maxInvocationMs: intOf(v) }),
  },
  'state-policy': { values: OPTION_VALUES.statePolicy, options: (v) => ({ statePolicy: v as StatePolicy }) },
  'state-sync': { values: OPTION_VALUES.sync, options: (v) => ({ sync: v as 'async' | 'wait' }) },
  passivate: { values: ['true', 'false', 'lazy'], options: (v) => (v === 'true' ? { passivate: true } : v === 'lazy' ? { lazy: true } : {}) },
  dense: { values: ['true', 'false'], options: (v) => ({ dense: v === 'true' }) },
  'mailbox-overflow': { values: OPTION_VALUES.overflow, options: (v) => ({ overflow: v as OverflowPolicy }) },
}

/** The workflow-level annotations (supervision), checked the same way. @internal */
export const WORKFLOW_ANNOTATIONS: Readonly<Record<string, Omit<AnnotationRule, 'options'> & { options(v: string): SupervisionOptions }>> = {
  'restart-strategy': { values: OPTION_VALUES.strategy, options: (v) => ({ strategy: v as RestartStrategy }) },
  'max-restarts': { int: { min: 0, what: 'a non-negative integer' }, options: (v) => ({ maxRestarts: int(v) }) },
  'restart-period-ms': { int: { min: 0, what: 'a non-negative integer' }, options: (v) => ({ periodMs: int(v) }) },
}

/**
 * Check annotations against a table: one `[annotation, message]` per illegal value (the
 * message says what is legal), plus the dense/worker conflict. @internal
 */
export function annotationProblems(a: Record<string, string>, table: Readonly<Record<string, Omit<AnnotationRule, 'options'>>>): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const [key, rule] of Object.entries(table)) {
    const v = a[key]
    if (v === undefined) continue
    if (rule.values && !rule.values.includes(v)) out.push([key, `must be ${orList(rule.values, false)}, got "${v}"`])
    else if (rule.int && !intOk(rule.int, v)) out.push([key, `must be ${rule.int.what}, got "${v}"`])
  }
  const conflict = table === FUNCTION_ANNOTATIONS ? denseConflict(a['dense'] === 'true', a['isolation']) : undefined
  if (conflict) out.push(['dense', `${conflict}; drop one of the two annotations`])
  return out
}

/** The options set by the legal annotations of a table (illegal ones are validation's to report). @internal */
export function annotationOptions<T>(
  a: Record<string, string>,
  table: Readonly<Record<string, Omit<AnnotationRule, 'options'> & { options(v: string): T }>>,
): Partial<T> {
  let out: Partial<T> = {}
  for (const [key, rule] of Object.entries(table)) {
    const v = a[key]
    if (v === undefined || (rule.values && !rule.values.includes(v)) || (rule.int && !intOk(rule.int, v))) continue
    out = { ...out, ...rule.options(v) }
  }
  return out
}
