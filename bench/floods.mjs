// How long one hostile invocation holds the event loop with default settings (issue 18):
// fixtures/wat/flood.wat loops forever on one host call (log, delayed_cast or cast to an
// alias the mapping lacks, cast or cast_raw to itself, sync) or on a 16 MiB memory.fill /
// 8 MiB memory.copy, until fuel (host calls and bulk instructions are charged) or
// maxInvocationMs ends it.
//
// Method: a setTimeout(0) is armed, the flood is cast, and the figure is the time until the
// timeout runs (the invocation never yields, so that is how long the loop was held, crash
// handling included). Median of ROUNDS floods per kind, each in a fresh runtime (a self-cast
// flood leaves a full mailbox behind). The target is ~300 ms.
//
// Standalone: `npm run build && node bench/floods.mjs`. From bench/run.mjs:
// `const { benchFloods } = await import('./floods.mjs')`. BENCH_FLOOD_ROUNDS (default 3).
import { Runtime } from 'edgeless'
import { median, wasmBytes } from './util.mjs'

export const FLOODS = {
  l: 'telemetry_log',
  d: 'delayed_cast to an unknown alias',
  c: 'cast to an unknown alias',
  s: 'cast to "self"',
  r: 'cast_raw to itself',
  y: 'sync',
  f: '16 MiB memory.fill',
  m: '8 MiB memory.copy',
}

/** One flood of kind `c`: ms the loop was held, the trap, and the events it caused. */
async function once(bytes, c) {
  const rt = new Runtime({ consoleLog: false })
  let crash = null
  let events = 0
  rt.on('crash', (e) => {
    crash = e
  })
  for (const k of ['warning', 'log', 'dead-letter'])
    rt.on(k, () => {
      events++
    })
  const ref = await rt.spawn({ name: 'flood', module: bytes, restart: 'temporary' })
  const held = await new Promise((resolve) => {
    const t0 = performance.now()
    setTimeout(() => resolve(performance.now() - t0), 0)
    rt.cast(ref, c)
  })
  while (!crash) await new Promise((r) => setTimeout(r, 5))
  await rt.shutdown().catch(() => {})
  return { held, trap: crash.trap, hostCalls: crash.error.details.hostCalls, events }
}

/** `{ [kind]: { name, heldMs (median), maxHeldMs, trap, events } }`. */
export async function benchFloods(options = {}) {
  const rounds = options.rounds ?? Number(process.env.BENCH_FLOOD_ROUNDS ?? 3)
  const log = options.log ?? (() => {})
  const bytes = wasmBytes('flood')
  const out = {}
  for (const [c, name] of Object.entries(FLOODS)) {
    log(`flood: ${name}`)
    const runs = []
    for (let i = 0; i < rounds; i++) runs.push(await once(bytes, c))
    out[c] = {
      name,
      heldMs: median(runs.map((r) => r.held)),
      maxHeldMs: Math.max(...runs.map((r) => r.held)),
      trap: runs.map((r) => r.trap).join(','),
      events: median(runs.map((r) => r.events)),
    }
  }
  return out
}

const isMain = process.argv[1] && new URL(import.meta.url).pathname === new URL(`file://${process.argv[1]}`).pathname
if (isMain) {
  const r = await benchFloods({ log: (m) => process.stderr.write(`[floods] ${m}\n`) })
  for (const f of Object.values(r))
    console.log(`${f.name.padEnd(36)} held ${f.heldMs.toFixed(0).padStart(5)} ms (max ${f.maxHeldMs.toFixed(0)})  ${f.trap}  ${f.events} events`)
}
