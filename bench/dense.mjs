// Dense memory (lib/wasm/dense.ts): many live instances in one process, and what confining
// every memory access costs the guest's own code.
//
// live:  N live instances of tally (fixtures/rust/tally.rs, a small stateful Rust guest of
//        17 pages) spawned dense, all kept live; spawn rate per block of 10,000 (does it
//        stay flat as they accumulate?), RSS and heap per instance; a sample of them is
//        called and must count independently. Baseline: raw `new WebAssembly.Instance` +
//        handle_init of the same guest with a memory of its own, kept live, measured in the
//        same process first (it cannot go far: ~13,000 memories fit in a process).
// speed: the same guest dense and with its own memory, in alternating rounds: pong calls
//        (mostly host work) and a 96x96 matmul (memory-bound guest code, the worst case).
// `node --expose-gc bench/dense.mjs [N]` (after `npm run build`); bench/run.mjs folds it in.
import { Runtime } from '../dist/node.js'
import { fullGc, median, memorySnapshot as mem, rawInstantiations, wasmBytes } from './util.mjs'

export async function benchLive({ n = 100_000, rawN = 2000, block = 10_000, log = () => {} } = {}) {
  const tally = wasmBytes('tally')
  const own = await new Runtime({ consoleLog: false }).load(tally)
  const rawPerS = rawInstantiations(own.module, rawN, rawN)
  await fullGc()
  const rt = new Runtime({ consoleLog: false, dense: true })
  const fm = await rt.load(tally)
  const before = await mem()
  const refs = new Array(n)
  const blocks = []
  const t0 = performance.now()
  for (let b = 0; b < n; b += block) {
    const end = Math.min(n, b + block)
    const tb = performance.now()
    for (let i = b; i < end; i++) refs[i] = await rt.spawn({ name: 'tally', module: fm })
    blocks.push(((end - b) * 1000) / (performance.now() - tb))
    if (log) log(`  ${end.toLocaleString('en-US')} live: ${blocks[blocks.length - 1].toFixed(0)} spawns/s in this block`)
  }
  const spawnMs = performance.now() - t0
  const after = await mem()
  const live = rt.instances().filter((i) => i.status === 'running').length
  // Every 100th instance is called (i / 100) % 3 + 1 times; each must count on its own.
  let wrong = 0
  for (let i = 0; i < n; i += 100) {
    const k = ((i / 100) % 3) + 1
    let r
    for (let j = 0; j < k; j++) r = await rt.call(refs[i], 'x')
    if (r.kind !== 'reply' || new TextDecoder().decode(r.data) !== String(k)) wrong++
  }
  const ts = performance.now()
  await rt.shutdown()
  return {
    n,
    live,
    wrong,
    spawnPerS: (n * 1000) / spawnMs,
    firstBlockPerS: blocks[0],
    lastBlockPerS: blocks[blocks.length - 1],
    rawPerS,
    rawN,
    rssPerInstance: (after.rss - before.rss) / n,
    heapPerInstance: (after.heap - before.heap) / n,
    rssMB: after.rss / 1e6,
    shutdownMs: performance.now() - ts,
  }
}

/** Alternating rounds of `fn(side)` for both sides; the median per-round ratio dense/own of ms per op. */
async function alternate(sides, run, rounds, ops) {
  const ratios = []
  const ms = { dense: [], own: [] }
  for (let r = 0; r < rounds; r++) {
    for (const name of r % 2 ? ['own', 'dense'] : ['dense', 'own']) {
      const t0 = performance.now()
      await run(sides[name], ops)
      ms[name].push((performance.now() - t0) / ops)
    }
    ratios.push(ms.dense[r] / ms.own[r])
  }
  return { denseMsPerOp: median(ms.dense), ownMsPerOp: median(ms.own), ratio: median(ratios) }
}

export async function benchSpeed({ rounds = 9, log = () => {} } = {}) {
  const rt = new Runtime({ consoleLog: false })
  const pong = {
    dense: await rt.spawn({ name: 'pong-dense', module: wasmBytes('pong'), dense: true }),
    own: await rt.spawn({ name: 'pong-own', module: wasmBytes('pong') }),
  }
  const mm = {
    dense: await rt.spawn({ name: 'mm-dense', module: wasmBytes('matmul'), dense: true }),
    own: await rt.spawn({ name: 'mm-own', module: wasmBytes('matmul') }),
  }
  const x = new Uint8Array([0x78])
  const n96 = new TextEncoder().encode('96')
  const a = await rt.call(mm.dense, n96)
  const b = await rt.call(mm.own, n96)
  if (a.kind !== 'reply' || b.kind !== 'reply' || Buffer.compare(a.data, b.data) !== 0) throw new Error('matmul dense and own disagree')
  const pongFig = await alternate(
    pong,
    async (ref, k) => {
      for (let i = 0; i < k; i++) await rt.call(ref, x)
    },
    rounds,
    20_000,
  )
  log(`  pong call: dense ${(pongFig.denseMsPerOp * 1e6).toFixed(0)} ns, own ${(pongFig.ownMsPerOp * 1e6).toFixed(0)} ns (ratio ${pongFig.ratio.toFixed(3)})`)
  const mmFig = await alternate(
    mm,
    async (ref, k) => {
      for (let i = 0; i < k; i++) await rt.call(ref, n96)
    },
    rounds,
    20,
  )
  log(`  matmul 96: dense ${mmFig.denseMsPerOp.toFixed(3)} ms, own ${mmFig.ownMsPerOp.toFixed(3)} ms (ratio ${mmFig.ratio.toFixed(3)})`)
  await rt.shutdown()
  return { pong: pongFig, matmul: mmFig }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 100_000)
  console.log(JSON.stringify(await benchSpeed({ log: console.log }), null, 2))
  console.log(JSON.stringify(await benchLive({ n, log: console.log }), null, 2))
}
