// Benchmarks of the edgeless runtime, each figure against a baseline measured in the same
// run (the machine may be noisy). Run with `npm run bench` (builds, then
// `node --expose-gc bench/run.mjs`). Writes bench/results.json and prints a table;
// progress goes to stderr.
//
// Method: for every figure the round size is calibrated so that one round takes about
// ROUND_MS, every side is warmed up, then ROUNDS rounds are run with the sides alternating
// (A B, B A, A B, ...) and a full GC before each round. A side's figure is the median of
// its rounds; ratio = runtime / baseline. The median of the per-round ratios (each runtime
// round against the baseline round next to it) is given in the note as a cross-check.
//
// The raw baselines drive the same fixture .wasm files by hand with the per-message memory
// hygiene a host must do (guest-abi.md): edgeless_mem_clear, alloc and copy the ids and
// the payload, invoke, read the reply, free. They follow memory growth the cheap way (a
// view over a detached buffer has length 0), which is what a careful host can do.
//
// Environment knobs: BENCH_ONLY=1,3 (sections), BENCH_ROUNDS, BENCH_ROUND_MS,
// BENCH_SPAWN_K, BENCH_SPAWN_ROUNDS, BENCH_SPAWN_BUDGET_MS; side benchmarks by name
// (BENCH_ONLY=fuel,floods,workers,inspect,passivation,dense,as,first-run); BENCH_ACTORS/BENCH_TOUCHES size the
// passivation run (default 100,000 addressable, 5,000 touched; dense: all touched);
// BENCH_DENSE_N the live dense instances (default 100,000).
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import { Runtime, utf8 } from 'edgeless'
import { fullGc, median, wasmBytes } from './util.mjs'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 120)
const SPAWN_K = Number(process.env.BENCH_SPAWN_K ?? 2000)
const SPAWN_ROUNDS = Number(process.env.BENCH_SPAWN_ROUNDS ?? 5)
/** Spawn rounds beyond the third are skipped once the section has taken this long (instantiation is slow on a loaded machine). */
const SPAWN_BUDGET_MS = Number(process.env.BENCH_SPAWN_BUDGET_MS ?? 12_000)
const BURST = 100_000
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((x) => x.trim())) : null
const want = (k) => !ONLY || ONLY.has(String(k))

if (typeof global.gc !== 'function') {
  console.error('bench/run.mjs needs --expose-gc (use `npm run bench`).')
  process.exit(2)
}

const started = performance.now()
const log = (msg) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`)
const enc = new TextEncoder()
const dec = new TextDecoder()

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '-'
  const a = Math.abs(v)
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)}M`
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`
  if (a >= 100) return v.toFixed(0)
  return v.toFixed(2)
}

// ---- harness ------------------------------------------------------------------------

/** Time one call of `run(n)` (sync or async), in ms; `lastCpuMs` gets the process CPU time it used (all threads). */
let lastCpuMs = 0
async function timeRun(run, n) {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  const r = run(n)
  if (r && typeof r.then === 'function') await r
  const ms = performance.now() - t0
  const c = process.cpuUsage(c0)
  lastCpuMs = (c.user + c.system) / 1000
  return ms
}

/** A round size (a multiple of `step`) that takes about ROUND_MS. */
async function calibrate(run, step) {
  let n = step
  for (;;) {
    const ms = await timeRun(run, n)
    if (ms >= 20 || n >= 1e8) return Math.max(step, Math.ceil((n * ROUND_MS) / Math.max(ms, 0.01) / step) * step)
    n *= 4
  }
}

/**
 * Measure sides `{ label, run(n), step?, n? }` (a fixed `n` skips calibration) in
 * alternating rounds. Adds `rates` (ops/s per round) and `stat` to each side.
 */
async function measure(title, sides) {
  for (const s of sides) {
    if (s.n) {
      await timeRun(s.run, s.n) // warm-up
    } else {
      // Calibrate on cold code, then warm up for at least 3 round-lengths (so the JIT has
      // settled); the rounds are sized from the best rate seen, so that a load spike
      // during warm-up cannot make them too short.
      const step = s.step ?? 1
      let n = await calibrate(s.run, step)
      let best = 0
      let spent = 0
      for (let w = 0; w < 2 || spent < 3 * ROUND_MS; w++) {
        const ms = await timeRun(s.run, n)
        spent += ms
        best = Math.max(best, n / Math.max(ms, 0.01))
        n = Math.max(step, Math.round((best * ROUND_MS) / step) * step)
      }
      s.n = n
    }
    s.rates = []
    s.cpuRates = []
  }
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? [...sides].reverse() : sides
    for (const s of order) {
      await fullGc()
      const ms = await timeRun(s.run, s.n)
      s.rates.push((s.n * 1000) / ms)
      s.cpuRates.push((s.n * 1000) / Math.max(lastCpuMs, 0.001))
    }
  }
  for (const s of sides) {
    s.stat = stat(s.rates, s.n)
    s.stat.cpu = median(s.cpuRates)
  }
  log(
    `${title}: ${sides.map((s) => `${s.label} ${fmt(s.stat.median)}/s`).join(', ')}${sides.length > 1 ? `  (ratio ${(sides[0].stat.median / sides[1].stat.median).toFixed(3)})` : ''}`,
  )
  return sides
}

function stat(xs, n) {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n, rounds: xs.length, xs }
}

const results = []
/** One result row: `a` is the runtime side, `b` the baseline side (or null). */
function record(name, unit, a, b, baseline, note) {
  const value = a.median
  const baselineValue = b ? b.median : null
  const paired = b && a.xs.length === b.xs.length ? median(a.xs.map((x, i) => x / b.xs[i])) : null
  const cpu =
    a.cpu === undefined
      ? ''
      : ` Per second of process CPU time (all threads, so GC helpers count): ${fmt(a.cpu)}${b ? ` vs ${fmt(b.cpu)}, ratio ${(a.cpu / b.cpu).toFixed(3)}` : ''}.`
  const how = `Median of ${a.rounds} rounds of ${a.n} (range ${fmt(a.min)}..${fmt(a.max)}${b ? `; baseline ${b.rounds} rounds of ${b.n}, range ${fmt(b.min)}..${fmt(b.max)}; median of per-round ratios ${paired === null ? '-' : paired.toFixed(3)}` : ''}).${cpu}`
  const round = (v) => (v === null ? null : Math.abs(v) >= 100 ? Math.round(v) : Number(v.toFixed(2)))
  results.push({
    name,
    value: round(value),
    unit,
    baseline: baseline ?? null,
    baselineValue: round(baselineValue),
    ratio: baselineValue ? Number((value / baselineValue).toFixed(4)) : null,
    // The runtime side's slowest and fastest round: the spread docs/benchmarks.md shows.
    range: [round(a.min), round(a.max)],
    note: `${note} ${how}`,
  })
}

// ---- raw (hand-driven) guests -------------------------------------------------------

/** A bare instance: its exports plus a memory view that follows growth. */
class Raw {
  constructor(instance) {
    this.ex = instance.exports
    this.mem = this.ex.memory
    this.u8 = new Uint8Array(this.mem.buffer)
  }
  /** memory.grow detaches the old buffer, so a view of length 0 means: take a new one. */
  view() {
    if (this.u8.length === 0) this.u8 = new Uint8Array(this.mem.buffer)
    return this.u8
  }
}
const rdU32 = (u, p) => (u[p] | (u[p + 1] << 8) | (u[p + 2] << 16) | (u[p + 3] << 24)) >>> 0
const wrU32 = (u, p, v) => {
  u[p] = v & 0xff
  u[p + 1] = (v >>> 8) & 0xff
  u[p + 2] = (v >>> 16) & 0xff
  u[p + 3] = (v >>> 24) & 0xff
}
/** An alias out of guest memory: an ASCII fast path, TextDecoder otherwise. */
const aliasAt = (u, p, l) => {
  let s = ''
  for (let i = p; i < p + l; i++) {
    const c = u[i]
    if (c >= 0x80) return dec.decode(u.subarray(p, p + l))
    s += String.fromCharCode(c)
  }
  return s
}
let sink = 0 // keeps the stub log's decoding observable

/** telemetry_log_asm for raw instances: decodes target and text with TextDecoder, as a host must. */
const logStub = (getRaw) => (_level, tp, tl, mp, ml) => {
  const u = getRaw().view()
  sink += dec.decode(u.subarray(tp, tp + tl)).length + dec.decode(u.subarray(mp, mp + ml)).length
}

/** n raw casts with the host's hygiene: clear, alloc 32 (ids) + payload, copy, handle_cast_asm, free both. */
function rawCaster(g, idBytes, payload) {
  const { edgeless_mem_clear: clear, edgeless_mem_alloc: alloc, edgeless_mem_free: free, handle_cast_asm: handle } = g.ex
  const len = payload.length
  return (n) => {
    for (let i = 0; i < n; i++) {
      clear()
      const ids = alloc(32)
      const p = alloc(len)
      const u = g.view()
      u.set(idBytes, ids)
      if (len) u.set(payload, p)
      handle(ids, ids + 16, p, len)
      free(ids, 32)
      if (len) free(p, len)
    }
  }
}

/** One raw call with the host's hygiene: clear, alloc 40 (ids + out slots) + payload, call, copy the reply out, free both. */
function rawCall(g, idBytes, payload) {
  const ex = g.ex
  ex.edgeless_mem_clear()
  const len = payload.length
  const ids = ex.edgeless_mem_alloc(40)
  const p = ex.edgeless_mem_alloc(len)
  let u = g.view()
  u.set(idBytes, ids)
  if (len) u.set(payload, p)
  const rc = ex.handle_call_asm(ids, ids + 16, p, len, ids + 32, ids + 36)
  let reply = null
  if (rc === 1) {
    u = g.view()
    const rp = rdU32(u, ids + 32)
    reply = u.slice(rp, rp + rdU32(u, ids + 36))
  }
  ex.edgeless_mem_free(ids, 40)
  if (len) ex.edgeless_mem_free(p, len)
  return reply
}

// The raw floor as the issue measures it ("direct export calls, no runtime": 49 ns for a
// cast into noop on this machine): per message edgeless_mem_clear, the sender ids and the
// payload copied (TypedArray#set) into one block of guest memory allocated once, then the
// handler. Nothing is allocated per message. (The functions above do upstream's
// per-message hygiene instead, which allocates and frees; reported in the notes.)
const FLOOR_BLOCK = 4096

/** n casts at the floor. */
function floorCaster(g, idBytes, payload) {
  const blk = g.ex.edgeless_mem_alloc(FLOOR_BLOCK)
  const { edgeless_mem_clear: clear, handle_cast_asm: handle } = g.ex
  const len = payload.length
  return (n) => {
    for (let i = 0; i < n; i++) {
      clear()
      const u = g.view()
      u.set(idBytes, blk)
      u.set(payload, blk + 40)
      handle(blk, blk + 16, blk + 40, len)
    }
  }
}

/** One call at the floor: clear, copy ids and payload, zero the out slots, call, copy the reply out. */
function floorCall(g, blk, payload, idBytes = hostIdBytes) {
  g.ex.edgeless_mem_clear()
  let u = g.view()
  const len = payload.length
  u.set(idBytes, blk)
  u.set(payload, blk + 40)
  for (let i = blk + 32; i < blk + 40; i++) u[i] = 0
  const rc = g.ex.handle_call_asm(blk, blk + 16, blk + 40, len, blk + 32, blk + 36)
  if (rc !== 1) return null
  u = g.view()
  const rp = rdU32(u, blk + 32)
  return u.slice(rp, rp + rdU32(u, blk + 36))
}

/**
 * Bare synchronous dispatch: a raw caller (from `callerModule`) whose call_asm import runs
 * a raw pong's handle_call_asm right away, with the same hygiene, and writes the reply into
 * the caller's memory through its edgeless_mem_alloc.
 */
async function bareCallerPong(callerModule, pongModule, floor = false) {
  let pong, caller
  pong = new Raw(await WebAssembly.instantiate(pongModule, { env: { telemetry_log_asm: logStub(() => pong) } }))
  const callerIdBytes = new Uint8Array(32).map((_, i) => (i * 53 + 7) & 0xff)
  // At the floor, pong gets one block for the whole run (see FLOOR_BLOCK).
  const pongBlock = floor ? pong.ex.edgeless_mem_alloc(FLOOR_BLOCK) : 0
  const aliases = new Map([['ponger', pong]])
  const callAsm = (tp, tl, pp, pl, op, ol) => {
    const target = aliases.get(aliasAt(caller.view(), tp, tl))
    if (!target) return 2
    const tx = target.ex
    let ids, p
    if (floor) {
      tx.edgeless_mem_clear()
      ids = pongBlock
      p = pongBlock + 40
      const tu = target.view()
      tu.set(callerIdBytes, ids)
      if (pl) tu.set(caller.view().subarray(pp, pp + pl), p)
      for (let i = ids + 32; i < ids + 40; i++) tu[i] = 0
    } else {
      tx.edgeless_mem_clear()
      ids = tx.edgeless_mem_alloc(40)
      p = tx.edgeless_mem_alloc(pl)
      const tu = target.view()
      tu.set(callerIdBytes, ids)
      if (pl) tu.set(caller.view().subarray(pp, pp + pl), p)
    }
    let tu
    const rc = tx.handle_call_asm(ids, ids + 16, p, pl, ids + 32, ids + 36)
    if (rc === 1) {
      // Copy the reply straight from pong's memory into a buffer the caller allocates,
      // before anything else runs in pong (the reply buffer is already freed there).
      tu = target.view()
      const rp = rdU32(tu, ids + 32)
      const rl = rdU32(tu, ids + 36)
      const dst = caller.ex.edgeless_mem_alloc(rl)
      const u = caller.view()
      if (rl) u.set(tu.subarray(rp, rp + rl), dst)
      wrU32(u, op, dst)
      wrU32(u, ol, rl)
    }
    if (!floor) {
      tx.edgeless_mem_free(ids, 40)
      if (pl) tx.edgeless_mem_free(p, pl)
    }
    return rc === 0 || rc === 1 ? rc : 2
  }
  caller = new Raw(
    await WebAssembly.instantiate(callerModule, {
      env: {
        call_asm: callAsm,
        call_raw_asm: () => 2,
        cast_asm: () => {},
        delayed_cast_asm: () => {},
        telemetry_log_asm: logStub(() => caller),
      },
    }),
  )
  if (floor) caller.block = caller.ex.edgeless_mem_alloc(FLOOR_BLOCK)
  return caller
}

// ---- main ---------------------------------------------------------------------------

const hostIdBytes = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff)
const X = enc.encode('x')
// Dispatch is measured without the fuel meter (its cost is its own row below: 'metered ...')
// and without the log-rate quota (pong logs every call).
const rt = new Runtime({ consoleLog: false, fuel: Infinity, quotas: { maxLogLinesPerSecond: Infinity } })
let crashes = 0
rt.on('crash', (e) => {
  crashes++
  log(`CRASH ${e.name}: ${e.error.message}`)
})
rt.on('warning', (e) => log(`warning ${e.name}: ${e.message}`))

log(`node ${process.version}, ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'}), ${ROUNDS} rounds of ~${ROUND_MS} ms per side`)

// 1. casts into the no-op guest ---------------------------------------------------------
if (want(1)) {
  const bytes = wasmBytes('noop')
  // The 100,000-message burst exceeds the default mailbox bound (10,000): lift it here.
  const noop = await rt.spawn({ name: 'noop', module: bytes, mailboxCapacity: Infinity })
  const raw = new Raw(await WebAssembly.instantiate(await WebAssembly.compile(bytes), { env: {} }))
  const rawCast = rawCaster(raw, hostIdBytes, X)
  const floor = new Raw(await WebAssembly.instantiate(await WebAssembly.compile(bytes), { env: {} }))
  const floorCast = floorCaster(floor, hostIdBytes, X)
  // N-1 casts then a call: calls queue behind casts from the same sender, so its answer
  // means every cast has been processed.
  const castBurst = async (n) => {
    for (let i = 1; i < n; i++) rt.cast(noop, X)
    const r = await rt.call(noop, X)
    if (r.kind !== 'noreply') throw new Error(`noop answered ${r.kind}`)
  }
  const baseline =
    'the raw floor (the issue\'s "direct export calls"): edgeless_mem_clear, then the ids and the payload copied into one block allocated once, then handle_cast_asm, on a bare instance of noop.wasm; nothing allocated per message'
  const hygiene = (r, h) =>
    `Raw calls with upstream's per-message hygiene instead (clear, alloc 32 + alloc 1, copy ids and payload, call, free both) run at ${fmt(h.stat.median)}/s (runtime / that = ${(r.stat.median / h.stat.median).toFixed(3)}).`

  log('1a. casts/s into noop, bursts of 1,000 ...')
  const B = 1000
  const [a, b, h] = await measure('casts/s, bursts of 1000', [
    {
      label: 'runtime',
      step: B,
      run: async (n) => {
        for (let k = 0; k < n; k += B) await castBurst(B)
      },
    },
    { label: 'floor', run: floorCast },
    { label: 'raw+hygiene', run: rawCast },
  ])
  record(
    'casts into noop, bursts of 1,000',
    'casts/s',
    a.stat,
    b.stat,
    baseline,
    `Repeated bursts: rt.cast(noop, 1-byte payload) 999 times, then await rt.call(noop) (ordered behind the casts, so its answer means all were processed); the mailbox never holds more than 1,000 messages. ${hygiene(a, h)}`,
  )

  log(`1b. casts/s into noop, one burst of ${BURST.toLocaleString('en')} ...`)
  const [a2, b2] = await measure(`casts/s, burst of ${BURST}`, [
    { label: 'runtime', n: BURST, run: castBurst },
    { label: 'floor', run: floorCast },
  ])
  record(
    `casts into noop, one burst of ${BURST.toLocaleString('en')}`,
    'casts/s',
    a2.stat,
    b2.stat,
    baseline,
    `rt.cast(noop, 1-byte payload) ${BURST - 1} times, then await rt.call(noop): the whole burst sits in the mailbox before it is processed (every message and its payload copy survive young-generation GCs).`,
  )
  await noop.stop()
}

// 2. host -> guest calls into pong ---------------------------------------------------------
if (want(2)) {
  const bytes = wasmBytes('pong')
  const pong = await rt.spawn({ name: 'pong', module: bytes })
  const first = await rt.call(pong, 'x')
  if (first.kind !== 'reply' || utf8(first.data) !== 'PONG') throw new Error(`pong answered ${JSON.stringify(first)}`)
  let raw
  raw = new Raw(await WebAssembly.instantiate(await WebAssembly.compile(bytes), { env: { telemetry_log_asm: logStub(() => raw) } }))
  const check = rawCall(raw, hostIdBytes, X)
  if (!check || dec.decode(check) !== 'PONG') throw new Error('raw pong did not answer PONG')
  const rawCalls = (n) => {
    for (let i = 0; i < n; i++) rawCall(raw, hostIdBytes, X)
  }
  let fl
  fl = new Raw(await WebAssembly.instantiate(await WebAssembly.compile(bytes), { env: { telemetry_log_asm: logStub(() => fl) } }))
  const flBlock = fl.ex.edgeless_mem_alloc(FLOOR_BLOCK)
  const fcheck = floorCall(fl, flBlock, X)
  if (!fcheck || dec.decode(fcheck) !== 'PONG') throw new Error('floor pong did not answer PONG')
  const floorCalls = (n) => {
    for (let i = 0; i < n; i++) floorCall(fl, flBlock, X)
  }
  const floorAsync = async () => floorCall(fl, flBlock, X)
  const baseline =
    'the raw floor: edgeless_mem_clear, ids and payload copied into one block allocated once, out slots zeroed, handle_call_asm, the reply copied out, on a bare pong.wasm (its telemetry_log_asm stub decodes both strings with TextDecoder); nothing allocated per message; synchronous'

  log('2a. sequential host->guest calls/s into pong ...')
  const [a, b, c, d, h] = await measure('calls/s, sequential', [
    {
      label: 'runtime',
      run: async (n) => {
        for (let i = 0; i < n; i++) await rt.call(pong, 'x')
      },
    },
    { label: 'floor', run: floorCalls },
    {
      label: 'floor+await',
      run: async (n) => {
        for (let i = 0; i < n; i++) await floorAsync()
      },
    },
    {
      label: 'runtime(bytes)',
      run: async (n) => {
        for (let i = 0; i < n; i++) await rt.call(pong, X)
      },
    },
    { label: 'raw+hygiene', run: rawCalls },
  ])
  record(
    'host->guest calls into pong, sequential',
    'calls/s',
    a.stat,
    b.stat,
    baseline,
    `\`await rt.call(pong, 'x')\` in a loop (consoleLog:false; pong formats and logs a line per call, which the runtime turns into a \`log\` event). The baseline has no promise per call; the same raw call wrapped in an async function and awaited runs at ${fmt(c.stat.median)}/s (runtime / that = ${(a.stat.median / c.stat.median).toFixed(3)}). With the payload given as a Uint8Array instead of the string 'x' (no TextEncoder.encode per call) the runtime does ${fmt(d.stat.median)}/s (${(d.stat.median / b.stat.median).toFixed(3)} of the baseline). Raw calls with upstream's per-message hygiene (clear, alloc 40 + alloc 1, copy ids and payload, call, copy the reply out, free both) run at ${fmt(h.stat.median)}/s (runtime / that = ${(a.stat.median / h.stat.median).toFixed(3)}).`,
  )

  log('2b. concurrent host->guest calls/s (Promise.all of 1000) ...')
  const BATCH = 1000
  const ps = new Array(BATCH)
  const [a2, b2] = await measure('calls/s, Promise.all x1000', [
    {
      label: 'runtime',
      step: BATCH,
      run: async (n) => {
        for (let k = 0; k < n; k += BATCH) {
          for (let i = 0; i < BATCH; i++) ps[i] = rt.call(pong, 'x')
          const rs = await Promise.all(ps)
          if (rs[BATCH - 1].kind !== 'reply') throw new Error('pong did not reply')
        }
      },
    },
    { label: 'floor', run: floorCalls },
  ])
  record(
    'host->guest calls into pong, 1,000 concurrent (Promise.all)',
    'calls/s',
    a2.stat,
    b2.stat,
    baseline,
    "Promise.all of 1,000 rt.call(pong, 'x'), repeated. An idle pong answers each call synchronously inside rt.call (the fast path), so this is the sequential path with one Promise.all instead of one await per call.",
  )
  await pong.stop()
}

// 3. wasm -> wasm calls: caller calls pong ---------------------------------------------------
if (want(3)) {
  const callerBytes = wasmBytes('caller')
  const pongBytes = wasmBytes('pong')
  log('3. loading caller (asyncify via binaryen) ...')
  const t0 = performance.now()
  const callerFm = await rt.load(callerBytes)
  const loadMs = performance.now() - t0
  const pong = await rt.spawn({ name: 'ponger', module: pongBytes })
  const caller = await rt.spawn({ name: 'caller', module: callerFm, outputs: { ponger: pong } })
  const CMD = 'call:ponger:x'
  const first = await rt.call(caller, CMD)
  if (first.kind !== 'reply' || utf8(first.data) !== 'reply:PONG') throw new Error(`caller answered ${JSON.stringify(first)}`)

  const pongModule = await WebAssembly.compile(pongBytes)
  const callerModule = await WebAssembly.compile(callerBytes)
  const bare = await bareCallerPong(callerModule, pongModule, true) // the floor
  const bareAsyncified = await bareCallerPong(callerFm.module, pongModule, true) // the module the runtime runs
  const bareHygiene = await bareCallerPong(callerModule, pongModule) // upstream's per-message hygiene
  /** The outer host->caller call: at the floor for floor instances, with hygiene otherwise. */
  const outer = (g, c) => (g.block ? floorCall(g, g.block, c) : rawCall(g, hostIdBytes, c))
  const cmd = enc.encode(CMD)
  for (const g of [bare, bareAsyncified, bareHygiene]) {
    const check = outer(g, cmd)
    if (!check || dec.decode(check) !== 'reply:PONG') throw new Error(`bare caller answered ${check && dec.decode(check)}`)
  }

  log(`3. wasm->wasm round trips/s (caller -> pong; loading + asyncify took ${loadMs.toFixed(0)} ms) ...`)
  const [a, b, c, d, h] = await measure('wasm->wasm round trips/s', [
    {
      label: 'runtime',
      run: async (n) => {
        for (let i = 0; i < n; i++) await rt.call(caller, CMD)
      },
    },
    {
      label: 'bare',
      run: (n) => {
        for (let i = 0; i < n; i++) outer(bare, cmd)
      },
    },
    {
      label: 'bare(asyncified)',
      run: (n) => {
        for (let i = 0; i < n; i++) outer(bareAsyncified, cmd)
      },
    },
    {
      label: 'runtime(bytes)',
      run: async (n) => {
        for (let i = 0; i < n; i++) await rt.call(caller, cmd)
      },
    },
    {
      label: 'bare+hygiene',
      run: (n) => {
        for (let i = 0; i < n; i++) outer(bareHygiene, cmd)
      },
    },
  ])
  record(
    'wasm->wasm call round trips (host calls caller, caller calls pong)',
    'round trips/s',
    a.stat,
    b.stat,
    "bare synchronous dispatch at the raw floor: a raw instance of the untransformed caller.wasm whose call_asm import runs a raw pong's handle_call_asm (clear, ids and payload copied into one block allocated once, nothing allocated per message) and writes the reply into caller memory via its edgeless_mem_alloc; the outer handle_call_asm driven from JS the same way",
    `Sequential \`await rt.call(caller, 'call:ponger:x')\`: each round trip is the outer host->caller call plus the inner caller->pong call, nothing subtracted. The runtime runs caller after binaryen's asyncify transformation (it imports call_asm; loading + transforming took ${loadMs.toFixed(0)} ms here); the baseline runs the untransformed module. The same bare dispatch over the asyncified module runs at ${fmt(c.stat.median)}/s (${(c.stat.median / b.stat.median).toFixed(3)} of the untransformed one): that is what asyncify's instrumentation costs while nothing suspends. With the command given as a Uint8Array instead of a string the runtime does ${fmt(d.stat.median)}/s (${(d.stat.median / b.stat.median).toFixed(3)} of the baseline). Pong is idle, so the inner call takes the synchronous fast path (no unwind/rewind). Bare dispatch with upstream's per-message hygiene runs at ${fmt(h.stat.median)}/s (runtime / that = ${(a.stat.median / h.stat.median).toFixed(3)}).`,
  )

  // The wasm->wasm call itself: one host call into caller runs a loop of INNER calls to pong
  // inside a single invocation (the caller fixture's calln command), so the outer host call
  // (a promise and an await, measured by the rows above) is amortized over INNER inner calls.
  const INNER = 1000
  const CMDN = `calln:ponger:${INNER}:x`
  const cmdn = enc.encode(CMDN)
  const firstN = await rt.call(caller, CMDN)
  if (firstN.kind !== 'reply' || utf8(firstN.data) !== 'reply:PONG') throw new Error(`caller answered ${JSON.stringify(firstN)} to calln`)
  for (const g of [bare, bareAsyncified, bareHygiene]) {
    const check = outer(g, cmdn)
    if (!check || dec.decode(check) !== 'reply:PONG') throw new Error(`bare caller answered ${check && dec.decode(check)} to calln`)
  }
  log(`3b. wasm->wasm calls/s inside one invocation (calln, ${INNER} per host call) ...`)
  const [an, bn, cn, hn] = await measure('wasm->wasm inner calls/s', [
    {
      label: 'runtime',
      step: INNER,
      run: async (n) => {
        for (let i = 0; i < n; i += INNER) await rt.call(caller, CMDN)
      },
    },
    {
      label: 'bare',
      step: INNER,
      run: (n) => {
        for (let i = 0; i < n; i += INNER) outer(bare, cmdn)
      },
    },
    {
      label: 'bare(asyncified)',
      step: INNER,
      run: (n) => {
        for (let i = 0; i < n; i += INNER) outer(bareAsyncified, cmdn)
      },
    },
    {
      label: 'bare+hygiene',
      step: INNER,
      run: (n) => {
        for (let i = 0; i < n; i += INNER) outer(bareHygiene, cmdn)
      },
    },
  ])
  record(
    `wasm->wasm calls, ${INNER.toLocaleString('en')} per invocation (caller loops calling pong)`,
    'calls/s',
    an.stat,
    bn.stat,
    `the same bare synchronous dispatch at the floor as the row above (untransformed caller.wasm, its call_asm import running a raw pong's handle_call_asm, nothing allocated per message but the reply in caller memory), driven with the same calln command`,
    `Sequential \`await rt.call(caller, '${CMDN}')\`: the caller fixture calls pong ${INNER} times in a loop inside that one invocation; the figure counts inner caller->pong calls, so the outer host->caller call is amortized over ${INNER} of them. Each inner call goes call_asm import -> actor -> synchronous fast path (pong is idle) -> pong's handle_call_asm -> reply copied into caller memory; pong formats and logs a line per call (a \`log\` event), as in the baseline's stub. The same bare dispatch over the asyncified caller runs at ${fmt(cn.stat.median)}/s (${(cn.stat.median / bn.stat.median).toFixed(3)} of the untransformed one); with upstream's per-message hygiene at ${fmt(hn.stat.median)}/s (runtime / that = ${(an.stat.median / hn.stat.median).toFixed(3)}).`,
  )
  await caller.stop()
  await pong.stop()
}

// 4. JS-function actors: ping-pong by casts ------------------------------------------------
if (want(4)) {
  let remaining = 0
  let done = null
  const player = () => ({
    handleCast(_src, msg, ctx) {
      if (--remaining > 0) ctx.cast('peer', msg)
      else done()
    },
  })
  const b = await rt.spawn({ name: 'js-b', fn: player })
  const a = await rt.spawn({ name: 'js-a', fn: player, outputs: { peer: b } })
  rt.setOutput(b, 'peer', a)
  // The baseline: the same ping-pong between two nact actors (a devDependency, bench only).
  const nact = (await import('nact')).default
  const system = nact.start()
  let nRemaining = 0
  let nDone = null
  const nactPlayer = (msg, ctx) => {
    if (--nRemaining > 0) nact.dispatch(msg.peer, { peer: ctx.self, x: msg.x })
    else nDone()
  }
  const nb = nact.spawnStateless(system, nactPlayer, 'b')
  const na = nact.spawnStateless(system, nactPlayer, 'a')
  log('4. JS actor ping-pong hops/s (runtime vs nact) ...')
  const [s, nacts] = await measure('JS actor hops/s', [
    {
      label: 'runtime',
      run: (n) =>
        new Promise((res) => {
          remaining = n
          done = res
          rt.cast(a, X)
        }),
    },
    {
      label: 'nact',
      run: (n) =>
        new Promise((res) => {
          nRemaining = n
          nDone = res
          nact.dispatch(na, { peer: nb, x: X })
        }),
    },
  ])
  record(
    'JS-function actors ping-pong (cast hops)',
    'hops/s',
    s.stat,
    nacts.stat,
    'nact 7 stateless actors doing the same ping-pong (target >= 3x)',
    'Two JS EdgeFunctions casting a 1-byte payload back and forth; one hop = one message delivered and handled.',
  )
  await a.stop()
  await b.stop()
}

// 5. spawn rate and memory per live instance -----------------------------------------------
if (want(5)) {
  const bytes = wasmBytes('noop')
  const fm = await rt.load(bytes) // compiled once (and cached)
  const fmDense = await new Runtime({ consoleLog: false, dense: true }).load(bytes)
  const imports = { env: {} }
  const BLOCK = 250
  log(`5. spawn ${SPAWN_K} noop instances per side and round (blocks of ${BLOCK}, sides interleaved), ${SPAWN_ROUNDS} rounds ...`)

  /**
   * One round: every side creates k live instances, in blocks of BLOCK that take turns
   * (so load drift on a shared machine hits every side alike). Each block is timed on its
   * own and bracketed by GCs and process.memoryUsage(), so its retained memory is known.
   */
  const spawnRound = async (k) => {
    const r = new Runtime({ consoleLog: false, fuel: Infinity })
    const sides = [
      { name: 'runtime', make: (i) => r.spawn({ name: `noop-${i}`, module: fm }) },
      { name: 'dense', make: (i) => r.spawn({ name: `noop-d${i}`, module: fmDense, dense: true }) },
      // The fastest raw form (synchronous), as the runtime now instantiates.
      { name: 'raw', make: () => new WebAssembly.Instance(fm.module, imports) },
    ].map((s) => ({ ...s, keep: [], ms: 0, rss: 0, heapUsed: 0, external: 0 }))
    await fullGc()
    let mem = process.memoryUsage()
    for (let b = 0, blk = 0; b < k; b += BLOCK, blk++) {
      const end = Math.min(k, b + BLOCK)
      for (let j = 0; j < sides.length; j++) {
        const s = sides[(j + blk) % sides.length]
        const t0 = performance.now()
        for (let i = b; i < end; i++) s.keep.push(await s.make(i))
        s.ms += performance.now() - t0
        global.gc()
        const now = process.memoryUsage()
        for (const key of ['rss', 'heapUsed', 'external']) s[key] += now[key] - mem[key]
        mem = now
      }
    }
    if (r.instances().length !== 2 * k || sides.some((s) => s.keep.length !== k)) throw new Error('not every instance is live')
    await r.shutdown()
    const out = Object.fromEntries(
      sides.map((s) => {
        const n = s.keep.length
        return [s.name, { rate: (n * 1000) / s.ms, rss: s.rss / n, heapUsed: s.heapUsed / n, external: s.external / n }]
      }),
    )
    for (const s of sides) s.keep = null
    await fullGc()
    return out
  }
  const t5 = performance.now()
  await spawnRound(100) // warm-up
  const rounds = []
  for (let i = 0; i < SPAWN_ROUNDS; i++) {
    if (i >= 3 && performance.now() - t5 > SPAWN_BUDGET_MS) {
      log(`   (time budget of ${SPAWN_BUDGET_MS / 1000} s used up after ${i} rounds)`)
      break
    }
    const o = await spawnRound(SPAWN_K)
    rounds.push(o)
    log(
      `   round ${i + 1}: ${Object.entries(o)
        .map(([n, v]) => `${n} ${fmt(v.rate)} inst/s rss +${fmt(v.rss)} heap +${fmt(v.heapUsed)} B/inst`)
        .join('; ')}`,
    )
  }
  const by = (name, key) =>
    stat(
      rounds.map((o) => o[name][key]),
      SPAWN_K,
    )
  const a = by('runtime', 'rate')
  const b = by('raw', 'rate')
  const d = by('dense', 'rate')
  log(
    `spawn: runtime ${fmt(a.median)}/s, dense ${fmt(d.median)}/s, raw instantiate ${fmt(b.median)}/s (ratios ${(a.median / b.median).toFixed(3)}, ${(d.median / b.median).toFixed(3)})`,
  )
  record(
    'spawn noop instances from a cached module',
    'instances/s',
    a,
    b,
    'sequential `new WebAssembly.Instance(module, {env:{}})` of the same compiled module',
    `Sequential \`await rt.spawn({ name, module: fm })\` with fm = await rt.load(bytes); per round K=${SPAWN_K} live instances per side, made in blocks of ${BLOCK} that alternate between the sides (a fresh Runtime per round). A spawn also runs handle_init and registers the actor; the raw instantiate runs nothing. Both sides' instances stay live during the round, and instantiation itself slows down as live instances accumulate (V8 work that grows with the number of live memories), so this is an average over 0..${2 * SPAWN_K} live instances.`,
  )
  record(
    'spawn noop instances dense (dense: true)',
    'instances/s',
    d,
    b,
    'sequential `new WebAssembly.Instance(module, {env:{}})` of the same compiled module, each with a memory of its own',
    `The same rounds as the row above, a third side: \`await rt.spawn({ name, module: fmDense, dense: true })\`. A dense instance gets a region of a shared 4 GiB chunk instead of a memory of its own, so instantiation allocates no memory (and V8 runs no GC for it); handle_init runs as well.`,
  )
  const memNote = (key) =>
    `Growth of process.memoryUsage().${key} across the blocks (each bracketed by global.gc()), divided by K=${SPAWN_K} live instances. Every noop instance also holds a 17-page (1,114,112-byte) linear memory, counted in \`external\` (runtime ${fmt(by('runtime', 'external').median)} B/inst, raw ${fmt(by('raw', 'external').median)} B/inst) but mostly untouched, so only touched pages show in rss.`
  record(
    'memory per live instance: rss',
    'bytes/instance',
    by('runtime', 'rss'),
    by('raw', 'rss'),
    'raw WebAssembly.instantiate instances kept alive',
    memNote('rss'),
  )
  record(
    'memory per live instance: heapUsed',
    'bytes/instance',
    by('runtime', 'heapUsed'),
    by('raw', 'heapUsed'),
    'raw WebAssembly.instantiate instances kept alive',
    memNote('heapUsed'),
  )
}

await rt.shutdown()
if (crashes) throw new Error(`${crashes} crash(es) during the benchmark`)

// ---- side benchmarks (their own files; each compares two sides in the same run) ----------

/** A row from a side benchmark that reports medians itself. */
function recordPlain(name, unit, value, baselineValue, baseline, note) {
  const round = (v) => (v === null ? null : Math.abs(v) >= 100 ? Math.round(v) : Number(v.toFixed(3)))
  results.push({
    name,
    value: round(value),
    unit,
    baseline,
    baselineValue: round(baselineValue),
    ratio: baselineValue ? Number((value / baselineValue).toFixed(4)) : null,
    note,
  })
}

if (want('fuel')) {
  log('fuel metering overhead (bench/fuel.mjs)')
  const { benchFuel } = await import('./fuel.mjs')
  const f = await benchFuel({ rounds: 21, log })
  for (const [n, fig] of Object.entries(f.matmul)) {
    recordPlain(
      `metered matmul ${n}x${n} (default fuel)`,
      'ms/op',
      fig.meteredMsPerOp,
      fig.unmeteredMsPerOp,
      'the same guest with fuel: Infinity (not rewritten)',
      `Median of ${fig.roundRatios.length} alternating rounds; target <= 1.15. CPU-time ratio ${fig.cpuRatio.toFixed(3)}.`,
    )
  }
  if (f.pong)
    recordPlain(
      'metered pong call (default fuel)',
      'ms/op',
      f.pong.meteredMsPerOp,
      f.pong.unmeteredMsPerOp,
      'the same guest with fuel: Infinity',
      `Through the runtime; CPU-time ratio ${f.pong.cpuRatio.toFixed(3)}.`,
    )
  if (f.vm) log(`   VmSize per live instance: ${JSON.stringify(f.vm)}`)
}

if (want('floods')) {
  log('hostile floods: how long one invocation holds the event loop (bench/floods.mjs)')
  const { benchFloods } = await import('./floods.mjs')
  const fl = await benchFloods({ log })
  for (const f of Object.values(fl)) {
    recordPlain(
      `event loop held by a flood: ${f.name} (default settings)`,
      'ms',
      f.heldMs,
      300,
      'the target: ~300 ms',
      `A guest looping forever on it (fixtures/wat/flood.wat) until fuel or maxInvocationMs ends it (${f.trap}); median of 3, max ${f.maxHeldMs.toFixed(0)} ms; ${fmt(f.events)} events emitted.`,
    )
  }
}

if (want('workers')) {
  log('two CPU-bound functions on two workers vs one (bench/workers.mjs)')
  const { benchWorkers } = await import('./workers.mjs')
  const w = await benchWorkers()
  recordPlain(
    '2 matmul 256x256 on 2 workers (24 calls)',
    'ms',
    w.twoWorkersMs,
    w.oneWorkerMs,
    'the same 24 calls on 1 worker',
    `Speedup ${w.speedup.toFixed(2)}x (target >= 1.7 on 2 cores); best of 3 rounds each; ratio < 1 is faster.`,
  )
}

if (want('inspect')) {
  log('inspection cost (bench/inspect.mjs)')
  const { benchInspect } = await import('./inspect.mjs')
  const r = await benchInspect({ log })
  const never = r.interleaved.never ?? { castsPerSec: r.sequential.never.castsPerSec }
  for (const k of ['stream', 'metrics', 'after']) {
    const v = r.interleaved[k]
    if (!v) continue
    const label =
      k === 'after'
        ? 'casts/s after an inspector unsubscribed'
        : k === 'stream'
          ? 'casts/s with inspectStream listening'
          : 'casts/s with collectMetrics installed'
    recordPlain(
      label,
      'casts/s',
      v.castsPerSec,
      never.castsPerSec,
      'casts/s with no observer ever installed (same run, interleaved rounds)',
      `Median of per-round ratios ${v.ratio} (CPU ${v.cpuRatio}). "after" should be ~1: inspection costs nothing when nobody listens.`,
    )
  }
}

if (want('passivation')) {
  const n = Number(process.env.BENCH_ACTORS ?? 100_000)
  const touches = Number(process.env.BENCH_TOUCHES ?? 5_000)
  log(`passivation: ${n} lazily spawned tally instances, ${touches} touched, maxActive 1000 (bench/passivation.mjs; npm run bench:passivation for 1,000,000)`)
  const { benchPassivation } = await import('./passivation.mjs')
  const p = await benchPassivation({ n, touches, log })
  if (p.wrong) throw new Error(`passivation: ${p.wrong} wrong answers`)
  recordPlain(
    'lazy spawn of tally (addressable, instantiated by its first message)',
    'instances/s',
    p.spawnPerS,
    p.rawActivationsPerS.smallHeap,
    'raw `new WebAssembly.Instance` + handle_init of the same module, same process',
    `${n.toLocaleString('en-US')} sequential \`await rt.spawn({ lazy: true })\`; ${fmt(p.heapPerHibernated)} B of heap (+ external) per hibernated instance; an eager spawn instantiates (see the spawn row).`,
  )
  recordPlain(
    `activations with ${n.toLocaleString('en-US')} addressable instances (call to a hibernated instance)`,
    'activations/s',
    p.touchPerS,
    p.rawActivationsPerS.bigHeap,
    'raw `new WebAssembly.Instance` + handle_init, same module, same process and heap, 1000 kept live',
    `Each touch: instantiate, read the state from the store, handle_init, the call, and the hibernation of the coldest of the ${p.maxActive} live ones (handle_stop, release). Latency p50 ${p.latencyMs.p50.toFixed(2)} ms, p90 ${p.latencyMs.p90.toFixed(2)}, p99 ${p.latencyMs.p99.toFixed(2)}, max ${p.latencyMs.max.toFixed(0)}. The same raw work on the small heap before the spawns: ${fmt(p.rawActivationsPerS.smallHeap)}/s. RSS at the end ${fmt(p.rssMB)} MB. Shutdown of all ${fmt(n)}: ${(p.shutdownMs / 1000).toFixed(1)} s.`,
  )
  const pd = await benchPassivation({ n, touches: n, dense: true, log })
  if (pd.wrong) throw new Error(`passivation (dense): ${pd.wrong} wrong answers`)
  recordPlain(
    `activations with ${n.toLocaleString('en-US')} addressable dense instances, every one touched`,
    'activations/s',
    pd.touchPerS,
    pd.rawActivationsPerS.bigHeap,
    'raw `new WebAssembly.Instance` + handle_init with a memory of its own, same module, same process and heap, 1000 kept live',
    `All ${fmt(n)} touched once, then ${fmt(1000)} again (their state came back from the store). Latency p50 ${pd.latencyMs.p50.toFixed(3)} ms, p99 ${pd.latencyMs.p99.toFixed(3)}, max ${pd.latencyMs.max.toFixed(0)}. A dense activation takes a fresh region of a shared chunk: no memory allocated, so no GC for it.`,
  )
}

if (want('dense')) {
  const n = Number(process.env.BENCH_DENSE_N ?? 100_000)
  log(`dense memory: ${n.toLocaleString('en-US')} live tally instances, and guest speed dense vs own memory (bench/dense.mjs)`)
  const { benchLive, benchSpeed } = await import('./dense.mjs')
  const sp = await benchSpeed({ log })
  recordPlain(
    'pong call, dense (through the runtime)',
    'ns/call',
    sp.pong.denseMsPerOp * 1e6,
    sp.pong.ownMsPerOp * 1e6,
    'the same pong with a memory of its own, alternating rounds',
    `Median per-round ratio ${sp.pong.ratio.toFixed(3)}; ratio > 1 is slower. Mostly host work: the guest's own accesses are few.`,
  )
  recordPlain(
    'matmul 96x96, dense (memory-bound guest code)',
    'ms/op',
    sp.matmul.denseMsPerOp,
    sp.matmul.ownMsPerOp,
    'the same matmul with a memory of its own, alternating rounds',
    `Median per-round ratio ${sp.matmul.ratio.toFixed(3)}; ratio > 1 is slower. The worst case: every load and store in the inner loop pays a mask and an add.`,
  )
  const lv = await benchLive({ n, log })
  if (lv.wrong || lv.live !== n) throw new Error(`dense: ${lv.wrong} wrong answers, ${lv.live} of ${n} live`)
  recordPlain(
    `eager spawn of ${n.toLocaleString('en-US')} live dense tally instances (all kept live)`,
    'instances/s',
    lv.spawnPerS,
    lv.rawPerS,
    `raw \`new WebAssembly.Instance\` + handle_init of tally with its own memory, ${lv.rawN.toLocaleString('en-US')} kept live, same process`,
    `First block of 10,000: ${fmt(lv.firstBlockPerS)}/s; last: ${fmt(lv.lastBlockPerS)}/s. Every 100th instance was called 1-3 times and counted on its own. Heap ${fmt(lv.heapPerInstance)} B per instance; RSS at the end ${fmt(lv.rssMB)} MB; shutdown ${(lv.shutdownMs / 1000).toFixed(1)} s. With memories of their own a process holds ~13,000.`,
  )
  recordPlain(
    `RSS per live dense instance (${n.toLocaleString('en-US')} live)`,
    'bytes/instance',
    lv.rssPerInstance,
    65536,
    'the target: 64 KiB',
    'Growth of RSS across the spawns (after full GCs), divided by the number of instances: the wasm instance, its actor and the pages its guest touched.',
  )
}

if (want('as')) {
  log('AssemblyScript pong vs Rust pong (bench/as-pong.mjs)')
  const { benchAsPong } = await import('./as-pong.mjs')
  const a = await benchAsPong()
  recordPlain(
    'AssemblyScript pong call through the runtime',
    'ns/call',
    a.asNsPerCall,
    a.rustNsPerCall,
    'the Rust pong, same runtime, same run',
    `Bare guests without the runtime: AS ${a.raw.asNsPerCall.toFixed(0)} ns vs Rust ${a.raw.rustNsPerCall.toFixed(0)} ns (ratio ${a.raw.ratio.toFixed(3)}).`,
  )
}

if (want('first-run')) {
  log('first run of `edgeless run examples/ping-pong/workflow.json`, cold and warm cache (bench/first-run.mjs)')
  const { benchFirstRun } = await import('./first-run.mjs')
  const f = await benchFirstRun({ log })
  const rounds = (xs) => xs.map((x) => x.toFixed(0)).join(', ')
  recordPlain(
    'edgeless run ping-pong: process start to first "Got Reply: PONG", empty cache (cold)',
    'ms',
    f.coldMs,
    f.nodeMs,
    '`node -e 0` starting and exiting, same run',
    `Target <= 1000 ms. A fresh EDGELESS_CACHE_DIR per round: binaryen is loaded (in the asyncify worker) and ping.wasm asyncified. Rounds: ${rounds(f.cold)} ms.`,
  )
  recordPlain(
    'edgeless run ping-pong: process start to first "Got Reply: PONG", warm cache',
    'ms',
    f.warmMs,
    f.nodeMs,
    '`node -e 0` starting and exiting, same run',
    `Target <= 400 ms. The cache the cold round left: no binaryen. Rounds: ${rounds(f.warm)} ms.`,
  )
}

// ---- output -------------------------------------------------------------------------

const meta = {
  node: process.version,
  v8: process.versions.v8,
  date: new Date().toISOString(),
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cpus: os.cpus().length,
  platform: `${os.platform()} ${os.arch()}`,
  loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
  rounds: ROUNDS,
  roundMs: ROUND_MS,
  durationS: Number(((performance.now() - started) / 1000).toFixed(1)),
}
writeFileSync(new URL('./results.json', import.meta.url), JSON.stringify({ meta, results }, null, 2) + '\n')

const table = results.map((r) => [
  r.name,
  `${fmt(r.value)} ${r.unit}`,
  r.baselineValue === null ? '-' : fmt(r.baselineValue),
  r.ratio === null ? '-' : r.ratio.toFixed(3),
])
const head = ['measurement', 'runtime', 'baseline', 'ratio']
const w = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)))
const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')
console.log(`\nedgeless bench: node ${meta.node}, ${meta.cpu} x${meta.cpus}, ${meta.date}`)
console.log(line(head))
console.log(w.map((n) => '-'.repeat(n)).join('  '))
for (const r of table) console.log(line(r))
console.log(`\nratio = runtime / baseline, medians of alternating rounds; baselines and notes in bench/results.json (bench took ${meta.durationS} s).`)
if (sink < 0) console.log(sink) // never; keeps `sink` live
