import { createServer, connect, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals'
import IORedis from 'ioredis'
import { memoryStore } from '../adapters/memory'
import { redisStore } from '../adapters/redis'
import type { StateStore } from '../lib/state/store'
import { reply, utf8, type Runtime } from '../lib/node/index'
import { collect, testRuntime, until, wasmPath } from './helpers/fixtures'

/** A JS function that syncs every cast's payload and answers calls with what it last synced. */
const syncer = () => ({
  handleInit(_p: Uint8Array | undefined, state: Uint8Array | undefined) {
    this.last = state ? utf8(state) : '-'
  },
  handleCast(_s: unknown, m: Uint8Array, ctx: { sync(b: Uint8Array): void }) {
    this.last = utf8(m)
    ctx.sync(m)
  },
  handleCall(_s: unknown, m: Uint8Array) {
    return reply(utf8(m) === 'last' ? this.last : 'pong')
  },
  last: '-',
})

async function spawnSyncer(rt: Runtime, options: Record<string, unknown> = {}) {
  return rt.spawn({ name: 'syncer', fn: syncer, stateId: 'the-state', ...options })
}

describe('state policies', () => {
  test('node-local and global go to their stores; transient writes nothing but a restart still gets it', async () => {
    const local = memoryStore()
    const global = memoryStore()
    const rt = testRuntime({ stateStores: { 'node-local': local, global }, supervision: { backoff: { initialMs: 0 } } })
    const l = await rt.spawn({ name: 'l', fn: syncer, stateId: 'l' })
    const g = await rt.spawn({ name: 'g', fn: syncer, stateId: 'g', statePolicy: 'global' })
    const t = await rt.spawn({ name: 't', module: wasmPath('crashy'), stateId: 't', statePolicy: 'transient' })
    l.cast('L')
    g.cast('G')
    t.cast('sync:T')
    await rt.call(l, 'x')
    await rt.call(g, 'x')
    await rt.call(t, 'x')
    expect(local.list!()).toEqual(['l'])
    expect(global.list!()).toEqual(['g'])
    await rt.call(t, 'panic')
    await until(() => rt.inspect(t)?.restarts === 1 && rt.inspect(t)?.status === 'running', 2000, 'restart')
    const r = await rt.call(t, 'state')
    expect(r.kind === 'reply' && utf8(r.data)).toBe('T')
    expect([...(local.list!() as string[]), ...(global.list!() as string[])]).not.toContain('t')
    await rt.shutdown()
  })

  test('bad policies are refused; the workflow annotation state-policy is honoured', async () => {
    const local = memoryStore()
    const global = memoryStore()
    const rt = testRuntime({ stateStores: { 'node-local': local, global } })
    await expect(rt.spawn({ name: 'x', fn: syncer, statePolicy: 'cloud' as never })).rejects.toMatchObject({ code: 'invalid-argument' })
    const wf = await rt.startWorkflow(
      {
        functions: [
          {
            name: 'c',
            class_specification: { id: 'c', function_type: 'RUST_WASM', version: '1', code: wasmPath('crashy'), outputs: [] },
            annotations: { 'state-policy': 'global' },
          },
        ],
      },
      { name: 'pol' },
    )
    wf.get('c')!.cast('sync:in-global')
    await wf.stop({ drain: true })
    expect(global.list!()).toEqual(['pol/c'])
    expect(local.list!()).toEqual([])
    expect(
      await rt.validateWorkflow({
        functions: [
          {
            name: 'c',
            class_specification: { id: 'c', function_type: 'RUST_WASM', version: '1', code: wasmPath('crashy'), outputs: [] },
            annotations: { 'state-policy': 'cloud' },
          },
        ],
      }),
    ).toEqual([expect.objectContaining({ field: 'annotations.state-policy' })])
    await rt.shutdown()
  })
})

// ---- a store that fails: retries, ordering, bounded buffer, flush timeout ----------------

/** A real in-memory store whose availability the test switches (stands for a store that goes down). */
function switchableStore() {
  const inner = memoryStore()
  let down = false
  let hang = false
  const writes: string[] = []
  const store: StateStore = {
    get: (id) => inner.get(id),
    async set(id, data) {
      if (hang) return new Promise<void>(() => {})
      await new Promise((r) => setTimeout(r, 1))
      if (down) throw new Error('connection refused')
      writes.push(utf8(data))
      inner.set(id, data)
    },
    delete: (id) => inner.delete(id),
  }
  return {
    store,
    inner,
    writes,
    setDown: (v: boolean) => {
      down = v
    },
    setHang: (v: boolean) => {
      hang = v
    },
  }
}

describe('writes under failure', () => {
  test('a failing store never blocks the mailbox; writes retry with backoff and the newest value lands', async () => {
    const s = switchableStore()
    const rt = testRuntime({ stateStore: s.store, stateWrites: { retryInitialMs: 5, retryMaxMs: 20 } })
    const failed = collect(rt, 'state-sync-failed')
    const written = collect(rt, 'state-written')
    const a = await spawnSyncer(rt)
    s.setDown(true)
    for (let i = 1; i <= 20; i++) a.cast(`v${i}`)
    // The actor answers right away although nothing can be written.
    const r = await rt.call(a, 'last')
    expect(r.kind === 'reply' && utf8(r.data)).toBe('v20')
    await until(() => failed.length >= 3, 2000, 'retries')
    expect(failed.slice(0, 3).map((f) => [f.attempt, f.retryInMs])).toEqual([
      [1, 5],
      [2, 10],
      [3, 20],
    ])
    expect(failed[0]!.error.code).toBe('state-store-failed')
    s.setDown(false)
    await until(() => utf8((s.inner.get('the-state') as Uint8Array) ?? new Uint8Array()) === 'v20', 2000, 'the newest value')
    // Writes were in order and coalesced: never an older value after a newer one.
    const nums = s.writes.map((w) => Number(w.slice(1)))
    expect([...nums].sort((x, y) => x - y)).toEqual(nums)
    expect(written.at(-1)).toMatchObject({ stateId: 'the-state', bytes: 3 })
    await rt.shutdown()
  })

  test("sync: 'wait' holds the next message until the write is acknowledged", async () => {
    const s = switchableStore()
    const rt = testRuntime({ stateStore: s.store, stateWrites: { retryInitialMs: 5, retryMaxMs: 5 } })
    const a = await spawnSyncer(rt, { sync: 'wait' })
    s.setDown(true)
    a.cast('durable')
    let answered = false
    const call = rt.call(a, 'last', { timeoutMs: 10_000 }).then((r) => {
      answered = true
      return r
    })
    await new Promise((r) => setTimeout(r, 100))
    expect(answered).toBe(false)
    expect(rt.inspect(a)?.mailbox).toBe(1)
    s.setDown(false)
    const r = await call
    expect(r.kind === 'reply' && utf8(r.data)).toBe('durable')
    expect(s.writes).toEqual(['durable'])
    await rt.shutdown()
  })

  test('stopping flushes pending writes; a store still down past the flush timeout reports them lost, with the value', async () => {
    const s = switchableStore()
    const rt = testRuntime({ stateStore: s.store, stateWrites: { retryInitialMs: 5, retryMaxMs: 10, flushTimeoutMs: 150 } })
    const lost = collect(rt, 'state-lost')
    const a = await spawnSyncer(rt)
    a.cast('kept')
    await rt.call(a, 'x')
    await until(() => s.writes.length === 1, 1000, 'first write')
    s.setDown(true)
    a.cast('not-kept')
    await rt.call(a, 'x')
    await a.stop()
    expect(lost).toHaveLength(1)
    expect(utf8(lost[0]!.data)).toBe('not-kept')
    expect(lost[0]!.error.message).toMatch(/could not be written before the flush timeout.*connection refused/)
    expect(utf8(s.inner.get('the-state') as Uint8Array)).toBe('kept')
    await rt.shutdown()
  })

  test('the buffer of pending writes is bounded: what does not fit is reported lost, not kept', async () => {
    const s = switchableStore()
    s.setHang(true) // the store accepts writes and never acknowledges them
    const rt = testRuntime({ stateStore: s.store, stateWrites: { maxBufferedBytes: 1000, flushTimeoutMs: 50 } })
    const lost = collect(rt, 'state-lost')
    const refs = await Promise.all([0, 1, 2].map((i) => rt.spawn({ name: `s${i}`, fn: syncer, stateId: `id${i}` })))
    for (const r of refs) r.cast('x'.repeat(400))
    await Promise.all(refs.map((r) => rt.call(r, 'x')))
    // Two fit (800 bytes); the third would exceed 1000.
    expect(lost.map((l) => [l.stateId, l.data.length])).toEqual([['id2', 400]])
    expect(lost[0]!.error.message).toMatch(/raise stateWrites.maxBufferedBytes/)
    await rt.shutdown()
  })
})

describe('optimistic concurrency', () => {
  test('two runtimes sharing a store: the second writer gets state-conflict instead of overwriting', async () => {
    const shared = memoryStore()
    const rt1 = testRuntime({ stateStore: shared, optimisticConcurrency: true })
    const rt2 = testRuntime({ stateStore: shared, optimisticConcurrency: true })
    const conflicts2 = collect(rt2, 'state-conflict')
    const a = await spawnSyncer(rt1)
    const b = await spawnSyncer(rt2) // both read "no state" (version 0)
    a.cast('from-1')
    await rt1.call(a, 'x')
    await until(() => utf8((shared.get('the-state') as Uint8Array) ?? new Uint8Array()) === 'from-1', 1000, 'first write')
    b.cast('from-2')
    await rt2.call(b, 'x')
    await until(() => conflicts2.length === 1, 1000, 'the conflict')
    expect(conflicts2[0]).toMatchObject({ stateId: 'the-state', expected: 0, current: 1, error: { code: 'state-conflict' } })
    expect(utf8(conflicts2[0]!.data)).toBe('from-2')
    expect(utf8(shared.get('the-state') as Uint8Array)).toBe('from-1')
    // The first writer keeps writing: its version follows its own writes.
    a.cast('from-1-again')
    await rt1.call(a, 'x')
    await until(() => utf8(shared.get('the-state') as Uint8Array) === 'from-1-again', 1000, 'second write')
    await rt1.shutdown()
    await rt2.shutdown()
  })

  test('a store without versions is refused up front', () => {
    const plain: StateStore = { get: () => undefined, set: () => {}, delete: () => {} }
    expect(() => testRuntime({ stateStore: plain, optimisticConcurrency: true })).toThrow(
      expect.objectContaining({ code: 'invalid-argument', message: expect.stringMatching(/setIfVersion/) }),
    )
  })
})

// ---- the real thing: Redis goes away mid-run and comes back ---------------------------------

/** A TCP proxy in front of Redis that the test can cut (every connection dropped, new ones refused) and restore. */
async function redisProxy(): Promise<{ port: number; cut(): void; restore(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  let up = true
  const server: Server = createServer((client) => {
    if (!up) {
      client.destroy()
      return
    }
    const upstream = connect(6379, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    client.pipe(upstream)
    upstream.pipe(client)
    const end = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      up = false
      for (const s of sockets) s.destroy()
      sockets.clear()
    },
    restore() {
      up = true
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

describe('Redis unavailable mid-run', () => {
  let direct: IORedis
  const prefix = `edgeless-test:state:${process.pid}:${Date.now()}:`
  beforeAll(() => {
    direct = new IORedis({ host: '127.0.0.1', port: 6379, lazyConnect: false })
  })
  afterAll(async () => {
    const keys = await direct.keys(`${prefix}*`)
    if (keys.length) await direct.del(...keys)
    direct.disconnect()
  })

  test('every sync ends written or reported: failures while it is down, the newest value once it is back', async () => {
    const proxy = await redisProxy()
    const store = redisStore({ url: `redis://127.0.0.1:${proxy.port}`, prefix })
    const rt = testRuntime({ stateStore: store, stateWrites: { retryInitialMs: 20, retryMaxMs: 200 } })
    const failed = collect(rt, 'state-sync-failed')
    const written = collect(rt, 'state-written')
    const lost = collect(rt, 'state-lost')
    try {
      const c = await rt.spawn({ name: 'crashy', module: wasmPath('crashy'), stateId: 'redis-down' })
      c.cast('sync:before')
      await until(() => written.length === 1, 3000, 'a write while Redis is up')
      proxy.cut()
      for (let i = 1; i <= 10; i++) c.cast(`sync:during-${i}`)
      // The actor keeps working while Redis is gone.
      const r = await rt.call(c, 'state')
      expect(r.kind === 'reply' && utf8(r.data)).toBe('during-10')
      await until(() => failed.length >= 2, 5000, 'failed writes to be reported')
      expect(failed.every((f) => f.stateId === 'redis-down' && f.error.code === 'state-store-failed')).toBe(true)
      proxy.restore()
      await until(() => written.some((w) => (w.attempts ?? 1) > 1), 10_000, 'the retried write to land')
      const check = redisStore({ url: 'redis://127.0.0.1:6379', prefix })
      const stored = await check.get('redis-down')
      await check.dispose?.()
      expect(stored && utf8(stored)).toBe('during-10')
      expect(lost).toEqual([])
    } finally {
      await rt.shutdown()
      await store.dispose?.()
      await proxy.close()
    }
  })
})
