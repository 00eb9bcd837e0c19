// The browser build, proven in a real browser: Chromium (Debian's /usr/bin/chromium when
// installed, else the one packaged in @sparticuz/chromium: __tests__/helpers/browser.ts)
// driven by playwright-core. The example page (examples/browser, served by
// its own serve.mjs, which bundles it with esbuild through the package's "browser" export
// condition) runs the ping-pong workflow with its state in IndexedDB; a reload resumes the
// count. Then the IndexedDB adapter runs the StateStore conformance suite against the real
// IndexedDB of the page, and a round trip entirely in the page. Needs dist/ (npm test builds).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'
import type { BrowserContext, Page } from 'playwright-core'
import type { StateStore } from '../lib/state/store'
import { testStateStore } from '../lib/testing/store-conformance'
import { launchChromium } from './helpers/browser'

const root = fileURLToPath(new URL('..', import.meta.url))
const SCREENSHOT = join(root, 'examples/browser/screenshot.png')
/** The first start loads binaryen (15 MB) and asyncifies ping.wasm: seconds, on 2 cores. */
const START_MS = 90_000

let server: ChildProcess | undefined
let serverOutput = ''
let base = '' // http://127.0.0.1:PORT
let exampleUrl = ''
let profile = ''
let context: BrowserContext | undefined

/** Console errors and page errors of every page, with the page's URL. */
const problems: string[] = []
function watch(page: Page): Page {
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${page.url()}: console.error: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`${page.url()}: page error: ${e.message}`))
  page.on('requestfailed', (r) => problems.push(`${page.url()}: request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`))
  return page
}

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS' && !/^npm_/i.test(k)) env[k] = v
  return env
}

/** Start `node examples/browser/serve.mjs --port 0` and wait for the URL it prints. */
function startServer(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['examples/browser/serve.mjs', '--port', '0'], { cwd: root, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    server = child
    const timer = setTimeout(() => reject(new Error(`serve.mjs printed no URL in 60 s:\n${serverOutput}`)), 60_000)
    const onData = (d: Buffer) => {
      serverOutput += d.toString()
      const m = /edgeless browser example: (http:\/\/\S+)/.exec(serverOutput)
      if (m) {
        clearTimeout(timer)
        resolve(m[1]!)
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`serve.mjs exited (${code}):\n${serverOutput}`))
    })
  })
}

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/index.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
  exampleUrl = await startServer()
  base = new URL(exampleUrl).origin
  profile = mkdtempSync(join(tmpdir(), 'edgeless-chromium-'))
  // A persistent context on a fresh, empty profile; IndexedDB lives in it for the whole
  // file, so reloads keep it.
  context = await launchChromium(profile, { width: 1100, height: 720 })
}, 120_000)

afterAll(async () => {
  await context?.close()
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r))
    server.kill('SIGTERM')
    await exited
  }
  if (profile) rmSync(profile, { recursive: true, force: true })
})

// ---- the server ------------------------------------------------------------------------

describe('examples/browser/serve.mjs', () => {
  test('bundles the page through the "browser" condition, with binaryen as a lazy chunk', () => {
    expect(serverOutput).toContain(`'edgeless' -> dist/index.js (the "browser" condition)`)
    expect(serverOutput).toMatch(/loaded on demand: binaryen-\w+\.js \(1\d\.\d MB\)/)
  })

  test('serves read-only, cross-origin isolated, with the right MIME types', async () => {
    const get = (path: string, init?: RequestInit) => fetch(base + path, { redirect: 'manual', ...init })
    const page = await get('/examples/browser/')
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(page.headers.get('cross-origin-opener-policy')).toBe('same-origin')
    expect(page.headers.get('cross-origin-embedder-policy')).toBe('require-corp')
    const wasm = await get('/fixtures/wasm/ping.wasm')
    expect(wasm.headers.get('content-type')).toBe('application/wasm')
    expect(new Uint8Array(await wasm.arrayBuffer()).subarray(0, 4)).toEqual(Uint8Array.of(0, 0x61, 0x73, 0x6d))
    const bundle = await get('/examples/browser/bundle/main.js')
    expect(bundle.status).toBe(200)
    expect(bundle.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect((await get('/examples/ping-pong/workflow.json')).headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect((await get('/')).headers.get('location')).toBe('/examples/browser/')
    expect((await get('/examples/browser')).status).toBe(301)
    expect((await get('/examples/browser/', { method: 'POST', body: 'x' })).status).toBe(405)
    expect((await get('/examples/browser/serve.mjs', { method: 'PUT', body: 'x' })).status).toBe(405)
    expect((await get('/.git/HEAD')).status).toBe(404)
    expect((await get('/examples/%2e%2e/%2e%2e/etc/passwd')).status).toBe(404)
    expect((await get('/nothing-here')).status).toBe(404)
  })
})

// ---- the example page ------------------------------------------------------------------

interface PageState {
  status: string
  count: number | null
  pongs: number
  resumedFrom: number | null
  lines: number
  errors: string[]
}

const pageState = (page: Page) => page.evaluate(() => (globalThis as unknown as { edgelessExample?: { state: PageState } }).edgelessExample?.state)

/**
 * Wait until the page shows at least `pongs` pongs this load and, once written to IndexedDB
 * and read back, a count at least `pongs` above where it resumed (or the page failed).
 */
async function waitForPongs(page: Page, pongs: number): Promise<PageState> {
  await page.waitForFunction(
    (n) => {
      const s = (globalThis as unknown as { edgelessExample?: { state: PageState } }).edgelessExample?.state
      return (s && s.resumedFrom !== null && s.pongs >= n && s.count !== null && s.count >= s.resumedFrom + n) || document.body.dataset.status === 'failed'
    },
    pongs,
    { timeout: START_MS, polling: 100 },
  )
  const s = (await pageState(page))!
  if (s.status !== 'running') throw new Error(`the page failed: ${s.errors.join('\n')}\n${await page.locator('#log').innerText()}`)
  return s
}

describe('the example page in Chromium', () => {
  let page: Page

  beforeAll(async () => {
    page = watch(context!.pages()[0] ?? (await context!.newPage()))
  })

  test(
    'runs ping-pong, shows its output, and a reload resumes the count from IndexedDB',
    async () => {
      await page.goto(exampleUrl)
      expect(await page.evaluate(() => globalThis.crossOriginIsolated)).toBe(true)
      const first = await waitForPongs(page, 2)
      expect(first.resumedFrom).toBe(0) // a fresh profile: nothing stored
      expect(first.count).toBeGreaterThanOrEqual(2)
      // The live output is in the page: the guests' log lines and the counters.
      const log = await page.locator('#log').innerText()
      expect(log).toContain("pinger: Pinger: 'Init' called")
      expect(log).toContain('pinger: Got Reply: PONG')
      expect(log).toContain("ponger: Ponger: 'Call' called")
      expect(log).toMatch(/workflow "ping-pong" started in \d+ ms: pinger=running, ponger=running/)
      expect(Number(await page.locator('#count').innerText())).toBeGreaterThanOrEqual(2)
      expect(Number(await page.locator('#pongs').innerText())).toBeGreaterThanOrEqual(2)

      await page.reload()
      const second = await waitForPongs(page, 2)
      // It carried on: the stored count when the page loaded again is at least what the
      // first load showed (the pinger may have written once more before the reload)...
      expect(second.resumedFrom).toBeGreaterThanOrEqual(first.count!)
      expect(second.resumedFrom).toBeGreaterThan(0)
      // ...and counting went on from there rather than from 0.
      expect(second.count).toBeGreaterThanOrEqual(second.resumedFrom! + 2)
      expect(await page.locator('#log').innerText()).toContain(`IndexedDB holds the pinger's count ${second.resumedFrom}: resuming from it`)
      expect(second.errors).toEqual([])
      expect(problems).toEqual([])
      await page.screenshot({ path: SCREENSHOT })
    },
    3 * START_MS,
  )

  test(
    'a runaway guest (an endless loop) does not freeze the page: fuel stops it, the page keeps ticking',
    async () => {
      if (!(await page.evaluate(() => 'edgelessExample' in globalThis))) await page.goto(exampleUrl)
      await page.waitForFunction(() => 'edgelessExample' in globalThis, undefined, { timeout: START_MS })
      const r = await page.evaluate(async () => {
        const { rt } = (
          globalThis as unknown as {
            edgelessExample: {
              rt: {
                spawn(o: unknown): Promise<{ id: unknown }>
                cast(t: unknown, p: string): void
                on(e: string, f: (ev: { name: string; trap: string }) => void): void
              }
            }
          }
        ).edgelessExample
        const crashes: string[] = []
        rt.on('crash', (e) => {
          if (e.name === 'runaway') crashes.push(e.trap)
        })
        const ref = await rt.spawn({ name: 'runaway', module: new URL('/fixtures/wasm/runaway.wasm', location.href), fuel: 20_000_000, restart: 'temporary' })
        // A 5 ms timer keeps ticking unless the main thread is blocked.
        let ticks = 0
        const t = setInterval(() => {
          ticks++
        }, 5)
        const t0 = performance.now()
        rt.cast(ref, 'spin')
        await new Promise((res) => setTimeout(res, 500))
        clearInterval(t)
        return { crashes, ticks, ms: performance.now() - t0 }
      })
      expect(r.crashes).toEqual(['out-of-fuel'])
      // Without fuel the loop would never return and no tick (nor this evaluate) would come back.
      expect(r.ticks).toBeGreaterThan(20)
      // The workflow in the page went on: the pinger keeps being answered. (The example page
      // shows any crash as a failure, so its status line now says so; that is the page's choice.)
      const before = (await pageState(page))!.pongs
      await page.waitForFunction((n) => (globalThis as unknown as { edgelessExample: { state: { pongs: number } } }).edgelessExample.state.pongs > n, before, {
        timeout: 5000,
      })
    },
    START_MS,
  )

  test(
    'dense memory runs in the page (cross-origin isolated, so its chunks are shared memories)',
    async () => {
      if (!(await page.evaluate(() => 'edgelessExample' in globalThis))) await page.goto(exampleUrl)
      await page.waitForFunction(() => 'edgelessExample' in globalThis, undefined, { timeout: START_MS })
      const r = await page.evaluate(async () => {
        type Ref = { id: unknown }
        type Rt = {
          load(u: URL): Promise<unknown>
          spawn(o: unknown): Promise<Ref>
          call(t: Ref, p: Uint8Array | string): Promise<{ kind: string; data?: Uint8Array }>
          stop(t: Ref): Promise<void>
        }
        const { rt } = (globalThis as unknown as { edgelessExample: { rt: Rt } }).edgelessExample
        const fm = await rt.load(new URL('/fixtures/wasm/dense_probe.wasm', location.href))
        const cmd = (op: number, a: number, b = 0) => {
          const u = new Uint8Array(13)
          const d = new DataView(u.buffer)
          u[0] = op
          d.setUint32(1, a, true)
          d.setUint32(5, b, true)
          return u
        }
        const res = async (ref: Ref, op: number, a: number, b = 0) => {
          const x = await rt.call(ref, cmd(op, a, b))
          return x.kind === 'reply' ? new DataView(x.data!.buffer, x.data!.byteOffset, 4).getUint32(0, true) : -1
        }
        const refs: Ref[] = []
        for (let i = 0; i < 300; i++) refs.push(await rt.spawn({ name: `dense-${i}`, module: fm, dense: true }))
        // Each writes its own number at byte 100, and at an address past its region (which wraps into it).
        for (let i = 0; i < refs.length; i++) {
          await res(refs[i]!, 1, 100, i & 0xff)
          await res(refs[i]!, 1, 0xfffffff0, 0xee)
        }
        const back: number[] = []
        for (let i = 0; i < refs.length; i++) back.push(await res(refs[i]!, 2, 100))
        for (const ref of refs) await rt.stop(ref)
        // Real guests: their log lines and aliases are decoded from views into the shared chunk
        // (a browser's TextDecoder refuses shared views: the host copies those first).
        const logs: string[] = []
        ;(rt as unknown as { on(e: string, f: (ev: { name: string; text: string }) => void): void }).on('log', (e) => {
          if (e.name === 'dense-pong') logs.push(e.text)
        })
        const pong = await rt.spawn({ name: 'dense-pong', module: new URL('/fixtures/wasm/pong.wasm', location.href), dense: true })
        const answer = await rt.call(pong, 'PING')
        const asEcho = await rt.spawn({ name: 'dense-as-echo', module: new URL('/fixtures/wasm/as_echo.wasm', location.href), dense: true })
        const echoed = await rt.call(asEcho, 'héllo')
        await rt.stop(pong)
        await rt.stop(asEcho)
        const dec = (x: { kind: string; data?: Uint8Array }) => (x.kind === 'reply' ? new TextDecoder().decode(x.data) : x.kind)
        return {
          isolated: globalThis.crossOriginIsolated,
          ok: back.every((v, i) => v === (i & 0xff)),
          back: back.slice(0, 5),
          answer: dec(answer),
          echoed: dec(echoed),
          logs,
        }
      })
      expect(r).toMatchObject({ isolated: true, ok: true, answer: 'PONG', echoed: 'héllo' })
      // pong logs in init, per call and in stop; every line arrived whole.
      expect(r.logs.length).toBeGreaterThan(0)
      expect(r.logs.every((t) => t.length > 0)).toBe(true)
    },
    START_MS,
  )
})

// ---- the IndexedDB adapter in the page -------------------------------------------------

/** A page at the server's origin (so it shares the example's IndexedDB) with indexedDbStore
 *  on globalThis: a tiny entry bundled like any browser app bundles edgeless. */
let harness: Page | undefined
async function harnessPage(): Promise<Page> {
  if (harness) return harness
  const built = await esbuild.build({
    absWorkingDir: root,
    stdin: {
      contents: "import { indexedDbStore } from 'edgeless/adapters/indexeddb'\nglobalThis.indexedDbStore = indexedDbStore\n",
      resolveDir: root,
      loader: 'js',
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    metafile: true,
    logLevel: 'silent',
  })
  // The browser resolution of 'edgeless/adapters/indexeddb' is the platform-neutral build.
  expect(Object.keys(built.metafile.inputs)).toContain('dist/adapters/indexeddb.js')
  const js = built.outputFiles[0]!.text
  const p = watch(await context!.newPage())
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' }
  await p.route(`${base}/__harness/**`, (route) => {
    const isJs = route.request().url().endsWith('.js')
    return route.fulfill({
      status: 200,
      headers,
      contentType: isJs ? 'text/javascript' : 'text/html',
      body: isJs ? js : '<!doctype html><link rel="icon" href="data:,"><script type="module" src="harness.js"></script>',
    })
  })
  await p.goto(`${base}/__harness/index.html`)
  await p.waitForFunction(() => typeof (globalThis as { indexedDbStore?: unknown }).indexedDbStore === 'function')
  harness = p
  return p
}

// Bytes cross the DevTools protocol as base64 strings.
const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))

/** The page side of the remote store: stores by handle, bytes as base64. */
const IN_PAGE = `
globalThis.remote ??= (() => {
  const stores = new Map()
  let next = 0
  const enc = (b) => { let s = ''; for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000)); return btoa(s) }
  const dec = (s) => { const t = atob(s); const b = new Uint8Array(t.length); for (let i = 0; i < t.length; i++) b[i] = t.charCodeAt(i); return b }
  return {
    open(dbName) { const h = next++; stores.set(h, globalThis.indexedDbStore({ dbName })); return h },
    call(h, method, args) {
      const s = stores.get(h)
      const a = args.map((x) => (x && typeof x === 'object' && 'b64' in x ? dec(x.b64) : x))
      return s[method](...a).then((r) => {
        if (r instanceof Uint8Array) return { b64: enc(r) }
        if (r && typeof r === 'object' && r.data instanceof Uint8Array) return { data: { b64: enc(r.data) }, version: r.version }
        return r === undefined ? { undefined: true } : r
      })
    },
    async drop(dbName) {
      await new Promise((ok, fail) => { const r = indexedDB.deleteDatabase(dbName); r.onsuccess = ok; r.onerror = () => fail(r.error) })
    },
  }
})()
`

type Remote = StateStore & { dbName: string }

/** A StateStore in Node whose every call runs on an indexedDbStore in the page. */
async function remoteStore(): Promise<Remote> {
  const page = await harnessPage()
  await page.evaluate(IN_PAGE)
  const dbName = `conformance-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
  const h = await page.evaluate((n) => (globalThis as unknown as { remote: { open(n: string): number } }).remote.open(n), dbName)
  const call = async (method: string, ...args: unknown[]): Promise<unknown> => {
    const wire = args.map((a) => (a instanceof Uint8Array ? { b64: b64(a) } : a))
    // Sent in call order, and each call reaches the store before the page awaits anything:
    // calls issued without waiting reach it in the order they were made.
    const r = await page.evaluate(
      ([h, m, a]) => (globalThis as unknown as { remote: { call(h: number, m: string, a: unknown[]): Promise<unknown> } }).remote.call(h, m, a),
      [h, method, wire] as const,
    )
    const v = r as { b64?: string; undefined?: true; data?: { b64: string }; version?: number }
    if (v && typeof v === 'object') {
      if (v.undefined) return undefined
      if (typeof v.b64 === 'string') return unb64(v.b64)
      if (v.data) return { data: unb64(v.data.b64), version: v.version }
    }
    return r
  }
  return {
    dbName,
    get: (id) => call('get', id) as Promise<Uint8Array | undefined>,
    set: (id, data) => call('set', id, data) as Promise<void>,
    delete: (id) => call('delete', id) as Promise<void>,
    list: () => call('list') as Promise<string[]>,
    dispose: () => call('dispose') as Promise<void>,
    setIfVersion: (id, data, expected) => call('setIfVersion', id, data, expected) as Promise<number | { conflict: number }>,
    getVersioned: (id) => call('getVersioned', id) as Promise<{ data: Uint8Array; version: number } | undefined>,
  }
}

// The 16 MiB round trip runs in the page itself (below): through the protocol, as base64,
// it would time the transfer rather than the store.
testStateStore('indexedDbStore (Chromium, real IndexedDB)', remoteStore, {
  list: true,
  versions: true,
  dispose: true,
  bigValues: false,
  cleanup: async (store) => {
    await harness?.evaluate((n) => (globalThis as unknown as { remote: { drop(n: string): Promise<void> } }).remote.drop(n), store.dbName)
  },
})

describe('indexedDbStore, in the page itself', () => {
  test('binary values, versions, conflicts, and the data outlives the page', async () => {
    const page = await harnessPage()
    const first = await page.evaluate(async () => {
      const { indexedDbStore } = globalThis as unknown as { indexedDbStore: typeof import('../adapters/indexeddb').indexedDbStore }
      await new Promise((ok) => {
        const r = indexedDB.deleteDatabase('roundtrip')
        r.onsuccess = ok
        r.onerror = ok
      })
      const store = indexedDbStore({ dbName: 'roundtrip', storeName: 'states' })
      const all = Uint8Array.from({ length: 256 }, (_, i) => i)
      const backing = Uint8Array.from({ length: 64 }, (_, i) => 255 - i)
      const view = backing.subarray(8, 16) // only these 8 bytes are the value
      const out: Record<string, unknown> = {}
      out.missing = await store.get('bin')
      await store.set('bin', all)
      all[0] = 99 // the caller reuses its buffer: the stored value does not change
      const got = (await store.get('bin'))!
      out.bin = Array.from(got)
      out.binIsUint8Array = got instanceof Uint8Array
      out.binOwnBuffer = got.byteOffset === 0 && got.buffer.byteLength === 256
      await store.set('view', view)
      out.view = Array.from((await store.get('view'))!)
      out.v1 = await store.getVersioned('bin')
      out.ifOk = await store.setIfVersion('bin', Uint8Array.of(1, 2, 3), 1)
      out.ifStale = await store.setIfVersion('bin', Uint8Array.of(9), 1)
      out.ifAbsent = await store.setIfVersion('new', Uint8Array.of(7), 0)
      await store.set('bin', new Uint8Array(0))
      const v3 = (await store.getVersioned('bin'))!
      out.v3 = { len: v3.data.length, version: v3.version }
      out.list = (await store.list()).sort()
      await store.delete('new')
      out.afterDelete = await store.getVersioned('new')
      out.recreated = await store.setIfVersion('new', Uint8Array.of(8), 0)
      // 16 MiB of random bytes, and then a small value in its place.
      const big = new Uint8Array(16 * 1024 * 1024)
      for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536))
      await store.set('big', big)
      const bigBack = (await store.get('big'))!
      let firstDiff = bigBack.length === big.length ? -1 : 0
      for (let i = 0; i < big.length && firstDiff === -1; i++) if (bigBack[i] !== big[i]) firstDiff = i
      out.big = { length: bigBack.length, firstDiff }
      await store.set('big', Uint8Array.of(5))
      out.bigReplaced = Array.from((await store.get('big'))!)
      await store.delete('big')
      await store.dispose()
      out.afterDispose = await store.get('bin').then(
        () => 'resolved',
        (e: Error) => e.message,
      )
      // Another store on the same database sees the data: it is in IndexedDB, not in the object.
      const again = indexedDbStore({ dbName: 'roundtrip', storeName: 'states' })
      out.again = await again.getVersioned('view')
      await again.dispose()
      return JSON.parse(JSON.stringify(out, (_, v) => (v instanceof Uint8Array ? { bytes: Array.from(v) } : v === undefined ? '(undefined)' : v)))
    })
    expect(first).toEqual({
      missing: '(undefined)',
      bin: Array.from({ length: 256 }, (_, i) => i),
      binIsUint8Array: true,
      binOwnBuffer: true,
      view: [247, 246, 245, 244, 243, 242, 241, 240],
      v1: { data: { bytes: Array.from({ length: 256 }, (_, i) => i) }, version: 1 },
      ifOk: 2,
      ifStale: { conflict: 2 },
      ifAbsent: 1,
      v3: { len: 0, version: 3 },
      list: ['bin', 'new', 'view'],
      afterDelete: '(undefined)',
      recreated: 1,
      big: { length: 16 * 1024 * 1024, firstDiff: -1 },
      bigReplaced: [5],
      afterDispose: 'indexedDbStore("roundtrip"/"states"): get after dispose()',
      again: { data: { bytes: [247, 246, 245, 244, 243, 242, 241, 240] }, version: 1 },
    })

    // A reload of the page: the values are still there. And the example's pinger state, in
    // the same origin's IndexedDB, reads as {"count":N}.
    await page.reload()
    await page.waitForFunction(() => typeof (globalThis as { indexedDbStore?: unknown }).indexedDbStore === 'function')
    const after = await page.evaluate(async () => {
      const { indexedDbStore } = globalThis as unknown as { indexedDbStore: typeof import('../adapters/indexeddb').indexedDbStore }
      const store = indexedDbStore({ dbName: 'roundtrip', storeName: 'states' })
      const view = await store.getVersioned('view')
      // A second object store in the same database: added by an upgrade, the first one kept.
      const other = indexedDbStore({ dbName: 'roundtrip', storeName: 'other' })
      await other.set('x', Uint8Array.of(1))
      const example = indexedDbStore({ dbName: 'edgeless-example' })
      const pinger = await example.get('ping-pong/pinger')
      const result = {
        view: view && { bytes: Array.from(view.data), version: view.version },
        list: (await store.list()).sort(),
        other: await other.list(),
        pinger: pinger && new TextDecoder().decode(pinger),
      }
      await Promise.all([store.dispose(), other.dispose(), example.dispose()])
      return result
    })
    expect(after.view).toEqual({ bytes: [247, 246, 245, 244, 243, 242, 241, 240], version: 1 })
    expect(after.list).toEqual(['bin', 'new', 'view'])
    expect(after.other).toEqual(['x'])
    expect(after.pinger).toMatch(/^\{"count":\d+\}$/)
    expect(problems).toEqual([])
  }, 60_000)
})
