import { afterEach, expect, test } from '@jest/globals'
import { Runtime, type EdgeFunction } from '../lib/node/index'
import { createTestKit, type TestKit } from '../lib/testing/index'
import { wasmPath } from './helpers/fixtures'

const kits: TestKit[] = []
function kit(quotas: Record<string, number>): TestKit {
  const k = createTestKit({ Runtime, quotas })
  kits.push(k)
  return k
}
afterEach(async () => {
  await Promise.all(kits.splice(0).map((k) => k.shutdown()))
})

const warningsOf = (k: TestKit) => {
  const out: Array<{ code: string; details: Record<string, unknown>; message: string }> = []
  k.runtime.on('warning', (w) => out.push(w))
  return out
}

test('pending delayed casts are capped per instance; the excess is dropped with a quota warning', async () => {
  const k = kit({ maxPendingTimers: 100 })
  const warnings = warningsOf(k)
  const f = await k.spawn({
    name: 'timers',
    fn: {
      handleCast: (_s, _m, ctx) => {
        for (let i = 0; i < 150; i++) ctx.delayedCast(60_000, 'self', 'later')
      },
    },
  })
  k.cast(f, 'go')
  await k.runUntilIdle()
  expect(k.runtime.inspect(f)?.timers).toBe(100)
  expect(warnings.filter((w) => w.code === 'quota')).toHaveLength(50)
  expect(warnings[0]).toMatchObject({ code: 'quota', details: { quota: 'maxPendingTimers', limit: 100, op: 'delayed_cast' } })
})

test('payloads over the size quota: casts and syncs dropped, calls answered Err quota-exceeded', async () => {
  const k = kit({ maxPayloadBytes: 1024 })
  const warnings = warningsOf(k)
  const sink = k.stub()
  const s = await k.spawn({ name: 'sink', fn: sink.fn })
  const results: string[] = []
  const big = new Uint8Array(2048)
  const f = await k.spawn({
    name: 'big',
    outputs: { out: s },
    fn: {
      async handleCast(_s, _m, ctx) {
        ctx.cast('out', big)
        ctx.sync(big)
        const r = await ctx.call('out', big)
        results.push(r.kind === 'err' ? r.error.code : r.kind)
        ctx.cast('out', 'small')
      },
    } as EdgeFunction,
  })
  k.cast(f, 'go')
  await k.runUntilIdle()
  expect(sink.casts()).toEqual(['small'])
  expect(results).toEqual(['quota-exceeded'])
  expect(warnings.map((w) => w.details['op'])).toEqual(['cast', 'sync', 'call'])
})

test('a wasm guest over the payload quota is refused the same way (no host memory growth)', async () => {
  const k = kit({ maxPayloadBytes: 4 })
  const warnings = warningsOf(k)
  const sink = k.stub()
  const s = await k.spawn({ name: 'sink', fn: sink.fn })
  const c = await k.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s } })
  await k.runUntilIdle()
  // crashy's init casts "init:-" and "state:-" (6 and 7 bytes): both over 4 bytes.
  expect(sink.casts()).toEqual([])
  expect(warnings.filter((w) => w.code === 'quota').map((w) => w.details['bytes'])).toEqual([6, 7])
  expect(k.runtime.inspect(c)?.status).toBe('running')
})

test('log lines per second are capped; dropped lines are counted and reported once per second', async () => {
  const k = kit({ maxLogLinesPerSecond: 100 })
  const warnings = warningsOf(k)
  let lines = 0
  k.runtime.on('log', () => {
    lines++
  })
  const f = await k.spawn({
    name: 'chatty',
    fn: {
      handleCast: (_s, _m, ctx) => {
        for (let i = 0; i < 5000; i++) ctx.log('info', `line ${i}`)
      },
    },
  })
  k.cast(f, 'go')
  await k.runUntilIdle()
  expect(lines).toBe(100)
  await k.advance(1000)
  k.cast(f, 'go')
  await k.runUntilIdle()
  expect(lines).toBe(200)
  expect(warnings.filter((w) => w.code === 'quota').map((w) => w.details)).toEqual([{ quota: 'maxLogLinesPerSecond', limit: 100, op: 'log', dropped: 4900 }])
})

test('a guest whose handle_init loops forever is stopped by fuel: spawn fails out-of-fuel, the host kept firing timers and answering calls', async () => {
  const { testRuntime, collect } = await import('./helpers/fixtures')
  const rt = testRuntime()
  const crashes = collect(rt, 'crash')
  const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
  let ticks = 0
  const timer = setInterval(() => {
    ticks++
  }, 1)
  const spawning = rt.spawn({ name: 'init-spin', module: wasmPath('init_spin'), fuel: 50_000_000 })
  const answered = await rt.call(pong, 'meanwhile')
  await expect(spawning).rejects.toMatchObject({ code: 'trap', details: { trap: 'out-of-fuel' } })
  await new Promise((r) => setTimeout(r, 20))
  clearInterval(timer)
  expect(answered.kind).toBe('reply')
  expect(crashes.map((c) => [c.name, c.handler, c.trap])).toEqual([['init-spin', 'init', 'out-of-fuel']])
  expect(ticks).toBeGreaterThan(2)
  expect(rt.instances().map((i) => i.name)).toEqual(['pong'])
  await rt.shutdown()
})
