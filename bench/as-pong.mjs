// Per-call time of the AssemblyScript pong (fixtures/wasm/as_pong.wasm) against the Rust
// pong (fixtures/wasm/pong.wasm), both driven through the built runtime with sequential
// `await rt.call(pong, 'PING-0')` (each call logs a line and replies "PONG"; the runtime
// does the full memory hygiene). `npm run build` first, then
//
//     node --expose-gc bench/as-pong.mjs
//
// Method: calibrate a round to ~ROUND_MS, warm both up, then ROUNDS rounds alternating
// the sides (A B, B A, ...), a GC before each round when --expose-gc is given; a side's
// figure is the median of its rounds, ratio = AS / Rust. The same comparison is also made
// on the bare guests (instantiated by hand, no runtime), where the guest's own cost shows.
//
// `benchAsPong()` returns { asNsPerCall, rustNsPerCall, ratio, raw } for bench/run.mjs.
// Knobs: BENCH_ROUNDS (default 7), BENCH_ROUND_MS (default 150).
import { fileURLToPath } from 'node:url'
import { Runtime } from '../dist/node.js'
import { median, tick, wasmBytes } from './util.mjs'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 150)
const PAYLOAD = new TextEncoder().encode('PING-0')

async function gc() {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc()
    await tick()
  }
}

/** Time `run(n)` in ms. */
async function time(run, n) {
  const t0 = performance.now()
  await run(n)
  return performance.now() - t0
}

/** A round size that takes about ROUND_MS. */
async function calibrate(run) {
  let n = 100
  for (;;) {
    const ms = await time(run, n)
    if (ms >= ROUND_MS / 4 || n >= 10_000_000) return Math.max(100, Math.round((n * ROUND_MS) / Math.max(ms, 0.01)))
    n *= 4
  }
}

/** ns per operation of sides a and b, alternating rounds; medians. */
async function compare(a, b) {
  const n = Math.max(await calibrate(a), await calibrate(b))
  await a(n)
  await b(n)
  const ta = []
  const tb = []
  for (let r = 0; r < ROUNDS; r++) {
    const order =
      r % 2
        ? [
            [b, tb],
            [a, ta],
          ]
        : [
            [a, ta],
            [b, tb],
          ]
    for (const [run, out] of order) {
      await gc()
      out.push(((await time(run, n)) * 1e6) / n)
    }
  }
  return { a: median(ta), b: median(tb), n }
}

/** n sequential calls through a runtime. */
async function runtimeSide(rt, name, module) {
  const ref = await rt.spawn({ name, module })
  return async (n) => {
    for (let i = 0; i < n; i++) {
      const r = await rt.call(ref, PAYLOAD)
      if (r.kind !== 'reply') throw new Error(`${name}: expected a reply, got ${r.kind}`)
    }
  }
}

/** n calls of a bare guest with the host's per-message hygiene (guest-abi.md), no runtime. */
async function rawSide(bytes) {
  const { instance } = await WebAssembly.instantiate(bytes, { env: { telemetry_log_asm() {} } })
  const ex = instance.exports
  let u8 = new Uint8Array(ex.memory.buffer)
  const ids = new Uint8Array(32).fill(7)
  return (n) => {
    for (let i = 0; i < n; i++) {
      ex.edgeless_mem_clear()
      const s = ex.edgeless_mem_alloc(40)
      const p = ex.edgeless_mem_alloc(PAYLOAD.length)
      if (u8.length === 0) u8 = new Uint8Array(ex.memory.buffer)
      u8.set(ids, s)
      u8.set(PAYLOAD, p)
      if (ex.handle_call_asm(s, s + 16, p, PAYLOAD.length, s + 32, s + 36) !== 1) throw new Error('no reply')
      if (u8.length === 0) u8 = new Uint8Array(ex.memory.buffer)
      const rp = u8[s + 32] | (u8[s + 33] << 8) | (u8[s + 34] << 16) | (u8[s + 35] << 24)
      if (u8[rp] !== 0x50) throw new Error('bad reply') // 'P'
      ex.edgeless_mem_free(s, 40)
      ex.edgeless_mem_free(p, PAYLOAD.length)
    }
  }
}

/**
 * Per-call time of the AssemblyScript pong vs the Rust pong.
 * @returns {Promise<{ asNsPerCall: number, rustNsPerCall: number, ratio: number, raw: { asNsPerCall: number, rustNsPerCall: number, ratio: number } }>}
 */
export async function benchAsPong() {
  const rt = new Runtime({ consoleLog: false })
  try {
    const asRun = await runtimeSide(rt, 'as-pong', wasmBytes('as_pong'))
    const rustRun = await runtimeSide(rt, 'rust-pong', wasmBytes('pong'))
    const viaRuntime = await compare(asRun, rustRun)
    const raw = await compare(await rawSide(wasmBytes('as_pong')), await rawSide(wasmBytes('pong')))
    return {
      asNsPerCall: viaRuntime.a,
      rustNsPerCall: viaRuntime.b,
      ratio: viaRuntime.a / viaRuntime.b,
      raw: { asNsPerCall: raw.a, rustNsPerCall: raw.b, ratio: raw.a / raw.b },
    }
  } finally {
    await rt.shutdown()
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await benchAsPong()
  const f = (x) => x.toFixed(0).padStart(8)
  console.log('pong call (payload "PING-0", reply "PONG")   AS ns/call   Rust ns/call   AS/Rust')
  console.log(`through the runtime                        ${f(r.asNsPerCall)}     ${f(r.rustNsPerCall)}      ${r.ratio.toFixed(2)}`)
  console.log(`bare guest (host hygiene by hand)          ${f(r.raw.asNsPerCall)}     ${f(r.raw.rustNsPerCall)}      ${r.raw.ratio.toFixed(2)}`)
  if (typeof globalThis.gc !== 'function') console.log('(run with --expose-gc for a GC before each round)')
}
