// Runaway guests: the fuel meter and the memory cap (lib/wasm/meter.ts, issue 6).
//
// Fixtures: fixtures/wat/runaway.wat (spin forever, a memory bomb, N-iteration loops,
// recursive Fibonacci, a call between two loops, a real `unreachable`), fixtures/rust/spin.rs
// (the same runaways in Rust: a loop, an allocation beyond the cap), ping/pong/caller/echo.
import { EdgelessError, reply, utf8, type CallResult, type EdgeFunction } from '../lib/node/index'
import { loadFunctionModule } from '../lib/wasm/loader'
import { FUEL_EXPORT, GROW_EXPORT, RESET_EXPORT, instrumentModule } from '../lib/wasm/meter'
import { parseModuleShape } from '../lib/wasm/parse'
import { collect, testRuntime, until, wasm, wasmPath } from './helpers/fixtures'

const u32 = (n: number) => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n, true)
  return b
}
const cmd = (c: string, n: number, rest = '') => new Uint8Array([c.charCodeAt(0), ...u32(n), ...new TextEncoder().encode(rest)])
const le32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, true)
const text = (r: CallResult) => (r.kind === 'reply' ? utf8(r.data) : r.kind)
const compiled = (b: Uint8Array) => new WebAssembly.Module(b as Uint8Array<ArrayBuffer>)
const noFiles = async (): Promise<Uint8Array> => {
  throw new Error('no loader in this test')
}

/** A JS sink that records every cast it gets. */
function sink() {
  const got: Uint8Array[] = []
  const fn: EdgeFunction = {
    handleCast: (_s, m) => {
      got.push(m)
    },
  }
  return { fn, got }
}

describe('fuel: a runaway loop ends as an out-of-fuel crash', () => {
  test('an infinite loop crashes quickly with a typed out-of-fuel fault naming the budget and how to raise it', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const spinner = await rt.spawn({ name: 'spinner', module: wasmPath('runaway'), fuel: 1_000_000 })
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    const t0 = Date.now()
    rt.cast(spinner, 'spin')
    await until(() => crashes.length === 1, 5000, 'the out-of-fuel crash')
    expect(Date.now() - t0).toBeLessThan(2000)
    const c = crashes[0]!
    expect(c).toMatchObject({ name: 'spinner', handler: 'cast', trap: 'out-of-fuel' })
    expect(c.error).toBeInstanceOf(EdgelessError)
    expect(c.error.code).toBe('trap')
    expect(c.error.details).toMatchObject({ trap: 'out-of-fuel', fuel: 1_000_000, handler: 'cast' })
    expect(c.error.message).toMatch(/ran out of fuel in handle_cast/)
    expect(c.error.message).toMatch(/1,000,000 fuel/)
    expect(c.error.message).toMatch(/SpawnOptions\.fuel/)
    expect(c.error.message).toMatch(/workflow annotation "fuel"/)
    // The host is responsive: another instance answers right away.
    expect(text(await rt.call(pong, 'x'))).toBe('PONG')
    await rt.shutdown()
  })

  test('the supervisor restarts the instance (transient by default) and it answers again', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const restarts = collect(rt, 'restart')
    const r = await rt.spawn({ name: 'spinner', module: wasmPath('runaway'), fuel: 1_000_000 })
    const res = await rt.call(r, 'spin')
    expect(res.kind).toBe('err')
    expect(res.kind === 'err' && res.error.code).toBe('callee-crashed')
    expect(res.kind === 'err' && res.error.details['trap']).toBe('out-of-fuel')
    await until(() => restarts.length === 1, 3000, 'the restart')
    expect(rt.inspect(r)).toMatchObject({ status: 'running', restarts: 1, restartType: 'transient' })
    expect(text(await rt.call(r, 'hello'))).toBe('ok')
    expect(le32(((await rt.call(r, cmd('n', 1000))) as { data: Uint8Array }).data)).toBe(1000)
    expect(crashes.map((c) => c.trap)).toEqual(['out-of-fuel'])
    await rt.shutdown()
  })

  test('a real `unreachable` in a metered guest stays an unreachable trap', async () => {
    const rt = testRuntime({ fuel: 1_000_000 })
    const crashes = collect(rt, 'crash')
    const r = await rt.spawn({ name: 'u', module: wasmPath('runaway') })
    expect((await rt.call(r, 'u')).kind).toBe('err')
    expect(crashes.map((c) => c.trap)).toEqual(['unreachable'])
    await rt.shutdown()
  })

  test('a Rust guest spinning in `loop {}` runs out of fuel too', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const r = await rt.spawn({ name: 'rusty', module: wasmPath('spin'), fuel: 5_000_000 })
    expect(text(await rt.call(r, 'hi'))).toBe('ok')
    expect((await rt.call(r, 'spin')).kind).toBe('err')
    expect(crashes.map((c) => [c.name, c.trap])).toEqual([['rusty', 'out-of-fuel']])
    await rt.shutdown()
  })

  test('recursion without loops is metered at function entries', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const r = await rt.spawn({ name: 'fib', module: wasmPath('runaway'), fuel: 1_000_000 })
    expect(le32(((await rt.call(r, cmd('f', 20))) as { data: Uint8Array }).data)).toBe(6765)
    // fib(40) makes ~330 million calls: far beyond a million fuel.
    const t0 = Date.now()
    expect((await rt.call(r, cmd('f', 40))).kind).toBe('err')
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(crashes.map((c) => c.trap)).toEqual(['out-of-fuel'])
    await rt.shutdown()
  })

  test('a call tree without loops or recursion (2^24 calls) is metered too', async () => {
    // Small loop-free functions go without checks of their own (their instructions are
    // charged to the caller), but only up to a bounded amount of work per call.
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const free = await rt.spawn({ name: 'free', module: wasmPath('runaway'), fuel: Infinity })
    const dflt = await rt.spawn({ name: 'default', module: wasmPath('runaway') })
    const tight = await rt.spawn({ name: 'tight', module: wasmPath('runaway'), fuel: 1_000_000 })
    expect(le32(((await rt.call(free, 'd')) as { data: Uint8Array }).data)).toBe(2 ** 24)
    expect(le32(((await rt.call(dflt, 'd')) as { data: Uint8Array }).data)).toBe(2 ** 24)
    expect(crashes).toEqual([])
    const t0 = Date.now()
    expect((await rt.call(tight, 'd')).kind).toBe('err')
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(crashes.map((c) => [c.name, c.trap])).toEqual([['tight', 'out-of-fuel']])
    await rt.shutdown()
  })

  test('the budget is per invocation: many casts whose total far exceeds it all succeed', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const s = sink()
    const out = await rt.spawn({ name: 'sink', fn: s.fn })
    // One 'n' of 100,000 iterations costs about 900,000 fuel (9 instructions per iteration).
    const r = await rt.spawn({ name: 'worker', module: wasmPath('runaway'), fuel: 1_500_000, outputs: { out } })
    for (let i = 0; i < 50; i++) rt.cast(r, cmd('n', 100_000))
    await until(() => s.got.length === 50, 10_000, '50 casts done')
    expect(s.got.every((b) => le32(b) === 100_000)).toBe(true)
    // 50 x 900,000 = 45 million fuel in total, 30 times the budget. Calls too:
    for (let i = 0; i < 10; i++) expect(le32(((await rt.call(r, cmd('n', 100_000))) as { data: Uint8Array }).data)).toBe(100_000)
    expect(crashes).toEqual([])
    // Twice the work in one invocation is over the budget.
    expect((await rt.call(r, cmd('n', 200_000))).kind).toBe('err')
    expect(crashes.map((c) => c.trap)).toEqual(['out-of-fuel'])
    await rt.shutdown()
  })

  test('fuel: Infinity leaves the module as it was built (no meter); finite fuel instruments it', async () => {
    const bytes = wasm('runaway')
    const limits = (fuel: number, maxMemoryBytes?: number) => ({ fuel, maxMemoryBytes })
    const plain = await loadFunctionModule(bytes, noFiles, 'runaway', limits(Infinity))
    expect(plain.metered).toBe(false)
    const plainExports = WebAssembly.Module.exports(plain.module).map((e) => e.name)
    expect(plainExports).not.toContain(FUEL_EXPORT)
    expect(plainExports).not.toContain(GROW_EXPORT)
    expect(plainExports).not.toContain(RESET_EXPORT)
    // Not rewritten at all. (runaway imports call_asm, so it is asyncified; a guest without
    // calls is compiled from its bytes exactly as built: the same exports, nothing added.)
    const spin = wasm('spin')
    const spinPlain = await loadFunctionModule(spin, noFiles, 'spin', limits(Infinity))
    expect(WebAssembly.Module.exports(spinPlain.module)).toEqual(WebAssembly.Module.exports(compiled(spin)))
    expect(WebAssembly.Module.exports((await loadFunctionModule(spin, noFiles, 'spin', limits(1e9))).module).map((e) => e.name)).toEqual([
      ...WebAssembly.Module.exports(compiled(spin)).map((e) => e.name),
      FUEL_EXPORT,
      GROW_EXPORT,
      RESET_EXPORT,
    ])
    const metered = await loadFunctionModule(bytes, noFiles, 'runaway', limits(1e6))
    expect(metered.metered).toBe(true)
    expect(WebAssembly.Module.exports(metered.module)).toEqual(expect.arrayContaining([{ name: FUEL_EXPORT, kind: 'global' }]))
    // Cached per instrumentation, not per budget: another finite budget shares the module.
    expect(await loadFunctionModule(bytes, noFiles, 'runaway', limits(5e9))).toBe(metered)
    expect(await loadFunctionModule(bytes, noFiles, 'runaway', limits(Infinity))).toBe(plain)
    const capped = await loadFunctionModule(bytes, noFiles, 'runaway', limits(1e6, 4 << 20))
    expect(capped).not.toBe(metered)
    expect(capped.maxPages).toBe(64)

    // And in behaviour: the same work that exhausts a million fuel runs to its end unmetered.
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const free = await rt.spawn({ name: 'free', module: bytes, fuel: Infinity })
    const tight = await rt.spawn({ name: 'tight', module: bytes, fuel: 1_000_000 })
    expect(le32(((await rt.call(free, cmd('n', 5_000_000))) as { data: Uint8Array }).data)).toBe(5_000_000)
    expect((await rt.call(tight, cmd('n', 5_000_000))).kind).toBe('err')
    expect(crashes.map((c) => [c.name, c.trap])).toEqual([['tight', 'out-of-fuel']])
    await rt.shutdown()
  })

  test('a module loaded without limits (fuel: Infinity) is instrumented when spawned with fuel', async () => {
    // rt.load compiles for the runtime's own limits; a runtime with fuel off loads unmetered.
    const rt = testRuntime({ fuel: Infinity })
    const crashes = collect(rt, 'crash')
    const fm = await rt.load(wasmPath('runaway'))
    expect(fm.metered).toBe(false)
    const r = await rt.spawn({ name: 'loaded', module: fm, fuel: 1_000_000 })
    expect((await rt.call(r, 'spin')).kind).toBe('err')
    expect(crashes.map((c) => c.trap)).toEqual(['out-of-fuel'])
    await rt.shutdown()
  })

  test('bad fuel values are refused at spawn', async () => {
    const rt = testRuntime()
    for (const fuel of [0, -5, Number.NaN]) {
      const e = await rt.spawn({ name: 'bad', module: wasmPath('runaway'), fuel }).then(
        () => null,
        (x: unknown) => x,
      )
      expect(e).toBeInstanceOf(EdgelessError)
      expect((e as EdgelessError).code).toBe('invalid-argument')
      expect((e as EdgelessError).message).toMatch(/fuel/)
    }
    await rt.shutdown()
  })
})

describe('fuel and blocking calls (asyncify composes with the meter)', () => {
  test('ping calls pong while pong is busy: ping suspends and resumes, metered with the default fuel', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const logs = collect(rt, 'log')
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    const ping = await rt.spawn({ name: 'ping', module: wasmPath('ping'), outputs: { ponger: pong } })
    const replies = () => logs.filter((l) => l.name === 'ping' && l.text === 'Got Reply: PONG').length
    await until(() => replies() === 1, 3000, 'the first ping (init)')
    // While pong works through queued casts, record whether ping is suspended on it.
    const seen: Array<string | undefined> = []
    rt.on('log', (l) => {
      if (l.name === 'pong' && l.text.startsWith("Ponger: 'Cast'")) seen.push(rt.inspect(ping)?.waitingOn)
    })
    rt.cast(ping, 'wakeup')
    for (let i = 0; i < 20; i++) rt.cast(pong, `busy-${i}`)
    await until(() => replies() === 2, 3000, 'the second ping')
    expect(seen.length).toBe(20)
    expect(seen).toContain('pong') // ping was blocked in call_asm while pong was busy
    expect(crashes).toEqual([])
    expect(rt.inspect(ping)).toMatchObject({ status: 'running', busy: false })
    await rt.shutdown()
  })

  test('a guest suspended in a call keeps its one budget across the suspension', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const slow: EdgeFunction = {
      async handleCall() {
        await new Promise((r) => setTimeout(r, 10))
        return reply('late')
      },
    }
    const s = await rt.spawn({ name: 'slow', fn: slow })
    // 'k' N alias: N iterations (~900,000 fuel for N = 100,000), the call, N iterations again.
    const roomy = await rt.spawn({ name: 'roomy', module: wasmPath('runaway'), fuel: 5_000_000, outputs: { slow: s } })
    for (let i = 0; i < 5; i++) {
      const r = await rt.call(roomy, cmd('k', 100_000, 'slow'))
      expect(r.kind === 'reply' && [...r.data]).toEqual([1, ...new TextEncoder().encode('late')])
    }
    expect(crashes).toEqual([])
    // Room for one loop but not two: the rewound guest resumes with what was left, not a fresh budget.
    const tight = await rt.spawn({ name: 'tight', module: wasmPath('runaway'), fuel: 1_500_000, outputs: { slow: s } })
    expect(le32(((await rt.call(tight, cmd('n', 100_000))) as { data: Uint8Array }).data)).toBe(100_000)
    const r = await rt.call(tight, cmd('k', 100_000, 'slow'))
    expect(r.kind).toBe('err')
    expect(crashes.map((c) => [c.name, c.handler, c.trap])).toEqual([['tight', 'call', 'out-of-fuel']])
    await rt.shutdown()
  })

  test('the existing Rust caller suspends and resumes under metering', async () => {
    const rt = testRuntime()
    const slow = await rt.spawn({
      name: 'slow',
      fn: {
        async handleCall(_s, m) {
          await new Promise((r) => setTimeout(r, 5))
          return reply(`slow:${utf8(m)}`)
        },
      },
    })
    const caller = await rt.spawn({ name: 'caller', module: wasmPath('caller'), outputs: { slow } })
    for (let i = 0; i < 10; i++) expect(text(await rt.call(caller, `call:slow:${i}`))).toBe(`reply:slow:${i}`)
    await rt.shutdown()
  })
})

describe('memory cap', () => {
  test('a memory bomb crashes with out-of-memory at the cap, never beyond it', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const s = sink()
    const out = await rt.spawn({ name: 'sink', fn: s.fn })
    const bomb = await rt.spawn({ name: 'bomb', module: wasmPath('runaway'), maxMemoryBytes: 4 * 1024 * 1024, outputs: { out } })
    rt.cast(bomb, 'grow')
    await until(() => crashes.length === 1, 5000, 'the out-of-memory crash')
    await until(() => s.got.length === 63, 2000, 'every growth reported')
    const sizes = s.got.map(le32)
    expect(Math.max(...sizes)).toBe(4 * 1024 * 1024) // it reached the cap ...
    expect(sizes.every((n) => n <= 4 * 1024 * 1024)).toBe(true) // ... and never went past it
    const c = crashes[0]!
    expect(c).toMatchObject({ name: 'bomb', handler: 'cast', trap: 'out-of-memory' })
    expect(c.error.code).toBe('trap')
    expect(c.error.details).toMatchObject({ trap: 'out-of-memory', maxMemoryBytes: 4 * 1024 * 1024, memoryBytes: 4 * 1024 * 1024, requestedBytes: 65536 })
    expect(c.error.message).toMatch(/ran out of memory in handle_cast/)
    expect(c.error.message).toMatch(/memory cap of 4 MiB/)
    expect(c.error.message).toMatch(/maxMemoryBytes/)
    expect(c.error.message).toMatch(/"max-memory"/)
    await rt.shutdown()
  })

  test('a Rust guest whose allocation fails at the cap (std aborts) is reported out-of-memory', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const logs = collect(rt, 'log')
    const r = await rt.spawn({ name: 'hog', module: wasmPath('spin'), maxMemoryBytes: 4 * 1024 * 1024 })
    expect(text(await rt.call(r, 'alloc:1'))).toBe('done')
    expect(logs.map((l) => l.text)).toEqual(['allocated 1 MiB'])
    expect((await rt.call(r, 'alloc:16')).kind).toBe('err')
    expect(crashes.map((c) => c.trap)).toEqual(['out-of-memory'])
    await rt.shutdown()
  })

  test('the host copying a payload beyond the cap into a Rust guest is out-of-memory too', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const echo = await rt.spawn({ name: 'echo', module: wasmPath('echo'), maxMemoryBytes: 2 * 1024 * 1024 })
    expect(text(await rt.call(echo, 'small'))).toBe('small')
    expect((await rt.call(echo, new Uint8Array(3 * 1024 * 1024))).kind).toBe('err')
    expect(crashes.map((c) => c.trap)).toEqual(['out-of-memory'])
    await rt.shutdown()
  })

  test("a cap below the module's initial memory is a load error naming both sizes", async () => {
    const rt = testRuntime()
    // Rust std guests start with 17 pages (1088 KiB).
    const e = await rt.spawn({ name: 'big', module: wasmPath('pong'), maxMemoryBytes: 1024 * 1024 }).then(
      () => null,
      (x: unknown) => x,
    )
    expect(e).toBeInstanceOf(EdgelessError)
    expect((e as EdgelessError).code).toBe('invalid-module')
    expect((e as EdgelessError).message).toMatch(/starts with 17 pages \(1088 KiB\).*memory cap of 1 MiB \(16 pages\)/)
    expect((e as EdgelessError).message).toMatch(/at least 1114112 bytes/)
    expect(rt.instances()).toEqual([])
    await rt.shutdown()
  })

  test('the rewrite lowers the declared maximum to the cap, and keeps a smaller one', () => {
    // (module (memory (export "memory") 1 3)): the bare minimum with a declared maximum.
    const mod = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 4, 1, 1, 1, 3, 7, 10, 1, 6, ...new TextEncoder().encode('memory'), 2, 0])
    expect(parseModuleShape(mod).memory).toEqual({ initial: 1, maximum: 3 })
    const at = (pages: number | undefined, fuel = true) => {
      const out = instrumentModule(mod, { fuel, maxPages: pages }, 'mini')
      expect(WebAssembly.validate(out as Uint8Array<ArrayBuffer>)).toBe(true)
      return parseModuleShape(out).memory
    }
    expect(at(2)).toEqual({ initial: 1, maximum: 2 })
    expect(at(64)).toEqual({ initial: 1, maximum: 3 })
    expect(at(undefined)).toEqual({ initial: 1, maximum: 3 })
    expect(at(1, false)).toEqual({ initial: 1, maximum: 1 })
    // A module without a maximum gets the cap.
    const pong = wasm('pong')
    expect(parseModuleShape(pong).memory).toEqual({ initial: 17 })
    expect(parseModuleShape(instrumentModule(pong, { fuel: true, maxPages: 64 }, 'pong')).memory).toEqual({ initial: 17, maximum: 64 })
  })
})

describe('normal guests under the default fuel', () => {
  test('pong and a CPU-heavy matmul work metered, and agree with their unmetered selves', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong') })
    for (let i = 0; i < 100; i++) expect(text(await rt.call(pong, `x${i}`))).toBe('PONG')
    const mm = await rt.spawn({ name: 'mm', module: wasmPath('matmul') })
    const plain = await rt.spawn({ name: 'mm-plain', module: wasmPath('matmul'), fuel: Infinity })
    for (const n of ['1', '7', '64', '150']) expect(text(await rt.call(mm, n))).toBe(text(await rt.call(plain, n)))
    expect(crashes).toEqual([])
    await rt.shutdown()
  })
})

describe('workflow annotations reach the instance', () => {
  const fn = (name: string, annotations: Record<string, string>, mapping: Record<string, string> = {}) => ({
    name,
    class_specification: { id: name, function_type: 'RUST_WASM', version: '0.1', code: wasmPath('runaway'), outputs: Object.keys(mapping) },
    output_mapping: mapping,
    annotations,
  })

  test('"fuel" and "max-memory"', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const wf = await rt.startWorkflow({
      functions: [fn('spinner', { fuel: '1000000' }), fn('bomb', { 'max-memory': String(2 * 1024 * 1024) }), fn('free', { fuel: 'Infinity' })],
      resources: [],
      annotations: {},
    })
    wf.get('spinner')!.cast('spin')
    wf.get('bomb')!.cast('grow')
    await until(() => crashes.length === 2, 5000, 'two crashes')
    const by = (n: string) => crashes.find((c) => c.name === n)!
    expect(by('spinner')).toMatchObject({ trap: 'out-of-fuel' })
    expect(by('spinner').error.details).toMatchObject({ fuel: 1_000_000 })
    expect(by('bomb')).toMatchObject({ trap: 'out-of-memory' })
    expect(by('bomb').error.details).toMatchObject({ maxMemoryBytes: 2 * 1024 * 1024, memoryBytes: 2 * 1024 * 1024 })
    // "Infinity": 20 million iterations (~180 million fuel) in one invocation is fine.
    const r = await wf.get('free')!.call(cmd('n', 20_000_000))
    expect(r.kind === 'reply' && le32(r.data)).toBe(20_000_000)
    await wf.stop()
    await rt.shutdown()
  })
})
