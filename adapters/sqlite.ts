/**
 * `edgeless/adapters/sqlite`: a state store in an SQLite file through better-sqlite3 (an
 * optional peer, loaded on first use), with versions.
 * @packageDocumentation
 */
import type BetterSqlite3 from 'better-sqlite3'
import type { AsyncVersionedStore } from '../lib/state/store'

export type { AsyncVersionedStore, StateStore } from '../lib/state/store'

/** A better-sqlite3 connection. */
type Database = BetterSqlite3.Database
type DatabaseConstructor = typeof BetterSqlite3

/**
 * Options of {@link sqliteStore}: a database file for the store to open (and close), or a
 * connection you already have (and keep).
 *
 * @example
 * ```ts
 * const own: SqliteStoreOptions = { path: './state.db' }
 * const shared: SqliteStoreOptions = { db: new Database('./app.db'), table: 'function_state' }
 * ```
 */
export type SqliteStoreOptions =
  | {
      /** The database file, created when missing (its folder must exist), or `':memory:'` for a private in-memory database. */
      path: string
      /** The table holding the states (default `edgeless_state`), created when missing. A plain SQL identifier. */
      table?: string
    }
  | {
      /**
       * An open better-sqlite3 connection. The store neither changes its settings (journal
       * mode, `synchronous`: they are the owner's choice, and the journal mode is a property of
       * the file that every other user of it sees) nor closes it.
       */
      db: Database
      /** The table holding the states (default `edgeless_state`), created when missing. A plain SQL identifier. */
      table?: string
    }

/**
 * The store {@link sqliteStore} returns: every method returns a promise, and versions, `list`
 * and `dispose` are always there.
 *
 * @example
 * ```ts
 * const store: SqliteStore = sqliteStore({ path: './state.db' })
 * const v = await store.setIfVersion('counter', new Uint8Array([1]), 0) // 1, or { conflict: n }
 * ```
 */
export interface SqliteStore extends AsyncVersionedStore {
  /** The table in use. */
  readonly table: string
}

const DEFAULT_TABLE = 'edgeless_state'
/** Table names are spliced into SQL, so only plain identifiers (no quoting games). */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/
/** A lone UTF-16 surrogate: such an id would be bound as U+FFFD and share its row with another id. */
const LONE_SURROGATE = /\p{Cs}/u

interface Statements {
  get(id: string): Buffer | undefined
  getVersioned(id: string): { data: Buffer; version: number } | undefined
  set(id: string, data: Uint8Array): void
  setIfVersion(id: string, data: Uint8Array, expected: number): number | { conflict: number }
  delete(id: string): void
  list(): string[]
}

/**
 * A state store in one SQLite database, through `better-sqlite3` — an optional peer
 * dependency, loaded on first use: `npm install better-sqlite3`. Without it, the first call
 * rejects saying so. Node only.
 *
 * Layout: one table (default `edgeless_state`) holding every state, a row per id:
 * `(id TEXT PRIMARY KEY, data BLOB NOT NULL, version INTEGER NOT NULL)`. The value is kept
 * byte for byte, any Unicode id works (ids are compared byte for byte: `A` and `a` differ).
 * Versions start at 1 and grow by one per write (`set` or a successful `setIfVersion`);
 * `delete` removes the row, so a re-created state starts at 1 again. Each write is one
 * statement (an upsert); `setIfVersion` runs its conditional write, and on a conflict the
 * read of the current version, in one `BEGIN IMMEDIATE` transaction, so a writer in another
 * process cannot slip in between.
 *
 * A database the store opens from `path` is switched to WAL (readers do not block the
 * writer, and a write costs one append) with `synchronous = NORMAL`: a crash of the process
 * or the OS never loses or tears a committed write, but a power loss may roll back the last
 * few. Other processes may use the same file; a write waits up to 5 s for another's lock.
 *
 * Every method returns a promise: the first call loads the driver and opens the database,
 * and calls made meanwhile wait for it and then run in call order. After that the work is
 * synchronous, on the calling thread (SQLite is fast; a 16 MiB value takes milliseconds).
 * A value passed to `set` is copied into the database before the call returns (or, while the
 * database is still being opened, copied first), so the caller may reuse its buffer.
 *
 * Ids that are not well-formed UTF-16 (a lone surrogate) are rejected: UTF-8 text cannot
 * spell them, so two of them would share a row.
 *
 * @example
 * ```ts
 * import { sqliteStore } from 'edgeless/adapters/sqlite'
 * const store = sqliteStore({ path: './state.db' })
 * const rt = new Runtime({ stateStore: store })
 * // ... later, after the runtime has stopped:
 * await store.dispose() // closes the database it opened
 * ```
 */
export function sqliteStore(options: SqliteStoreOptions): SqliteStore {
  const table = options.table ?? DEFAULT_TABLE
  if (!IDENTIFIER.test(table)) throw new TypeError(`sqliteStore: table must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(table)}`)
  const given = 'db' in options ? options.db : undefined
  if ('db' in options && !given) throw new TypeError('sqliteStore: db is not a better-sqlite3 Database')
  const path = given ? given.name : (options as { path: unknown }).path
  if (typeof path !== 'string' || path === '') throw new TypeError(`sqliteStore: path must name a database file (or ':memory:'), got ${JSON.stringify(path)}`)
  const label = `sqliteStore(${path})`

  /** Opening, shared by every call made before it finished; forgotten on failure, so the next call tries again. */
  let ready: Promise<Statements> | undefined
  /** Set once open: from then on a value is copied into SQLite within the call. */
  let statements: Statements | undefined
  let db: Database | undefined
  let disposing: Promise<void> | undefined

  function init(): Promise<Statements> {
    ready ??= (async () => {
      const d = given ?? (await openDatabase(path as string, label))
      db = d
      try {
        return (statements = prepare(d, table))
      } catch (e) {
        if (!given) d.close()
        throw new Error(`${label}: cannot set up table ${table}: ${(e as Error).message}`, { cause: e })
      }
    })().catch((e: unknown) => {
      ready = undefined
      throw e
    })
    return ready
  }

  /** Calls waiting for the database to open: while any wait, later calls queue behind them. */
  let waiters = 0
  /** True when a call made now runs within the call: open, and nobody ahead of it. */
  const immediate = () => statements !== undefined && waiters === 0

  /**
   * Run `body` in call order: at once when {@link immediate}, else after the opening, all
   * waiting calls chained on the same promise (so they resume in the order they were made).
   */
  function use<T>(what: string, id: string | undefined, body: (s: Statements) => T): Promise<T> {
    const run = (s: Statements): T => {
      try {
        return body(s)
      } catch (e) {
        throw new Error(`${label}: ${what}${id === undefined ? '' : ` ${JSON.stringify(id)}`} failed: ${(e as Error).message}`, { cause: e })
      }
    }
    try {
      if (disposing) throw new Error(`${label}: ${what} after dispose()`)
      if (id !== undefined && LONE_SURROGATE.test(id)) {
        throw new TypeError(
          `${label}: state id ${JSON.stringify(id)} is not well-formed Unicode (it has a lone surrogate); such ids cannot be stored as UTF-8 text.`,
        )
      }
      if (immediate()) return Promise.resolve(run(statements!))
    } catch (e) {
      return Promise.reject(e)
    }
    waiters++
    return init().then(
      (s) => {
        waiters--
        return run(s)
      },
      (e: unknown) => {
        waiters--
        throw e
      },
    )
  }

  /** The caller's bytes when they are written within this call, else a copy (see the function doc). */
  const own = (data: Uint8Array) => (immediate() ? data : data.slice())

  return {
    table,
    get: (id) =>
      use('get', id, (s) => {
        const b = s.get(id)
        // better-sqlite3 makes a fresh Buffer per read; a plain Uint8Array view of it, no copy.
        return b === undefined ? undefined : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
      }),
    set(id, data) {
      const d = own(data)
      return use('set', id, (s) => s.set(id, d))
    },
    delete: (id) => use('delete', id, (s) => s.delete(id)),
    list: () => use('list', undefined, (s) => s.list()),
    setIfVersion(id, data, expected) {
      if (!Number.isSafeInteger(expected) || expected < 0) {
        return Promise.reject(new RangeError(`${label}: setIfVersion needs a version that is an integer >= 0 (0 = absent), got ${String(expected)}`))
      }
      const d = own(data)
      return use('setIfVersion', id, (s) => s.setIfVersion(id, d, expected))
    },
    getVersioned: (id) =>
      use('getVersioned', id, (s) => {
        const row = s.getVersioned(id)
        return row && { data: new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength), version: row.version }
      }),
    dispose() {
      disposing ??= (async () => {
        // Calls made before dispose() wait on `ready` too, ahead of us: they finish first.
        try {
          await ready
        } catch {
          // Never opened: nothing to close.
        }
        if (!given && db?.open) db.close()
      })()
      return disposing
    },
  }
}

async function openDatabase(path: string, label: string): Promise<Database> {
  let mod: unknown
  try {
    mod = await import('better-sqlite3')
  } catch (e) {
    throw new Error('sqliteStore needs the better-sqlite3 package, an optional peer dependency of edgeless: npm install better-sqlite3', { cause: e })
  }
  // ESM sees the CommonJS module as `default` (the class itself); some bundlers give the class.
  const m = mod as { default?: unknown }
  const Ctor = [m.default, (m.default as { default?: unknown } | undefined)?.default, mod].find((c) => typeof c === 'function')
  if (!Ctor)
    throw new Error(
      'sqliteStore could not find the Database class in the installed better-sqlite3 package; install better-sqlite3 12: npm install better-sqlite3@12',
    )
  let d: Database
  try {
    // The native addon loads here: a build for another Node version fails at this point.
    d = new (Ctor as DatabaseConstructor)(path)
  } catch (e) {
    throw new Error(`${label}: cannot open the database: ${(e as Error).message}`, { cause: e })
  }
  try {
    // WAL: one append per commit and readers never block the writer. NORMAL: no fsync per
    // commit (only at checkpoints) — safe from crashes, may lose the last commits on power loss.
    d.pragma('journal_mode = WAL')
    d.pragma('synchronous = NORMAL')
  } catch (e) {
    d.close()
    throw new Error(`${label}: cannot switch the database to WAL mode: ${(e as Error).message}`, { cause: e })
  }
  return d
}

function prepare(d: Database, table: string): Statements {
  d.exec(`CREATE TABLE IF NOT EXISTS "${table}" (id TEXT PRIMARY KEY, data BLOB NOT NULL, version INTEGER NOT NULL)`)
  // safeIntegers(false): versions come back as numbers even if the owner of a passed-in
  // connection turned on BigInt results for it.
  const stmt = (sql: string) => d.prepare(sql).safeIntegers(false)
  const get = stmt(`SELECT data FROM "${table}" WHERE id = ?`).pluck()
  const getVersioned = stmt(`SELECT data, version FROM "${table}" WHERE id = ?`)
  const upsert = stmt(`INSERT INTO "${table}" (id, data, version) VALUES (?, ?, 1) ON CONFLICT (id) DO UPDATE SET data = excluded.data, version = version + 1`)
  const insertNew = stmt(`INSERT INTO "${table}" (id, data, version) VALUES (?, ?, 1) ON CONFLICT (id) DO NOTHING`)
  const update = stmt(`UPDATE "${table}" SET data = ?, version = version + 1 WHERE id = ? AND version = ?`)
  const version = stmt(`SELECT version FROM "${table}" WHERE id = ?`).pluck()
  const del = stmt(`DELETE FROM "${table}" WHERE id = ?`)
  const list = stmt(`SELECT id FROM "${table}"`).pluck()
  const setIfVersion = d.transaction((id: string, data: Uint8Array, expected: number): number | { conflict: number } => {
    const changes = expected === 0 ? insertNew.run(id, data).changes : update.run(data, id, expected).changes
    if (changes === 1) return expected + 1
    return { conflict: (version.get(id) as number | undefined) ?? 0 }
  })
  return {
    get: (id) => get.get(id) as Buffer | undefined,
    getVersioned: (id) => getVersioned.get(id) as { data: Buffer; version: number } | undefined,
    set: (id, data) => {
      upsert.run(id, data)
    },
    // IMMEDIATE: take the write lock up front, so the conflict read sees what the write saw.
    setIfVersion: (id, data, expected) => setIfVersion.immediate(id, data, expected),
    delete: (id) => {
      del.run(id)
    },
    list: () => list.all() as string[],
  }
}
