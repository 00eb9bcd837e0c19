/**
 * The events a runtime emits (typed for eventemitter3), and the records they carry: logs,
 * crashes, dead letters, warnings, call failures, state writes, lifecycle and supervision.
 * @packageDocumentation
 */
import type { EdgelessError } from './errors'
import type { InstanceId } from './ids'
import type { ActorStatus } from './actor/lifecycle'

/** The handler a guest was running. */
export type Handler = 'init' | 'cast' | 'call' | 'stop'

/** How a guest invocation failed. */
export type TrapKind =
  | 'unreachable'
  | 'out-of-bounds'
  | 'stack-overflow'
  | 'divide-by-zero'
  | 'integer-overflow'
  | 'invalid-conversion'
  /** call_indirect to a null slot, with a wrong signature, or beyond the table. */
  | 'indirect-call'
  /** The invocation used up its fuel (an infinite or too long loop). */
  | 'out-of-fuel'
  /** The guest tried to grow its memory beyond its cap. */
  | 'out-of-memory'
  /**
   * An invocation in a worker ran past its wall-clock deadline (`deadlineMs`; the worker was
   * terminated), or an inline one went on calling the host past `maxInvocationMs`.
   */
  | 'deadline'
  | 'guest-fault'
  | 'exception'
  | 'other'

/** Log levels as upstream numbers them: 1 error, 2 warn, 3 info, 4 debug, 5 trace. */
export type LogLevelName = 'error' | 'warn' | 'info' | 'debug' | 'trace'

/** A `telemetry_log` line from a guest (or `ctx.log` from a JS function). */
export interface LogEvent {
  level: 1 | 2 | 3 | 4 | 5
  levelName: LogLevelName
  /** The function's logical name. */
  name: string
  instance: InstanceId
  /** The guest's log target (Rust: the module path). */
  target: string
  text: string
}

/** A guest handler trapped or threw. */
export interface CrashEvent {
  name: string
  instance: InstanceId
  handler: Handler
  trap: TrapKind
  error: EdgelessError
}

/** A message that could not be delivered or processed. */
export interface DeadLetterEvent {
  /** The receiver's name (or the alias, when it could not be resolved). */
  name: string
  instance: InstanceId
  from: InstanceId
  kind: 'cast' | 'call'
  payload: Uint8Array
  reason: EdgelessError
}

/** Something the guest did that the host tolerated: an unknown alias, invalid UTF-8, ... */
export interface WarningEvent {
  code: 'unknown-alias' | 'invalid-utf8' | 'unknown-instance' | 'cannot-suspend' | 'stop-timeout' | 'resource-error' | 'gave-up' | 'quota'
  name: string
  instance: InstanceId
  message: string
  details: Record<string, unknown>
}

/** A call that was answered Err because of the runtime rather than the callee's handler. */
export interface CallFailureEvent {
  /** The calling function's name, or `undefined` for a call from the host application. */
  caller?: string
  callerInstance?: InstanceId
  target: string
  targetInstance: InstanceId
  error: EdgelessError
}

/** One crash a supervisor handled (in escalation reports). */
export interface CrashRecord {
  name: string
  instance: InstanceId
  /** The runtime clock's time of the crash, in ms. */
  at: number
  handler: Handler
  error: EdgelessError
}

/** The events a {@link Runtime} emits (eventemitter3), by name. */
export interface RuntimeEvents {
  /** An instance finished `handle_init` and takes messages. */
  spawn: [ev: { name: string; instance: InstanceId }]
  /** An instance stopped (its stop handler ran, timers cancelled). */
  stop: [ev: { name: string; instance: InstanceId }]
  crash: [ev: CrashEvent]
  log: [ev: LogEvent]
  warning: [ev: WarningEvent]
  'dead-letter': [ev: DeadLetterEvent]
  'call-timeout': [ev: CallFailureEvent & { timeoutMs: number }]
  /** A call to oneself or a cycle of waiting callers; `cycle` names them in order. */
  'call-cycle': [ev: CallFailureEvent & { cycle: string[] }]
  /** A reply that arrived after its call had timed out; it was dropped. */
  'late-reply': [ev: { caller?: string; target: string; targetInstance: InstanceId }]
  /** A synced state reached its store (`attempts` when it took retries). */
  'state-written': [ev: { name: string; instance: InstanceId; stateId: string; bytes: number; attempts?: number }]
  /** A state write failed; it is kept (the newest value per state id) and retried after `retryInMs`. */
  'state-sync-failed': [ev: { name: string; instance: InstanceId; stateId: string; attempt: number; retryInMs: number; error: EdgelessError }]
  /** A state write that will not be made (buffer full, or still failing when a stop's flush timed out). `data` is the value. */
  'state-lost': [ev: { name: string; instance: InstanceId; stateId: string; data: Uint8Array; error: EdgelessError }]
  /** Optimistic concurrency: another writer changed the state first; this write was not made. */
  'state-conflict': [ev: { name: string; instance: InstanceId; stateId: string; expected: number; current: number; data: Uint8Array; error: EdgelessError }]
  /** An instance moved through its lifecycle (see `ActorStatus`). */
  lifecycle: [ev: { name: string; instance: InstanceId; from: ActorStatus; to: ActorStatus }]
  /** A supervisor will restart these instances (after `delayMs` of backoff) because `name` crashed. */
  'restart-scheduled': [ev: { name: string; instance: InstanceId; restarting: string[]; delayMs: number; restarts: number; workflow?: string }]
  /** An instance was restarted at the same address and its init succeeded. */
  restart: [ev: { name: string; instance: InstanceId; restarts: number }]
  /** Restart intensity exceeded: the workflow is stopped (or, outside a workflow, the instance given up). */
  escalation: [ev: { workflow?: string; name: string; instance: InstanceId; reason: EdgelessError; history: CrashRecord[] }]
  /** A message was refused or dropped because a mailbox was at capacity (in messages, or in bytes: `queuedBytes` of `maxBytes`; `bytes` is the message's). */
  'mailbox-full': [
    ev: {
      name: string
      instance: InstanceId
      from: InstanceId
      kind: 'cast' | 'call'
      capacity: number
      policy: 'reject' | 'drop-oldest'
      bytes: number
      queuedBytes: number
      maxBytes: number
    },
  ]
  /** A workflow's instances are all initialised. */
  'workflow-start': [ev: { workflow: string; workflowId: string; instances: string[] }]
  /** A workflow stopped (every instance's stop handler ran). */
  'workflow-stop': [ev: { workflow: string; workflowId: string }]
}
