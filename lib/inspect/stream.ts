/**
 * One typed stream of everything a runtime does, for inspectors, debuggers and tests: actor
 * lifecycles, messages (enqueued, started, finished, with durations and mailbox depths),
 * casts and calls (sent, replied, timed out, cycles), timers, state writes and logs — each
 * with a time, the instance (name and id) and, where known, the trace id of the request it
 * belongs to. Built on {@link Runtime.observe} and the runtime's events; the function it
 * returns removes all of it, after which the runtime pays nothing for it.
 *
 * Platform-neutral (no `node:*`).
 * @packageDocumentation
 */
import type { EdgelessError } from '../errors'
import type { Handler, RuntimeEvents, TrapKind, WarningEvent } from '../events'
import type { InstanceId } from '../ids'
import type { ActorStatus } from '../actor/lifecycle'
import type { InvocationKind, ObservedActor, Observer } from '../observer'
import type { Runtime } from '../runtime/runtime'

/** What every instance-level inspection event carries. */
export interface InspectionSubject {
  /** Wall-clock time of the event, in ms since the epoch (`Date.now()`). */
  time: number
  /** The instance's logical name (for sends and calls: the receiver). */
  name: string
  instance: InstanceId
}

/** Trace id of the message an event belongs to; `0` means none (init, stop, timer cancellation). */
export interface Traced {
  trace: number
}

/** The instance was built (wasm instance or JS function), in `ms`. */
export interface ActorInstantiatedEvent extends InspectionSubject {
  type: 'actor-instantiated'
  ms: number
}
/** `handle_init` finished (`ok` false: it crashed), after `ms`. Runs for a spawn and for every restart. */
export interface ActorInitialisedEvent extends InspectionSubject {
  type: 'actor-initialised'
  ms: number
  ok: boolean
}
/** A spawn completed: the instance was initialised and takes messages. */
export interface ActorSpawnedEvent extends InspectionSubject {
  type: 'actor-spawned'
}
/** The instance stopped (its stop handler ran, timers cancelled, state flushed). */
export interface ActorStoppedEvent extends InspectionSubject {
  type: 'actor-stopped'
}
/** A handler trapped or threw. `trace` is the message it was handling (0 for init and stop). */
export interface ActorCrashedEvent extends InspectionSubject, Traced {
  type: 'actor-crashed'
  handler: Handler
  trap: TrapKind
  error: EdgelessError
}
/** The supervisor will restart `restarting` (after `delayMs`) because this instance crashed. */
export interface ActorRestartScheduledEvent extends InspectionSubject {
  type: 'actor-restart-scheduled'
  restarting: string[]
  delayMs: number
  restarts: number
  workflow?: string
}
/** The instance was restarted at the same address and its init succeeded. */
export interface ActorRestartedEvent extends InspectionSubject {
  type: 'actor-restarted'
  restarts: number
}
/** Restart intensity exceeded: the supervisor gave up (and stopped the workflow, if any). */
export interface ActorEscalatedEvent extends InspectionSubject {
  type: 'actor-escalated'
  reason: EdgelessError
  workflow?: string
}
/** A lifecycle transition (see `ActorStatus`). */
export interface LifecycleInspectionEvent extends InspectionSubject {
  type: 'lifecycle'
  from: ActorStatus
  to: ActorStatus
}

/** A message entered the mailbox; `depth` counts it. (A call answered on the fast path is never queued.) */
export interface MessageEnqueuedEvent extends InspectionSubject, Traced {
  type: 'message-enqueued'
  kind: 'cast' | 'call'
  depth: number
}
/** A handler started; `depth` is what still waits in the mailbox. */
export interface MessageStartedEvent extends InspectionSubject, Traced {
  type: 'message-started'
  kind: InvocationKind
  depth: number
}
/** A handler finished after `ms` of wall time (`ok` false: it crashed); `depth` is what waits in the mailbox. */
export interface MessageFinishedEvent extends InspectionSubject, Traced {
  type: 'message-finished'
  kind: InvocationKind
  ms: number
  ok: boolean
  depth: number
}
/** A message was not delivered or not processed (receiver stopped, failed, crashed on it, mailbox full). */
export interface DeadLetterInspectionEvent extends InspectionSubject, Traced {
  type: 'dead-letter'
  kind: 'cast' | 'call'
  from: InstanceId
  bytes: number
  reason: EdgelessError
}
/** The mailbox was at capacity: a message was refused, or the oldest dropped. */
export interface MailboxFullInspectionEvent extends InspectionSubject {
  type: 'mailbox-full'
  kind: 'cast' | 'call'
  from: InstanceId
  capacity: number
  policy: 'reject' | 'drop-oldest'
}

/** A cast was sent to this instance by `from` (`fromName` is `host` for the application). */
export interface CastSentEvent extends InspectionSubject, Traced {
  type: 'cast-sent'
  from: InstanceId
  fromName: string
  alias?: string
  bytes: number
}
/** A call was sent to this instance by `from`. */
export interface CallSentEvent extends InspectionSubject, Traced {
  type: 'call-sent'
  from: InstanceId
  fromName: string
  alias?: string
  bytes: number
}
/** This instance's call handler finished: it answered (`ok`) or crashed, after `ms`. */
export interface CallRepliedEvent extends InspectionSubject, Traced {
  type: 'call-replied'
  ok: boolean
  ms: number
}
/** A call to this instance was not answered in time. */
export interface CallTimedOutEvent extends InspectionSubject {
  type: 'call-timed-out'
  caller?: string
  callerInstance?: InstanceId
  timeoutMs: number
  error: EdgelessError
}
/** A call to this instance would have closed a cycle of waiting callers; it was answered Err. */
export interface CallCycleEvent extends InspectionSubject {
  type: 'call-cycle'
  caller?: string
  callerInstance?: InstanceId
  cycle: string[]
  error: EdgelessError
}
/** An answer from this instance arrived after its call had timed out; it was dropped. */
export interface CallLateReplyEvent extends InspectionSubject {
  type: 'call-late-reply'
  caller?: string
}

/** What the timer events carry: the delay (0 for a cancellation) and the trace of the message that set the timer. */
export interface TimerInfo extends InspectionSubject, Traced {
  delayMs: number
}
/** This instance scheduled a delayed cast. */
export interface TimerSetEvent extends TimerInfo {
  type: 'timer-set'
}
/** A delayed cast of this instance fired (the cast follows, with the same trace). */
export interface TimerFiredEvent extends TimerInfo {
  type: 'timer-fired'
}
/** A delayed cast of this instance was cancelled (it stopped or failed). */
export interface TimerCancelledEvent extends TimerInfo {
  type: 'timer-cancelled'
}

/** A synced state reached its store. */
export interface StateWrittenInspectionEvent extends InspectionSubject {
  type: 'state-written'
  stateId: string
  bytes: number
  attempts?: number
}
/** A state write failed: `sync-failed` (kept, retried in `retryInMs`), `lost` (will not be made) or `conflict` (another writer was first). */
export interface StateFailedInspectionEvent extends InspectionSubject {
  type: 'state-failed'
  reason: 'sync-failed' | 'lost' | 'conflict'
  stateId: string
  error: EdgelessError
  attempt?: number
  retryInMs?: number
}

/** A log line of the instance; `trace` is the message being handled when it was written (0 outside one). */
export interface LogInspectionEvent extends InspectionSubject, Traced {
  type: 'log'
  level: 1 | 2 | 3 | 4 | 5
  levelName: 'error' | 'warn' | 'info' | 'debug' | 'trace'
  target: string
  text: string
}
/** Something the instance did that the host tolerated (unknown alias, quota, ...). */
export interface WarningInspectionEvent extends InspectionSubject {
  type: 'warning'
  code: WarningEvent['code']
  message: string
}

/** A workflow's instances are all initialised. */
export interface WorkflowStartedEvent {
  type: 'workflow-started'
  time: number
  workflow: string
  workflowId: string
  instances: string[]
}
/** A workflow stopped. */
export interface WorkflowStoppedEvent {
  type: 'workflow-stopped'
  time: number
  workflow: string
  workflowId: string
}

/**
 * Everything {@link inspectStream} reports, discriminated by `type`.
 *
 * @example
 * ```ts
 * inspectStream(rt, (e) => { if (e.type === 'message-finished' && e.ms > 10) console.warn(`${e.name} took ${e.ms} ms`) })
 * ```
 */
export type InspectionEvent =
  | ActorInstantiatedEvent
  | ActorInitialisedEvent
  | ActorSpawnedEvent
  | ActorStoppedEvent
  | ActorCrashedEvent
  | ActorRestartScheduledEvent
  | ActorRestartedEvent
  | ActorEscalatedEvent
  | LifecycleInspectionEvent
  | MessageEnqueuedEvent
  | MessageStartedEvent
  | MessageFinishedEvent
  | DeadLetterInspectionEvent
  | MailboxFullInspectionEvent
  | CastSentEvent
  | CallSentEvent
  | CallRepliedEvent
  | CallTimedOutEvent
  | CallCycleEvent
  | CallLateReplyEvent
  | TimerSetEvent
  | TimerFiredEvent
  | TimerCancelledEvent
  | StateWrittenInspectionEvent
  | StateFailedInspectionEvent
  | LogInspectionEvent
  | WarningInspectionEvent
  | WorkflowStartedEvent
  | WorkflowStoppedEvent

/** Every `type` of {@link InspectionEvent}. */
export type InspectionEventType = InspectionEvent['type']

/** The list of every {@link InspectionEventType}, e.g. to check a recording covers them. */
export const INSPECTION_EVENT_TYPES: readonly InspectionEventType[] = Object.freeze([
  'actor-instantiated',
  'actor-initialised',
  'actor-spawned',
  'actor-stopped',
  'actor-crashed',
  'actor-restart-scheduled',
  'actor-restarted',
  'actor-escalated',
  'lifecycle',
  'message-enqueued',
  'message-started',
  'message-finished',
  'dead-letter',
  'mailbox-full',
  'cast-sent',
  'call-sent',
  'call-replied',
  'call-timed-out',
  'call-cycle',
  'call-late-reply',
  'timer-set',
  'timer-fired',
  'timer-cancelled',
  'state-written',
  'state-failed',
  'log',
  'warning',
  'workflow-started',
  'workflow-stopped',
] as const)

type Listener = (e: InspectionEvent) => void

const HOST = 'host'

/**
 * Subscribe `listener` to one typed stream of {@link InspectionEvent}s of `runtime`.
 * Returns the unsubscribe function: it removes the observer and every event listener, so
 * the runtime is back to its zero-cost path. Calling it twice is harmless.
 *
 * The listener runs synchronously on the mailbox loop: keep it fast. If it throws, the
 * error is rethrown in a microtask (the runtime goes on).
 *
 * @example
 * ```ts
 * const events: InspectionEvent[] = []
 * const off = inspectStream(rt, (e) => events.push(e))
 * await rt.call(pong, 'PING')
 * off()
 * ```
 */
export function inspectStream(runtime: Runtime, listener: Listener): () => void {
  const sys = runtime.internals()
  const emit = (e: InspectionEvent): void => {
    try {
      listener(e)
    } catch (err) {
      queueMicrotask(() => {
        throw err
      })
    }
  }
  const now = Date.now
  const depthOf = (a: ObservedActor): number => sys.actorAt(a.id)?.mailbox.length ?? 0
  const nameOf = (id: InstanceId): string =>
    id.function === sys.hostId.function && id.node === sys.hostId.node ? HOST : (sys.lookup(id)?.name ?? `?${id.function.slice(0, 8)}`)
  /** Trace of the handler each instance is running (for its logs). */
  const current = new Map<string, number>()
  /** Trace of the message a handler crashed on, for the crash and dead-letter events that follow. */
  const failed = new Map<string, number>()

  const observer: Observer = {
    enqueued(a, kind, trace, depth) {
      emit({ type: 'message-enqueued', time: now(), name: a.name, instance: a.id, trace, kind, depth })
    },
    started(a, kind, trace) {
      current.set(a.id.function, trace)
      emit({ type: 'message-started', time: now(), name: a.name, instance: a.id, trace, kind, depth: depthOf(a) })
    },
    finished(a, kind, trace, ms, ok) {
      current.delete(a.id.function)
      if (!ok && (kind === 'cast' || kind === 'call')) failed.set(a.id.function, trace)
      const time = now()
      emit({ type: 'message-finished', time, name: a.name, instance: a.id, trace, kind, ms, ok, depth: depthOf(a) })
      if (kind === 'call') emit({ type: 'call-replied', time, name: a.name, instance: a.id, trace, ok, ms })
      else if (kind === 'init') emit({ type: 'actor-initialised', time, name: a.name, instance: a.id, ms, ok })
    },
    timer(a, what, delayMs, trace) {
      const e = { time: now(), name: a.name, instance: a.id, trace, delayMs }
      emit(what === 'set' ? { type: 'timer-set', ...e } : what === 'fired' ? { type: 'timer-fired', ...e } : { type: 'timer-cancelled', ...e })
    },
    instantiated(a, ms) {
      emit({ type: 'actor-instantiated', time: now(), name: a.name, instance: a.id, ms })
    },
    sent(from, to, kind, trace, bytes, alias) {
      // Built in one literal (no spreads): this runs for every message.
      const e: CastSentEvent | CallSentEvent = {
        type: kind === 'cast' ? 'cast-sent' : 'call-sent',
        time: now(),
        name: to.name,
        instance: to.id,
        trace,
        from,
        fromName: nameOf(from),
        bytes,
      }
      if (alias !== undefined) e.alias = alias
      emit(e)
    },
  }

  const handlers: { [K in keyof RuntimeEvents]?: (...args: RuntimeEvents[K]) => void } = {
    spawn: (e) => emit({ type: 'actor-spawned', time: now(), name: e.name, instance: e.instance }),
    stop: (e) => {
      current.delete(e.instance.function)
      failed.delete(e.instance.function)
      emit({ type: 'actor-stopped', time: now(), name: e.name, instance: e.instance })
    },
    crash: (e) => {
      const trace = e.handler === 'cast' || e.handler === 'call' ? (failed.get(e.instance.function) ?? 0) : 0
      emit({ type: 'actor-crashed', time: now(), name: e.name, instance: e.instance, trace, handler: e.handler, trap: e.trap, error: e.error })
    },
    'restart-scheduled': (e) =>
      emit({
        type: 'actor-restart-scheduled',
        time: now(),
        name: e.name,
        instance: e.instance,
        restarting: e.restarting,
        delayMs: e.delayMs,
        restarts: e.restarts,
        ...(e.workflow !== undefined ? { workflow: e.workflow } : {}),
      }),
    restart: (e) => emit({ type: 'actor-restarted', time: now(), name: e.name, instance: e.instance, restarts: e.restarts }),
    escalation: (e) =>
      emit({
        type: 'actor-escalated',
        time: now(),
        name: e.name,
        instance: e.instance,
        reason: e.reason,
        ...(e.workflow !== undefined ? { workflow: e.workflow } : {}),
      }),
    lifecycle: (e) => emit({ type: 'lifecycle', time: now(), name: e.name, instance: e.instance, from: e.from, to: e.to }),
    'dead-letter': (e) => {
      // The dead letter of the message a handler crashed on follows its crash event at once.
      const f = failed.get(e.instance.function)
      if (f !== undefined) failed.delete(e.instance.function)
      emit({
        type: 'dead-letter',
        time: now(),
        name: e.name,
        instance: e.instance,
        trace: f ?? 0,
        kind: e.kind,
        from: e.from,
        bytes: e.payload.length,
        reason: e.reason,
      })
    },
    'mailbox-full': (e) =>
      emit({ type: 'mailbox-full', time: now(), name: e.name, instance: e.instance, kind: e.kind, from: e.from, capacity: e.capacity, policy: e.policy }),
    'call-timeout': (e) =>
      emit({ type: 'call-timed-out', time: now(), name: e.target, instance: e.targetInstance, ...callerOf(e), timeoutMs: e.timeoutMs, error: e.error }),
    'call-cycle': (e) => emit({ type: 'call-cycle', time: now(), name: e.target, instance: e.targetInstance, ...callerOf(e), cycle: e.cycle, error: e.error }),
    'late-reply': (e) =>
      emit({ type: 'call-late-reply', time: now(), name: e.target, instance: e.targetInstance, ...(e.caller !== undefined ? { caller: e.caller } : {}) }),
    'state-written': (e) =>
      emit({
        type: 'state-written',
        time: now(),
        name: e.name,
        instance: e.instance,
        stateId: e.stateId,
        bytes: e.bytes,
        ...(e.attempts !== undefined ? { attempts: e.attempts } : {}),
      }),
    'state-sync-failed': (e) =>
      emit({
        type: 'state-failed',
        time: now(),
        name: e.name,
        instance: e.instance,
        reason: 'sync-failed',
        stateId: e.stateId,
        error: e.error,
        attempt: e.attempt,
        retryInMs: e.retryInMs,
      }),
    'state-lost': (e) => emit({ type: 'state-failed', time: now(), name: e.name, instance: e.instance, reason: 'lost', stateId: e.stateId, error: e.error }),
    'state-conflict': (e) =>
      emit({ type: 'state-failed', time: now(), name: e.name, instance: e.instance, reason: 'conflict', stateId: e.stateId, error: e.error }),
    log: (e) =>
      emit({
        type: 'log',
        time: now(),
        name: e.name,
        instance: e.instance,
        trace: current.get(e.instance.function) ?? 0,
        level: e.level,
        levelName: e.levelName,
        target: e.target,
        text: e.text,
      }),
    warning: (e) => emit({ type: 'warning', time: now(), name: e.name, instance: e.instance, code: e.code, message: e.message }),
    'workflow-start': (e) => emit({ type: 'workflow-started', time: now(), workflow: e.workflow, workflowId: e.workflowId, instances: e.instances }),
    'workflow-stop': (e) => emit({ type: 'workflow-stopped', time: now(), workflow: e.workflow, workflowId: e.workflowId }),
  }

  type AnyOn = (name: string, fn: (...a: unknown[]) => void) => unknown
  for (const [name, fn] of Object.entries(handlers)) (runtime.on as unknown as AnyOn).call(runtime, name, fn as (...a: unknown[]) => void)
  const unobserve = runtime.observe(observer)
  let active = true
  return () => {
    if (!active) return
    active = false
    unobserve()
    for (const [name, fn] of Object.entries(handlers)) (runtime.off as unknown as AnyOn).call(runtime, name, fn as (...a: unknown[]) => void)
    current.clear()
    failed.clear()
  }
}

function callerOf(e: { caller?: string; callerInstance?: InstanceId }): { caller?: string; callerInstance?: InstanceId } {
  return { ...(e.caller !== undefined ? { caller: e.caller } : {}), ...(e.callerInstance !== undefined ? { callerInstance: e.callerInstance } : {}) }
}

/**
 * The events of one trace, in recorded order: every message, send, timer, log, crash and
 * dead letter that belongs to the request that started trace `traceId`. A message sent while
 * handling another carries the same trace id, so this is that request's path through the
 * workflow.
 *
 * @example
 * ```ts
 * const path = traceOf(events, id).filter((e) => e.type === 'message-started').map((e) => e.name)
 * // ['filter', 'average', 'log']
 * ```
 */
export function traceOf(events: readonly InspectionEvent[], traceId: number): InspectionEvent[] {
  if (!traceId) return []
  return events.filter((e) => 'trace' in e && e.trace === traceId)
}

/**
 * The hops of one trace: who sent what to whom, in order (`from` is `host` for the
 * application).
 *
 * @example
 * ```ts
 * tracePath(events, id).map((h) => `${h.from} -${h.kind}-> ${h.to}`) // ['host -cast-> filter', 'filter -cast-> average', ...]
 * ```
 */
export function tracePath(
  events: readonly InspectionEvent[],
  traceId: number,
): Array<{ from: string; to: string; kind: 'cast' | 'call'; alias?: string; time: number }> {
  const out: Array<{ from: string; to: string; kind: 'cast' | 'call'; alias?: string; time: number }> = []
  for (const e of traceOf(events, traceId)) {
    if (e.type === 'cast-sent' || e.type === 'call-sent')
      out.push({
        from: e.fromName,
        to: e.name,
        kind: e.type === 'cast-sent' ? 'cast' : 'call',
        ...(e.alias !== undefined ? { alias: e.alias } : {}),
        time: e.time,
      })
  }
  return out
}
