// Passivation at scale: N addressable instances of a small Rust guest (fixtures/rust/tally.rs,
// 17 wasm pages like any rustc cdylib) in one process, at most `maxActive` of them live.
// Spawns N lazily, then touches `touches` of them with a call (each call activates one
// instance: instantiate, read its state, handle_init; and hibernates the coldest live one),
// then touches a random sample of those again (their state must come back from the store).
// `node --expose-gc bench/passivation.mjs [N] [touches]` (after `npm run build`);
// `npm run bench:passivation` runs N = 1,000,000; bench/run.mjs folds in a smaller run.
import { Runtime } from '../dist/node.js'
import { memorySnapshot as mem, rawInstantiations as rawActivations, wasmBytes } from './util.mjs'

const tally = wasmBytes('tally')
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]

export async function benchPassivation({ n = 1_000_000, touches = 10_000, maxActive = 1000, sample = 1000, dense = false, log = () => {} } = {}) {
  touches = Math.min(n, touches)
  const rt = new Runtime({ consoleLog: false, passivation: { maxActive }, dense })
  const fm = await rt.load(tally)
  // The baseline instantiates the module with a memory of its own (as the runtime does unless dense).
  const own = dense ? await new Runtime({ consoleLog: false }).load(tally) : fm
  // The same raw work on a small heap, before the instances exist.
  const rawSmallHeap = rawActivations(own.module, Math.min(touches, 5000), maxActive)
  const before = await mem()
  const refs = new Array(n)
  let t0 = performance.now()
  for (let i = 0; i < n; i++) refs[i] = await rt.spawn({ name: 'tally', module: fm, lazy: true })
  const spawnMs = performance.now() - t0
  const spawned = await mem()
  log(`  ${n.toLocaleString('en-US')} lazy spawns in ${(spawnMs / 1000).toFixed(1)} s; ${((spawned.heap - before.heap) / n).toFixed(0)} B of heap each`)

  // Touch instances once each: each call wakes a hibernated instance.
  const lat = new Float64Array(touches)
  let wrong = 0
  t0 = performance.now()
  for (let i = 0; i < touches; i++) {
    const s = performance.now()
    const r = await rt.call(refs[i], 'x')
    lat[i] = performance.now() - s
    if (r.kind !== 'reply' || r.data.length !== 1 || r.data[0] !== 0x31) wrong++
    if (i % 10_000 === 9_999) log(`  touched ${(i + 1).toLocaleString('en-US')} (${(((i + 1) * 1000) / (performance.now() - t0)).toFixed(0)}/s)`)
  }
  const touchMs = performance.now() - t0
  const touched = await mem()
  // (Fewer in the big heap: with own memories each one may cost a full GC of it.)
  const rawBigHeap = rawActivations(own.module, Math.min(touches, 1000), maxActive)
  const stats = rt.passivationStats()
  lat.sort()

  // Again, a random sample: the count comes back from the store, so each answers "2".
  let x = 12345
  for (let k = 0; k < sample; k++) {
    x = (x * 1103515245 + 12345) >>> 0
    const i = x % touches
    const r = await rt.call(refs[i], 'x')
    const got = r.kind === 'reply' ? Number(new TextDecoder().decode(r.data)) : NaN
    if (!(got >= 2)) wrong++
  }
  const live = rt.instances().filter((i) => i.status === 'running').length
  t0 = performance.now()
  await rt.shutdown()
  const shutdownMs = performance.now() - t0
  return {
    n,
    touches,
    maxActive,
    spawnMs,
    spawnPerS: (n * 1000) / spawnMs,
    // Heap of n addressable (hibernated) instances, measured before any was touched.
    heapPerHibernated: (spawned.heap - before.heap) / n,
    rssPerHibernated: (spawned.rss - before.rss) / n,
    rssMB: touched.rss / 1e6,
    touchPerS: (touches * 1000) / touchMs,
    latencyMs: { p50: pct(lat, 0.5), p90: pct(lat, 0.9), p99: pct(lat, 0.99), max: lat[touches - 1] },
    rawActivationsPerS: { smallHeap: rawSmallHeap, bigHeap: rawBigHeap },
    shutdownMs,
    live,
    stats,
    wrong,
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 1_000_000)
  const touches = Number(process.argv[3] ?? 10_000)
  const dense = process.argv.includes('--dense')
  const r = await benchPassivation({ n, touches, dense, log: console.log })
  console.log(JSON.stringify(r, null, 2))
}
