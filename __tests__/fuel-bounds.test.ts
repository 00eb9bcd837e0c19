// Bounds on one invocation (issue 18, item 1): host calls cost fuel, bulk memory
// instructions cost fuel by their length, and an inline invocation that keeps calling the
// host past maxInvocationMs ends as a `deadline` crash.
//
// Fixture: fixtures/wat/flood.wat, a guest that loops forever on one import (log,
// delayed_cast, cast to an unknown alias, cast to itself, cast_raw to itself, sync) or on a
// 16 MiB memory.fill / 8 MiB memory.copy, or runs one fill/copy of a given length.
//
// No assertion here is on wall time. What is asserted: each flood ends, as a crash of the
// named kind; how many host calls it made (counted by the events they caused) is bounded by
// the fuel; one bulk instruction's cost follows its length; and the event loop comes back
// between floods (a setInterval ticks). Before these bounds, a flood made ~1 host call per
// 6 units of fuel (~170 million on the default budget: 13-45 s of host work), and a loop of
// memory.fill charged one unit per fill (~15 h).
import { EdgelessError, type RuntimeEvents } from '../lib/node/index'
import { HOST_CALL_FUEL } from '../lib/wasm/instance'
import { DEFAULT_MAX_INVOCATION_MS } from '../lib/options'
import { collect, settle, testRuntime, until, wasmPath } from './helpers/fixtures'

const flood = wasmPath('flood')
const cmd = (c: string, n: number) => {
  const b = new Uint8Array(5)
  b[0] = c.charCodeAt(0)
  new DataView(b.buffer).setUint32(1, n, true)
  return b
}

/**
 * Fuel of the counting tests: room for FUEL / HOST_CALL_FUEL host calls, plus the few the host
 * lets through before it takes its charges from the fuel (in batches of at most 1/32 of the
 * budget: lib/wasm/instance.ts).
 */
const FUEL = 2_000_000
const MAX_CALLS = Math.ceil((FUEL * (1 + 1 / 32)) / HOST_CALL_FUEL)

type Crash = RuntimeEvents['crash'][0]

describe('host calls cost fuel: a flood on one import ends out of fuel after a bounded number of calls', () => {
  // The clock is off (maxInvocationMs: Infinity), so only fuel can end these floods.
  const spawnFlood = async (extra: Record<string, unknown> = {}) => {
    const rt = testRuntime({ quotas: { maxLogLinesPerSecond: 1e9 }, ...extra })
    const crashes = collect(rt, 'crash')
    const ref = await rt.spawn({ name: 'flood', module: flood, fuel: FUEL, maxInvocationMs: Infinity, restart: 'temporary', mailboxCapacity: 4 })
    return { rt, crashes, ref }
  }
  const outOfFuel = (c: Crash | undefined) => {
    expect(c).toMatchObject({ name: 'flood', handler: 'cast', trap: 'out-of-fuel' })
    expect(c!.error).toBeInstanceOf(EdgelessError)
    expect(c!.error.details).toMatchObject({ trap: 'out-of-fuel', fuel: FUEL })
    expect(c!.error.message).toMatch(/ran out of fuel in handle_cast/)
    expect(c!.error.message).toMatch(/per host call/)
    expect(c!.error.details['hostCalls']).toBeLessThanOrEqual(MAX_CALLS)
  }

  test('telemetry_log: at most FUEL / HOST_CALL_FUEL log lines', async () => {
    const { rt, crashes, ref } = await spawnFlood()
    const logs = collect(rt, 'log')
    rt.cast(ref, 'l')
    await until(() => crashes.length === 1, 20_000, 'the crash')
    expect(logs.length).toBeGreaterThan(MAX_CALLS / 2)
    expect(logs.length).toBeLessThanOrEqual(MAX_CALLS)
    outOfFuel(crashes[0])
    await rt.shutdown()
  })

  test.each([
    ['delayed_cast to an unknown alias', 'd'],
    ['cast to an unknown alias', 'c'],
  ])('%s: at most FUEL / HOST_CALL_FUEL unknown-alias warnings', async (_what, c) => {
    const { rt, crashes, ref } = await spawnFlood()
    const warnings = collect(rt, 'warning')
    rt.cast(ref, c)
    await until(() => crashes.length === 1, 20_000, 'the crash')
    const unknown = warnings.filter((w) => w.code === 'unknown-alias')
    expect(unknown.length).toBeGreaterThan(MAX_CALLS / 2)
    expect(unknown.length).toBeLessThanOrEqual(MAX_CALLS)
    outOfFuel(crashes[0])
    await rt.shutdown()
  })

  test.each([
    ['cast to "self"', 's'],
    ['cast_raw to its own id', 'r'],
  ])('%s: at most FUEL / HOST_CALL_FUEL casts (the full mailbox dead-letters the rest)', async (_what, c) => {
    const { rt, crashes, ref } = await spawnFlood()
    const dead = collect(rt, 'dead-letter')
    rt.cast(ref, c)
    await until(() => crashes.length === 1, 20_000, 'the crash')
    await settle()
    // Every cast past the 4 queued is a dead letter; so are those 4 once the instance is gone.
    expect(dead.length).toBeGreaterThan(MAX_CALLS / 2)
    expect(dead.length).toBeLessThanOrEqual(MAX_CALLS)
    outOfFuel(crashes[0])
    await rt.shutdown()
  })

  test('sync: at most FUEL / HOST_CALL_FUEL state writes', async () => {
    const { rt, crashes, ref } = await spawnFlood({ statePolicy: 'node-local' })
    const written = collect(rt, 'state-written')
    rt.cast(ref, 'y')
    await until(() => crashes.length === 1, 20_000, 'the crash')
    await rt.shutdown()
    expect(written.length).toBeLessThanOrEqual(MAX_CALLS)
    outOfFuel(crashes[0])
  })
})

describe('bulk memory instructions cost fuel by their length', () => {
  test('one memory.fill of 16 MiB is over a budget of 1,000,000 fuel; one of 1 MiB is not', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const ref = await rt.spawn({ name: 'flood', module: flood, fuel: 1_000_000 })
    // 1 MiB / 4 = 262,144 units; 16 MiB / 4 = 4,194,304.
    expect((await rt.call(ref, cmd('F', 1 << 20))).kind).toBe('reply')
    expect(crashes).toEqual([])
    const r = await rt.call(ref, cmd('F', 16 << 20))
    expect(r.kind).toBe('err')
    expect(crashes.map((c) => c.trap)).toEqual(['out-of-fuel'])
    expect(crashes[0]!.error.message).toMatch(/bulk memory instruction/)
    await rt.shutdown()
  })

  test('memory.copy too: 8 MiB is over 1,000,000 fuel, 1 MiB is not', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const ref = await rt.spawn({ name: 'flood', module: flood, fuel: 1_000_000 })
    expect((await rt.call(ref, cmd('C', 1 << 20))).kind).toBe('reply')
    expect((await rt.call(ref, cmd('C', 8 << 20))).kind).toBe('err')
    expect(crashes.map((c) => c.trap)).toEqual(['out-of-fuel'])
    await rt.shutdown()
  })

  test('the budget scales with the length: 4 MiB fits in 1,100,000 fuel, not in 1,000,000', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const small = await rt.spawn({ name: 'small', module: flood, fuel: 1_000_000 })
    const big = await rt.spawn({ name: 'big', module: flood, fuel: 1_100_000 })
    expect((await rt.call(big, cmd('F', 4 << 20))).kind).toBe('reply')
    expect((await rt.call(small, cmd('F', 4 << 20))).kind).toBe('err')
    expect(crashes.map((c) => [c.name, c.trap])).toEqual([['small', 'out-of-fuel']])
    await rt.shutdown()
  })
})

describe('maxInvocationMs: an invocation that keeps calling the host ends as a deadline crash', () => {
  test('a self-cast flood (costly host calls: each one a dead letter) ends at the limit, not at the fuel', async () => {
    // 10,000,000 fuel allows 10,000 host calls; each dead-lettered self-cast costs the host
    // far more than the 20 ms / 10,000 = 2 us the limit leaves it.
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const ref = await rt.spawn({ name: 'flood', module: flood, fuel: 10_000_000, maxInvocationMs: 20, restart: 'temporary', mailboxCapacity: 4 })
    rt.cast(ref, 's')
    await until(() => crashes.length === 1, 20_000, 'the crash')
    const c = crashes[0]!
    expect(c).toMatchObject({ name: 'flood', handler: 'cast', trap: 'deadline' })
    expect(c.error).toBeInstanceOf(EdgelessError)
    expect(c.error.code).toBe('trap')
    expect(c.error.details).toMatchObject({ trap: 'deadline', maxInvocationMs: 20 })
    expect(c.error.details['hostCalls']).toBeLessThan(10_000)
    expect(c.error.message).toMatch(/ran past its 20 ms limit in handle_cast/)
    expect(c.error.message).toMatch(/SpawnOptions\.maxInvocationMs/)
    expect(c.error.message).toMatch(/"max-invocation-ms"/)
    await rt.shutdown()
  })

  test('it ends an unmetered guest too (fuel: Infinity), and the supervisor restarts it', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const restarts = collect(rt, 'restart')
    const ref = await rt.spawn({ name: 'flood', module: flood, fuel: Infinity, maxInvocationMs: 20 })
    rt.cast(ref, 'c')
    await until(() => crashes.length === 1, 20_000, 'the crash')
    expect(crashes[0]).toMatchObject({ trap: 'deadline' })
    await until(() => restarts.length === 1, 5000, 'the restart')
    const r = await rt.call(ref, 'hello')
    expect(r.kind === 'reply' && new TextDecoder().decode(r.data)).toBe('ok')
    await rt.shutdown()
  })

  test('the workflow annotation "max-invocation-ms" sets it; an illegal value is a validation problem', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const fn = (name: string, annotations: Record<string, string>) => ({
      name,
      class_specification: { id: name, function_type: 'RUST_WASM', version: '0.1', code: flood, outputs: [] },
      output_mapping: {},
      annotations,
    })
    const wf = await rt.startWorkflow({ functions: [fn('flood', { 'max-invocation-ms': '20', fuel: 'Infinity' })], resources: [], annotations: {} })
    wf.get('flood')!.cast('c')
    await until(() => crashes.length === 1, 20_000, 'the crash')
    expect(crashes[0]).toMatchObject({ name: 'flood', trap: 'deadline' })
    expect(crashes[0]!.error.details).toMatchObject({ maxInvocationMs: 20 })
    await wf.stop()
    await expect(rt.startWorkflow({ functions: [fn('bad', { 'max-invocation-ms': '0' })], resources: [], annotations: {} })).rejects.toThrow(
      /max-invocation-ms.*must be a positive integer \(milliseconds\) or "Infinity"/,
    )
    await rt.shutdown()
  })

  test('bad values are refused at spawn and in the runtime options', async () => {
    const rt = testRuntime()
    for (const bad of [0, -5, Number.NaN, '100' as unknown as number]) {
      await expect(rt.spawn({ name: 'f', module: flood, maxInvocationMs: bad })).rejects.toMatchObject({
        code: 'invalid-argument',
        message: expect.stringMatching(/maxInvocationMs must be a positive number/),
      })
    }
    expect(() => testRuntime({ maxInvocationMs: 0 })).toThrow(/RuntimeOptions\.maxInvocationMs must be a positive number/)
    await rt.shutdown()
  })
})

describe('default settings: every flood ends, and the event loop comes back between floods', () => {
  test.each([
    ['telemetry_log', 'l'],
    ['delayed_cast to an unknown alias', 'd'],
    ['cast to an unknown alias', 'c'],
    ['cast to "self"', 's'],
    ['cast_raw to its own id', 'r'],
    ['sync', 'y'],
    ['16 MiB memory.fill', 'f'],
    ['8 MiB memory.copy', 'm'],
  ])('%s', async (_what, c) => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const ref = await rt.spawn({ name: 'flood', module: flood })
    let ticks = 0
    const timer = setInterval(() => {
      ticks++
    }, 10)
    try {
      // Three floods in a row (the supervisor restarts the instance after each), each sent
      // once the interval has ticked since the last crash: the thread is the host's again
      // between them.
      for (let i = 1; i <= 3; i++) {
        const t = ticks
        await until(() => ticks > t, 20_000, 'a tick of the interval')
        // (A self-cast flood leaves a full mailbox, which the restarted instance works off first.)
        await until(() => rt.inspect(ref)?.status === 'running' && rt.inspect(ref)?.mailbox === 0, 20_000, 'the instance ready')
        rt.cast(ref, c)
        await until(() => crashes.length === i, 60_000, `flood ${i} to end`)
      }
    } finally {
      clearInterval(timer)
    }
    for (const x of crashes) expect(['out-of-fuel', 'deadline']).toContain(x.trap)
    // Bulk memory floods make no host call: fuel ends them. Host-call floods end by the
    // fuel (1,000,000 calls) or by the clock, whichever comes first.
    if (c === 'f' || c === 'm') expect(crashes.map((x) => x.trap)).toEqual(['out-of-fuel', 'out-of-fuel', 'out-of-fuel'])
    for (const x of crashes) if (x.trap === 'deadline') expect(x.error.details['maxInvocationMs']).toBe(DEFAULT_MAX_INVOCATION_MS)
    await rt.shutdown()
  })
})
