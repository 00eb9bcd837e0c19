// Every state store against the shared conformance suite (lib/testing/store-conformance.ts),
// then what only one adapter has: Redis's key layout, failing fast while the server is down
// and reconnecting after, SQLite's WAL file and persistence, atomic setIfVersion across
// connections and threads, and drivers that stay optional (loaded lazily, a clear error when
// missing).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import IORedis from 'ioredis'
import { build } from 'esbuild'
import { fileStore } from '../adapters/file'
import { memoryStore } from '../adapters/memory'
import { redisStore, type RedisStore } from '../adapters/redis'
import { sqliteStore, type SqliteStore } from '../adapters/sqlite'
import { testStateStore } from '../lib/testing/store-conformance'

const root = fileURLToPath(new URL('..', import.meta.url))
const REDIS_URL = 'redis://127.0.0.1:6379'
const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b))
const random = () => Math.random().toString(36).slice(2, 10)

/** Every temp folder of this file, removed at the end. */
const tmp = mkdtempSync(join(tmpdir(), 'edgeless-stores-'))
const tmpDir = () => mkdtempSync(join(tmp, 'd-'))

/** A plain client for looking at (and cleaning up) what the Redis store wrote. */
let admin: IORedis | undefined
function redisAdmin(): IORedis {
  admin ??= new IORedis(REDIS_URL, { maxRetriesPerRequest: 1 })
  return admin
}

/** Delete every key under `prefix` (SCAN, like the store's list()). */
async function dropPrefix(prefix: string): Promise<void> {
  const r = redisAdmin()
  let cursor = '0'
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', prefix.replace(/[\\*?[\]]/g, '\\$&') + '*', 'COUNT', 1000)
    cursor = next
    if (keys.length) await r.del(...keys)
  } while (cursor !== '0')
}

afterAll(async () => {
  await admin?.quit()
  rmSync(tmp, { recursive: true, force: true })
})

// ----- the conformance suite, once per adapter -----

testStateStore('memoryStore', () => memoryStore())

testStateStore('fileStore', () => fileStore({ dir: tmpDir() }), {
  cleanup: (s) => rm(s.dir, { recursive: true, force: true }),
})

testStateStore('redisStore', () => redisStore({ url: REDIS_URL, prefix: `edgeless-test:${random()}:` }), {
  cleanup: (s) => dropPrefix(s.prefix),
})

const sqliteDirs = new WeakMap<SqliteStore, string>()
testStateStore(
  'sqliteStore (file)',
  () => {
    const dir = tmpDir()
    const s = sqliteStore({ path: join(dir, 'state.db') })
    sqliteDirs.set(s, dir)
    return s
  },
  { cleanup: (s) => rm(sqliteDirs.get(s)!, { recursive: true, force: true }) },
)

testStateStore('sqliteStore (:memory:)', () => sqliteStore({ path: ':memory:' }))

const givenDbs = new WeakMap<SqliteStore, Database.Database>()
testStateStore(
  'sqliteStore (a db passed in, own table name)',
  () => {
    const db = new Database(':memory:')
    const s = sqliteStore({ db, table: 'function_state' })
    givenDbs.set(s, db)
    return s
  },
  {
    cleanup: (s) => {
      givenDbs.get(s)!.close()
    },
  },
)

// ----- drivers stay optional -----

/** The static imports of a TypeScript source: `import [type] ... from 'x'` and `import 'x'`. */
function staticImports(src: string): Array<{ typeOnly: boolean; from: string }> {
  const out: Array<{ typeOnly: boolean; from: string }> = []
  // [^'";]* cannot cross a string or statement end, so one match is one statement.
  for (const m of src.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?\bfrom\s*['"]([^'"]+)['"]/gm)) out.push({ typeOnly: !!m[2], from: m[3]! })
  for (const m of src.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) out.push({ typeOnly: false, from: m[1]! })
  return out
}

/** The file compiled as the build would (type-only imports erased), as an ES module. */
/** The adapter compiled as the package ships it: its own modules bundled in, the driver left out (it is the user's to install). */
async function transpiled(file: string, driver: string): Promise<string> {
  const out = await build({
    entryPoints: [join(root, 'adapters', file)],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: 'es2022',
    external: [driver],
  })
  return out.outputFiles[0]!.text
}

describe.each([
  ['redis.ts', 'ioredis', 'redisStore', `redisStore({ url: 'redis://127.0.0.1:6379' })`],
  ['sqlite.ts', 'better-sqlite3', 'sqliteStore', `sqliteStore({ path: ':memory:' })`],
])('adapters/%s loads %s lazily', (file, driver, factory, make) => {
  test('no static import of the driver, in the source or the compiled module', async () => {
    const src = await readFile(join(root, 'adapters', file), 'utf8')
    const imports = staticImports(src)
    expect(imports.some((i) => i.from === '../lib/state/store')).toBe(true) // the parser does see imports
    expect(imports.filter((i) => i.from === driver && !i.typeOnly)).toEqual([])
    const js = await transpiled(file, driver)
    // Loaded where it is used (the redis adapter's loader is shared with the redis resource).
    expect(js).toMatch(new RegExp(`await import\\(\\s*["']${driver}["']\\s*\\)`))
    expect(js).not.toMatch(new RegExp(`^\\s*(import|export)\\b[^;]*?['"]${driver}['"]`, 'm'))
    expect(js).not.toMatch(/\brequire\s*\(/)
  })

  test(`without the package: making the store works, the first call rejects with "npm install ${driver}"`, async () => {
    // The compiled adapter in a folder with no node_modules above it: the driver cannot be found.
    const dir = await mkdtemp(join(tmpdir(), 'edgeless-no-driver-'))
    try {
      await writeFile(join(dir, 'store.mjs'), await transpiled(file, driver))
      await writeFile(
        join(dir, 'main.mjs'),
        `
        import { ${factory} } from './store.mjs'
        const store = ${make}
        const results = []
        for (const call of [() => store.set('k', new Uint8Array([1])), () => store.get('k')]) {
          try { await call(); results.push('resolved') } catch (e) { results.push(e.message) }
        }
        await store.dispose()
        console.log(JSON.stringify(results))
      `,
      )
      const env = { ...process.env }
      delete env['NODE_PATH']
      delete env['NODE_OPTIONS']
      const r = spawnSync(process.execPath, [join(dir, 'main.mjs')], { cwd: dir, env, encoding: 'utf8', timeout: 20_000 })
      expect(r.stderr).toBe('')
      const results = JSON.parse(r.stdout) as string[]
      expect(results).toHaveLength(2)
      for (const m of results) expect(m).toContain(`npm install ${driver}`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

// ----- Redis -----

describe('redisStore', () => {
  const stores: RedisStore[] = []
  const make = (o: Parameters<typeof redisStore>[0] = {}) => {
    const s = redisStore({ url: REDIS_URL, prefix: `edgeless-test:${random()}:`, ...o })
    stores.push(s)
    return s
  }
  afterEach(async () => {
    for (const s of stores.splice(0)) {
      await s.dispose()
      await dropPrefix(s.prefix)
    }
  })

  test('layout: one hash per id at <prefix><id>, field data = the bytes, field v = the version', async () => {
    const store = make()
    const id = 'zustand/🦀/ü'
    const value = Uint8Array.from({ length: 256 }, (_, i) => 255 - i)
    await store.set(id, value)
    const key = store.prefix + id
    const r = redisAdmin()
    expect(await r.type(key)).toBe('hash')
    const h = await r.hgetallBuffer(key)
    expect(Object.keys(h).sort()).toEqual(['data', 'v'])
    expect(new Uint8Array(h['data']!)).toEqual(value)
    expect(h['v']!.toString()).toBe('1')
    await store.set(id, bytes('x'))
    expect(await r.hget(key, 'v')).toBe('2')
    expect(await store.setIfVersion(id, bytes('y'), 2)).toBe(3)
    expect(await r.hget(key, 'v')).toBe('3')
    // The default prefix.
    expect(redisStore().prefix).toBe('edgeless:state:')
  })

  test('list() matches the prefix literally (glob characters in it are escaped)', async () => {
    const base = `edgeless-test:${random()}:`
    const globby = make({ prefix: `${base}[a]*?\\` })
    const plain = make({ prefix: `${base}a` })
    await globby.set('mine', bytes('1'))
    await plain.set('theirs', bytes('2'))
    expect(await globby.list()).toEqual(['mine'])
    expect(await plain.list()).toEqual(['theirs'])
    await dropPrefix(base)
  })

  test('list() pages through many keys with SCAN', async () => {
    const store = make()
    const ids = Array.from({ length: 2500 }, (_, i) => `id-${i}`)
    await Promise.all(ids.map((id) => store.set(id, bytes(id))))
    expect((await store.list()).sort()).toEqual([...ids].sort())
  })

  test('Redis down: a call rejects within 2 s naming the url, the next ones at once; dispose resolves', async () => {
    const store = redisStore({ url: 'redis://127.0.0.1:1' })
    let t0 = Date.now()
    await expect(store.set('k', bytes('v'))).rejects.toThrow(/redisStore\(redis:\/\/127\.0\.0\.1:1\).*ECONNREFUSED/)
    expect(Date.now() - t0).toBeLessThan(2000)
    // The client now reconnects in the background; meanwhile calls fail without waiting.
    t0 = Date.now()
    await expect(store.get('k')).rejects.toThrow(/redis:\/\/127\.0\.0\.1:1/)
    await expect(store.setIfVersion('k', bytes('v'), 0)).rejects.toThrow(/redis:\/\/127\.0\.0\.1:1/)
    await expect(store.list()).rejects.toThrow(/redis:\/\/127\.0\.0\.1:1/)
    expect(Date.now() - t0).toBeLessThan(500)
    t0 = Date.now()
    await store.dispose()
    expect(Date.now() - t0).toBeLessThan(500)
    await expect(store.get('k')).rejects.toThrow(/after dispose/)
  })

  test('a server that accepts but never answers: rejects after connectTimeoutMs; a password in the url is not shown', async () => {
    const sockets = new Set<Socket>()
    const silent = createServer((sock) => {
      sockets.add(sock)
      sock.on('error', () => {})
    })
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    const port = (silent.address() as AddressInfo).port
    try {
      const store = redisStore({ url: `redis://:hunter2@127.0.0.1:${port}`, connectTimeoutMs: 300 })
      const t0 = Date.now()
      const e = await store.set('k', bytes('v')).then(
        () => undefined,
        (e: Error) => e,
      )
      const took = Date.now() - t0
      expect(took).toBeGreaterThanOrEqual(250)
      expect(took).toBeLessThan(1000)
      expect(e?.message).toContain(`redisStore(redis://:***@127.0.0.1:${port}): cannot connect to Redis (no connection within 300 ms)`)
      expect(e?.message).not.toContain('hunter2')
      // The connection is still being set up (no answer to its ready check): the next call
      // waits for it, again no longer than connectTimeoutMs.
      const t1 = Date.now()
      await expect(store.get('k')).rejects.toThrow(/no connection within 300 ms/)
      expect(Date.now() - t1).toBeLessThan(1000)
      await store.dispose()
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((r) => silent.close(r))
    }
  })

  test("calls made while it connects run in call order, with the caller's bytes as they were", async () => {
    const store = make()
    const buf = bytes('first')
    const writes = [store.set('k', buf), store.delete('k'), store.set('k', bytes('second'))]
    buf.fill(0) // reused by the caller before the connection is even open
    const got = store.get('k')
    await Promise.all(writes)
    expect(text(await got)).toBe('second')
    expect(await store.getVersioned('k')).toEqual({ data: bytes('second'), version: 1 })
  })

  test('a dropped connection: calls fail fast, then the store reconnects in the background', async () => {
    const name = `edgeless-test-${random()}`
    const store = make({ connectionName: name })
    await store.set('k', bytes('before'))
    const r = redisAdmin()
    const list = (await r.client('LIST')) as string
    const ours = list
      .split('\n')
      .filter((l) => l.includes(` name=${name} `))
      .map((l) => /\bid=(\d+)/.exec(l)![1]!)
    expect(ours).toHaveLength(1)
    await r.client('KILL', 'ID', ours[0]!)
    const t0 = Date.now()
    await expect(store.set('k', bytes('lost'))).rejects.toThrow(new RegExp(`redisStore\\(${REDIS_URL.replace(/[./]/g, '\\$&')}\\)`))
    expect(Date.now() - t0).toBeLessThan(1000)
    // Back within the backoff (200 ms first).
    let back = false
    for (let i = 0; i < 60 && !back; i++) {
      back = await store.set('k', bytes('after')).then(
        () => true,
        () => false,
      )
      if (!back) await new Promise((r) => setTimeout(r, 50))
    }
    expect(back).toBe(true)
    expect(text(await store.get('k'))).toBe('after')
  })

  test('setIfVersion is atomic across connections: four stores, compare-and-set increments, none lost', async () => {
    const prefix = `edgeless-test:${random()}:`
    const writers = Array.from({ length: 4 }, () => make({ prefix }))
    let conflicts = 0
    const PER = 50
    await Promise.all(
      writers.map(async (s) => {
        for (let i = 0; i < PER; i++) {
          for (;;) {
            const cur = await s.getVersioned('counter')
            const n = cur ? Number(text(cur.data)) : 0
            const r = await s.setIfVersion('counter', bytes(String(n + 1)), cur?.version ?? 0)
            if (typeof r === 'number') break
            conflicts++
          }
        }
      }),
    )
    const end = await writers[0]!.getVersioned('counter')
    expect({ value: text(end?.data), version: end?.version }).toEqual({ value: String(4 * PER), version: 4 * PER })
    console.log(`redis compare-and-set: ${4 * PER} increments by 4 connections, ${conflicts} conflicts retried`)
    expect(conflicts).toBeGreaterThan(0) // the writers really did race
  })

  test('a client passed in just after new Redis(url): the first call waits for it to be ready', async () => {
    const client = new IORedis(REDIS_URL)
    try {
      expect(client.status).toBe('connecting')
      const store = make({ url: undefined, client })
      await store.set('k', bytes('v'))
      expect(text(await store.get('k'))).toBe('v')
    } finally {
      await client.quit()
    }
  })

  test('a client passed in is used as it is, connected if still lazy, and left open by dispose', async () => {
    const client = new IORedis(REDIS_URL, { lazyConnect: true })
    try {
      const store = make({ url: undefined, client })
      await store.set('k', bytes('v'))
      expect(text(await store.get('k'))).toBe('v')
      expect(await store.list()).toEqual(['k'])
      await store.dispose()
      expect(client.status).toBe('ready')
      expect(await client.hget(store.prefix + 'k', 'v')).toBe('1')
    } finally {
      await client.quit()
    }
  })

  test('bad arguments: url with client, a client with keyPrefix, lone surrogates, bad versions', async () => {
    const client = new IORedis(REDIS_URL, { lazyConnect: true, keyPrefix: 'x:' })
    expect(() => redisStore({ url: REDIS_URL, client })).toThrow(/either url or client/)
    expect(() => redisStore({ client })).toThrow(/keyPrefix/)
    client.disconnect()
    const store = make()
    await expect(store.set('\uD800', bytes('v'))).rejects.toThrow(/lone surrogate/)
    await expect(store.get('a\uDC00b')).rejects.toThrow(TypeError)
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) await expect(store.setIfVersion('k', bytes('v'), bad)).rejects.toThrow(RangeError)
    expect(await store.get('\uD83E\uDD80')).toBeUndefined() // a valid pair (🦀) is fine
  })

  test('a key under the prefix that this store did not write: clear errors, not wrong answers', async () => {
    const store = make()
    await redisAdmin().set(store.prefix + 'str', 'plain string')
    await expect(store.get('str')).rejects.toThrow(/WRONGTYPE/)
    await redisAdmin().hset(store.prefix + 'h', 'data', 'x')
    await expect(store.getVersioned('h')).rejects.toThrow(/no valid version/)
  })
})

// ----- SQLite -----

describe('sqliteStore', () => {
  test('a database file keeps its states across store instances (and versions go on)', async () => {
    const path = join(tmpDir(), 'state.db')
    const a = sqliteStore({ path })
    await a.set('user/42', bytes('one'))
    await a.set('user/42', bytes('two'))
    await a.set('🦀', new Uint8Array(0))
    await a.dispose()
    const b = sqliteStore({ path })
    expect(text(await b.get('user/42'))).toBe('two')
    expect((await b.list()).sort()).toEqual(['user/42', '🦀'])
    expect(await b.getVersioned('🦀')).toEqual({ data: new Uint8Array(0), version: 1 })
    expect(await b.setIfVersion('user/42', bytes('three'), 2)).toBe(3)
    await b.dispose()
  })

  test('a database it opens is in WAL mode, with the documented table', async () => {
    const path = join(tmpDir(), 'state.db')
    const store = sqliteStore({ path })
    await store.set('k', bytes('v'))
    // WAL is a property of the file: another connection sees it, and the log file exists.
    const other = new Database(path, { readonly: true })
    expect(other.pragma('journal_mode', { simple: true })).toBe('wal')
    other.close()
    expect(existsSync(path + '-wal')).toBe(true)
    await store.dispose()
    const table = new Database(path, { readonly: true })
    expect(table.prepare(`SELECT sql FROM sqlite_master WHERE name = 'edgeless_state'`).pluck().get()).toBe(
      'CREATE TABLE "edgeless_state" (id TEXT PRIMARY KEY, data BLOB NOT NULL, version INTEGER NOT NULL)',
    )
    table.close()
  })

  test('a db passed in: settings untouched, table created in it, left open by dispose', async () => {
    const path = join(tmpDir(), 'app.db')
    const db = new Database(path)
    db.defaultSafeIntegers(true) // the owner's choice; versions must still be numbers
    const store = sqliteStore({ db, table: 'states' })
    expect(await store.setIfVersion('k', bytes('v'), 0)).toBe(1)
    expect(await store.getVersioned('k')).toEqual({ data: bytes('v'), version: 1 })
    expect(await store.setIfVersion('k', bytes('w'), 5)).toEqual({ conflict: 1 })
    await store.dispose()
    expect(db.open).toBe(true)
    expect(db.pragma('journal_mode', { simple: true })).toBe('delete')
    expect(db.prepare('SELECT count(*) FROM states').pluck().safeIntegers(false).get()).toBe(1)
    db.close()
  })

  test('setIfVersion is atomic across threads: four workers on one file, compare-and-set increments, none lost', async () => {
    const dir = tmpDir()
    const path = join(dir, 'state.db')
    // The compiled adapter, importing better-sqlite3 by absolute path (it lives in a temp folder).
    const driver = pathToFileURL(createRequire(import.meta.url).resolve('better-sqlite3')).href
    const js = (await transpiled('sqlite.ts', 'better-sqlite3')).replace(/import\(\s*["']better-sqlite3["']\s*\)/, `import(${JSON.stringify(driver)})`)
    expect(js).toContain(driver)
    await writeFile(join(dir, 'store.mjs'), js)
    await writeFile(
      join(dir, 'worker.mjs'),
      `
      import { parentPort, workerData } from 'node:worker_threads'
      import { sqliteStore } from './store.mjs'
      const { path, per } = workerData
      const store = sqliteStore({ path })
      let conflicts = 0
      for (let i = 0; i < per; i++) {
        for (;;) {
          const cur = await store.getVersioned('counter')
          const n = cur ? Number(new TextDecoder().decode(cur.data)) : 0
          const r = await store.setIfVersion('counter', new TextEncoder().encode(String(n + 1)), cur ? cur.version : 0)
          if (typeof r === 'number') break
          conflicts++
          await new Promise((r) => setImmediate(r))
        }
      }
      await store.dispose()
      parentPort.postMessage(conflicts)
    `,
    )
    // Create the file and table first, so the workers do not race to switch it to WAL.
    const setup = sqliteStore({ path })
    await setup.list()
    await setup.dispose()
    const PER = 200
    const t0 = Date.now()
    const conflicts = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<number>((resolve, reject) => {
            const w = new Worker(join(dir, 'worker.mjs'), { workerData: { path, per: PER } })
            w.once('message', resolve)
            w.once('error', reject)
            w.once('exit', (code) => {
              if (code !== 0) reject(new Error(`worker exited with ${code}`))
            })
          }),
      ),
    )
    const store = sqliteStore({ path })
    const end = await store.getVersioned('counter')
    await store.dispose()
    expect({ value: text(end?.data), version: end?.version }).toEqual({ value: String(4 * PER), version: 4 * PER })
    console.log(
      `sqlite compare-and-set: ${4 * PER} increments by 4 threads in ${Date.now() - t0} ms, ${conflicts.reduce((a, b) => a + b)} conflicts retried (${conflicts.join(', ')})`,
    )
  })

  test("calls made while it opens run in call order, with the caller's bytes as they were", async () => {
    const store = sqliteStore({ path: ':memory:' })
    const buf = bytes('first')
    const writes = [store.set('k', buf), store.delete('k'), store.set('k', bytes('second'))]
    buf.fill(0) // reused by the caller before the database is even open
    const got = store.get('k')
    await Promise.all(writes)
    expect(text(await got)).toBe('second')
    expect(await store.setIfVersion('k', bytes('x'), 1)).toBe(2) // delete reset it; 'second' was version 1
    await store.dispose()
  })

  test('bad arguments and an unopenable file: clear errors', async () => {
    expect(() => sqliteStore({ path: ':memory:', table: 'x; DROP TABLE y' })).toThrow(/plain SQL identifier/)
    expect(() => sqliteStore({ path: '' })).toThrow(/path/)
    const store = sqliteStore({ path: ':memory:' })
    await expect(store.set('\uDBFF', bytes('v'))).rejects.toThrow(/lone surrogate/)
    await expect(store.setIfVersion('k', bytes('v'), -1)).rejects.toThrow(RangeError)
    await store.dispose()
    await expect(store.set('k', bytes('v'))).rejects.toThrow(/after dispose/)
    const nowhere = join(tmp, 'no', 'such', 'dir', 'state.db')
    const bad = sqliteStore({ path: nowhere })
    await expect(bad.set('k', bytes('v'))).rejects.toThrow(`sqliteStore(${nowhere}): cannot open the database`)
    await bad.dispose()
  })
})
