/**
 * Limits a wasm guest runs under, so a runaway guest cannot take the host down.
 *
 * @example
 * ```ts
 * await rt.spawn({ name: 'f', module, fuel: 50_000_000, maxMemoryBytes: 16 * 1024 * 1024 })
 * ```
 */
export interface GuestLimits {
  /**
   * Fuel per invocation (each handler call, including the host's own edgeless_mem_alloc/free
   * calls around it, and across a suspension in a blocking call): function entries and loop
   * iterations charge it, each the number of wasm instructions of its region, so a unit is
   * about one instruction run (1e9 is roughly a second of guest work). Bulk memory
   * instructions (`memory.fill`, `memory.copy`, ...) also charge one unit per 4 bytes they
   * move, and every host call (an `env` import) 1,000 units plus one per 4 bytes it copies
   * (lib/wasm/meter.ts, lib/wasm/instance.ts). Running out traps with
   * an `out-of-fuel` crash. `Infinity` disables metering: the module is then not rewritten.
   * A module's start function runs (during instantiation) on a fixed budget of 1e9.
   * A precompiled `WebAssembly.Module` source cannot be rewritten and is never metered.
   */
  fuel: number
  /**
   * Largest linear memory the guest may grow to, in bytes (rounded down to 64 KiB pages);
   * the module's declared maximum is lowered to it, so growth beyond it fails, and the trap
   * that follows is reported as `out-of-memory`. A module whose initial memory is larger
   * fails to load (`invalid-module`). `undefined`: no cap.
   *
   * A cap bounds what the guest can commit, not the address space V8 reserves: on 64-bit
   * Node 20 every wasm memory reserves 10 GiB of virtual address space (4 GiB plus guard
   * regions, so bounds checks are free) whatever its declared maximum. Measured with 200
   * pong instances: VmSize grows by 10,241 MiB per instance without a maximum, with a 4 MiB
   * cap and with a 64 MiB cap alike, while RSS grows by ~40-55 KiB per instance. The 128 TiB
   * user address space thus holds about 13,000 live memories per process (the 13,081st
   * `new WebAssembly.Memory` failed with "could not allocate memory"), caps or not.
   */
  maxMemoryBytes: number | undefined
  /**
   * How long one invocation may hold the thread while it calls the host, in ms: checked at
   * host calls (every 32nd: the first check starts the clock), so a guest looping on
   * `cast`, `log`, `sync`... ends as a `deadline` crash even when each call is costly to the
   * host (an event per call to every listener) and fuel alone would let it run for seconds.
   * A run restarts the clock when a suspended invocation resumes: time spent waiting for a
   * call's answer does not count. Pure computation is bounded by `fuel`, not by this.
   * `undefined` or `Infinity`: no limit. Inline guests only (a worker has `deadlineMs`).
   */
  maxInvocationMs?: number
}

/** No metering, no cap: what a module gets when limits are not asked for. */
export const UNLIMITED: GuestLimits = Object.freeze({ fuel: Infinity, maxMemoryBytes: undefined, maxInvocationMs: Infinity })
