// isolation: 'worker' — the guest runs in a worker thread (dist/worker-entry.js; `npm test`
// builds first). The core's guarantees hold across the thread boundary.
import { describe, expect, test } from '@jest/globals'
import { utf8 } from '../lib/node/index'
import { collect, testRuntime, until, wasmPath } from './helpers/fixtures'

const text = (r: { kind: string; data?: Uint8Array }) => (r.kind === 'reply' ? utf8(r.data!) : r.kind)

describe("isolation: 'worker'", () => {
  test('a worker guest calls an inline one and the reverse; replies, logs and state cross the boundary', async () => {
    const rt = testRuntime()
    const logs = collect(rt, 'log')
    const pongW = await rt.spawn({ name: 'pong-w', module: wasmPath('pong'), isolation: 'worker' })
    const pongI = await rt.spawn({ name: 'pong-i', module: wasmPath('pong') })
    await rt.spawn({ name: 'ping-i', module: wasmPath('ping'), outputs: { ponger: pongW }, stateId: 'pi' })
    await rt.spawn({ name: 'ping-w', module: wasmPath('ping'), outputs: { ponger: pongI }, isolation: 'worker', stateId: 'pw' })
    await until(() => ['ping-i', 'ping-w'].every((n) => logs.some((l) => l.name === n && l.text === 'Got Reply: PONG')), 10_000, 'both pings answered')
    expect(text(await rt.call(pongW, 'from the host'))).toBe('PONG')
    expect(logs.some((l) => l.name === 'pong-w' && /'Call' called/.test(l.text))).toBe(true)
    await rt.shutdown()
  })

  test("casts to a worker guest are processed in order, with the sender's address", async () => {
    const rt = testRuntime()
    const got: string[] = []
    const sink = await rt.spawn({
      name: 'sink',
      fn: {
        handleCast: (_s, m) => {
          got.push(utf8(m.subarray(32)))
        },
      },
    })
    const echo = await rt.spawn({ name: 'echo', module: wasmPath('echo'), outputs: { out: sink }, isolation: 'worker' })
    for (let i = 0; i < 200; i++) rt.cast(echo, `m${i}`)
    await until(() => got.length === 202, 10_000, '200 echoes')
    expect(got.slice(2)).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`))
    await rt.shutdown()
  })

  test('call timeouts and cycle detection work across threads', async () => {
    const rt = testRuntime({ callTimeoutMs: 300 })
    const cycles = collect(rt, 'call-cycle')
    const silent = await rt.spawn({ name: 'silent', fn: { handleCall: () => new Promise(() => {}) } })
    const a = await rt.spawn({ name: 'a', module: wasmPath('caller'), outputs: { silent }, isolation: 'worker' })
    expect(text(await rt.call(a, 'call:silent:hello', { timeoutMs: 5000 }))).toBe('err')
    // a (worker) -> b (inline) -> a: a cycle, answered Err at once instead of a deadlock.
    const b = await rt.spawn({ name: 'b', module: wasmPath('caller'), outputs: { a } })
    rt.setOutput(a, 'b', b)
    const r = await rt.call(a, 'call:b:call:a:x', { timeoutMs: 5000 })
    expect(text(r)).toBe('reply:err')
    expect(cycles[0]?.cycle).toEqual(['b', 'a', 'b'])
    await rt.shutdown()
  })

  test('a runaway guest with fuel off is stopped by its deadline, restarted in a fresh worker, and the main thread stays responsive', async () => {
    const rt = testRuntime({ supervision: { backoff: { initialMs: 0 } } })
    const crashes = collect(rt, 'crash')
    const restarts = collect(rt, 'restart')
    const spin = await rt.spawn({ name: 'spin', module: wasmPath('spin'), isolation: 'worker', fuel: Infinity, deadlineMs: 300 })
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    rt.cast(spin, 'spin')
    // While the worker spins, the main thread answers calls.
    const t0 = Date.now()
    expect(text(await rt.call(pong, 'x'))).toBe('PONG')
    expect(Date.now() - t0).toBeLessThan(250)
    await until(() => restarts.length === 1, 10_000, 'the restart')
    expect(crashes[0]).toMatchObject({ name: 'spin', handler: 'cast', trap: 'deadline', error: { code: 'trap' } })
    expect(crashes[0]!.error.message).toMatch(/ran longer than its 300 ms deadline/)
    expect(text(await rt.call(spin, 'hello'))).toBe('ok')
    await rt.shutdown()
  })

  test('fuel metering works in a worker too', async () => {
    const rt = testRuntime({ supervision: { backoff: { initialMs: 0 } } })
    const crashes = collect(rt, 'crash')
    const spin = await rt.spawn({ name: 'spin', module: wasmPath('spin'), isolation: 'worker', fuel: 1_000_000 })
    rt.cast(spin, 'spin')
    await until(() => crashes.length === 1, 10_000, 'out of fuel')
    expect(crashes[0]!.trap).toBe('out-of-fuel')
    await rt.shutdown()
  })

  test('bad isolation settings are refused', async () => {
    const rt = testRuntime()
    await expect(rt.spawn({ name: 'x', module: wasmPath('pong'), isolation: 'thread' as never })).rejects.toMatchObject({ code: 'invalid-argument' })
    await expect(rt.spawn({ name: 'x', fn: {}, isolation: 'worker' })).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/JS function runs inline/),
    })
    await rt.shutdown()
  })
})
