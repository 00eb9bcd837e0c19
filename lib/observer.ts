/**
 * The inspection hooks (the one low-level channel the inspector, metrics and traces build on).
 * @packageDocumentation
 */
import type { InstanceId } from './ids'

/** What a handler invocation was. */
export type InvocationKind = 'init' | 'cast' | 'call' | 'stop'

/**
 * Low-level hooks for inspection and telemetry (the inspector, metrics exporters). The
 * runtime calls them at the points named below; with no observer installed each point costs
 * one null check. Every message carries a trace id: a message sent while handling another
 * inherits its trace id, so one request's path through a workflow can be reconstructed.
 * Observers must not throw and must be fast: they run on the mailbox loop.
 *
 * @example
 * ```ts
 * rt.observe({ finished: (a, kind, ms) => histogram(a.name, kind).record(ms) })
 * ```
 */
export interface Observer {
  /** A message entered a mailbox (`depth` after it). */
  enqueued?(actor: ObservedActor, kind: 'cast' | 'call', trace: number, depth: number): void
  /** A handler started. */
  started?(actor: ObservedActor, kind: InvocationKind, trace: number): void
  /** A handler finished (`ok` false: it crashed), after `ms` milliseconds of wall time. */
  finished?(actor: ObservedActor, kind: InvocationKind, trace: number, ms: number, ok: boolean): void
  /** A delayed cast was scheduled, fired or cancelled. */
  timer?(actor: ObservedActor, what: 'set' | 'fired' | 'cancelled', delayMs: number, trace: number): void
  /** A guest was instantiated (wasm instance or JS function), in `ms`. */
  instantiated?(actor: ObservedActor, ms: number): void
  /** A message was sent: `from` (an instance or the host) to `to`. */
  sent?(from: InstanceId, to: ObservedActor, kind: 'cast' | 'call', trace: number, bytes: number, alias: string | undefined): void
}

/**
 * Every hook of {@link Observer}, once (the runtime fans several observers out over it).
 * The type check below fails when a hook is added to the interface and not here.
 * @internal
 */
export const OBSERVER_HOOKS = ['enqueued', 'started', 'finished', 'timer', 'instantiated', 'sent'] as const satisfies ReadonlyArray<keyof Observer>
type MissingHook = Exclude<keyof Observer, (typeof OBSERVER_HOOKS)[number]>
const allHooksListed: MissingHook extends never ? true : never = true
void allHooksListed

/** The view of an actor observers get. */
export interface ObservedActor {
  readonly name: string
  readonly id: InstanceId
}

/** A wall clock for durations (performance.now where there is one). @internal */
export const wallNow: () => number = typeof performance !== 'undefined' ? () => performance.now() : () => Date.now()
