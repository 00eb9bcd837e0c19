// Dense memory (lib/wasm/dense.ts, lib/wasm/regions.ts): instances share big memories, each
// in a region of its own, confined by a mask and a base.
//
// Fixtures: fixtures/wat/dense_probe.wat (every kind of memory access on command),
// dense_refused_{simd,passive}.wat (what dense memory refuses), and the Rust and
// AssemblyScript guests of the other suites, which must behave the same dense or not.
import { EdgelessError, utf8, type CallResult } from '../lib/node/index'
import { loadFunctionModule } from '../lib/wasm/loader'
import { GUARD_BYTES, densify } from '../lib/wasm/dense'
import { collect, testRuntime, until, wasm, wasmPath } from './helpers/fixtures'
import type { Runtime } from '../lib/node/index'

const text = (r: CallResult) => (r.kind === 'reply' ? utf8(r.data) : r.kind === 'err' ? `err:${r.error.code}` : r.kind)
const noFiles = async (): Promise<Uint8Array> => {
  throw new Error('no loader in this test')
}

/** The 13-byte command of dense_probe: op, then a, b, c as u32 LE. */
function cmd(op: number, a = 0, b = 0, c = 0): Uint8Array {
  const u = new Uint8Array(13)
  const d = new DataView(u.buffer)
  u[0] = op
  d.setUint32(1, a >>> 0, true)
  d.setUint32(5, b >>> 0, true)
  d.setUint32(9, c >>> 0, true)
  return u
}

/** Run a probe command; its u32 result (or throw with what came back instead). */
async function probe(rt: Runtime, ref: Parameters<Runtime['call']>[0], op: number, a = 0, b = 0, c = 0): Promise<number> {
  const r = await rt.call(ref, cmd(op, a, b, c))
  if (r.kind !== 'reply') throw new Error(`probe ${op} answered ${text(r)}`)
  return new DataView(r.data.buffer, r.data.byteOffset, 4).getUint32(0, true)
}

// dense_probe starts with 2 pages: its default cap is max(2 * 2, 2 + 128) = 130 pages, so its
// region is 256 pages (16 MiB).
const REGION = 16 * 1024 * 1024
const CAP = 130
const STORE8 = 1,
  LOAD8 = 2,
  SIZE = 3,
  GROW = 4,
  FILL = 5,
  COPY = 6,
  LOAD_FAR = 7,
  I64 = 8,
  F64 = 9,
  F32 = 10,
  DATA = 11,
  STORE16_KEPT = 12

describe("isolation: every access stays in the instance's own region", () => {
  test('stores anywhere in the 4 GiB address space never reach the neighbouring instance', async () => {
    const rt = testRuntime()
    // Spawned one after the other, B gets the region right after A's.
    const a = await rt.spawn({ name: 'a', module: wasmPath('dense_probe'), dense: true })
    const b = await rt.spawn({ name: 'b', module: wasmPath('dense_probe'), dense: true })
    const c = await rt.spawn({ name: 'c', module: wasmPath('dense_probe'), dense: true })
    const addresses = [0, 1, 0xffff, REGION - 1, REGION, REGION + 7, REGION + GUARD_BYTES, 0x7fffffff, 0x80000000, 0xfffffff8, 0xffffffff]
    for (const addr of addresses) expect(await probe(rt, b, STORE8, addr, 0xab)).toBe(0)
    // Widest stores at the last bytes of the region spill into the guard, never into c.
    expect(await probe(rt, b, I64, REGION - 1, 0xffffffff)).toBe(0xffffffff)
    expect(await probe(rt, b, STORE16_KEPT, REGION - 1, 0xbeef)).toBe(0)
    for (const other of [a, c]) {
      for (const addr of [0, 1, 7, 0xffff, 0xfff0, REGION - 1]) expect(await probe(rt, other, LOAD8, addr)).toBe(0)
    }
    // b's own addresses wrap inside its region: REGION + 7 is its byte 7.
    expect(await probe(rt, b, LOAD8, 7)).toBe(0xab)
    expect(await probe(rt, b, LOAD8, 0xffff)).toBe(0xab)
    await rt.shutdown()
  })

  test('accesses within the memory size behave as with a memory of its own (every scalar type, offsets kept and folded)', async () => {
    const rt = testRuntime()
    const p = await rt.spawn({ name: 'p', module: wasmPath('dense_probe'), dense: true })
    expect(await probe(rt, p, DATA)).toBe(0x736e6564) // "dens": the data segment was copied in
    expect(await probe(rt, p, I64, 4000, 123456789)).toBe(123456789)
    expect(await probe(rt, p, F64, 4100, 777)).toBe(777)
    expect(await probe(rt, p, F32, 4200, 999)).toBe(999)
    // An offset of 1 MiB (folded into the address) reaches the byte a + 1 MiB.
    await probe(rt, p, GROW, 16) // 18 pages: a + 1 MiB is inside the memory
    expect(await probe(rt, p, STORE8, 0x100000 + 5, 42)).toBe(0)
    expect(await probe(rt, p, LOAD_FAR, 5)).toBe(42)
    // The largest offset kept in the instruction (0xfff0).
    expect(await probe(rt, p, STORE16_KEPT, 0x10, 0x1234)).toBe(0)
    expect(await probe(rt, p, LOAD8, 0x10000)).toBe(0x34)
    expect(await probe(rt, p, LOAD8, 0x10001)).toBe(0x12)
    await rt.shutdown()
  })

  test('memory.fill and memory.copy work within the size and trap beyond it, as the engine does', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const p = await rt.spawn({ name: 'p', module: wasmPath('dense_probe'), dense: true, restart: 'temporary' })
    expect(await probe(rt, p, FILL, 10, 7, 20)).toBe(0)
    expect([await probe(rt, p, LOAD8, 9), await probe(rt, p, LOAD8, 10), await probe(rt, p, LOAD8, 29), await probe(rt, p, LOAD8, 30)]).toEqual([0, 7, 7, 0])
    expect(await probe(rt, p, COPY, 60, 25, 10)).toBe(0)
    expect([await probe(rt, p, LOAD8, 64), await probe(rt, p, LOAD8, 65)]).toEqual([7, 0])
    // Zero bytes at the very end are fine; one byte past it traps.
    expect(await probe(rt, p, FILL, 2 * 65536, 1, 0)).toBe(0)
    const r = await rt.call(p, cmd(FILL, 2 * 65536 - 1, 1, 2))
    expect(text(r)).toBe('err:callee-crashed')
    await until(() => crashes.length === 1)
    expect(crashes[0]!.error.message).toMatch(/memory access out of bounds/)
    await rt.shutdown()
  })

  test('memory.copy beyond the size traps too (source or destination), and nothing was copied', async () => {
    const rt = testRuntime()
    const p = await rt.spawn({ name: 'p', module: wasmPath('dense_probe'), dense: true, restart: 'transient' })
    expect(text(await rt.call(p, cmd(COPY, 0, 2 * 65536 - 4, 8)))).toBe('err:callee-crashed')
    await until(() => rt.inspect(p)?.status === 'running')
    expect(text(await rt.call(p, cmd(COPY, 2 * 65536 - 4, 0, 8)))).toBe('err:callee-crashed')
    await until(() => rt.inspect(p)?.status === 'running')
    expect(text(await rt.call(p, cmd(COPY, 0xffffffff, 0, 2)))).toBe('err:callee-crashed')
    await rt.shutdown()
  })
})

describe('the memory size is virtual', () => {
  test('memory.size and memory.grow count pages up to the cap, then growth fails with -1', async () => {
    const rt = testRuntime()
    const p = await rt.spawn({ name: 'p', module: wasmPath('dense_probe'), dense: true })
    expect(await probe(rt, p, SIZE)).toBe(2)
    expect(await probe(rt, p, GROW, 1)).toBe(2)
    expect(await probe(rt, p, SIZE)).toBe(3)
    expect((await probe(rt, p, GROW, CAP - 2)) | 0).toBe(-1) // CAP + 1 pages
    expect(await probe(rt, p, GROW, CAP - 3)).toBe(3)
    expect(await probe(rt, p, GROW, 0)).toBe(CAP)
    expect((await probe(rt, p, GROW, 1)) | 0).toBe(-1)
    expect((await probe(rt, p, GROW, 0xffffffff)) | 0).toBe(-1)
    expect(await probe(rt, p, SIZE)).toBe(CAP)
    await rt.shutdown()
  })

  test('maxMemoryBytes sets the cap (and so the region)', async () => {
    const rt = testRuntime()
    const p = await rt.spawn({ name: 'p', module: wasmPath('dense_probe'), dense: true, maxMemoryBytes: 5 * 65536 })
    expect(await probe(rt, p, GROW, 3)).toBe(2)
    expect((await probe(rt, p, GROW, 1)) | 0).toBe(-1)
    // A 5-page cap gets an 8-page region: byte 8 * 65536 wraps to byte 0.
    await probe(rt, p, STORE8, 8 * 65536 + 3, 9)
    expect(await probe(rt, p, LOAD8, 3)).toBe(9)
    await expect(rt.spawn({ name: 'big', module: wasmPath('dense_probe'), dense: true, maxMemoryBytes: 2 * 1024 * 1024 * 1024 })).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/region can hold \(1024 MiB\).*without `dense`/),
    })
    await rt.shutdown()
  })

  test('the host checks guest pointers against the memory size, growth included', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    // alloc_oob returns a pointer straddling the end of its memory: a guest fault, dense or not.
    const bad = await rt.spawn({ name: 'bad', module: wasmPath('alloc_oob'), dense: true, restart: 'temporary' })
    expect(text(await rt.call(bad, 'x'))).toBe('err:callee-crashed')
    await until(() => crashes.length === 1)
    expect(crashes[0]).toMatchObject({ handler: 'call', trap: 'guest-fault' })
    // echo grows its memory for a big payload; the host writes it into the grown pages and
    // reads the reply back from them.
    const echo = await rt.spawn({ name: 'echo', module: wasmPath('echo'), dense: true })
    const big = new Uint8Array(600 * 1024).map((_, i) => (i * 7) & 0xff)
    const r = await rt.call(echo, big)
    expect(r.kind === 'reply' && Buffer.from(r.data).equals(Buffer.from(big))).toBe(true)
    // A log line the guest formats in pages it has just grown into reaches the host whole.
    const logs = collect(rt, 'log')
    const hog = await rt.spawn({ name: 'hog', module: wasmPath('spin'), dense: true })
    expect(text(await rt.call(hog, 'alloc:3'))).toBe('done')
    expect(logs.map((l) => l.text)).toEqual(['allocated 3 MiB'])
    await rt.shutdown()
  })

  test('growth beyond the default cap is an out-of-memory crash that names dense memory and the fix', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    // spin.rs allocates M MiB one at a time; its default dense cap is about 9 MiB.
    const s = await rt.spawn({ name: 'spin', module: wasmPath('spin'), dense: true, restart: 'temporary' })
    expect(text(await rt.call(s, 'alloc:12'))).toBe('err:callee-crashed')
    await until(() => crashes.length === 1)
    const c = crashes[0]!
    expect(c).toMatchObject({ trap: 'out-of-memory' })
    expect(c.error.message).toMatch(/a dense instance gets when no cap is set/)
    expect(c.error.message).toMatch(/maxMemoryBytes/)
    // With a cap that fits, the same work succeeds.
    const roomy = await rt.spawn({ name: 'roomy', module: wasmPath('spin'), dense: true, maxMemoryBytes: 32 * 1024 * 1024 })
    expect(text(await rt.call(roomy, 'alloc:12'))).toBe('done')
    await rt.shutdown()
  })
})

describe('real guests run dense exactly as they run alone', () => {
  test('Rust ping calls pong; state is synced and restored; a crash restarts in a fresh region', async () => {
    const rt = testRuntime()
    const pong = await rt.spawn({ name: 'pong', module: wasmPath('pong'), dense: true })
    const logs = collect(rt, 'log')
    const ping = await rt.spawn({ name: 'ping', module: wasmPath('ping'), dense: true, outputs: { ponger: pong }, initPayload: 'period=1000000' })
    rt.cast(ping, 'go')
    await until(() => logs.some((l) => /Got Reply: PONG/.test(l.text)))
    const t = await rt.spawn({ name: 'tally', module: wasmPath('tally'), dense: true, stateId: 't1' })
    for (let i = 0; i < 5; i++) await rt.call(t, 'x')
    expect(text(await rt.call(t, 'x'))).toBe('6')
    await rt.stop(t)
    const again = await rt.spawn({ name: 'tally', module: wasmPath('tally'), dense: true, stateId: 't1' })
    expect(text(await rt.call(again, 'x'))).toBe('7')
    await rt.shutdown()
  })

  test('a guest blocked in a call (asyncify unwinds its stack into its region) resumes correctly, many at once', async () => {
    const rt = testRuntime()
    // pong answers only after a JS function in between has waited: every caller suspends.
    const slow = await rt.spawn({
      name: 'slow',
      fn: {
        handleCall: async (_s, m) => {
          await new Promise((r) => setTimeout(r, 5))
          return { kind: 'reply', data: m }
        },
      },
    })
    const callers = []
    for (let i = 0; i < 20; i++) callers.push(await rt.spawn({ name: `caller${i}`, module: wasmPath('caller'), dense: true, outputs: { slow } }))
    const answers = await Promise.all(callers.map((c, i) => rt.call(c, `call:slow:n${i}`)))
    expect(answers.map(text)).toEqual(callers.map((_, i) => `reply:n${i}`))
    await rt.shutdown()
  })

  test('an AssemblyScript guest (it has a start function) is byte-exact dense', async () => {
    const rt = testRuntime()
    const echo = await rt.spawn({ name: 'as-echo', module: wasmPath('as_echo'), dense: true })
    const all = new Uint8Array(256).map((_, i) => i)
    const r = await rt.call(echo, all)
    expect(r.kind === 'reply' && Buffer.from(r.data).equals(Buffer.from(all))).toBe(true)
    const counter = await rt.spawn({ name: 'as-pong', module: wasmPath('as_pong'), dense: true })
    expect(text(await rt.call(counter, 'PING'))).toBe('PONG')
    await rt.shutdown()
  })

  test('fuel metering works dense: a runaway loop ends as out-of-fuel, and the instance restarts', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const s = await rt.spawn({ name: 'spin', module: wasmPath('spin'), dense: true, fuel: 1_000_000 })
    rt.cast(s, 'spin')
    await until(() => crashes.length === 1)
    expect(crashes[0]).toMatchObject({ trap: 'out-of-fuel' })
    await until(() => rt.inspect(s)?.status === 'running')
    expect(text(await rt.call(s, 'hello'))).toBe('ok')
    await rt.shutdown()
  })

  test('2,000 dense instances each keep their own state', async () => {
    const rt = testRuntime()
    const tally = await rt.load(wasmPath('tally'))
    const refs = []
    for (let i = 0; i < 2000; i++) refs.push(await rt.spawn({ name: `t${i}`, module: wasm('tally'), dense: true }))
    void tally
    // Instance i gets i % 5 + 1 increments.
    await Promise.all(
      refs.map(async (r, i) => {
        for (let k = 0; k < i % 5; k++) await rt.call(r, 'x')
      }),
    )
    const last = await Promise.all(refs.map((r) => rt.call(r, 'x')))
    expect(last.map(text)).toEqual(refs.map((_, i) => String((i % 5) + 1)))
    await rt.shutdown()
  })

  test('a dense instance hibernates and activates (passivation) into a new region with its state', async () => {
    const rt = testRuntime()
    const t = await rt.spawn({ name: 'tally', module: wasmPath('tally'), dense: true, passivate: true })
    expect(text(await rt.call(t, 'x'))).toBe('1')
    await until(() => rt.hibernate(t) || rt.inspect(t)?.status === 'hibernated')
    await until(() => rt.inspect(t)?.status === 'hibernated')
    expect(text(await rt.call(t, 'x'))).toBe('2')
    await rt.shutdown()
  })
})

describe('what dense memory refuses, and how it says so', () => {
  test.each([
    ['dense_refused_simd', /SIMD loads or stores/],
    ['dense_refused_passive', /passive data segment/],
  ])('%s is refused at load with invalid-module, naming the feature and the fix', async (name, why) => {
    const rt = testRuntime()
    const e = await rt.spawn({ name, module: wasmPath(name), dense: true }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(EdgelessError)
    expect(e).toMatchObject({ code: 'invalid-module' })
    expect((e as Error).message).toMatch(why)
    expect((e as Error).message).toMatch(/without `dense`/)
    // The same module runs with a memory of its own.
    await expect(rt.spawn({ name, module: wasmPath(name) })).resolves.toBeDefined()
    await rt.shutdown()
  })

  test('a precompiled WebAssembly.Module, worker isolation and a non-boolean are refused with the fix', async () => {
    const rt = testRuntime()
    const compiled = new WebAssembly.Module(wasm('pong') as Uint8Array<ArrayBuffer>)
    await expect(rt.spawn({ name: 'pre', module: compiled, dense: true })).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/precompiled.*Pass its bytes/),
    })
    await expect(rt.spawn({ name: 'w', module: wasmPath('pong'), dense: true, isolation: 'worker' })).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/worker isolation/),
    })
    await expect(rt.spawn({ name: 'x', module: wasmPath('pong'), dense: 'yes' as never })).rejects.toMatchObject({ code: 'invalid-argument' })
    expect(() => testRuntime({ dense: 1 as never })).toThrow(/RuntimeOptions.dense must be a boolean/)
    await rt.shutdown()
  })

  test('the runtime default applies to every wasm spawn but leaves worker-isolated ones alone', async () => {
    const rt = testRuntime({ dense: true })
    const p = await rt.spawn({ name: 'p', module: wasmPath('dense_probe') })
    // Dense: an address beyond the region wraps instead of trapping.
    await probe(rt, p, STORE8, REGION + 1, 5)
    expect(await probe(rt, p, LOAD8, 1)).toBe(5)
    const own = await rt.spawn({ name: 'own', module: wasmPath('dense_probe'), dense: false, restart: 'temporary' })
    expect(text(await rt.call(own, cmd(STORE8, REGION + 1, 5)))).toBe('err:callee-crashed')
    const w = await rt.spawn({ name: 'w', module: wasmPath('pong'), isolation: 'worker' })
    expect(text(await rt.call(w, 'PING'))).toBe('PONG')
    await rt.shutdown()
  })
})

describe('workflow annotation "dense"', () => {
  test('"dense": "true" runs the function dense; a bad value is a validation problem', async () => {
    const rt = testRuntime()
    const wf = (dense: string) => ({
      functions: [
        {
          name: 'p',
          class_specification: { id: 'p', function_type: 'RUST_WASM', version: '0.1', code: wasmPath('dense_probe'), outputs: [] },
          output_mapping: {},
          annotations: { dense, restart: 'temporary' },
        },
      ],
      resources: [],
      annotations: {},
    })
    const h = await rt.startWorkflow(wf('true'))
    const p = h.idOf('p')!
    await probe(rt, p, STORE8, REGION + 2, 6)
    expect(await probe(rt, p, LOAD8, 2)).toBe(6)
    await h.stop()
    await expect(rt.startWorkflow(wf('maybe'))).rejects.toMatchObject({
      code: 'invalid-workflow',
      message: expect.stringMatching(/annotations.dense.*must be true or false/),
    })
    const both = wf('true')
    both.functions[0]!.annotations = { dense: 'true', isolation: 'worker' } as never
    await expect(rt.startWorkflow(both)).rejects.toMatchObject({
      code: 'invalid-workflow',
      message: expect.stringMatching(/annotations.dense.*worker isolation do not go together/),
    })
    await rt.shutdown()
  })
})

describe('the rewrite itself', () => {
  test('unshared chunks (a browser page that is not cross-origin isolated) confine the same way', () => {
    const { bytes, layout } = densify(wasm('dense_probe'), false, 'dense_probe')
    expect(layout.shared).toBe(false)
    const mod = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>)
    const chunk = new WebAssembly.Memory({ initial: (2 * layout.strideBytes) / 65536 })
    expect(Object.prototype.toString.call(chunk.buffer)).toBe('[object ArrayBuffer]') // not shared
    const u8 = new Uint8Array(chunk.buffer)
    // Two instances, placed as the host places them: base, data segments.
    const place = (k: number) => {
      const inst = new WebAssembly.Instance(mod, { edgeless_dense: { memory: chunk } })
      const ex = inst.exports as Record<string, unknown>
      const base = k * layout.strideBytes
      ;(ex['edgeless_dense_base'] as WebAssembly.Global).value = base
      for (const seg of layout.data) u8.set(seg.bytes, base + seg.offset)
      const call = (op: number, a = 0, b = 0): number => {
        u8.set(cmd(op, a, b), base + 0x8000)
        const rc = (ex['handle_call_asm'] as (...a: number[]) => number)(0, 0, 0x8000, 13, 0x9000, 0x9004)
        expect(rc).toBe(1)
        const dv = new DataView(chunk.buffer)
        return dv.getUint32(base + dv.getUint32(base + 0x9000, true), true)
      }
      return call
    }
    const a = place(0)
    const b = place(1)
    expect(a(DATA)).toBe(0x736e6564)
    for (const addr of [REGION, REGION + 100, 0xffffffff]) a(STORE8, addr, 0x5a)
    expect(b(LOAD8, 0)).toBe(0)
    expect(b(LOAD8, 100)).toBe(0)
    expect(a(LOAD8, 100)).toBe(0x5a)
    expect(u8[layout.strideBytes + 100]).toBe(0)
  })

  test('a dense load gives the layout; a module that imports its memory (one already rewritten) is refused', async () => {
    const fm = await loadFunctionModule(wasm('tally'), noFiles, 'tally', undefined, true)
    // Node makes shared memories: the chunks are shared.
    expect(fm.dense).toMatchObject({
      shared: true,
      initialPages: 17,
      maxPages: 17 + 128,
      regionBytes: 16 * 1024 * 1024,
      strideBytes: 16 * 1024 * 1024 + GUARD_BYTES,
    })
    expect(fm.dense!.data.length).toBeGreaterThan(0)
    expect(WebAssembly.Module.imports(fm.module).some((i) => i.module === 'edgeless_dense' && i.kind === 'memory')).toBe(true)
    expect(WebAssembly.Module.exports(fm.module).some((e) => e.name === 'memory' && e.kind === 'memory')).toBe(true)
    const once = densify(wasm('dense_probe'), true, 'dense_probe')
    expect(WebAssembly.validate(once.bytes as Uint8Array<ArrayBuffer>)).toBe(true)
    expect(() => densify(once.bytes, true, 'twice')).toThrow(/twice cannot run with dense memory: it uses an imported memory/)
  })
})
