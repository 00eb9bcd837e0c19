/**
 * The closed set of error codes the library produces. Every failure — thrown,
 * returned as a call's `err`, or carried by an event — has exactly one of these.
 */
export type ErrorCode =
  /** The bytes are not a WebAssembly module (truncated, wrong magic, failed to compile). */
  | 'invalid-module'
  /** A required export is absent or has the wrong signature. */
  | 'missing-export'
  /** The module imports something the host does not provide. */
  | 'unknown-import'
  /** A module source could not be read (file, URL, loader). */
  | 'load-failed'
  /** Bad arguments to a public API (spawn options, payload type, ...). */
  | 'invalid-argument'
  /** No live instance has that id. */
  | 'unknown-instance'
  /** An alias is not in the instance's output mapping (or is not valid UTF-8). */
  | 'unknown-alias'
  /** A call was not answered within its timeout. */
  | 'call-timeout'
  /** A call would deadlock: a call to oneself, or a cycle of waiting callers. */
  | 'call-cycle'
  /** The callee's handler answered Err (the guest returned 2, or a JS handler returned `err()`). */
  | 'call-err'
  /** The callee crashed while handling the call. */
  | 'callee-crashed'
  /** The instance crashed earlier and refuses messages until it is restarted. */
  | 'instance-failed'
  /** The instance is stopping or stopped. */
  | 'instance-stopped'
  /** A guest handler trapped (unreachable, out of bounds, stack overflow, panic). */
  | 'trap'
  /** A guest passed bad arguments to a host import (out-of-bounds pointer or length). */
  | 'guest-fault'
  /** The call needs to wait but the module cannot suspend (precompiled without asyncify). */
  | 'cannot-suspend'
  /** A state store failed to read or write. */
  | 'state-store-failed'
  /** Optimistic concurrency: the stored state changed since this instance read it; the write was not made. */
  | 'state-conflict'
  /** The runtime has been shut down. */
  | 'runtime-shutdown'
  /** A workflow failed validation; `details.problems` lists every problem found. */
  | 'invalid-workflow'
  /** A resource could not start or act (port in use, server unreachable, missing driver). */
  | 'resource-failed'
  /** A mailbox is at capacity; the message was refused or the oldest one dropped (overflow policy). */
  | 'mailbox-full'
  /** A supervisor saw more restarts within its period than allowed and escalated. */
  | 'restart-intensity'
  /** An instance exceeded a host quota (payload size, pending timers, log rate). */
  | 'quota-exceeded'

/**
 * The one error class of the library. `code` says what went wrong (a closed set),
 * `message` says what to do about it, `details` carries structured context.
 *
 * @example
 * ```ts
 * try { await rt.spawn({ name: 'f', module: bytes }) }
 * catch (e) { if (e instanceof EdgelessError && e.code === 'missing-export') console.error(e.details) }
 * ```
 */
export class EdgelessError extends Error {
  override readonly name = 'EdgelessError'
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/**
 * Narrow an unknown value to an {@link EdgelessError}, optionally of a given code.
 *
 * @example
 * ```ts
 * if (isEdgelessError(e, 'call-timeout')) retry()
 * ```
 */
export function isEdgelessError(e: unknown, code?: ErrorCode): e is EdgelessError {
  return e instanceof EdgelessError && (code === undefined || e.code === code)
}
