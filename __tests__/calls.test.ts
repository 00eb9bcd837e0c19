import { reply, utf8, type EdgeFunction, type InstanceId } from '../lib/index'
import { collect, testRuntime, wasmPath } from './helpers/fixtures'

const text = (r: { kind: string; data?: Uint8Array }) => (r.kind === 'reply' ? utf8(r.data!) : r.kind)

/** A JS function that answers calls after `ms` milliseconds (or never, with Infinity). */
function slowPong(ms: number): EdgeFunction {
  return {
    async handleCall(_src, msg) {
      if (ms === Infinity) await new Promise(() => {})
      await new Promise((r) => setTimeout(r, ms))
      return reply(`slow:${utf8(msg)}`)
    },
  }
}

describe('calls', () => {
  test('wasm -> wasm call on the synchronous fast path', async () => {
    const rt = testRuntime()
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { ponger: pong } })
    expect(text(await rt.call(caller, 'call:ponger:hi'))).toBe('reply:PONG')
    await rt.shutdown()
  })

  test('a wasm guest blocks on a call to an async JS function (suspension via asyncify)', async () => {
    const rt = testRuntime()
    const slow = await rt.spawn({ name: 'slow', fn: slowPong(20) })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { slow } })
    const r = await rt.call(caller, 'call:slow:abc')
    expect(text(r)).toBe('reply:slow:abc')
    // The caller's stack was restored: it keeps working, repeatedly.
    for (let i = 0; i < 20; i++) expect(text(await rt.call(caller, `call:slow:${i}`))).toBe(`reply:slow:${i}`)
    await rt.shutdown()
  })

  test('a guest call waits behind messages already queued at a busy wasm target', async () => {
    const rt = testRuntime()
    const order: string[] = []
    const slow = await rt.spawn({
      name: 'slow',
      fn: {
        async handleCast(_s, m) {
          await new Promise((r) => setTimeout(r, 10))
          order.push(`cast:${utf8(m)}`)
        },
        handleCall: (_s, m) => {
          order.push(`call:${utf8(m)}`)
          return reply('ok')
        },
      },
    })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { t: slow } })
    rt.cast(slow, 'first') // slow is now busy for 10 ms
    expect(text(await rt.call(caller, 'call:t:second'))).toBe('reply:ok')
    expect(order).toEqual(['cast:first', 'call:second'])
    await rt.shutdown()
  })

  test('nested suspension: A calls B synchronously, B has to wait on C; both resume', async () => {
    const rt = testRuntime()
    const c = await rt.spawn({ name: 'c', fn: slowPong(5) })
    const b = await rt.spawn({ name: 'b', module: wasmPath('caller'), outputs: { c } })
    const a = await rt.spawn({ name: 'a', module: wasmPath('caller'), outputs: { b } })
    expect(text(await rt.call(a, 'call:b:call:c:deep'))).toBe('reply:reply:slow:deep')
    await rt.shutdown()
  })

  test('per-sender ordering: casts then a call from the same sender are processed in order', async () => {
    const rt = testRuntime()
    const seen: string[] = []
    const sink = await rt.spawn({
      name: 'sink',
      fn: {
        handleCast: (_s, m) => {
          seen.push(utf8(m))
        },
        handleCall: (_s, m) => {
          seen.push(`call ${utf8(m)}`)
          return reply(String(seen.length))
        },
      },
    })
    for (let i = 0; i < 100; i++) rt.cast(sink, `m${i}`)
    const r = await rt.call(sink, 'last')
    expect(text(r)).toBe('101')
    expect(seen).toEqual([...Array.from({ length: 100 }, (_, i) => `m${i}`), 'call last'])
    // And from a wasm sender: caller casts to the sink, then calls it, in one handler.
    seen.length = 0
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { s: sink } })
    rt.cast(caller, 'cast:s:one')
    rt.cast(caller, 'cast:s:two')
    expect(text(await rt.call(caller, 'call:s:three'))).toBe('reply:3')
    expect(seen).toEqual(['one', 'two', 'call three'])
    await rt.shutdown()
  })

  test('a host call times out with Err and an event; the late reply is dropped and reported', async () => {
    const rt = testRuntime({ callTimeoutMs: 30 })
    const timeouts = collect(rt, 'call-timeout')
    const late = collect(rt, 'late-reply')
    const slow = await rt.spawn({ name: 'slow', fn: slowPong(80) })
    const r = await rt.call(slow, 'x')
    expect(r.kind).toBe('err')
    if (r.kind === 'err') expect(r.error.code).toBe('call-timeout')
    expect(timeouts).toHaveLength(1)
    expect(timeouts[0]!.target).toBe('slow')
    await new Promise((res) => setTimeout(res, 100))
    expect(late).toHaveLength(1)
    // A per-call timeout overrides the runtime's.
    expect(text(await rt.call(slow, 'y', { timeoutMs: 1000 }))).toBe('slow:y')
    await rt.shutdown()
  })

  test('a guest call times out: the guest gets Err (2) and resumes', async () => {
    const rt = testRuntime({ callTimeoutMs: 40, stopTimeoutMs: 50 })
    const never = await rt.spawn({ name: 'never', fn: slowPong(Infinity) })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { never } })
    const timeouts = collect(rt, 'call-timeout')
    expect(text(await rt.call(caller, 'call:never:x', { timeoutMs: 2000 }))).toBe('err')
    expect(timeouts.map((t) => [t.caller, t.target])).toEqual([['caller', 'never']])
    expect(rt.inspect(caller)?.waitingOn).toBeUndefined()
    // Stopping the callee abandons its never-ending handler after stopTimeoutMs.
    const warnings = collect(rt, 'warning')
    await rt.shutdown()
    expect(warnings.map((w) => [w.code, w.name])).toEqual([['stop-timeout', 'never']])
  })

  test('a call to oneself is answered Err at once, with a call-cycle event', async () => {
    const rt = testRuntime({ callTimeoutMs: 60_000 })
    const cycles = collect(rt, 'call-cycle')
    const caller = await rt.spawn({ name: 'me', module: wasmPath('caller') })
    const t0 = Date.now()
    expect(text(await rt.call(caller, 'call:self:x'))).toBe('err')
    expect(Date.now() - t0).toBeLessThan(30_000) // i.e. not the 60 s timeout
    expect(cycles).toHaveLength(1)
    expect(cycles[0]!.cycle).toEqual(['me', 'me'])
    expect(cycles[0]!.error.code).toBe('call-cycle')
    await rt.shutdown()
  })

  test('a two-party cycle on the synchronous path is detected (A -> B -> A)', async () => {
    const rt = testRuntime({ callTimeoutMs: 60_000 })
    const cycles = collect(rt, 'call-cycle')
    const outputs: Record<string, InstanceId> = {}
    const a = await rt.spawn({ name: 'a', module: wasmPath('caller'), outputs })
    const b = await rt.spawn({ name: 'b', module: wasmPath('caller'), outputs: { a } })
    rt.setOutput(a, 'b', b)
    // a calls b, b calls a: a is waiting on b, so b's call is answered Err.
    expect(text(await rt.call(a, 'call:b:call:a:x'))).toBe('reply:err')
    expect(cycles.map((c) => c.cycle)).toEqual([['b', 'a', 'b']])
    await rt.shutdown()
  })

  test('a three-party cycle through suspended calls is detected at once (A -> B -> C -> A)', async () => {
    const rt = testRuntime({ callTimeoutMs: 60_000 })
    const cycles = collect(rt, 'call-cycle')
    // JS functions: each handler awaits its call, so every wait is on the suspending path.
    const hop = (next: string): EdgeFunction => ({
      async handleCall(_s, m, ctx) {
        const r = await ctx.call(next, m)
        return reply(`${ctx.name}(${r.kind === 'reply' ? utf8(r.data) : r.kind === 'err' ? r.error.code : r.kind})`)
      },
    })
    const a = await rt.spawn({ name: 'a', fn: hop('next') })
    const b = await rt.spawn({ name: 'b', fn: hop('next') })
    const c = await rt.spawn({ name: 'c', fn: hop('next') })
    rt.setOutput(a, 'next', b)
    rt.setOutput(b, 'next', c)
    rt.setOutput(c, 'next', a)
    const t0 = Date.now()
    const r = await rt.call(a, 'go')
    expect(Date.now() - t0).toBeLessThan(30_000)
    expect(text(r)).toBe('a(b(c(call-cycle)))')
    expect(cycles).toHaveLength(1)
    expect(cycles[0]!.cycle).toEqual(['c', 'a', 'b', 'c'])
    await rt.shutdown()
  })

  test('a call to a crashed callee fails at once; later calls are refused with instance-failed', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const trap = await rt.spawn({ name: 'trap', module: wasmPath('trap'), restart: 'temporary' })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { trap } })
    expect(text(await rt.call(caller, 'call:trap:panic'))).toBe('err')
    expect(crashes).toHaveLength(1)
    expect(crashes[0]).toMatchObject({ name: 'trap', handler: 'call', trap: 'unreachable' })
    const r = await rt.call(trap, 'ok')
    expect(r.kind === 'err' && r.error.code).toBe('instance-failed')
    expect(rt.inspect(trap)?.status).toBe('failed')
    // The caller is unaffected.
    expect(text(await rt.call(caller, 'nothing'))).toBe('caller-ok')
    await rt.shutdown()
  })

  test('call results: reply, noreply and Err from a wasm callee reach a wasm caller', async () => {
    const rt = testRuntime()
    const mt = await rt.spawn({ name: 'mt', module: wasmPath('messaging_test') })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { mt } })
    expect(text(await rt.call(caller, 'call:mt:test_ret'))).toBe('reply:test_reply')
    expect(text(await rt.call(caller, 'call:mt:test_err'))).toBe('err')
    expect(text(await rt.call(caller, 'call:mt:other'))).toBe('noreply')
    const r = await rt.call(mt, 'test_err')
    expect(r.kind === 'err' && r.error.code).toBe('call-err')
    await rt.shutdown()
  })

  test('call_raw by instance id, and a call to an unknown alias or instance is Err with a warning', async () => {
    const rt = testRuntime()
    const warnings = collect(rt, 'warning')
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller') })
    const idBytes = new Uint8Array(32)
    const hex = (pong.id.node + pong.id.function).replace(/-/g, '')
    for (let i = 0; i < 32; i++) idBytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
    const msg = new Uint8Array([...new TextEncoder().encode('callraw:'), ...idBytes, ...new TextEncoder().encode(':x')])
    expect(text(await rt.call(caller, msg))).toBe('reply:PONG')
    expect(text(await rt.call(caller, 'call:nobody:x'))).toBe('err')
    expect(warnings.map((w) => w.code)).toEqual(['unknown-alias'])
    idBytes[31] = idBytes[31]! ^ 0xff
    const msg2 = new Uint8Array([...new TextEncoder().encode('callraw:'), ...idBytes])
    expect(text(await rt.call(caller, msg2))).toBe('err')
    expect(warnings.map((w) => w.code)).toEqual(['unknown-alias', 'unknown-instance'])
    await rt.shutdown()
  })
})
