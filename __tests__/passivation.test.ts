import { describe, expect, test } from '@jest/globals'
import { memoryStore } from '../adapters/memory'
import type { StateStore } from '../lib/state/store'
import { Runtime, utf8, type InstanceId, type EdgeFunction, type WorkflowSpec } from '../lib/node/index'
import { createTestKit } from '../lib/testing/index'
import { collectMetrics, toPrometheus } from '../lib/inspect/index'
import { collect, settle, testRuntime, until, wasmPath } from './helpers/fixtures'

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (r: { kind: string; data?: Uint8Array }) => (r.kind === 'reply' ? utf8(r.data!) : `<${r.kind}>`)

/** A JS sink that records what it receives. */
async function sink(rt: Runtime, name = 'sink') {
  const got: string[] = []
  const ref = await rt.spawn({
    name,
    fn: {
      handleCast: (_from: InstanceId, b: Uint8Array) => {
        got.push(utf8(b))
      },
    },
  })
  return { ref, got }
}

describe('hibernate and activate (crashy.wasm: init casts its payload and state, stop casts "stop")', () => {
  test('handle_stop runs, the instance is released, and the next message re-inits it with the last synced state', async () => {
    const store = memoryStore()
    const rt = testRuntime({ stateStore: store })
    const s = await sink(rt)
    const lifecycle = collect(rt, 'lifecycle')
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref }, initPayload: 'p=1', passivate: true })
    rt.cast(c, 'sync:abc')
    await until(() => store.get(rt.inspect(c)!.stateId) !== null, 2000, 'the state write')
    expect(rt.hibernate(c)).toBe(true)
    expect(rt.inspect(c)).toMatchObject({ status: 'hibernated', mailbox: 0 })
    await until(() => s.got.includes('stop'), 2000, 'handle_stop')
    expect(lifecycle.map((e) => e.to)).toEqual(['running', 'hibernating', 'hibernated'])
    // A call wakes it: fresh instance, handle_init(init payload, synced state), then the call.
    const r = await rt.call(c, 'state')
    expect(text(r)).toBe('abc')
    expect(rt.inspect(c)).toMatchObject({ status: 'running', restarts: 0 })
    expect(s.got).toEqual(['init:p=1', 'state:-', 'stop', 'init:p=1', 'state:abc'])
    expect(lifecycle.map((e) => e.to).slice(3)).toEqual(['activating', 'running'])
    expect(rt.passivationStats()).toEqual({ active: 1, hibernations: 1, activations: 1 })
    await rt.shutdown()
  })

  test('messages that arrive while hibernated or activating are all processed, in order', async () => {
    const seen: string[] = []
    const rt = testRuntime()
    let inits = 0
    const fn = (): EdgeFunction => ({
      async handleInit() {
        inits++
        await new Promise((r) => setTimeout(r, 5))
      },
      handleCast: (_s, m) => {
        seen.push(utf8(m))
      },
    })
    const a = await rt.spawn({ name: 'a', fn, passivate: true })
    expect(rt.hibernate(a)).toBe(true)
    for (let i = 0; i < 200; i++) rt.cast(a, String(i))
    expect(rt.inspect(a)!.status).toBe('activating')
    await until(() => seen.length === 200, 3000, 'the queued casts')
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => String(i)))
    expect(inits).toBe(2)
    await rt.shutdown()
  })

  test('not idle means no hibernation: a busy instance, a queued message, a non-passivating one', async () => {
    const rt = testRuntime()
    let release!: () => void
    const slow = await rt.spawn({
      name: 'slow',
      fn: {
        handleCast: () =>
          new Promise<void>((r) => {
            release = r
          }),
      },
      passivate: true,
    })
    rt.cast(slow, 'x')
    await until(() => rt.inspect(slow)!.busy, 1000, 'the handler to start')
    expect(rt.hibernate(slow)).toBe(false)
    rt.cast(slow, 'y')
    release()
    await until(() => !rt.inspect(slow)!.busy || rt.inspect(slow)!.mailbox === 0, 1000, 'the first handler')
    const plain = await rt.spawn({ name: 'plain', fn: {} })
    expect(rt.hibernate(plain)).toBe(false)
    expect(rt.inspect(plain)!.status).toBe('running')
    release()
    await rt.shutdown()
  })

  test('the in-memory copy of the state is kept until the store acknowledged it (a failing store loses nothing)', async () => {
    const good = memoryStore()
    let failing = false
    const flaky: StateStore = {
      get: (k) => good.get(k),
      set: (k, v) => (failing ? Promise.reject(new Error('store down')) : good.set(k, v)),
      delete: (k) => good.delete(k),
    }
    const rt = testRuntime({ stateStore: flaky, stateWrites: { retryInitialMs: 5, retryMaxMs: 20 } })
    const s = await sink(rt)
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref }, passivate: true })
    const stateId = rt.inspect(c)!.stateId
    rt.cast(c, 'sync:v1')
    await until(() => good.get(stateId) !== null, 2000, 'the first write')
    failing = true
    const failed = collect(rt, 'state-sync-failed')
    rt.cast(c, 'sync:v2')
    await until(() => failed.length > 0, 2000, 'a failed write')
    expect(rt.hibernate(c)).toBe(true)
    // The store still has v1; the activation must get v2 from memory.
    expect(text(await rt.call(c, 'state'))).toBe('v2')
    // Once the store is back, the retried write lands.
    failing = false
    await rt.shutdown()
    expect(utf8((await good.get(stateId))!)).toBe('v2')
  })

  test('a transient instance keeps its state in memory across hibernation', async () => {
    const rt = testRuntime()
    const s = await sink(rt)
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref }, statePolicy: 'transient', passivate: true })
    rt.cast(c, 'sync:mem')
    await settle()
    expect(rt.hibernate(c)).toBe(true)
    expect(text(await rt.call(c, 'state'))).toBe('mem')
    await rt.shutdown()
  })

  test('stopping a hibernated instance runs no handler again and refuses later messages', async () => {
    const rt = testRuntime()
    const s = await sink(rt)
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref }, passivate: true })
    rt.hibernate(c)
    await until(() => s.got.includes('stop'), 1000, 'handle_stop')
    await rt.stop(c)
    expect(s.got.filter((t) => t === 'stop')).toHaveLength(1)
    expect(rt.inspect(c)).toBeUndefined()
    expect(rt.passivationStats().active).toBe(0)
    await rt.shutdown()
  })

  test('a stop while the activation instantiates: no init runs and the fresh instance is released', async () => {
    const rt = testRuntime()
    const s = await sink(rt)
    const dead = collect(rt, 'dead-letter')
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref }, lazy: true })
    rt.cast(c, 'hello')
    expect(rt.inspect(c)!.status).toBe('activating')
    await rt.stop(c)
    await settle()
    expect(s.got).toEqual([])
    expect(dead.map((d) => d.reason.code)).toEqual(['instance-stopped'])
    expect(rt.passivationStats()).toMatchObject({ active: 0, activations: 1 })
    await rt.shutdown()
  })

  test('a stop while the activation reads the state: neither handle_init nor handle_stop runs', async () => {
    const good = memoryStore()
    let release!: () => void
    let reads = 0
    const store: StateStore = {
      get: async (k) => {
        reads++
        await new Promise<void>((r) => {
          release = r
        })
        return good.get(k)
      },
      set: (k, v) => good.set(k, v),
      delete: (k) => good.delete(k),
    }
    const rt = testRuntime({ stateStore: store, statePolicy: 'transient' })
    const s = await sink(rt)
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref }, statePolicy: 'node-local', lazy: true })
    rt.cast(c, 'hello')
    await until(() => reads === 1, 2000, 'the state read')
    const stopped = rt.stop(c)
    release()
    await stopped
    await settle()
    expect(s.got).toEqual([])
    await rt.shutdown()
  })

  test('a worker-isolated instance: hibernation ends its worker, the next message starts a new one with the state', async () => {
    const rt = testRuntime()
    const c = await rt.spawn({ name: 'tally-w', module: wasmPath('tally'), isolation: 'worker', passivate: true })
    expect(text(await rt.call(c, 'x'))).toBe('1')
    expect(text(await rt.call(c, 'x'))).toBe('2')
    const before = (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((r) => r === 'MessagePort').length
    expect(rt.hibernate(c)).toBe(true)
    await until(() => rt.inspect(c)!.status === 'hibernated', 3000, 'the hibernation')
    await until(
      () => (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((r) => r === 'MessagePort').length < before,
      3000,
      'the worker to end',
    )
    expect(text(await rt.call(c, 'x'))).toBe('3')
    await rt.shutdown()
  })

  test('a crash in the activation init goes to the supervisor; the waiting messages reach the restarted instance', async () => {
    const rt = testRuntime({ supervision: { backoff: { initialMs: 1, maxMs: 1, jitter: 0 } } })
    let inits = 0
    const seen: string[] = []
    const crashes = collect(rt, 'crash')
    const a = await rt.spawn({
      name: 'a',
      passivate: true,
      fn: () => ({
        handleInit: () => {
          if (++inits === 2) throw new Error('activation init fails once')
        },
        handleCast: (_s, m) => {
          seen.push(utf8(m))
        },
      }),
    })
    rt.hibernate(a)
    rt.cast(a, 'one')
    rt.cast(a, 'two')
    await until(() => seen.length === 2, 3000, 'the casts after the restart')
    expect(seen).toEqual(['one', 'two'])
    expect(crashes).toHaveLength(1)
    expect(crashes[0]).toMatchObject({ handler: 'init' })
    expect(rt.inspect(a)).toMatchObject({ status: 'running', restarts: 1 })
    // After a restart it still passivates.
    expect(rt.hibernate(a)).toBe(true)
    await rt.shutdown()
  })
})

describe('lazy spawn', () => {
  test('addressable at once, instantiated by the first message with the stored state', async () => {
    const store = memoryStore()
    await store.set('counter-7', bytes('stored'))
    const rt = testRuntime({ stateStore: store })
    const s = await sink(rt)
    const instantiated: string[] = []
    rt.observe({
      instantiated: (a) => {
        instantiated.push(a.name)
      },
    })
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref }, initPayload: 'lazy', stateId: 'counter-7', lazy: true })
    expect(rt.inspect(c)!.status).toBe('hibernated')
    expect(instantiated).toEqual([])
    expect(s.got).toEqual([])
    expect(text(await rt.call(c, 'state'))).toBe('stored')
    expect(instantiated).toEqual(['crashy'])
    expect(s.got).toEqual(['init:lazy', 'state:stored'])
    await rt.shutdown()
  })

  test('a state store that is down at activation: the supervisor retries and the message waits', async () => {
    const good = memoryStore()
    await good.set('s', bytes('kept'))
    let down = 0
    const store: StateStore = {
      get: (k) => (down-- > 0 ? Promise.reject(new Error('connection refused')) : good.get(k)),
      set: (k, v) => good.set(k, v),
      delete: (k) => good.delete(k),
    }
    const rt = testRuntime({ stateStore: store, supervision: { backoff: { initialMs: 1, maxMs: 1, jitter: 0 } } })
    const crashes = collect(rt, 'crash')
    const s = await sink(rt)
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref }, stateId: 's', lazy: true })
    down = 2
    expect(text(await rt.call(c, 'state'))).toBe('kept')
    expect(crashes.length).toBeGreaterThanOrEqual(1)
    expect(crashes[0]!.error.code).toBe('state-store-failed')
    await rt.shutdown()
  })

  test('instances spawned without outputs share no mapping: setOutput on one leaves the others alone', async () => {
    const rt = testRuntime()
    const a = await rt.spawn({ name: 'a', module: wasmPath('tally'), lazy: true })
    const b = await rt.spawn({ name: 'b', module: wasmPath('tally'), lazy: true })
    rt.setOutput(a, 'out', b)
    expect(rt.inspect(a)!.outputs).toEqual({ out: b.id })
    expect(rt.inspect(b)!.outputs).toEqual({})
    const c = await rt.spawn({ name: 'c', module: wasmPath('tally'), lazy: true })
    expect(rt.inspect(c)!.outputs).toEqual({})
    rt.setOutput(a, 'out', null)
    expect(rt.inspect(a)!.outputs).toEqual({})
    await rt.shutdown()
  })

  test('a workflow function annotated passivate=lazy starts hibernated; a bad value is a validation problem', async () => {
    // file-log writes only under the workflow's folder or a log root: /dev is the root here.
    const rt = testRuntime({ logRoot: '/dev' })
    const wf: WorkflowSpec = {
      functions: [
        {
          name: 'crashy',
          class_specification: { id: 'crashy', function_type: 'RUST_WASM', version: '0.1', code: wasmPath('crashy'), outputs: ['out'] },
          output_mapping: { out: 'log' },
          annotations: { passivate: 'lazy' },
        },
      ],
      resources: [{ name: 'log', class_type: 'file-log', output_mapping: {}, configurations: { filename: 'null' } }],
      annotations: {},
    }
    const h = await rt.startWorkflow(wf, { name: 'lazy-wf' })
    expect(rt.inspect(h.get('crashy')!)!.status).toBe('hibernated')
    expect(text(await rt.call(h.get('crashy')!, 'state'))).toBe('')
    expect(rt.inspect(h.get('crashy')!)!.status).toBe('running')
    const bad = await rt.validateWorkflow({ ...wf, functions: [{ ...wf.functions![0]!, annotations: { passivate: 'sometimes' } }] })
    expect(bad.map((p) => p.field)).toContain('annotations.passivate')
    await rt.shutdown()
  })
})

describe('policies', () => {
  test('maxActive: touching 40 instances keeps at most 5 live, and every one answers with its own state', async () => {
    const store = memoryStore()
    for (let i = 0; i < 40; i++) await store.set(`c${i}`, bytes(`state-${i}`))
    const rt = testRuntime({ stateStore: store, passivation: { maxActive: 5 } })
    const s = await sink(rt)
    const refs = []
    for (let i = 0; i < 40; i++) refs.push(await rt.spawn({ name: `c${i}`, module: wasmPath('crashy'), outputs: { out: s.ref }, stateId: `c${i}`, lazy: true }))
    let maxLive = 0
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 40; i++) {
        expect(text(await rt.call(refs[i]!, 'state'))).toBe(`state-${i}`)
        maxLive = Math.max(maxLive, rt.instances().filter((x) => x.name !== 'sink' && x.status === 'running').length)
      }
    }
    expect(maxLive).toBeLessThanOrEqual(5)
    const st = rt.passivationStats()
    expect(st.active).toBeLessThanOrEqual(5)
    expect(st.activations).toBe(80)
    expect(st.hibernations).toBe(80 - st.active)
    await rt.shutdown()
  })

  test('idleMs with virtual time: idle instances hibernate between idleMs and 2×idleMs; their delayed casts still arrive', async () => {
    const kit = createTestKit({ Runtime, passivation: { idleMs: 1000 } })
    const rt = kit.runtime
    const seen: string[] = []
    const busy = await rt.spawn({
      name: 'busy',
      fn: {
        handleCast: (_s, m, ctx) => {
          seen.push(`busy:${utf8(m)}`)
          ctx.delayedCast(400, 'self', 'tick')
        },
      },
      passivate: true,
    })
    const sleepy = await rt.spawn({
      name: 'sleepy',
      passivate: true,
      fn: {
        handleCast: (_s, m, ctx) => {
          seen.push(`sleepy:${utf8(m)}`)
          if (utf8(m) === 'arm') ctx.delayedCast(5000, 'self', 'alarm')
        },
      },
    })
    rt.cast(busy, 'go')
    rt.cast(sleepy, 'arm')
    await kit.advance(999)
    expect(rt.inspect(sleepy)!.status).toBe('running')
    await kit.advance(1001)
    expect(rt.inspect(sleepy)!.status).toBe('hibernated')
    // The instance that keeps re-arming a 400 ms timer is never idle for a whole sweep.
    expect(rt.inspect(busy)!.status).toBe('running')
    await kit.advance(3100)
    expect(seen).toContain('sleepy:alarm')
    expect(rt.inspect(sleepy)!.status).toBe('running')
    expect(rt.passivationStats().activations).toBe(1)
    await rt.shutdown()
  })

  test('metrics count activations and hibernations and gauge the hibernated instances', async () => {
    const rt = testRuntime()
    const m = collectMetrics(rt)
    const refs = []
    for (let i = 0; i < 3; i++) refs.push(await rt.spawn({ name: 'tally', module: wasmPath('tally'), lazy: true }))
    expect(text(await rt.call(refs[0]!, 'x'))).toBe('1')
    expect(rt.hibernate(refs[0]!)).toBe(true)
    expect(text(await rt.call(refs[0]!, 'x'))).toBe('2')
    const t = m.snapshot().functions['tally']!
    expect(t).toMatchObject({ activations: 2, hibernations: 1, instances: 3, hibernated: 2 })
    expect(t.instantiate.count).toBe(2)
    const prom = toPrometheus(m.snapshot())
    expect(prom).toMatch(/^edgeless_activations_total\{function="tally"\} 2$/m)
    expect(prom).toMatch(/^edgeless_hibernated_instances\{function="tally"\} 2$/m)
    m.close()
    await rt.shutdown()
  })

  test('bad passivation options are refused with the fix', () => {
    expect(() => new Runtime({ passivation: { idleMs: -1 } })).toThrow(/idleMs must be a positive/)
    expect(() => new Runtime({ passivation: { maxActive: 0.5 } })).toThrow(/maxActive must be a positive integer/)
  })
})
