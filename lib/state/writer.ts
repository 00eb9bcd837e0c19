/**
 * Ordered, coalesced, retried writes of synced state to the stores, bounded in bytes, with
 * every failure and loss an event.
 * @packageDocumentation
 */
import type { StateStore } from './store'
import type { Clock } from '../clock'
import { EdgelessError } from '../errors'
import type { RuntimeEvents } from '../events'
import { isThenable } from '../guest'
import type { InstanceId } from '../ids'

/** Who a state belongs to (for events). @internal */
export interface StateOwner {
  readonly name: string
  readonly id: InstanceId
  /** Optimistic concurrency: the version this instance last read or wrote; `undefined` = not versioned. */
  stateVersion: number | undefined
  /** Told when the store acknowledged `data` (passivation drops the in-memory copy only then). */
  stateWritten?(data: Uint8Array): void
}

/**
 * How state writes behave when a store fails.
 *
 * @example
 * ```ts
 * new Runtime({ stateWrites: { retryInitialMs: 100, retryMaxMs: 10_000, maxBufferedBytes: 256 << 20 } })
 * ```
 */
export interface StateWriteOptions {
  /** First retry delay after a failed write, ms (doubles per attempt). Default 50. */
  retryInitialMs?: number
  /** Longest retry delay, ms. Default 5000. */
  retryMaxMs?: number
  /** Bytes of state waiting to be written, across all state ids, before new writes are refused (reported as `state-lost`). Default 64 MiB. */
  maxBufferedBytes?: number
  /** How long stopping an instance (or shutting down) waits for its pending writes, ms, before reporting them lost. Default 5000. */
  flushTimeoutMs?: number
}

interface Entry {
  owner: StateOwner
  store: StateStore
  /** The newest value not yet handed to the store. */
  pending: Uint8Array | null
  /** The value the store is writing now. */
  inflight: Uint8Array | null
  attempt: number
  timer: unknown
  lastError: EdgelessError | undefined
  waiters: Array<() => void>
}

type Emit = <K extends keyof RuntimeEvents>(name: K, ...args: RuntimeEvents[K]) => void

/**
 * Writes `sync`ed state to stores without ever blocking a mailbox and without losing a write
 * silently. Per state id: one write in flight at a time, in order; a burst coalesces to the
 * newest value (newest wins). A failed write is retried with exponential backoff (newer
 * values replace the one being retried); each failure is a `state-sync-failed` event. Pending
 * bytes are bounded; a write that does not fit, or that is still pending when a flush times
 * out, is a `state-lost` event carrying the value. With optimistic concurrency, a write whose
 * expected version is stale is not made: a `state-conflict` event instead.
 * @internal
 */
export class StateWriter {
  private readonly entries = new Map<string, Entry>()
  private bufferedBytes = 0
  private readonly retryInitialMs: number
  private readonly retryMaxMs: number
  private readonly maxBufferedBytes: number
  readonly flushTimeoutMs: number

  constructor(
    private readonly clock: Clock,
    private readonly emit: Emit,
    o: StateWriteOptions = {},
  ) {
    this.retryInitialMs = o.retryInitialMs ?? 50
    this.retryMaxMs = o.retryMaxMs ?? 5000
    this.maxBufferedBytes = o.maxBufferedBytes ?? 64 * 1024 * 1024
    this.flushTimeoutMs = o.flushTimeoutMs ?? 5000
  }

  /** True while a write for `stateId` is pending, in flight or waiting to be retried. */
  has(stateId: string): boolean {
    return this.entries.has(stateId)
  }

  /** Bytes waiting to be written, across all state ids. */
  get buffered(): number {
    return this.bufferedBytes
  }

  write(owner: StateOwner, store: StateStore, stateId: string, data: Uint8Array): void {
    let e = this.entries.get(stateId)
    const replaced = e?.pending?.length ?? 0
    if (this.bufferedBytes - replaced + data.length > this.maxBufferedBytes) {
      const error = new EdgelessError(
        'state-store-failed',
        `The state of "${owner.name}" (state id ${stateId}, ${data.length} bytes) was not kept: ${this.bufferedBytes} bytes of state are already waiting for the store (limit ${this.maxBufferedBytes}). The store is down or too slow; raise stateWrites.maxBufferedBytes or fix the store.`,
        { stateId },
      )
      this.emit('state-lost', { name: owner.name, instance: owner.id, stateId, data, error })
      return
    }
    if (!e) {
      e = { owner, store, pending: null, inflight: null, attempt: 0, timer: null, lastError: undefined, waiters: [] }
      this.entries.set(stateId, e)
    }
    this.bufferedBytes += data.length - replaced
    e.owner = owner
    e.pending = data
    if (e.inflight === null && e.timer === null) this.pump(stateId, e)
  }

  private pump(stateId: string, e: Entry): void {
    const data = e.pending
    if (data === null) {
      this.finish(stateId, e)
      return
    }
    e.pending = null
    e.inflight = data
    const expected = e.owner.stateVersion
    let r: unknown
    try {
      r = expected !== undefined && e.store.setIfVersion ? e.store.setIfVersion(stateId, data, expected) : e.store.set(stateId, data)
    } catch (err) {
      this.failed(stateId, e, err)
      return
    }
    if (isThenable(r))
      r.then(
        (v) => this.written(stateId, e, v),
        (err: unknown) => this.failed(stateId, e, err),
      )
    else this.written(stateId, e, r)
  }

  private written(stateId: string, e: Entry, result: unknown): void {
    // Abandoned by a flush timeout while in flight: already reported as lost.
    if (this.entries.get(stateId) !== e || e.inflight === null) return
    const data = e.inflight
    e.inflight = null
    this.bufferedBytes -= data.length
    if (result !== null && typeof result === 'object' && 'conflict' in result) {
      const current = (result as { conflict: number }).conflict
      const error = new EdgelessError(
        'state-conflict',
        `The state of "${e.owner.name}" (state id ${stateId}) changed in the store since this instance read it (expected version ${e.owner.stateVersion}, found ${current}); this write was not made, so the other update is not lost. Restart the instance to reload the state, or give the runtimes distinct state ids.`,
        { stateId, expected: e.owner.stateVersion, current },
      )
      this.emit('state-conflict', { name: e.owner.name, instance: e.owner.id, stateId, expected: e.owner.stateVersion ?? 0, current, data, error })
    } else {
      if (typeof result === 'number' && e.owner.stateVersion !== undefined) e.owner.stateVersion = result
      e.owner.stateWritten?.(data)
      this.emit('state-written', {
        name: e.owner.name,
        instance: e.owner.id,
        stateId,
        bytes: data.length,
        ...(e.attempt > 0 ? { attempts: e.attempt + 1 } : {}),
      })
    }
    e.attempt = 0
    e.lastError = undefined
    this.pump(stateId, e)
  }

  private failed(stateId: string, e: Entry, err: unknown): void {
    if (this.entries.get(stateId) !== e || e.inflight === null) return
    const data = e.inflight
    e.inflight = null
    // Retry the failed value unless a newer one arrived meanwhile (newest wins).
    if (e.pending === null) e.pending = data
    else this.bufferedBytes -= data.length
    e.attempt++
    const delay = Math.min(this.retryMaxMs, this.retryInitialMs * 2 ** (e.attempt - 1))
    const msg = (err as Error)?.message ?? String(err)
    e.lastError = new EdgelessError(
      'state-store-failed',
      `Writing the state of "${e.owner.name}" (state id ${stateId}) failed (attempt ${e.attempt}): ${msg}. It is kept and retried in ${delay} ms; fix the store.`,
      { stateId, attempt: e.attempt },
      { cause: err },
    )
    this.emit('state-sync-failed', { name: e.owner.name, instance: e.owner.id, stateId, attempt: e.attempt, retryInMs: delay, error: e.lastError })
    e.timer = this.clock.setTimeout(() => {
      e.timer = null
      if (this.entries.get(stateId) === e) this.pump(stateId, e)
    }, delay)
  }

  private finish(stateId: string, e: Entry): void {
    if (this.entries.get(stateId) === e) this.entries.delete(stateId)
    const ws = e.waiters
    e.waiters = []
    for (const w of ws) w()
  }

  /**
   * Resolves true once nothing is pending for `stateId`. After `timeoutMs` it gives up: what
   * is still pending is reported as `state-lost` (with the value) and dropped; resolves false.
   */
  flush(stateId: string, timeoutMs = this.flushTimeoutMs): Promise<boolean> {
    const e = this.entries.get(stateId)
    if (!e) return Promise.resolve(true)
    return new Promise((resolve) => {
      let timer: unknown = null
      const done = () => {
        if (timer !== null) this.clock.clearTimeout(timer)
        resolve(true)
      }
      e.waiters.push(done)
      if (!Number.isFinite(timeoutMs)) return
      timer = this.clock.setTimeout(() => {
        const i = e.waiters.indexOf(done)
        if (i < 0) return
        e.waiters.splice(i, 1)
        this.abandon(stateId, e)
        resolve(false)
      }, timeoutMs)
    })
  }

  /** Stop retrying `stateId` and report what was not written. */
  private abandon(stateId: string, e: Entry): void {
    if (this.entries.get(stateId) !== e) return
    if (e.timer !== null) this.clock.clearTimeout(e.timer)
    e.timer = null
    const data = e.pending ?? e.inflight
    if (e.pending) this.bufferedBytes -= e.pending.length
    if (e.inflight) this.bufferedBytes -= e.inflight.length
    e.pending = null
    // An in-flight write may still land; its result is ignored (the entry is gone).
    e.inflight = null
    this.entries.delete(stateId)
    if (data) {
      const error = new EdgelessError(
        'state-store-failed',
        `The state of "${e.owner.name}" (state id ${stateId}, ${data.length} bytes) could not be written before the flush timeout${e.lastError ? `; last error: ${e.lastError.message}` : ''}. The value is in this event; the store did not get it.`,
        { stateId },
      )
      this.emit('state-lost', { name: e.owner.name, instance: e.owner.id, stateId, data, error })
    }
    const ws = e.waiters
    e.waiters = []
    for (const w of ws) w()
  }
}
