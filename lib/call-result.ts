import { EdgelessError } from './errors'
import { toBytes, type Payload } from './payload'

/**
 * The answer to a call, as upstream's `CallRet`: a reply with bytes, no reply, or an error.
 * An `err` carries an {@link EdgelessError} saying why (the callee answered Err, timed out,
 * crashed, a cycle was detected, ...).
 *
 * @example
 * ```ts
 * const r = await rt.call(pong.id, 'hi')
 * if (r.kind === 'reply') console.log(utf8(r.data))
 * else if (r.kind === 'err') console.error(r.error.code, r.error.message)
 * ```
 */
export type CallResult =
  | { readonly kind: 'reply'; readonly data: Uint8Array }
  | { readonly kind: 'noreply' }
  | { readonly kind: 'err'; readonly error: EdgelessError }

/** What a JS function's `handleCall` returns: like {@link CallResult}, with string payloads allowed. */
export type CallReturn = { readonly kind: 'reply'; readonly data: Payload } | { readonly kind: 'noreply' } | { readonly kind: 'err'; readonly message?: string }

const NO_REPLY: CallResult = Object.freeze({ kind: 'noreply' })

/**
 * A reply (bytes or a UTF-8 string).
 *
 * @example
 * ```ts
 * handleCall: () => reply('PONG')
 * ```
 */
export function reply(data: Payload): { kind: 'reply'; data: Payload } {
  return { kind: 'reply', data }
}

/**
 * No reply (upstream's `CallRet::NoReply`).
 *
 * @example
 * ```ts
 * handleCall: () => noReply()
 * ```
 */
export function noReply(): CallResult {
  return NO_REPLY
}

/**
 * An error answer (upstream's `CallRet::Err`), with an optional reason for the caller's logs.
 *
 * @example
 * ```ts
 * handleCall: (_src, msg) => msg.length ? reply(msg) : err('empty request')
 * ```
 */
export function err(message?: string): { kind: 'err'; message?: string } {
  return message === undefined ? { kind: 'err' } : { kind: 'err', message }
}

/** @internal */
export const NOREPLY_RESULT = NO_REPLY

/** @internal An `err` result with a typed error. */
export function errResult(
  code: EdgelessError['code'],
  message: string,
  details: Record<string, unknown> = {},
): { readonly kind: 'err'; readonly error: EdgelessError } {
  return { kind: 'err', error: new EdgelessError(code, message, details) }
}

/** @internal Normalise what a JS handler returned. */
export function fromCallReturn(r: CallReturn | CallResult | undefined | null, name: string): CallResult {
  if (r == null) return NO_REPLY
  if (r.kind === 'reply') return { kind: 'reply', data: toBytes(r.data) }
  if (r.kind === 'noreply') return NO_REPLY
  if (r.kind === 'err') {
    if ('error' in r && r.error instanceof EdgelessError) return r
    const msg = 'message' in r && r.message ? r.message : 'the handler answered Err'
    return errResult('call-err', `${name}: ${msg}`)
  }
  throw new EdgelessError('invalid-argument', `${name}.handleCall returned ${JSON.stringify(r)}; return reply(data), noReply() or err().`)
}
