import { describe, expect, test } from '@jest/globals'
import { err, reply, utf8, type CallResult } from '../lib/index'
import { collect, testRuntime, until, wasmPath } from './helpers/fixtures'

// wasm -> wasm calls on the synchronous fast path lend the caller's payload (a view into its
// memory) and may answer with a reply buffer the callee reuses; whatever keeps either beyond
// the call must get bytes of its own. Each test calls once before the calls it checks: a
// guest lends from its second call on.

const text = (r: CallResult) => (r.kind === 'reply' ? utf8(r.data) : r.kind)

describe('wasm -> wasm calls', () => {
  test('calln makes n calls inside one invocation and stops at the first outcome that is not a reply', async () => {
    const rt = testRuntime()
    let calls = 0
    const counter = await rt.spawn({ name: 'counter', fn: { handleCall: () => reply(`n:${++calls}`) } })
    let left = 3
    const failing = await rt.spawn({ name: 'failing', fn: { handleCall: () => (--left > 0 ? reply('ok') : err('enough')) } })
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { counter, failing, pong } })
    expect(text(await rt.call(caller, 'calln:counter:5:x'))).toBe('reply:n:5')
    expect(calls).toBe(5)
    expect(text(await rt.call(caller, 'calln:failing:10:x'))).toBe('err')
    expect(left).toBe(0)
    expect(text(await rt.call(caller, 'calln:pong:100:x'))).toBe('reply:PONG')
    // n must be a positive decimal number.
    expect(text(await rt.call(caller, 'calln:counter:0:x'))).toBe('caller-ok')
    expect(text(await rt.call(caller, 'calln:counter:many:x'))).toBe('caller-ok')
    expect(calls).toBe(5)
    await rt.shutdown()
  })

  test('a JS callee that keeps its messages gets bytes of its own', async () => {
    const rt = testRuntime()
    const kept: Uint8Array[] = []
    const keeper = await rt.spawn({
      name: 'keeper',
      fn: {
        handleCall: (_src, msg) => {
          kept.push(msg)
          return reply('ok')
        },
      },
    })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { keeper } })
    // The host copies each command to the same place in the caller's memory.
    for (const p of ['AAAA', 'BBBB', 'CCCC', 'DDDD']) expect(text(await rt.call(caller, `call:keeper:${p}`))).toBe('reply:ok')
    expect(kept.map((m) => utf8(m))).toEqual(['AAAA', 'BBBB', 'CCCC', 'DDDD'])
    await rt.shutdown()
  })

  test('a call queued behind messages at a busy callee carries bytes of its own', async () => {
    const rt = testRuntime()
    const kept: string[] = []
    const held: Uint8Array[] = []
    const keeper = await rt.spawn({
      name: 'keeper',
      fn: {
        handleCast: async () => {
          await new Promise((r) => setTimeout(r, 5))
        },
        handleCall: (_src, msg) => {
          held.push(msg)
          kept.push(utf8(msg))
          return reply('ok')
        },
      },
    })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { keeper } })
    expect(text(await rt.call(caller, 'call:keeper:warm'))).toBe('reply:ok')
    for (const p of ['AAAA', 'BBBB', 'CCCC']) {
      rt.cast(keeper, 'busy') // the call below waits behind this cast
      expect(text(await rt.call(caller, `call:keeper:${p}`))).toBe('reply:ok')
    }
    expect(held.map((m) => utf8(m))).toEqual(['warm', 'AAAA', 'BBBB', 'CCCC'])
    expect(kept).toEqual(['warm', 'AAAA', 'BBBB', 'CCCC'])
    await rt.shutdown()
  })

  test('replies of every size reach the caller intact, call after call', async () => {
    const rt = testRuntime()
    const echo = await rt.spawn({ name: 'echo', module: wasmPath('echo') })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { echo } })
    const sizes = [3, 3, 0, 1, 64, 65, 200, 4096, 4097, 70_000, 5, 3]
    for (const [i, n] of sizes.entries()) {
      const payload = Array.from({ length: n }, (_, k) => String.fromCharCode(97 + ((k + i) % 26))).join('')
      expect(text(await rt.call(caller, `call:echo:${payload}`))).toBe(`reply:${payload}`)
      expect(text(await rt.call(caller, `calln:echo:3:${payload}`))).toBe(`reply:${payload}`)
    }
    await rt.shutdown()
  })

  test('the dead letter of a wasm callee that crashed on a call keeps the bytes it was sent', async () => {
    const rt = testRuntime()
    const dead = collect(rt, 'dead-letter')
    const crashy = await rt.spawn({ name: 'crashy', module: wasmPath('crashy') })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { crashy } })
    expect(text(await rt.call(caller, 'call:crashy:first'))).toBe('reply:re:first')
    expect(text(await rt.call(caller, 'call:crashy:panic'))).toBe('err')
    expect(dead.map((d) => utf8(d.payload))).toEqual(['panic'])
    await until(() => rt.inspect(crashy)?.status === 'running', 5000, 'the restart')
    // The next command lands where the last one was in the caller's memory.
    expect(text(await rt.call(caller, 'call:crashy:XXXXX'))).toBe('reply:re:XXXXX')
    expect(dead.map((d) => utf8(d.payload))).toEqual(['panic'])
    await rt.shutdown()
  })

  test('a callee that suspends keeps a copy of the payload it was lent (seen in its dead letter)', async () => {
    const rt = testRuntime()
    const dead = collect(rt, 'dead-letter')
    // slow answers after a while with more than b may allocate, so b crashes after resuming.
    const slow = await rt.spawn({
      name: 'slow',
      fn: {
        handleCall: async (_src, msg) => {
          await new Promise((r) => setTimeout(r, 5))
          return reply(utf8(msg) === 'big' ? new Uint8Array(3 * 1024 * 1024) : 'small')
        },
      },
    })
    const b = await rt.spawn({ name: 'b', module: wasmPath('caller'), maxMemoryBytes: 2 * 1024 * 1024, outputs: { slow }, restart: 'temporary' })
    const a = await rt.spawn({ name: 'a', module: wasmPath('caller'), outputs: { b } })
    expect(text(await rt.call(a, 'call:b:call:slow:x'))).toBe('reply:reply:small')
    expect(text(await rt.call(a, 'call:b:call:slow:big'))).toBe('err')
    expect(dead.map((d) => [d.name, utf8(d.payload)])).toEqual([['b', 'call:slow:big']])
    // a's memory where that payload was now holds another command.
    expect(text(await rt.call(a, 'call:b:call:slow:ZZZ'))).toBe('err')
    expect(utf8(dead[0]!.payload)).toBe('call:slow:big')
    await rt.shutdown()
  })

  test('a tracer sees payloads and replies of its own', async () => {
    const rt = testRuntime()
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    const echo = await rt.spawn({ name: 'echo', module: wasmPath('echo') })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { pong, echo } })
    expect(text(await rt.call(caller, 'call:echo:warm'))).toBe('reply:warm')
    const seen: Array<{ to: string; payload: Uint8Array; result?: CallResult }> = []
    rt.internals().tracer = {
      message(kind, _from, to, payload) {
        const e: { to: string; payload: Uint8Array; result?: CallResult } = { to: to.name, payload }
        if (to.name !== 'caller') seen.push(e)
        if (kind === 'call')
          return (r) => {
            e.result = r
          }
      },
    }
    for (const p of ['one', 'two', 'six']) expect(text(await rt.call(caller, `call:echo:${p}`))).toBe(`reply:${p}`)
    expect(text(await rt.call(caller, 'calln:pong:2:ping'))).toBe('reply:PONG')
    expect(seen.map((e) => [e.to, utf8(e.payload), e.result && text(e.result)])).toEqual([
      ['echo', 'one', 'one'],
      ['echo', 'two', 'two'],
      ['echo', 'six', 'six'],
      ['pong', 'ping', 'PONG'],
      ['pong', 'ping', 'PONG'],
    ])
    rt.internals().tracer = null
    await rt.shutdown()
  })
})
