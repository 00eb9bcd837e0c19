// Bad modules are refused AT LOAD with a typed EdgelessError: the right code and a message
// naming the problem. Both rt.load(...) and rt.spawn(...) reject, and nothing is left running.
//
// Fixtures: fixtures/wat/bad_*.wat (each a complete guest but for one defect), echo.wasm,
// trap.wasm (init payload "panic" panics in handle_init).
import { EdgelessError, FunctionModule, type ErrorCode, type ModuleSource } from '../lib/index'
import type { Runtime } from '../lib/node/index'
import { collect, testRuntime, wasm, wasmPath } from './helpers/fixtures'

async function rejection(p: Promise<unknown>): Promise<EdgelessError> {
  const e = await p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${String(v)}`)
    },
    (x: unknown) => x,
  )
  expect(e).toBeInstanceOf(EdgelessError)
  return e as EdgelessError
}

/** rt.load and rt.spawn both reject with `code` and a message matching every pattern; nothing spawns. */
async function expectRefused(rt: Runtime, source: ModuleSource, code: ErrorCode, patterns: RegExp[]) {
  const spawns = collect(rt, 'spawn')
  const crashes = collect(rt, 'crash')
  const viaLoad = await rejection(rt.load(source))
  const viaSpawn = await rejection(rt.spawn({ name: 'bad', module: source }))
  for (const e of [viaLoad, viaSpawn]) {
    expect(e.code).toBe(code)
    for (const re of patterns) expect(e.message).toMatch(re)
  }
  expect(viaSpawn.message).toMatch(/function "bad"/)
  expect(spawns).toEqual([])
  expect(crashes).toEqual([])
  expect(rt.instances()).toEqual([])
  return { viaLoad, viaSpawn }
}

describe('bytes that are not a usable wasm module', () => {
  test('truncated bytes (half of a real module) fail to compile: invalid-module', async () => {
    const rt = testRuntime()
    const full = wasm('echo')
    const { viaLoad } = await expectRefused(rt, full.slice(0, Math.floor(full.length / 2)), 'invalid-module', [/failed to compile/, /truncated or corrupt/])
    expect(viaLoad.message).toMatch(/^module failed to compile: /)
    // Truncated inside the 8-byte header.
    await expectRefused(rt, full.slice(0, 6), 'invalid-module', [/is not a WebAssembly module \(6 bytes, no "\\0asm" header\)/])
    await rt.shutdown()
  })

  test('random non-wasm bytes: invalid-module, no wasm header', async () => {
    const rt = testRuntime()
    const junk = new Uint8Array(1000)
    let x = 7
    for (let i = 0; i < junk.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0
      junk[i] = x >>> 24
    }
    junk[0] = 0x7b // '{', never the "\0asm" magic
    await expectRefused(rt, junk, 'invalid-module', [/is not a WebAssembly module \(1000 bytes, no "\\0asm" header\)/])
    await expectRefused(rt, new TextEncoder().encode('{"not":"wasm"}').buffer as ArrayBuffer, 'invalid-module', [/not a WebAssembly module \(14 bytes/])
    await rt.shutdown()
  })

  test('empty bytes: invalid-module', async () => {
    const rt = testRuntime()
    await expectRefused(rt, new Uint8Array(0), 'invalid-module', [/is not a WebAssembly module \(0 bytes/])
    await rt.shutdown()
  })

  test('a wasm header with the wrong version (2, or a component): invalid-module', async () => {
    const rt = testRuntime()
    const v2 = wasm('echo')
    v2[4] = 2
    await expectRefused(rt, v2, 'invalid-module', [/unsupported binary version/, /core modules \(version 1\)/])
    const component = wasm('echo')
    component.set([0x0d, 0x00, 0x01, 0x00], 4)
    await expectRefused(rt, component, 'invalid-module', [/WebAssembly component/])
    await rt.shutdown()
  })
})

describe('modules that do not follow the guest ABI', () => {
  test('missing handle_call_asm: missing-export naming it and its signature', async () => {
    const rt = testRuntime()
    const { viaLoad } = await expectRefused(rt, wasm('bad_missing_call'), 'missing-export', [
      /handle_call_asm \(i32, i32, i32, i32, i32, i32\) -> i32 is missing/,
    ])
    expect(viaLoad.details.exports).toEqual(['handle_call_asm (i32, i32, i32, i32, i32, i32) -> i32 is missing'])
    // The path is named when loading from a file.
    const fromFile = await rejection(rt.load(wasmPath('bad_missing_call')))
    expect(fromFile.code).toBe('missing-export')
    expect(fromFile.message).toContain(wasmPath('bad_missing_call'))
    await rt.shutdown()
  })

  test('handle_cast_asm with the wrong signature: missing-export naming both signatures', async () => {
    const rt = testRuntime()
    await expectRefused(rt, wasm('bad_cast_sig'), 'missing-export', [/handle_cast_asm is \(i32, i32, i32\) -> i32, expected \(i32, i32, i32, i32\) -> \(\)/])
    await rt.shutdown()
  })

  test('no "memory" export: missing-export naming it', async () => {
    const rt = testRuntime()
    const { viaLoad } = await expectRefused(rt, wasm('bad_no_memory'), 'missing-export', [/memory \(a linear memory export named "memory"\)/])
    expect(viaLoad.details.exports).toEqual(['memory (a linear memory export named "memory")'])
    await rt.shutdown()
  })

  test('importing env.unknown_fn: unknown-import naming it', async () => {
    const rt = testRuntime()
    const { viaLoad } = await expectRefused(rt, wasm('bad_import_unknown'), 'unknown-import', [
      /imports env\.unknown_fn \(function\), which the EDGELESS host does not provide/,
    ])
    expect(viaLoad.details.imports).toEqual(['env.unknown_fn (function)'])
    await rt.shutdown()
  })

  test('importing from "wasi_snapshot_preview1": unknown-import naming it', async () => {
    const rt = testRuntime()
    await expectRefused(rt, wasm('bad_import_wasi'), 'unknown-import', [/imports wasi_snapshot_preview1\.fd_write \(function\)/, /avoid wasm-bindgen and WASI/])
    await rt.shutdown()
  })

  test('importing env.cast_asm with a wrong signature: unknown-import naming both signatures', async () => {
    const rt = testRuntime()
    await expectRefused(rt, wasm('bad_import_sig'), 'unknown-import', [/env\.cast_asm is \(i32, i32\) -> \(\), expected \(i32, i32, i32, i32\) -> \(\)/])
    await rt.shutdown()
  })
})

describe('failures at instantiation and in init', () => {
  test('a start function that traps: load succeeds, spawn rejects with invalid-module', async () => {
    const rt = testRuntime()
    const spawns = collect(rt, 'spawn')
    const fm = await rt.load(wasm('bad_start_trap'))
    expect(fm).toBeInstanceOf(FunctionModule)
    const e = await rejection(rt.spawn({ name: 'starter', module: fm }))
    expect(e.code).toBe('invalid-module')
    expect(e.message).toMatch(/^Instantiating function "starter" failed: .*unreachable/)
    expect(e.cause).toBeInstanceOf(WebAssembly.RuntimeError)
    const e2 = await rejection(rt.spawn({ name: 'starter2', module: wasm('bad_start_trap') }))
    expect(e2.code).toBe('invalid-module')
    expect(spawns).toEqual([])
    expect(rt.instances()).toEqual([])
    await rt.shutdown()
  })

  test('a handler that traps in init: spawn rejects with trap and emits crash with handler "init"', async () => {
    const rt = testRuntime()
    const crashes = collect(rt, 'crash')
    const spawns = collect(rt, 'spawn')
    const e = await rejection(rt.spawn({ name: 'trapper', module: wasm('trap'), initPayload: 'panic' }))
    expect(e.code).toBe('trap')
    expect(e.message).toMatch(/^trapper crashed in handle_init: .*unreachable/)
    expect(crashes).toHaveLength(1)
    expect([crashes[0]!.name, crashes[0]!.handler, crashes[0]!.trap]).toEqual(['trapper', 'init', 'unreachable'])
    expect(crashes[0]!.error).toBe(e)
    expect(spawns).toEqual([])
    expect(rt.instances()).toEqual([])
    // The same module without the panic spawns fine.
    const ok = await rt.spawn({ name: 'trapper', module: wasm('trap') })
    const r = await rt.call(ok, 'ok')
    expect(r.kind === 'reply' && new TextDecoder().decode(r.data)).toBe('ok')
    await rt.shutdown()
  })
})

describe('sources', () => {
  test('a nonexistent file path: load-failed naming the path', async () => {
    const rt = testRuntime()
    const missing = wasmPath('no-such-module')
    const { viaLoad } = await expectRefused(rt, missing, 'load-failed', [/Could not read .*no-such-module\.wasm/, /ENOENT/])
    expect(viaLoad.details.source).toBe(missing)
    await rt.shutdown()
  })

  test('a precompiled WebAssembly.Module that is fine loads and runs', async () => {
    const rt = testRuntime({ dense: false }) // precompiled: never dense
    const mod = await WebAssembly.compile(wasm('echo') as Uint8Array<ArrayBuffer>)
    const fm = await rt.load(mod)
    expect(fm).toBeInstanceOf(FunctionModule)
    expect(fm.module).toBe(mod)
    const e = await rt.spawn({ name: 'echo', module: mod })
    const r = await rt.call(e, Uint8Array.from([1, 0, 255]))
    expect(r.kind === 'reply' && Array.from(r.data)).toEqual([1, 0, 255])
    await rt.shutdown()
  })

  test('a precompiled WebAssembly.Module missing an export is refused, naming it', async () => {
    const rt = testRuntime({ dense: false }) // precompiled: never dense
    const mod = await WebAssembly.compile(wasm('bad_missing_call') as Uint8Array<ArrayBuffer>)
    await expectRefused(rt, mod, 'missing-export', [/handle_call_asm .*is missing/])
    const noMem = await WebAssembly.compile(wasm('bad_no_memory') as Uint8Array<ArrayBuffer>)
    await expectRefused(rt, noMem, 'missing-export', [/memory \(a linear memory export named "memory"\)/])
    const wasi = await WebAssembly.compile(wasm('bad_import_wasi') as Uint8Array<ArrayBuffer>)
    await expectRefused(rt, wasi, 'unknown-import', [/wasi_snapshot_preview1\.fd_write/])
    await rt.shutdown()
  })
})
