// First contact: how long `edgeless run examples/ping-pong/workflow.json` takes from the
// process start to its first "Got Reply: PONG", with an empty transform cache (cold: binaryen
// is loaded and ping.wasm asyncified) and with the cache it left (warm); the baseline is
// node itself starting and exiting (`node -e 0`), measured in the same run.
// `node bench/first-run.mjs` (after `npm run build`); bench/run.mjs folds it in.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median } from './util.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = join(root, 'bin/edgeless.mjs')
const workflow = join(root, 'examples/ping-pong/workflow.json')

/** Milliseconds from spawning `args` to the first output matching `until` (or to its exit). */
function timeTo(args, env, until) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let ms
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`no ${until} within 60 s:\n${out}`))
    }, 60_000)
    const onData = (d) => {
      out += d
      if (until && ms === undefined && until.test(out)) {
        ms = performance.now() - t0
        // Stopped as a user does (Ctrl-C), so that the cache write it started completes.
        child.kill('SIGINT')
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.on('exit', (code) => {
      clearTimeout(timer)
      if (!until) resolve(performance.now() - t0)
      else if (ms !== undefined) resolve(ms)
      else reject(new Error(`exited (${code}) before ${until}:\n${out}`))
    })
  })
}

/** { coldMs, warmMs, nodeMs, cold[], warm[], node[] } (medians and every round). */
export async function benchFirstRun({ coldRounds = 3, warmRounds = 5, log = () => {} } = {}) {
  const run = (cache) => timeTo([bin, 'run', workflow], { EDGELESS_CACHE_DIR: cache }, /Got Reply: PONG/)
  const cold = []
  const warm = []
  const node = []
  for (let i = 0; i < coldRounds; i++) {
    const cache = mkdtempSync(join(tmpdir(), 'edgeless-bench-cache-'))
    try {
      cold.push(await run(cache))
      // Warm rounds against the cache this cold round left, interleaved with the baseline.
      for (let j = 0; j < Math.ceil(warmRounds / coldRounds); j++) {
        warm.push(await run(cache))
        node.push(await timeTo(['-e', '0'], {}, null))
      }
    } finally {
      rmSync(cache, { recursive: true, force: true })
    }
    log(
      `   first run, round ${i + 1}: cold ${cold.at(-1).toFixed(0)} ms, warm ${warm
        .slice(-2)
        .map((x) => x.toFixed(0))
        .join(', ')} ms`,
    )
  }
  return { coldMs: median(cold), warmMs: median(warm), nodeMs: median(node), cold, warm, node }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchFirstRun({ log: (m) => console.error(m) })
  console.log(JSON.stringify(r, null, 2))
}
