/**
 * JavaScript functions as guests: the `EdgeFunction` handlers and the `FunctionContext`
 * they get, the same host operations a wasm guest imports.
 * @packageDocumentation
 */
import { fromCallReturn, type CallResult, type CallReturn } from './call-result'
import type { Guest, GuestHost } from './guest'
import { isThenable } from './guest'
import type { InstanceId } from './ids'
import { ownBytes, type Payload } from './payload'

/** Log levels accepted by {@link FunctionContext.log}: a name or upstream's number (1 error … 5 trace). */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace' | 1 | 2 | 3 | 4 | 5

const LEVELS: Record<string, number> = { error: 1, warn: 2, info: 3, debug: 4, trace: 5 }

/**
 * The host API a JS function uses — the same operations a wasm guest imports.
 *
 * @example
 * ```ts
 * handleCast(src, msg, ctx) { ctx.cast('out', msg); ctx.delayedCast(1000, 'self', 'tick') }
 * ```
 */
export interface FunctionContext {
  /** This instance's id (upstream's `slf()`). */
  slf(): InstanceId
  /** The function's logical name. */
  readonly name: string
  /** Cast to an alias of the output mapping, or `"self"`. An unknown alias is dropped with a warning event. */
  cast(alias: string, payload: Payload): void
  /** Cast to an instance by id. */
  castRaw(target: InstanceId, payload: Payload): void
  /** Call an alias and wait for the answer (never rejects: failures are `{ kind: 'err' }`). */
  call(alias: string, payload: Payload): Promise<CallResult>
  /** Call an instance by id. */
  callRaw(target: InstanceId, payload: Payload): Promise<CallResult>
  /** Cast to an alias after `delayMs` milliseconds; the alias is resolved now. */
  delayedCast(delayMs: number, alias: string, payload: Payload): void
  /** Persist state under this instance's state id; the next `handleInit` for it receives it. */
  sync(state: Payload): void
  /** A log line (a `log` event on the runtime). */
  log(level: LogLevel, text: string, target?: string): void
}

/**
 * A function written in JavaScript/TypeScript, mirroring the Rust crate's `EdgeFunction`
 * trait. Every handler is optional and may be async; while one runs (or awaits), the
 * instance takes no other message.
 *
 * @example
 * ```ts
 * const pong: EdgeFunction = {
 *   handleCall: (_src, msg, ctx) => { ctx.log('info', `got ${utf8(msg)}`); return reply('PONG') },
 * }
 * await rt.spawn({ name: 'pong', fn: pong })
 * ```
 */
export interface EdgeFunction {
  handleInit?(payload: Uint8Array | undefined, state: Uint8Array | undefined, ctx: FunctionContext): void | Promise<void>
  handleCast?(src: InstanceId, msg: Uint8Array, ctx: FunctionContext): void | Promise<void>
  handleCall?(src: InstanceId, msg: Uint8Array, ctx: FunctionContext): CallReturn | CallResult | void | Promise<CallReturn | CallResult | void>
  handleStop?(ctx: FunctionContext): void | Promise<void>
}

/** Runs an {@link EdgeFunction} as an actor's guest. @internal */
export class JsGuest implements Guest {
  readonly ctx: FunctionContext

  constructor(
    private readonly fn: EdgeFunction,
    host: GuestHost,
  ) {
    this.ctx = {
      name: host.name,
      slf: () => host.id,
      cast: (alias, p) => host.cast(alias, ownBytes(p)),
      castRaw: (target, p) => host.castRaw(target, ownBytes(p)),
      call: async (alias, p) => host.call(alias, ownBytes(p)),
      callRaw: async (target, p) => host.callRaw(target, ownBytes(p)),
      delayedCast: (ms, alias, p) => host.delayedCast(ms, alias, ownBytes(p)),
      sync: (state) => host.sync(ownBytes(state)),
      log: (level, text, target = host.name) => host.log(typeof level === 'number' ? level : (LEVELS[level] ?? 1), target, text),
    }
  }

  init(payload: Uint8Array | undefined, state: Uint8Array | undefined): void | Promise<void> {
    return this.fn.handleInit?.(payload, state, this.ctx)
  }

  cast(src: InstanceId, _srcBytes: Uint8Array, msg: Uint8Array): void | Promise<void> {
    return this.fn.handleCast?.(src, msg, this.ctx)
  }

  call(src: InstanceId, _srcBytes: Uint8Array, msg: Uint8Array): CallResult | Promise<CallResult> {
    const name = this.ctx.name
    const r = this.fn.handleCall?.(src, msg, this.ctx)
    if (isThenable<CallReturn | CallResult | void>(r)) return Promise.resolve(r).then((v) => fromCallReturn(v ?? undefined, name))
    return fromCallReturn(r ?? undefined, name)
  }

  stop(): void | Promise<void> {
    return this.fn.handleStop?.(this.ctx)
  }
}
