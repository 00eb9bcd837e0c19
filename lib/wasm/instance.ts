/**
 * A wasm guest running in this thread: instantiation with the host's imports, the calls
 * into its handlers, the copies in and out of its memory, and suspension for blocking
 * calls.
 * @packageDocumentation
 */
import { UNLIMITED, type GuestLimits } from './limits'
import { NOREPLY_RESULT, errResult, type CallResult } from '../call-result'
import { EdgelessError } from '../errors'
import { isThenable, type Guest, type GuestHost, type LendingGuest } from '../guest'
import { instanceIdFromBytes, type InstanceId } from '../ids'
import { ShortStrings, utf8, utf8Range, utf8Strict } from '../payload'
import type { FunctionModule } from './loader'
import { BULK_BYTES_PER_FUEL, FUEL_EXPORT, GROW_EXPORT, RESET_EXPORT } from './meter'
import { BASE_EXPORT, DENSE_IMPORT, PAGES_EXPORT, START_EXPORT } from './dense'
import { takeRegion } from './regions'

interface GuestExports {
  memory: WebAssembly.Memory
  edgeless_mem_alloc(len: number): number
  edgeless_mem_free(ptr: number, len: number): void
  edgeless_mem_clear?: () => void
  handle_init_asm(pp: number, pl: number, sp: number, sl: number): void
  handle_cast_asm(np: number, cp: number, pp: number, pl: number): void
  handle_call_asm(np: number, cp: number, pp: number, pl: number, op: number, ol: number): number
  handle_stop_asm(): void
  asyncify_start_unwind?: (buf: number) => void
  asyncify_stop_unwind?: () => void
  asyncify_start_rewind?: (buf: number) => void
  asyncify_stop_rewind?: () => void
}

/** The largest budget handed to the meter (an f64 that converts to i64 exactly): what `fuel: Infinity` gets in a module that carries a meter anyway. */
const MAX_BUDGET = 2 ** 62

/**
 * Fuel one host call (an `env` import) costs, before the bytes it copies (one unit per
 * {@link BULK_BYTES_PER_FUEL}, as for bulk memory instructions). Without it a guest looping
 * on an import used ~6 units per call, and the default budget let it make ~170 million
 * calls: 13-45 s of host work holding the thread. The figure is about what a cheap host call
 * costs the host in nanoseconds (a cast to an unknown alias, a rate-limited log line: ~150 ns
 * here; a sync ~1 us), as a unit of fuel is about a nanosecond of guest work: the default
 * budget (1e9) buys a million host calls. Host calls that cost more (a self-cast into a full
 * mailbox, ~13 us, each a dead letter) are bounded by the clock ({@link GuestLimits.maxInvocationMs}).
 */
export const HOST_CALL_FUEL = 1000

/**
 * Host calls between two readings of the clock for {@link GuestLimits.maxInvocationMs}
 * (`performance.now()` costs ~75 ns here, a cheap host call ~150 ns). The first reading of
 * a run starts its clock: an invocation making fewer host calls never reads it.
 */
const CLOCK_EVERY = 32

/**
 * Most fuel the host's charges may owe the guest's fuel global before they are taken from it
 * (reading and writing the i64 global from JS costs ~70 ns; a host call ~150 ns); at most
 * 1/32 of the budget, so a small budget is kept to within ~3%.
 */
const MAX_DEBT = 65_536

/** Bytes the host allocates per invocation: sender node id (16), component id (16), two out slots (4+4). */
const SLOTS = 40

/** Payloads up to this size go through the scratch block (see {@link WasmGuest.scratchFor}); bigger ones are allocated per message. */
const MAX_SCRATCH_PAYLOAD = 4096

/** Replies up to this size may be returned in a buffer the guest reuses (see {@link WasmGuest.lendReply}). */
const MAX_LENT_REPLY = 4096

/**
 * One instance of a wasm EDGELESS function: links the `env` imports to the actor (its
 * {@link GuestHost}) and drives the `handle_*_asm` exports with upstream's memory hygiene.
 *
 * Blocking calls: when `call_asm` can be answered at once the answer is written straight
 * back (the fast path). Otherwise, for modules prepared with asyncify, the guest's stack is
 * unwound into a buffer allocated in its own memory, the host awaits the answer, then
 * rewinds the guest into the same `call_asm`, which now returns the answer.
 * @internal
 */
export class WasmGuest implements Guest {
  private ex!: GuestExports
  private u8 = new Uint8Array(0)
  private suspension: { promise: Promise<CallResult>; buf: number } | null = null
  private rewinding: { buf: number; value: CallResult } | null = null
  private readonly label: string
  /** The meter's fuel global (metered modules), read after a trap. */
  private fuel: WebAssembly.Global | undefined
  /** The flag the memory instrumentation sets when a memory.grow fails (pages asked for). */
  private growFailed: WebAssembly.Global | undefined
  /** Sets the fuel to the budget and clears the flag: called before each invocation. */
  private reset: ((budget: number) => void) | undefined
  private budget = MAX_BUDGET
  /** Fuel charged by host calls and not yet taken from the fuel global (see {@link charge}). */
  private debt = 0
  /** Debt at which it is paid: {@link MAX_DEBT}, or less for a small budget. */
  private maxDebt = MAX_DEBT
  /** Host calls made since the current run started (an invocation, or its resumption). */
  private hostCalls = 0
  /** When the clock of the current run started (performance.now(); 0: not yet read). */
  private runStart = 0
  /** {@link GuestLimits.maxInvocationMs}: how long a run may go on making host calls. */
  private readonly maxRunMs: number
  /** Aliases and log targets named before, by their bytes (made on first use). */
  private aliases: ShortStrings | null = null
  private logTargets: ShortStrings | null = null
  /**
   * May call payloads be lent: handed to the host as a view into this guest's memory instead
   * of a copy? Set by the {@link System} that the guest's calls reach in this thread, which
   * copies whatever it keeps beyond the call (see System.call). Off otherwise: a guest in a
   * worker posts its payloads, and posting a view would copy its whole memory.
   */
  lends = false
  /** The payload view lent during the call_asm/call_raw_asm that is running now; null otherwise. */
  lent: Uint8Array | null = null
  /** The last view lent, reused while a guest calls with the same bytes (a loop). */
  private readonly lentViews = new ReusedView()
  /**
   * Set by the System just before it runs a call here for a guest that is blocked in its
   * call_asm and copies the reply into its own memory before anything else runs: the next
   * `call` may then return its reply in a buffer this guest reuses. Cleared when read.
   */
  lendReply = false
  /** The last log message's view (see {@link logView}). */
  private readonly logViews = new ReusedView()
  /**
   * A block of guest memory kept across invocations, for guests whose edgeless_mem_clear is
   * a no-op (FunctionModule.clearIsNoop): [sender ids 32][out slots 8][payload]. 0: none yet.
   */
  private scratch = 0
  private scratchBytes = 0
  /** The sender id bytes last copied into the scratch block (the same object: no copy). */
  private scratchSrc: Uint8Array | null = null
  /** Dense memory: the first byte of this instance's region in its chunk (0 otherwise). */
  private base = 0
  /** Dense memory: the global holding the memory size in pages (read for error messages). */
  private pages: WebAssembly.Global | undefined
  /** Casts' payloads are copied into guest memory, never kept (see Guest.copiesPayload). */
  readonly copiesPayload = true
  /** Routing lends this guest's call payloads and replies (see {@link LendingGuest}). */
  readonly lender: LendingGuest = this
  private replyBuf: Uint8Array | null = null
  private replyResult: { readonly kind: 'reply'; readonly data: Uint8Array } | null = null

  private constructor(
    private readonly fm: FunctionModule,
    private readonly host: GuestHost,
    private readonly suspendBufferBytes: number,
    private readonly limits: GuestLimits,
  ) {
    this.label = `function "${host.name}"`
    this.maxRunMs = limits.maxInvocationMs ?? Infinity
  }

  /**
   * Instantiate `fm` for `host`. Instantiation errors (e.g. a start function trapping) reject.
   * `limits.fuel` is the budget of every invocation when `fm` is metered (the module was
   * loaded for the same limits; see loadFunctionModule).
   */
  static async create(fm: FunctionModule, host: GuestHost, suspendBufferBytes = 16 * 1024, limits: GuestLimits = UNLIMITED): Promise<WasmGuest> {
    const g = new WasmGuest(fm, host, suspendBufferBytes, limits)
    const imports: WebAssembly.Imports = { env: g.imports() as WebAssembly.ModuleImports }
    const dense = fm.dense
    const region = dense ? takeRegion(dense) : undefined
    if (region) imports[DENSE_IMPORT[0]] = { [DENSE_IMPORT[1]]: region.memory }
    let instance: WebAssembly.Instance
    try {
      // Synchronous: the async form resolves in a later task, and V8 finishes incremental
      // marking in those tasks; with passivation every activation instantiates. Measured
      // (bench/passivation.mjs, 5,000 activations): 3.4x the activations per second and
      // 3.6x fewer full GCs than `await WebAssembly.instantiate`. Where synchronous
      // instantiation is refused (a browser main thread, for big modules) it throws a
      // RangeError: then the async form.
      instance = new WebAssembly.Instance(fm.module, imports)
    } catch (e) {
      if (!(e instanceof RangeError) || /memory/i.test((e as Error).message)) throw e
      instance = await WebAssembly.instantiate(fm.module, imports)
    }
    g.ex = instance.exports as unknown as GuestExports
    const exports = instance.exports as Record<string, unknown>
    if (dense && region) {
      // Place the instance before anything runs in it (a start function was turned into an
      // export, run below), then copy its data segments into its region: the engine could
      // not, without the base.
      ;(exports[BASE_EXPORT] as WebAssembly.Global).value = region.base
      g.base = region.base
      g.pages = exports[PAGES_EXPORT] as WebAssembly.Global
      g.u8 = new Uint8Array(region.memory.buffer, region.base, dense.initialPages * 65536)
      for (const seg of dense.data) g.u8.set(seg.bytes, seg.offset)
      // What instantiation would have run last (a trap rejects, as it would have).
      const start = exports[START_EXPORT] as (() => void) | undefined
      if (start) start()
    } else {
      g.u8 = new Uint8Array(g.ex.memory.buffer)
    }
    if (fm.instrumented) {
      g.reset = exports[RESET_EXPORT] as (budget: number) => void
      g.growFailed = exports[GROW_EXPORT] as WebAssembly.Global
      if (fm.metered) g.fuel = exports[FUEL_EXPORT] as WebAssembly.Global
      g.budget = Math.min(Math.floor(limits.fuel), MAX_BUDGET)
      g.maxDebt = Math.max(1, Math.min(MAX_DEBT, Math.floor(g.budget / 32)))
    }
    return g
  }

  /** Start an invocation: a full fuel budget, no failed growth yet, no host calls yet. */
  private refuel(): void {
    if (this.reset) this.reset(this.budget)
    this.debt = 0
    this.hostCalls = 0
    this.runStart = 0
  }

  /**
   * Charge a host call: {@link HOST_CALL_FUEL} plus `bytes` copied, taken from the guest's
   * fuel, and every {@link CLOCK_EVERY} calls a look at the clock. Called first in every
   * import, so a flood stops before the call that overdraws does its work. Throws a
   * {@link LimitHit}, which {@link failed} names.
   */
  private charge(bytes: number): void {
    if ((++this.hostCalls & (CLOCK_EVERY - 1)) === 0 && this.maxRunMs !== Infinity) this.checkClock()
    if (this.fuel === undefined) return
    if ((this.debt += HOST_CALL_FUEL + Math.floor(bytes / BULK_BYTES_PER_FUEL)) >= this.maxDebt) this.payDebt()
  }

  /**
   * Take the host calls' charges from the fuel global. The meter wrote its fuel back to the
   * global before the guest called the import and reads it again after, so the global is
   * exact here. Going below zero leaves it negative, as the meter's own trap does.
   */
  private payDebt(): void {
    const fuel = this.fuel!
    const left = (fuel.value as bigint) - BigInt(this.debt)
    this.debt = 0
    fuel.value = left
    if (left < 0n) throw new LimitHit('fuel')
  }

  private checkClock(): void {
    const now = performance.now()
    if (this.runStart === 0) this.runStart = now
    else if (now - this.runStart > this.maxRunMs) throw new LimitHit('clock')
  }

  /**
   * Name a failure of the running invocation: the meter's trap is `out-of-fuel` (the fuel
   * global is negative: a guest's own `unreachable` only runs while it is >= 0); a trap or
   * fault after a failed memory.grow is `out-of-memory`; a trap while unwinding is a stack
   * too big for the suspension buffer. Anything else passes through as it is.
   */
  private failed(e: unknown, handler: 'init' | 'cast' | 'call' | 'stop'): unknown {
    const name = this.host.name
    if (e instanceof LimitHit && e.limit === 'clock') {
      const ms = this.maxRunMs
      return new EdgelessError(
        'trap',
        `${this.label} ran past its ${fmt(ms)} ms limit in handle_${handler}: it went on calling the host (${fmt(this.hostCalls)} host calls) for longer than one invocation may hold the thread, in a loop of casts, logs or syncs that does not end or more of them than the limit allows. The instance crashed; its supervisor restarts it or gives up according to its restart type. If the work is legitimate, raise the limit: SpawnOptions.maxInvocationMs or RuntimeOptions.maxInvocationMs, or the workflow annotation "max-invocation-ms" (Infinity turns it off).`,
        { name, handler, trap: 'deadline', maxInvocationMs: ms, hostCalls: this.hostCalls },
        { cause: e },
      )
    }
    if (e instanceof LimitHit || (this.fuel && e instanceof WebAssembly.RuntimeError && (this.fuel.value as bigint) < 0n)) {
      const budget = this.limits.fuel
      return new EdgelessError(
        'trap',
        `${this.label} ran out of fuel in handle_${handler}: one invocation may use ${fmt(budget)} fuel (about one unit per wasm instruction run, ${fmt(HOST_CALL_FUEL)} per host call, one per ${BULK_BYTES_PER_FUEL} bytes a bulk memory instruction or host call copies) and this one used it all, in an infinite loop or more work than the budget allows. The instance crashed; its supervisor restarts it or gives up according to its restart type. If the work is legitimate, raise the budget: SpawnOptions.fuel or RuntimeOptions.fuel, or the workflow annotation "fuel" (Infinity turns metering off).`,
        { name, handler, trap: 'out-of-fuel', fuel: budget, ...(e instanceof LimitHit ? { hostCalls: this.hostCalls } : {}) },
        { cause: e },
      )
    }
    if (!(e instanceof WebAssembly.RuntimeError || e instanceof RangeError || e instanceof EdgelessError)) return e
    const pages = this.growFailed ? (this.growFailed.value as number) >>> 0 : 0
    if (pages !== 0) {
      const size = this.memoryBytes()
      const cap = this.fm.maxPages
      const beyond =
        cap === undefined
          ? 'what the engine could give it (no cap was set)'
          : this.fm.dense && this.limits.maxMemoryBytes === undefined
            ? `the ${fmtBytes(cap * 65536)} a dense instance gets when no cap is set (twice its initial memory, at least 8 MiB more)`
            : `its memory cap of ${fmtBytes(cap * 65536)}`
      return new EdgelessError(
        'trap',
        `${this.label} ran out of memory in handle_${handler}: it asked to grow its ${fmtBytes(size)} of linear memory by ${fmtBytes(pages * 65536)}, beyond ${beyond}, and failed (${(e as Error).message}). The instance crashed; its supervisor restarts it or gives up according to its restart type. If it needs the memory, raise the cap: SpawnOptions.maxMemoryBytes or RuntimeOptions.maxMemoryBytes, or the workflow annotation "max-memory"; otherwise fix the function's memory use.`,
        {
          name,
          handler,
          trap: 'out-of-memory',
          memoryBytes: size,
          requestedBytes: pages * 65536,
          ...(cap !== undefined ? { maxMemoryBytes: cap * 65536 } : {}),
        },
        { cause: e },
      )
    }
    return this.explainUnwindTrap(e)
  }

  // ---- memory helpers ----------------------------------------------------------------

  /**
   * The current view of guest memory. Growth detaches the old buffer, which leaves the old
   * view with length 0; checking that costs ~4 ns where reading `memory.buffer` costs ~26.
   */
  private view(): Uint8Array {
    // (Not for a dense instance: its buffer is the whole chunk, and it never detaches.)
    if (this.u8.length === 0 && this.pages === undefined) this.u8 = new Uint8Array(this.ex.memory.buffer)
    return this.u8
  }

  /**
   * A dense instance's view covers its memory size, which the guest grows without the host
   * knowing (a global, not a buffer that detaches). So a bounds check that fails makes the
   * view again from the size global (~60 ns, only on that path) and checks once more:
   * pointers are checked against the guest's memory size, exactly as with a memory of its own.
   * True when the view grew.
   */
  private regrown(): boolean {
    if (!this.pages) return false
    const bytes = ((this.pages.value as number) >>> 0) * 65536
    if (bytes === this.u8.length) return false
    this.u8 = new Uint8Array(this.ex.memory.buffer, this.base, bytes)
    return true
  }

  /** Bytes of linear memory the guest has. */
  private memoryBytes(): number {
    this.regrown()
    return this.view().length
  }

  private fault(message: string, details: Record<string, unknown> = {}): EdgelessError {
    return new EdgelessError('guest-fault', `${this.label}: ${message}. This is a bug in the guest; the invocation was stopped.`, {
      name: this.host.name,
      ...details,
    })
  }

  /** Check that [ptr, ptr+len) lies in guest memory; a guest passing garbage is its own fault. */
  private range(ptr: number, len: number, what: string): number {
    const p = ptr >>> 0
    const l = len >>> 0
    let size = this.view().length
    if (p + l > size && this.regrown()) size = this.u8.length
    if (p + l > size) throw this.fault(`${what} points to [${p}, ${p + l}), outside its ${size}-byte memory`, { ptr: p, len: l })
    return p
  }

  /** A copy of the bytes at [ptr, ptr+len), for data that outlives the invocation. */
  private read(ptr: number, len: number, what: string): Uint8Array {
    // One allocation (slice), not two (subarray + slice): this runs for every payload.
    const p = this.range(ptr, len, what)
    return this.u8.slice(p, p + (len >>> 0))
  }

  private alloc(len: number): number {
    const p = this.ex.edgeless_mem_alloc(len) >>> 0
    if (len > 0 && (p === 0 || (p + len > this.view().length && !(this.regrown() && p + len <= this.u8.length)))) {
      throw this.fault(`edgeless_mem_alloc(${len}) returned ${p}, which is null or outside memory (out of guest memory?)`)
    }
    return p
  }

  private readU32(p: number): number {
    const u = this.view()
    return (u[p]! | (u[p + 1]! << 8) | (u[p + 2]! << 16) | (u[p + 3]! << 24)) >>> 0
  }

  private writeU32(p: number, v: number): void {
    const u = this.view()
    u[p] = v & 0xff
    u[p + 1] = (v >>> 8) & 0xff
    u[p + 2] = (v >>> 16) & 0xff
    u[p + 3] = (v >>> 24) & 0xff
  }

  private alias(ptr: number, len: number, op: 'cast' | 'call' | 'delayed_cast'): string | undefined {
    const p = this.range(ptr, len, 'the target alias')
    const end = p + (len >>> 0)
    const s = (this.aliases ??= new ShortStrings(utf8Strict, 4)).get(this.u8, p, end)
    if (s === undefined) this.host.invalidAlias(op, this.u8.slice(p, end))
    return s
  }

  /**
   * A call's payload as a view into guest memory (see {@link lends}): the view of the last
   * call again when it covers the same bytes of the same memory buffer.
   */
  private lend(ptr: number, len: number): Uint8Array {
    // range() first: it may make the view again (a dense instance that grew).
    const p = this.range(ptr, len, 'the payload')
    return this.lentViews.of(this.u8, p, len >>> 0)
  }

  /**
   * A log message as a view into guest memory for the decoder: the view of the last message
   * again when this one lies at the same place (a guest formatting its lines into a buffer
   * the allocator hands out again).
   */
  private logView(ptr: number, len: number): Uint8Array {
    const p = this.range(ptr, len, 'the log message')
    return this.logViews.of(this.u8, p, len >>> 0)
  }

  /** Run the host's call with `payload` marked as lent (see {@link lent}). */
  private lending(payload: Uint8Array, alias: string | undefined, target: InstanceId | undefined): CallResult | Promise<CallResult> {
    this.lent = payload
    try {
      return alias !== undefined ? this.host.call(alias, payload) : this.host.callRaw(target!, payload)
    } finally {
      this.lent = null
    }
  }

  private targetId(nodePtr: number, compPtr: number): InstanceId {
    const n = this.range(nodePtr, 16, 'the target node id')
    const c = this.range(compPtr, 16, 'the target component id')
    return instanceIdFromBytes(this.u8, n, c)
  }

  // ---- imports ----------------------------------------------------------------------

  private imports(): Record<string, (...args: never[]) => unknown> {
    const host = this.host
    return {
      cast_asm: (tp: number, tl: number, pp: number, pl: number) => {
        this.charge((tl >>> 0) + (pl >>> 0))
        const alias = this.alias(tp, tl, 'cast')
        const payload = this.read(pp, pl, 'the payload')
        if (alias !== undefined) host.cast(alias, payload)
      },
      cast_raw_asm: (np: number, cp: number, pp: number, pl: number) => {
        this.charge(pl >>> 0)
        const target = this.targetId(np, cp)
        host.castRaw(target, this.read(pp, pl, 'the payload'))
      },
      call_asm: (tp: number, tl: number, pp: number, pl: number, op: number, ol: number) => {
        if (this.rewinding) return this.resumed(op, ol)
        this.charge((tl >>> 0) + (pl >>> 0))
        this.range(op, 4, 'out_ptr_ptr')
        this.range(ol, 4, 'out_len_ptr')
        const alias = this.alias(tp, tl, 'call')
        if (this.lends) {
          const lent = this.lend(pp, pl)
          if (alias === undefined) return 2
          return this.answer(this.lending(lent, alias, undefined), op, ol)
        }
        const payload = this.read(pp, pl, 'the payload')
        if (alias === undefined) return 2
        return this.answer(host.call(alias, payload), op, ol)
      },
      call_raw_asm: (np: number, cp: number, pp: number, pl: number, op: number, ol: number) => {
        if (this.rewinding) return this.resumed(op, ol)
        this.charge(pl >>> 0)
        this.range(op, 4, 'out_ptr_ptr')
        this.range(ol, 4, 'out_len_ptr')
        const target = this.targetId(np, cp)
        if (this.lends) return this.answer(this.lending(this.lend(pp, pl), undefined, target), op, ol)
        return this.answer(host.callRaw(target, this.read(pp, pl, 'the payload')), op, ol)
      },
      delayed_cast_asm: (delay: bigint, tp: number, tl: number, pp: number, pl: number) => {
        this.charge((tl >>> 0) + (pl >>> 0))
        const alias = this.alias(tp, tl, 'delayed_cast')
        const payload = this.read(pp, pl, 'the payload')
        // The i64 is a u64 number of milliseconds in the Rust API.
        const ms = Number(BigInt.asUintN(64, BigInt(delay)))
        if (alias !== undefined) host.delayedCast(ms, alias, payload)
      },
      telemetry_log_asm: (level: number, tp: number, tl: number, mp: number, ml: number) => {
        this.charge((tl >>> 0) + (ml >>> 0))
        // Log text is decoded leniently: invalid UTF-8 becomes U+FFFD rather than failing the guest.
        const t = this.range(tp, tl, 'the log target')
        const target = (this.logTargets ??= new ShortStrings(utf8Range, 2)).get(this.u8, t, t + (tl >>> 0))!
        const text = utf8(this.logView(mp, ml))
        host.log(level, target, text)
      },
      slf_asm: (np: number, cp: number) => {
        this.charge(0)
        const n = this.range(np, 16, 'out_node_id_ptr')
        const c = this.range(cp, 16, 'out_component_id_ptr')
        this.u8.set(host.idBytes.subarray(0, 16), n)
        this.u8.set(host.idBytes.subarray(16, 32), c)
      },
      sync_asm: (dp: number, dl: number) => {
        this.charge(dl >>> 0)
        host.sync(this.read(dp, dl, 'the state'))
      },
    }
  }

  /** Deliver a call's answer to the guest now, or suspend it until the answer comes. */
  private answer(res: CallResult | Promise<CallResult>, op: number, ol: number): number {
    if (!isThenable<CallResult>(res)) return this.deliver(res, op, ol)
    if (!this.fm.canSuspend) {
      this.host.cannotSuspend()
      return 2
    }
    const size = this.suspendBufferBytes
    const buf = this.alloc(size)
    // asyncify's data structure: [current position, end] followed by the saved stack.
    this.writeU32(buf, buf + 8)
    this.writeU32(buf + 4, buf + size)
    this.ex.asyncify_start_unwind!(buf)
    this.suspension = { promise: res, buf }
    return 0
  }

  /** Rewinding into call_asm: stop the rewind and return the awaited answer. */
  private resumed(op: number, ol: number): number {
    const r = this.rewinding!
    this.rewinding = null
    this.ex.asyncify_stop_rewind!()
    this.ex.edgeless_mem_free(r.buf, this.suspendBufferBytes)
    return this.deliver(r.value, op, ol)
  }

  private deliver(r: CallResult, op: number, ol: number): number {
    if (r.kind === 'noreply') return 0
    if (r.kind === 'err') return 2
    const len = r.data.length
    // Upstream allocates even for an empty reply; guests expect to free what they get.
    const p = this.alloc(len)
    put(this.view(), r.data, p)
    this.writeU32(op >>> 0, p)
    this.writeU32(ol >>> 0, len)
    return 1
  }

  /** Finish an invocation that suspended: wait, rewind, repeat until the export returns for good. */
  private async resume<T>(reinvoke: () => T): Promise<T> {
    let ret!: T
    while (this.suspension) {
      const s = this.suspension
      // asyncify checks here that the saved stack fit the buffer (a trap if it did not): the
      // suspension stays set until it passed, so the trap is named for what it is.
      this.ex.asyncify_stop_unwind!()
      this.suspension = null
      const value = await s.promise
      // A new run on the thread: the clock of maxInvocationMs starts again (waiting is not holding it).
      this.hostCalls = 0
      this.runStart = 0
      this.rewinding = { buf: s.buf, value }
      this.ex.asyncify_start_rewind!(s.buf)
      ret = reinvoke()
    }
    return ret
  }

  /** A trap while unwinding means the stack did not fit the suspension buffer; say so. */
  private explainUnwindTrap(e: unknown): unknown {
    if (this.suspension && e instanceof WebAssembly.RuntimeError) {
      // asyncify's position word says how far the saved stack got before the check failed.
      let needed = 0
      try {
        needed = this.readU32(this.suspension.buf) - this.suspension.buf
      } catch {
        // A memory too broken to read: the message goes without the figure.
      }
      const atLeast = needed > this.suspendBufferBytes ? ` (it needed at least ${needed} bytes)` : ''
      return this.fault(
        `its stack did not fit the ${this.suspendBufferBytes}-byte suspension buffer while waiting for a call${atLeast}; raise the runtime option suspendBufferBytes`,
      )
    }
    return e
  }

  // ---- handlers ---------------------------------------------------------------------

  // Every failure of an invocation, synchronous or after a suspension, goes through
  // failed(): the host's own calls into the guest (alloc, free) are metered too.

  init(payload: Uint8Array | undefined, state: Uint8Array | undefined): void | Promise<void> {
    this.refuel()
    const run = () => this.ex.handle_init_asm(pp, pl, sp, sl)
    const finish = () => {
      if (pl) this.ex.edgeless_mem_free(pp, pl)
      if (sl) this.ex.edgeless_mem_free(sp, sl)
    }
    let pp = 0
    let sp = 0
    const pl = payload?.length ?? 0
    const sl = state?.length ?? 0
    try {
      this.clear()
      pp = pl ? this.alloc(pl) : 0
      sp = sl ? this.alloc(sl) : 0
      if (pl) this.view().set(payload!, pp)
      if (sl) this.view().set(state!, sp)
      run()
      if (!this.suspension) return finish()
    } catch (e) {
      throw this.failed(e, 'init')
    }
    return this.resume(run)
      .then(finish)
      .catch((e: unknown) => {
        throw this.failed(e, 'init')
      })
  }

  cast(_src: InstanceId, srcBytes: Uint8Array, msg: Uint8Array): void | Promise<void> {
    this.refuel()
    const ex = this.ex
    const len = msg.length
    let ids = 0
    let p = 0
    try {
      ids = this.place(srcBytes, msg)
      p = this.payloadAt
      ex.handle_cast_asm(ids, ids + 16, p, len)
      if (!this.suspension) return this.freeMsg(ids, p, len)
    } catch (e) {
      throw this.failed(e, 'cast')
    }
    return this.castResumed(ids, p, len)
  }

  // The suspended halves of cast and call are methods of their own: closures in cast or
  // call would make every invocation allocate a context for the variables they capture.

  private castResumed(ids: number, p: number, len: number): Promise<void> {
    const ex = this.ex
    return this.resume(() => ex.handle_cast_asm(ids, ids + 16, p, len))
      .then(() => this.freeMsg(ids, p, len))
      .catch((e: unknown) => {
        throw this.failed(e, 'cast')
      })
  }

  call(_src: InstanceId, srcBytes: Uint8Array, msg: Uint8Array): CallResult | Promise<CallResult> {
    const lend = this.lendReply
    this.lendReply = false
    this.refuel()
    const ex = this.ex
    const len = msg.length
    let ids = 0
    let p = 0
    try {
      ids = this.place(srcBytes, msg)
      p = this.payloadAt
      const u8 = this.u8
      // Zero the out slots: a guest that returns 1 without writing them gets (0, 0), not
      // whatever an earlier invocation left there.
      for (let i = ids + 32; i < ids + 40; i++) u8[i] = 0
      const rc = ex.handle_call_asm(ids, ids + 16, p, len, ids + 32, ids + 36)
      if (!this.suspension) return this.finishCall(rc, ids, p, len, lend)
    } catch (e) {
      throw this.failed(e, 'call')
    }
    return this.callResumed(ids, p, len)
  }

  private callResumed(ids: number, p: number, len: number): Promise<CallResult> {
    const ex = this.ex
    return this.resume(() => ex.handle_call_asm(ids, ids + 16, p, len, ids + 32, ids + 36))
      .then((rc) => this.finishCall(rc, ids, p, len, false))
      .catch((e: unknown) => {
        throw this.failed(e, 'call')
      })
  }

  stop(): void | Promise<void> {
    this.refuel()
    const run = () => this.ex.handle_stop_asm()
    try {
      this.clear()
      run()
      if (!this.suspension) return
    } catch (e) {
      throw this.failed(e, 'stop')
    }
    return this.resume(run).catch((e: unknown) => {
      throw this.failed(e, 'stop')
    })
  }

  /**
   * The reply at [ptr, ptr+len) copied into a buffer this guest reuses, in a result object it
   * reuses while the length repeats: valid until this guest answers its next call (see
   * {@link lendReply}).
   */
  private lentReply(ptr: number, len: number): CallResult {
    const p = this.range(ptr, len, 'the reply')
    const l = len >>> 0
    let buf = this.replyBuf
    if (buf === null || buf.length < l) {
      buf = this.replyBuf = new Uint8Array(Math.max(64, 2 ** Math.ceil(Math.log2(l))))
      this.replyResult = null
    }
    const u = this.u8
    if (l <= 64) for (let i = 0; i < l; i++) buf[i] = u[p + i]!
    else buf.set(u.subarray(p, p + l))
    let r = this.replyResult
    if (r === null || r.data.length !== l) r = this.replyResult = { kind: 'reply', data: buf.subarray(0, l) }
    return r
  }

  /** edgeless_mem_clear, unless it is known to do nothing. */
  private clear(): void {
    if (!this.fm.clearIsNoop) this.ex.edgeless_mem_clear?.()
  }

  /** Where {@link place} put the payload. */
  private payloadAt = 0

  /**
   * Put a message's sender ids and payload into guest memory; returns the ids' address (out
   * slots follow them), and leaves the payload's in {@link payloadAt}.
   *
   * Upstream's hygiene allocates the ids, the out slots and the payload for every message and
   * frees them after (after edgeless_mem_clear, which may reset a bump arena). That is four
   * export calls into the guest's allocator per message, ~100 ns on a Rust guest. For guests
   * whose edgeless_mem_clear does nothing (the Rust std SDK's: its allocator is never reset
   * behind the host's back) the host keeps one block instead ({@link scratchFor}): the
   * sender ids are copied only when the sender changes, small payloads go after them, and
   * nothing is freed. A guest sees the same bytes at the pointers it gets; only the number
   * of alloc/free calls differs. Every other guest gets upstream's hygiene exactly.
   */
  private place(srcBytes: Uint8Array, msg: Uint8Array): number {
    const len = msg.length
    const block = this.scratchFor(len)
    if (block !== 0) {
      const u8 = this.view()
      if (srcBytes !== this.scratchSrc) {
        u8.set(srcBytes, block)
        this.scratchSrc = srcBytes
      }
      this.payloadAt = block + SLOTS
      put(u8, msg, block + SLOTS)
      return block
    }
    this.ex.edgeless_mem_clear?.()
    const ids = this.alloc(SLOTS)
    const p = (this.payloadAt = this.alloc(len))
    const u8 = this.view()
    u8.set(srcBytes, ids)
    put(u8, msg, p)
    return ids
  }

  /** The scratch block, made big enough for a `len`-byte payload; 0: allocate per message. */
  private scratchFor(len: number): number {
    if (!this.fm.clearIsNoop || len > MAX_SCRATCH_PAYLOAD) return 0
    if (SLOTS + len <= this.scratchBytes) return this.scratch
    if (this.scratch !== 0) this.ex.edgeless_mem_free(this.scratch, this.scratchBytes)
    this.scratch = this.scratchBytes = 0
    this.scratchSrc = null
    const size = Math.max(128, 2 ** Math.ceil(Math.log2(SLOTS + len)))
    this.scratch = this.alloc(size)
    this.scratchBytes = size
    return this.scratch
  }

  private freeMsg(ids: number, p: number, len: number): void {
    if (ids === this.scratch) return
    this.ex.edgeless_mem_free(ids, SLOTS)
    if (len) this.ex.edgeless_mem_free(p, len)
  }

  private finishCall(rc: number, ids: number, p: number, len: number, lend: boolean): CallResult {
    let result: CallResult
    if (rc === 1) {
      // The guest has already freed the reply buffer (upstream's consume()); copy it out
      // before anything else runs in the guest, and never free it ourselves.
      const rp = this.readU32(ids + 32)
      const rl = this.readU32(ids + 36)
      result = lend && rl <= MAX_LENT_REPLY ? this.lentReply(rp, rl) : { kind: 'reply', data: this.read(rp, rl, 'the reply') }
    } else if (rc === 0) {
      result = NOREPLY_RESULT
    } else {
      result = errResult('call-err', `${this.label} answered Err (handle_call_asm returned ${rc})`, { name: this.host.name, code: rc })
    }
    this.freeMsg(ids, p, len)
    return result
  }
}

/** Copy `src` into `u8` at `p`: a loop for the short payloads of most messages (TypedArray#set costs more than a few byte stores). */
function put(u8: Uint8Array, src: Uint8Array, p: number): void {
  const n = src.length
  if (n > 16) u8.set(src, p)
  else for (let i = 0; i < n; i++) u8[p + i] = src[i]!
}

/**
 * Thrown by an import when the invocation is over a limit ({@link WasmGuest.charge}): out of
 * fuel, or past its clock. It unwinds the guest like a trap; the handler's catch names it.
 */
class LimitHit extends Error {
  constructor(readonly limit: 'fuel' | 'clock') {
    super(limit === 'fuel' ? 'out of fuel in a host call' : 'past maxInvocationMs in a host call')
  }
}

/** 1000000 -> "1,000,000". */
function fmt(n: number): string {
  return Number.isFinite(n) ? Math.floor(n).toLocaleString('en-US') : String(n)
}

function fmtBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`
  return `${n} bytes`
}

/**
 * A view into guest memory, made again only when the bytes it covers move: a guest calling or
 * logging from the same buffer in a loop gets the same view object (`subarray` costs about as
 * much as a small copy on this V8).
 */
class ReusedView {
  private view: Uint8Array | null = null
  /** The memory view `view` was made from (a grown memory gets a new one). */
  private base: Uint8Array | null = null

  of(u8: Uint8Array, p: number, l: number): Uint8Array {
    const v = this.view
    // (byteOffset counts from the buffer: a dense instance's view starts at its base.)
    if (v !== null && this.base === u8 && v.byteOffset === u8.byteOffset + p && v.length === l) return v
    this.base = u8
    return (this.view = u8.subarray(p, p + l))
  }
}
