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
   * Fuel per invocation (each handler call): function entries and loop iterations charge it;
   * running out traps with an `out-of-fuel` fault. `Infinity` disables metering (the module
   * is then not rewritten).
   */
  fuel: number
  /** Largest linear memory the guest may grow to, in bytes; growth beyond it traps (`out-of-memory`). `undefined`: no cap. */
  maxMemoryBytes: number | undefined
}

/** No metering, no cap: what a module gets when limits are not asked for. */
export const UNLIMITED: GuestLimits = Object.freeze({ fuel: Infinity, maxMemoryBytes: undefined })
