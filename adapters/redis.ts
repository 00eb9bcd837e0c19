/**
 * `edgeless/adapters/redis`: a state store in Redis through ioredis (an optional peer,
 * loaded on first use), with versions.
 * @packageDocumentation
 */
import type { Redis, RedisOptions } from 'ioredis'
import type { AsyncVersionedStore } from '../lib/state/store'

export type { AsyncVersionedStore, StateStore } from '../lib/state/store'
import { closeRedisClient, importIoredis, shownUrl } from '../lib/node/redis-client'

/**
 * Options of {@link redisStore}. Give `url` or `client`, not both (neither: the local server).
 *
 * @example
 * ```ts
 * const options: RedisStoreOptions = { url: 'redis://:secret@cache:6379/2', prefix: 'shop:state:' }
 * const store = redisStore(options)
 * ```
 */
export interface RedisStoreOptions {
  /**
   * The server, as ioredis accepts it: `redis://[:password@]host:port[/db]`, `rediss://` for
   * TLS. Default `redis://127.0.0.1:6379`. The store opens its own connection on first use.
   */
  url?: string
  /**
   * A connection you own (an ioredis `Redis`, not a `Cluster`). The store uses it as it is,
   * never connects it unless it is still waiting for its first connect (`lazyConnect`), and
   * never closes it: `dispose()` leaves it open. It must not have a `keyPrefix` (use `prefix`).
   */
  client?: Redis
  /** Put before every state id to make its key (default `edgeless:state:`). Also what `list()` scans for. */
  prefix?: string
  /**
   * How long a command waits for a connection being opened before it fails (default 2000 ms).
   * Applies to the store's own connection; also its TCP connect timeout.
   */
  connectTimeoutMs?: number
  /**
   * How long a command on the store's own connection waits for its answer before it fails
   * (default 10000 ms; `0` for no limit). Catches a server that stopped answering without
   * closing the connection. A command that timed out may still be applied later.
   */
  commandTimeoutMs?: number
  /** The name of the store's own connection, shown by `CLIENT LIST` on the server (default `edgeless:state-store`). */
  connectionName?: string
}

/**
 * The store {@link redisStore} returns: every method returns a promise, and versions,
 * `list` and `dispose` are always there.
 *
 * @example
 * ```ts
 * const store: RedisStore = redisStore({ url: 'redis://127.0.0.1:6379' })
 * const v = await store.setIfVersion('counter', new Uint8Array([1]), 0) // 1, or { conflict: n }
 * ```
 */
export interface RedisStore extends AsyncVersionedStore {
  /** The key prefix in use. */
  readonly prefix: string
}

const DEFAULT_URL = 'redis://127.0.0.1:6379'
const DEFAULT_PREFIX = 'edgeless:state:'
const CONNECT_TIMEOUT_MS = 2000
const COMMAND_TIMEOUT_MS = 10_000
/** Background reconnection backoff: 200 ms, 400 ms, ... capped at this. */
const MAX_RECONNECT_DELAY_MS = 2000
/** Keys asked for per SCAN round trip (a hint to the server, not a limit). */
const SCAN_COUNT = 1000

// Both scripts make exactly one write (a single HSET of both fields), so neither can leave a
// value with a stale version behind: a Lua script is atomic, but it is not rolled back when a
// later command in it fails. The version is formatted with %.0f: Redis would print a large
// Lua number with an exponent, which HGET/tonumber could not read back as an integer.

/** KEYS[1] = key, ARGV[1] = data. Returns the new version. */
const SET_SCRIPT = `
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') + 1
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'v', string.format('%.0f', v))
return v`

/** KEYS[1] = key, ARGV[1] = data, ARGV[2] = expected version (canonical decimal). Returns {1, new} or {0, current}. */
const SET_IF_VERSION_SCRIPT = `
local cur = redis.call('HGET', KEYS[1], 'v') or '0'
if cur ~= ARGV[2] then return {0, tonumber(cur) or -1} end
local v = tonumber(cur) + 1
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'v', string.format('%.0f', v))
return {1, v}`

/** A lone UTF-16 surrogate: such an id would be sent as U+FFFD and share its key with another id. */
const LONE_SURROGATE = /\p{Cs}/u

type RedisConstructor = new (url: string, options: RedisOptions) => Redis

/**
 * A state store on a Redis server (standalone or behind Sentinel; not Redis Cluster, whose
 * keys `list()` could not scan in one go), through `ioredis` — an optional peer dependency,
 * loaded on first use: `npm install ioredis`. Without it, the first call rejects saying so.
 *
 * Layout: one hash per state id at `<prefix><id>` (the id as UTF-8; `/`, `:`, spaces and any
 * Unicode are fine), with field `data` holding the value byte for byte and field `v` its
 * version as a decimal integer. Every write is one Lua script making one `HSET` of both
 * fields, so a value and its version always change together, and `setIfVersion` compares and
 * writes with nothing in between. Versions start at 1 and grow by one per write (`set` or a
 * successful `setIfVersion`); `delete` removes the key, so a re-created state starts at 1
 * again. `list()` walks the keys with `SCAN MATCH <prefix>*` (never `KEYS`, which blocks the
 * server), so it returns every id stored under the prefix, whoever wrote it.
 *
 * Order: commands go down one connection in call order (ioredis pipelines them), so writes
 * for an id land in call order and a `get` sees every write issued before it.
 *
 * Failure, on purpose fast: commands are never parked in an offline queue. Calls made while
 * a connection is being opened (the first call opens it) or set up wait for it, in call
 * order, for at most `connectTimeoutMs`; while the server is unreachable every other call
 * rejects at once. Either way the error names the server, so the runtime can buffer the
 * state and retry. A command in flight when the connection drops rejects too, though it may
 * have been applied; a retried `setIfVersion` may then meet its own write as a conflict. The
 * store's own connection, once lost, is reconnected in the background (backoff 200 ms up to
 * 2 s) until `dispose()`.
 *
 * Ids that are not well-formed UTF-16 (a lone surrogate) are rejected: UTF-8 cannot spell
 * them, so two of them would share a key.
 *
 * @example
 * ```ts
 * import { redisStore } from 'edgeless/adapters/redis'
 * const store = redisStore({ url: 'redis://127.0.0.1:6379', prefix: 'myapp:state:' })
 * const rt = new Runtime({ stateStores: { global: store } })
 * // ... later, after the runtime has stopped:
 * await store.dispose() // waits for commands in flight, then QUITs its connection
 * ```
 */
export function redisStore(options: RedisStoreOptions = {}): RedisStore {
  if (options.url !== undefined && options.client !== undefined) {
    throw new TypeError('redisStore: pass either url or client, not both (the url of a client is its own).')
  }
  const given = options.client
  if (given?.options.keyPrefix) {
    throw new TypeError(
      `redisStore: the client has keyPrefix ${JSON.stringify(String(given.options.keyPrefix))}, which SCAN does not apply; pass a client without it and set the store's prefix option instead.`,
    )
  }
  const prefix = options.prefix ?? DEFAULT_PREFIX
  const url = options.url ?? DEFAULT_URL
  const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
  const commandTimeoutMs = options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS
  const label = `redisStore(${given ? describeClient(given) : shownUrl(url)})`
  const pattern = globEscape(prefix) + '*'

  let client: Redis | undefined = given
  /** The last connection error of our own client, for messages ("Connection is closed." says little). */
  let lastError: Error | undefined
  /** Set while the driver is being loaded or a connection opened on a caller's behalf. */
  let opening: Promise<void> | undefined
  /**
   * Calls waiting for `opening`, in call order. They are sent in one synchronous loop once the
   * connection is ready, and while any wait, later calls queue behind them: a call can never
   * overtake an earlier one by finding the connection ready first.
   */
  const waiting: Array<{ send: (c: Redis) => void; fail: (e: Error) => void }> = []
  /** Every call not yet settled, for dispose(). */
  const inFlight = new Set<Promise<unknown>>()
  let disposing: Promise<void> | undefined

  /** A connection we may (re)open on a caller's behalf: ours when closed, or anyone's never opened. */
  function canOpen(c: Redis): boolean {
    return c.status === 'wait' || (c !== given && c.status === 'end')
  }

  /**
   * A connection worth waiting for (at most connectTimeoutMs): one we may open, or one being
   * set up right now (a client passed in just after `new Redis(url)`, a reconnection under
   * way). Not one waiting out its reconnection backoff: the server was just unreachable.
   */
  function worthWaiting(c: Redis): boolean {
    return canOpen(c) || c.status === 'connecting' || c.status === 'connect'
  }

  function failed(what: string, e: unknown): Error {
    return new Error(`${label}: ${what} failed: ${(e as Error)?.message ?? String(e)}`, { cause: e })
  }

  function notConnected(c: Redis): Error {
    const why = lastError?.message ?? `connection status "${c.status}"`
    const next = c === given ? 'the connection belongs to the caller' : 'reconnecting in the background'
    return new Error(`${label}: not connected to Redis (${why}); ${next}. Commands fail at once until it is back.`, { cause: lastError })
  }

  /** Run `send` on a ready connection, in call order; reject at once when there is none and none is being opened. */
  function run<T>(what: string, send: (c: Redis) => Promise<T>): Promise<T> {
    if (disposing) return Promise.reject(new Error(`${label}: ${what} after dispose()`))
    const c = client
    let p: Promise<T>
    if (c && c.status === 'ready' && waiting.length === 0) {
      p = send(c).catch((e: unknown) => {
        throw failed(what, e)
      })
    } else if (opening || !c || worthWaiting(c)) {
      p = new Promise<T>((resolve, reject) => {
        waiting.push({
          send: (c) => {
            send(c).then(resolve, (e: unknown) => reject(failed(what, e)))
          },
          fail: reject,
        })
      })
      open()
    } else {
      return Promise.reject(notConnected(c))
    }
    inFlight.add(p)
    const done = () => {
      inFlight.delete(p)
    }
    p.then(done, done)
    return p
  }

  function open(): void {
    opening ??= (async () => {
      const c = (client ??= await createClient())
      if (c.status === 'ready') return
      if (!worthWaiting(c)) throw notConnected(c)
      await readyWithin(c)
    })().then(
      () => {
        opening = undefined
        const c = client!
        const ready = waiting.splice(0)
        // Sent in one loop: ioredis writes each command to the socket as it is called.
        if (c.status === 'ready') for (const w of ready) w.send(c)
        else for (const w of ready) w.fail(notConnected(c))
      },
      (e: unknown) => {
        opening = undefined
        for (const w of waiting.splice(0)) w.fail(e as Error)
      },
    )
  }

  async function createClient(): Promise<Redis> {
    const RedisClass = await importIoredis<RedisConstructor>(
      (e) => new Error('redisStore needs the ioredis package, an optional peer dependency of edgeless: npm install ioredis', { cause: e }),
      () => new Error('redisStore could not find the Redis class in the installed ioredis package; install ioredis 5: npm install ioredis@5'),
    )
    const c = new RedisClass(url, {
      // We connect ourselves, so the first command can wait for it (see open()).
      lazyConnect: true,
      connectTimeout: connectTimeoutMs,
      ...(commandTimeoutMs > 0 ? { commandTimeout: commandTimeoutMs } : {}),
      // Fail fast: no offline queue, and a command in flight when the connection drops is
      // rejected at once rather than kept for a resend that could land after newer writes.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times: number) => (disposing ? null : Math.min(times * 200, MAX_RECONNECT_DELAY_MS)),
      // disconnect() on an already-closed socket arms this timer for a 'close' that never
      // comes; keep it short so a store disposed while Redis is down lets the process exit.
      disconnectTimeout: 200,
      // Shown by CLIENT LIST on the server.
      connectionName: options.connectionName ?? 'edgeless:state-store',
    })
    // Without a listener ioredis prints "Unhandled error event" on every failed reconnection.
    c.on('error', (e: Error) => {
      lastError = e
    })
    c.on('ready', () => {
      lastError = undefined
    })
    return c
  }

  /** Connect `c`, or wait for the connection under way, for at most connectTimeoutMs. */
  async function readyWithin(c: Redis): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined
    let unlisten = () => {}
    let attempt: Promise<void>
    if (canOpen(c)) {
      lastError = undefined
      attempt = c.connect()
    } else {
      attempt = new Promise<void>((resolve, reject) => {
        const ready = () => {
          unlisten()
          resolve()
        }
        const closed = () => {
          unlisten()
          reject(new Error('the connection closed'))
        }
        unlisten = () => {
          c.off('ready', ready)
          c.off('close', closed)
        }
        c.once('ready', ready)
        c.once('close', closed)
      })
    }
    try {
      await Promise.race([
        attempt,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no connection within ${connectTimeoutMs} ms`)), connectTimeoutMs)
        }),
      ])
    } catch (e) {
      // On failure our own client keeps trying in the background (retryStrategy).
      // (The 'error' listener sets lastError meanwhile; TS cannot see that and narrows it to undefined.)
      const seen = lastError as Error | undefined
      const why = seen?.message ?? (e as Error).message
      throw new Error(`${label}: cannot connect to Redis (${why}). Is the server running and reachable there?`, { cause: seen ?? e })
    } finally {
      clearTimeout(timer)
      unlisten()
    }
  }

  function key(id: string): string {
    if (LONE_SURROGATE.test(id)) {
      throw new TypeError(
        `${label}: state id ${JSON.stringify(id)} is not well-formed Unicode (it has a lone surrogate); such ids cannot be stored as UTF-8 keys.`,
      )
    }
    return prefix + id
  }

  /** A Buffer over `data`, for ioredis (a plain Uint8Array would be sent as "1,2,3"). */
  function bytes(data: Uint8Array, copy: boolean): Buffer {
    // The bytes are copied into the command when it is written, so a view is enough for a
    // command sent now; one that may wait for a connection takes its own copy.
    return copy ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  }

  /** Argument checks as rejections, like every other failure of these methods. */
  function checked<T>(body: () => Promise<T>): Promise<T> {
    try {
      return body()
    } catch (e) {
      return Promise.reject(e)
    }
  }

  const connected = () => client?.status === 'ready' && waiting.length === 0

  return {
    prefix,

    get(id) {
      return checked(() => {
        const k = key(id)
        // Copied out: ioredis hands out views into its socket chunks or a shared pool.
        return run(`get ${k}`, (c) => c.hgetBuffer(k, 'data')).then((b) => (b === null ? undefined : new Uint8Array(b)))
      })
    },

    set(id, data) {
      return checked(() => {
        const k = key(id)
        const buf = bytes(data, !connected())
        return run(`set ${k}`, (c) => c.eval(SET_SCRIPT, 1, k, buf)).then(() => undefined)
      })
    },

    delete(id) {
      return checked(() => {
        const k = key(id)
        return run(`delete ${k}`, (c) => c.del(k)).then(() => undefined)
      })
    },

    setIfVersion(id, data, expected) {
      return checked(() => {
        if (!Number.isSafeInteger(expected) || expected < 0) {
          throw new RangeError(`${label}: setIfVersion needs a version that is an integer >= 0 (0 = absent), got ${String(expected)}`)
        }
        const k = key(id)
        const buf = bytes(data, !connected())
        return run(`setIfVersion ${k}`, (c) => c.eval(SET_IF_VERSION_SCRIPT, 1, k, buf, String(expected))).then((r) => {
          const [won, version] = Array.isArray(r) ? (r as unknown[]) : []
          if (typeof version !== 'number' || version < 0)
            throw new Error(`${label}: setIfVersion ${k}: the key does not hold a state this store wrote (reply ${JSON.stringify(r)})`)
          return won === 1 ? version : { conflict: version }
        })
      })
    },

    getVersioned(id) {
      return checked(() => {
        const k = key(id)
        // One HMGET: the value and its version from the same moment.
        return run(`getVersioned ${k}`, (c) => c.hmgetBuffer(k, 'data', 'v')).then(([data, v]) => {
          if (!data) return undefined
          const version = Number(v?.toString('latin1'))
          if (!Number.isSafeInteger(version) || version < 1) throw new Error(`${label}: ${k} has no valid version field "v"; it was not written by this store`)
          return { data: new Uint8Array(data), version }
        })
      })
    },

    async list() {
      const ids = new Set<string>() // SCAN may return a key more than once
      const utf8 = new TextDecoder('utf-8', { fatal: true })
      let cursor = '0'
      do {
        const [next, keys] = await run(`list (SCAN ${pattern})`, (c) => c.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT))
        cursor = next.toString('latin1')
        for (const raw of keys) {
          let k: string
          try {
            k = utf8.decode(raw)
          } catch {
            continue // not UTF-8: not a key this store made
          }
          if (k.startsWith(prefix)) ids.add(k.slice(prefix.length))
        }
      } while (cursor !== '0')
      return [...ids]
    },

    dispose() {
      disposing ??= (async () => {
        // Calls already made finish (or fail) first; new ones are refused.
        while (inFlight.size > 0) await Promise.allSettled([...inFlight])
        await opening
        const c = client
        if (!c || c === given) return
        await closeRedisClient(c)
      })()
      return disposing
    },
  }
}

/** `prefix` as a SCAN MATCH pattern matching itself literally. */
function globEscape(prefix: string): string {
  return prefix.replace(/[\\*?[\]]/g, '\\$&')
}

/** host:port/db of a client someone passed in (its url is not kept by ioredis). */
function describeClient(c: Redis): string {
  const o = c.options
  if (o.path) return `unix:${o.path}`
  return `redis://${o.host ?? '127.0.0.1'}:${o.port ?? 6379}${o.db ? `/${o.db}` : ''}`
}
