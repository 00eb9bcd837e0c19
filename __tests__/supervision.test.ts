import { describe, expect, test } from '@jest/globals'
import { memoryStore } from '../adapters/memory'
import { reply, utf8, type ActorRef, type EdgeFunction, type InstanceId, type Runtime, type WorkflowSpec } from '../lib/node/index'
import { seededRandom } from '../lib/testing/index'
import { collect, settle, testRuntime, until, wasmPath } from './helpers/fixtures'

/** A JS sink that records what it receives, as text and bytes. */
async function sink(rt: Runtime, name = 'sink') {
  const got: Array<{ from: InstanceId; text: string; bytes: Uint8Array }> = []
  const ref = await rt.spawn({
    name,
    fn: {
      handleCast: (from, bytes) => {
        got.push({ from, text: utf8(bytes), bytes })
      },
    },
  })
  return { ref, got, texts: () => got.map((g) => g.text) }
}

const bytes = (text: string) => new TextEncoder().encode(text)
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}
const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i)
const FAST = { backoff: { initialMs: 1, maxMs: 1, jitter: 0 } }

describe('restart after a crash', () => {
  test('a fresh instance at the same address, handle_init(init payload, last synced state) byte-exact', async () => {
    const rt = testRuntime({ supervision: FAST })
    const s = await sink(rt)
    const lifecycle = collect(rt, 'lifecycle')
    const restarts = collect(rt, 'restart')
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref }, initPayload: 'p=1' })
    const before = rt.inspect(c)!
    rt.cast(c, cat(bytes('sync:'), ALL_BYTES))
    rt.cast(c, 'panic')
    await until(() => restarts.length === 1, 3000, 'the restart')
    const after = rt.inspect(c)!
    expect(after).toMatchObject({ status: 'running', restarts: 1, id: before.id, outputs: before.outputs, stateId: before.stateId })
    expect(after.lastError).toMatchObject({ code: 'trap' })
    // The second init got the init payload again and exactly the synced bytes.
    await until(() => s.got.length === 4, 2000, 'the second init')
    expect(s.texts().slice(0, 2)).toEqual(['init:p=1', 'state:-'])
    expect(s.texts()[2]).toBe('init:p=1')
    expect(s.got[3]!.bytes).toEqual(cat(bytes('state:'), ALL_BYTES))
    const r = await rt.call(c, 'state')
    expect(r.kind === 'reply' && r.data).toEqual(ALL_BYTES)
    expect(lifecycle.filter((e) => e.name === 'crashy').map((e) => e.to)).toEqual(['running', 'crashed', 'restarting', 'running'])
    await rt.shutdown()
  })

  test('state synced in the very handler that crashed is the state the restart gets', async () => {
    const rt = testRuntime({ supervision: FAST })
    const s = await sink(rt)
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref } })
    rt.cast(c, 'panic-after-sync:last words')
    await until(() => s.got.length === 4, 3000, 'restart')
    expect(s.texts()[3]).toBe('state:last words')
    await rt.shutdown()
  })

  test('the crashing message is a dead letter, not retried; the queue behind it is processed in order by the restarted instance', async () => {
    const rt = testRuntime({ supervision: FAST })
    const s = await sink(rt)
    const dead = collect(rt, 'dead-letter')
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), outputs: { out: s.ref } })
    for (const m of ['a', 'panic', 'b', 'c', 'd']) rt.cast(c, m)
    const queued = rt.call(c, 'after') // a call queued behind the crash is answered by the restarted instance
    const r = await queued
    expect(r.kind === 'reply' && utf8(r.data)).toBe('re:after')
    expect(s.texts().filter((t) => t.startsWith('got:'))).toEqual(['got:a', 'got:b', 'got:c', 'got:d'])
    expect(dead.map((d) => [utf8(d.payload), d.reason.code])).toEqual([['panic', 'trap']])
    await rt.shutdown()
  })

  test('a caller waiting on the crashing call gets Err at once, without waiting for the restart', async () => {
    const rt = testRuntime({ supervision: { backoff: { initialMs: 60_000, jitter: 0 } } })
    const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy') })
    const t0 = Date.now()
    const r = await rt.call(c, 'panic')
    expect(r.kind === 'err' && r.error.code).toBe('callee-crashed')
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(rt.inspect(c)?.status).toBe('crashed')
    // Messages sent meanwhile wait in the mailbox (the restart is a minute away).
    rt.cast(c, 'waits')
    expect(rt.inspect(c)?.mailbox).toBe(1)
    await rt.shutdown()
  })

  test('every WAT trap kind crashes with its typed kind, and the restarted instance answers again', async () => {
    const rt = testRuntime({ supervision: { ...FAST, maxRestarts: 100 } })
    const crashes = collect(rt, 'crash')
    const restarts = collect(rt, 'restart')
    // Own memory: a dense instance's out-of-bounds access stays in its region instead of trapping (dense.test.ts).
    const t = await rt.spawn({ name: 'traps', module: wasmPath('traps'), dense: false })
    const kinds: Record<string, string> = {
      u: 'unreachable',
      d: 'divide-by-zero',
      o: 'integer-overflow',
      m: 'out-of-bounds',
      n: 'indirect-call',
      t: 'indirect-call',
      s: 'stack-overflow',
      f: 'invalid-conversion',
    }
    for (const [cmd, kind] of Object.entries(kinds)) {
      const n = restarts.length
      const r = await rt.call(t, cmd)
      expect(r.kind === 'err' && r.error.code).toBe('callee-crashed')
      expect([cmd, crashes.at(-1)!.trap]).toEqual([cmd, kind])
      await until(() => restarts.length === n + 1, 3000, `restart after ${cmd}`)
      const ok = await rt.call(t, 'hello')
      expect(ok.kind === 'reply' && utf8(ok.data)).toBe('ok')
    }
    expect(rt.inspect(t)?.restarts).toBe(8)
    await rt.shutdown()
  })

  test('a JS function restarts too; a factory gives the restarted instance a fresh closure', async () => {
    const rt = testRuntime({ supervision: FAST })
    const restarts = collect(rt, 'restart')
    let made = 0
    const f = await rt.spawn({
      name: 'js',
      fn: () => {
        const id = ++made
        let seen = 0
        return {
          handleCall: (_s, m) => {
            if (utf8(m) === 'boom') throw new Error('boom')
            return reply(`${id}:${++seen}`)
          },
        } as EdgeFunction
      },
    })
    expect(await rt.call(f, 'x')).toMatchObject({ kind: 'reply' })
    await rt.call(f, 'boom')
    await until(() => restarts.length === 1, 2000, 'restart')
    const r = await rt.call(f, 'x')
    expect(r.kind === 'reply' && utf8(r.data)).toBe('2:1')
    await rt.shutdown()
  })
})

describe('restart types', () => {
  test('permanent: restarted after a crash and after a normal stop of that instance; only shutdown ends it', async () => {
    const rt = testRuntime({ supervision: FAST })
    const s = await sink(rt)
    const restarts = collect(rt, 'restart')
    const c = await rt.spawn({ name: 'perm', module: wasmPath('crashy'), outputs: { out: s.ref }, restart: 'permanent' })
    rt.cast(c, 'sync:kept')
    await rt.call(c, 'x')
    await c.stop()
    await until(() => restarts.length === 1, 2000, 'restart after stop')
    expect(rt.inspect(c)).toMatchObject({ status: 'running', restarts: 1, id: c.id })
    expect(s.texts()).toContain('stop')
    const r = await rt.call(c, 'state')
    expect(r.kind === 'reply' && utf8(r.data)).toBe('kept')
    // The ref cached the first instance (runtime.actorOf); a cast through it reaches the new one.
    rt.cast(c, 'sync:again')
    const r2 = await rt.call(c, 'state')
    expect(r2.kind === 'reply' && utf8(r2.data)).toBe('again')
    await rt.call(c, 'panic')
    await until(() => restarts.length === 2, 2000, 'restart after crash')
    await rt.shutdown()
    expect(rt.inspect(c)).toBeUndefined()
    expect(() => rt.cast(c, 'x')).toThrow(expect.objectContaining({ code: 'unknown-instance' }))
    await settle()
    expect(restarts).toHaveLength(2)
  })

  test('transient: restarted after a crash, not after a normal stop', async () => {
    const rt = testRuntime({ supervision: FAST })
    const restarts = collect(rt, 'restart')
    const c = await rt.spawn({ name: 'tr', module: wasmPath('crashy'), restart: 'transient' })
    await rt.call(c, 'panic')
    await until(() => restarts.length === 1, 2000, 'restart')
    await c.stop()
    await new Promise((r) => setTimeout(r, 30))
    expect(rt.inspect(c)).toBeUndefined()
    expect(restarts).toHaveLength(1)
    await rt.shutdown()
  })

  test('temporary: never restarted; failed, its queue refused, calls answered instance-failed', async () => {
    const rt = testRuntime({ supervision: FAST })
    const dead = collect(rt, 'dead-letter')
    const warnings = collect(rt, 'warning')
    const c = await rt.spawn({ name: 'tmp', module: wasmPath('crashy'), restart: 'temporary' })
    rt.cast(c, 'panic')
    rt.cast(c, 'queued')
    await until(() => rt.inspect(c)?.status === 'failed', 2000, 'failed')
    expect(dead.map((d) => [utf8(d.payload), d.reason.code])).toEqual([
      ['panic', 'trap'],
      ['queued', 'instance-failed'],
    ])
    expect(warnings.filter((w) => w.code === 'gave-up').map((w) => w.message)).toEqual([
      expect.stringMatching(/"tmp" crashed and is temporary, so it is not restarted/),
    ])
    const r = await rt.call(c, 'x')
    expect(r.kind === 'err' && r.error.code).toBe('instance-failed')
    await new Promise((r) => setTimeout(r, 30))
    expect(rt.inspect(c)?.restarts).toBe(0)
    await rt.shutdown()
  })

  test('an invalid restart type, capacity or policy is an invalid-argument error', async () => {
    const rt = testRuntime()
    await expect(rt.spawn({ name: 'x', module: wasmPath('pong'), restart: 'sometimes' as never })).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/'permanent', 'transient' or 'temporary'/),
    })
    await expect(rt.spawn({ name: 'x', module: wasmPath('pong'), mailboxCapacity: 0 })).rejects.toMatchObject({ code: 'invalid-argument' })
    await expect(rt.spawn({ name: 'x', module: wasmPath('pong'), overflow: 'spill' as never })).rejects.toMatchObject({ code: 'invalid-argument' })
    expect(() => testRuntime({ supervision: { strategy: 'all_for_none' as never } })).toThrow(expect.objectContaining({ code: 'invalid-argument' }))
    await rt.shutdown()
  })
})

// ---- workflows: strategies and intensity ---------------------------------------------

const fn = (name: string, mapping: Record<string, string>, annotations: Record<string, string> = {}) => ({
  name,
  class_specification: { id: 'crashy', function_type: 'RUST_WASM', version: '0.1', code: wasmPath('crashy'), outputs: Object.keys(mapping) },
  output_mapping: mapping,
  annotations,
})

function collectorClass() {
  const got: Array<{ from: InstanceId; text: string }> = []
  return {
    got,
    cls: {
      classType: 'collect',
      create: () => ({
        handleCast: (from: InstanceId, b: Uint8Array) => {
          got.push({ from, text: utf8(b) })
        },
      }),
    },
  }
}

async function threeCrashies(strategy: string) {
  const { cls, got } = collectorClass()
  const rt = testRuntime({ resources: [cls] })
  const spec: WorkflowSpec = {
    functions: ['a', 'b', 'c'].map((n) => fn(n, { out: 'sink' }, { 'init-payload': n })),
    resources: [{ name: 'sink', class_type: 'collect' }],
    annotations: { 'restart-strategy': strategy },
  }
  const wf = await rt.startWorkflow(spec, { supervision: FAST })
  await until(() => got.length === 6, 2000, 'inits')
  const name = (id: InstanceId) => ['a', 'b', 'c'].find((n) => wf.get(n)!.id.function === id.function)
  const events = () => got.slice(6).map((g) => `${name(g.from)}:${g.text}`)
  return { rt, wf, events }
}

describe('strategies (order = order in the workflow)', () => {
  test('one_for_one (the default): only the crashed instance restarts', async () => {
    const { rt, wf, events } = await threeCrashies('one_for_one')
    wf.get('b')!.cast('panic')
    await until(() => events().length === 2, 3000, 're-init of b')
    await new Promise((r) => setTimeout(r, 30))
    expect(events()).toEqual(['b:init:b', 'b:state:-'])
    await rt.shutdown()
  })

  test('one_for_all: every instance is stopped (stop handler) and restarted, in order', async () => {
    const { rt, wf, events } = await threeCrashies('one_for_all')
    const scheduled = collect(rt, 'restart-scheduled')
    wf.get('b')!.cast('panic')
    await until(() => events().filter((e) => e.includes(':init:')).length === 3, 3000, 're-inits')
    await new Promise((r) => setTimeout(r, 30))
    // Resources are members of the workflow too (after the functions, in order).
    expect(scheduled[0]).toMatchObject({ name: 'b', restarting: ['a', 'b', 'c', 'sink'], workflow: wf.name })
    const ev = events()
    // a and c ran their stop handlers (b crashed: its stop handler is not called).
    expect(ev.filter((e) => e.endsWith(':stop')).sort()).toEqual(['a:stop', 'c:stop'])
    expect(ev.filter((e) => e.includes(':init:'))).toEqual(['a:init:a', 'b:init:b', 'c:init:c'])
    for (const n of ['a', 'b', 'c']) expect(rt.inspect(wf.get(n)!)).toMatchObject({ status: 'running', restarts: 1 })
    await rt.shutdown()
  })

  test('rest_for_one: the crashed instance and those after it restart', async () => {
    const { rt, wf, events } = await threeCrashies('rest_for_one')
    wf.get('b')!.cast('panic')
    await until(() => events().filter((e) => e.includes(':init:')).length === 2, 3000, 're-inits')
    await new Promise((r) => setTimeout(r, 30))
    expect(events().filter((e) => e.includes(':init:'))).toEqual(['b:init:b', 'c:init:c'])
    expect(events()).toContain('c:stop')
    expect(rt.inspect(wf.get('a')!)?.restarts).toBe(0)
    await rt.shutdown()
  })

  test('restart intensity exceeded: the supervisor escalates, the workflow stops, the event carries the history', async () => {
    const { cls } = collectorClass()
    const rt = testRuntime({ resources: [cls] })
    const escalations = collect(rt, 'escalation')
    const stops = collect(rt, 'workflow-stop')
    const wf = await rt.startWorkflow(
      {
        functions: [fn('a', { out: 'sink' }), fn('b', { out: 'sink' })],
        resources: [{ name: 'sink', class_type: 'collect' }],
        annotations: { 'max-restarts': '2', 'restart-period-ms': '10000' },
      },
      { supervision: FAST },
    )
    const b = wf.get('b')!
    const restarts = collect(rt, 'restart')
    for (let i = 1; i <= 2; i++) {
      b.cast('panic')
      await until(() => restarts.length === i, 2000, `restart ${i}`)
    }
    b.cast('panic')
    await until(() => stops.length === 1, 3000, 'the workflow to stop')
    expect(escalations).toHaveLength(1)
    const e = escalations[0]!
    expect(e).toMatchObject({ workflow: wf.name, name: 'b', reason: { code: 'restart-intensity' } })
    expect(e.reason.message).toMatch(/3 restarts within 10000 ms \(at most 2 allowed\)/)
    expect(e.history.map((h) => [h.name, h.handler, h.error.code])).toEqual([
      ['b', 'cast', 'trap'],
      ['b', 'cast', 'trap'],
      ['b', 'cast', 'trap'],
    ])
    expect(wf.running).toBe(false)
    expect(rt.instances().filter((i) => i.name !== 'sink')).toEqual([])
    await rt.shutdown()
  })

  test("defaults are OTP's: 3 restarts in 5000 ms; the 4th crash escalates", async () => {
    const rt = testRuntime()
    const escalations = collect(rt, 'escalation')
    const restarts = collect(rt, 'restart')
    const wf = await rt.startWorkflow({ functions: [fn('a', {})] })
    for (let i = 1; i <= 3; i++) {
      await rt.call(wf.get('a')!, 'panic')
      await until(() => restarts.length === i, 3000, `restart ${i}`)
    }
    await rt.call(wf.get('a')!, 'panic')
    await until(() => escalations.length === 1, 3000, 'escalation')
    expect(escalations[0]!.reason.message).toMatch(/4 restarts within 5000 ms \(at most 3 allowed\)/)
    await rt.shutdown()
  })

  test('outside a workflow, exceeding the intensity gives up on that instance only', async () => {
    const rt = testRuntime({ supervision: { ...FAST, maxRestarts: 1 } })
    const escalations = collect(rt, 'escalation')
    const restarts = collect(rt, 'restart')
    const c = await rt.spawn({ name: 'c', module: wasmPath('crashy') })
    const other = await rt.spawn({ name: 'other', module: wasmPath('pong') })
    await rt.call(c, 'panic')
    await until(() => restarts.length === 1, 2000, 'restart')
    await rt.call(c, 'panic')
    await until(() => escalations.length === 1, 2000, 'escalation')
    expect(rt.inspect(c)?.status).toBe('failed')
    expect(escalations[0]).toMatchObject({ name: 'c' })
    expect(escalations[0]!.workflow).toBeUndefined()
    expect((await rt.call(other, 'x')).kind).toBe('reply')
    await rt.shutdown()
  })

  test('backoff doubles per restart within the period, capped, with jitter around it', async () => {
    const rt = testRuntime({ supervision: { maxRestarts: 10, backoff: { initialMs: 5, factor: 2, maxMs: 20, jitter: 0.5 }, random: () => 1 } })
    const scheduled = collect(rt, 'restart-scheduled')
    const restarts = collect(rt, 'restart')
    const c = await rt.spawn({ name: 'c', module: wasmPath('crashy') })
    for (let i = 1; i <= 4; i++) {
      await rt.call(c, 'panic')
      await until(() => restarts.length === i, 2000, `restart ${i}`)
    }
    // random() = 1 is the top of the jitter range: x1.5.
    expect(scheduled.map((s) => s.delayMs)).toEqual([7.5, 15, 30, 30])
    await rt.shutdown()
  })

  test('workflow annotations are validated', async () => {
    const rt = testRuntime()
    const problems = await rt.validateWorkflow({
      functions: [fn('a', {}, { restart: 'always', 'mailbox-capacity': '0', 'mailbox-overflow': 'spill' })],
      annotations: { 'restart-strategy': 'all_for_one', 'max-restarts': 'three' },
    })
    expect(problems.map((p) => p.field).sort()).toEqual([
      'annotations.mailbox-capacity',
      'annotations.mailbox-overflow',
      'annotations.max-restarts',
      'annotations.restart',
      'annotations.restart-strategy',
    ])
    await rt.shutdown()
  })
})

// ---- bounded mailboxes and graceful stop -----------------------------------------------

/** A JS function whose casts block until released, recording what it processed. */
async function gated(rt: Runtime, options: { mailboxCapacity?: number; overflow?: 'reject' | 'drop-oldest' } = {}) {
  const processed: string[] = []
  let stopped = false
  let release: () => void = () => {}
  let gate = new Promise<void>((r) => {
    release = r
  })
  const ref = await rt.spawn({
    name: 'gated',
    ...options,
    fn: {
      async handleCast(_s, m) {
        processed.push(utf8(m))
        await gate
      },
      handleCall: (_s, m) => reply(utf8(m)),
      handleStop() {
        stopped = true
      },
    },
  })
  return {
    ref,
    processed,
    get stopped() {
      return stopped
    },
    open() {
      release()
      gate = Promise.resolve()
    },
  }
}

describe('bounded mailboxes', () => {
  test('reject: a cast over capacity is dropped with mailbox-full; a call is answered Err at once', async () => {
    const rt = testRuntime()
    const full = collect(rt, 'mailbox-full')
    const dead = collect(rt, 'dead-letter')
    const g = await gated(rt, { mailboxCapacity: 3 })
    g.ref.cast('busy')
    await settle() // 'busy' is being processed: it no longer counts against the mailbox
    for (const m of ['q1', 'q2', 'q3', 'over']) g.ref.cast(m)
    expect(rt.inspect(g.ref)).toMatchObject({ mailbox: 3, mailboxCapacity: 3 })
    expect(full).toEqual([expect.objectContaining({ name: 'gated', kind: 'cast', capacity: 3, policy: 'reject' })])
    expect(dead.map((d) => [utf8(d.payload), d.reason.code])).toEqual([['over', 'mailbox-full']])
    const r = await rt.call(g.ref, 'call')
    expect(r.kind === 'err' && r.error.code).toBe('mailbox-full')
    g.open()
    await until(() => g.processed.length === 4, 2000, 'the queue')
    expect(g.processed).toEqual(['busy', 'q1', 'q2', 'q3'])
    await rt.shutdown()
  })

  test('drop-oldest: the oldest queued message is dropped for the new one', async () => {
    const rt = testRuntime()
    const dead = collect(rt, 'dead-letter')
    const g = await gated(rt, { mailboxCapacity: 2, overflow: 'drop-oldest' })
    g.ref.cast('busy')
    await settle()
    for (const m of ['q1', 'q2', 'q3', 'q4']) g.ref.cast(m)
    expect(dead.map((d) => [utf8(d.payload), d.reason.code])).toEqual([
      ['q1', 'mailbox-full'],
      ['q2', 'mailbox-full'],
    ])
    g.open()
    await until(() => g.processed.length === 3, 2000, 'the queue')
    expect(g.processed).toEqual(['busy', 'q3', 'q4'])
    await rt.shutdown()
  })

  test('the default capacity is finite (10,000) and applies to every instance', async () => {
    const rt = testRuntime()
    const full = collect(rt, 'mailbox-full')
    const g = await gated(rt)
    g.ref.cast('busy')
    await settle()
    for (let i = 0; i < 10_001; i++) g.ref.cast(String(i))
    expect(rt.inspect(g.ref)?.mailbox).toBe(10_000)
    expect(full).toHaveLength(1)
    g.open()
    await rt.shutdown()
  })
})

describe('graceful stop', () => {
  test('with drain: what is queued is processed, then the stop handler runs', async () => {
    const rt = testRuntime()
    const dead = collect(rt, 'dead-letter')
    const g = await gated(rt)
    for (const m of ['a', 'b', 'c']) g.ref.cast(m)
    await settle()
    const stopping = g.ref.stop({ drain: true })
    // New messages are refused while draining (dead letters, not exceptions).
    expect(() => rt.cast(g.ref, 'late')).not.toThrow()
    g.open()
    await stopping
    expect(g.processed).toEqual(['a', 'b', 'c'])
    expect(g.stopped).toBe(true)
    expect(dead.map((d) => utf8(d.payload))).toEqual(['late'])
    await rt.shutdown()
  })

  test('without drain: the current message finishes, the stop handler runs, the rest are dead letters', async () => {
    const rt = testRuntime()
    const dead = collect(rt, 'dead-letter')
    const g = await gated(rt)
    for (const m of ['a', 'b', 'c']) g.ref.cast(m)
    const call = rt.call(g.ref, 'queued call')
    await settle()
    const stopping = g.ref.stop()
    g.open()
    await stopping
    expect(g.processed).toEqual(['a'])
    expect(g.stopped).toBe(true)
    expect(dead.map((d) => [utf8(d.payload), d.reason.code])).toEqual([
      ['b', 'instance-stopped'],
      ['c', 'instance-stopped'],
      ['queued call', 'instance-stopped'],
    ])
    const r = await call
    expect(r.kind === 'err' && r.error.code).toBe('instance-stopped')
    await rt.shutdown()
  })

  test('a workflow stops with drain too', async () => {
    const rt = testRuntime({ stateStore: memoryStore() })
    const { cls, got } = collectorClass()
    rt.registerResource(cls)
    const wf = await rt.startWorkflow({ functions: [fn('a', { out: 'sink' })], resources: [{ name: 'sink', class_type: 'collect' }] })
    const a = wf.get('a')!
    for (let i = 0; i < 50; i++) a.cast(`m${i}`)
    await wf.stop({ drain: true })
    expect(got.filter((g) => g.text.startsWith('got:'))).toHaveLength(50)
    expect(got.at(-1)!.text).toBe('stop')
    await rt.shutdown()
  })
})

// ---- the property test -------------------------------------------------------------------

describe('property: 10,000 random crashes across a small workflow', () => {
  const seed = Number(process.env.EDGELESS_SEED ?? 20261128)

  test(`the host never throws, no queued message is lost, restarts follow the policy (seed ${seed}; replay with EDGELESS_SEED)`, async () => {
    const rand = seededRandom(seed)
    const { cls, got } = collectorClass()
    const rt = testRuntime({ resources: [cls] })
    const unhandled: unknown[] = []
    const onUnhandled = (e: unknown) => {
      unhandled.push(e)
    }
    process.on('unhandledRejection', onUnhandled)
    const crashes = collect(rt, 'crash')
    const restarts = collect(rt, 'restart')
    const dead = collect(rt, 'dead-letter')
    const escalations = collect(rt, 'escalation')
    const names = ['a', 'b', 'c']
    const wf = await rt.startWorkflow(
      {
        functions: names.map((n) => fn(n, { out: 'sink' })),
        resources: [{ name: 'sink', class_type: 'collect' }],
      },
      { supervision: { maxRestarts: 1_000_000, periodMs: 1, backoff: { initialMs: 0 } } },
    )
    const refs = new Map<string, ActorRef>(names.map((n) => [n, wf.get(n)!]))
    const sent = new Map<string, string[]>(names.map((n) => [n, []]))
    let crashesSent = 0
    let seq = 0
    const TOTAL = 10_000
    try {
      while (crashesSent < TOTAL) {
        // A burst: a few messages to random instances, some of them crashes.
        const burst = 1 + Math.floor(rand() * 8)
        for (let i = 0; i < burst && crashesSent < TOTAL; i++) {
          const n = names[Math.floor(rand() * names.length)]!
          if (rand() < 0.5) {
            refs.get(n)!.cast('panic')
            crashesSent++
          } else {
            const m = `m${seq++}`
            sent.get(n)!.push(m)
            refs.get(n)!.cast(m)
          }
        }
        // Let restarts happen now and then, so crashes land in every state (running, crashed, restarting).
        if (rand() < 0.3) await new Promise((r) => setTimeout(r, 0))
      }
      await until(
        () => names.every((n) => rt.inspect(refs.get(n)!)?.status === 'running' && rt.inspect(refs.get(n)!)?.mailbox === 0),
        60_000,
        `quiescence (seed ${seed})`,
      )
      await settle()
      expect(unhandled).toEqual([])
      expect(escalations).toEqual([])
      // Every crash was a restart (one_for_one, permanent intensity): none lost, none extra.
      expect(crashes).toHaveLength(TOTAL)
      expect(restarts).toHaveLength(TOTAL)
      // Only the crashing messages are dead letters; every other message was processed, in order per instance.
      expect(dead.every((d) => utf8(d.payload) === 'panic' && d.reason.code === 'trap')).toBe(true)
      expect(dead).toHaveLength(TOTAL)
      for (const n of names) {
        const id = refs.get(n)!.id.function
        expect({ n, got: got.filter((g) => g.from.function === id && g.text.startsWith('got:')).map((g) => g.text.slice(4)) }).toEqual({ n, got: sent.get(n) })
        expect(rt.inspect(refs.get(n)!)!.restarts).toBe(crashes.filter((c) => c.name === n).length)
      }
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await rt.shutdown()
    }
  }, 120_000)
})
