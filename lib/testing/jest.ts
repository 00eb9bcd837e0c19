/**
 * Jest matchers for edgeless tests. Import once (in a test file or jest's setupFilesAfterEach):
 *
 * ```ts
 * import 'edgeless/testing/jest'
 * expect(stub).toHaveReceivedCast('PONG')
 * expect(await kit.call('ponger', 'PING')).toHaveReplied('PONG')
 * expect(kit).toHaveSent('sensor', 'output', /^\d+\.\d\d$/)
 * ```
 *
 * Failure messages show what was received or sent, the tail of the message trace, and the
 * interleaving seed when there is one.
 * @packageDocumentation
 */
import { expect } from '@jest/globals'
import type { CallResult } from '../call-result'
import { utf8 } from '../payload'
import type { TestKit } from './kit'
import type { Stub } from './stub'
import { showBytes } from './trace'

/** What a payload expectation may be: exact text, exact bytes, or a pattern over the text. */
export type PayloadMatch = string | Uint8Array | RegExp

const matches = (m: PayloadMatch, bytes: Uint8Array): boolean => {
  if (m instanceof RegExp) return m.test(utf8(bytes))
  if (typeof m === 'string') return utf8(bytes) === m
  return m.length === bytes.length && m.every((b, i) => b === bytes[i])
}
const show = (m: PayloadMatch) => (m instanceof RegExp ? String(m) : typeof m === 'string' ? JSON.stringify(m) : `<${m.length} bytes>`)

function received(stub: Stub, kind: 'cast' | 'call', m: PayloadMatch, isNot: boolean) {
  const got = stub.received.filter((r) => r.kind === kind)
  const pass = got.some((r) => matches(m, r.payload))
  return {
    pass,
    message: () =>
      `expected the stub ${isNot ? 'not ' : ''}to have received a ${kind} ${show(m)}; it received ${got.length ? got.map((r) => showBytes(r.payload)).join(', ') : `no ${kind}s`}.\n${stub.describeRun()}`,
  }
}

expect.extend({
  toHaveReceivedCast(stub: Stub, payload: PayloadMatch) {
    return received(stub, 'cast', payload, this.isNot === true)
  },
  toHaveReceivedCall(stub: Stub, payload: PayloadMatch) {
    return received(stub, 'call', payload, this.isNot === true)
  },
  toHaveReplied(result: CallResult, payload?: PayloadMatch) {
    const pass = result?.kind === 'reply' && (payload === undefined || matches(payload, result.data))
    const got =
      result?.kind === 'reply'
        ? `reply ${showBytes(result.data)}`
        : result?.kind === 'err'
          ? `err ${result.error.code}: ${result.error.message}`
          : String(result?.kind)
    return {
      pass,
      message: () => `expected the call ${this.isNot ? 'not ' : ''}to have replied${payload === undefined ? '' : ` ${show(payload)}`}; got ${got}`,
    }
  },
  toHaveSent(kit: TestKit, from: string, alias: string, payload?: PayloadMatch) {
    const sent = kit.trace.entries.filter((e) => (e.kind === 'cast' || e.kind === 'call') && e.from === from && e.alias === alias)
    const pass = sent.some((e) => payload === undefined || matches(payload, e.payload!))
    return {
      pass,
      message: () =>
        `expected "${from}" ${this.isNot ? 'not ' : ''}to have sent${payload === undefined ? ' anything' : ` ${show(payload)}`} to alias "${alias}"; it sent ${sent.length ? sent.map((e) => e.text).join(', ') : 'nothing there'} (by alias: ${JSON.stringify(kit.sent(from))}).\n${kit.describeRun()}`,
    }
  },
})

/** The matchers' types, for `expect` from `@jest/globals` and for the global `expect`. */
export interface EdgelessMatchers<R> {
  /** The stub received a cast with this payload (text, bytes or a pattern over the text). */
  toHaveReceivedCast(payload: PayloadMatch): R
  /** The stub received a call with this payload. */
  toHaveReceivedCall(payload: PayloadMatch): R
  /** The call result is a reply (with this payload, if given). */
  toHaveReplied(payload?: PayloadMatch): R
  /** In the kit's trace, `from` sent (this payload) through its alias `alias`. */
  toHaveSent(from: string, alias: string, payload?: PayloadMatch): R
}

declare module 'expect' {
  interface Matchers<R extends void | Promise<void>, T = unknown> extends EdgelessMatchers<R> {}
}

declare global {
  namespace jest {
    interface Matchers<R> extends EdgelessMatchers<R> {}
  }
}
