import { EdgelessError } from '../errors'
import { Cursor } from './cursor'
import { OP, Out, SectionTable, UnknownOpcode, fmtBytes, immediates, lebSize, readLocals, readModuleIndex, reassemble, type Section } from './binary'

/**
 * Load-time instrumentation of a guest for {@link GuestLimits}: fuel metering and a memory
 * cap. A plain binary pass (no binaryen: it would cost a second to load for every guest).
 *
 * Fuel. The module gets a mutable i64 global, exported as {@link FUEL_EXPORT}, which the host
 * sets to the budget before each invocation (through {@link RESET_EXPORT}). Every function entry and every loop header
 * subtract a cost and trap with `unreachable` when the result goes below zero. While a
 * function runs, its fuel lives in an added i64 local (a register in optimised code):
 *
 *     entry:  global.get $fuel  (check COST)                          ;; $f := fuel - COST
 *     loop:   loop  local.get $f  (check COST)  ...
 *     check:  i64.const COST  i64.sub  local.tee $f  i64.const 0  i64.lt_s
 *             if  local.get $f  global.set $fuel  unreachable  end
 *     calls:  local.get $f  global.set $fuel  call ...  global.get $fuel  local.set $f
 *     exits:  local.get $f  global.set $fuel  before return, the final end, a branch out
 *
 * (call_indirect and return_call too; a catch reloads $f.) A bulk instruction (`memory.fill`,
 * `memory.copy`, `memory.init`, `table.fill`, `table.copy`, `table.init`) runs as long as its
 * length operand says, so it is charged for that length too, at run time, just before it
 * runs ({@link BULK_BYTES_PER_FUEL}): its length is kept in an added i32 local ($n) and
 *
 *     bulk:   local.set $n  local.get $f  local.get $n  i64.extend_i32_u  (i64.const S  i64.shr_u)
 *             (the check's subtraction and test, with this cost)  local.get $n  memory.fill ...
 *
 * (on the global in a function without loops). A function with a bulk instruction always
 * gets checks. Without bulk instructions a function is rewritten exactly as before they were
 * charged (no $n), so the output for such modules did not change. A global decremented in the
 * loop itself costs ~50% in a tight loop (a store-to-load chain through memory on every
 * iteration); the local costs ~5% (bench/fuel.mjs). A function without loops needs no
 * local: its one check works on the global (`global.get $fuel i64.const COST i64.sub
 * global.set $fuel`, then the same test), and its calls and exits are left alone, which
 * keeps call-heavy code (formatting, small helpers) cheap.
 *
 * COST is the number of instructions of the region the check heads (the function body, or
 * the loop body), not counting nested loops, which are charged by their own headers. Both
 * arms of an `if` are counted, so fuel is an upper bound of the wasm instructions executed:
 * about one unit per instruction.
 *
 * Out-of-fuel vs a real `unreachable`: a negative value reaches the global only in a
 * check, and that check then traps at once (the local form stores it just before its
 * `unreachable`, the global form tests what it just stored). Every other value the global
 * gets has passed a check. So after a trap the global is negative exactly when the meter
 * trapped; the host reads it (lib/wasm/instance.ts) and reports `out-of-fuel`.
 *
 * Memory. The memory section's maximum is lowered to the cap, so `memory.grow` beyond it
 * returns -1 (the engine's own check; nothing to enforce in the guest). Every `memory.grow`
 * is routed through an added helper function that records the requested page count in an
 * i32 global exported as {@link GROW_EXPORT} when the growth fails; a trap that follows a
 * failed growth (a Rust guest aborts on allocation failure) is reported as out-of-memory.
 *
 * Only things appended at the end of their index spaces are added (two types and functions,
 * one or two globals, their exports and {@link RESET_EXPORT}, a local in some functions), so no existing index changes and
 * calls, tables, element segments and the name section stay valid. `fuel: Infinity` with
 * a cap adds only the memory part; without a cap the module is not rewritten at all.
 *
 * Asyncify runs after this pass (lib/wasm/loader.ts), so it treats the meter as ordinary
 * guest code: $f is saved and restored with the other locals when a guest blocked in
 * call_asm is unwound and rewound, the global is written back before the call (so it is
 * right while the host waits) and read again after it, and the budget spans the suspension
 * (the host refuels only at the start of an invocation).
 */

/** The exported i64 global holding the fuel left in the current invocation. */
export const FUEL_EXPORT = 'edgeless_meter_fuel'
/** The exported i32 global: pages requested by the last failed `memory.grow` (0: none). */
export const GROW_EXPORT = 'edgeless_meter_grow_failed'
/**
 * The exported function `(budget: f64) -> ()` the host calls before each invocation: sets the
 * fuel (when metered) and clears the failed-growth flag. One call into wasm costs ~5 ns where
 * setting the two globals through their WebAssembly.Global objects costs ~60-120 ns.
 * The budget is an integral f64 below 2^63 (the host clamps it).
 */
export const RESET_EXPORT = 'edgeless_meter_reset'
/**
 * Fuel the module starts with: what a start function (run during instantiation, before the
 * host can set a budget) may use. Each invocation then gets its own budget from the host.
 */
export const START_FUEL = 1_000_000_000n

/**
 * Bytes a bulk memory instruction moves per unit of fuel (a table element is one unit).
 * Measured on this host (Node 20, x86-64, unloaded): `memory.fill` of 16 MiB takes ~0.54 ms
 * (~30 bytes/ns), `memory.copy` of 8 MiB ~0.19 ms, and the default budget (1e9) of a tight
 * loop's instructions ~0.12 s. At 4 bytes a unit a loop of 16 MiB fills runs out of that
 * budget after ~240 fills (~0.13 s), about as long as the loop; at 64 bytes a unit it took
 * ~3,800 fills (~2 s). A `memcpy` of 4 KiB costs 1,024 units: still far less than the
 * byte loop it replaces.
 */
export const BULK_BYTES_PER_FUEL = 4
/** log2 of {@link BULK_BYTES_PER_FUEL}: the shift applied to a memory length. */
const BULK_SHIFT = 2

/** Sub-opcode (after 0xfc) -> the shift applied to the length of a bulk instruction; undefined: not one. */
function bulkShift(sub: number): number | undefined {
  switch (sub) {
    case 8:
    case 10:
    case 11:
      return BULK_SHIFT // memory.init, memory.copy, memory.fill: bytes
    case 12:
    case 14:
    case 17:
      return 0 // table.init, table.copy, table.fill: one unit per element
  }
  return undefined
}

/** The sub-opcode of the 0xfc instruction whose immediates start at `c` (the cursor is left where it was). */
function peekSub(c: Cursor): number {
  const at = c.pos
  const sub = c.u32()
  c.pos = at
  return sub
}

export interface MeterOptions {
  /** Insert fuel checks. */
  fuel: boolean
  /** Cap of the memory's maximum, in pages (`undefined`: keep the module's). */
  maxPages: number | undefined
}

/**
 * Pass 1 over a body: the cost of each metered region (0: the function, then each loop in
 * order). A direct call to a function that has no checks of its own (see {@link Plan})
 * adds what that call runs to the region it sits in.
 */
function regionCosts(c: Cursor, folded: (fn: number) => number): { costs: number[]; bulk: boolean } {
  const costs = [0]
  let bulk = false
  const regions = [0] // the region of each open control frame, innermost last
  let region = 0
  while (c.pos < c.end) {
    const op = c.byte()
    if (op === OP.call || op === 0x12) {
      costs[region]! += 1 + folded(c.u32())
      continue
    }
    if (op === 0xfc && bulkShift(peekSub(c)) !== undefined) bulk = true
    immediates(c, op)
    if (op === OP.end || op === OP.delegate) {
      if (op === OP.delegate) costs[region]!++
      regions.pop()
      if (regions.length === 0) break
      region = regions[regions.length - 1]!
      continue
    }
    costs[region]!++
    if (op === OP.loop) {
      region = costs.length
      costs.push(0)
      regions.push(region)
    } else if (op === OP.block || op === OP.if || op === OP.try) {
      regions.push(region)
    }
  }
  if (regions.length !== 0) throw new RangeError('function body without its final end')
  return { costs: costs.map((n) => Math.max(1, n)), bulk }
}

/**
 * Which functions get checks. Checking every function entry makes call-heavy code (string
 * formatting, allocator helpers) pay a load-modify-store of the global on every call, ~40%
 * on a small handler; most of those functions cannot run for long on their own. A defined
 * function goes without checks when it has no loop (nor bulk instruction), is not in a cycle of direct calls
 * (recursion), cannot be reached other than by a direct call (not exported, not the start
 * function, not in a table, no ref.func), and one call of it, with the unchecked functions
 * it calls, runs at most {@link UNCHECKED_LIMIT} instructions (each instruction at most
 * once, as there is no loop; a checked callee counts for nothing, it pays for itself).
 * So between two checks a guest runs at most a region plus that many instructions per
 * call site; and those instructions are charged to the calling region ({@link Plan.folded}),
 * so fuel still counts them. A call to a function that neither checks nor leads to one that
 * does ({@link Plan.touches}) needs no write-back of $f around it.
 */
interface Plan {
  /** Per defined function: it gets checks. */
  metered: boolean[]
  /** Function index (imports first) -> a call to it may read or write the fuel global. */
  touches(fn: number): boolean
  /** Function index -> instructions a direct call to it runs without checks (0 when it checks). */
  folded(fn: number): number
}

interface Body {
  code: number
  end: number
}

/** Most instructions a function without checks may run per call, its unchecked callees included. */
const UNCHECKED_LIMIT = 10_000

function makePlan(bytes: Uint8Array, bodies: Body[], imported: number, escaping: Set<number> | null): Plan {
  const n = bodies.length
  const hasLoop: boolean[] = []
  const size: number[] = []
  const calls: number[][] = []
  const indirect: number[] = []
  const refs = new Set<number>()
  for (const b of bodies) {
    const c = new Cursor(bytes, b.code, b.end)
    let loop = false
    let count = 0
    const direct: number[] = []
    let ind = 0
    while (c.pos < c.end) {
      const op = c.byte()
      if (op === OP.call || op === 0x12) {
        direct.push(c.u32())
        count++
        continue
      }
      if (op === 0xd2) {
        refs.add(c.u32())
        count++
        continue
      }
      // A bulk instruction is charged by its length at run time, which only a checked function does.
      if (op === 0xfc && bulkShift(peekSub(c)) !== undefined) loop = true
      immediates(c, op)
      if (op === OP.loop) loop = true
      else if (op === 0x11 || op === 0x13) ind++
      if (op !== OP.end) count++
    }
    hasLoop.push(loop)
    size.push(count)
    calls.push(direct)
    indirect.push(ind)
  }
  // One walk of the direct-call graph does both jobs. Tarjan's algorithm (iterative) finds
  // direct recursion (strongly connected components), and the order in which it finishes
  // functions is a post-order, so every callee outside the caller's own cycle is decided
  // before its caller. A function finishing with low < index belongs to a cycle whose root
  // has not finished yet; the root learns its whole component when it finishes.
  const inCycle = new Array<boolean>(n).fill(false)
  const metered = new Array<boolean>(n).fill(true)
  const foldedOf = new Array<number>(n).fill(0)
  const touchesOf = new Array<boolean>(n).fill(true)
  /** Decide whether finished function `v` may run without a check (its callees are decided). */
  const decide = (v: number): void => {
    const fn = imported + v
    if (hasLoop[v] || inCycle[v] || escaping === null || escaping.has(fn) || refs.has(fn)) return
    let total = size[v]!
    let touches = indirect[v]! > 0
    for (const callee of calls[v]!) {
      const w = callee - imported
      if (w < 0 || w >= n) {
        touches = true
        continue
      } // an import: the host may call an export back
      total += foldedOf[w]!
      touches ||= touchesOf[w]!
    }
    if (total > UNCHECKED_LIMIT) return
    metered[v] = false
    foldedOf[v] = total
    touchesOf[v] = touches
  }
  {
    const index = new Array<number>(n).fill(-1)
    const low = new Array<number>(n).fill(0)
    const onStack = new Array<boolean>(n).fill(false)
    const stack: number[] = []
    let next = 0
    for (let root = 0; root < n; root++) {
      if (index[root] !== -1) continue
      const work: Array<[number, number]> = [[root, 0]]
      index[root] = low[root] = next++
      stack.push(root)
      onStack[root] = true
      while (work.length) {
        const top = work[work.length - 1]!
        const [v, i] = top
        const edges = calls[v]!
        if (i < edges.length) {
          top[1]++
          const w = edges[i]! - imported
          if (w < 0 || w >= n) continue
          if (w === v) {
            inCycle[v] = true
            continue
          }
          if (index[w] === -1) {
            index[w] = low[w] = next++
            stack.push(w)
            onStack[w] = true
            work.push([w, 0])
          } else if (onStack[w]) {
            low[v] = Math.min(low[v]!, index[w]!)
          }
          continue
        }
        work.pop()
        if (work.length) {
          const u = work[work.length - 1]![0]
          low[u] = Math.min(low[u]!, low[v]!)
        }
        if (low[v] === index[v]) {
          const comp: number[] = []
          let w: number
          do {
            w = stack.pop()!
            onStack[w] = false
            comp.push(w)
          } while (w !== v)
          if (comp.length > 1) for (const x of comp) inCycle[x] = true
        } else {
          inCycle[v] = true
        }
        decide(v)
      }
    }
  }
  const inRange = (fn: number) => fn - imported >= 0 && fn - imported < n
  const touches = (fn: number) => !inRange(fn) || touchesOf[fn - imported]!
  const folded = (fn: number) => (inRange(fn) ? foldedOf[fn - imported]! : 0)
  return { metered, touches, folded }
}

/**
 * Functions that can be reached other than by a direct call: exports, the start function,
 * table elements, ref.func in globals and element expressions (ref.func in code is found
 * by {@link makePlan}). `null` when the element section uses an encoding read here as
 * unknown: then every function is treated as reachable (every function checks).
 */
function escapingFunctions(bytes: Uint8Array, find: (id: number) => Section | undefined): Set<number> | null {
  const out = new Set<number>()
  const exprRefs = (c: Cursor) => {
    for (;;) {
      const op = c.byte()
      if (op === 0xd2) {
        out.add(c.u32())
        continue
      }
      immediates(c, op)
      if (op === OP.end) return
    }
  }
  const exp = find(7)
  if (exp) {
    const c = new Cursor(bytes, exp.start, exp.end)
    for (let k = c.u32(); k > 0; k--) {
      c.name()
      const kind = c.byte()
      const idx = c.u32()
      if (kind === 0) out.add(idx)
    }
  }
  const start = find(8)
  if (start) out.add(new Cursor(bytes, start.start, start.end).u32())
  const globals = find(6)
  if (globals) {
    const c = new Cursor(bytes, globals.start, globals.end)
    for (let k = c.u32(); k > 0; k--) {
      const t = c.byte()
      if (t === 0x63 || t === 0x64) c.leb()
      c.byte()
      exprRefs(c)
    }
  }
  const elems = find(9)
  if (elems) {
    const c = new Cursor(bytes, elems.start, elems.end)
    for (let k = c.u32(); k > 0; k--) {
      const flags = c.u32()
      if (flags > 7) return null
      if (flags === 2 || flags === 6) c.u32() // table index
      if ((flags & 1) === 0) exprRefs(c) // active: the offset expression
      if (flags & 4) {
        if (flags & 3) {
          const t = c.byte()
          if (t === 0x63 || t === 0x64) c.leb()
        } // reftype
        for (let m = c.u32(); m > 0; m--) exprRefs(c)
      } else {
        if (flags & 3) c.byte() // elemkind
        for (let m = c.u32(); m > 0; m--) out.add(c.u32())
      }
    }
  }
  return out
}

/**
 * Rewrite `bytes` (an already validated module) as {@link MeterOptions} say. Throws
 * `invalid-module` when the module cannot run under the cap or uses instructions the
 * meter does not know.
 */
export function instrumentModule(bytes: Uint8Array, opts: MeterOptions, label: string): Uint8Array {
  try {
    return rewrite(bytes, opts, label)
  } catch (e) {
    if (e instanceof EdgelessError) throw e
    if (e instanceof UnknownOpcode) {
      throw new EdgelessError(
        'invalid-module',
        `${label} uses an instruction (opcode ${e.message}) that the fuel meter does not know, so it cannot be metered. Spawn it with \`fuel: Infinity\` (or the workflow annotation fuel "Infinity") to run it unmetered.`,
        { opcode: e.message },
        { cause: e },
      )
    }
    throw new EdgelessError(
      'invalid-module',
      `${label} could not be instrumented for its limits (${(e as Error).message}). Spawn it with \`fuel: Infinity\` and no memory cap to run it as it is.`,
      {},
      { cause: e },
    )
  }
}

function rewrite(bytes: Uint8Array, opts: MeterOptions, label: string): Uint8Array {
  // ---- read the section table and the counts the rewrite needs ----
  const table = new SectionTable(bytes)
  const find = table.find

  const { importedFuncs, importedGlobals, typeParams, funcTypes } = readModuleIndex(table)
  const definedFuncs = table.count(3)
  const definedGlobals = table.count(6)
  const typeCount = table.count(1)

  const exportNames = table.exportNames()
  for (const name of [FUEL_EXPORT, GROW_EXPORT, RESET_EXPORT]) {
    if (exportNames.has(name))
      throw new EdgelessError('invalid-module', `${label} already exports "${name}", a name the host's fuel meter reserves. Rename that export.`, {
        export: name,
      })
  }

  // Without fuel only the growth flag is added (and exported).
  const added = opts.fuel ? 2 : 1
  const fuelGlobal = importedGlobals + definedGlobals
  const growGlobal = importedGlobals + definedGlobals + added - 1
  const growFunc = importedFuncs + definedFuncs
  const resetFunc = growFunc + 1
  const growType = typeCount
  const resetType = typeCount + 1

  // ---- build the replacement sections ----
  const replaced = new Map<number, Uint8Array | null>()

  // Types: append (i32) -> i32 for the grow helper, (f64) -> () for the reset function.
  replaced.set(
    1,
    table.appended(1, 2, (o) => o.bytes(Uint8Array.of(0x60, 1, 0x7f, 1, 0x7f)).bytes(Uint8Array.of(0x60, 1, 0x7c, 0))),
  )

  // Functions: append the grow helper and the reset function.
  replaced.set(
    3,
    table.appended(3, 2, (o) => o.u32(growType).u32(resetType)),
  )

  // Memory: lower the maximum to the cap.
  const mem = find(5)
  if (mem && opts.maxPages !== undefined) {
    const c = new Cursor(bytes, mem.start, mem.end)
    const n = c.u32()
    if (n > 0) {
      const flags = c.byte()
      const min = c.u32()
      const max = flags & 1 ? c.u32() : undefined
      const cap = opts.maxPages
      if (min > cap) {
        throw new EdgelessError(
          'invalid-module',
          `${label} starts with ${min} pages (${fmtBytes(min * 65536)}) of memory, more than its memory cap of ${fmtBytes(cap * 65536)} (${cap} pages). Raise the cap (SpawnOptions.maxMemoryBytes, RuntimeOptions.maxMemoryBytes or the workflow annotation "max-memory") to at least ${min * 65536} bytes.`,
          { initialPages: min, maxPages: cap },
        )
      }
      const o = new Out()
        .u32(n)
        .byte(flags | 1)
        .u32(min)
        .u32(max === undefined ? cap : Math.min(max, cap))
      o.bytes(bytes.subarray(c.pos, mem.end))
      replaced.set(5, o.result())
    }
  }

  // Globals: the fuel (mut i64) and the failed-growth flag (mut i32).
  replaced.set(
    6,
    table.appended(6, added, (o) => {
      if (opts.fuel) o.byte(0x7e).byte(1).byte(0x42).s64(Number(START_FUEL)).byte(0x0b)
      o.byte(0x7f).byte(1).byte(0x41).byte(0).byte(0x0b)
    }),
  )

  // Exports: the globals and the reset function.
  replaced.set(
    7,
    table.appended(7, added + 1, (o) => {
      if (opts.fuel) o.name(FUEL_EXPORT).byte(3).u32(fuelGlobal)
      o.name(GROW_EXPORT).byte(3).u32(growGlobal)
      o.name(RESET_EXPORT).byte(0).u32(resetFunc)
    }),
  )

  // Code: meter every body, reroute memory.grow, append the grow helper.
  {
    const s = find(10)
    const o = new Out(s ? (s.end - s.start) * 2 + 64 : 64)
    o.u32(definedFuncs + 2)
    if (s) {
      const c = new Cursor(bytes, s.start, s.end)
      const n = c.u32()
      const bodies: Array<Body & { start: number }> = []
      for (let i = 0; i < n; i++) {
        const size = c.u32()
        const start = c.pos
        const end = start + size
        for (let k = c.u32(); k > 0; k--) {
          c.u32()
          const t = c.byte()
          if (t === 0x63 || t === 0x64) c.leb()
        }
        bodies.push({ start, code: c.pos, end })
        c.pos = end
      }
      const plan = opts.fuel ? makePlan(bytes, bodies, importedFuncs, escapingFunctions(bytes, find)) : undefined
      const body = new Out(4096)
      for (let i = 0; i < n; i++) {
        const b = bodies[i]!
        body.len = 0
        const params = typeParams[funcTypes[i] ?? -1]
        if (params === undefined) throw new RangeError(`function ${i} has no type`)
        meterBody(bytes, b.start, b.end, body, { plan: plan?.metered[i] ? plan : undefined, global: fuelGlobal, params, growFunc })
        o.u32(body.len).bytes(body.result())
      }
    }
    // (func (param $delta i32) (result i32) (local $r i32)
    //   (local.tee $r (memory.grow (local.get $delta)))
    //   (if (i32.eq (i32.const -1)) (then (global.set $grow_failed (local.get $delta))))
    //   (local.get $r))
    const helper = Uint8Array.of(
      1,
      1,
      0x7f,
      0x20,
      0,
      0x40,
      0,
      0x22,
      1,
      0x41,
      0x7f,
      0x46,
      0x04,
      0x40,
      0x20,
      0,
      0x24,
      ...new Out().u32(growGlobal).result(),
      0x0b,
      0x20,
      1,
      0x0b,
    )
    o.u32(helper.length).bytes(helper)
    // (func (param $budget f64)
    //   (global.set $fuel (i64.trunc_f64_s (local.get $budget)))   ;; when metered
    //   (global.set $grow_failed (i32.const 0)))
    const reset = new Out().byte(0)
    if (opts.fuel) reset.byte(0x20).byte(0).byte(0xb0).byte(0x24).u32(fuelGlobal)
    reset.byte(0x41).byte(0).byte(0x24).u32(growGlobal).byte(0x0b)
    o.u32(reset.len).bytes(reset.result())
    replaced.set(10, o.result())
  }

  return reassemble(table, replaced)
}

/**
 * Rewrite one function body [start, end) into `o`.
 *
 * The fuel lives in a local of the function ($f, an added i64) while the function runs, so
 * that a loop's check is a register decrement and a compare (a global is a memory access
 * on every iteration, and in a tight loop that store-to-load chain costs ~50%). The global
 * is the truth between functions: the entry loads it, and $f is written back before every
 * call and every exit (return, a branch to the function's label, the final end) and read
 * again after every call and at every catch. Every decrement is checked at once, and the
 * check writes the negative value back before trapping, so the global is negative exactly
 * when the meter trapped.
 */
function meterBody(bytes: Uint8Array, start: number, end: number, o: Out, m: BodyMeter): void {
  const c = new Cursor(bytes, start, end)
  const { entries, declared } = readLocals(c)
  const code = c.pos
  const plan = m.plan
  if (!plan) {
    o.bytes(bytes.subarray(start, code))
    rerouteGrow(bytes, c, end, o, m.growFunc, undefined)
    return
  }
  const g = m.global
  const { costs, bulk } = regionCosts(new Cursor(bytes, code, end), plan.folded)
  /** The locals: the same entries, then the added ones (none, when there is nothing to add). */
  const locals = (added: number[]) => {
    if (added.length === 0) {
      o.bytes(bytes.subarray(start, code))
      return
    }
    o.u32(entries + added.length).bytes(bytes.subarray(start + lebSize(bytes, start), code))
    for (const t of added) o.byte(1).byte(t)
  }
  /** The run-time part of a bulk instruction's cost, from its length in $n: the length shifted, as an i64. */
  const bulkCost = (n: number, shift: number) => {
    o.byte(0x20).u32(n).byte(0xad) // local.get $n, i64.extend_i32_u
    if (shift > 0) o.byte(0x42).s64(shift).byte(0x88) // i64.const shift, i64.shr_u
  }
  if (costs.length === 1) {
    // No loop: one check at the entry, on the global itself (the caller wrote its fuel back
    // before calling), and nothing around calls or at exits.
    const n = m.params + declared // $n, when there is a bulk instruction
    locals(bulk ? [0x7f] : [])
    o.byte(0x23).u32(g).byte(0x42).s64(costs[0]!).byte(0x7d).byte(0x24).u32(g) // fuel -= cost
    o.byte(0x23).u32(g).byte(0x42).byte(0).byte(0x53).byte(0x04).byte(0x40).byte(0x00).byte(0x0b) // if fuel < 0: unreachable
    rerouteGrow(
      bytes,
      c,
      end,
      o,
      m.growFunc,
      bulk
        ? (shift) => {
            o.byte(0x21).u32(n).byte(0x23).u32(g) // local.set $n, global.get $fuel
            bulkCost(n, shift)
            o.byte(0x7d).byte(0x24).u32(g) // i64.sub, global.set $fuel
            o.byte(0x23).u32(g).byte(0x42).byte(0).byte(0x53).byte(0x04).byte(0x40).byte(0x00).byte(0x0b) // if fuel < 0: unreachable
            o.byte(0x20).u32(n) // local.get $n: the length, for the instruction
          }
        : undefined,
    )
    return
  }
  const f = m.params + declared // the added local
  const n = f + 1 // $n, when there is a bulk instruction
  // Locals: the same entries, then one i64 for the fuel (and an i32 for a bulk length).
  locals(bulk ? [0x7e, 0x7f] : [0x7e])
  const store = () => {
    o.byte(0x20).u32(f).byte(0x24).u32(g)
  }
  const load = () => {
    o.byte(0x23).u32(g).byte(0x21).u32(f)
  }
  const test = () => {
    o.byte(0x22).u32(f) // local.tee $f
    o.byte(0x42).byte(0).byte(0x53).byte(0x04).byte(0x40) // i64.const 0, i64.lt_s, if
    store()
    o.byte(0x00).byte(0x0b) // unreachable, end
  }
  const check = (cost: number) => {
    o.byte(0x42).s64(cost).byte(0x7d) // i64.const cost, i64.sub
    test()
  }
  o.byte(0x23).u32(g)
  check(costs[0]!)
  let loops = 0
  let depth = 0 // open control frames inside the function body
  let copied = code
  const flush = (to: number) => {
    o.bytes(bytes.subarray(copied, to))
    copied = to
  }
  while (c.pos < end) {
    const at = c.pos
    const op = c.byte()
    switch (op) {
      case OP.loop:
        immediates(c, op)
        depth++
        flush(c.pos)
        o.byte(0x20).u32(f)
        check(costs[++loops]!)
        continue
      case OP.block:
      case OP.if:
      case OP.try:
        immediates(c, op)
        depth++
        continue
      case OP.end:
        if (depth === 0) {
          flush(at)
          store()
        } // the function's own end
        depth--
        continue
      case OP.delegate:
        immediates(c, op)
        depth--
        continue
      case 0x07:
      case 0x19: // catch, catch_all: a callee may have used fuel before throwing
        immediates(c, op)
        flush(c.pos)
        load()
        continue
      case 0x0f: // return
        flush(at)
        store()
        continue
      case 0x0c:
      case 0x0d: {
        // br, br_if
        const label = c.u32()
        if (label === depth) {
          flush(at)
          store()
        }
        continue
      }
      case 0x0e: {
        // br_table
        let exits = false
        const count = c.u32()
        for (let i = 0; i <= count; i++) if (c.u32() === depth) exits = true // count labels, then the default
        if (exits) {
          flush(at)
          store()
        }
        continue
      }
      case OP.call:
      case 0x11: {
        // call, call_indirect
        const callee = c.u32()
        if (op === 0x11) c.u32()
        if (op === OP.call && (callee === m.growFunc || !plan.touches(callee))) continue
        flush(at)
        store()
        flush(c.pos)
        load()
        continue
      }
      case 0x12:
      case 0x13: // return_call, return_call_indirect: the callee continues with the fuel
        immediates(c, op)
        flush(at)
        store()
        continue
      case OP.memoryGrow:
        immediates(c, op)
        if (c.pos === at + 2 && bytes[at + 1] === 0) {
          flush(at)
          o.byte(OP.call).u32(m.growFunc)
          copied = c.pos
        }
        continue
      case 0xfc: {
        const shift = bulkShift(peekSub(c))
        immediates(c, op)
        if (shift === undefined) continue
        // The length is on top of the stack: keep it in $n, charge for it, put it back.
        flush(at)
        o.byte(0x21).u32(n).byte(0x20).u32(f) // local.set $n, local.get $f
        bulkCost(n, shift)
        o.byte(0x7d) // i64.sub
        test()
        o.byte(0x20).u32(n)
        continue
      }
      default:
        immediates(c, op)
    }
  }
  flush(end)
}

/**
 * Copy the instructions at `c` up to `end`, with every `memory.grow` made a call of the grow
 * helper, and `charge` (when given) emitted before every bulk instruction with its shift.
 */
function rerouteGrow(bytes: Uint8Array, c: Cursor, end: number, o: Out, growFunc: number, charge: ((shift: number) => void) | undefined): void {
  let copied = c.pos
  while (c.pos < end) {
    const at = c.pos
    const op = c.byte()
    const shift = charge && op === 0xfc ? bulkShift(peekSub(c)) : undefined
    immediates(c, op)
    if (op === OP.memoryGrow && c.pos === at + 2 && bytes[at + 1] === 0) {
      o.bytes(bytes.subarray(copied, at))
      o.byte(OP.call).u32(growFunc)
      copied = c.pos
    } else if (shift !== undefined) {
      o.bytes(bytes.subarray(copied, at))
      charge!(shift)
      copied = at
    }
  }
  o.bytes(bytes.subarray(copied, end))
}

interface BodyMeter {
  /** Set when this function gets checks. */
  plan: Plan | undefined
  /** The fuel global. */
  global: number
  /** Parameters of the function (its first locals). */
  params: number
  growFunc: number
}
