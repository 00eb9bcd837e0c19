// CPU-bound functions in different workers run in parallel: two matmul instances, each in
// its own worker, against one worker doing the same total work, in the same run.
// `node bench/workers.mjs` (after `npm run build`); bench/run.mjs folds it in.
import { fileURLToPath } from 'node:url'
import { Runtime } from '../dist/node.js'

const matmul = fileURLToPath(new URL('../fixtures/wasm/matmul.wasm', import.meta.url))

async function timeCalls(rt, refs, perRef, n) {
  const t0 = performance.now()
  // Each instance gets its calls one after another; different instances run at the same time.
  await Promise.all(
    refs.map(async (ref) => {
      for (let i = 0; i < perRef; i++) {
        const r = await rt.call(ref, String(n), { timeoutMs: 120_000 })
        if (r.kind !== 'reply') throw new Error(`matmul failed: ${r.kind === 'err' ? r.error.message : r.kind}`)
      }
    }),
  )
  return performance.now() - t0
}

/** Returns { oneWorkerMs, twoWorkersMs, speedup } for `total` multiplications of n x n. */
export async function benchWorkers({ n = 256, total = 24, rounds = 3 } = {}) {
  const rt = new Runtime({ consoleLog: false, fuel: Infinity, callTimeoutMs: 120_000 })
  const one = await rt.spawn({ name: 'one', module: matmul, isolation: 'worker', deadlineMs: 120_000 })
  const a = await rt.spawn({ name: 'a', module: matmul, isolation: 'worker', deadlineMs: 120_000 })
  const b = await rt.spawn({ name: 'b', module: matmul, isolation: 'worker', deadlineMs: 120_000 })
  await timeCalls(rt, [one, a, b], 2, n) // warm up (JIT tiers in every worker)
  let oneMs = Infinity
  let twoMs = Infinity
  for (let i = 0; i < rounds; i++) {
    oneMs = Math.min(oneMs, await timeCalls(rt, [one], total, n))
    twoMs = Math.min(twoMs, await timeCalls(rt, [a, b], total / 2, n))
  }
  await rt.shutdown()
  return { oneWorkerMs: oneMs, twoWorkersMs: twoMs, speedup: oneMs / twoMs }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchWorkers()
  console.log(`matmul 256x256 x24: one worker ${r.oneWorkerMs.toFixed(0)} ms, two workers ${r.twoWorkersMs.toFixed(0)} ms: ${r.speedup.toFixed(2)}x`)
}
