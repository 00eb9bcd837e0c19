/**
 * `edgeless/adapters/indexeddb`: a state store in the browser's IndexedDB, with versions.
 * @packageDocumentation
 */
import type { AsyncVersionedStore } from '../lib/state/store'

export type { AsyncVersionedStore, StateStore } from '../lib/state/store'

/**
 * Options of {@link indexedDbStore}.
 *
 * @example
 * ```ts
 * const options: IndexedDbStoreOptions = { dbName: 'my-app', storeName: 'function-state' }
 * const store = indexedDbStore(options)
 * ```
 */
export interface IndexedDbStoreOptions {
  /** The IndexedDB database (default `edgeless`). Created on first use. */
  dbName?: string
  /**
   * The object store inside it holding the states (default `state`). Created on first use;
   * when the database exists without it, the database is upgraded to a new version to add it,
   * leaving its other object stores alone.
   */
  storeName?: string
  /**
   * Durability of writes (default `'strict'`): a write resolves once the browser reports it
   * flushed to disk, as the file store's fsync does. `'relaxed'` resolves once the write is
   * committed, before the flush: faster, and a crash of the OS (not of the page) may lose it.
   */
  durability?: 'strict' | 'relaxed' | 'default'
  /**
   * The IndexedDB implementation (default `globalThis.indexedDB`): for a worker's or another
   * frame's factory, or an implementation for Node such as `fake-indexeddb`.
   */
  indexedDB?: IDBFactory
}

/**
 * The store {@link indexedDbStore} returns: every method returns a promise, and versions,
 * `list` and `dispose` are always there.
 *
 * @example
 * ```ts
 * const store: IndexedDbStore = indexedDbStore()
 * const v = await store.setIfVersion('counter', new Uint8Array([1]), 0) // 1, or { conflict: n }
 * ```
 */
export interface IndexedDbStore extends AsyncVersionedStore {
  /** The database in use. */
  readonly dbName: string
  /** The object store in use. */
  readonly storeName: string
}

/** One stored state: the value (its own buffer, exactly its bytes) and its version. */
interface Entry {
  data: Uint8Array
  version: number
}

/** A transaction in progress: its object store, where to put the result, how to fail it. */
interface Tx<T> {
  os: IDBObjectStore
  done: (v: T) => void
  abort: (reason: unknown) => void
}

const DEFAULT_DB = 'edgeless'
const DEFAULT_STORE = 'state'

/**
 * A state store in the browser's IndexedDB, for pages, web workers and Electron renderers.
 * No dependencies; states survive reloads and browser restarts (as long as the origin's
 * storage is not cleared), and every tab of the origin sees the same states.
 *
 * Layout: one object store (`storeName`, default `state`) in one database (`dbName`, default
 * `edgeless`), keyed by the state id, each record `{ data: Uint8Array, version: number }`.
 * Values are copied when `set` is called (the caller may reuse its buffer at once) and each
 * read returns a fresh copy, byte for byte, whatever the bytes. Versions start at 1 and grow
 * by one per write; `set` and `setIfVersion` each read the version and write in one
 * `readwrite` transaction, so they are atomic, also against other tabs. `delete` removes the
 * record, so a re-created state starts at version 1 again.
 *
 * Order: IndexedDB runs transactions on one object store in the order they were created,
 * and calls create theirs in call order, so writes for an id land in call order and a `get`
 * sees every write issued before it.
 *
 * The database opens on first use (creating it, or upgrading it to add the object store);
 * without IndexedDB (Node without an implementation, some private modes) that first call
 * rejects saying so. When another connection upgrades the database (another tab, a newer
 * version of the page) this one closes, so it does not block it, and reopens on next use.
 * `dispose()` waits for the calls in flight and closes the connection; calls after it reject.
 * The data stays: delete it with `indexedDB.deleteDatabase(dbName)`.
 *
 * @example
 * ```ts
 * import { Runtime } from 'edgeless'
 * import { indexedDbStore } from 'edgeless/adapters/indexeddb'
 * const rt = new Runtime({ stateStore: indexedDbStore({ dbName: 'my-app' }) })
 * ```
 */
export function indexedDbStore(options: IndexedDbStoreOptions = {}): IndexedDbStore {
  const dbName = options.dbName ?? DEFAULT_DB
  const storeName = options.storeName ?? DEFAULT_STORE
  const durability = options.durability ?? 'strict'
  if (typeof dbName !== 'string' || dbName === '') throw new TypeError('indexedDbStore: dbName must be a non-empty string')
  if (typeof storeName !== 'string' || storeName === '') throw new TypeError('indexedDbStore: storeName must be a non-empty string')
  const label = `indexedDbStore(${JSON.stringify(dbName)}/${JSON.stringify(storeName)})`

  /** The open connection (or the opening of it); undefined before first use and after a versionchange. */
  let opening: Promise<IDBDatabase> | undefined
  let disposing: Promise<void> | undefined
  /** Calls in flight, so dispose() can wait for them. */
  const inFlight = new Set<Promise<unknown>>()

  const connection = (): Promise<IDBDatabase> => {
    if (opening) return opening
    let idb: IDBFactory
    try {
      idb = factory(options.indexedDB, label)
    } catch (e) {
      return Promise.reject(e)
    }
    const current: Promise<IDBDatabase> = open(idb, dbName, storeName, label).then(
      (db) => {
        // Another connection wants to upgrade (or delete) the database: step aside, reopen on next use.
        db.onversionchange = () => {
          db.close()
          if (opening === current) opening = undefined
        }
        return db
      },
      (e: unknown) => {
        // A failed open is not kept: the next call tries again.
        if (opening === current) opening = undefined
        throw e
      },
    )
    opening = current
    return current
  }

  /**
   * Run one transaction on the object store; resolves with what `body` reported through
   * `done` once the transaction has committed (for writes: durably, per `durability`).
   */
  function run<T>(what: string, id: string | undefined, mode: IDBTransactionMode, body: (t: Tx<T>) => void): Promise<T> {
    if (disposing) return Promise.reject(new Error(`${label}: ${what} after dispose()`))
    if (id !== undefined && typeof id !== 'string') return Promise.reject(new TypeError(`${label}: a state id must be a string, got ${typeof id}`))
    const p = connection().then(
      (db) =>
        new Promise<T>((resolve, reject) => {
          let result: T | undefined
          /** Why we aborted the transaction ourselves (a bad record): reported instead of AbortError. */
          let problem: unknown
          let tx: IDBTransaction
          try {
            tx = mode === 'readwrite' ? db.transaction(storeName, mode, { durability }) : db.transaction(storeName, mode)
          } catch (e) {
            reject(failure(what, id, e))
            return
          }
          tx.oncomplete = () => resolve(result as T)
          // Request errors bubble to the transaction and abort it: onabort reports once.
          tx.onabort = () => reject(failure(what, id, problem ?? tx.error ?? new Error('transaction aborted')))
          const t: Tx<T> = {
            os: tx.objectStore(storeName),
            done: (v) => {
              result = v
            },
            abort: (e) => {
              problem ??= e
              try {
                tx.abort()
              } catch {
                /* already finishing */
              }
            },
          }
          try {
            body(t)
          } catch (e) {
            t.abort(e)
          }
        }),
    )
    inFlight.add(p)
    const forget = () => {
      inFlight.delete(p)
    }
    p.then(forget, forget)
    return p
  }

  const failure = (what: string, id: string | undefined, e: unknown) => {
    const message = e && typeof e === 'object' && 'message' in e ? `${String((e as Error).name)}: ${String((e as Error).message)}` : String(e)
    return new Error(`${label}: ${what}${id === undefined ? '' : ` ${JSON.stringify(id)}`} failed: ${message}`, { cause: e })
  }

  /** The record at `id` (as this transaction sees it), then `next`, inside the transaction. */
  const read = <T>(t: Tx<T>, id: string, next: (e: Entry | undefined) => void) => {
    const req = t.os.get(id)
    req.onsuccess = () => {
      try {
        next(entry(req.result, label, id))
      } catch (e) {
        t.abort(e)
      }
    }
  }

  /** Write `data` as the next version of `id`, inside the transaction; reports the new version. */
  const put = (t: Tx<number | { conflict: number }> | Tx<number>, id: string, data: Uint8Array, current: Entry | undefined) => {
    const version = (current?.version ?? 0) + 1
    const record: Entry = { data, version }
    t.os.put(record, id).onsuccess = () => (t as Tx<number>).done(version)
  }

  const checkExpected = (expected: number) => {
    if (!Number.isSafeInteger(expected) || expected < 0) {
      throw new RangeError(`${label}: setIfVersion needs a version that is an integer >= 0 (0 = absent), got ${String(expected)}`)
    }
  }

  return {
    dbName,
    storeName,
    get: (id) => run<Uint8Array | undefined>('get', id, 'readonly', (t) => read(t, id, (e) => t.done(e?.data))),
    set(id, data) {
      let copy: Uint8Array
      try {
        copy = own(data, label)
      } catch (e) {
        return Promise.reject(e)
      }
      return run<number>('set', id, 'readwrite', (t) => read(t, id, (e) => put(t, id, copy, e))).then(() => undefined)
    },
    delete: (id) =>
      run<void>('delete', id, 'readwrite', (t) => {
        t.os.delete(id)
      }),
    list: () =>
      run<string[]>('list', undefined, 'readonly', (t) => {
        const req = t.os.getAllKeys()
        req.onsuccess = () => t.done(req.result.filter((k): k is string => typeof k === 'string'))
      }),
    setIfVersion(id, data, expected) {
      let copy: Uint8Array
      try {
        checkExpected(expected)
        copy = own(data, label)
      } catch (e) {
        return Promise.reject(e)
      }
      return run<number | { conflict: number }>('setIfVersion', id, 'readwrite', (t) =>
        read(t, id, (e) => {
          const current = e?.version ?? 0
          if (current !== expected) t.done({ conflict: current })
          else put(t, id, copy, e)
        }),
      )
    },
    getVersioned: (id) =>
      run<{ data: Uint8Array; version: number } | undefined>('getVersioned', id, 'readonly', (t) =>
        read(t, id, (e) => t.done(e && { data: e.data, version: e.version })),
      ),
    dispose() {
      disposing ??= (async () => {
        await Promise.allSettled([...inFlight])
        const o = opening
        opening = undefined
        if (o) {
          try {
            ;(await o).close()
          } catch {
            /* never opened: nothing to close */
          }
        }
      })()
      return disposing
    },
  }
}

/** A copy of the caller's bytes with a buffer of its own, exactly their length (a view's neighbours are not stored). */
function own(data: Uint8Array, label: string): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError(`${label}: a value must be a Uint8Array, got ${data === null ? 'null' : typeof data}`)
  return new Uint8Array(data)
}

/** A stored record as an Entry (its data a fresh Uint8Array: each read clones it), or undefined. */
function entry(value: unknown, label: string, id: string): Entry | undefined {
  if (value === undefined) return undefined
  const v = value as Partial<Entry> | null
  const data = v?.data
  if (v && typeof v.version === 'number' && data instanceof Uint8Array) return { data, version: v.version }
  // Written by something else (a plain ArrayBuffer, another layout): say so rather than guess.
  throw new Error(
    `${label}: the record at ${JSON.stringify(id)} is not an edgeless state ({ data: Uint8Array, version: number }); is another library using this object store?`,
  )
}

function factory(given: IDBFactory | undefined, label: string): IDBFactory {
  const f = given ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB
  if (!f)
    throw new Error(
      `${label}: IndexedDB is not available here (no globalThis.indexedDB). Use it in a browser, a web worker or an Electron renderer, or pass { indexedDB } (e.g. fake-indexeddb in Node).`,
    )
  return f
}

/** Open the database, creating the object store when missing (by upgrading to the next version). */
async function open(idb: IDBFactory, dbName: string, storeName: string, label: string): Promise<IDBDatabase> {
  const request = (version?: number) =>
    new Promise<IDBDatabase>((resolve, reject) => {
      let req: IDBOpenDBRequest
      try {
        req = version === undefined ? idb.open(dbName) : idb.open(dbName, version)
      } catch (e) {
        reject(e)
        return
      }
      req.onupgradeneeded = () => {
        const db = req.result
        if (!db.objectStoreNames.contains(storeName)) db.createObjectStore(storeName)
      }
      req.onsuccess = () => resolve(req.result)
      req.onerror = () => reject(req.error)
      // Another connection holds an older version open and has not closed on versionchange:
      // the request waits until it does (this is reported, not fatal).
      req.onblocked = () => undefined
    })
  try {
    let db = await request()
    for (let attempt = 0; !db.objectStoreNames.contains(storeName); attempt++) {
      // The database exists without our object store: add it with an upgrade to the next
      // version. Another connection may upgrade it first (VersionError): look again.
      if (attempt === 3) throw new Error(`the object store "${storeName}" is still missing after upgrading`)
      const next = db.version + 1
      db.close()
      try {
        db = await request(next)
      } catch (e) {
        if ((e as { name?: unknown } | null)?.name !== 'VersionError') throw e
        db = await request()
      }
    }
    return db
  } catch (e) {
    const message = e && typeof e === 'object' && 'message' in e ? `${String((e as Error).name)}: ${String((e as Error).message)}` : String(e)
    throw new Error(`${label}: cannot open the database: ${message}`, { cause: e })
  }
}
