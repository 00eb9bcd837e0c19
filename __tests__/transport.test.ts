// The transport seam (lib/routing/transport.ts): routing works on recipients that a
// transport resolves, so a second transport reaches instances hosted elsewhere without any
// change to actor or supervision code. Here two runtimes are linked by a transport that
// hops through a macrotask and copies every payload, as a network would; the cluster mode's
// NATS transport implements the same interface. What must hold across it is the
// single-process contract: replies, Err at once for an id nobody hosts, timeouts, crashes
// as Err, and per-sender order of casts.
import { randomUUID } from 'node:crypto'
import { describe, expect, test } from '@jest/globals'
import { reply, utf8, type CallResult, type EdgeFunction, type InstanceId, type Runtime } from '../lib/node/index'
import { errResult } from '../lib/call-result'
import type { Message } from '../lib/routing/message'
import type { Recipient, Transport } from '../lib/routing/transport'
import { collect, testRuntime, until, wasmPath } from './helpers/fixtures'

const text = (r: CallResult) => (r.kind === 'reply' ? utf8(r.data) : r.kind)

/** Reaches the instances of `peer()` (another runtime): every message crosses a macrotask, with bytes of its own. */
function linkTo(peer: () => Runtime): Transport & { sent: number } {
  const link = {
    kind: 'test-link',
    sent: 0,
    resolve(id: InstanceId): Recipient | undefined {
      const sys = peer().internals()
      const there = sys.actorAt(id)
      if (!there) return undefined
      const r: Recipient = {
        name: there.name,
        id,
        busy: false,
        waitingOn: null,
        guest: {},
        canRunNow: () => false,
        runNow: () => {
          throw new Error("a remote recipient never runs a call in the caller's stack")
        },
        enqueue(msg: Message) {
          link.sent++
          const payload = msg.payload.slice()
          const src = msg.src
          const srcBytes = msg.srcBytes.slice()
          setImmediate(() => {
            const target = sys.lookup(id)
            if (msg.kind === 0) {
              if (target) sys.castTo(src, srcBytes, target, payload, undefined, msg.trace)
              return
            }
            if (!target) {
              msg.pending?.settle(errResult('unknown-instance', `No live instance ${id.function} on the other runtime.`))
              return
            }
            // The caller's side keeps the timeout (its PendingCall); the callee's side waits as long as it takes.
            void Promise.resolve(sys.call(null, src, srcBytes, target, payload, Infinity, undefined, msg.trace)).then((res) => {
              setImmediate(() => msg.pending?.settle(res.kind === 'reply' ? { kind: 'reply', data: res.data.slice() } : res))
            })
          })
        },
      }
      return r
    },
  }
  return link
}

/** Two runtimes, each reaching the other's instances through a link. */
function pair(): { a: Runtime; b: Runtime; toB: ReturnType<typeof linkTo> } {
  let a: Runtime | undefined
  let b: Runtime | undefined
  const toB = linkTo(() => b!)
  a = testRuntime({ remote: toB, callTimeoutMs: 2000, stopTimeoutMs: 200 })
  b = testRuntime({ remote: linkTo(() => a!), stopTimeoutMs: 200 })
  return { a, b, toB }
}

describe('routing through a second transport (the seam cluster mode plugs into)', () => {
  test('a wasm guest calls a wasm guest hosted by another runtime: it suspends, the reply comes back', async () => {
    const { a, b, toB } = pair()
    const pong = await b.spawn({ name: 'pong', module: wasmPath('pong') })
    const caller = await a.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { pong: pong.id } })
    expect(text(await a.call(caller, 'call:pong:ping'))).toBe('reply:PONG')
    expect(text(await a.call(caller, 'calln:pong:3:ping'))).toBe('reply:PONG')
    expect(toB.sent).toBe(4)
    await a.shutdown()
    await b.shutdown()
  })

  test('an id that no runtime hosts is Err at once (with a warning), not a timeout', async () => {
    const { a, b } = pair()
    const caller = await a.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { ghost: { node: b.nodeId, function: randomUUID() } } })
    const warnings = collect(a, 'warning')
    const timeouts = collect(a, 'call-timeout')
    expect(text(await a.call(caller, 'call:ghost:x'))).toBe('err')
    expect(warnings.map((w) => w.code)).toEqual(['unknown-instance'])
    expect(timeouts).toEqual([])
    await a.shutdown()
    await b.shutdown()
  })

  test("a callee on the other side that never answers: call-timeout on the caller's runtime, at its timeout", async () => {
    const { a, b } = pair()
    const stuck = await b.spawn({ name: 'stuck', fn: { handleCall: () => new Promise<never>(() => {}) } })
    const asker = await a.spawn({
      name: 'asker',
      fn: { handleCall: async (_s, _m, ctx) => reply(text(await ctx.call('stuck', 'hello'))) },
      outputs: { stuck: stuck.id },
      callTimeoutMs: 100,
    })
    const timeouts = collect(a, 'call-timeout')
    expect(text(await asker.call('go'))).toBe('err')
    expect(timeouts.map((t) => [t.caller, t.target, t.timeoutMs])).toEqual([['asker', 'stuck', 100]])
    await a.shutdown()
    await b.shutdown()
  })

  test('a callee that crashes on the other side is Err callee-crashed for the caller', async () => {
    const { a, b } = pair()
    const trap = await b.spawn({ name: 'trap', module: wasmPath('trap') })
    const asker = await a.spawn({
      name: 'asker',
      fn: {
        handleCall: async (_s, m, ctx) => {
          const r = await ctx.call('trap', m)
          return reply(r.kind === 'err' ? r.error.code : r.kind)
        },
      },
      outputs: { trap: trap.id },
    })
    const crashes = collect(b, 'crash')
    expect(text(await asker.call('panic'))).toBe('callee-crashed')
    await until(() => crashes.length === 1, 2000, "the crash on the callee's runtime")
    await a.shutdown()
    await b.shutdown()
  })

  test('casts from one sender to one instance on the other side arrive in the order sent', async () => {
    const { a, b } = pair()
    const seen: string[] = []
    const recorder: EdgeFunction = {
      handleCast: (_s, m) => {
        seen.push(utf8(m))
      },
    }
    const rec = await b.spawn({ name: 'rec', fn: recorder })
    const sender = await a.spawn({
      name: 'sender',
      fn: {
        handleCast: (_s, m, ctx) => {
          for (let i = 0; i < Number(utf8(m)); i++) ctx.cast('rec', String(i))
        },
      },
      outputs: { rec: rec.id },
    })
    sender.cast('200')
    await until(() => seen.length === 200, 5000, '200 casts')
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => String(i)))
    await a.shutdown()
    await b.shutdown()
  })
})
