import { afterEach, describe, expect, test } from '@jest/globals'
import { err, noReply, reply, Runtime, utf8, type WorkflowSpec } from '../lib/node/index'
import { createTestKit, VirtualClock, type TestKit } from '../lib/testing/index'
import '../lib/testing/jest'
import { wasmPath } from './helpers/fixtures'

const kits: TestKit[] = []
function kit(options: Parameters<typeof createTestKit>[0] = {}): TestKit {
  const k = createTestKit({ Runtime, ...options })
  kits.push(k)
  return k
}
afterEach(async () => {
  await Promise.all(kits.splice(0).map((k) => k.shutdown()))
})

const fn = (name: string, code: string, mapping: Record<string, string> = {}, annotations: Record<string, string> = {}) => ({
  name,
  class_specification: { id: name, function_type: 'RUST_WASM', version: '0.1', code: wasmPath(code), outputs: Object.keys(mapping) },
  output_mapping: mapping,
  annotations,
})
const pingPong: WorkflowSpec = { functions: [fn('pinger', 'ping', { ponger: 'ponger' }), fn('ponger', 'pong')] }

describe('virtual time', () => {
  test('the VirtualClock fires timers in due order, then scheduling order, only when told', () => {
    const c = new VirtualClock()
    const fired: string[] = []
    c.setTimeout(() => fired.push('b'), 20)
    c.setTimeout(() => fired.push('a'), 10)
    const x = c.setTimeout(() => fired.push('x'), 10)
    c.setTimeout(() => fired.push('c'), 20)
    c.clearTimeout(x)
    expect(c.fireNext(5)).toBe(false)
    while (c.fireNext(100)) {
      /* fire all */
    }
    expect(fired).toEqual(['a', 'b', 'c'])
    expect(c.now()).toBe(20)
  })

  test('delayed casts fire only when the test advances time', async () => {
    const k = kit()
    await k.startWorkflow(pingPong)
    expect(k.trace.between('pinger', 'ponger')).toHaveLength(1)
    await k.advance(999)
    expect(k.trace.between('pinger', 'ponger')).toHaveLength(1)
    await k.advance(1)
    expect(k.trace.between('pinger', 'ponger')).toHaveLength(2)
    await k.runFor(60_000)
    expect(k.trace.between('pinger', 'ponger')).toHaveLength(62)
    expect(k.clock.now()).toBe(61_000)
  })

  test('call timeouts are virtual too: a call to a silent callee fails after exactly the timeout', async () => {
    const k = kit({ callTimeoutMs: 2000 })
    const silent = await k.spawn({ name: 'silent', fn: { handleCall: () => new Promise(() => {}) } })
    let result: unknown
    void k.call(silent, 'hello?').then((r) => {
      result = r
    })
    await k.advance(1999)
    expect(result).toBeUndefined()
    await k.advance(1)
    expect(result).toMatchObject({ kind: 'err', error: { code: 'call-timeout' } })
  })

  test('restart backoffs run on virtual time', async () => {
    const k = kit({ supervision: { backoff: { initialMs: 500, jitter: 0 } } })
    const c = await k.spawn({ name: 'crashy', module: wasmPath('crashy') })
    await k.call(c, 'panic')
    await k.advance(499)
    expect(k.runtime.inspect(c)?.status).toBe('crashed')
    await k.advance(1)
    expect(k.runtime.inspect(c)).toMatchObject({ status: 'running', restarts: 1 })
    expect(k.trace.entries.filter((e) => e.kind === 'crash' || e.kind === 'restart').map((e) => [e.kind, e.time])).toEqual([
      ['crash', 0],
      ['restart', 500],
    ])
  })
})

describe('determinism', () => {
  async function traceOf(seed?: number): Promise<string> {
    const k = kit(seed === undefined ? {} : { seed })
    await k.startWorkflow(
      {
        functions: [
          fn('sensor', 'sensor_simulator', { output: 'filter' }, { 'init-payload': 'period=100' }),
          fn('filter', 'filter_in_range', { output: 'avg' }, { 'init-payload': 'min-value=5,max-value=15' }),
          fn('avg', 'moving_average', { output: 'sink' }),
        ],
        resources: [{ name: 'sink', class_type: 'collect' }],
      },
      { replace: { sink: k.stub().fn } },
    )
    await k.advance(3000)
    return k.trace.format()
  }

  test('same inputs, same trace, every run (and with the same seed)', async () => {
    const a = await traceOf()
    const b = await traceOf()
    expect(a).toBe(b)
    expect(a.split('\n').length).toBeGreaterThan(60)
    expect(await traceOf(7)).toBe(await traceOf(7))
  })
})

describe('stubs, injection, capture', () => {
  test('a stub records casts and calls and answers from a script (function, list, fixed)', async () => {
    const k = kit()
    const byFn = k.stub((_m, text) => (text === 'bad' ? err('no') : text === 'none' ? noReply() : `re:${text}`))
    const byList = k.stub(['one', reply('two')])
    const s1 = await k.spawn({ name: 's1', fn: byFn.fn })
    const s2 = await k.spawn({ name: 's2', fn: byList.fn })
    expect(await k.call(s1, 'x')).toHaveReplied('re:x')
    expect((await k.call(s1, 'bad')).kind).toBe('err')
    expect((await k.call(s1, 'none')).kind).toBe('noreply')
    expect(await k.call(s2, 'a')).toHaveReplied('one')
    expect(await k.call(s2, 'b')).toHaveReplied('two')
    expect(await k.call(s2, 'c')).toHaveReplied('two')
    k.cast(s1, 'hello')
    await k.runUntilIdle()
    expect(byFn.calls()).toEqual(['x', 'bad', 'none'])
    expect(byFn).toHaveReceivedCast('hello')
    expect(byFn).toHaveReceivedCall(/^ba/)
    expect(byFn.received.at(-1)).toMatchObject({ kind: 'cast', text: 'hello', time: 0 })
  })

  test('replace a wasm function of a workflow by a stub; inject a message as if from another member', async () => {
    const k = kit()
    const ponger = k.stub(['FAKE-PONG'])
    await k.startWorkflow(pingPong, { replace: { ponger: ponger.fn } })
    expect(ponger).toHaveReceivedCall('PING-0')
    expect(k.trace.entries.find((e) => e.kind === 'reply')?.result).toMatchObject({ kind: 'reply' })
    // A cast into the stub "from the pinger": the stub sees the pinger's address as sender.
    k.cast('ponger', 'psst', { from: 'pinger' })
    await k.runUntilIdle()
    expect(ponger.received.at(-1)!.from).toEqual(k.get('pinger').id)
    expect(k.trace.entries.at(-1)).toMatchObject({ kind: 'cast', from: 'pinger', to: 'ponger', text: '"psst"' })
  })

  test('capture what a function sends to each alias', async () => {
    const k = kit()
    await k.startWorkflow(
      {
        functions: [fn('echo', 'echo', { out: 'sink' })],
        resources: [{ name: 'sink', class_type: 'collect' }],
      },
      { replace: { sink: k.stub().fn } },
    )
    k.cast('echo', 'slf')
    await k.runUntilIdle()
    const sent = k.sent('echo')
    expect(Object.keys(sent)).toEqual(['out'])
    expect(sent['out']!.slice(0, 2)).toEqual(['init:-', 'state:-'])
    expect(k).toHaveSent('echo', 'out', 'init:-')
    expect(k).not.toHaveSent('echo', 'nowhere')
  })

  test('a stub can send through its own output mapping', async () => {
    const k = kit()
    const sensor = k.stub()
    const sink = k.stub()
    await k.startWorkflow(
      {
        functions: [fn('sensor', 'sensor_simulator', { output: 'filter' }), fn('filter', 'filter_in_range', { output: 'sink' })],
        resources: [{ name: 'sink', class_type: 'collect' }],
      },
      { replace: { sensor: sensor.fn, sink: sink.fn } },
    )
    sensor.cast('output', '3.25')
    await k.runUntilIdle()
    expect(sink.casts()).toEqual(['3.25'])
  })
})

describe('failure messages', () => {
  test('matchers print what was received, the trace tail and the seed', async () => {
    const k = kit({ seed: 1234 })
    const s = k.stub()
    const ref = await k.spawn({ name: 'stubbed', fn: s.fn })
    k.cast(ref, 'actual')
    await k.runUntilIdle()
    let message = ''
    try {
      expect(s).toHaveReceivedCast('expected')
    } catch (e) {
      message = (e as Error).message
    }
    expect(message).toMatch(/expected the stub to have received a cast "expected"; it received "actual"/)
    expect(message).toMatch(/Interleaving seed 1234/)
    expect(message).toMatch(/host -> stubbed {2}cast "actual"/)
    let m2 = ''
    try {
      expect(await k.call(ref, 'x')).toHaveReplied('y')
    } catch (e) {
      m2 = (e as Error).message
    }
    expect(m2).toMatch(/expected the call to have replied "y"; got noreply/)
  })

  test('the trace prints readably', async () => {
    const k = kit()
    await k.startWorkflow(pingPong)
    const text = k.trace.format()
    expect(text).toContain('pinger -> ponger  call[ponger] "PING-0"')
    expect(text).toMatch(/ponger => pinger {2}reply "PONG"/)
    expect(utf8(new TextEncoder().encode(text))).toBe(text)
  })
})
