// Functions written in AssemblyScript (assembly/, the `edgeless/assembly` SDK).
//
// Fixtures (fixtures/as/*.ts, built by fixtures/build-as.mjs to fixtures/wasm/as_*.wasm):
//   as_ping, as_pong, as_counter, as_echo   ports of the Rust fixtures of the same name;
//                                           run side by side with them, they must behave
//                                           identically (same log lines, same payloads)
//   as_init_payload                         a probe of parseInitPayload (header of init_payload.ts)
//   as_probe                                a probe of the rest of the SDK (header of probe.ts)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { memoryStore } from '../adapters/memory'
import { reply, utf8, type InstanceId } from '../lib/index'
import { Runtime, type RuntimeOptions } from '../lib/node/index'
import { buildAssemblyScript } from '../lib/node/build'
import { GUEST_EXPORTS, HOST_IMPORTS, validateShape } from '../lib/wasm/abi'
import { parseModuleShape } from '../lib/wasm/parse'
import { collect, until, wasm } from './helpers/fixtures'

const enc = new TextEncoder()
const arr = (b: Uint8Array) => Array.from(b)
const bytes = (s: string) => enc.encode(s)
const repoFile = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url))

function cat(...parts: Array<string | number[] | Uint8Array>): Uint8Array {
  const bufs = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p instanceof Uint8Array ? p : Uint8Array.from(p)))
  const out = new Uint8Array(bufs.reduce((n, b) => n + b.length, 0))
  let o = 0
  for (const b of bufs) {
    out.set(b, o)
    o += b.length
  }
  return out
}

function uuidBytes(uuid: string): number[] {
  const hex = uuid.replace(/-/g, '')
  return Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16))
}
const idBytes = (id: InstanceId) => [...uuidBytes(id.node), ...uuidBytes(id.function)]

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i)

function testRuntime(options: RuntimeOptions = {}): Runtime {
  return new Runtime({ consoleLog: false, ...options })
}

/** A JS actor recording what it is cast. */
async function recorder(rt: Runtime, name = 'rec') {
  const got: Array<{ src: InstanceId; msg: Uint8Array }> = []
  const ref = await rt.spawn({
    name,
    fn: {
      handleCast(src, msg) {
        got.push({ src, msg: msg.slice() })
      },
    },
  })
  return { ref, got }
}

function replyData(r: Awaited<ReturnType<Runtime['call']>>): Uint8Array {
  if (r.kind !== 'reply') throw new Error(`expected a reply, got ${JSON.stringify(r)}`)
  return r.data
}

// ---- the module shape --------------------------------------------------------------------

describe('AssemblyScript modules have the shape of Rust ones', () => {
  const pairs = ['ping', 'pong', 'counter', 'echo'] as const

  test.each(pairs)('as_%s passes the guest-ABI validation with the same exports as the Rust %s', async (name) => {
    const asBytes = wasm(`as_${name}`)
    const rustBytes = wasm(name)
    const asShape = parseModuleShape(asBytes)
    const rustShape = parseModuleShape(rustBytes)
    expect(() => validateShape(asShape, `as_${name}`)).not.toThrow()
    expect(() => validateShape(rustShape, name)).not.toThrow()
    // The same function exports with the same signatures (Rust adds two globals, __data_end and __heap_base).
    const fnExports = (s: typeof asShape) =>
      s.exports
        .filter((e) => e.kind === 'function')
        .map((e) => `${e.name}${JSON.stringify(e.sig)}`)
        .sort()
    expect(fnExports(asShape)).toEqual(fnExports(rustShape))
    expect(fnExports(asShape).map((e) => e.split('{')[0])).toEqual(Object.keys(GUEST_EXPORTS).sort())
    expect(asShape.exports.filter((e) => e.kind !== 'function')).toEqual([{ name: 'memory', kind: 'memory' }])
    // Imports: only from env, only ABI functions with the ABI's signatures; everything the Rust
    // version imports, plus telemetry_log_asm (abort logs before it traps).
    for (const im of asShape.imports) {
      expect(im.module).toBe('env')
      expect(im.sig).toEqual(HOST_IMPORTS[im.name])
    }
    const asImports = asShape.imports.map((i) => i.name)
    expect(asImports).toEqual(expect.arrayContaining(rustShape.imports.map((i) => i.name)))
    expect(asImports.filter((n) => !rustShape.imports.some((i) => i.name === n)).filter((n) => n !== 'telemetry_log_asm')).toEqual([])
    // And the runtime loads it (compile + validation, asyncify for the ones that call).
    const rt = testRuntime()
    const fm = await rt.load(asBytes)
    expect(fm.usesCalls).toBe(name === 'ping')
    await rt.shutdown()
  })

  test('the modules are much smaller than the Rust ones', () => {
    for (const name of pairs) {
      expect(wasm(`as_${name}`).length).toBeLessThan(wasm(name).length / 2)
    }
  })
})

// ---- ping / pong ------------------------------------------------------------------------

describe('ping and pong, AssemblyScript and Rust mixed in one runtime', () => {
  test.each([
    ['as_ping', 'pong'],
    ['ping', 'as_pong'],
    ['as_ping', 'as_pong'],
  ])('%s calls %s: "Got Reply: PONG", state {"count":N} persisted and resumed', async (pingName, pongName) => {
    const store = memoryStore()
    const rt = testRuntime({ stateStore: store })
    const logs = collect(rt, 'log')
    const crashes = collect(rt, 'crash')
    const ponger = await rt.spawn({ name: 'ponger', module: wasm(pongName) })
    const pinger = await rt.spawn({ name: 'pinger', module: wasm(pingName), outputs: { ponger }, stateId: 'ping-state' })
    await until(() => logs.some((l) => l.text === 'Got Reply: PONG'), 5000, 'first PONG')
    expect(utf8((await store.get('ping-state'))!)).toBe('{"count":1}')
    await rt.stop(pinger)
    await rt.spawn({ name: 'pinger', module: wasm(pingName), outputs: { ponger }, stateId: 'ping-state' })
    await until(() => logs.filter((l) => l.text === 'Got Reply: PONG').length === 2, 5000, 'second PONG')
    expect(utf8((await store.get('ping-state'))!)).toBe('{"count":2}')
    expect(logs.filter((l) => l.name === 'ponger' && l.text.startsWith("Ponger: 'Call' called")).map((l) => l.text)).toEqual([
      `Ponger: 'Call' called, MSG: [${arr(bytes('PING-0')).join(', ')}]`,
      `Ponger: 'Call' called, MSG: [${arr(bytes('PING-1')).join(', ')}]`,
    ])
    expect(logs.filter((l) => l.text === 'Got Reply: PONG').every((l) => l.name === 'pinger' && l.target === 'ping' && l.level === 3)).toBe(true)
    expect(crashes).toEqual([])
    await rt.shutdown()
  })

  /** Drive ping and pong through every handler; the log lines (level, target, text) in order. */
  async function pingPongScript(pingName: string, pongName: string, state?: string) {
    const store = memoryStore(state === undefined ? [] : [['s', bytes(state)]])
    const rt = testRuntime({ stateStore: store })
    const logs = collect(rt, 'log')
    const crashes = collect(rt, 'crash')
    const ponger = await rt.spawn({ name: 'ponger', module: wasm(pongName) })
    const pinger = await rt.spawn({ name: 'pinger', module: wasm(pingName), outputs: { ponger }, stateId: 's' })
    await until(() => logs.some((l) => l.text.startsWith('Got Reply')), 5000, 'the reply')
    expect(await rt.call(pinger, Uint8Array.from([0, 1, 255]))).toEqual({ kind: 'noreply' })
    expect(await rt.call(pinger, new Uint8Array(0))).toEqual({ kind: 'noreply' })
    rt.cast(pinger, cat('caf', [0xc3, 0xa9, 0x20, 0xff, 0xe2, 0x82, 0x20, 0xf0, 0x9f, 0x98, 0x80])) // lossy: "café \uFFFD\uFFFD 😀"
    rt.cast(pinger, new Uint8Array(0))
    rt.cast(ponger, ALL_BYTES)
    expect(arr(replyData(await rt.call(ponger, 'x')))).toEqual(arr(bytes('PONG')))
    expect(arr(replyData(await rt.call(ponger, new Uint8Array(0))))).toEqual(arr(bytes('PONG')))
    await rt.stop(pinger)
    await rt.stop(ponger)
    const stored = utf8((await store.get('s'))!)
    await rt.shutdown()
    return { lines: logs.map((l) => [l.name, l.level, l.target, l.text]), crashes: crashes.length, stored }
  }

  test('the AssemblyScript versions log exactly what the Rust versions log', async () => {
    const rust = await pingPongScript('ping', 'pong')
    const as = await pingPongScript('as_ping', 'as_pong')
    expect(as).toEqual(rust)
    expect(rust.crashes).toBe(0)
    expect(rust.lines).toContainEqual(['pinger', 3, 'ping', "Pinger: 'Cast' called, MSG: café \uFFFD\uFFFD\u0020😀"])
    expect(rust.lines).toContainEqual(['pinger', 3, 'ping', "Pinger: 'Call' called, MSG: [0, 1, 255]"])
    expect(rust.lines).toContainEqual(['pinger', 3, 'ping', "Pinger: 'Call' called, MSG: []"])
    expect(rust.lines).toContainEqual(['ponger', 3, 'pong', `Ponger: 'Cast' called, MSG: [${arr(ALL_BYTES).join(', ')}]`])
    expect(rust.lines.at(-1)).toEqual(['ponger', 3, 'pong', "Ponger: 'Stop' called"])
    // A stored state with whitespace, resumed from: the same count in both.
    const r2 = await pingPongScript('ping', 'pong', '{ "other": 1, "count" :\t41 }')
    const a2 = await pingPongScript('as_ping', 'as_pong', '{ "other": 1, "count" :\t41 }')
    expect(a2).toEqual(r2)
    expect(r2.stored).toBe('{"count":42}')
  })

  test.each(['{"count":"x"}', '{"cnt":1}', '\xff', '{"count":99999999999999999999}'])(
    'a state that does not parse (%j) traps in init, like the Rust panic',
    async (state) => {
      for (const name of ['ping', 'as_ping']) {
        const store = memoryStore([['s', state === '\xff' ? Uint8Array.from([0xff]) : bytes(state)]])
        const rt = testRuntime({ stateStore: store })
        const logs = collect(rt, 'log')
        const crashes = collect(rt, 'crash')
        const ponger = await rt.spawn({ name: 'ponger', module: wasm('pong') })
        await rt.spawn({ name: 'pinger', module: wasm(name), outputs: { ponger }, stateId: 's', restart: 'temporary' }).catch(() => undefined)
        await until(() => crashes.length > 0, 2000, `${name} to crash`)
        expect(crashes[0]).toMatchObject({ name: 'pinger', handler: 'init' })
        expect(logs.filter((l) => l.name === 'pinger').map((l) => l.text)).toEqual(["Pinger: 'Init' called"])
        await rt.shutdown()
      }
    },
  )
})

// ---- counter ----------------------------------------------------------------------------

describe('counter (AssemblyScript and Rust)', () => {
  /** The first value counter casts to "output" for an init payload. */
  async function firstOutput(module: string, initPayload?: string) {
    const rt = testRuntime()
    const rec = await recorder(rt)
    const c = await rt.spawn({ name: 'counter', module: wasm(module), outputs: { output: rec.ref }, ...(initPayload === undefined ? {} : { initPayload }) })
    await until(() => rec.got.length === 1, 2000, 'the first output')
    expect(rec.got[0]!.src).toEqual(c.id)
    await rt.stop(c)
    await rt.shutdown()
    return utf8(rec.got[0]!.msg)
  }

  test('the init payload is the start value; both versions give the same first output', async () => {
    const cases: Array<[string | undefined, string]> = [
      ['41', '42'],
      ['+5', '6'],
      ['-1', '0'],
      ['-0', '1'],
      ['2147483647', '-2147483648'],
      ['-2147483648', '-2147483647'],
      ['2147483648', '1'],
      ['abc', '1'],
      [' 5', '1'],
      ['5 ', '1'],
      ['', '1'],
      ['+', '1'],
      ['-', '1'],
      [undefined, '1'],
    ]
    for (const [payload, want] of cases) {
      expect([payload, await firstOutput('as_counter', payload)]).toEqual([payload, want])
      expect([payload, await firstOutput('counter', payload)]).toEqual([payload, want])
    }
  })

  test('it wakes itself with delayed_cast(1000, "self", n+1); a cast that is no i32 traps', async () => {
    const rt = testRuntime()
    const rec = await recorder(rt)
    const crashes = collect(rt, 'crash')
    const c = await rt.spawn({ name: 'counter', module: wasm('as_counter'), outputs: { output: rec.ref }, initPayload: '7', restart: 'temporary' })
    await until(() => rec.got.length === 2, 3000, 'the delayed value')
    expect(rec.got.map((g) => utf8(g.msg))).toEqual(['8', '9'])
    rt.cast(c, 'x')
    await until(() => crashes.length === 1, 2000, 'the trap')
    expect(crashes[0]).toMatchObject({ name: 'counter', handler: 'cast' })
    await rt.shutdown()
  })
})

// ---- echo: byte-exact payloads, ids, state ----------------------------------------------

describe('echo (AssemblyScript): payloads, ids and state are byte-exact', () => {
  const big = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7919 + (i >> 8)) & 0xff)

  test('call replies are the exact payload: empty, all 256 byte values, 100 kB', async () => {
    const rt = testRuntime()
    const rec = await recorder(rt)
    const crashes = collect(rt, 'crash')
    const e = await rt.spawn({ name: 'echo', module: wasm('as_echo'), outputs: { out: rec.ref } })
    for (const p of [new Uint8Array(0), ALL_BYTES, Uint8Array.from([0]), big, bytes('héllo'), new Uint8Array(0)]) {
      const r = await rt.call(e, p)
      expect(r.kind).toBe('reply')
      expect(Buffer.from(replyData(r)).equals(Buffer.from(p))).toBe(true)
    }
    expect(crashes).toEqual([])
    await rt.shutdown()
  })

  test('casts carry the sender id; "slf" gives the instance id; casts are binary-safe', async () => {
    const rt = testRuntime()
    const rec = await recorder(rt)
    const e = await rt.spawn({ name: 'echo', module: wasm('as_echo'), outputs: { out: rec.ref } })
    const js = await rt.spawn({ name: 'js', fn: { handleCast: (_s, msg, ctx) => ctx.cast('echo', msg) }, outputs: { echo: e } })
    await until(() => rec.got.length === 2, 2000, 'init casts')
    const send = async (fn: () => void) => {
      const n = rec.got.length
      fn()
      await until(() => rec.got.length === n + 1, 2000, 'the echo')
    }
    await send(() => rt.cast(e, ALL_BYTES))
    await send(() => rt.cast(js, Uint8Array.from([1, 2])))
    await send(() => rt.cast(e, 'slf'))
    await send(() => rt.cast(e, new Uint8Array(0)))
    expect(arr(rec.got[2]!.msg)).toEqual([...idBytes(rt.hostId), ...arr(ALL_BYTES)])
    expect(arr(rec.got[3]!.msg)).toEqual([...idBytes(js.id), 1, 2])
    expect(arr(rec.got[4]!.msg)).toEqual(idBytes(e.id))
    expect(arr(rec.got[5]!.msg)).toEqual(idBytes(rt.hostId))
    for (const g of rec.got) expect(g.src).toEqual(e.id)
    await rt.shutdown()
  })

  /** What echo casts in init, for an init payload and a state that a previous instance synced. */
  async function initRoundTrip(module: string, initPayload: Uint8Array | undefined, state: Uint8Array | undefined) {
    const store = memoryStore()
    const rt = testRuntime({ stateStore: store })
    const rec = await recorder(rt)
    if (state !== undefined) {
      const first = await rt.spawn({ name: 'echo', module: wasm(module), outputs: { out: rec.ref }, stateId: 'st' })
      rt.cast(first, cat('sync:', state))
      await until(() => store.get('st') !== undefined, 2000, 'the sync')
      expect(arr((await store.get('st'))!)).toEqual(arr(state))
      await rt.stop(first)
      rec.got.length = 0
    }
    const e = await rt.spawn({ name: 'echo', module: wasm(module), outputs: { out: rec.ref }, stateId: 'st', ...(initPayload ? { initPayload } : {}) })
    await until(() => rec.got.length === 2, 2000, 'init casts')
    await rt.stop(e)
    await rt.shutdown()
    return rec.got.map((g) => arr(g.msg))
  }

  test('init payloads and synced state round-trip: none, empty, binary (all 256 byte values), large', async () => {
    const cases: Array<[Uint8Array | undefined, Uint8Array | undefined]> = [
      [undefined, undefined],
      [ALL_BYTES, ALL_BYTES],
      [bytes('a=1,b=2'), Uint8Array.from([0])],
      [new Uint8Array(0), new Uint8Array(0)], // zero length is None in the ABI, for both
      [Uint8Array.from([0xff, 0xfe]), big],
    ]
    for (const [p, s] of cases) {
      const got = await initRoundTrip('as_echo', p, s)
      expect(got).toEqual(await initRoundTrip('echo', p, s))
      expect(got[0]).toEqual(p?.length ? arr(cat('init:', p)) : arr(bytes('init:-')))
      expect(got[1]).toEqual(s?.length ? arr(cat('state:', s)) : arr(bytes('state:-')))
    }
  })
})

// ---- memory stays flat -------------------------------------------------------------------

describe('guest memory', () => {
  /** Instantiate a module with no-op ABI imports and drive it like the host does. */
  async function bareGuest(name: string) {
    let casts = 0
    const env = {
      telemetry_log_asm: () => {},
      cast_asm: () => {
        casts++
      },
      sync_asm: () => {},
      slf_asm: () => {},
    }
    const instance = new WebAssembly.Instance(new WebAssembly.Module(wasm(name) as Uint8Array<ArrayBuffer>), { env })
    const ex = instance.exports as unknown as {
      memory: WebAssembly.Memory
      edgeless_mem_alloc(n: number): number
      edgeless_mem_free(p: number, n: number): void
      edgeless_mem_clear(): void
      handle_init_asm(a: number, b: number, c: number, d: number): void
      handle_cast_asm(a: number, b: number, c: number, d: number): void
      handle_call_asm(a: number, b: number, c: number, d: number, e: number, f: number): number
    }
    const id = Uint8Array.from({ length: 32 }, (_, i) => i)
    // Upstream's hygiene (and the runtime's): clear, allocate, copy, invoke, read, free.
    function invoke(kind: 'cast' | 'call', msg: Uint8Array): Uint8Array | number {
      ex.edgeless_mem_clear()
      const ids = ex.edgeless_mem_alloc(40)
      const p = ex.edgeless_mem_alloc(msg.length)
      const u8 = new Uint8Array(ex.memory.buffer)
      u8.set(id, ids)
      u8.set(msg, p)
      let out: Uint8Array | number
      if (kind === 'cast') {
        ex.handle_cast_asm(ids, ids + 16, p, msg.length)
        out = 0
      } else {
        const rc = ex.handle_call_asm(ids, ids + 16, p, msg.length, ids + 32, ids + 36)
        const dv = new DataView(ex.memory.buffer)
        out = rc === 1 ? new Uint8Array(ex.memory.buffer).slice(dv.getUint32(ids + 32, true), dv.getUint32(ids + 32, true) + dv.getUint32(ids + 36, true)) : rc
      }
      ex.edgeless_mem_free(ids, 40)
      if (msg.length) ex.edgeless_mem_free(p, msg.length)
      return out
    }
    ex.edgeless_mem_clear()
    const ip = ex.edgeless_mem_alloc(3)
    new Uint8Array(ex.memory.buffer).set([1, 2, 3], ip)
    ex.handle_init_asm(ip, 3, 0, 0)
    ex.edgeless_mem_free(ip, 3)
    return { ex, invoke, casts: () => casts }
  }

  test.each(['as_echo', 'as_pong'])('%s: no growth between 1k and 100k invocations (casts and calls, 0..2000-byte payloads)', async (name) => {
    const g = await bareGuest(name)
    const payloads = Array.from({ length: 64 }, (_, k) => Uint8Array.from({ length: (k * 331) % 2001 }, (_, i) => (i + k) & 0xff))
    const run = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const p = payloads[i % payloads.length]!
        if (i % 3 === 0) g.invoke('cast', p)
        else {
          const r = g.invoke('call', p)
          if (name === 'as_echo' && i % 1001 === 1) expect(Buffer.from(r as Uint8Array).equals(Buffer.from(p))).toBe(true)
          if (name === 'as_pong' && i % 1001 === 1) expect(utf8(r as Uint8Array)).toBe('PONG')
        }
      }
    }
    run(0, 1000)
    const warm = g.ex.memory.buffer.byteLength
    run(1000, 100_000)
    expect(g.ex.memory.buffer.byteLength).toBe(warm)
    // The whole thing fits in a few pages: nothing accumulates.
    expect(warm).toBeLessThanOrEqual(4 * 65536)
  })

  test('zero-length allocations get a valid address; freeing it, 0 or zero lengths is a no-op', async () => {
    const g = await bareGuest('as_echo')
    const z = g.ex.edgeless_mem_alloc(0)
    expect(z).toBeGreaterThan(0)
    expect(z).toBeLessThan(g.ex.memory.buffer.byteLength)
    expect(g.ex.edgeless_mem_alloc(0)).toBe(z)
    g.ex.edgeless_mem_free(z, 0)
    g.ex.edgeless_mem_free(0, 10)
    const a = g.ex.edgeless_mem_alloc(16)
    const b = g.ex.edgeless_mem_alloc(16)
    expect(a % 4).toBe(0)
    expect(b >= a + 16 || a >= b + 16).toBe(true)
    // Out of reach: answered with 0 (the host reports out of guest memory) rather than a trap.
    expect(g.ex.edgeless_mem_alloc(-1)).toBe(0)
  })

  test('the reply buffer stays intact until the next invocation, and the host must not free it', async () => {
    const g = await bareGuest('as_echo')
    const ex = g.ex
    ex.edgeless_mem_clear()
    const ids = ex.edgeless_mem_alloc(40)
    const p = ex.edgeless_mem_alloc(256)
    new Uint8Array(ex.memory.buffer).set(ALL_BYTES, p)
    expect(ex.handle_call_asm(ids, ids + 16, p, 256, ids + 32, ids + 36)).toBe(1)
    const dv = new DataView(ex.memory.buffer)
    const rp = dv.getUint32(ids + 32, true)
    expect(dv.getUint32(ids + 36, true)).toBe(256)
    // The host's frees and more allocations (before the next invocation) do not touch it.
    ex.edgeless_mem_free(ids, 40)
    ex.edgeless_mem_free(p, 256)
    const blocks = Array.from({ length: 20 }, () => ex.edgeless_mem_alloc(256))
    for (const b of blocks) new Uint8Array(ex.memory.buffer).fill(0xdd, b, b + 256)
    expect(arr(new Uint8Array(ex.memory.buffer, rp, 256))).toEqual(arr(ALL_BYTES))
    for (const b of blocks) ex.edgeless_mem_free(b, 256)
  })

  test('through the runtime: 20k calls to the AssemblyScript echo and 500 suspending ping-pong calls stay healthy', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const e = await rt.spawn({ name: 'echo', module: wasm('as_echo') })
    for (let i = 0; i < 20_000; i++) {
      const p = bytes(`m${i}`)
      const r = await rt.call(e, p)
      if (i % 997 === 0) expect(utf8(replyData(r))).toBe(`m${i}`)
    }
    // A ponger that answers later: every call of as_ping suspends (asyncify) and resumes.
    let answered = 0
    const ponger = await rt.spawn({
      name: 'ponger',
      fn: {
        handleCall: async () => {
          await Promise.resolve()
          answered++
          return reply('PONG')
        },
      },
    })
    const logs = collect(rt, 'log')
    const pinger = await rt.spawn({ name: 'pinger', module: wasm('as_ping'), outputs: { ponger } })
    expect((await rt.load(wasm('as_ping'))).canSuspend).toBe(true)
    await until(() => logs.some((l) => l.text === 'Got Reply: PONG'), 5000, 'PONG')
    for (let i = 0; i < 500; i++) rt.cast(pinger, 'wakeup')
    // (Each wakeup also schedules another one a second later, hence >=.)
    await until(() => logs.filter((l) => l.text === 'Got Reply: PONG').length >= 501, 20000, '501 PONGs')
    expect(answered).toBeGreaterThanOrEqual(501)
    expect(crashes).toEqual([])
    await rt.stop(pinger)
    await rt.shutdown()
  })
})

// ---- parseInitPayload ---------------------------------------------------------------------

/** sdk_init_payload.rs, in JavaScript: the reference the AssemblyScript parser must match. */
const RUST_WS =
  /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g
const rustTrim = (s: string) => s.replace(RUST_WS, '')

function refF64(v: string): string {
  const t = rustTrim(v)
  const m = /^([+-]?)(?:(inf|infinity)|nan|((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))$/i.exec(t)
  if (!m || (!m[2] && !m[3])) return 'none'
  const x = m[2] ? (m[1] === '-' ? -Infinity : Infinity) : Number(t)
  const dv = new DataView(new ArrayBuffer(8))
  dv.setFloat64(0, x)
  return dv.getBigUint64(0).toString(16)
}

function refU64(v: string): string {
  const t = rustTrim(v)
  if (!/^\+?\d+$/.test(t)) return 'none'
  const n = BigInt(t.replace('+', ''))
  return n < 2n ** 64n ? n.toString() : 'none'
}

function refParse(text: string): Array<[string, string, string, string]> {
  const items: Array<[string, string]> = []
  for (const item of text.split(',')) {
    const i = item.indexOf('=')
    const [k, v] = i >= 0 ? [rustTrim(item.slice(0, i)), rustTrim(item.slice(i + 1))] : [rustTrim(item), '']
    if (!k) continue
    const at = items.findIndex(([x]) => x === k)
    if (at >= 0) items.splice(at, 1)
    items.push([k, v])
  }
  return items.map(([k, v]) => [k, v, refF64(v), refU64(v)])
}

function parseDump(d: Uint8Array): Array<[string, string, string, string]> {
  const s = utf8(d)
  if (s === '') return []
  expect(s.endsWith('\u0001')).toBe(true)
  return s
    .slice(0, -1)
    .split('\u0001')
    .map((r) => r.split('\u0000') as [string, string, string, string])
}

describe('parseInitPayload (as_init_payload)', () => {
  let rt: Runtime
  let probe: Awaited<ReturnType<Runtime['spawn']>>
  beforeAll(async () => {
    rt = testRuntime()
    probe = await rt.spawn({ name: 'probe', module: wasm('as_init_payload') })
  })
  afterAll(() => rt.shutdown())
  const parse = async (p: string | Uint8Array) => parseDump(replyData(await rt.call(probe, p)))

  test('key=value items, split on the first "=", trimmed, empty keys skipped, last one wins', async () => {
    expect(await parse('a=1,b=2')).toEqual([
      ['a', '1', '3ff0000000000000', '1'],
      ['b', '2', '4000000000000000', '2'],
    ])
    expect((await parse(' a = b=c , verbose,=5,, ,x=\t')).map(([k, v]) => [k, v])).toEqual([
      ['a', 'b=c'],
      ['verbose', ''],
      ['x', ''],
    ])
    expect((await parse('k=1,j=2,k=3')).map(([k, v]) => [k, v])).toEqual([
      ['j', '2'],
      ['k', '3'],
    ])
    expect(await parse('')).toEqual([])
    expect(await parse(',,,')).toEqual([])
    // Rust's trim: U+0085 and U+3000 are whitespace, U+FEFF (which JS's trim removes) is not.
    expect((await parse('\u0085a\u3000=\u00a0b\ufeff')).map(([k, v]) => [k, v])).toEqual([['a', 'b\ufeff']])
    // Invalid UTF-8 is decoded lossily.
    expect((await parse(cat('k=', [0xff, 0x41]))).map(([k, v]) => [k, v])).toEqual([['k', '\uFFFDA']])
  })

  test('numbers: f64::from_str (minus NaN) and u64::from_str after trimming', async () => {
    const [one] = await parse('v= 1.5 ')
    expect(one).toEqual(['v', '1.5', '3ff8000000000000', 'none'])
    const f = async (v: string) => (await parse(`v=${v}`))[0]!.slice(2)
    expect(await f('42')).toEqual(['4045000000000000', '42'])
    expect(await f('+42')).toEqual(['4045000000000000', '42'])
    expect(await f('-2')).toEqual(['c000000000000000', 'none'])
    expect(await f('1e3')).toEqual(['408f400000000000', 'none'])
    expect(await f('inf')).toEqual(['7ff0000000000000', 'none'])
    expect(await f('-Infinity')).toEqual(['fff0000000000000', 'none'])
    expect(await f('NaN')).toEqual(['none', 'none'])
    expect(await f('18446744073709551615')).toEqual(['43f0000000000000', '18446744073709551615'])
    expect(await f('18446744073709551616')).toEqual(['43f0000000000000', 'none'])
    for (const bad of ['', '+', '-', '.', 'e5', '1e', '1e+', '0x10', '1_000', '1.5.2', 'infx', '--1', '+-1', '١']) {
      expect([bad, await f(bad)]).toEqual([bad, ['none', 'none']])
    }
  })

  test('agrees with the Rust semantics (a JS model of sdk_init_payload.rs) on 3000 generated inputs', async () => {
    let seed = 12345
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0
      return seed % n
    }
    const pieces = [
      '0',
      '1',
      '9',
      '5',
      '.',
      'e',
      'E',
      '-',
      '+',
      ' ',
      '\t',
      'inf',
      'nan',
      'x',
      '=',
      ',',
      '00',
      '123456789',
      '\u00a0',
      '\u2003',
      'é',
      'infinity',
      '7',
      '3',
    ]
    const cases: string[] = []
    for (let i = 0; i < 3000; i++) {
      const n = 1 + rnd(12)
      let s = ''
      for (let j = 0; j < n; j++) s += pieces[rnd(pieces.length)]
      cases.push(s)
    }
    // Decimal strings that stress rounding: long mantissas, big and small exponents.
    for (let i = 0; i < 600; i++) {
      let m = ''
      const digits = 1 + rnd(30)
      for (let j = 0; j < digits; j++) m += String(rnd(10))
      const dot = rnd(digits + 1)
      cases.push(`v=${m.slice(0, dot)}.${m.slice(dot)}e${rnd(2) ? '-' : ''}${rnd(330)}`)
    }
    for (const c of cases) {
      const got = await parse(c)
      if (JSON.stringify(got) !== JSON.stringify(refParse(c))) expect([c, got]).toEqual([c, refParse(c)])
    }
  })

  test('in init: no payload gives an empty map; the annotation is parsed', async () => {
    const rt2 = testRuntime()
    const rec = await recorder(rt2)
    await rt2.spawn({ name: 'p1', module: wasm('as_init_payload'), outputs: { out: rec.ref } })
    await rt2.spawn({ name: 'p2', module: wasm('as_init_payload'), outputs: { out: rec.ref }, initPayload: 'min=1.5, max = 10 ,label=a=b' })
    await until(() => rec.got.length === 2, 2000, 'init dumps')
    expect(parseDump(rec.got[0]!.msg)).toEqual([])
    expect(parseDump(rec.got[1]!.msg)).toEqual(refParse('min=1.5, max = 10 ,label=a=b'))
    await rt2.shutdown()
  })
})

// ---- the rest of the SDK (as_probe) -----------------------------------------------------

describe('SDK features (as_probe)', () => {
  // The compiler passes a location for the aborts it generates (assert, bounds checks), not
  // for an explicit abort("...") call.
  test('abort, assertions and out-of-bounds accesses log the message (and file:line:col) at error level, then trap', async () => {
    const rt = testRuntime()
    const logs = collect(rt, 'log')
    const crashes = collect(rt, 'crash')
    const a = await rt.spawn({ name: 'probe', module: wasm('as_probe') })
    const src = readFileSync(repoFile('fixtures/as/probe.ts'), 'utf8').split('\n')
    const lineOf = (needle: string) => src.findIndex((l) => l.includes(needle)) + 1
    for (const [cmd, text] of [
      ['abort', /^boom$/],
      ['assert', new RegExp(`^assertion in a handler at fixtures/as/probe\\.ts:${lineOf('if (bytesEqualText(msg, "assert"))')}:\\d+$`)],
      ['oob', /^Index out of range at ~lib\/typedarray\.ts:\d+:\d+$/],
    ] as const) {
      const before = crashes.length
      rt.cast(a, cmd)
      await until(() => crashes.length === before + 1, 2000, `the ${cmd} trap`)
      expect(crashes.at(-1)).toMatchObject({ name: 'probe', handler: 'cast' })
      const line = logs.at(-1)!
      expect([line.level, line.target]).toEqual([1, 'abort'])
      expect(line.text).toMatch(text)
      await until(() => rt.inspect(a)?.status === 'running', 3000, 'the restart')
    }
    expect(utf8(replyData(await rt.call(a, 'ok')))).toBe('ok')
    await rt.shutdown()
  })

  test('castRaw, callRaw, call, delayedCast, CallRet.err, log levels, InstanceId text', async () => {
    const rt = testRuntime()
    const logs = collect(rt, 'log')
    const crashes = collect(rt, 'crash')
    const rec = await recorder(rt)
    const peer = await rt.spawn({ name: 'peer', fn: { handleCall: (_s, m) => (m.length ? reply(cat([0xee], m)) : undefined) } })
    const p = await rt.spawn({ name: 'probe', module: wasm('as_probe'), outputs: { out: rec.ref, peer } })
    // castRaw to the recorder by its id; binary-safe.
    rt.cast(p, cat('raw:', idBytes(rec.ref.id), ALL_BYTES))
    await until(() => rec.got.length === 1, 2000, 'the raw cast')
    expect(arr(rec.got[0]!.msg)).toEqual(arr(ALL_BYTES))
    expect(rec.got[0]!.src).toEqual(p.id)
    // callRaw / call: [kind] + data.
    expect(arr(replyData(await rt.call(p, cat('raw:', idBytes(peer.id), [1, 2]))))).toEqual([1, 0xee, 1, 2])
    expect(arr(replyData(await rt.call(p, cat('raw:', idBytes(peer.id)))))).toEqual([0])
    expect(arr(replyData(await rt.call(p, cat('call:', [0, 255]))))).toEqual([1, 0xee, 0, 255])
    expect(arr(replyData(await rt.call(p, 'call:')))).toEqual([0])
    const ghost = { node: rt.nodeId, function: '11111111-2222-4333-8444-555555555555' }
    expect(arr(replyData(await rt.call(p, cat('raw:', idBytes(ghost), 'x'))))).toEqual([2])
    // Err, text replies, the id's text form.
    const e = await rt.call(p, 'err')
    expect(e.kind === 'err' && e.error.code).toBe('call-err')
    expect(utf8(replyData(await rt.call(p, 'id')))).toBe(`${p.id.node}/${p.id.function}`)
    // Log levels 1..5.
    expect(await rt.call(p, 'log')).toEqual({ kind: 'noreply' })
    expect(logs.map((l) => [l.level, l.levelName, l.target, l.text])).toEqual(
      [1, 2, 3, 4, 5].map((l) => [l, ['error', 'warn', 'info', 'debug', 'trace'][l - 1], 'probe', `level ${l}`]),
    )
    // delayedCast: arrives after the delay.
    const t0 = performance.now()
    rt.cast(p, cat('later:30:', [9, 0, 9]))
    await until(() => rec.got.length === 2, 2000, 'the delayed cast')
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25)
    expect(arr(rec.got[1]!.msg)).toEqual([9, 0, 9])
    expect(crashes).toEqual([])
    await rt.shutdown()
  })
})

// ---- buildAssemblyScript -------------------------------------------------------------------

describe('buildAssemblyScript', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'edgeless-as-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('builds examples/assemblyscript/template.ts; the module runs in a Runtime', async () => {
    const out = join(dir, 'out', 'template.wasm')
    const r = await buildAssemblyScript(repoFile('examples/assemblyscript/template.ts'), out)
    expect(r.out).toBe(out)
    expect(r.bytes).toBe(readFileSync(out).length)
    expect(r.bytes).toBeGreaterThan(1000)
    const store = memoryStore([['t', bytes('4')]])
    const rt = testRuntime({ stateStore: store })
    const logs = collect(rt, 'log')
    const rec = await recorder(rt)
    const t = await rt.spawn({ name: 'template', module: out, outputs: { out: rec.ref }, initPayload: 'greeting=hi, repeat=2', stateId: 't' })
    expect(logs.map((l) => l.text)).toEqual(['started: greeting=hi, repeat=2, seen=4'])
    rt.cast(t, 'there')
    await until(() => rec.got.length === 2, 2000, 'two greetings')
    expect(rec.got.map((g) => utf8(g.msg))).toEqual(['hi there', 'hi there'])
    expect(utf8(replyData(await rt.call(t, 'n')))).toBe('hi, 5 message(s) so far')
    expect(utf8((await store.get('t'))!)).toBe('5')
    const e = await rt.call(t, 'fail')
    expect(e.kind).toBe('err')
    await rt.stop(t)
    expect(logs.at(-1)!.text).toBe('stopping after 5 message(s)')
    await rt.shutdown()
    // The same source builds to the same bytes.
    const again = await buildAssemblyScript(repoFile('examples/assemblyscript/template.ts'), join(dir, 'again.wasm'))
    expect(Buffer.from(readFileSync(again.out)).equals(readFileSync(out))).toBe(true)
  })

  test('a compile error is an Error with the file:line:col of each diagnostic', async () => {
    const src = join(dir, 'broken.ts')
    writeFileSync(
      src,
      [
        'import { EdgeFunction, register } from "edgeless/assembly";',
        'class F extends EdgeFunction {}',
        'let n: i32 = "not a number";',
        'register(new F());',
        'export * from "edgeless/assembly/exports";',
        '',
      ].join('\n'),
    )
    const err = await buildAssemblyScript(src, join(dir, 'broken.wasm')).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    expect(err).toBeInstanceOf(Error)
    expect(err!.message).toContain('AssemblyScript compilation of')
    expect(err!.message).toMatch(
      new RegExp(`${src.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:14: ERROR TS2322: Type '~lib/string/String' is not assignable to type 'i32'`),
    )
  })

  test('a module the host would refuse (an import it does not provide, no ABI exports) is an Error naming it', async () => {
    const rnd = join(dir, 'random.ts')
    writeFileSync(
      rnd,
      [
        'import { CallRet, EdgeFunction, InstanceId, register, utf8 } from "edgeless/assembly";',
        'class F extends EdgeFunction { handleCall(src: InstanceId, msg: Uint8Array): CallRet { return CallRet.reply(utf8(Math.random().toString())); } }',
        'register(new F());',
        'export * from "edgeless/assembly/exports";',
        '',
      ].join('\n'),
    )
    await expect(buildAssemblyScript(rnd, join(dir, 'random.wasm'))).rejects.toThrow(
      /imports what the EDGELESS host does not provide: env\.seed \(Math\.random/,
    )
    const noExports = join(dir, 'no-exports.ts')
    writeFileSync(noExports, 'import { EdgeFunction, register } from "edgeless/assembly";\nclass F extends EdgeFunction {}\nregister(new F());\n')
    await expect(buildAssemblyScript(noExports, join(dir, 'no-exports.wasm'))).rejects.toThrow(
      /lacks the EDGELESS exports edgeless_mem_alloc, .*handle_stop_asm\. Add `export \* from "edgeless\/assembly\/exports"`/,
    )
  })
})
