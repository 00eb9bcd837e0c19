// The cost of fuel metering (lib/wasm/meter.ts) on real guests: each guest is spawned twice
// in the same runtime, metered (the default fuel) and unmetered (`fuel: Infinity`, the module
// as it was built), and both are driven by the same calls.
//
//   matmul N  fixtures/rust/matmul.rs: call "N" multiplies two NxN f64 matrices (a tight
//             inner loop, the meter's worst case: one check per 4-5 instructions)
//   pong      fixtures/rust/pong.rs: call => "PONG" (formats and logs a line; call-bound)
//   load      spawn (load, instrument, compile, instantiate, init) of pong and matmul from
//             bytes with the module cache cleared each time: metered vs fuel: Infinity
//   vm        virtual address space (VmSize in /proc/self/status, Linux) taken per instance
//             of pong, 200 instances, without a declared memory maximum and with a 4 MiB cap
//
// Method: a round size calibrated to take about ROUND_MS on the unmetered side, warm-up,
// then ROUNDS pairs of rounds, the sides alternating (A B, B A, ...), a full GC before each
// pair. Figures are medians; `ratio` is the median of the per-pair ratios metered /
// unmetered (1.10 = 10% slower), `cpuRatio` the same with process CPU time. Many short
// pairs rather than a few long rounds: on a shared machine the load swings, and both sides
// of a short pair see about the same load.
//
// Standalone: `npm run build && node --expose-gc bench/fuel.mjs` (prints a table and the
// JSON). From bench/run.mjs: `const { benchFuel } = await import('./fuel.mjs')`.
// Environment knobs: BENCH_ROUNDS, BENCH_ROUND_MS, BENCH_FUEL_SIZES (e.g. "48,128").
import { readFileSync } from 'node:fs'
import { Runtime, clearModuleCache } from 'edgeless'
import { fullGc, median, wasmBytes } from './util.mjs'

/** Time `run(n)`: wall ms, and CPU ms of the process (user + system, all threads). */
async function time(run, n) {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await run(n)
  const wall = performance.now() - t0
  const c = process.cpuUsage(c0)
  return { wall, cpu: (c.user + c.system) / 1000 }
}

/**
 * Alternate two sides for `rounds` pairs of rounds of `n` operations each. Each pair gives a
 * ratio; the figure is the median of those. Short rounds, many pairs: a machine whose load
 * changes (other processes) shifts both sides of a pair alike. The CPU-time ratio is given
 * too: it is less sensitive to the process being descheduled than the wall-clock one.
 */
async function compare(metered, plain, { rounds, roundMs, step = 1 }) {
  // Calibrate on the unmetered side, after a warm-up that lets the engine tier up.
  for (let i = 0; i < 3; i++) {
    await metered(step)
    await plain(step)
  }
  let n = step
  for (;;) {
    const { wall } = await time(plain, n)
    if (wall >= roundMs / 4 || n >= 1e7) {
      n = Math.max(step, Math.round((n * roundMs) / Math.max(wall, 0.01) / step) * step)
      break
    }
    n *= 4
  }
  await time(metered, n)
  await time(plain, n)
  const m = []
  const p = []
  const ratios = []
  const cpuRatios = []
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? [0, 1] : [1, 0]
    const got = [null, null]
    await fullGc()
    for (const side of order) got[side] = await time(side === 0 ? metered : plain, n)
    m.push(got[0].wall / n)
    p.push(got[1].wall / n)
    ratios.push(got[0].wall / got[1].wall)
    cpuRatios.push(got[0].cpu / got[1].cpu)
  }
  return {
    opsPerRound: n,
    meteredMsPerOp: median(m),
    unmeteredMsPerOp: median(p),
    ratio: median(ratios),
    cpuRatio: median(cpuRatios),
    roundRatios: ratios.map((x) => Number(x.toFixed(3))),
  }
}

/**
 * Measure the metering overhead. Returns the figures (no printing):
 * `{ matmul: { [N]: figure }, pong: figure, load: { [guest]: { meteredMs, unmeteredMs, ratio } } }`,
 * each figure `{ opsPerRound, meteredMsPerOp, unmeteredMsPerOp, ratio, roundRatios }`.
 */
export async function benchFuel(options = {}) {
  const rounds = options.rounds ?? Number(process.env.BENCH_ROUNDS ?? 61)
  const roundMs = options.roundMs ?? Number(process.env.BENCH_ROUND_MS ?? 30)
  const sizes = options.sizes ?? (process.env.BENCH_FUEL_SIZES ?? '48,128').split(',').map(Number)
  const log = options.log ?? (() => {})
  const out = { rounds, roundMs, matmul: {}, pong: null, load: {} }

  const rt = new Runtime({ consoleLog: false, callTimeoutMs: Infinity })
  try {
    const matmul = wasmBytes('matmul')
    const mm = await rt.spawn({ name: 'matmul', module: matmul })
    const mmPlain = await rt.spawn({ name: 'matmul-plain', module: matmul, fuel: Infinity })
    for (const size of sizes) {
      const payload = String(size)
      const want = await rt.call(mmPlain, payload)
      const got = await rt.call(mm, payload)
      if (want.kind !== 'reply' || got.kind !== 'reply' || Buffer.compare(want.data, got.data) !== 0) {
        throw new Error(`matmul ${size}: metered and unmetered disagree (${got.kind} vs ${want.kind})`)
      }
      const run = (ref) => async (n) => {
        for (let i = 0; i < n; i++) await rt.call(ref, payload)
      }
      log(`matmul ${size}`)
      out.matmul[size] = await compare(run(mm), run(mmPlain), { rounds, roundMs })
    }

    const pongBytes = wasmBytes('pong')
    const pong = await rt.spawn({ name: 'pong', module: pongBytes })
    const pongPlain = await rt.spawn({ name: 'pong-plain', module: pongBytes, fuel: Infinity })
    const calls = (ref) => async (n) => {
      for (let i = 0; i < n; i++) await rt.call(ref, 'x')
    }
    log('pong')
    out.pong = await compare(calls(pong), calls(pongPlain), { rounds, roundMs, step: 100 })
  } finally {
    await rt.shutdown()
  }

  // Load: instrumentation + compile against compile alone (a fresh cache every time).
  for (const name of ['pong', 'matmul']) {
    const bytes = wasmBytes(name)
    const rtl = new Runtime({ consoleLog: false })
    const once = async (fuel) => {
      clearModuleCache()
      const t0 = performance.now()
      await rtl.spawn({ name, module: bytes, fuel }).then((r) => rtl.stop(r))
      return performance.now() - t0
    }
    log(`load ${name}`)
    const m = []
    const p = []
    for (let i = 0; i < 3; i++) {
      await once(undefined)
      await once(Infinity)
    }
    for (let i = 0; i < rounds; i++) {
      m.push(await once(undefined))
      p.push(await once(Infinity))
    }
    out.load[name] = { meteredMs: median(m), unmeteredMs: median(p), ratio: median(m) / median(p) }
    await rtl.shutdown()
  }
  out.vm = await vmSizePerInstance(200)
  return out
}

/** VmSize and VmRSS growth per pong instance, without and with a memory cap (null off Linux). */
async function vmSizePerInstance(count) {
  const status = () => readFileSync('/proc/self/status', 'utf8')
  try {
    status()
  } catch {
    return null
  }
  const kb = (k) => Number(status().match(new RegExp(`${k}:\\s+(\\d+)`))[1])
  const result = { instances: count }
  for (const [label, opts] of [
    ['noMax', {}],
    ['cap4MiB', { maxMemoryBytes: 4 << 20 }],
  ]) {
    const rt = new Runtime({ consoleLog: false })
    await rt.spawn({ name: 'warm', module: wasmBytes('pong'), ...opts })
    await fullGc()
    const size0 = kb('VmSize')
    const rss0 = kb('VmRSS')
    for (let i = 0; i < count; i++) await rt.spawn({ name: `p${i}`, module: wasmBytes('pong'), ...opts })
    result[label] = { vmSizeMiBPerInstance: (kb('VmSize') - size0) / 1024 / count, rssKiBPerInstance: (kb('VmRSS') - rss0) / count }
    await rt.shutdown()
    await fullGc()
  }
  return result
}

const isMain = process.argv[1] && new URL(import.meta.url).pathname === new URL(`file://${process.argv[1]}`).pathname
if (isMain) {
  if (typeof global.gc !== 'function') console.error('(run with --expose-gc for a full GC before each round)')
  const started = performance.now()
  const r = await benchFuel({ log: (m) => process.stderr.write(`[fuel ${((performance.now() - started) / 1000).toFixed(1)}s] ${m}\n`) })
  const pct = (x) => `${((x - 1) * 100).toFixed(1)}%`
  const rows = [
    ...Object.entries(r.matmul).map(([n, f]) => [
      `matmul ${n}x${n} (ms/call)`,
      f.meteredMsPerOp.toFixed(3),
      f.unmeteredMsPerOp.toFixed(3),
      pct(f.ratio),
      pct(f.cpuRatio),
    ]),
    ['pong (us/call)', (r.pong.meteredMsPerOp * 1000).toFixed(2), (r.pong.unmeteredMsPerOp * 1000).toFixed(2), pct(r.pong.ratio), pct(r.pong.cpuRatio)],
    ...Object.entries(r.load).map(([n, f]) => [`load ${n} (ms)`, f.meteredMs.toFixed(1), f.unmeteredMs.toFixed(1), pct(f.ratio), '']),
  ]
  const w = [30, 10, 12, 9, 9]
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ')
  console.log(line(['', 'metered', 'fuel:Inf', 'overhead', 'cpu']))
  for (const row of rows) console.log(line(row))
  if (r.vm) {
    for (const [k, v] of Object.entries(r.vm))
      if (typeof v === 'object')
        console.log(
          `vm ${k}: ${v.vmSizeMiBPerInstance.toFixed(1)} MiB of address space and ${v.rssKiBPerInstance.toFixed(0)} KiB RSS per instance (${r.vm.instances} instances)`,
        )
  }
  console.log(JSON.stringify(r, null, 2))
}
