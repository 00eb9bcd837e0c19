// The cost of inspection: casts per second into a no-op guest (fixtures/wasm/noop.wasm,
// every handler empty) through the built runtime (../dist/node.js), in one run:
//
//   never      no observer was ever installed in this process (the pure zero-cost path)
//   raw        runtime.observe() with every hook present and doing nothing (the hook floor)
//   stream     inspectStream() with a listener that counts events (what an inspector pays)
//   metrics    collectMetrics() (histograms and counters per function)
//   after      the same runtime after every one of them was unsubscribed
//
// "after" must match "never" within noise: unsubscribing sets the observer back to null, so
// every hook point is one null check again.
//
// Method: a round casts N messages from the host into a noop instance and then calls it
// once (the call is queued behind the casts, so it returns when all were handled); N is
// calibrated so a round takes about ROUND_MS. Casts/s are measured in wall time and per CPU
// second of the process (less sensitive to being descheduled on a busy machine).
//   sequential   one runtime, the phases in the order above ("never" first: nothing may be
//                installed before it), ROUNDS rounds each after a warm-up, a GC before each
//                round, the median round. Honest about "never", but phases run at different
//                times, so machine load drifts between them.
//   interleaved  a runtime per side (never: one that never had an observer; after: the
//                sequential one, all its observers removed), every side once per round in a
//                rotating order; each side's ratio to "never" is taken within the round and
//                the figure is the median of those ratios. The robust comparison.
//
// The inspect functions come from dist/node.js when the package exports them; otherwise
// lib/inspect is bundled on the fly with esbuild (it only imports types from the runtime, so
// the bundle drives the built runtime's own observer API).
//
// Standalone: `npm run build && node --expose-gc bench/inspect.mjs` (prints a table and the
// JSON). From elsewhere: `const { benchInspect } = await import('./inspect.mjs')`.
// Environment knobs: BENCH_ROUNDS, BENCH_ROUND_MS.
import { fileURLToPath, pathToFileURL } from 'node:url'
import { fullGc, median, wasmBytes } from './util.mjs'

const here = new URL('.', import.meta.url)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9)
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 150)

/** inspectStream and collectMetrics: from the built package if it exports them, else bundled from lib/inspect. */
async function inspectApi(dist) {
  if (typeof dist.inspectStream === 'function' && typeof dist.collectMetrics === 'function') return { api: dist, source: 'dist/node.js' }
  const esbuild = await import('esbuild')
  const built = await esbuild.build({
    entryPoints: [fileURLToPath(new URL('../lib/inspect/index.ts', here))],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    write: false,
    logLevel: 'silent',
    target: 'es2022',
  })
  const code = built.outputFiles[0].text
  const api = await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`)
  return { api, source: 'lib/inspect bundled with esbuild (dist/node.js does not export it yet)' }
}

/** One round: n casts, then a call queued behind them. Returns casts per wall second and per CPU second. */
async function round(side, n) {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) side.rt.cast(side.ref, 'x')
  await side.rt.call(side.ref, 'done')
  const wall = (performance.now() - t0) / 1000
  const c = process.cpuUsage(c0)
  return { wall: n / wall, cpu: n / ((c.user + c.system) / 1e6) }
}

async function calibrate(side) {
  let n = 1000
  for (;;) {
    const t0 = performance.now()
    await round(side, n)
    const ms = performance.now() - t0
    if (ms >= ROUND_MS / 4 || n >= 5_000_000) return Math.max(1000, Math.round((n * ROUND_MS) / ms))
    n *= 4
  }
}

/** ROUNDS rounds of one side after a warm-up: the median casts/s (wall and CPU). */
async function phase(side, n) {
  for (let i = 0; i < 3; i++) await round(side, n)
  const wall = []
  const cpu = []
  for (let i = 0; i < ROUNDS; i++) {
    await fullGc()
    const r = await round(side, n)
    wall.push(r.wall)
    cpu.push(r.cpu)
  }
  return { castsPerSec: Math.round(median(wall)), castsPerCpuSec: Math.round(median(cpu)) }
}

/**
 * Every side once per round, in a rotating order; each side's ratio to "never" is taken
 * within the round (the same machine load), and the figure is the median of those ratios.
 */
async function interleaved(sides, n) {
  const names = Object.keys(sides)
  const ratios = Object.fromEntries(names.map((k) => [k, { wall: [], cpu: [] }]))
  const rates = Object.fromEntries(names.map((k) => [k, []]))
  for (let i = 0; i < ROUNDS; i++) {
    const order = names.map((_, j) => names[(i + j) % names.length])
    const got = {}
    for (const k of order) {
      await fullGc()
      got[k] = await round(sides[k], n)
    }
    for (const k of names) {
      ratios[k].wall.push(got[k].wall / got.never.wall)
      ratios[k].cpu.push(got[k].cpu / got.never.cpu)
      rates[k].push(got[k].wall)
    }
  }
  return Object.fromEntries(
    names.map((k) => [
      k,
      {
        castsPerSec: Math.round(median(rates[k])),
        ratio: Number(median(ratios[k].wall).toFixed(3)),
        cpuRatio: Number(median(ratios[k].cpu).toFixed(3)),
      },
    ]),
  )
}

/**
 * Run the benchmark; resolves to the figures: `sequential` (one runtime, phases in order,
 * "never" measured before any observer existed in the process) and `interleaved` (one
 * runtime per side, rounds alternating, ratios to "never" within each round).
 */
export async function benchInspect({ log = (m) => process.stderr.write(`[inspect] ${m}\n`) } = {}) {
  const dist = await import(new URL('../dist/node.js', here).href)
  const { Runtime } = dist
  const noop = wasmBytes('noop')
  const side = async () => {
    const rt = new Runtime({ consoleLog: false, mailboxCapacity: Infinity })
    return { rt, ref: await rt.spawn({ name: 'noop', module: noop }) }
  }
  const main = await side()
  // Warm up the engine on the uninstrumented path, then calibrate.
  for (let i = 0; i < 5; i++) await round(main, 20_000)
  const n = await calibrate(main)
  log(
    `${n} casts per round, ${ROUNDS} rounds per figure; load average ${(await import('node:os'))
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  )
  const out = { node: process.version, castsPerRound: n, rounds: ROUNDS, sequential: {}, interleaved: {} }

  // ---- sequential, on one runtime --------------------------------------------------------
  const seq = out.sequential
  seq.never = await phase(main, n)
  log(`never    ${seq.never.castsPerSec} casts/s`)
  // Imported only now: no inspection code has run before "never".
  const { api, source } = await inspectApi(dist)
  out.inspectSource = source

  let off = main.rt.observe({ enqueued() {}, started() {}, finished() {}, timer() {}, instantiated() {}, sent() {} })
  seq.raw = await phase(main, n)
  off()
  log(`raw      ${seq.raw.castsPerSec} casts/s`)
  let events = 0
  off = api.inspectStream(main.rt, () => {
    events++
  })
  seq.stream = await phase(main, n)
  off()
  seq.stream.eventsPerCast = Number((events / ((3 + ROUNDS) * (n + 1))).toFixed(2))
  log(`stream   ${seq.stream.castsPerSec} casts/s (${seq.stream.eventsPerCast} events per message)`)
  const m = api.collectMetrics(main.rt)
  seq.metrics = await phase(main, n)
  m.close()
  log(`metrics  ${seq.metrics.castsPerSec} casts/s`)
  out.observerAfterUnsubscribe = main.rt.internals().observer
  seq.after = await phase(main, n)
  log(`after    ${seq.after.castsPerSec} casts/s (observer: ${out.observerAfterUnsubscribe})`)
  for (const v of Object.values(seq)) {
    v.ratio = Number((v.castsPerSec / seq.never.castsPerSec).toFixed(3))
    v.cpuRatio = Number((v.castsPerCpuSec / seq.never.castsPerCpuSec).toFixed(3))
  }

  // ---- interleaved, one runtime per side -------------------------------------------------
  const sides = { never: await side(), raw: await side(), stream: await side(), metrics: await side(), after: main }
  sides.raw.rt.observe({ enqueued() {}, started() {}, finished() {}, timer() {}, instantiated() {}, sent() {} })
  api.inspectStream(sides.stream.rt, () => {})
  const m2 = api.collectMetrics(sides.metrics.rt)
  for (const k of ['never', 'raw', 'stream', 'metrics']) for (let i = 0; i < 3; i++) await round(sides[k], n)
  out.interleaved = await interleaved(sides, n)
  for (const [k, v] of Object.entries(out.interleaved)) log(`${k.padEnd(8)} ${v.ratio}x never (cpu ${v.cpuRatio}x), ${v.castsPerSec} casts/s`)
  m2.close()
  await Promise.all(Object.values(sides).map((x) => x.rt.shutdown()))
  return out
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await benchInspect()
  const row = (k, v) => `${k.padEnd(8)} ${String(v.castsPerSec).padStart(10)} ${v.ratio.toFixed(3).padStart(8)} ${v.cpuRatio.toFixed(3).padStart(8)}`
  console.log(
    [
      'sequential (one runtime, in this order)   casts/s    ratio  cpu ratio',
      ...Object.entries(r.sequential).map(([k, v]) => row(k, v)),
      `interleaved (a runtime per side, median of ${r.rounds} rounds of per-round ratios)`,
      ...Object.entries(r.interleaved).map(([k, v]) => row(k, v)),
    ].join('\n'),
  )
  console.log(JSON.stringify(r, null, 2))
}
