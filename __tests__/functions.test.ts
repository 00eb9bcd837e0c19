import { memoryStore } from '../adapters/memory'
import { reply, utf8, type EdgeFunction, type InstanceId } from '../lib/index'
import { collect, testRuntime, until, wasmPath } from './helpers/fixtures'

/** A JS function that records what it receives. */
function recorder() {
  const casts: Array<{ src: InstanceId; text: string; bytes: Uint8Array }> = []
  const fn: EdgeFunction = {
    handleCast: (src, msg) => {
      casts.push({ src, text: utf8(msg), bytes: msg })
    },
    handleCall: (src, msg) => {
      casts.push({ src, text: `call:${utf8(msg)}`, bytes: msg })
      return reply('ack')
    },
  }
  return { casts, fn }
}

describe('upstream functions', () => {
  test('ping-pong: ping syncs {"count":N}, calls ponger, and resumes its count from the store', async () => {
    const store = memoryStore()
    const rt = testRuntime({ stateStore: store })
    const logs = collect(rt, 'log')
    const ponger = await rt.spawn({ name: 'ponger', module: wasmPath('pong') })
    const pinger = await rt.spawn({ name: 'pinger', module: wasmPath('ping'), outputs: { ponger }, stateId: 'ping-state' })
    await until(() => logs.some((l) => l.text === 'Got Reply: PONG'), 5000, 'first PONG')
    expect(utf8((await store.get('ping-state'))!)).toBe('{"count":1}')
    await rt.stop(pinger)
    // A new instance with the same state id starts from the stored count.
    const again = await rt.spawn({ name: 'pinger', module: wasmPath('ping'), outputs: { ponger }, stateId: 'ping-state' })
    await until(() => utf8(store.get('ping-state') as Uint8Array) === '{"count":2}', 5000, 'count 2')
    const pongCalls = logs.filter((l) => l.name === 'ponger' && l.text.startsWith("Ponger: 'Call' called"))
    expect(pongCalls.map((l) => l.text)).toEqual([
      `Ponger: 'Call' called, MSG: [${[...new TextEncoder().encode('PING-0')].join(', ')}]`,
      `Ponger: 'Call' called, MSG: [${[...new TextEncoder().encode('PING-1')].join(', ')}]`,
    ])
    await rt.stop(again)
    await rt.shutdown()
  })

  test('counter: init payload is the start value; casts N+1 to output and wakes itself via delayed_cast', async () => {
    const rt = testRuntime()
    const sink = recorder()
    const out = await rt.spawn({ name: 'sink', fn: sink.fn })
    const counter = await rt.spawn({ name: 'counter', module: wasmPath('counter'), outputs: { output: out }, initPayload: '41' })
    await until(() => sink.casts.length >= 1)
    expect(sink.casts[0]!.text).toBe('42')
    expect(sink.casts[0]!.src).toEqual(counter.id)
    // The next value comes one second later, from the delayed cast.
    await until(() => sink.casts.length >= 2, 3000, 'second value')
    expect(sink.casts[1]!.text).toBe('43')
    await rt.stop(counter)
    const n = sink.casts.length
    await new Promise((r) => setTimeout(r, 1200))
    expect(sink.casts.length).toBe(n) // the pending delayed cast was cancelled by stop
    await rt.shutdown()
  })

  test('system_test: halves and decrements to out1/out2, errors to err, echoes to log', async () => {
    const rt = testRuntime()
    const [o1, o2, e, l] = [recorder(), recorder(), recorder(), recorder()]
    const refs = {
      out1: await rt.spawn({ name: 'o1', fn: o1.fn }),
      out2: await rt.spawn({ name: 'o2', fn: o2.fn }),
      err: await rt.spawn({ name: 'e', fn: e.fn }),
      log: await rt.spawn({ name: 'l', fn: l.fn }),
    }
    const st = await rt.spawn({ name: 'system_test', module: wasmPath('system_test'), outputs: refs })
    rt.cast(st, '10')
    rt.cast(st, 'abc')
    await until(() => l.casts.length === 2)
    expect(o1.casts.map((c) => c.text)).toEqual(['5'])
    expect(o2.casts.map((c) => c.text)).toEqual(['9'])
    expect(e.casts.map((c) => c.text)).toEqual(['parsing error: invalid digit found in string'])
    expect(l.casts.map((c) => c.text)).toEqual(['10', 'abc'])
    await rt.shutdown()
  })

  test('state_test: sync persists, and the next init of that state id receives it', async () => {
    const store = memoryStore()
    const rt = testRuntime({ stateStore: store })
    const logs = collect(rt, 'log')
    const a = await rt.spawn({ name: 'state_test', module: wasmPath('state_test'), stateId: 's1' })
    expect(logs.map((l) => l.text)).toContain('no_state')
    const written = collect(rt, 'state-written')
    rt.cast(a, 'test_cast_raw_output')
    await until(() => written.length === 1)
    expect(written[0]).toMatchObject({ stateId: 's1', bytes: 9 })
    await rt.stop(a)
    logs.length = 0
    await rt.spawn({ name: 'state_test', module: wasmPath('state_test'), stateId: 's1' })
    expect(logs.map((l) => [l.target, l.text, l.levelName])).toContainEqual(['edgeless_test_state', 'new_state', 'info'])
    // The default state id is the instance's function id, as upstream.
    const c = await rt.spawn({ name: 'state_test', module: wasmPath('state_test') })
    expect(rt.inspect(c)?.stateId).toBe(c.id.function)
    await rt.shutdown()
  })

  test('messaging_test: cast_raw and call_raw back to the sender, cast and delayed cast to an alias', async () => {
    const rt = testRuntime()
    const t = recorder()
    const test = await rt.spawn({ name: 'test', fn: t.fn })
    const mt = await rt.spawn({ name: 'mt', module: wasmPath('messaging_test'), outputs: { test } })
    const driver = await rt.spawn({
      name: 'driver',
      fn: {
        handleCast: (_s, m, ctx) => {
          ctx.castRaw(mt.id, m)
        },
        handleCall: (_s, m) => {
          t.casts.push({ src: _s, text: `driver-call:${utf8(m)}`, bytes: m })
          return reply('x')
        },
      },
    })
    driver.cast('test_cast_raw_output')
    driver.cast('test_call_raw_output')
    driver.cast('test_cast_output')
    driver.cast('test_call_output')
    driver.cast('test_delayed_cast_output')
    await until(() => t.casts.length === 4, 3000, 'four messages')
    // cast_raw/call_raw went back to the sender (driver, the src of the cast); the others to "test".
    expect(t.casts.map((c) => c.text)).toEqual(['driver-call:call_raw_output', 'cast_output', 'call:call_output', 'delayed_cast_output'])
    await rt.shutdown()
  })

  test('each kind of trap crashes only that invocation, reported with its kind', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const kinds: Record<string, string> = { panic: 'unreachable', unreachable: 'unreachable', oob: 'out-of-bounds', stack: 'out-of-bounds' }
    for (const [cmd, trap] of Object.entries(kinds)) {
      // Own memory: a dense instance's out-of-bounds access stays in its region instead of trapping (dense.test.ts).
      const t = await rt.spawn({ name: `trap-${cmd}`, module: wasmPath('trap'), restart: 'temporary', dense: false })
      const r = await rt.call(t, cmd)
      expect(r.kind === 'err' && r.error.code).toBe('callee-crashed')
      expect(crashes.at(-1)).toMatchObject({ name: `trap-${cmd}`, handler: 'call', trap })
      expect(crashes.at(-1)!.error.code).toBe('trap')
      expect(rt.inspect(t)?.status).toBe('failed')
      // A cast to a failed instance is a dead letter, not an exception.
      const dead = collect(rt, 'dead-letter')
      rt.cast(t, 'ok')
      expect(dead.map((d) => d.reason.code)).toEqual(['instance-failed'])
    }
    // A healthy instance of the same module is unaffected.
    const ok = await rt.spawn({ name: 'trap-ok', module: wasmPath('trap') })
    const r = await rt.call(ok, 'ok')
    expect(r.kind === 'reply' && utf8(r.data)).toBe('ok')
    // A panic in init rejects spawn with the trap and leaves no instance behind.
    await expect(rt.spawn({ name: 'trap-init', module: wasmPath('trap'), initPayload: 'panic' })).rejects.toMatchObject({ code: 'trap' })
    expect(crashes.at(-1)).toMatchObject({ name: 'trap-init', handler: 'init' })
    expect(rt.instances().some((i) => i.name === 'trap-init')).toBe(false)
    await rt.shutdown()
  })

  test('stack exhaustion in a JS handler is a crash of that instance, not of the host', async () => {
    // (A Rust guest's unbounded recursion runs its shadow stack below address 0, which V8
    // reports as an out-of-bounds access: the "stack" case in the test above.)
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const deep = (n: number): number => (n === 0 ? 0 : 1 + deep(n - 1))
    const js = await rt.spawn({ name: 'js-deep', fn: { handleCall: () => reply(String(deep(1e7))) } })
    const r = await rt.call(js, 'x')
    expect(r.kind === 'err' && r.error.code).toBe('callee-crashed')
    expect(crashes.at(-1)).toMatchObject({ name: 'js-deep', trap: 'stack-overflow' })
    await rt.shutdown()
  })
})

describe('JS functions', () => {
  test('the full host API from a JS function, with async handlers', async () => {
    const rt = testRuntime()
    const logs = collect(rt, 'log')
    const written = collect(rt, 'state-written')
    const sink = recorder()
    const out = await rt.spawn({ name: 'sink', fn: sink.fn })
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    let initArgs: unknown[] = []
    const fn = (): EdgeFunction => ({
      async handleInit(payload, state, ctx) {
        initArgs = [payload && utf8(payload), state && utf8(state)]
        ctx.log('info', 'init done')
      },
      async handleCall(_src, msg, ctx) {
        const r = await ctx.call('pong', msg)
        ctx.cast('out', r.kind === 'reply' ? r.data : 'none')
        ctx.delayedCast(10, 'self', 'tick')
        ctx.sync(`seen:${utf8(msg)}`)
        return reply(`${ctx.name}:${ctx.slf().function === self.id.function}`)
      },
      handleCast(_src, msg, ctx) {
        if (utf8(msg) === 'tick') ctx.castRaw(out.id, 'tock')
      },
    })
    const self = await rt.spawn({ name: 'js', fn, outputs: { pong, out }, initPayload: 'a=1', stateId: 'js-state' })
    expect(initArgs).toEqual(['a=1', undefined])
    expect(logs.map((l) => [l.name, l.levelName, l.text])).toContainEqual(['js', 'info', 'init done'])
    const r = await rt.call(self, 'hello')
    expect(r.kind === 'reply' && utf8(r.data)).toBe('js:true')
    await until(() => sink.casts.length === 2)
    expect(sink.casts.map((c) => c.text)).toEqual(['PONG', 'tock'])
    expect(written.map((w) => w.stateId)).toEqual(['js-state'])
    await rt.shutdown()
  })

  test('a JS function that throws crashes like a trapping guest', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const f = await rt.spawn({
      name: 'boom',
      fn: {
        async handleCast() {
          throw new Error('kaput')
        },
      },
      restart: 'temporary',
    })
    f.cast('x')
    await until(() => crashes.length === 1)
    expect(crashes[0]).toMatchObject({ name: 'boom', handler: 'cast', trap: 'exception' })
    expect(crashes[0]!.error.message).toContain('kaput')
    expect(f.status).toBe('failed')
    await rt.shutdown()
  })
})

describe('lifecycle', () => {
  test('stop runs handle_stop, refuses queued and later messages, and removes the instance', async () => {
    const rt = testRuntime()
    const logs = collect(rt, 'log')
    const stops = collect(rt, 'stop')
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    await pong.stop()
    expect(logs.map((l) => l.text)).toContain("Ponger: 'Stop' called")
    expect(stops.map((s) => s.name)).toEqual(['pong'])
    expect(pong.status).toBe('stopped')
    expect(() => rt.cast(pong, 'x')).toThrow(expect.objectContaining({ code: 'unknown-instance' }))
    const r = await rt.call(pong, 'x')
    expect(r.kind === 'err' && r.error.code).toBe('unknown-instance')
    await rt.shutdown()
    await expect(rt.spawn({ name: 'late', module: wasmPath('pong') })).rejects.toMatchObject({ code: 'runtime-shutdown' })
  })

  test('an unknown alias in a cast is dropped with a warning, never an exception', async () => {
    const rt = testRuntime()
    const warnings = collect(rt, 'warning')
    const st = await rt.spawn({ name: 'system_test', module: wasmPath('system_test') })
    rt.cast(st, '8')
    await until(() => warnings.length === 3)
    expect(warnings.map((w) => [w.code, w.details.alias])).toEqual([
      ['unknown-alias', 'out1'],
      ['unknown-alias', 'out2'],
      ['unknown-alias', 'log'],
    ])
    expect(st.status).toBe('running')
    await rt.shutdown()
  })

  test('the same module compiles once and instantiates many times', async () => {
    const rt = testRuntime()
    const a = await rt.load(wasmPath('pong'))
    const b = await rt.load(wasmPath('pong'))
    expect(a).toBe(b)
    const refs = await Promise.all(Array.from({ length: 50 }, (_, i) => rt.spawn({ name: `p${i}`, module: a })))
    const replies = await Promise.all(refs.map((r) => r.call('x')))
    expect(replies.every((r) => r.kind === 'reply' && utf8(r.data) === 'PONG')).toBe(true)
    await rt.shutdown()
  })
})
